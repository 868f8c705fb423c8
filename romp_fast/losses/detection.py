"""Centre-map detection losses: ROMP's 2D and BEV/TRACE's 3D penalty-reduced focal loss.

Source: ROMP ``romp/lib/loss_funcs/maps_loss.py`` ``focal_loss`` / ``focal_loss_3D`` and TRACE
``trace/lib/loss_funcs/maps_loss.py`` ``focal_loss(max_loss_limit=0.8)`` (CornerNet, Law & Deng,
ECCV 2018, alpha = 2, beta = 4). Exactly ROMP's form: the prediction is clamped to
[1e-3, 1 - 1e-3] only inside the logarithms, the modulating factors use the raw prediction (ROMP's
centre head has no sigmoid in the loss), an image's loss is normalised by its number of positives
(+1e-4) and is ``-Q`` alone when it has none; the term is the mean over supervised images.
"""
from __future__ import annotations

import torch
from torch import Tensor

from romp_fast.losses._common import check_mask, masked_mean, safe

CLAMP = 1e-3        # maps_loss.focal_loss: torch.clamp(pred, min=1e-3, max=1-1e-3)
ALPHA, BETA = 2, 4  # CornerNet exponents, as in maps_loss.focal_loss
POS_EPS = 1e-4      # maps_loss.focal_loss: / (num_pos + 1e-4)
TRACE_MAX_IMAGE_LOSS = 0.8  # trace maps_loss.focal_loss(max_loss_limit=0.8), divided by 4 until below


def _focal_terms(pred: Tensor, target: Tensor):
    pos = target == 1
    neg = target < 1
    p_log = pred.clamp(CLAMP, 1 - CLAMP)
    pos_term = torch.where(pos, torch.log(p_log) * (1 - pred) ** ALPHA, 0)
    neg_term = torch.where(neg, torch.log(1 - p_log) * pred ** ALPHA * (1 - target) ** BETA, 0)
    return pos, pos_term, neg_term


def _per_image(P: Tensor, Q: Tensor, num_pos: Tensor) -> Tensor:
    has_pos = num_pos > 0
    return torch.where(has_pos, -(P + Q) / (num_pos.to(P.dtype) + POS_EPS), -Q)


def _reduce(loss: Tensor, image_valid: Tensor, max_image_loss: float | None) -> Tensor:
    if max_image_loss is not None:
        # TRACE: `while (loss > limit).any(): loss[loss > limit] /= 4`; bounded so an inf cannot spin
        for _ in range(128):
            over = image_valid & (loss.detach() > max_image_loss)
            if not bool(over.any()):
                break
            loss = torch.where(over, loss / 4, loss)
    return masked_mean(loss, image_valid)


def _prepare(name, pred, target, image_valid, ndim):
    if pred.dim() == ndim + 1 and pred.shape[1] == 1:
        pred, target = pred[:, 0], target[:, 0] if target.dim() == ndim + 1 else target
    if pred.dim() != ndim or target.shape != pred.shape:
        want = "[B, H, W] (or [B, 1, H, W])" if ndim == 3 else "[B, D, H, W]"
        raise ValueError(f"{name}: pred and target must be {want} of equal shape, got "
                         f"{list(pred.shape)} and {list(target.shape)}")
    B = pred.shape[0]
    valid = (torch.ones(B, dtype=torch.bool, device=pred.device) if image_valid is None
             else check_mask("image_valid", image_valid, (B,)))
    # masked images are replaced by a finite dummy so that NaN there cannot reach the gradient
    return safe(pred, valid, 0.5), safe(target, valid, 0.0), valid


def centermap_focal_loss(pred: Tensor, target: Tensor, image_valid: Tensor | None = None,
                         max_image_loss: float | None = None) -> Tensor:
    """ROMP's ``CenterMap`` term: scalar, mean over images with ``image_valid``.

    Args:
        pred (Tensor[B, H, W] or [B, 1, H, W]): predicted centre heatmap (probabilities, no sigmoid
            applied here).
        target (same shape): GT heatmap, exactly 1 at the centre cells.
        image_valid (Tensor[B] bool, optional): images whose people are all annotated
            (the contract's ``all_annotated``).
        max_image_loss: TRACE's cap (``TRACE_MAX_IMAGE_LOSS`` = 0.8): an image loss above it is
            divided by 4 until it is not; ``None`` (ROMP/BEV) disables it.
    Differentiable in ``pred``.
    """
    pred, target, valid = _prepare("centermap_focal_loss", pred, target, image_valid, 3)
    pos, pos_term, neg_term = _focal_terms(pred, target)
    loss = _per_image(pos_term.sum((-1, -2)), neg_term.sum((-1, -2)), pos.sum((-1, -2)))
    return _reduce(loss, valid, max_image_loss)


def centermap3d_focal_loss(pred: Tensor, target: Tensor, image_valid: Tensor | None = None) -> Tensor:
    """BEV/TRACE's ``CenterMap_3D`` term (``maps_loss.focal_loss_3D``): scalar.

    Same terms as :func:`centermap_focal_loss` over a ``[B, D, H, W]`` volume, but the positive and
    negative sums are taken over H, W and *averaged* over the D depth bins, while the positive count
    is over the whole volume (ROMP's exact normalisation). ``image_valid``: BEV's
    ``valid_centermap3d_mask`` (TRACE: and ``all_annotated``).
    """
    pred, target, valid = _prepare("centermap3d_focal_loss", pred, target, image_valid, 4)
    pos, pos_term, neg_term = _focal_terms(pred, target)
    loss = _per_image(pos_term.sum((-1, -2)).mean(-1), neg_term.sum((-1, -2)).mean(-1),
                      pos.sum((-1, -2, -3)))
    return _reduce(loss, valid, None)
