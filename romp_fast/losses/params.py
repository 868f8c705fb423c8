"""SMPL parameter losses: ROMP's ``Pose``, ``Shape`` and ``Cam`` terms.

Sources: ROMP ``romp/lib/loss_funcs/params_loss.py`` (``batch_smpl_pose_l2_error``,
``batch_l2_loss``) and ``romp/lib/loss_funcs/calc_loss.py`` (``_calc_param_loss``: joint ranges,
``shape_pca_weight``, the /20 divisors); TRACE ``trace/lib/loss_funcs/calc_loss.py`` (/80 prior).
"""
from __future__ import annotations

import torch
from torch import Tensor

from romp_fast.body.rotations import axis_angle_to_matrix
from romp_fast.losses._common import check_mask, check_shape, masked_mean, safe

# calc_loss.Loss.shape_pca_weight (ROMP/BEV/TRACE, current version)
SHAPE_WEIGHTS = (1.0, 0.64, 0.32, 0.32, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16)
SHAPE_DIVISOR = 20.0        # calc_loss: norm(...).mean() / 20.
SHAPE_PRIOR_DIVISOR = 20.0  # calc_loss (ROMP/BEV): (betas[~mask, :10] ** 2).mean() / 20.
TRACE_SHAPE_PRIOR_DIVISOR = 80.0  # trace calc_loss: ... / 80.
POSE_JOINTS = 22            # global orientation + 21 body joints (params[:, 3:66])


def rotation_distance(pred: Tensor, target: Tensor) -> Tensor:
    """Frobenius norm ``|R_pred - R_gt|_F`` (ROMP ``batch_smpl_pose_l2_error``), Tensor[...].

    pred, target: Tensor[..., 3, 3]. Gradient 0 where they are equal.
    """
    return torch.linalg.vector_norm(pred - target, dim=(-2, -1))


def _as_matrices(pose: Tensor, joints: int, name: str) -> Tensor:
    """Axis-angle ``[..., >= 3 joints]`` or matrices ``[..., >= joints, 3, 3]`` -> ``[..., joints, 3, 3]``."""
    if pose.dim() >= 3 and pose.shape[-2:] == (3, 3):
        if pose.shape[-3] < joints:
            raise ValueError(f"{name} must have >= {joints} rotation matrices, got {list(pose.shape)}")
        return pose[..., :joints, :, :]
    if pose.shape[-1] < 3 * joints:
        raise ValueError(f"{name} must be axis-angle [..., >= {3 * joints}] or matrices "
                         f"[..., >= {joints}, 3, 3], got {list(pose.shape)}")
    return axis_angle_to_matrix(pose[..., :3 * joints].reshape(pose.shape[:-1] + (joints, 3)))


def pose_loss(pred_pose: Tensor, target_pose: Tensor, valid: Tensor,
              global_valid: Tensor | None = None) -> Tensor:
    """ROMP's ``Pose`` term: scalar.

    ``mean_n |R_gt,0 - R_pred,0|_F`` over people with ``global_valid`` (default ``valid``) plus
    ``mean_n mean_{j=1..21} |R_gt,j - R_pred,j|_F`` over people with ``valid``; hands (22, 23) are not
    supervised. Both sides go through rotation matrices, so axis-angle's 2 pi ambiguity is harmless.

    Args:
        pred_pose: axis-angle Tensor[..., >= 66] or rotation matrices Tensor[..., >= 22, 3, 3]
            (global orientation first, then the SMPL body joints).
        target_pose (Tensor[..., 72]): contract ``pose`` (axis-angle, radians).
        valid (Tensor[...] bool): contract ``pose_valid``.
    """
    check_shape("target_pose", target_pose, (None,), "[..., 72]")
    lead = target_pose.shape[:-1]
    v = check_mask("valid", valid, lead)
    g = v if global_valid is None else check_mask("global_valid", global_valid, lead)
    # unsupervised people are replaced before the conversion so their NaNs cannot reach the gradient
    pv = (v | g).reshape(lead + (1,) * (pred_pose.dim() - len(lead)))
    R_pred = _as_matrices(torch.where(pv, pred_pose, 0), POSE_JOINTS, "pred_pose")
    if R_pred.shape[:-3] != lead:
        raise ValueError(f"pred_pose leading dims {list(R_pred.shape[:-3])} differ from target's {list(lead)}")
    tgt = safe(target_pose, v | g).to(R_pred.dtype)
    R_gt = _as_matrices(tgt, POSE_JOINTS, "target_pose").detach()
    d = rotation_distance(R_pred, R_gt)  # [..., 22]
    return masked_mean(d[..., 0], g) + masked_mean(d[..., 1:].mean(-1), v)


