"""``SyntheticScenes``: rendered multi-person scenes with exact ground truth for every contract key.

Sample ``i`` is a pure function of ``(seed, i)`` (its own ``numpy.random.default_rng([seed, i])``),
so any index can be drawn in any worker in any order.

Scene: ``1..max_people`` bodies with joint-limited poses (``romp_fast.data.poses``), betas
~ N(0, 1) clipped to +-2.5, random yaw in [-pi, pi) and +-8 deg tilt, standing at depth
U(3, 9) m with the root projecting into the middle of the image. Camera: pinhole, x right, y down,
z forward, principal point at the image centre, FOV 60 deg, i.e. ``f = (S/2) / tan(30 deg)``
(221.7 px at S = 256, BEV's 443.4 px at 512). At S = 256 a standing adult is ~45-125 px tall.
Rendering: z-buffered, flat-shaded triangles coloured by body part (argmax skinning weight, one
palette colour per SMPL joint, a per-person tint) over a random background (``render``).

Ground truth: 3D joints from the body model's ``joints54`` (root-centred at the mid-hip, ``trans``
the root's camera position), 2D joints by projecting the camera-frame joints (visible = inside the
image), centres by ROMP's torso rule, boxes = the projected mesh's extent clipped to the image,
``cam`` per BEV, ``depth_layer`` by 0.3 m depth gaps; all bodies are adult-sized (age class 0) and
every body is annotated (``all_annotated``). ``clip_length=T`` returns clips (every key with a
leading ``T`` axis): poses interpolate between two joint-limited draws with a smoothstep, bodies
walk at 0.3-1.5 m/s (30 fps) and turn smoothly; ``track_id`` stays fixed per body.
"""
from __future__ import annotations

import colorsys
import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from romp_fast.data import geometry as G
from romp_fast.data import poses as P
from romp_fast.data.contract import empty_sample
from romp_fast.data.render import background, flat_shade, rasterize

FOV_DEG = 60.0
DEPTH_RANGE = (3.0, 9.0)
FPS = 30.0


def _palette() -> np.ndarray:
    # Golden-ratio hue steps give 24 distinguishable part colours.
    return np.array([colorsys.hsv_to_rgb((0.61803 * k) % 1.0, 0.65, 0.95) for k in range(24)],
                    dtype=np.float32)


