"""Neck and coordinate-aware heads: backbone features -> centre, camera and SMPL-parameter maps.

* Neck: a top-down feature pyramid (Lin et al., "Feature Pyramid Networks", CVPR 2017): 1x1
  laterals from every backbone stage at or above the output stride, nearest x2 up-sampling and
  addition from the coarsest stage down, one 3x3 conv. ROMP up-samples its ResNet-50 output with
  deconvolutions instead; the pyramid reaches the same stride (``input_size / map_size``) and
  keeps the fine stages' localisation, which the small CPU backbone needs.
* CoordConv (Liu et al., NeurIPS 2018; ROMP section 3.2 "coordinate-aware" heads): two channels
  with the normalised x, y of every cell in [-1, 1] are appended before each head's first conv.
* Heads: ``head_layers`` x (3x3 conv, BN, ReLU) then a 1x1 conv, one head per map as in ROMP
  (centre 1 channel, camera 3, SMPL parameters 6 + 21 x 6 + 10 = 142).

Output decoding (:meth:`Heads.forward`):

* centre map: sigmoid, so a probability; the final bias starts at ``-log((1 - 0.1) / 0.1)`` so
  every cell starts at 0.1 (prior-probability init, Lin et al., "Focal Loss for Dense Object
  Detection", ICCV 2017, section 3.3).
* camera map ``(s, ty, tx)`` in the sample contract's layout (BEV's order, ``romp_fast.data.contract``):
  ``s = 1.1 ** raw`` (ROMP's ``cam_maps[:, 0] = 1.1 ** cam_maps[:, 0]``, keeps the scale positive);
  with ``cell_offset`` (default) ``(ty, tx)`` are predicted relative to the cell's own normalised
  (y, x), CenterNet-style. ROMP regresses absolute ``(tx, ty)`` through the CoordConv channels;
  adding the coordinates explicitly gives the same function class but starts every person at the
  cell that detected it, so 2D keypoints are roughly placed from the first step.
* parameter map: 6D rotations (global orientation, then 21 body joints; layout of
  ``romp_fast.body.rotations``) and 10 betas. The last conv starts with tiny weights and biases
  equal to the mean output: global orientation = rotation by pi about x (an upright person facing
  the camera, camera y pointing down; ``romp_fast.data.poses.global_orient``), body joints =
  identity (SMPL's rest pose), betas 0, camera scale ``init_cam_scale``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from romp_fast.model.backbone import STRIDES

NUM_BODY_JOINTS = 21
PARAM_CHANNELS = 6 + NUM_BODY_JOINTS * 6 + 10  # 142; ROMP's vector is cam (3) + these
CAM_SCALE_BASE = 1.1                              # ROMP: s = 1.1 ** raw
CENTER_PRIOR = 0.1
# 6D of rotations, first two columns row by row (romp_fast.body.rotations): identity, Rx(pi)
ROT6D_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
ROT6D_UPRIGHT = (1.0, 0.0, 0.0, -1.0, 0.0, 0.0)


def cell_coords(h: int, w: int, like: Tensor) -> Tensor:
    """``[2, h, w]``: normalised (x, y) of every cell centre, ``2 (i + 0.5) / n - 1``."""
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / h) - 1
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / w) - 1
    return torch.stack([xs[None].expand(h, w), ys[:, None].expand(h, w)])


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Neck(nn.Module):
    """Top-down pyramid from backbone stages ``[c1..c4]`` to one map at ``out_stride``."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, out_stride: int):
        super().__init__()
        if out_stride not in STRIDES:
            raise ValueError(f"input_size / map_size must be one of {STRIDES}, got {out_stride}")
        self.first = STRIDES.index(out_stride)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels[self.first:])
        self.out = nn.Sequential(*_block(channels, channels))

    def forward(self, feats: list[Tensor]) -> Tensor:
        feats = feats[self.first:]
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = nn.functional.interpolate(x, size=f.shape[-2:], mode="nearest") + lat(f)
        return self.out(x)


class Head(nn.Module):
    """CoordConv head: append (x, y), ``layers`` x (3x3 conv, BN, ReLU), 1x1 conv to ``out``."""

    def __init__(self, cin: int, channels: int, out: int, layers: int):
        super().__init__()
        mods, c = [], cin + 2
        for _ in range(layers):
            mods += _block(c, channels)
            c = channels
        self.body = nn.Sequential(*mods)
        self.final = nn.Conv2d(c, out, 1)

    def forward(self, x: Tensor, coords: Tensor) -> Tensor:
        x = torch.cat([x, coords[None].expand(x.shape[0], -1, -1, -1)], 1)
        return self.final(self.body(x))

    def init_output(self, bias: Tensor, weight_std: float = 1e-3) -> None:
        nn.init.normal_(self.final.weight, std=weight_std)
        with torch.no_grad():
            self.final.bias.copy_(bias)


class Heads(nn.Module):
    """The three ROMP heads over neck features ``[B, C, S, S]``.

    ``forward(x) -> (center_map [B, 1, S, S] in (0, 1), cam_map [B, 3, S, S] decoded (s, ty, tx),
    params_map [B, 142, S, S])`` (see the module docstring for the decoding).
    """

    def __init__(self, cin: int, channels: int, layers: int = 1, init_cam_scale: float = 0.3,
                 cell_offset: bool = True):
        super().__init__()
        if not init_cam_scale > 0:
            raise ValueError(f"init_cam_scale must be > 0, got {init_cam_scale}")
        self.center = Head(cin, channels, 1, layers)
        self.cam = Head(cin, channels, 3, layers)
        self.params = Head(cin, channels, PARAM_CHANNELS, layers)
        self.cell_offset = cell_offset
        self.center.init_output(torch.tensor([-math.log((1 - CENTER_PRIOR) / CENTER_PRIOR)]), 0.01)
        self.cam.init_output(torch.tensor([math.log(init_cam_scale) / math.log(CAM_SCALE_BASE), 0.0, 0.0]))
        self.params.init_output(torch.tensor(ROT6D_UPRIGHT + ROT6D_IDENTITY * NUM_BODY_JOINTS + (0.0,) * 10))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        coords = cell_coords(x.shape[-2], x.shape[-1], x)
        center = torch.sigmoid(self.center(x, coords))
        raw = self.cam(x, coords)
        # 1.1 ** raw in float32 even under autocast: it spans ~e^+-2 and feeds a division later
        scale = torch.pow(CAM_SCALE_BASE, raw[:, :1].float()).to(raw.dtype)
        ty_tx = raw[:, 1:]
        if self.cell_offset:
            ty_tx = ty_tx + coords.flip(0)[None].to(raw.dtype)
        cam = torch.cat([scale, ty_tx], 1)
        return center, cam, self.params(x, coords)
