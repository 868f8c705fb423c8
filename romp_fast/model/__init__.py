"""The ROMP model: ResNet backbone, pyramid neck, CoordConv heads (centre / camera / SMPL-parameter
maps), the result parser (peak NMS, top-K, GT association), SMPL decoding, weak-perspective (ROMP)
and perspective (BEV) projection, and the training criterion."""
from romp_fast.model.backbone import DEPTHS, ResNet, load_pretrained
from romp_fast.model.criterion import RompCriterion
from romp_fast.model.heads import PARAM_CHANNELS
from romp_fast.model.parser import center_nms, match_nearest_peaks, top_peaks
from romp_fast.model.projection import (cam_to_translation, perspective_project, project,
                                        weak_perspective_project)
from romp_fast.model.romp import MODEL_DEFAULTS, ROMPModel, build_model

__all__ = [
    "ROMPModel", "build_model", "RompCriterion", "weak_perspective_project", "perspective_project",
    "MODEL_DEFAULTS", "DEPTHS", "ResNet", "load_pretrained", "PARAM_CHANNELS", "center_nms",
    "match_nearest_peaks", "top_peaks", "cam_to_translation", "project",
]
