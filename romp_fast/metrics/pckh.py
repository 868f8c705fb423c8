"""mPCKh: the fraction of a person's visible 2D keypoints that land within a threshold relative
to the size of that person's keypoint box.

ROMP/BEV (``romp/lib/evaluation/evaluation_matrix.py`` ``_calc_matched_PCKh_`` and its copy in
``simple_romp/evaluation/RH_evaluation/evaluation.py``): for one person, with ``d_k`` the 2D
distance of keypoint ``k`` and ``s`` the diagonal of the bounding box of the *visible* ground-truth
keypoints, ``mPCKh = mean_{k visible} [d_k / s < 0.143]``. 0.143 ~ 1/7, ROMP's head/body ratio.
Which keypoints are visible (ROMP: both coordinates > -1) is a file-format rule that the
evaluator turns into ``mask``.
"""
from __future__ import annotations

import torch

PCKH_THRESH = 0.143  # ROMP: head size ~ 1/7 of the body; the threshold relative to the box diagonal


def keypoint_box_diagonal(target, mask=None):
    """Diagonal of the bounding box of each sample's visible keypoints, Tensor[B].

    target (Tensor[B, K, 2]); mask (Tensor[B, K] bool, optional). A sample with no visible
    keypoint gets 0.
    """
    if target.dim() != 3 or target.shape[-1] != 2:
        raise ValueError(f"target must be [B, K, 2], got {list(target.shape)}")
    vis = torch.ones(target.shape[:2], dtype=torch.bool, device=target.device) if mask is None else mask.bool()
    big = torch.finfo(target.dtype).max
    lo = torch.where(vis[..., None], target, big).amin(1)
    hi = torch.where(vis[..., None], target, -big).amax(1)
    diag = (hi - lo).norm(dim=-1)
    return torch.where(vis.any(1), diag, 0)


def mpckh(pred, target, mask=None, thresh: float = PCKH_THRESH):
    """Per-person mPCKh, Tensor[B] in [0, 1].

    Args:
        pred, target (Tensor[B, K, 2]): keypoints in one unit (pixels or normalised).
        mask (Tensor[B, K] bool, optional): visible ground-truth keypoints (default all).
        thresh: a keypoint is correct when ``distance / box diagonal < thresh`` (strict, as ROMP).
    Returns 0 for a sample with fewer than 2 visible keypoints (ROMP returns -1 there): such a
    person has no box, and evaluators must drop it (``mask.sum(-1) >= 2``) or count it
    themselves. A zero-size box (all visible keypoints at one point) counts only exact hits.
    Not differentiable (a thresholded count).
    """
    if pred.dim() != 3 or pred.shape[-1] != 2 or target.shape != pred.shape:
        raise ValueError(f"pred and target must both be [B, K, 2], got {list(pred.shape)} and {list(target.shape)}")
    if mask is not None and mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must be [B, K] = {list(pred.shape[:2])}, got {list(mask.shape)}")
    vis = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device) if mask is None else mask.bool()
    scale = keypoint_box_diagonal(target, vis)
    dist = (pred - target).norm(dim=-1)
    # d / s < t written as d < t * s, so a zero-size box counts exact hits instead of 0/0 = NaN
    hit = (dist < thresh * scale[:, None]) | ((scale[:, None] == 0) & (dist == 0))
    n = vis.sum(1)
    frac = (hit & vis).sum(1).to(pred.dtype) / n.clamp(min=1).to(pred.dtype)
    return torch.where(n >= 2, frac, 0)
