"""CLEAR MOT and Identity under py-motmetrics' conventions (``motmetrics/mot.py`` and
``motmetrics/metrics.py``, motmetrics 1.4.0), for comparisons with results computed by it (TRACE
reports MOTA, IDF1 and ID switches this way).

Where motmetrics differs from TrackEval (``clear.py``):

- Similarity becomes a distance ``1 - sim``; a pair can match when that distance is
  ``<= max_distance`` (``iou_matrix(max_iou=...)`` turns larger ones into NaN). TRACE uses 0.99.
- Per frame (``MOTAccumulator.update``): first every gt id keeps the tracker id it was last matched
  to *at any earlier time* if that tracker is present and the pair may match (rows in order, a
  tracker taken once); then the remaining pairs are matched with maximum cardinality, then minimum
  total distance (``linear_assignment`` with the non-matching pairs forbidden, as motmetrics'
  expensive-edge trick does). A remaining match whose gt id was last matched to another tracker id
  is a switch.
- MOTA = 1 - (FN + IDSW + FP) / num_objects; MOTP = mean matched *distance*; mostly tracked is a
  tracked ratio >= 0.8, partially [0.2, 0.8), mostly lost < 0.2, over the ids that appear;
  fragmentations count, per id and over the frames where it is present, the tracked -> missed
  transitions between its first and last tracked frame.
- Identity: the same optimal id matching as TrackEval's, over the pairs that may match.

Frames are processed in order (each depends on every earlier match); each frame's remaining problem
goes through ``linear_assignment``. Identical to motmetrics whenever each frame's optimum is unique;
with ``max_distance >= 1`` (``iou_matrix``'s default ``max_iou=1``) every non-overlapping pair is
matchable at distance exactly 1, so many optima tie and motmetrics' solver (``lap.lapjv`` when
installed, else scipy) and ours may pick different ones.
"""
from __future__ import annotations

import numpy as np
import torch

from romp_fast.evaluation.tracking.identity import id_matching
from romp_fast.evaluation.tracking.sequence import Sequence, argsort_int

COUNT_FIELDS = ("num_frames", "num_objects", "num_predictions", "num_unique_objects", "num_matches",
                "num_switches", "num_false_positives", "num_misses", "num_detections", "num_fragmentations",
                "mostly_tracked", "partially_tracked", "mostly_lost", "idtp", "idfn", "idfp")
RATE_FIELDS = ("mota", "motp", "precision", "recall", "idp", "idr", "idf1")


def allowed_edges(seq: Sequence, max_distance: float):
    """Pairs whose distance ``1 - sim`` is ``<= max_distance``, and those distances."""
    if 1.0 - 0.0 <= max_distance:  # zero-similarity pairs may match too
        edges = seq.edges(1.0 - seq.sim <= max_distance)
    else:
        pos = seq.positive_edges()
        edges = pos.subset(1.0 - pos.s <= max_distance)
    return edges, 1.0 - edges.s


def mm_matches(seq: Sequence, max_distance: float = 0.5):
    """motmetrics' per-frame matching. Returns (gt det[M], tracker det[M], distance[M], switch[M])
    over all matches, frame by frame."""
    from romp_fast.ops import linear_assignment

    edges, dist = allowed_edges(seq, max_distance)
    frame_of_edge = seq.gt_frame[edges.d]
    eptr = np.searchsorted(frame_of_edge, np.arange(seq.num_timesteps + 1))
    last = np.full(seq.num_gt_ids, -1, dtype=np.int64)  # tracker id each gt id was last matched to
    col_of = np.full(seq.num_tracker_ids, -1, dtype=np.int64)
    out_d, out_e, out_dist, out_sw = [], [], [], []
    ng, nt = seq.ng, seq.nt
    for f in np.flatnonzero((ng > 0) & (nt > 0)):
        g0, t0 = seq.gt_ptr[f], seq.tr_ptr[f]
        gids, tids = seq.gt_ids[g0:g0 + ng[f]], seq.tracker_ids[t0:t0 + nt[f]]
        cost = np.full((ng[f], nt[f]), np.inf)
        k = slice(eptr[f], eptr[f + 1])
        cost[edges.d[k] - g0, edges.e[k] - t0] = dist[k]
        # 1. keep established pairs: rows in order, each tracker once
        col_of[tids] = np.arange(len(tids))
        prev = last[gids]
        r = np.flatnonzero(prev >= 0)
        c = col_of[prev[r]]
        keep = (c >= 0)
        r, c = r[keep], c[keep]
        keep = np.isfinite(cost[r, c])
        r, c = r[keep], c[keep]
        _, first = np.unique(c, return_index=True)
        first.sort()
        r, c = r[first], c[first]
        col_of[tids] = -1
        # 2. the rest: maximum cardinality, then minimum distance
        rest = cost.copy()
        rest[r, :] = np.inf
        rest[:, c] = np.inf
        match = linear_assignment(torch.from_numpy(rest)[None]).numpy()[0]  # one problem: one thread
        r2 = np.flatnonzero(match >= 0)
        c2 = match[r2]
        sw = (last[gids[r2]] >= 0) & (last[gids[r2]] != tids[c2])
        rows, cols = np.r_[r, r2], np.r_[c, c2]
        last[gids[rows]] = tids[cols]
        out_d.append(g0 + rows)
        out_e.append(t0 + cols)
        out_dist.append(cost[rows, cols])
        out_sw.append(np.r_[np.zeros(len(r), bool), sw])
    cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
    return cat(out_d, np.int64), cat(out_e, np.int64), cat(out_dist, np.float64), cat(out_sw, bool)