class SyntheticScenes(torch.utils.data.Dataset):
    """Rendered multi-person scenes following ``romp_fast.data.contract``.

    Args:
        length: number of samples.
        image_size: square image side ``S`` (pixels).
        max_person: padded person slots ``P``.
        max_people: most bodies per scene (default ``min(4, max_person)``); at least 1.
        seed: dataset seed; sample ``i`` depends only on ``(seed, i)``.
        body_model: a ``romp_fast.body.BodyModel`` with the extra regressor (default: the
            procedural model, built lazily in each worker).
        clip_length: ``None`` for images, ``T`` for clips of ``T`` frames.
    """

    def __init__(self, length: int, image_size: int = 256, max_person: int = 8,
                 max_people: Optional[int] = None, seed: int = 0, body_model=None,
                 clip_length: Optional[int] = None):
        if max_person < 1:
            raise ValueError(f"max_person must be >= 1, got {max_person}")
        self.length = int(length)
        self.image_size = int(image_size)
        self.max_person = int(max_person)
        self.max_people = min(max_people or min(4, max_person), max_person)
        self.seed = int(seed)
        self.clip_length = clip_length
        self._body = body_model
        self._faces = None
        self.K = G.intrinsics(self.image_size, FOV_DEG)

    def __len__(self) -> int:
        return self.length

    def __getstate__(self):  # workers rebuild the body model lazily instead of pickling it
        d = dict(self.__dict__)
        if d["_body"] is not None and getattr(d["_body"], "path", None) is not None:
            d["_body_path"] = d["_body"].path
        d["_body"], d["_faces"] = None, None
        return d

    @property
    def body(self):
        if self._body is None:
            from romp_fast.body import BodyModel

            path = self.__dict__.get("_body_path")
            self._body = BodyModel(path)
        if self._faces is None:
            if self._body.extra_regressor is None:
                raise ValueError("SyntheticScenes needs a body model with the extra (SMPL-54) regressor")
            self._faces = self._body.faces.long()
            part = self._body.smpl.lbs_weights.argmax(1)
            self._face_part = part[self._faces[:, 0]]
        return self._body

    # ------------------------------------------------------------------ scene sampling
    def _scene(self, rng: np.random.Generator, T: int):
        """Per-frame SMPL parameters: pose [T, K, 72], betas [K, 10], root [T, K, 3], ids [K]."""
        S, f = self.image_size, float(self.K[0, 0])
        k = int(rng.integers(1, self.max_people + 1))
        betas = np.clip(rng.normal(0, 1, size=(k, 10)), -2.5, 2.5)
        e0 = P.sample_euler(rng, k)
        e1 = P.sample_euler(rng, k) if T > 1 else e0
        yaw0 = rng.uniform(-np.pi, np.pi, k)
        yaw_rate = rng.uniform(-1.0, 1.0, k)  # rad/s
        pitch = np.radians(rng.uniform(-8, 8, k))
        roll = np.radians(rng.uniform(-8, 8, k))
        z = rng.uniform(*DEPTH_RANGE, k)
        u = rng.uniform(0.15, 0.85, k) * S
        v = rng.uniform(0.4, 0.65, k) * S
        root0 = np.stack([(u - S / 2) * z / f, (v - S / 2) * z / f, z], -1)
        speed = rng.uniform(0.3, 1.5, k)
        heading = rng.uniform(-np.pi, np.pi, k)
        vel = np.stack([speed * np.cos(heading), np.zeros(k), speed * np.sin(heading)], -1)
        ids = rng.choice(100000, size=k, replace=False)
        t = np.arange(T) / FPS
        w = np.linspace(0, 1, T) if T > 1 else np.zeros(1)
        w = w * w * (3 - 2 * w)  # smoothstep: zero velocity at the ends
        euler = e0[None] + w[:, None, None, None] * (e1 - e0)[None]  # [T, k, 24, 3], inside limits
        body = P.euler_to_axis_angle(euler).reshape(T, k, 72)
        go = P.global_orient((yaw0[None] + yaw_rate[None] * t[:, None]).ravel(),
                             np.tile(pitch, T), np.tile(roll, T)).reshape(T, k, 3)
        body[:, :, :3] = go
        root = root0[None] + vel[None] * t[:, None, None]
        root[..., 2] = np.maximum(root[..., 2], 1.5)
        return body, betas, root, ids

    # ------------------------------------------------------------------ one frame
    def _frame(self, rng, joints_rc: Tensor, verts_rc: Tensor, pose: Tensor, betas: Tensor,
               root: Tensor, ids: np.ndarray, frame_index: int, tint: Tensor, is_clip: bool):
        S, K, Pm = self.image_size, self.K, self.max_person
        k = joints_rc.shape[0]
        out = empty_sample(Pm, (S, S))
        out["camK"] = K.clone()
        out["frame_index"] = torch.tensor(frame_index, dtype=torch.int64)
        out["all_annotated"] = torch.tensor(True)

        verts = verts_rc + root[:, None]
        F = self._faces.shape[0]
        tri = verts[:, self._faces].reshape(k * F, 3, 3)
        tri_px = G.project(tri, K)
        face = rasterize(tri_px, tri[..., 2], S, S)
        base = (torch.from_numpy(_palette())[self._face_part][None] * tint[:, None]).reshape(k * F, 3)
        rgb = flat_shade(tri, base.clamp(0, 1))
        img = background(rng, S, S)
        drawn = face >= 0
        img[:, drawn] = rgb[face[drawn]].T
        out["image"] = img

        cam_j = joints_rc + root[:, None]
        kp2d = G.to_norm(G.project(cam_j, K), S, S)
        kv = G.inside(kp2d) & (cam_j[..., 2] > 0)
        vpx = G.to_norm(G.project(verts, K), S, S)
        boxes, bvalid = G.clip_boxes(torch.cat([vpx.amin(1), vpx.amax(1)], -1))
        centers, cvalid = G.person_centers(kp2d, kv)
        sl = slice(0, k)
        out["kp2d"][sl] = kp2d * kv[..., None]
        out["kp2d_valid"][sl] = kv
        out["kp3d"][sl] = joints_rc
        out["kp3d_valid"][sl] = True
        out["pose"][sl] = pose
        out["betas"][sl] = betas
        out["trans"][sl] = root
        out["cam"][sl] = G.cam_from_trans(root, K, S, S)
        out["centers"][sl], out["centers_valid"][sl] = centers, cvalid
        out["boxes"][sl], out["boxes_valid"][sl] = boxes, bvalid
        for key in ("pose_valid", "betas_valid", "trans_valid", "cam_valid", "person_valid",
                    "depth_layer_valid", "age_class_valid"):
            out[key][sl] = True
        out["depth_layer"][sl] = G.depth_layers(root[:, 2], torch.ones(k, dtype=torch.bool))
        out["age_class"][sl] = 0
        out["track_id"][sl] = torch.from_numpy(ids.astype(np.int64))
        out["track_id_valid"][sl] = is_clip
        return out

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, int(index)])
        T = self.clip_length or 1
        body = self.body
        pose, betas, root, ids = self._scene(rng, T)
        k = len(ids)
        tint = torch.from_numpy(rng.uniform(0.75, 1.1, size=(k, 3)).astype(np.float32))
        pose_t = torch.from_numpy(pose.astype(np.float32)).reshape(T * k, 72)
        betas_t = torch.from_numpy(betas.astype(np.float32))
        with torch.no_grad():
            res = body(pose_t, betas_t.repeat(T, 1), root_align=True)
        J = res.joints54.reshape(T, k, 54, 3)
        V = res.vertices.reshape(T, k, -1, 3)
        root_t = torch.from_numpy(root.astype(np.float32))
        frames = [self._frame(rng, J[t], V[t], pose_t.reshape(T, k, 72)[t], betas_t, root_t[t],
                              ids, t, tint, self.clip_length is not None) for t in range(T)]
        if self.clip_length is None:
            return frames[0]
        return {key: torch.stack([fr[key] for fr in frames]) for key in frames[0]}


def focal_length(image_size: int, fov_deg: float = FOV_DEG) -> float:
    """Focal length in pixels of the synthetic camera."""
    return image_size / 2 / math.tan(math.radians(fov_deg) / 2)
