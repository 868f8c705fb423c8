"""Geometric and photometric augmentations that keep every contract field consistent.

Every function takes a contract sample (or a clip: every key with a leading ``T`` axis, the same
transform applied to each frame) and returns a new one; inputs are not modified.

* :func:`hflip` mirrors the image and the 3D scene (camera x -> -x): 2D/3D joints are mirrored and
  permuted with ``joints.flip_permutation("smpl54")``; the pose is permuted with the SMPL-24 flip
  permutation and its axis-angle y, z components negated (a mirror ``M = diag(-1, 1, 1)`` maps a
  rotation ``R`` to ``M R M``, axis ``(a_x, -a_y, -a_z)``; ROMP's ``flip_smpl_pose``); the principal
  point becomes ``W - cx``. Involution: ``hflip(hflip(s)) == s``.
* :func:`rotate` turns the image about the principal point by ``degrees``; with ``fx == fy`` this
  is exactly a camera roll, so 3D joints, ``trans`` and the global orientation rotate by ``Rz``.
* :func:`scale_crop` zooms by ``scale`` about a pixel centre (a crop-and-resize); 3D is unchanged
  and the intrinsics absorb the change (``fx *= s``, principal point moved).
* :func:`color_jitter`: brightness, contrast, saturation factors (torchvision's definitions).

After a geometric change, 2D joints leaving the image become invalid, centres are recomputed from
the 2D joints by ROMP's torso rule (moved with the image when a person has no valid 2D joint),
boxes become the axis-aligned extent of their moved corners (clipped), and ``cam`` is recomputed
from ``trans`` and the new intrinsics (invalid where ``trans`` is unknown, except for flips).
:class:`Augment` draws ROMP's training mix (protocols 1.2: flip, rotation by +-30 integer degrees,
zoom-crop with scale in [1.2, 2.4], colour jitter) from a seeded generator.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import Tensor

from romp_fast.body import joints as J
from romp_fast.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from romp_fast.data import geometry as G

_FLIP54 = torch.as_tensor(J.flip_permutation("smpl54"))
_FLIP24 = torch.as_tensor(J.flip_permutation("smpl24"))


def _per_frame(fn):
    def wrapper(sample, *args, **kwargs):
        if sample["image"].dim() == 4:
            frames = [fn({k: v[t] for k, v in sample.items()}, *args, **kwargs)
                      for t in range(sample["image"].shape[0])]
            return {k: torch.stack([f[k] for f in frames]) for k in frames[0]}
        return fn(dict(sample), *args, **kwargs)
    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


@_per_frame
def hflip(s: dict) -> dict:
    """Mirror the image left-right and every field with it (see the module docstring)."""
    W = s["image"].shape[-1]
    s["image"] = s["image"].flip(-1)
    mx = torch.tensor([-1.0, 1.0])
    s["kp2d"] = (s["kp2d"] * mx)[:, _FLIP54] * s["kp2d_valid"][:, _FLIP54, None]
    s["kp2d_valid"] = s["kp2d_valid"][:, _FLIP54]
    s["kp3d"] = (s["kp3d"] * torch.tensor([-1.0, 1.0, 1.0]))[:, _FLIP54]
    s["kp3d_valid"] = s["kp3d_valid"][:, _FLIP54]
    pose = s["pose"].reshape(-1, 24, 3)[:, _FLIP24] * torch.tensor([1.0, -1.0, -1.0])
    s["pose"] = pose.reshape(-1, 72)
    s["trans"] = s["trans"] * torch.tensor([-1.0, 1.0, 1.0])
    s["cam"] = s["cam"] * torch.tensor([1.0, 1.0, -1.0])
    s["centers"] = s["centers"] * mx
    b = s["boxes"]
    s["boxes"] = torch.stack([-b[:, 2], b[:, 1], -b[:, 0], b[:, 3]], -1)
    K = s["camK"].clone()
    K[0, 2] = W - K[0, 2]
    s["camK"] = K
    # +0.0 turns -0.0 into 0.0 so a double flip is bit-identical
    for k in ("kp2d", "kp3d", "pose", "trans", "cam", "centers", "boxes"):
        s[k] = s[k] + 0.0
    return s


def _warp(s: dict, A: Tensor, K_new: Tensor, R3: Optional[Tensor]) -> dict:
    """Apply the pixel map ``p' = A[:, :2] p + A[:, 2]`` to the image and 2D fields; ``R3`` rotates 3D."""
    _, H, W = s["image"].shape
    # output pixel -> source pixel, then to grid_sample's normalised coords (align_corners=False
    # matches the [i, i+1) pixel convention of geometry.py exactly)
    Ainv = torch.linalg.inv(torch.cat([A, torch.tensor([[0.0, 0.0, 1.0]])]))[:2]
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    src = torch.stack([xs, ys], -1) @ Ainv[:, :2].T + Ainv[:, 2]
    grid = G.to_norm(src, W, H)
    s["image"] = Fn.grid_sample(s["image"][None], grid[None], mode="bilinear", padding_mode="zeros",
                                align_corners=False)[0].clamp(0, 1)

    def move(norm):
        return G.to_norm(G.to_pixels(norm, W, H) @ A[:, :2].T + A[:, 2], W, H)

    kv = s["kp2d_valid"]
    kp = move(s["kp2d"])
    kv = kv & G.inside(kp)
    s["kp2d"], s["kp2d_valid"] = kp * kv[..., None], kv
    c, cv = G.person_centers(kp, kv)
    moved = move(s["centers"])
    has_kp = kv.any(1)
    cen = torch.where(has_kp[:, None], c, moved)
    cval = s["centers_valid"] & G.inside(cen)
    s["centers"], s["centers_valid"] = cen * cval[:, None], cval
    b = s["boxes"]
    corners = torch.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1)
    mc = move(corners)
    boxes, bval = G.clip_boxes(torch.cat([mc.amin(1), mc.amax(1)], -1))
    bval &= s["boxes_valid"]
    s["boxes"], s["boxes_valid"] = boxes * bval[:, None], bval
    if R3 is not None:
        s["kp3d"] = s["kp3d"] @ R3.T
        s["trans"] = s["trans"] @ R3.T
        pv = s["pose_valid"]
        go = matrix_to_axis_angle(R3 @ axis_angle_to_matrix(s["pose"][:, :3]))
        pose = s["pose"].clone()
        pose[:, :3] = torch.where(pv[:, None], go, pose[:, :3])
        s["pose"] = pose
    s["camK"] = K_new
    tv = s["trans_valid"]
    cam = G.cam_from_trans(s["trans"], K_new, W, H)
    s["cam_valid"] = s["cam_valid"] & tv
    s["cam"] = cam * s["cam_valid"][:, None]
    return s


