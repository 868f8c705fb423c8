"""Rotation conversions: axis-angle <-> matrix <-> 6D, batched over any leading dims.

All functions are pure torch, work in float32 and float64, keep the input's device and dtype and
are differentiable (``matrix_to_axis_angle`` is differentiable away from angle 0 and pi, where the
axis itself is undefined).

6D layout (Zhou et al., "On the Continuity of Rotation Representations in Neural Networks",
CVPR 2019, as used by SPIN/ROMP): the first two *columns* of R, stored row by row, i.e.
``x.view(..., 3, 2)`` holds ``R[..., :, :2]``. (pytorch3d stores the first two rows instead.)
"""
from __future__ import annotations

import torch
from torch import Tensor


def _check_last(x: Tensor, shape: tuple[int, ...], name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[x.dim() - len(shape):]) != shape or x.dim() < len(shape):
        raise ValueError(f"{name} must be [..., {', '.join(map(str, shape))}], got {list(x.shape)}")


def _skew(v: Tensor) -> Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula. ``axis_angle`` (Tensor[..., 3], radians) -> Tensor[..., 3, 3]."""
    _check_last(axis_angle, (3,), "axis_angle")
    t2 = (axis_angle * axis_angle).sum(-1)[..., None, None]
    # Below t2 = 1e-4 the 3-term series of sin(t)/t and (1 - cos t)/t^2 is exact to ~1e-14, and the
    # closed forms would divide by ~0 (and give NaN gradients at exactly 0).
    small = t2 < 1e-4
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = t2s.sqrt()
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    # 1 - cos t written as 2 sin^2(t/2) to avoid cancellation for small t in float32
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, 2 * torch.sin(t / 2) ** 2 / t2s)
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """Tensor[..., 3, 3] -> unit quaternion Tensor[..., 4] as (w, x, y, z) with w >= 0.

    Shepperd's method: of the four algebraically equal formulas, use the one whose divisor (the
    largest of 1 + trace, 1 + 2 R_ii - trace) is largest, so it stays accurate near angle pi.
    """
    _check_last(matrix, (3, 3), "matrix")
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    cands = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], dim=-2)  # [..., 4, 4]; row i is 4 q_i q
    diag = torch.diagonal(cands, dim1=-2, dim2=-1)
    best = diag.argmax(-1, keepdim=True)
    q = torch.take_along_dim(cands, best[..., None].expand(best.shape + (4,)), dim=-2).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(quaternion: Tensor) -> Tensor:
    """Unit quaternion (w, x, y, z) Tensor[..., 4] -> axis-angle Tensor[..., 3], angle in [0, pi]."""
    _check_last(quaternion, (4,), "quaternion")
    q = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    w, v = q[..., :1], q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    small = n < 1e-6
    ns = torch.where(small, torch.ones_like(n), n)
    # angle / n = 2 atan2(n, w) / n -> 2 / w for small n (w ~ 1 there)
    scale = torch.where(small, 2 / w.clamp_min(0.5), 2 * torch.atan2(ns, w) / ns)
    return v * scale


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Rotation matrices Tensor[..., 3, 3] -> axis-angle Tensor[..., 3] (angle in [0, pi])."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """6D (Tensor[..., 6], see module docstring) -> Tensor[..., 3, 3] by Gram-Schmidt.

    The first column is the normalised first 3-vector, the second is the second 3-vector made
    orthogonal to it and normalised, the third their cross product (det = +1).
    """
    _check_last(rot6d, (6,), "rot6d")
    x = rot6d.reshape(rot6d.shape[:-1] + (3, 2))
    eps = torch.finfo(rot6d.dtype).eps
    a1, a2 = x[..., 0], x[..., 1]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: Tensor) -> Tensor:
    """Tensor[..., 3, 3] -> 6D Tensor[..., 6] (the first two columns, row by row)."""
    _check_last(matrix, (3, 3), "matrix")
    return matrix[..., :, :2].reshape(matrix.shape[:-2] + (6,))


def rot6d_to_axis_angle(rot6d: Tensor) -> Tensor:
    """6D Tensor[..., 6] -> axis-angle Tensor[..., 3] (ROMP's ``rot6D_to_angular``)."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def axis_angle_to_rot6d(axis_angle: Tensor) -> Tensor:
    """Axis-angle Tensor[..., 3] -> 6D Tensor[..., 6]."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))