def _divide(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):  # motmetrics' quiet_divide
        return float(np.true_divide(a, b))


def eval_motmetrics(seq: Sequence, max_distance: float = 0.5) -> dict:
    """motmetrics' ``compute(acc, metrics=[...])`` values for one sequence, under its names
    (``mota``, ``motp``, ``num_switches``, ``idf1`` ...). Every frame counts as updated."""
    d, e, dist, sw = mm_matches(seq, max_distance)
    G = seq.num_gt_ids
    gt_count = np.bincount(seq.gt_ids, minlength=G)
    present = gt_count > 0
    tracked = np.zeros(seq.num_gt_dets, dtype=bool)
    tracked[d] = True
    gid = seq.gt_ids
    ratio = np.bincount(gid[d], minlength=G)[present] / gt_count[present]
    # fragmentations: per id, over its own detections in frame order, tracked runs after the first
    order = argsort_int(gid)
    g, tr = gid[order], tracked[order]
    new_run = tr & np.r_[True, (g[1:] != g[:-1]) | ~tr[:-1]]
    runs = np.bincount(g[new_run], minlength=G)
    edges, _ = allowed_edges(seq, max_distance)
    _, _, counts, matched = id_matching(seq, edges.d, edges.e)
    res = {"num_frames": seq.num_timesteps, "num_objects": seq.num_gt_dets, "num_predictions": seq.num_tracker_dets,
           "num_unique_objects": int(present.sum()), "num_switches": int(sw.sum()),
           "num_detections": len(d), "num_false_positives": seq.num_tracker_dets - len(d),
           "num_misses": seq.num_gt_dets - len(d), "num_fragmentations": int(np.maximum(runs - 1, 0).sum()),
           "mostly_tracked": int((ratio >= 0.8).sum()),
           "partially_tracked": int(((ratio >= 0.2) & (ratio < 0.8)).sum()),
           "mostly_lost": int((ratio < 0.2).sum()), "motp_sum": float(dist.sum())}
    res["num_matches"] = res["num_detections"] - res["num_switches"]
    idtp = int(counts[matched].sum())
    res.update(idtp=idtp, idfn=seq.num_gt_dets - idtp, idfp=seq.num_tracker_dets - idtp)
    return final_fields(res)


def final_fields(res: dict) -> dict:
    """motmetrics' rates from the counts (the same formulas for one sequence and for the overall)."""
    n_obj, det = res["num_objects"], res["num_detections"]
    res["mota"] = 1.0 - _divide(res["num_misses"] + res["num_switches"] + res["num_false_positives"], n_obj)
    res["motp"] = _divide(res["motp_sum"], det)
    res["precision"] = _divide(det, res["num_false_positives"] + det)
    res["recall"] = _divide(det, n_obj)
    res["idp"] = _divide(res["idtp"], res["idtp"] + res["idfp"])
    res["idr"] = _divide(res["idtp"], res["idtp"] + res["idfn"])
    res["idf1"] = _divide(2 * res["idtp"], n_obj + res["num_predictions"])
    return res


def combine_motmetrics(results: list[dict]) -> dict:
    """motmetrics' OVERALL row (``compute_many(..., generate_overall=True)``): counts summed,
    MOTP weighted by detections, rates recomputed."""
    res = {k: sum(r[k] for r in results) for k in COUNT_FIELDS + ("motp_sum",)}
    return final_fields(res)
