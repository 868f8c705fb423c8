"""Camera and 2D ground-truth helpers shared by the synthetic scenes and the augmentations.

Pixel coordinates: pixel ``i`` spans ``[i, i + 1)``, so its centre is ``i + 0.5``; normalised
coordinates are ``2 u / W - 1`` (x) and ``2 v / H - 1`` (y), ROMP's [-1, 1] convention.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from romp_fast.body import joints as J

# ROMP's centre joints (image_base.py ``torso_ids``: Neck, Neck_LSP, R/L_Shoulder, Pelvis, R/L_Hip).
TORSO_54 = torch.as_tensor(J.index("smpl54", "Neck", "Neck_LSP", "R_Shoulder", "L_Shoulder",
                                   "Pelvis", "R_Hip", "L_Hip"))


def intrinsics(image_size: int, fov_deg: float = 60.0) -> Tensor:
    """Square-image pinhole ``K [3, 3]``: ``f = (S / 2) / tan(FOV / 2)``, principal point at the centre.

    FOV 60 deg is BEV's camera (f = 443.4 px at 512, protocols section 1.2).
    """
    f = image_size / 2 / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[f, 0, image_size / 2], [0, f, image_size / 2], [0, 0, 1]], dtype=torch.float32)


def project(points: Tensor, K: Tensor) -> Tensor:
    """Camera-frame points ``[..., 3]`` (metres, z > 0 in front) -> pixels ``[..., 2]``."""
    z = points[..., 2:3].clamp_min(1e-6)
    return (points[..., :2] / z) * torch.stack([K[0, 0], K[1, 1]]) + K[:2, 2]


def to_norm(px: Tensor, width: int, height: int) -> Tensor:
    return px * torch.tensor([2.0 / width, 2.0 / height], dtype=px.dtype) - 1


def to_pixels(norm: Tensor, width: int, height: int) -> Tensor:
    return (norm + 1) * torch.tensor([width / 2.0, height / 2.0], dtype=norm.dtype)


def cam_from_trans(trans: Tensor, K: Tensor, width: int, height: int) -> Tensor:
    """BEV normalised camera ``(s, ty, tx)`` ``[P, 3]`` from root positions ``trans [P, 3]``.

    ``s = 2 fx / (W tz) = 1 / (tz tan(FOV/2))``; ``(tx, ty)`` = the root's normalised projection, which
    for a centred principal point is BEV's ``tx / (tz tan)`` (protocols section 1.2) and stays exact
    after off-centre crops.
    """
    s = 2 * K[0, 0] / (width * trans[:, 2].clamp_min(1e-6))
    xy = to_norm(project(trans, K), width, height)
    return torch.stack([s, xy[:, 1], xy[:, 0]], -1)


def inside(norm: Tensor) -> Tensor:
    """Bool ``[...]``: normalised points ``[..., 2]`` inside the image."""
    return (norm.abs() <= 1).all(-1)


def person_centers(kp2d: Tensor, kp2d_valid: Tensor) -> tuple[Tensor, Tensor]:
    """ROMP's body centre ``[P, 2]`` and validity ``[P]`` from SMPL-54 2D joints.

    Mean of the visible torso joints (:data:`TORSO_54`); if none is visible, the mean of all visible
    joints; invalid if no joint is visible (``image_base._calc_center_``).
    """
    torso_v = kp2d_valid[:, TORSO_54].float()
    all_v = kp2d_valid.float()
    torso = (kp2d[:, TORSO_54] * torso_v[..., None]).sum(1) / torso_v.sum(1, keepdim=True).clamp_min(1)
    every = (kp2d * all_v[..., None]).sum(1) / all_v.sum(1, keepdim=True).clamp_min(1)
    use_torso = torso_v.sum(1) > 0
    c = torch.where(use_torso[:, None], torso, every)
    valid = all_v.sum(1) > 0
    return c * valid[:, None], valid


def clip_boxes(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Clip ``(x0, y0, x1, y1)`` normalised boxes to the image; valid if area stays positive."""
    b = boxes.clamp(-1, 1)
    valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b * valid[:, None], valid


def depth_layers(depth: Tensor, valid: Tensor, gap: float = 0.3) -> Tensor:
    """Ordinal depth layers ``[P]`` (0 nearest) from root depths: people sorted by depth share a
    layer while consecutive depths differ by at most ``gap`` metres (0.3 m, Relative Human's
    depth-category margin, protocols section 9)."""
    out = torch.zeros_like(depth, dtype=torch.int64)
    idx = torch.nonzero(valid).flatten()
    if len(idx) == 0:
        return out
    d, order = depth[idx].sort()
    layer = torch.cat([torch.zeros(1, dtype=torch.int64), (d.diff() > gap).long().cumsum(0)])
    out[idx[order]] = layer
    return out
