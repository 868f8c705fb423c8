"""Body model: SMPL via smplx (imported lazily), joint sets, rotations, SMPL-format file I/O and a
procedural SMPL-format model for running without the SMPL files."""
from romp_fast.body import joints
from romp_fast.body.io import (BodyModelFileError, load_body_model_data, load_regressor,
                               save_official_style_pkl)
from romp_fast.body.model import BodyModel, BodyOutput
from romp_fast.body.procedural import (build_procedural_model, default_cache_dir,
                                       ensure_procedural_model, write_procedural_model)
from romp_fast.body.rotations import (axis_angle_to_matrix, axis_angle_to_rot6d,
                                      matrix_to_axis_angle, matrix_to_quaternion,
                                      matrix_to_rot6d, quaternion_to_axis_angle,
                                      rot6d_to_axis_angle, rot6d_to_matrix)

__all__ = [
    "BodyModel", "BodyOutput", "BodyModelFileError", "joints", "load_body_model_data",
    "load_regressor", "save_official_style_pkl", "build_procedural_model", "default_cache_dir",
    "ensure_procedural_model", "write_procedural_model", "axis_angle_to_matrix",
    "axis_angle_to_rot6d", "matrix_to_axis_angle", "matrix_to_quaternion", "matrix_to_rot6d",
    "quaternion_to_axis_angle", "rot6d_to_axis_angle", "rot6d_to_matrix",
]
