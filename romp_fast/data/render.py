"""A small vectorised z-buffer triangle rasteriser (torch, CPU, no gradients) and backgrounds.

Flat shading: each triangle has one colour. Coverage follows the usual pixel-centre rule (a pixel
is covered when its centre ``(i + 0.5, j + 0.5)`` lies inside the projected triangle, edges
included with a small tolerance), so a closed mesh leaves no holes at any scale. Triangles are
bucketed by the power-of-two size of their pixel bounding box and every candidate pixel of a bucket
is tested at once; the nearest fragment per pixel wins through one ``scatter_reduce(amin)`` on a key
that packs the quantised depth above the triangle id (order independent, hence deterministic).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_ID_BITS = 24  # triangle ids below 2**24; depth quantised to 1e-5 m in the bits above
_DEPTH_Q = 1e5


def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


@torch.no_grad()
def rasterize(tri_px: Tensor, tri_z: Tensor, height: int, width: int, near: float = 0.05):
    """Nearest triangle per pixel.

    Args:
        tri_px: Tensor[F, 3, 2] triangle corners in pixels (x, y).
        tri_z: Tensor[F, 3] camera depths (metres).
    Returns:
        LongTensor[H, W]: triangle index per pixel, -1 where nothing is drawn.
    """
    F = tri_px.shape[0]
    if F >= 2 ** _ID_BITS:
        raise ValueError(f"at most {2 ** _ID_BITS - 1} triangles, got {F}")
    keep = (tri_z > near).all(1)
    lo = torch.ceil(tri_px.amin(1) - 0.5).long()
    hi = torch.floor(tri_px.amax(1) - 0.5).long()
    lo[:, 0].clamp_(min=0)
    lo[:, 1].clamp_(min=0)
    hi[:, 0].clamp_(max=width - 1)
    hi[:, 1].clamp_(max=height - 1)
    size = hi - lo + 1
    keep &= (size > 0).all(1)
    ids = torch.nonzero(keep).flatten()
    frag_pix, frag_key = [], []
    if len(ids):
        ext = size[ids].amax(1)
        bucket = torch.ceil(torch.log2(ext.double())).long()
        for b in torch.unique(bucket).tolist():
            sel = ids[bucket == b]
            s = 1 << b
            oy, ox = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
            ox, oy = ox.reshape(1, -1), oy.reshape(1, -1)
            lx, ly = lo[sel, 0:1], lo[sel, 1:2]
            ok = (ox < size[sel, 0:1]) & (oy < size[sel, 1:2])
            px = (lx + ox).float() + 0.5
            py = (ly + oy).float() + 0.5
            v = tri_px[sel]
            x0, y0, x1, y1, x2, y2 = (v[:, i, c:c + 1] for i in range(3) for c in range(2))
            area = _edge(x0, y0, x1, y1, x2, y2)
            w0 = _edge(x1, y1, x2, y2, px, py) / area
            w1 = _edge(x2, y2, x0, y0, px, py) / area
            w2 = 1 - w0 - w1
            eps = -1e-5
            ok &= (w0 >= eps) & (w1 >= eps) & (w2 >= eps) & (area.abs() > 1e-10)
            z = tri_z[sel]
            inv_z = w0 / z[:, 0:1] + w1 / z[:, 1:2] + w2 / z[:, 2:3]  # perspective-correct depth
            depth = 1 / inv_z.clamp_min(1e-6)
            key = (depth * _DEPTH_Q).long().clamp(0, 2 ** 38) * (2 ** _ID_BITS) + sel[:, None]
            pix = (ly + oy) * width + (lx + ox)
            frag_pix.append(pix[ok])
            frag_key.append(key[ok])
    big = torch.iinfo(torch.int64).max
    zbuf = torch.full((height * width,), big, dtype=torch.int64)
    if frag_pix:
        zbuf.scatter_reduce_(0, torch.cat(frag_pix), torch.cat(frag_key), "amin")
    face = torch.where(zbuf == big, torch.full_like(zbuf, -1), zbuf % (2 ** _ID_BITS))
    return face.view(height, width)


def flat_shade(tri_cam: Tensor, base_rgb: Tensor, light=(0.3, -0.6, -0.75), ambient: float = 0.35):
    """Per-triangle colour ``[F, 3]``: ``base * (ambient + (1 - ambient) |n . l|)`` (two-sided Lambert;
    ``light`` points from the surface towards the light, camera axes)."""
    n = torch.linalg.cross(tri_cam[:, 1] - tri_cam[:, 0], tri_cam[:, 2] - tri_cam[:, 0])
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
    l = torch.tensor(light, dtype=n.dtype)
    l = l / l.norm()
    return base_rgb * (ambient + (1 - ambient) * (n @ l).abs())[:, None]


def background(rng: np.random.Generator, height: int, width: int) -> Tensor:
    """A varied background ``[3, H, W]`` in [0, 1]: a two-colour gradient at a random angle, then
    either random rectangles, stripes or a checkerboard, plus mild pixel noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys /= height
    xs /= width
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * xs + np.sin(a) * ys)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    img = c0[:, None, None] * (1 - t) + c1[:, None, None] * t
    kind = rng.integers(0, 3)
    if kind == 0:
        for _ in range(rng.integers(2, 8)):
            x0, x1 = np.sort(rng.integers(0, width, 2))
            y0, y1 = np.sort(rng.integers(0, height, 2))
            img[:, y0:y1 + 1, x0:x1 + 1] = rng.uniform(0, 1, 3)[:, None, None]
    else:
        period = rng.uniform(0.05, 0.3)
        b = rng.uniform(0, 2 * np.pi)
        u = (np.cos(b) * xs + np.sin(b) * ys) / period
        if kind == 1:
            m = (np.floor(u) % 2).astype(np.float32)
        else:
            v = (-np.sin(b) * xs + np.cos(b) * ys) / period
            m = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
        img = img * (1 - 0.35 * m)
    img = img + rng.normal(0, 0.02, size=(1, height, width))
    return torch.from_numpy(np.clip(img, 0, 1).astype(np.float32))
