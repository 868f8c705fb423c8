"""AGORA's detection-normalised errors (Patel et al., "AGORA: Avatars in Geography Optimized for
Regression Analysis", CVPR 2021, section 4; agora_evaluation ``compute_average_error.py``).

``NMJE = MPJPE / F1`` and ``NMVE = MVE / F1``: the mean error over matched people divided by the
detection F1 score, so misses and false positives raise the error. The kit also reports a per-bin
normalisation for its occlusion plots, ``error / (1 - miss rate)`` = ``error / recall`` of the bin.
"""
from __future__ import annotations

import torch


def _divide(error, by, name):
    error = torch.as_tensor(error, dtype=torch.float64)
    by = torch.as_tensor(by, dtype=torch.float64)
    if bool((by < 0).any()) or bool((by > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1], got {by.tolist()}")
    # F1 = 0 (nothing matched) makes the normalised error infinite, as the definition says
    return torch.where(by > 0, error / by.clamp(min=torch.finfo(torch.float64).tiny), torch.inf)


def nmje(mpjpe, f1):
    """Normalised mean joint error ``MPJPE / F1`` (units of ``mpjpe``); Tensor (float64) of the
    broadcast shape; ``inf`` where F1 = 0."""
    return _divide(mpjpe, f1, "f1")


def nmve(mve, f1):
    """Normalised mean vertex error ``MVE / F1``; as :func:`nmje`."""
    return _divide(mve, f1, "f1")


def recall_normalised(error, recall):
    """``error / recall`` (the kit's occlusion-bin normalisation ``error / (1 - miss rate)``);
    ``inf`` where recall = 0."""
    return _divide(error, recall, "recall")