@_per_frame
def rotate(s: dict, degrees: float) -> dict:
    """Rotate the image by ``degrees`` about the principal point (clockwise on screen for positive
    angles, since y points down) and the 3D scene by the matching camera roll."""
    K = s["camK"]
    if not torch.isclose(K[0, 0], K[1, 1]):
        raise ValueError(f"rotate needs fx == fy for an exact camera roll, got {K[0, 0]} and {K[1, 1]}")
    a = math.radians(degrees)
    R2 = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = K[:2, 2]
    A = torch.cat([R2, (c - R2 @ c)[:, None]], 1)
    R3 = torch.eye(3)
    R3[:2, :2] = R2
    return _warp(s, A, K.clone(), R3)


@_per_frame
def scale_crop(s: dict, scale: float, center: Optional[tuple[float, float]] = None) -> dict:
    """Zoom by ``scale`` (> 1 enlarges) about the pixel ``center`` (default the image centre),
    which lands on the image centre; the output keeps the image size."""
    _, H, W = s["image"].shape
    cx, cy = center if center is not None else (W / 2, H / 2)
    A = torch.tensor([[scale, 0.0, W / 2 - scale * cx], [0.0, scale, H / 2 - scale * cy]])
    K = s["camK"].clone()
    K[0, 0] *= scale
    K[1, 1] *= scale
    K[0, 2] = scale * K[0, 2] + A[0, 2]
    K[1, 2] = scale * K[1, 2] + A[1, 2]
    return _warp(s, A, K, None)


@_per_frame
def color_jitter(s: dict, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0) -> dict:
    """Multiply brightness, blend with the mean grey (contrast) and with the per-pixel grey
    (saturation); ITU-R 601 luma weights as torchvision's ``rgb_to_grayscale``."""
    img = (s["image"] * brightness).clamp(0, 1)
    lw = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    gray = (img * lw).sum(0, keepdim=True)
    img = ((img - gray.mean()) * contrast + gray.mean()).clamp(0, 1)
    gray = (img * lw).sum(0, keepdim=True)
    s["image"] = (gray + (img - gray) * saturation).clamp(0, 1)
    return s


class Augment:
    """ROMP's training augmentation draw (protocols 1.2), seeded per call.

    flip p=``flip_prob`` (0.5); rotation by an integer angle in [-30, 30] with p=``rotate_prob``
    (0.2); zoom-crop with scale U[1.2, 2.4] around a random person's centre with
    p=``crop_prob`` (0.0 by default, ROMP's ``shuffle_crop_ratio`` varies per config); colour
    jitter (factors U[0.9, 1.1]) with p=``color_prob`` (0.2).
    """

    def __init__(self, flip_prob=0.5, rotate_prob=0.2, crop_prob=0.0, color_prob=0.2):
        self.flip_prob, self.rotate_prob = flip_prob, rotate_prob
        self.crop_prob, self.color_prob = crop_prob, color_prob

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if rng.random() < self.crop_prob:
            H, W = sample["image"].shape[-2:]
            cv = sample["centers_valid"].reshape(-1, sample["centers_valid"].shape[-1])[0]
            idx = torch.nonzero(cv).flatten()
            c = (W / 2, H / 2)
            if len(idx):
                i = int(idx[rng.integers(len(idx))])
                cen = sample["centers"].reshape(-1, *sample["centers"].shape[-2:])[0, i]
                px = G.to_pixels(cen, W, H)
                c = (float(px[0]), float(px[1]))
            sample = scale_crop(sample, float(rng.uniform(1.2, 2.4)), c)
        if rng.random() < self.rotate_prob:
            sample = rotate(sample, float(rng.integers(-30, 31)))
        if rng.random() < self.flip_prob:
            sample = hflip(sample)
        if rng.random() < self.color_prob:
            b, c, s = rng.uniform(0.9, 1.1, 3)
            sample = color_jitter(sample, float(b), float(c), float(s))
        return sample


class Augmented(torch.utils.data.Dataset):
    """``dataset`` with :class:`Augment` applied; sample ``i`` uses ``default_rng([seed, i, epoch])``.
    Call :meth:`set_epoch` each epoch for fresh draws."""

    def __init__(self, dataset, augment: Optional[Augment] = None, seed: int = 0):
        self.dataset, self.augment, self.seed, self.epoch = dataset, augment or Augment(), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.augment(self.dataset[i], np.random.default_rng([self.seed, int(i), self.epoch]))
