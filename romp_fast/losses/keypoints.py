"""Keypoint losses: ROMP's ``P_KP2D`` (2D, parent-relative leaves), ``MPJPE`` and ``PAMPJPE`` (3D).

Sources: ROMP ``romp/lib/loss_funcs/keypoints_loss.py`` (``batch_kp_2d_l2_loss``, ``calc_mpjpe``,
``calc_pampjpe``), ``romp/lib/loss_funcs/calc_loss.py`` (``_calc_keypoints_loss``: the 45/46
mid-hip alignment) and ``romp/lib/constants.py`` (``joint2D_tree``). All three reduce per person
with :func:`romp_fast.ops.masked_joint_error` and return the mean over supervised people.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from romp_fast import ops
from romp_fast.body import joints as J
from romp_fast.losses._common import check_mask, check_shape, masked_mean, safe

# ROMP constants.joint2D_tree: these leaves are supervised as offsets from their parent joint.
JOINT2D_TREE = {
    "L_Shoulder": ("Jaw", "Nose", "R_Eye", "L_Eye", "R_Ear", "L_Ear"),
    "L_Ankle": ("L_BigToe", "L_SmallToe", "L_Heel", "L_Toe_SMPL"),
    "R_Ankle": ("R_BigToe", "R_SmallToe", "R_Heel", "R_Toe_SMPL"),
}
# ROMP batch_kp_2d_l2_loss: `if isnan(loss).any() or (loss > 1000).any(): return 0`
KP2D_OUTLIER = 1000.0
# TRACE keypoints_loss.batch_kp_2d_l2_loss_old(top_limit=100): joint errors >= 100 are dropped
KP2D_TOP_LIMIT = 100.0


def _leaf_parents() -> np.ndarray:
    """parent[j] = SMPL-54 index of joint j's 2D parent, or -1 (supervised directly)."""
    parent = np.full(len(J.SMPL_54), -1, dtype=np.int64)
    for par, leaves in JOINT2D_TREE.items():
        parent[J.index("smpl54", *leaves)] = J.index("smpl54", par)[0]
    return parent


LEAF_PARENT_54 = _leaf_parents()


def _flatten(pred, target, valid, D, name):
    check_shape(f"{name} pred", pred, (None, D), f"[..., J, {D}]")
    if target.shape != pred.shape:
        raise ValueError(f"{name}: target must match pred {list(pred.shape)}, got {list(target.shape)}")
    v = check_mask(f"{name} valid", valid, pred.shape[:-1])
    Jn = pred.shape[-2]
    v = v.reshape(-1, Jn)
    t = safe(target.reshape(-1, Jn, D), v).to(pred.dtype).detach()
    return pred.reshape(-1, Jn, D), t, v


def kp2d_loss(pred: Tensor, target: Tensor, valid: Tensor, parent_relative: bool = True,
              zero_on_outlier: bool = True) -> Tensor:
    """ROMP's ``P_KP2D``: scalar mean over people with >= 1 supervised joint.

    Per person: mean over visible joints of the Euclidean distance in normalised [-1, 1] image
    coordinates. With ``parent_relative`` (ROMP; needs SMPL-54 joints) the face joints (Jaw, Nose,
    eyes, ears) are supervised as offsets from L_Shoulder and the foot joints (big/small toe, heel,
    SMPL toe) as offsets from their ankle, each visible only if its parent is too
    (``constants.joint2D_tree``). ``parent_relative=False`` supervises every joint directly (still a
    per-person mean; TRACE's flat per-joint variant is :func:`kp2d_joint_loss`).

    ``zero_on_outlier`` reproduces ROMP's guard: if any supervised person's loss is NaN or
    > 1000 the whole term is 0 (a fresh constant, no gradient). Not reproduced: ROMP also drops
    people whose (sentinel-padded) GT equals the prediction exactly; here they count with loss 0.

    Args:
        pred, target (Tensor[..., J, 2]): projected / GT joints; valid (Tensor[..., J] bool).
    """
    pred, target, vis = _flatten(pred, target, valid, 2, "kp2d_loss")
    if parent_relative:
        if pred.shape[1] != len(J.SMPL_54):
            raise ValueError(f"kp2d_loss: parent_relative needs SMPL-54 joints, got J = {pred.shape[1]}")
        par = torch.as_tensor(LEAF_PARENT_54, device=pred.device)
        leaf = par >= 0
        par = torch.where(leaf, par, torch.arange(len(par), device=pred.device))
        pred = pred - torch.where(leaf[:, None], pred[:, par], 0)
        target = target - torch.where(leaf[:, None], target[:, par], 0)
        vis = vis & (vis[:, par] | ~leaf)
    per = ops.masked_joint_error(pred, target, vis)
    person = vis.any(-1)
    if zero_on_outlier and person.any():
        p = per.detach()[person]
        if not bool(torch.isfinite(p).all()) or bool((p > KP2D_OUTLIER).any()):
            return pred.new_zeros(())
    return masked_mean(per, person)


