"""Joint angle errors over global joint rotations: MPJAE and PA-MPJAE, per sample.

- :func:`global_rotations` chains local rotations along a kinematic tree, ``G_0 = R_0`` and
  ``G_j = G_parent(j) R_j`` (the rotation part of SMPL's world transform, Loper et al. 2015, eq. 4;
  what the 3DPW challenge calls orientations).
- :func:`geodesic_angle` is the geodesic distance on SO(3), the angle of ``A B^T``
  (``|log(A B^T)|``, Huynh 2009's metric Phi_6; the 3DPW challenge takes the norm of
  ``cv2.Rodrigues(R_pred R_gt^T)``). It is computed as ``atan2(|vee(M - M^T)| / 2, (tr M - 1) / 2)``,
  accurate near 0 and pi where ``arccos`` of the trace loses half the digits.
- :func:`mpjae` is the weighted mean of those angles over joints (3DPW challenge MPJAE: 9 joints,
  degrees); :func:`pa_mpjae` first left-multiplies the predicted rotations by the rotation of the
  similarity transform that aligns the predicted joints with the ground-truth joints (the
  challenge's ``np.matmul(mats_procs, mats_pred)`` after Procrustes on the joints).

Rotations are [B, J, 3, 3] proper rotation matrices (not projected onto SO(3) here; evaluators
reading foreign matrices project them). Masks [B, J] are bool or non-negative weights; a sample with
no visible joint scores 0 and masked joints are ignored even when not finite. Differentiable in
``pred`` away from angles 0 and pi (``pa_mpjae``'s alignment is not differentiated).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from romp_fast import ops


def _check_rot(name, x, what="pred"):
    if x.dim() != 4 or tuple(x.shape[-2:]) != (3, 3):
        raise ValueError(f"{name}: {what} must be [B, J, 3, 3] rotation matrices, got {list(x.shape)}")


def global_rotations(local: torch.Tensor, parents) -> torch.Tensor:
    """Global rotations Tensor[..., J, 3, 3] from local ones ``local`` [..., J, 3, 3].

    ``parents`` (sequence of J ints, -1 for roots, each parent before its children), e.g.
    :data:`romp_fast.body.joints.SMPL_PARENTS`. One matrix product per joint, batched over ``...``.
    """
    parents = [int(p) for p in np.asarray(parents).reshape(-1)]
    if local.dim() < 3 or tuple(local.shape[-2:]) != (3, 3) or local.shape[-3] != len(parents):
        raise ValueError(f"local must be [..., {len(parents)}, 3, 3] for {len(parents)} parents, "
                         f"got {list(local.shape)}")
    bad = [j for j, p in enumerate(parents) if p >= j]
    if bad:
        raise ValueError(f"parents must list each parent before its children; joints {bad} do not")
    out = []
    for j, p in enumerate(parents):
        r = local[..., j, :, :]
        out.append(r if p < 0 else out[p] @ r)
    return torch.stack(out, dim=-3)


def geodesic_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (radians, in [0, pi]) of the rotation ``a b^T``; ``a``, ``b`` [..., 3, 3] -> [...]."""
    if a.shape[-2:] != (3, 3) or b.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must be [..., 3, 3], got {list(a.shape)} and {list(b.shape)}")
    m = a @ b.mT
    vee = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    cos = (m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1) / 2
    return torch.atan2(vee.norm(dim=-1) / 2, cos)


def mpjae(pred, target, mask=None, align=None, degrees: bool = True) -> torch.Tensor:
    """Mean per-joint angle error, Tensor[B] (degrees, or radians with ``degrees=False``).

    Args:
        pred, target (Tensor[B, J, 3, 3]): global joint rotations.
        mask (Tensor[B, J], optional): visibility (bool) or weights.
        align (Tensor[B, 3, 3], optional): rotation applied to every predicted rotation first
            (``align @ pred``), e.g. the Procrustes rotation for PA-MPJAE.
    """
    _check_rot("mpjae", pred)
    if target.shape != pred.shape:
        raise ValueError(f"mpjae: target must match pred {list(pred.shape)}, got {list(target.shape)}")
    B, J = pred.shape[:2]
    if mask is not None and mask.shape != (B, J):
        raise ValueError(f"mpjae: mask must be [B, J] = [{B}, {J}], got {list(mask.shape)}")
    if align is not None:
        if align.shape != (B, 3, 3):
            raise ValueError(f"mpjae: align must be [B, 3, 3] = [{B}, 3, 3], got {list(align.shape)}")
        pred = align[:, None] @ pred
    use = torch.ones(B, J, dtype=torch.bool, device=pred.device) if mask is None else mask > 0
    w = use.to(pred.dtype) if mask is None or mask.dtype == torch.bool else torch.where(use, mask.to(pred.dtype), 0)
    eye = torch.eye(3, dtype=pred.dtype, device=pred.device)
    ang = geodesic_angle(torch.where(use[..., None, None], pred, eye), torch.where(use[..., None, None], target, eye))
    W = w.sum(-1)
    err = (w * ang).sum(-1) / torch.where(W > 0, W, 1)
    return err * (180.0 / math.pi) if degrees else err


def pa_mpjae(pred, target, pred_joints, target_joints, mask=None, joint_mask=None,
             degrees: bool = True) -> torch.Tensor:
    """MPJAE after the Procrustes rotation of the joints, Tensor[B] (3DPW challenge MPJAE_PA).

    Args:
        pred, target (Tensor[B, J, 3, 3]): global joint rotations; mask (Tensor[B, J], optional).
        pred_joints, target_joints (Tensor[B, N, 3]): the joints the similarity transform is fitted
            on (:func:`romp_fast.ops.similarity_transform`; any root alignment is irrelevant to its
            rotation); joint_mask (Tensor[B, N], optional) selects the fitted joints.
    A collapsed predicted skeleton gets the identity rotation (the ops' degenerate convention,
    which is also the challenge's for an all-zero prediction).
    """
    _check_rot("pa_mpjae", pred)
    if pred_joints.shape[0] != pred.shape[0]:
        raise ValueError(f"pa_mpjae: pred_joints must have B = {pred.shape[0]} samples, got {list(pred_joints.shape)}")
    with torch.no_grad():
        R = ops.similarity_transform(pred_joints.detach().to(pred.dtype), target_joints.to(pred.dtype),
                                     joint_mask)[0]
    return mpjae(pred, target, mask, align=R, degrees=degrees)
