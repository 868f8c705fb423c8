"""BEV relative losses: ordinal depth between people (``R_Depth``) and age offsets (``R_Age``).

Source: ROMP/BEV ``romp/lib/loss_funcs/relative_loss.py`` (``relative_depth_loss`` with
``dist_thresh=0.3``, ``relative_age_loss``, ``kid_offset_loss``), ``romp/lib/constants.py``
(``age_threshold``) and ``calc_loss._calc_param_loss`` (``R_Age = relative_age + 2 * kid_offset``).
ROMP gates both with ``matched_mask`` (mPCKh > 0.6): pass it ANDed into the validity masks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from romp_fast.losses._common import check_mask, masked_mean, safe

DEPTH_MARGIN = 0.3  # relative_depth_loss(dist_thresh=0.3): metres per depth-layer step
# constants.age_threshold: [low, centre, high] of the kid-offset bin per class
# (contract age_class 0 adult, 1 teen, 2 child, 3 baby == ROMP's depth_info[:, 0] ids)
AGE_BINS = ((-0.05, 0.0, 0.15), (0.15, 0.3, 0.45), (0.45, 0.6, 0.75), (0.75, 0.9, 1.0))
KID_OFFSET_WEIGHT = 2.0  # calc_loss: + kid_offset_loss(...) * 2


def ordinal_depth_loss(pred_depth: Tensor, depth_layer: Tensor, valid: Tensor,
                       margin: float = DEPTH_MARGIN, piecewise: bool = True) -> Tensor:
    """BEV's ``R_Depth``: scalar mean over images of the mean pair loss.

    Per image, for pairs i < j of people with known depth layers (smaller layer = closer), with
    ``dd = z_j - z_i`` (predicted camera-frame depth, metres) and ``dl = layer_j - layer_i``:
    same layer ``dd ** 2``; j closer (dl < 0) ``log(1 + exp(dd))`` while ``dd - dl * margin > 0``;
    j farther (dl > 0) ``log(1 + exp(-dd))`` while ``dd - dl * margin < 0`` (``piecewise=False``:
    BEV's ``Log`` variant, no gating). An image counts if it has at least one active pair.

    Args:
        pred_depth (Tensor[B, P]); depth_layer (Tensor[B, P] int); valid (Tensor[B, P] bool:
            ``depth_layer_valid`` and, in BEV, the matched mask).
    """
    if pred_depth.dim() != 2:
        raise ValueError(f"pred_depth must be [B, P], got {list(pred_depth.shape)}")
    v = check_mask("valid", valid, pred_depth.shape)
    if depth_layer.shape != pred_depth.shape:
        raise ValueError(f"depth_layer must be {list(pred_depth.shape)}, got {list(depth_layer.shape)}")
    z = safe(pred_depth, v)
    lay = torch.where(v, depth_layer, 0).to(z.dtype)
    dd = z[:, None, :] - z[:, :, None]  # [b, i, j] = z_j - z_i
    dl = lay[:, None, :] - lay[:, :, None]
    P = z.shape[1]
    upper = torch.ones(P, P, dtype=torch.bool, device=z.device).triu(1)
    pair = v[:, :, None] & v[:, None, :] & upper
    eq = pair & (dl == 0)
    cd = pair & (dl < 0)
    fd = pair & (dl > 0)
    if piecewise:
        gap = dd - dl * margin
        cd = cd & (gap > 0)
        fd = fd & (gap < 0)
    loss = torch.where(eq, dd ** 2, 0) + torch.where(cd, F.softplus(dd), 0) + torch.where(fd, F.softplus(-dd), 0)
    n = (eq | cd | fd).sum((1, 2))
    per_image = loss.sum((1, 2)) / n.clamp(min=1).to(z.dtype)
    return masked_mean(per_image, n > 0)


def age_loss(kid_offset: Tensor, age_class: Tensor, valid: Tensor, person_valid: Tensor | None = None,
             offset_target: Tensor | None = None, offset_valid: Tensor | None = None) -> Tensor:
    """BEV's ``R_Age``: ``relative_age_loss + 2 * kid_offset_loss``, scalar.

    ``relative_age_loss``: for a person of class c with predicted kid offset o (BEV's betas[10]):
    adult ``o ** 2``; teen / child / baby ``(o - centre_c) ** 2`` when ``o > high_c`` or
    ``o <= low_c`` (``AGE_BINS``), else 0. ROMP sums per class the *mean over all people*
    (unsupervised people count as zeros): the denominator is ``person_valid.sum()`` when given
    (ROMP-compatible), else the number of ``valid`` people. ``kid_offset_loss``: MSE to
    ``offset_target`` over ``offset_valid`` (0 when not given).

    Args:
        kid_offset (Tensor[...]); age_class (Tensor[...] int, 0 adult .. 3 baby); valid
        (Tensor[...] bool, ``age_class_valid`` and the matched mask).
    """
    lead = kid_offset.shape
    v = check_mask("valid", valid, lead)
    if age_class.shape != lead:
        raise ValueError(f"age_class must be {list(lead)}, got {list(age_class.shape)}")
    o = safe(kid_offset, v)
    cls = torch.where(v, age_class, -1)
    h = torch.zeros_like(o)
    for c, (low, centre, high) in enumerate(AGE_BINS):
        hinge = (o - centre) if c == 0 else torch.where((o > high) | (o <= low), o - centre, 0)
        h = torch.where(cls == c, hinge, h)
    n = (v if person_valid is None else check_mask("person_valid", person_valid, lead)).sum()
    loss = (h ** 2).sum() / n.clamp(min=1).to(o.dtype)
    if offset_target is not None:
        ov = (torch.ones_like(v) if offset_valid is None else check_mask("offset_valid", offset_valid, lead))
        d = safe(kid_offset, ov) - safe(offset_target, ov).to(o.dtype).detach()
        loss = loss + KID_OFFSET_WEIGHT * masked_mean(d ** 2, ov)
    return loss
