"""Camera models: 3D joints + a normalised camera ``(s, ty, tx)`` -> normalised [-1, 1] image points.

One camera layout everywhere: the sample contract's ``cam`` (``romp_fast.data.contract``), BEV's
``(s, ty, tx)`` order. ROMP's weak-perspective camera is ``(s, tx, ty)`` in its own code; the
order is only a convention of the learned map, so both projections read the same layout here and
the ``Cam`` loss compares like with like.

* :func:`weak_perspective_project` (ROMP, ``utils/projection.py``, protocols 3.1):
  ``p = s * X_xy + (tx, ty)``.
* :func:`perspective_project` (BEV/TRACE ``perspective_projection`` with ``FOV`` 60 deg, protocols
  3.1): the root sits at ``T = (tx / s, ty / s, 1 / (s tan(FOV/2)))`` (BEV: depth
  ``1 / (s tan(FOV/2))``, ``(X, Y) = (tx, ty) * depth * tan(FOV/2)``) and a pinhole camera with
  ``f = 1 / tan(FOV/2)`` in normalised units projects ``X + T``. Dividing numerator and
  denominator by the depth gives the form used here,

      p = (s * X_xy + (tx, ty)) / (1 + s * tan(FOV/2) * X_z),

  exact for the contract's camera (``data.geometry.cam_from_trans``), finite for any ``s > 0``,
  and equal to the weak-perspective camera when ``X_z = 0`` (so both read ``s`` the same way).
  BEV adds 1e-3 to ``s tan(FOV/2)`` to avoid dividing by zero; this form needs no such term, so
  the GT camera reproduces the GT 2D joints exactly. A joint closer than
  ``MIN_DEPTH_RATIO * depth`` to the camera plane (behind the camera) is clamped there.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_FOV_DEG = 60.0   # BEV's camera (f = 443.4 px at 512 px), as the synthetic scenes
MIN_DEPTH_RATIO = 1e-2


def _check(points: Tensor, cam: Tensor) -> None:
    if points.dim() < 2 or points.shape[-1] != 3:
        raise ValueError(f"points must be [..., J, 3], got {list(points.shape)}")
    if cam.shape[-1] != 3 or cam.shape[:-1] != points.shape[:-2]:
        raise ValueError(f"cam must be [{', '.join(map(str, points.shape[:-2]))}, 3] for points "
                         f"{list(points.shape)}, got {list(cam.shape)}")


def weak_perspective_project(points: Tensor, cam: Tensor) -> Tensor:
    """ROMP's weak-perspective camera, differentiable.

    Args:
        points (Tensor[..., J, 3]): root-centred joints, metres.
        cam (Tensor[..., 3]): ``(s, ty, tx)``.
    Returns:
        Tensor[..., J, 2]: ``s * (x, y) + (tx, ty)``, normalised image coordinates.
    """
    _check(points, cam)
    s = cam[..., None, 0:1]
    return s * points[..., :2] + cam[..., None, 1:].flip(-1)


def perspective_project(points: Tensor, cam: Tensor, fov_deg: float = DEFAULT_FOV_DEG) -> Tensor:
    """BEV's perspective camera (module docstring), differentiable.

    Args:
        points (Tensor[..., J, 3]): root-centred joints, metres (x right, y down, z forward).
        cam (Tensor[..., 3]): ``(s, ty, tx)`` with ``s = 1 / (depth * tan(FOV/2)) > 0``.
        fov_deg: full field of view of the square image.
    Returns:
        Tensor[..., J, 2] normalised image coordinates.
    """
    _check(points, cam)
    tan = math.tan(math.radians(fov_deg) / 2)
    s = cam[..., None, 0:1]
    denom = (1 + s * tan * points[..., 2:3]).clamp_min(MIN_DEPTH_RATIO)
    return (s * points[..., :2] + cam[..., None, 1:].flip(-1)) / denom


def project(points: Tensor, cam: Tensor, projection: str = "perspective",
            fov_deg: float = DEFAULT_FOV_DEG) -> Tensor:
    """:func:`perspective_project` or :func:`weak_perspective_project` by name."""
    if projection == "perspective":
        return perspective_project(points, cam, fov_deg)
    if projection == "weak":
        return weak_perspective_project(points, cam)
    raise ValueError(f"projection must be 'perspective' or 'weak', got {projection!r}")


def cam_to_translation(cam: Tensor, fov_deg: float = DEFAULT_FOV_DEG) -> Tensor:
    """Camera-frame root position ``[..., 3]`` (metres) of a camera ``(s, ty, tx)`` ``[..., 3]``:
    ``(tx / s, ty / s, 1 / (s tan(FOV/2)))`` (BEV ``convert_cam_to_3d_trans``; the inverse of
    ``data.geometry.cam_from_trans``). For a weak-perspective camera it is the perspective camera
    of the same ``s`` (the depth at which that ``s`` is the true scale)."""
    tan = math.tan(math.radians(fov_deg) / 2)
    s = cam[..., 0]
    return torch.stack([cam[..., 2] / s, cam[..., 1] / s, 1 / (s * tan)], -1)