def kp2d_joint_loss(pred: Tensor, target: Tensor, valid: Tensor, top_limit: float = KP2D_TOP_LIMIT) -> Tensor:
    """TRACE's 2D keypoint loss (``batch_kp_2d_l2_loss_old``; its ``P_KP2D`` and ``world_pj2D``):
    scalar mean over *all* visible joints of the batch (not per person) of the Euclidean distance,
    dropping joints whose error is not finite or >= ``top_limit`` (100).

    pred, target (Tensor[..., J, 2]); valid (Tensor[..., J] bool). A non-finite prediction is
    replaced before the distance, so it drops out without a NaN gradient.
    """
    pred, target, vis = _flatten(pred, target, valid, 2, "kp2d_joint_loss")
    vis = vis & torch.isfinite(pred.detach()).all(-1)
    dist = torch.linalg.vector_norm(safe(pred, vis) - target, dim=-1)
    keep = vis & (dist.detach() < top_limit)
    return masked_mean(dist, keep)


def _root(x: Tensor) -> Tensor:
    return x[:, list(J.ROOT_54)].mean(1, keepdim=True)


def mpjpe_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """ROMP's ``MPJPE`` loss in metres: scalar mean over people with >= 1 visible 3D joint.

    Both sides are centred at the mid-point of SMPL-54 joints 45/46 (R_Hip, L_Hip;
    ``calc_loss.align_inds_MPJPE``); the GT only when both hips are valid (contract kp3d is
    already centred there). Per person: mean over visible joints of the L2 error.

    Args:
        pred, target (Tensor[..., 54, 3]): metres; valid (Tensor[..., 54] bool).
    """
    pred, target, vis = _flatten(pred, target, valid, 3, "mpjpe_loss")
    hips = vis[:, list(J.ROOT_54)].all(-1)
    target = target - torch.where(hips[:, None, None], _root(target), 0)
    per = ops.masked_joint_error(pred - _root(pred), target, vis)
    return masked_mean(per, vis.any(-1))


def pampjpe_loss(pred: Tensor, target: Tensor, valid: Tensor, batch_intersection: bool = False) -> Tensor:
    """``PAMPJPE`` loss in metres: scalar mean over people with >= 1 visible 3D joint.

    Each person's prediction is aligned to its GT by the similarity transform fitted on its visible
    joints (:func:`romp_fast.ops.procrustes_align`), then the per-person mean error over those
    joints. ``batch_intersection=True`` is ROMP's rule (``calc_pampjpe``): fit and score only the
    joints visible in *every* supervised person of the batch.
    """
    pred, target, vis = _flatten(pred, target, valid, 3, "pampjpe_loss")
    person = vis.any(-1)
    if batch_intersection:
        common = (vis | ~person[:, None]).all(0)
        vis = common[None] & person[:, None]
        person = vis.any(-1)
    aligned = ops.procrustes_align(pred, target, vis)
    per = ops.masked_joint_error(aligned, target, vis)
    return masked_mean(per, person)
