"""ROMP's body-centre heatmap ground truth (``romp/lib/maps_utils/centermap.py``, protocols 3.2).

For a map of side ``S`` and a person whose box is ``(h, w)`` in normalised units (the full image
is 2 x 2):

* radius ``r = floor(S/16 * ||(h, w) / 2||_2 + S/32)`` (ROMP's ``_calc_radius_``; the ``uint8`` cast
  there truncates, i.e. floors, for these positive values);
* a Gaussian window of diameter ``d = 2r + 1``, ``sigma = d / 6``, value ``exp(-(dx^2 + dy^2) /
  (2 sigma^2))`` with values below ``eps * max`` set to 0 (CenterNet's ``gaussian2D``), written with an
  element-wise max over people; the centre cell ``(int((x + 1) / 2 * S), int((y + 1) / 2 * S))`` is
  set to exactly 1; centres outside the map are skipped;
* collision-aware representation (CAR, ROMP paper section 3.3): people are visited in order; if the
  centres of person ``i`` and its nearest later person ``j > i`` are closer than
  ``(r_i + r_j + 1) / S * 2``, with ``dist = ||c_j - c_i|| + 1e-4`` both move apart by
  ``offset = |(least - dist) / dist| * (c_j - c_i + 1e-4) * 0.2`` (``c_i -= offset``,
  ``c_j += offset``); then the centres are clipped to [-1, 1] and exact +-1 become +-0.96.
  ROMP pairs a person with the first other person within ``2 * 64 / 512``; its test also counts the
  person itself (always true, protocols section 9 "quirks"); here only distinct people pair, each
  pair at most once, and the partner is the nearest later person within the collision distance
  (decided: fix, documented here). Centres move sequentially, so later pairs see earlier pushes.

:func:`gaussian_radius` is CornerNet's radius (the box may shift by ``r`` and keep IoU >=
``min_overlap``; Law & Deng 2018, as written in the CenterNet code) for callers that want the
detection-style radius instead of ROMP's adaptive one (``radius="cornernet"``).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor


def romp_radius(box_hw: np.ndarray, map_size: int) -> np.ndarray:
    """ROMP's adaptive radius ``[N]`` (int) from normalised box sizes ``[N, 2]`` (h, w)."""
    box_hw = np.asarray(box_hw, dtype=np.float64).reshape(-1, 2)
    scale = np.linalg.norm(box_hw / 2, axis=1)
    return np.floor(scale * (map_size / 16.0) + map_size / 32.0).astype(np.int64)


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's Gaussian radius for a box of ``height x width`` (map cells): the smallest of the
    three quadratic roots (both corners inside, both outside, one of each) that keep IoU >=
    ``min_overlap``. As in the public CenterNet code, each root is ``(b + sqrt(b^2 - 4ac)) / 2``."""
    h, w, o = float(height), float(width), float(min_overlap)
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)
    r1 = (b1 + math.sqrt(b1 * b1 - 4 * c1)) / 2
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - o) * w * h
    r2 = (b2 + math.sqrt(b2 * b2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + math.sqrt(b3 * b3 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian2d(radius: int) -> np.ndarray:
    """``[2r+1, 2r+1]`` window, ``sigma = (2r+1)/6``, tiny values zeroed (CenterNet ``gaussian2D``)."""
    d = 2 * radius + 1
    sigma = d / 6.0
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def collision_aware_centers(centers: np.ndarray, radii: np.ndarray, map_size: int,
                            factor: float = 0.2) -> np.ndarray:
    """Push apart centres ``[N, 2]`` (normalised) that would collide on the map (CAR, see module)."""
    c = np.array(centers, dtype=np.float64).reshape(-1, 2)
    n = len(c)
    for i in range(n):
        if n < 2:
            break
        least = (radii + radii[i] + 1) / map_size * 2
        dist = np.sqrt(((c - c[i]) ** 2).sum(1)) + 1e-4
        close = dist < least
        close[:i + 1] = False  # each pair once, with the later person as the partner
        if not close.any():
            continue
        j = int(np.argmin(np.where(close, dist, np.inf)))
        offset = abs((least[j] - dist[j]) / dist[j]) * (c[j] - c[i] + 1e-4) * factor
        c[i] -= offset
        c[j] += offset
    c = np.clip(c, -1, 1)
    c[c == -1] = -0.96
    c[c == 1] = 0.96
    return c


def center_heatmap(centers: Tensor, centers_valid: Tensor, boxes: Tensor,
                   boxes_valid: Optional[Tensor] = None, map_size: int = 64, car: bool = True,
                   radius: str = "romp") -> tuple[Tensor, Tensor]:
    """Centre heatmap ``[1, S, S]`` for one image, and the (CAR-adjusted) centres used ``[P, 2]``.

    Args:
        centers: Tensor[P, 2] normalised (x, y); ``centers_valid`` Tensor[P] bool.
        boxes: Tensor[P, 4] normalised (x0, y0, x1, y1); a person without a valid box gets the
            minimum radius ``S/32``.
        radius: ``"romp"`` (adaptive, default) or ``"cornernet"`` (``gaussian_radius`` of the box in
            map cells, floored, at least 0).
    """
    P = centers.shape[0]
    if boxes_valid is None:
        boxes_valid = torch.ones(P, dtype=torch.bool)
    idx = torch.nonzero(centers_valid).flatten().numpy()
    c = centers.detach().double().numpy()[idx]
    b = boxes.detach().double().numpy()[idx]
    hw = np.stack([b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]], -1) * boxes_valid.numpy()[idx, None]
    if radius == "romp":
        r = romp_radius(hw, map_size)
    elif radius == "cornernet":
        r = np.array([max(0, int(gaussian_radius(h * map_size / 2, w * map_size / 2))) for h, w in hw],
                     dtype=np.int64)
    else:
        raise ValueError(f"radius must be 'romp' or 'cornernet', got {radius!r}")
    if car and len(idx) > 1:
        c = collision_aware_centers(c, r, map_size)
    hm = np.zeros((map_size, map_size), dtype=np.float32)
    for (cx, cy), rad in zip(c, r):
        x, y = int((cx + 1) / 2 * map_size), int((cy + 1) / 2 * map_size)
        if x < 0 or y < 0 or x >= map_size or y >= map_size:
            continue
        g = gaussian2d(int(rad))
        left, right = min(x, rad), min(map_size - x, rad + 1)
        top, bottom = min(y, rad), min(map_size - y, rad + 1)
        win = hm[y - top:y + bottom, x - left:x + right]
        np.maximum(win, g[rad - top:rad + bottom, rad - left:rad + right], out=win)
        hm[y, x] = 1.0
    used = centers.detach().clone().float()
    used[torch.as_tensor(idx, dtype=torch.long)] = torch.from_numpy(c).float()
    return torch.from_numpy(hm)[None], used


def batch_center_heatmaps(batch: dict, map_size: int = 64, car: bool = True) -> Tensor:
    """``[B, 1, S, S]`` heatmaps for a collated batch of contract samples."""
    maps = [center_heatmap(c, cv, b, bv, map_size, car)[0] for c, cv, b, bv in
            zip(batch["centers"], batch["centers_valid"], batch["boxes"], batch["boxes_valid"])]
    return torch.stack(maps)