def shape_loss(pred_betas: Tensor, target_betas: Tensor, valid: Tensor,
               person_valid: Tensor | None = None,
               prior_divisor: float = SHAPE_PRIOR_DIVISOR) -> Tensor:
    """ROMP's ``Shape`` term: scalar, supervised part plus small-shape prior.

    With GT (``valid``): ``mean_n |(beta_gt - beta_pred[:10]) * w|_2 / 20`` with ROMP's
    per-coefficient weights ``SHAPE_WEIGHTS``. Without GT (``person_valid & ~valid``):
    ``mean(beta_pred[:10] ** 2) / prior_divisor`` over those people and the 10 coefficients
    (ROMP/BEV 20, TRACE ``TRACE_SHAPE_PRIOR_DIVISOR`` = 80). The two are added.

    Args:
        pred_betas (Tensor[..., >= 10]); target_betas (Tensor[..., 10]); valid (Tensor[...] bool,
        contract ``betas_valid``); person_valid (Tensor[...] bool, default all): slots holding a
        supervised prediction.
    """
    check_shape("target_betas", target_betas, (10,), "[..., 10]")
    check_shape("pred_betas", pred_betas, (None,), "[..., >= 10]")
    if pred_betas.shape[-1] < 10 or pred_betas.shape[:-1] != target_betas.shape[:-1]:
        raise ValueError(f"pred_betas must be [{', '.join(map(str, target_betas.shape[:-1]))}, >= 10], "
                         f"got {list(pred_betas.shape)}")
    lead = target_betas.shape[:-1]
    v = check_mask("valid", valid, lead)
    p = (torch.ones_like(v) if person_valid is None else check_mask("person_valid", person_valid, lead))
    b = pred_betas[..., :10]
    w = torch.tensor(SHAPE_WEIGHTS, dtype=b.dtype, device=b.device)
    diff = safe(b, v) - safe(target_betas, v).to(b.dtype).detach()
    sup = masked_mean(torch.linalg.vector_norm(diff * w, dim=-1), v) / SHAPE_DIVISOR
    free = p & ~v
    sq = safe(b, free) ** 2
    prior = masked_mean(sq.sum(-1), free) / (10 * prior_divisor)  # mean over people x 10 coefficients
    return sup + prior


def cam_loss(pred_cam: Tensor, target_cam: Tensor, valid: Tensor) -> Tensor:
    """BEV/TRACE's ``Cam`` term (``batch_l2_loss``): ``mean_n |cam_gt - cam_pred|_2`` over ``valid``.

    pred_cam, target_cam (Tensor[..., 3]): normalised (s, ty, tx); valid: contract ``cam_valid``.
    """
    check_shape("pred_cam", pred_cam, (3,), "[..., 3]")
    if target_cam.shape != pred_cam.shape:
        raise ValueError(f"target_cam must match pred_cam {list(pred_cam.shape)}, got {list(target_cam.shape)}")
    v = check_mask("valid", valid, pred_cam.shape[:-1])
    diff = safe(pred_cam, v) - safe(target_cam, v).to(pred_cam.dtype).detach()
    return masked_mean(torch.linalg.vector_norm(diff, dim=-1), v)
