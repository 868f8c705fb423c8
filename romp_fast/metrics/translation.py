"""Root translation error: Euclidean and per-axis, per sample.

ROMP's ``print_results`` (romp/lib/evaluation/evaluation_matrix.py, for datasets with depth such as
MuPoTS, AGORA and 3DPW-OD) reports the mean of ``|t_pred - t_gt|_2`` and the per-axis mean of
``|t_pred - t_gt|`` over camera-frame root translations; this function gives the per-sample values
in input units (metres in, metres out). Which point is the root (pelvis, hip midpoint) and which
samples have a ground truth is the evaluator's choice (select them before calling).
Differentiable in ``pred`` (except at zero distance for the L2 term).
"""
from __future__ import annotations

import torch


def root_translation_error(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample root translation errors.

    Args:
        pred, target (Tensor[B, 3]): root positions (e.g. camera frame, metres).
    Returns:
        (l2 Tensor[B], per_axis Tensor[B, 3]): ``|pred - target|_2`` and ``|pred - target|`` per axis.
    """
    if pred.dim() != 2 or pred.shape[-1] != 3:
        raise ValueError(f"root_translation_error: pred must be [B, 3], got {list(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"root_translation_error: target must match pred {list(pred.shape)}, "
                         f"got {list(target.shape)}")
    diff = pred - target
    return diff.norm(dim=-1), diff.abs()
