"""Relative depth and age metrics of BEV (Sun et al., CVPR 2022) and its Relative Human benchmark.

Depth pairs (``romp/lib/evaluation/evaluation_matrix.py`` and
``simple_romp/evaluation/RH_evaluation/evaluation.py`` ``_calc_relative_depth_error_weak_``): for
people i < j of one image with known depth layers (smaller layer = closer), ``dd = z_j - z_i``
(predicted depth, metres) and ``did = layer_j - layer_i``. The pair is *equal* (did = 0), *closer*
(j in a nearer layer, did < 0) or *farther* (did > 0), and correct when ``|dd| < 0.2``,
``dd < -0.2`` or ``dd > 0.2`` respectively. Datasets with metric ground-truth depth define the
category from the ground-truth ``dz`` with a 0.3 m margin instead (ROMP ``romp/eval.py``).
PCRD (percentage of correct relative depth) = correct pairs / (pairs + penalty * missed people);
Relative Human uses a penalty of 0.3 per missed ground-truth person.

Age (BEV ``relative_loss.py`` bins over the predicted kid offset, the 11th shape coefficient):
adult (-0.05, 0.15], teen (0.15, 0.45], kid (0.45, 0.75], baby (0.75, 1]; outside all bins the
class is unknown (-1). Age accuracy scores 1 for the right class, 0.667 for an adjacent class and
0 otherwise (``evaluation_matrix.py``).
"""
from __future__ import annotations

import torch

DEPTH_THRESH = 0.2  # m: BEV's correctness margin for a depth pair
CATEGORY_THRESH = 0.3  # m: ground-truth dz margin that defines the category on metric-depth datasets
RH_MISS_PENALTY = 0.3  # Relative Human: each missed person adds 0.3 to the PCRD denominator

AGE_CLASSES = ("adult", "teen", "kid", "baby")
AGE_BINS = ((-0.05, 0.15), (0.15, 0.45), (0.45, 0.75), (0.75, 1.0))  # (low, high] per class
ADJACENT_CREDIT = 0.667  # ROMP's partial credit for an adjacent age class (written as 0.667, not 2/3)

EQUAL, CLOSER, FARTHER = 0, -1, 1


def depth_pairs(pred_depth, gt_layer, mask=None, *, thresh: float = DEPTH_THRESH, gt_depth=None,
                category_thresh: float = CATEGORY_THRESH):
    """Every pair (i < j) of people in each sample, its category and whether the prediction got it.

    Args:
        pred_depth (Tensor[B, N]): predicted depth of each person (metres, camera z).
        gt_layer (Tensor[B, N] int): ground-truth depth layer (smaller = closer); ignored when
            ``gt_depth`` is given.
        mask (Tensor[B, N] bool, optional): people that take part (matched, depth known).
        thresh: correctness margin in metres.
        gt_depth (Tensor[B, N], optional): metric ground-truth depth; the category is then
            equal if ``|dz| <= category_thresh``, closer if ``dz < -category_thresh``, else farther.
    Returns:
        (category, correct, valid): Tensor[B, N, N] int64 in {0 equal, -1 closer, +1 farther},
        Tensor[B, N, N] bool, Tensor[B, N, N] bool (i < j and both in ``mask``). Entries outside
        ``valid`` are meaningless. Not differentiable.
    """
    if pred_depth.dim() != 2 or gt_layer.shape != pred_depth.shape:
        raise ValueError(f"pred_depth and gt_layer must both be [B, N], got {list(pred_depth.shape)} "
                         f"and {list(gt_layer.shape)}")
    for name, t in (("mask", mask), ("gt_depth", gt_depth)):
        if t is not None and t.shape != pred_depth.shape:
            raise ValueError(f"{name} must be [B, N] = {list(pred_depth.shape)}, got {list(t.shape)}")
    B, N = pred_depth.shape
    m = torch.ones(B, N, dtype=torch.bool, device=pred_depth.device) if mask is None else mask.bool()
    dd = pred_depth[:, None, :] - pred_depth[:, :, None]  # [b, i, j] = z_j - z_i
    if gt_depth is None:
        category = torch.sign(gt_layer[:, None, :] - gt_layer[:, :, None]).long()
    else:
        dz = gt_depth[:, None, :] - gt_depth[:, :, None]
        category = torch.where(dz.abs() <= category_thresh, 0, torch.sign(dz)).long()
    correct = torch.where(category == EQUAL, dd.abs() < thresh,
                          torch.where(category == CLOSER, dd < -thresh, dd > thresh))
    upper = torch.ones(N, N, dtype=torch.bool, device=m.device).triu(1)
    valid = upper & m[:, :, None] & m[:, None, :]
    return category, correct, valid


def pair_involves(labels, value):
    """Tensor[B, N, N] bool: pairs (i, j) where person i or person j has ``labels == value``.
    labels (Tensor[B, N]), e.g. the age class of each person."""
    hit = labels == value
    return hit[:, :, None] | hit[:, None, :]


def pcrd(correct, valid, missed=0, miss_penalty: float = 0.0):
    """Percentage of correct relative depth, pooled over all valid pairs: a 0-d tensor in [0, 1].

    ``sum(correct & valid) / (sum(valid) + miss_penalty * missed)``; ``missed`` is the number of
    missed ground-truth people (int or tensor). NaN when the denominator is 0.
    """
    if correct.shape != valid.shape:
        raise ValueError(f"correct and valid must match, got {list(correct.shape)} and {list(valid.shape)}")
    num = (correct & valid).sum().double()
    den = valid.sum().double() + miss_penalty * torch.as_tensor(missed, dtype=torch.float64).sum()
    return num / den if den > 0 else torch.tensor(float("nan"), dtype=torch.float64)


def depth_pair_accuracy(category, correct, valid) -> dict:
    """Accuracy within each pair category (no miss penalty): ``{"equal", "closer", "farther"}`` ->
    (0-d tensor in [0, 1] or NaN without pairs, number of pairs)."""
    out = {}
    for name, cat in (("equal", EQUAL), ("closer", CLOSER), ("farther", FARTHER)):
        sel = valid & (category == cat)
        n = int(sel.sum())
        acc = (correct & sel).sum().double() / n if n else torch.tensor(float("nan"), dtype=torch.float64)
        out[name] = (acc, n)
    return out


def age_class_from_offset(offset):
    """Age class (0 adult, 1 teen, 2 kid, 3 baby, -1 outside all bins) from the kid offset,
    Tensor[...] int64 of the input's shape."""
    cls = torch.full(offset.shape, -1, dtype=torch.int64, device=offset.device)
    for c, (lo, hi) in enumerate(AGE_BINS):
        cls = torch.where((offset > lo) & (offset <= hi), c, cls)
    return cls


def age_accuracy(pred_class, gt_class, adjacent_credit: float = ADJACENT_CREDIT):
    """Per-person age score, Tensor[B] float64: 1 for the right class, ``adjacent_credit`` for a
    neighbouring class (|pred - gt| = 1), else 0. An unknown prediction (-1, outside all bins)
    scores 0, never partial credit next to class 0."""
    if pred_class.shape != gt_class.shape:
        raise ValueError(f"pred_class and gt_class must match, got {list(pred_class.shape)} and {list(gt_class.shape)}")
    diff = (pred_class.long() - gt_class.long()).abs()
    score = torch.where(diff == 0, 1.0, torch.where(diff == 1, adjacent_credit, 0.0)).double()
    return torch.where(pred_class < 0, 0.0, score)
