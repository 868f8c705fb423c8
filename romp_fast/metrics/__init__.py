"""Pure metric functions over tensors: per-sample values in the units of their inputs.

keypoints: mpjpe, pa_mpjpe, pve, root_align · pck: pck, pck_curve, auc (3DPW challenge rules) ·
angles: mpjae, pa_mpjae over global rotations · temporal: acceleration_error · translation:
root_translation_error · pckh: mpckh · relative: pcrd, depth-pair accuracy, age accuracy · agora:
nmje, nmve · detection: detection_prf.
"""
from romp_fast.metrics.agora import nmje, nmve, recall_normalised
from romp_fast.metrics.angles import geodesic_angle, global_rotations, mpjae, pa_mpjae
from romp_fast.metrics.detection import detection_prf
from romp_fast.metrics.keypoints import mpjpe, pa_mpjpe, pve, root_align
from romp_fast.metrics.pck import PCK_THRESHOLD, auc, auc_from_curve, default_thresholds, pck, pck_curve
from romp_fast.metrics.pckh import PCKH_THRESH, keypoint_box_diagonal, mpckh
from romp_fast.metrics.relative import (AGE_BINS, AGE_CLASSES, RH_MISS_PENALTY, age_accuracy, age_class_from_offset,
                                        depth_pair_accuracy, depth_pairs, pair_involves, pcrd)
from romp_fast.metrics.temporal import acceleration, acceleration_error, stencil_count
from romp_fast.metrics.translation import root_translation_error

__all__ = [
    "mpjpe", "pa_mpjpe", "pve", "root_align", "pck", "pck_curve", "auc", "auc_from_curve", "default_thresholds",
    "PCK_THRESHOLD", "mpjae", "pa_mpjae", "global_rotations", "geodesic_angle", "acceleration_error", "acceleration",
    "stencil_count", "root_translation_error", "mpckh", "keypoint_box_diagonal", "PCKH_THRESH", "depth_pairs",
    "pair_involves", "pcrd", "depth_pair_accuracy", "age_class_from_offset", "age_accuracy", "AGE_CLASSES",
    "AGE_BINS", "RH_MISS_PENALTY", "nmje", "nmve", "recall_normalised", "detection_prf",
]
