"""Seeded synthetic tracking sequences (boxes moving and crossing in an image) for tests and benchmarks.

Ground truth: ``num_ids`` people over ``num_frames`` frames, each alive for one stretch of frames,
moving with a random velocity and bouncing off the image borders (so tracks cross). Tracker output
per ground-truth box: missed with probability ``miss``; otherwise a jittered copy (a few are jittered
badly enough to fall under IoU 0.5) carrying the person's current tracker id. That id changes with
probability ``switch`` per frame (an id switch) and, after a miss, with probability ``refrag``
(a fragmented track resumed under a new id). ``fp`` false positives per frame on average, with ids
from a small pool of ghost tracks. All values continuous, so no assignment has tied optima.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from romp_fast.evaluation.tracking.similarity import box_iou


@dataclass
class Detections:
    """Per-detection arrays of one sequence: frame index (0-based), id and box (left, top, w, h)."""
    frame: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray


def make_sequence(num_frames=200, num_ids=12, per_frame=8, *, miss=0.1, switch=0.002, refrag=0.3,
                  fp=0.8, bad=0.03, image=(1920.0, 1080.0), seed=0):
    """Returns (gt Detections, tracker Detections)."""
    rng = np.random.default_rng(seed)
    life = max(1, int(round(num_frames * min(1.0, per_frame / max(num_ids, 1)))))
    start = rng.integers(-life // 2, max(num_frames - life // 2, 1), size=num_ids)
    W, H = image
    w = rng.uniform(40, 120, num_ids)
    h = w * rng.uniform(2.2, 2.8, num_ids)
    pos = np.stack([rng.uniform(0, W - w), rng.uniform(0, H - h)], 1)
    vel = rng.normal(0, 4.0, (num_ids, 2))
    tracker_of = np.arange(num_ids)
    next_id = num_ids
    was_missed = np.zeros(num_ids, bool)
    gt, tr = [], []
    ghost_pool = max(2, num_ids // 8)
    for t in range(num_frames):
        pos += vel
        for k, lim in ((0, W - w), (1, H - h)):
            over = (pos[:, k] < 0) | (pos[:, k] > lim)
            vel[over, k] *= -1
            pos[:, k] = np.clip(pos[:, k], 0, lim)
        alive = np.flatnonzero((t >= start) & (t < start + life))
        boxes = np.stack([pos[:, 0], pos[:, 1], w, h], 1)
        gt += [(t, i, boxes[i]) for i in alive]
        switched = rng.random(num_ids) < switch
        for i in alive:
            if rng.random() < miss:
                was_missed[i] = True
                continue
            if switched[i] or (was_missed[i] and rng.random() < refrag):
                tracker_of[i] = next_id
                next_id += 1
            was_missed[i] = False
            scale = 0.25 if rng.random() < bad else 0.04
            jitter = rng.normal(0, scale, 4) * np.array([w[i], h[i], w[i], h[i]])
            tr.append((t, tracker_of[i], boxes[i] + jitter * np.array([1, 1, 0.5, 0.5])))
        for g in rng.choice(ghost_pool, size=min(rng.poisson(fp), ghost_pool), replace=False):
            bw = rng.uniform(40, 120)
            tr.append((t, 10 ** 6 + g, np.array([rng.uniform(0, W - bw), rng.uniform(0, H - 2.5 * bw), bw, 2.5 * bw])))

    def pack(rows):
        if not rows:
            return Detections(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)))
        f, i, b = zip(*rows)
        return Detections(np.array(f, np.int64), np.array(i, np.int64), np.array(b, np.float64))
    return pack(gt), pack(tr)


def _split(det: Detections, num_frames: int):
    order = np.argsort(det.frame, kind="stable")
    bounds = np.searchsorted(det.frame[order], np.arange(num_frames + 1))
    return [order[bounds[t]:bounds[t + 1]] for t in range(num_frames)]


def to_trackeval(gt: Detections, tr: Detections, num_frames: int, similarity=box_iou) -> dict:
    """TrackEval's per-sequence data dict (ids relabelled 0..n-1 in sorted order, as TrackEval does)."""
    g_uni, g_ids = np.unique(gt.ids, return_inverse=True)
    t_uni, t_ids = np.unique(tr.ids, return_inverse=True)
    data = {"num_timesteps": num_frames, "num_gt_ids": len(g_uni), "num_tracker_ids": len(t_uni),
            "num_gt_dets": len(gt.ids), "num_tracker_dets": len(tr.ids), "gt_ids": [], "tracker_ids": [],
            "similarity_scores": [], "gt_dets": [], "tracker_dets": []}
    for gi, ti in zip(_split(gt, num_frames), _split(tr, num_frames)):
        data["gt_ids"].append(g_ids[gi].astype(int))
        data["tracker_ids"].append(t_ids[ti].astype(int))
        data["gt_dets"].append(gt.boxes[gi])
        data["tracker_dets"].append(tr.boxes[ti])
        data["similarity_scores"].append(similarity(gt.boxes[gi], tr.boxes[ti]))
    return data
