"""3D PCK (percentage of correct keypoints) at a threshold, the PCK curve and its AUC, per sample.

Definitions follow the 3DPW challenge evaluation (``evaluate.py`` of the ECCV 2020 3DPW workshop
kit, github.com/aymenmir1/3dpw-eval; ROMP ships a copy as ``romp/lib/evaluation/pw3d_eval``):

- a joint is correct when its error is **at most** the threshold (``errors <= THRESHOLD`` there);
- PCK of a sample = weighted fraction of its visible joints that are correct;
- AUC = integral of the linearly interpolated PCK curve over the threshold range with the threshold
  axis normalised to [0, 1]. The kit integrates ``np.interp`` with ``scipy.integrate.quad`` over
  ``arange(0, 200) / 199``; a piecewise linear curve has the trapezoid rule as its exact integral,
  which is what :func:`auc_from_curve` computes (quad only approximates it). For a range that does
  not start at 0 the axis is normalised by ``t_max - t_min``.

The challenge counts 12 major joints at 50 mm over 0..199 mm on root-aligned joints; which joints,
which alignment and which units are the evaluator's choice (DESIGN.md). ``threshold`` and
``thresholds`` are in the units of the inputs: the defaults (0.05, 0 ... 0.199) assume metres.

Conventions (as ``romp_fast.metrics.keypoints``): pred, target [B, J, 3]; mask [B, J] bool or
non-negative float weights; results are Tensor[B] (fractions in [0, 1]). A sample with no visible
joint scores 0; masked joints are ignored even when not finite; a sample with a visible joint whose
error is not finite (NaN input, invisible root) is NaN. Not differentiable (counts).
"""
from __future__ import annotations

import torch

from romp_fast.metrics.keypoints import _check, root_align

PCK_THRESHOLD = 0.05  # 50 mm (3DPW challenge PCK_THRESH = 50.0 in mm)


def default_thresholds(dtype=torch.float64, device=None) -> torch.Tensor:
    """0, 1, ..., 199 mm in metres: the 3DPW challenge's ``np.arange(AUC_MIN=0, AUC_MAX=200)``."""
    return torch.arange(200, dtype=dtype, device=device) / 1000


def _errors_and_weights(name, pred, target, mask, root):
    _check(name, pred, target, mask)
    if root is not None:
        pred, target = root_align(pred, target, root, mask)
    use = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device) if mask is None else mask > 0
    w = use.to(pred.dtype) if mask is None or mask.dtype == torch.bool else torch.where(use, mask.to(pred.dtype), 0)
    dist = torch.where(use[..., None], pred - target, 0).norm(dim=-1)  # masked joints: 0, weight 0
    # A visible joint with a non-finite error (an invisible root, a NaN input) makes the sample's
    # value unknown: NaN for that sample only, as mpjpe does.
    unknown = (use & ~torch.isfinite(dist)).any(-1)
    return dist, w, unknown


def _check_thresholds(thresholds, like):
    thr = torch.as_tensor(thresholds, dtype=like.dtype, device=like.device).reshape(-1)
    if thr.numel() == 0:
        raise ValueError("thresholds must not be empty")
    if not bool(torch.isfinite(thr).all()) or (thr.numel() > 1 and not bool((thr[1:] > thr[:-1]).all())):
        raise ValueError(f"thresholds must be finite and strictly increasing, got {thr.tolist()[:8]}...")
    return thr


def pck_curve(pred, target, mask=None, thresholds=None, root=None) -> torch.Tensor:
    """PCK of every sample at every threshold, Tensor[B, T] (fractions).

    Args:
        pred, target (Tensor[B, J, 3]): joints (e.g. metres).
        mask (Tensor[B, J], optional): visibility (bool) or weights.
        thresholds (Tensor[T] or sequence, increasing): in input units; default 0..0.199 (metres).
        root: alignment before measuring, see :func:`romp_fast.metrics.root_align`.
    Memory is O(B (J + T)): each error is binned once (searchsorted), then the bins are summed
    cumulatively, so no [B, J, T] comparison tensor is built.
    """
    err, w, unknown = _errors_and_weights("pck_curve", pred, target, mask, root)
    thr = default_thresholds(pred.dtype, pred.device) if thresholds is None else _check_thresholds(thresholds, pred)
    B, T = err.shape[0], thr.numel()
    # first k with thr[k] >= err: the joint is correct at thresholds k, k+1, ...; NaN goes to T
    first = torch.searchsorted(thr, torch.nan_to_num(err, nan=torch.inf).contiguous(), right=False)
    bins = torch.zeros(B, T + 1, dtype=pred.dtype, device=pred.device).scatter_add_(1, first, w)
    W = w.sum(-1, keepdim=True)
    curve = bins.cumsum(1)[:, :T] / torch.where(W > 0, W, 1)
    return torch.where(unknown[:, None], torch.nan, curve)


def pck(pred, target, mask=None, threshold: float = PCK_THRESHOLD, root=None) -> torch.Tensor:
    """Fraction of visible joints whose error is <= ``threshold`` (input units), Tensor[B]."""
    err, w, unknown = _errors_and_weights("pck", pred, target, mask, root)
    W = w.sum(-1)
    value = (w * (err <= threshold)).sum(-1) / torch.where(W > 0, W, 1)
    return torch.where(unknown, torch.nan, value)


def auc_from_curve(curve, thresholds) -> torch.Tensor:
    """Area under PCK curves ``curve`` [..., T] over ``thresholds`` [T], axis normalised to [0, 1].

    Exact integral of the linear interpolation (trapezoid rule) divided by ``t_max - t_min``; with
    one threshold the curve's only value is returned.
    """
    curve = torch.as_tensor(curve)
    thr = _check_thresholds(thresholds, curve)
    if curve.shape[-1] != thr.numel():
        raise ValueError(f"curve must be [..., T] with T = {thr.numel()} thresholds, got {list(curve.shape)}")
    if thr.numel() == 1:
        return curve[..., 0].clone()
    dt = thr[1:] - thr[:-1]
    area = ((curve[..., 1:] + curve[..., :-1]) / 2 * dt).sum(-1)
    return area / (thr[-1] - thr[0])


def auc(pred, target, mask=None, thresholds=None, root=None) -> torch.Tensor:
    """Per-sample area under the PCK curve, Tensor[B] in [0, 1] (see :func:`auc_from_curve`).

    The dataset AUC of the 3DPW challenge (AUC of the pooled PCK curve) equals the mean of these
    per-sample values when every sample has the same joint weights, since interpolation and
    integration are linear.
    """
    thr = default_thresholds(pred.dtype, pred.device) if thresholds is None else thresholds
    return auc_from_curve(pck_curve(pred, target, mask, thr, root), thr)
