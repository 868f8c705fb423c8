"""Matching predicted people to ground-truth people, for a batch of images at once.

Inputs are padded tensors: ``pred_*`` are ``[B, P, ...]`` with ``pred_counts[b]`` real entries,
``gt_*`` are ``[B, G, ...]`` with ``gt_counts[b]`` (default: all). Every matcher returns a
:class:`Matching`. Three rules, named so evaluators choose explicitly:

- :func:`match_hungarian`: optimal one-to-one matching on mean 2D keypoint distance over the
  ground truth's visible joints, with a distance gate (``linear_assignment``).
- :func:`match_greedy_agora`: the greedy matcher of the AGORA evaluation kit (its spectral-norm
  pair cost, keypoint-box IoU gate and false-positive counting), which ROMP/BEV's Relative Human,
  CMU Panoptic and 3DPW scripts copy with ``iou_thresh=0.05`` and a visibility mask.
- :func:`match_nearest_center`: ROMP's in-training association (each ground truth takes the nearest
  predicted centre of its image; no gate; several ground truths may share one prediction).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from romp_fast.ops import linear_assignment

AGORA_IOU_THRESH = 0.1  # agora_evaluation/matching.py match_2d_greedy default
ROMP_IOU_THRESH = 0.05  # ROMP simple_romp/evaluation/RH_evaluation/matching.py


@dataclass(frozen=True)
class Matching:
    """Who matched whom, per image.

    pred_for_gt (Tensor[B, G] int64): prediction matched to each ground truth, -1 if none.
    gt_for_pred (Tensor[B, P] int64): ground truth matched to each prediction, -1 if none (for
        match_nearest_center, the lowest ground-truth index that took it).
    false_positives (Tensor[B, P] bool): real predictions matched to nothing.
    misses (Tensor[B, G] bool): valid ground truths matched to nothing.
    """

    pred_for_gt: torch.Tensor
    gt_for_pred: torch.Tensor
    false_positives: torch.Tensor
    misses: torch.Tensor

    def pairs(self) -> torch.Tensor:
        """Tensor[K, 3] int64 of (image, prediction, ground truth) for every match."""
        b, g = (self.pred_for_gt >= 0).nonzero(as_tuple=True)
        return torch.stack([b, self.pred_for_gt[b, g], g], 1)

    def counts(self) -> dict:
        """True positives, false positives and misses over the batch (ints)."""
        return {"tp": int((self.pred_for_gt >= 0).sum()), "fp": int(self.false_positives.sum()),
                "fn": int(self.misses.sum())}


def _counts(counts, B, full, device, name):
    if counts is None:
        return torch.full((B,), full, dtype=torch.int64, device=device)
    counts = torch.as_tensor(counts, device=device).to(torch.int64)
    if counts.shape != (B,) or bool(((counts < 0) | (counts > full)).any()):
        raise ValueError(f"{name} must be [B] = [{B}] integers in [0, {full}], got {counts.tolist()}")
    return counts


def _check_keypoints(pred, gt, gt_visible):
    if pred.dim() != 4 or pred.shape[-1] < 2:
        raise ValueError(f"pred keypoints must be [B, P, K, >=2], got {list(pred.shape)}")
    if gt.dim() != 4 or gt.shape[0] != pred.shape[0] or gt.shape[2] != pred.shape[2] or gt.shape[-1] < 2:
        raise ValueError(f"gt keypoints must be [B, G, K, >=2] = [{pred.shape[0]}, G, {pred.shape[2]}, 2], "
                         f"got {list(gt.shape)}")
    if gt_visible is not None and gt_visible.shape != gt.shape[:3]:
        raise ValueError(f"gt_visible must be [B, G, K] = {list(gt.shape[:3])}, got {list(gt_visible.shape)}")


def _finish(pred_for_gt, pred_ok, gt_valid):
    """Builds the Matching from pred_for_gt [B, G] and the validity masks."""
    B, P = pred_ok.shape
    G = pred_for_gt.shape[1]
    b, g = (pred_for_gt >= 0).nonzero(as_tuple=True)
    # Reverse map; when several ground truths share a prediction the lowest index wins.
    flat = torch.full((B * P,), G, dtype=torch.int64, device=pred_ok.device)
    flat.scatter_reduce_(0, b * P + pred_for_gt[b, g], g, reduce="amin")
    gt_for_pred = torch.where(flat < G, flat, -1).view(B, P)
    return Matching(pred_for_gt, gt_for_pred, pred_ok & (gt_for_pred < 0), gt_valid & (pred_for_gt < 0))


def _masks(B, P, G, pred_counts, gt_counts, gt_valid, device):
    pc = _counts(pred_counts, B, P, device, "pred_counts")
    gc = _counts(gt_counts, B, G, device, "gt_counts")
    pred_ok = torch.arange(P, device=device)[None] < pc[:, None]
    gt_ok = torch.arange(G, device=device)[None] < gc[:, None]
    if gt_valid is not None:
        if gt_valid.shape != (B, G):
            raise ValueError(f"gt_valid must be [B, G] = [{B}, {G}], got {list(gt_valid.shape)}")
        gt_ok = gt_ok & gt_valid.to(device=device, dtype=torch.bool)
    return pc, gc, pred_ok, gt_ok


def match_hungarian(pred_kp2d, gt_kp2d, gt_visible=None, *, pred_counts=None, gt_counts=None,
                    gt_valid=None, max_dist=None) -> Matching:
    """Optimal matching on mean 2D keypoint distance over each ground truth's visible joints.

    Args:
        pred_kp2d (Tensor[B, P, K, 2]), gt_kp2d (Tensor[B, G, K, 2]): keypoints in one unit (pixels
            or normalised coordinates); extra trailing channels (e.g. confidence) are ignored.
        gt_visible (Tensor[B, G, K] bool, optional): visible GT joints (default all). A ground truth
            with no visible joint cannot be scored and counts as invalid.
        gt_valid (Tensor[B, G] bool, optional): ground truths to ignore entirely (not misses).
        max_dist (float, optional): pairs farther than this are never matched (gate inside the
            optimisation, see ``linear_assignment``).
    The matching has maximum cardinality under the gate and minimum total distance among those.
    """
    _check_keypoints(pred_kp2d, gt_kp2d, gt_visible)
    B, P, K, _ = pred_kp2d.shape
    G = gt_kp2d.shape[1]
    vis = torch.ones(B, G, K, dtype=torch.bool, device=gt_kp2d.device) if gt_visible is None else gt_visible.bool()
    nvis = vis.sum(-1)
    pc, gc, pred_ok, gt_ok = _masks(B, P, G, pred_counts, gt_counts, gt_valid, pred_kp2d.device)
    gt_ok = gt_ok & (nvis > 0)  # a ground truth with no visible joint cannot be scored
    d = (gt_kp2d[:, :, None, :, :2] - pred_kp2d[:, None, :, :, :2]).norm(dim=-1)  # [B, G, P, K]
    d = torch.where(vis[:, :, None], d, 0)
    cost = d.sum(-1) / nvis.clamp(min=1)[..., None]
    cost = torch.where(gt_ok[:, :, None] & pred_ok[:, None], cost, torch.inf).to(torch.float64)
    pred_for_gt = linear_assignment(cost, row_counts=gc, col_counts=pc, max_cost=max_dist)
    return _finish(pred_for_gt, pred_ok, gt_ok)


def _spectral_norm_2d(diff):
    """Largest singular value of each [..., K, 2] matrix (numpy.linalg.norm(x, 2) for 2-D x), in
    closed form from the 2x2 Gram matrix."""
    a = (diff[..., 0] ** 2).sum(-1)
    b = (diff[..., 0] * diff[..., 1]).sum(-1)
    c = (diff[..., 1] ** 2).sum(-1)
    half = (a + c) / 2
    return torch.sqrt(half + torch.sqrt(((a - c) / 2) ** 2 + b * b))


def _box_iou_plus_one(p, g):
    """IoU of keypoint bounding boxes with the kit's '+1 pixel' area convention.
    p: [..., K, 2], g: [..., K, 2] broadcastable."""
    p0, p1 = p.amin(-2), p.amax(-2)
    g0, g1 = g.amin(-2), g.amax(-2)
    lo, hi = torch.maximum(p0, g0), torch.minimum(p1, g1)
    inter = (hi - lo + 1).clamp(min=0).prod(-1)
    area_p = (p1 - p0 + 1).prod(-1)
    area_g = (g1 - g0 + 1).prod(-1)
    return inter / (area_p + area_g - inter)


def match_greedy_agora(pred_kp2d, gt_kp2d, gt_visible=None, *, pred_counts=None, gt_counts=None,
                       gt_valid=None, iou_thresh=AGORA_IOU_THRESH) -> Matching:
    """The AGORA evaluation kit's greedy matcher (agora_evaluation/matching.py match_2d_greedy),
    reproduced rule by rule; ROMP/BEV's copies use ``iou_thresh=0.05`` and ``gt_visible``.

    - Pair cost: spectral norm (largest singular value) of the [K, 2] difference of the keypoints,
      restricted to the ground truth's visible joints when ``gt_visible`` is given (ROMP's copy;
      the AGORA kit uses all 24 joints: pass them and ``gt_visible=None``).
    - Pairs are visited cheapest first (ties in prediction-major order). A pair whose prediction
      and ground truth are both free and whose keypoint-box IoU (all joints, "+1 pixel" areas) is
      at least ``iou_thresh`` is a match. A pair below the IoU threshold increments a false-positive
      counter (even if one side is already matched); other pairs are skipped.
    - The walk stops once every ground truth is assigned or (matched predictions + counter) reaches
      the number of predictions. A ground truth with ``gt_valid`` False that comes up in a decisive
      pair is marked assigned without a match and is never a miss.
    - False positives are the predictions left unmatched; misses the valid ground truths left
      unmatched.
    """
    _check_keypoints(pred_kp2d, gt_kp2d, gt_visible)
    B, P, K, _ = pred_kp2d.shape
    G = gt_kp2d.shape[1]
    pc, gc, pred_ok, gt_ok = _masks(B, P, G, pred_counts, gt_counts, gt_valid, pred_kp2d.device)
    pk, gk = pred_kp2d[..., :2].double(), gt_kp2d[..., :2].double()
    diff = gk[:, :, None] - pk[:, None]  # [B, G, P, K, 2]
    if gt_visible is not None:
        diff = torch.where(gt_visible.bool()[:, :, None, :, None], diff, 0)
    cost = _spectral_norm_2d(diff).transpose(1, 2).cpu().numpy()  # [B, P, G]
    iou = _box_iou_plus_one(pk[:, :, None], gk[:, None]).cpu().numpy()  # [B, P, G]
    valid = gt_ok.cpu().numpy()
    pcn, gcn = pc.cpu().numpy(), gc.cpu().numpy()
    pred_for_gt = np.full((B, G), -1, dtype=np.int64)
    for b in range(B):
        n_pred, n_gt = int(pcn[b]), int(gcn[b])
        if n_pred == 0 or n_gt == 0:
            continue
        c = cost[b, :n_pred, :n_gt].ravel()
        order = np.argsort(c, kind="stable")  # argmin-repeatedly order, first index on ties
        pred_done = np.zeros(n_pred, bool)
        gt_done = np.zeros(n_gt, bool)
        fp_counter = 0
        k = 0
        while gt_done.sum() < n_gt and pred_done.sum() + fp_counter < n_pred and k < len(order):
            false_positive = False
            while k < len(order):  # the kit's inner search for a decisive pair
                p, g = divmod(int(order[k]), n_gt)
                k += 1
                ok = iou[b, p, g] >= iou_thresh
                if not pred_done[p] and not gt_done[g] and ok:
                    break
                if not ok:
                    false_positive = True
                    fp_counter += 1
                    break
            else:
                break
            if not valid[b, g]:
                gt_done[g] = True  # invalid ground truth: excluded, never a miss
            elif not false_positive:
                pred_for_gt[b, g] = p
                pred_done[p] = gt_done[g] = True
    return _finish(torch.from_numpy(pred_for_gt).to(pred_kp2d.device), pred_ok, gt_ok)


def match_nearest_center(pred_centers, gt_centers, *, pred_counts=None, gt_counts=None,
                         gt_valid=None) -> Matching:
    """ROMP's association: each valid ground truth takes the nearest predicted centre of its image
    (Euclidean, no threshold, shared predictions allowed). Misses happen only in images without
    any prediction, which is why ROMP's in-training numbers hide detection errors.

    pred_centers (Tensor[B, P, D]), gt_centers (Tensor[B, G, D]): centres in one unit (D = 2 or 3).
    """
    if pred_centers.dim() != 3 or gt_centers.dim() != 3 or pred_centers.shape[0] != gt_centers.shape[0] \
            or pred_centers.shape[-1] != gt_centers.shape[-1]:
        raise ValueError(f"centres must be [B, P, D] and [B, G, D], got {list(pred_centers.shape)} "
                         f"and {list(gt_centers.shape)}")
    B, P, _ = pred_centers.shape
    G = gt_centers.shape[1]
    _, _, pred_ok, gt_ok = _masks(B, P, G, pred_counts, gt_counts, gt_valid, pred_centers.device)
    d = (gt_centers[:, :, None] - pred_centers[:, None]).norm(dim=-1)  # [B, G, P]
    d = torch.where(pred_ok[:, None], d, torch.inf)
    best = d.argmin(-1) if P else torch.zeros(B, G, dtype=torch.int64, device=d.device)
    has_pred = pred_ok.any(-1)[:, None]
    pred_for_gt = torch.where(gt_ok & has_pred, best, -1)
    return _finish(pred_for_gt, pred_ok, gt_ok)
