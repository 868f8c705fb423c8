"""Loss terms of ROMP / BEV / TRACE and the weighted aggregator.

Every term is a small function over tensors of the sample contract (``romp_fast.data.contract``),
masked by its validity masks, returning a scalar: the mean over supervised people / images /
tracks, and 0 with a zero gradient when nothing is supervised (never NaN from masked entries).
:class:`LossComputer` weights and sums them (ROMP's ``Loss`` + ``Learnable_Loss``).

ROMP term name -> function: CenterMap :func:`centermap_focal_loss`, CenterMap_3D
:func:`centermap3d_focal_loss`, P_KP2D :func:`kp2d_loss` (TRACE's
P_KP2D / world_pj2D :func:`kp2d_joint_loss`), MPJPE :func:`mpjpe_loss`,
PAMPJPE :func:`pampjpe_loss`, Pose :func:`pose_loss`, Shape :func:`shape_loss`, Cam
:func:`cam_loss`, Prior :func:`gmm_prior_loss`, R_Depth :func:`ordinal_depth_loss`, R_Age
:func:`age_loss`, motion_offsets3D :func:`motion_offset_loss`, temp_shape_consist
:func:`shape_consistency_loss`, world_grots :func:`world_rotation_loss`, wrotsL2
:func:`world_rotation_l2_loss`, world_trans :func:`world_translation_loss`, temp_velocity /
temp_acceleration :func:`velocity_loss` / :func:`acceleration_loss`.
"""
from romp_fast.losses.aggregate import GROUPS, LOSS_CAP, PRESETS, TERMS, LossComputer
from romp_fast.losses.detection import centermap3d_focal_loss, centermap_focal_loss
from romp_fast.losses.keypoints import kp2d_joint_loss, kp2d_loss, mpjpe_loss, pampjpe_loss
from romp_fast.losses.params import cam_loss, pose_loss, rotation_distance, shape_loss
from romp_fast.losses.prior import GMMFileError, GMMPosePrior, gmm_prior_loss, load_gmm
from romp_fast.losses.relative import age_loss, ordinal_depth_loss
from romp_fast.losses.temporal import (acceleration_loss, gather_tracks, motion_offset_loss, shape_consistency_loss,
                                       velocity_loss, world_rotation_l2_loss, world_rotation_loss,
                                       world_translation_loss, world_translation_scale)

__all__ = [
    "GROUPS", "LOSS_CAP", "PRESETS", "TERMS", "LossComputer", "centermap_focal_loss",
    "centermap3d_focal_loss", "kp2d_joint_loss", "kp2d_loss", "mpjpe_loss", "pampjpe_loss", "pose_loss",
    "rotation_distance", "shape_loss", "cam_loss", "GMMFileError", "GMMPosePrior", "gmm_prior_loss",
    "load_gmm", "age_loss", "ordinal_depth_loss", "acceleration_loss", "motion_offset_loss",
    "shape_consistency_loss", "gather_tracks", "velocity_loss", "world_rotation_l2_loss", "world_rotation_loss",
    "world_translation_loss", "world_translation_scale",
]
