"""Similarities between ground-truth and tracker detections, batched over frames.

Every function takes padded per-frame detections ``gt[..., M, ...]`` and ``pred[..., N, ...]``
(any leading frame dimensions) and returns ``[..., M, N]`` float64 similarities in [0, 1]; padding
rows give values that the caller ignores. The tracking metrics only need *a* similarity, so this is
the pluggable part: :data:`SIMILARITIES` maps a name to a function of ``(gt, pred, **options)`` over
the detection fields named in its ``FIELDS`` attribute (``boxes``, ``joints2d``, ``joints3d``).
"""
from __future__ import annotations

import numpy as np

EPS = float(np.finfo(float).eps)

# COCO keypoint falloffs (pycocotools cocoeval.py, ``kpt_oks_sigmas``) for the COCO-17 joint order.
COCO17_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


def _check(name, a, last):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != last:
        raise ValueError(f"{name} must be [..., n, {last}], got {list(a.shape)}")
    return a


def box_iou(gt, pred, box_format: str = "xywh"):
    """Intersection over union of boxes, with TrackEval's arithmetic (``_calculate_box_ious``), so
    the values are bitwise the ones TrackEval computes from the same MOTChallenge files.

    Args:
        gt (float[..., M, 4]), pred (float[..., N, 4]): boxes as (left, top, width, height) for
            ``"xywh"`` or (x0, y0, x1, y1) for ``"xyxy"``, in pixels.
    Returns:
        float64[..., M, N]. Pairs where either box has no area, or the union is empty, score 0.
    """
    b1, b2 = _check("gt boxes", gt, 4).copy(), _check("pred boxes", pred, 4).copy()
    if box_format == "xywh":
        b1[..., 2:] += b1[..., :2]
        b2[..., 2:] += b2[..., :2]
    elif box_format not in ("xyxy", "x0y0x1y1"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
    lo = np.minimum(b1[..., :, None, :], b2[..., None, :, :])
    hi = np.maximum(b1[..., :, None, :], b2[..., None, :, :])
    inter = np.maximum(lo[..., 2] - hi[..., 0], 0) * np.maximum(lo[..., 3] - hi[..., 1], 0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1[..., :, None] + area2[..., None, :] - inter
    bad = (area1[..., :, None] <= EPS) | (area2[..., None, :] <= EPS) | (union <= EPS)
    inter = np.where(bad, 0.0, inter)
    return inter / np.where(union <= EPS, 1.0, union)


box_iou.FIELDS = ("boxes",)


def boxes_from_joints(joints, valid=None, scale=(1.0, 1.0)):
    """Boxes (left, top, width, height) around 2D joints, as TRACE's ``pj2ds_to_bbox`` builds them
    from projected joints: the joints' bounding box scaled about its centre by ``scale`` = (sx, sy)
    (TRACE: (1.1, 1.18) on MuPoTS, (1.0, 1.05) on Dyna3DPW).

    Args:
        joints (float[..., K, 2]): pixels. valid (bool[..., K], optional): joints to use (default:
            the finite ones). A person with no valid joint gets an all-zero box (IoU 0 with all).
    """
    j = _check("joints", joints, 2)
    ok = np.isfinite(j).all(-1) if valid is None else (np.asarray(valid, bool) & np.isfinite(j).all(-1))
    lo = np.where(ok[..., None], j, np.inf).min(-2)
    hi = np.where(ok[..., None], j, -np.inf).max(-2)
    any_ok = ok.any(-1)[..., None]
    lo, hi = np.where(any_ok, lo, 0.0), np.where(any_ok, hi, 0.0)
    centre = (lo + hi) / 2
    size = (hi - lo) * np.asarray(scale, dtype=np.float64)
    return np.concatenate([centre - size / 2, size], -1)


def keypoint_similarity(gt, pred, gt_visible=None, area=None, sigmas=None):
    """Object keypoint similarity (COCO OKS, pycocotools ``COCOeval.computeOks``): the mean over the
    ground truth's visible joints of ``exp(-d^2 / (2 area k^2))`` with ``k = 2 sigma`` per joint.

    Args:
        gt (float[..., M, K, 2]), pred (float[..., N, K, 2]): pixels.
        gt_visible (bool[..., M, K], optional): default all finite gt joints.
        area (float[..., M], optional): the object scale s^2; default the area of the ground
            truth's joint box. sigmas (float[K], optional): COCO's for K = 17, else 0.1 each.
    A ground truth with no visible joint scores 0 with everything.
    """
    g = np.asarray(gt, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if g.ndim < 3 or g.shape[-1] != 2 or p.shape[-2:] != g.shape[-2:]:
        raise ValueError(f"keypoints must be gt [..., M, K, 2] and pred [..., N, K, 2], got {list(g.shape)} "
                         f"and {list(p.shape)}")
    K = g.shape[-2]
    vis = np.isfinite(g).all(-1) if gt_visible is None else np.asarray(gt_visible, bool) & np.isfinite(g).all(-1)
    if sigmas is None:
        sigmas = COCO17_SIGMAS if K == 17 else np.full(K, 0.1)
    k2 = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    if area is None:
        box = boxes_from_joints(g, vis)
        area = box[..., 2] * box[..., 3]
    d2 = ((np.nan_to_num(g)[..., :, None, :, :] - p[..., None, :, :, :]) ** 2).sum(-1)  # [..., M, N, K]
    e = d2 / k2 / (np.asarray(area, dtype=np.float64)[..., :, None, None] + np.spacing(1)) / 2
    w = vis[..., :, None, :]
    num = np.where(w, np.exp(-e), 0.0).sum(-1)
    nvis = w.sum(-1)
    return np.where(nvis > 0, num / np.maximum(nvis, 1), 0.0)


keypoint_similarity.FIELDS = ("joints2d",)


def joint_distance_similarity(gt, pred, gt_visible=None, zero_distance: float = 0.5):
    """3D joint distance turned into a similarity: ``max(0, 1 - mean_j |gt_j - pred_j| / zero_distance)``
    (TrackEval's ``_calculate_euclidean_similarity`` form, on the mean per-joint error).

    Args:
        gt (float[..., M, J, 3]), pred (float[..., N, J, 3]): metres (root-relative or camera).
        zero_distance: error (metres) at which the similarity reaches 0; with the 0.5 threshold a
            match needs a mean joint error under zero_distance / 2.
    """
    g = np.asarray(gt, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if g.ndim < 3 or g.shape[-1] != 3 or p.shape[-2:] != g.shape[-2:]:
        raise ValueError(f"joints must be gt [..., M, J, 3] and pred [..., N, J, 3], got {list(g.shape)} "
                         f"and {list(p.shape)}")
    vis = np.isfinite(g).all(-1) if gt_visible is None else np.asarray(gt_visible, bool) & np.isfinite(g).all(-1)
    d = np.sqrt(((np.nan_to_num(g)[..., :, None, :, :] - p[..., None, :, :, :]) ** 2).sum(-1))
    w = vis[..., :, None, :]
    n = w.sum(-1)
    err = np.where(w, d, 0.0).sum(-1) / np.maximum(n, 1)
    return np.where(n > 0, np.maximum(0.0, 1.0 - err / zero_distance), 0.0)


joint_distance_similarity.FIELDS = ("joints3d",)

SIMILARITIES = {"iou": box_iou, "keypoints": keypoint_similarity, "joints3d": joint_distance_similarity}
