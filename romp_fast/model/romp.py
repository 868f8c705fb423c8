"""``ROMPModel``: ResNet backbone + pyramid neck + CoordConv heads + result parser + SMPL.

ROMP (Sun et al., "Monocular, One-stage, Regression of Multiple 3D People", ICCV 2021): one
network maps an image to a body-centre heatmap, a camera map and an SMPL-parameter map; people
are read at the heatmap peaks. BEV's perspective camera (Sun et al., CVPR 2022) is the other
projection option. Protocols sections 1.3, 3.0, 3.1.

Projection choice for the CPU default (``projection="perspective"``, ``fov_deg=60``): the
synthetic scenes (``romp_fast.data.synthetic``) are rendered by a pinhole camera with FOV 60 deg
and people at 3-9 m, so their GT 2D joints are the *perspective* projection of the 3D joints.
With the contract's camera ``(s, ty, tx)`` the perspective model reproduces them exactly, while
ROMP's weak perspective (``projection="weak"``, still available) errs by the depth spread of the
body over its distance (a few per cent of the person's size), a floor ``P_KP2D`` could never go
below on this data.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from romp_fast.model import parser as _parser
from romp_fast.model.backbone import DEPTHS, ResNet, load_pretrained
from romp_fast.model.heads import Heads, Neck

# CPU defaults; ROMP's paper settings are backbone_depth 50, width 64, input_size 512, map_size 64
# (the engine's YAML presets set those). The defaults take ~0.12-0.15 s per training step (forward,
# parse, criterion, backward, Adam; batch 16 at 128 px, 2 shared threads; README model section).
MODEL_DEFAULTS: dict = {
    "backbone_depth": 10,      # 10, 18, 34, 50, 101, 152 (backbone.DEPTHS)
    "width": 16,               # stem channels (ResNet paper: 64)
    "input_size": 128,         # square input side, pixels (ROMP: 512)
    "map_size": 32,            # output map side (ROMP: 64); input_size / map_size in 4, 8, 16, 32
    "head_channels": 64,       # neck and head width
    "head_layers": 1,          # 3x3 conv blocks per head after the CoordConv input
    "projection": "perspective",  # "perspective" (BEV) or "weak" (ROMP); see the module docstring
    "fov_deg": 60.0,           # perspective camera FOV (BEV and the synthetic scenes: 60)
    "top_k": 16,               # peaks kept per image (ROMP: max_person = 64)
    "conf_thresh": 0.25,       # centre score threshold (ROMP argparse default 0.25; v1.yml 0.2, BEV 0.12)
    "nms_kernel": 5,           # max-pool NMS window (ROMP: 5)
    "init_cam_scale": 0.3,     # initial s: a person ~5.8 m away at FOV 60 (synthetic: 3-9 m)
    "cam_offset_from_cell": True,  # (ty, tx) relative to the detecting cell (heads.py docstring)
    "pretrained": None,        # ImageNet ResNet state dict for the backbone (same depth/width)
    "smpl_path": None,         # SMPL-format model file; None: the procedural model
}

# ImageNet statistics; ROMP normalises its input the same way before the ResNet.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _resolve(cfg: Mapping | None) -> dict:
    cfg = dict(cfg or {})
    bad = sorted(set(cfg) - set(MODEL_DEFAULTS))
    if bad:
        raise KeyError(f"unknown model config key(s) {bad}; valid keys: {sorted(MODEL_DEFAULTS)}")
    c = {**MODEL_DEFAULTS, **cfg}
    if c["backbone_depth"] not in DEPTHS:
        raise ValueError(f"backbone_depth must be one of {sorted(DEPTHS)}, got {c['backbone_depth']}")
    if c["projection"] not in ("perspective", "weak"):
        raise ValueError(f"projection must be 'perspective' or 'weak', got {c['projection']!r}")
    ins, ms = int(c["input_size"]), int(c["map_size"])
    if ms < 1 or ins % ms or ins // ms not in (4, 8, 16, 32) or ins % 32:
        raise ValueError(f"input_size must be a multiple of 32 and input_size / map_size one of "
                         f"4, 8, 16, 32; got input_size {ins}, map_size {ms}")
    if not 0 <= float(c["conf_thresh"]) < 1:
        raise ValueError(f"conf_thresh must be in [0, 1), got {c['conf_thresh']}")
    return c


class ROMPModel(nn.Module):
    """ROMP-style multi-person mesh regressor. Build with :func:`build_model`.

    ``forward(images [B, 3, H, W] in [0, 1]) -> {"center_map": [B, 1, S, S] probabilities,
    "cam_map": [B, 3, S, S] (s, ty, tx) with s > 0, "params_map": [B, 142, S, S]}`` with
    ``S = H / (input_size / map_size)``; the per-cell ROMP vector is ``cam_map ++ params_map``
    (cam 3, 6D global 6, 21 x 6D body 126, betas 10).

    The body model is not a registered sub-module: it follows ``.to()`` / ``.cuda()`` but its
    (fixed, ~18 MB) buffers stay out of ``state_dict`` and out of DDP's buffer broadcast.
    """

    def __init__(self, cfg: Mapping | None = None, body_model=None):
        super().__init__()
        c = _resolve(cfg)
        self.cfg = c
        self.backbone = ResNet(int(c["backbone_depth"]), int(c["width"]))
        if c["pretrained"]:
            load_pretrained(self.backbone, c["pretrained"])
        stride = int(c["input_size"]) // int(c["map_size"])
        self.neck = Neck(self.backbone.channels, int(c["head_channels"]), stride)
        self.heads = Heads(int(c["head_channels"]), int(c["head_channels"]), int(c["head_layers"]),
                           float(c["init_cam_scale"]), bool(c["cam_offset_from_cell"]))
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        if body_model is None:
            from romp_fast.body import BodyModel

            body_model = BodyModel(c["smpl_path"])
        if body_model.extra_regressor is None:
            raise ValueError("ROMPModel needs a body model with the extra regressor (SMPL-54 joints)")
        object.__setattr__(self, "_body", body_model)  # deliberately unregistered (class docstring)

    @property
    def body_model(self):
        """The ``romp_fast.body.BodyModel`` used for decoding."""
        return self._body

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._body._apply(fn, *args, **kwargs)
        return self

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"images must be [B, 3, H, W] with H, W multiples of 32, got {list(images.shape)}")
        x = (images - self.pixel_mean) / self.pixel_std
        center, cam, params = self.heads(self.neck(self.backbone(x)))
        return {"center_map": center, "cam_map": cam, "params_map": params}

    def _parse_kw(self) -> dict:
        c = self.cfg
        return dict(top_k=int(c["top_k"]), conf_thresh=float(c["conf_thresh"]),
                    nms_kernel=int(c["nms_kernel"]), projection=c["projection"], fov_deg=float(c["fov_deg"]))

    def parse_train(self, maps: Mapping[str, Tensor], batch: Mapping[str, Tensor],
                    with_verts: bool = True) -> dict:
        """Aligned predictions for the ``N`` GT people of ``batch`` with a valid centre.

        Each takes the nearest peak (top-K NMS peaks above ``conf_thresh``) of its own image, or its
        own GT centre cell when the image has none (``parser`` docstring). Returns
        ``batch_index [N]``, ``person_index [N]``, ``cell [N]`` (flat map cell), ``matched [N]``
        (bool, a peak was found), ``cam [N, 3]``, ``pose [N, 72]`` (axis-angle, hands 0),
        ``rotmats [N, 24, 3, 3]``, ``betas [N, 10]``, ``kp3d [N, 54, 3]`` (root-centred at the mid-hip
        of joints 45/46, metres), ``verts [N, 6890, 3]`` (root-centred; ``None`` without
        ``with_verts``), ``kp2d [N, 54, 2]`` (normalised). Differentiable in the maps.
        """
        return _parser.parse_train(maps, batch, self._body, with_verts=with_verts, **self._parse_kw())

    def parse_infer(self, maps: Mapping[str, Tensor], with_verts: bool = True) -> dict:
        """Padded detections per image, ``K = min(top_k, S * S)``, best first, padding zero:
        ``counts [B]`` int64, ``scores [B, K]``, ``centers [B, K, 2]`` (cell centres, normalised
        (x, y)), ``cam [B, K, 3]``, ``pose [B, K, 72]``, ``betas [B, K, 10]``, ``kp3d [B, K, 54, 3]``,
        ``kp2d [B, K, 54, 2]``, ``verts [B, K, 6890, 3]`` (only ``with_verts``)."""
        return _parser.parse_infer(maps, self._body, with_verts=with_verts, **self._parse_kw())


def build_model(cfg: Mapping | None = None, body_model=None) -> ROMPModel:
    """``ROMPModel`` from the config's "model" section (:data:`MODEL_DEFAULTS` fills the gaps;
    an unknown key raises ``KeyError`` listing the valid ones). ``body_model`` overrides
    ``smpl_path`` with an already built ``BodyModel`` (shared with the data, for instance)."""
    return ROMPModel(cfg, body_model)
