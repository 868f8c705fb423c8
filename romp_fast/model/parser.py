"""Result parsing: centre-map peaks, prediction <-> GT association, per-person SMPL decoding.

Source: ROMP ``romp/lib/maps_utils/result_parser.py`` (``parse_centermap``: max-pool NMS, top-K,
threshold; ``match_params`` / ``match_gt_pred``: every GT person with a valid centre takes the
nearest predicted peak of its own image, Euclidean distance in map cells, no distance limit,
several GTs may share a peak) and ``smpl_family/smpl_wrapper.py`` (6D -> rotations -> SMPL,
root-aligned joints, projection); protocols sections 3.0 and 3.1.

Decided differently from ROMP (documented): a GT person whose image has no peak above the
threshold is supervised at its own GT centre cell (ROMP's ``match_preds_to_gts_for_supervision=False``
behaviour) instead of being dropped; early in training no cell passes the threshold, and ROMP then
supervises parameters only through a dummy sample. ``matched`` in the parsed output tells which
people found a peak. Everything is batched: one NMS, one top-K, one distance matrix, one SMPL call.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from romp_fast.body.rotations import matrix_to_axis_angle, rot6d_to_matrix
from romp_fast.model.heads import NUM_BODY_JOINTS, PARAM_CHANNELS
from romp_fast.model.projection import project

NUM_JOINTS_PRED = 1 + NUM_BODY_JOINTS  # global + 21 body joints; SMPL's 2 hand joints are identity


def center_nms(center_map: Tensor, kernel: int = 5) -> Tensor:
    """Keep only local maxima: a cell survives if it equals the max of its ``kernel x kernel``
    neighbourhood (ROMP's ``nms`` with a 5x5 max-pool); others become 0. ``[B, 1, S, S]`` -> same."""
    if kernel % 2 != 1 or kernel < 1:
        raise ValueError(f"nms kernel must be odd and >= 1, got {kernel}")
    pooled = F.max_pool2d(center_map, kernel, stride=1, padding=kernel // 2)
    return torch.where(pooled == center_map, center_map, 0)


def top_peaks(center_map: Tensor, k: int, kernel: int = 5) -> tuple[Tensor, Tensor]:
    """Top-``k`` NMS peaks of every image: ``scores [B, k]`` (descending) and flat cells
    ``[B, k]`` (``y * S + x``). ``k`` is capped at the number of cells."""
    if center_map.dim() != 4 or center_map.shape[1] != 1:
        raise ValueError(f"center_map must be [B, 1, S, S], got {list(center_map.shape)}")
    flat = center_nms(center_map, kernel).flatten(1)
    return flat.topk(min(k, flat.shape[1]), dim=1)


def centers_to_cells(centers: Tensor, size: int) -> Tensor:
    """Normalised ``(x, y)`` ``[..., 2]`` -> integer map cells ``(x, y)`` ``[..., 2]``,
    ``int((c + 1) / 2 * S)`` clamped to the map (the cell whose heatmap value is 1)."""
    return ((centers.detach() + 1) * (size / 2)).floor().long().clamp(0, size - 1)


def match_nearest_peaks(gt_cells: Tensor, gt_batch: Tensor, peak_cells: Tensor, peak_valid: Tensor,
                        size: int) -> tuple[Tensor, Tensor]:
    """ROMP's ``match_gt_pred``: each GT takes the nearest valid peak of its own image.

    Args:
        gt_cells (Tensor[N, 2] int): GT centre cells ``(x, y)``; gt_batch (Tensor[N] int): image of each.
        peak_cells (Tensor[B, K] int): flat peak cells; peak_valid (Tensor[B, K] bool).
        size: map side ``S``.
    Returns:
        cell (Tensor[N] int64): flat cell to sample, the GT's own cell when its image has no valid
        peak; matched (Tensor[N] bool): a peak was found. Ties go to the higher-scoring peak.
    """
    pc = peak_cells[gt_batch]                                   # [N, K]
    pxy = torch.stack([pc % size, torch.div(pc, size, rounding_mode="floor")], -1)
    d2 = ((pxy - gt_cells[:, None]) ** 2).sum(-1).float()       # exact in float for S <= 2048
    d2 = torch.where(peak_valid[gt_batch], d2, float("inf"))
    best = d2.argmin(1, keepdim=True)                           # first minimum: highest score
    matched = peak_valid[gt_batch].any(1)
    own = gt_cells[:, 1] * size + gt_cells[:, 0]
    return torch.where(matched, pc.gather(1, best)[:, 0], own), matched


def gather_cells(maps: Tensor, batch_index: Tensor, cell: Tensor) -> Tensor:
    """``maps [B, C, S, S]`` sampled at ``(batch_index [N], flat cell [N])`` -> ``[N, C]``."""
    return maps.flatten(2)[batch_index, :, cell]


def decode(cam: Tensor, params: Tensor, body, projection: str, fov_deg: float,
           with_verts: bool = True) -> dict[str, Tensor | None]:
    """Per-person decoding: 6D -> rotations -> SMPL (root-aligned) -> projection.

    Args:
        cam (Tensor[N, 3]) decoded ``(s, ty, tx)``; params (Tensor[N, 142]); body: a ``BodyModel``
        with the extra regressor (SMPL-54 joints).
    Returns:
        dict with cam, pose [N, 72] (axis-angle, hands 0), rotmats [N, 24, 3, 3], betas [N, 10],
        kp3d [N, 54, 3], verts [N, 6890, 3] (root-aligned; None without ``with_verts``), kp2d [N, 54, 2].
    The body model runs in float32 with autocast off (SMPL's blend shapes lose millimetres in half).
    """
    if params.shape[-1] != PARAM_CHANNELS:
        raise ValueError(f"params must be [N, {PARAM_CHANNELS}], got {list(params.shape)}")
    N = params.shape[0]
    with torch.autocast(params.device.type, enabled=False):
        params, cam = params.float(), cam.float()
        R22 = rot6d_to_matrix(params[:, :6 * NUM_JOINTS_PRED].reshape(N, NUM_JOINTS_PRED, 6))
        betas = params[:, 6 * NUM_JOINTS_PRED:]
        out = body(pose=R22.to(body.dtype), betas=betas.to(body.dtype), root_align=True)
        kp3d = out.joints54.to(params.dtype)
        pose = F.pad(matrix_to_axis_angle(R22).reshape(N, 3 * NUM_JOINTS_PRED), (0, 6))
        return {
            "cam": cam, "pose": pose, "rotmats": out.rotmats.to(params.dtype), "betas": betas,
            "kp3d": kp3d, "verts": out.vertices.to(params.dtype) if with_verts else None,
            "kp2d": project(kp3d, cam, projection, fov_deg),
        }


def parse_train(maps: dict, batch: dict, body, *, top_k: int, conf_thresh: float, nms_kernel: int,
                projection: str, fov_deg: float, with_verts: bool = True) -> dict[str, Tensor | None]:
    """Aligned per-person predictions for the GT people with a valid centre (see ``ROMPModel.parse_train``)."""
    center = maps["center_map"]
    S = center.shape[-1]
    valid = batch["centers_valid"] & batch["person_valid"]
    batch_index, person_index = valid.nonzero(as_tuple=True)
    scores, peaks = top_peaks(center.detach(), top_k, nms_kernel)
    gt_cells = centers_to_cells(batch["centers"][batch_index, person_index], S)
    cell, matched = match_nearest_peaks(gt_cells, batch_index, peaks, scores > conf_thresh, S)
    out = decode(gather_cells(maps["cam_map"], batch_index, cell),
                 gather_cells(maps["params_map"], batch_index, cell), body, projection, fov_deg, with_verts)
    out.update(batch_index=batch_index, person_index=person_index, cell=cell, matched=matched)
    return out


def parse_infer(maps: dict, body, *, top_k: int, conf_thresh: float, nms_kernel: int,
                projection: str, fov_deg: float, with_verts: bool = True) -> dict[str, Tensor]:
    """Padded per-image detections (see ``ROMPModel.parse_infer``); SMPL runs on kept peaks only."""
    center = maps["center_map"]
    B, S = center.shape[0], center.shape[-1]
    scores, peaks = top_peaks(center, top_k, nms_kernel)
    keep = scores > conf_thresh                     # sorted scores: kept peaks come first
    b, k = keep.nonzero(as_tuple=True)
    cell = peaks[b, k]
    per = decode(gather_cells(maps["cam_map"], b, cell), gather_cells(maps["params_map"], b, cell),
                 body, projection, fov_deg, with_verts)
    xy = torch.stack([cell % S, torch.div(cell, S, rounding_mode="floor")], -1)
    per["centers"] = (xy.to(per["cam"].dtype) + 0.5) * (2.0 / S) - 1
    K = keep.shape[1]
    out = {"counts": keep.sum(1), "scores": torch.where(keep, scores, 0)}
    for key in ("centers", "cam", "pose", "betas", "kp3d", "kp2d", "verts"):
        v = per[key]
        if v is None:
            continue
        full = v.new_zeros((B, K) + v.shape[1:])
        full[b, k] = v
        out[key] = full
    return out
