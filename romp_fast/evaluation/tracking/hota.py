"""HOTA (Luiten et al., "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking", IJCV 2020)
exactly as TrackEval computes it (``trackeval/metrics/hota.py``, PyPI trackeval 1.3.0), vectorised.

TrackEval's procedure, and where it happens here:

1. Global alignment score between ids: per frame, each pair's "soft match"
   ``sim / (row sum + column sum - sim)`` (0 where that denominator is <= eps), summed over frames
   into ``C[g, t]``; ``A = C / (n_g + n_t - C)`` with ``n_g``, ``n_t`` the detection counts per id.
   Here: one ``bincount`` over the positive pairs of the whole sequence.
2. Per frame one assignment maximising ``A[g, t] * sim`` shared by every alpha (not one per alpha).
   Here: all frames' problems in batched ``linear_assignment`` calls (``assign.py``).
3. For each alpha in 0.05, 0.10 .. 0.95, a matched pair counts when ``sim >= alpha - eps``: TP, FN,
   FP, the summed similarity (LocA) and per-(gt id, tracker id) match counts. Here: each matched
   pair's number of passed alphas (``searchsorted``) and suffix sums over that count.
4. ``AssA_a = sum_pairs m * m / max(1, n_g + n_t - m) / max(1, TP_a)`` (likewise AssRe with
   ``max(1, n_g)`` and AssPr with ``max(1, n_t)``), ``DetA = TP / max(1, TP + FN + FP)``,
   ``HOTA = sqrt(DetA * AssA)``, ``OWTA = sqrt(DetRe * AssA)``, ``LocA = max(1e-10, sum sim) /
   max(1e-10, TP)``.
"""
from __future__ import annotations

import numpy as np

from romp_fast.evaluation.tracking.assign import max_weight_matching, positive_units
from romp_fast.evaluation.tracking.sequence import EPS, Sequence

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's array_labels, built the same way
INTEGER_ARRAY_FIELDS = ("HOTA_TP", "HOTA_FN", "HOTA_FP")
FLOAT_ARRAY_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA")
FLOAT_FIELDS = ("HOTA(0)", "LocA(0)", "HOTALocA(0)")
_DENSE_PAIRS = 200_000  # id-pair spaces up to this size are counted densely, larger ones via unique


def _empty_result():
    res = {k: np.zeros(len(ALPHAS)) for k in FLOAT_ARRAY_FIELDS + INTEGER_ARRAY_FIELDS}
    res.update({k: 0 for k in FLOAT_FIELDS})
    return res


def _frame_sums(seq: Sequence):
    """Row and column sums of every frame's matrix, summed by numpy exactly as TrackEval does."""
    rows = [np.asarray(s).sum(1) for s in seq.frames]
    cols = [np.asarray(s).sum(0) for s in seq.frames]
    cat = lambda xs: np.concatenate(xs).astype(np.float64) if xs else np.zeros(0)  # noqa: E731
    return cat(rows), cat(cols)


def eval_hota(seq: Sequence, exact: bool = False) -> dict:
    """TrackEval's ``HOTA().eval_sequence(data)`` for one sequence: per-alpha arrays and floats.

    ``exact`` sums rows and columns frame by frame as numpy does in TrackEval (bitwise the same
    alignment scores; needs ``seq.frames``) and solves each frame's full matrix with scipy.
    """
    res = _empty_result()
    # Early exits exactly as TrackEval (note: its final fields are not computed there).
    if seq.num_tracker_dets == 0 or seq.num_gt_dets == 0:
        key = "HOTA_FN" if seq.num_tracker_dets == 0 else "HOTA_FP"
        res[key] = float(seq.num_gt_dets if seq.num_tracker_dets == 0 else seq.num_tracker_dets) * np.ones(len(ALPHAS))
        res["LocA"] = np.ones(len(ALPHAS))
        res["LocA(0)"] = 1.0
        return res
    G, T = seq.num_gt_ids, seq.num_tracker_ids
    gt_count = np.bincount(seq.gt_ids, minlength=G).astype(np.float64)
    tr_count = np.bincount(seq.tracker_ids, minlength=T).astype(np.float64)
    # zero-similarity pairs add nothing to C and never count as matches
    ed, units = positive_units(seq, exact)
    if exact and seq.frames is not None:
        row_sum, col_sum = _frame_sums(seq)
    else:
        row_sum = np.bincount(ed.d, weights=ed.s, minlength=seq.num_gt_dets)
        col_sum = np.bincount(ed.e, weights=ed.s, minlength=seq.num_tracker_dets)
    # 1. global alignment score (same operations and order as TrackEval, per pair)
    denom = col_sum[ed.e] + row_sum[ed.d] - ed.s
    soft = np.zeros(len(ed))
    ok = denom > 0 + EPS
    soft[ok] = ed.s[ok] / denom[ok]
    gid, tid = seq.gt_ids[ed.d], seq.tracker_ids[ed.e]
    key = gid * T + tid
    if G * T <= _DENSE_PAIRS:
        C = np.bincount(key, weights=soft, minlength=G * T)[key]
    else:
        uniq, inv = np.unique(key, return_inverse=True)
        C = np.bincount(inv, weights=soft, minlength=len(uniq))[inv]
    align = C / (gt_count[gid] + tr_count[tid] - C)
    # 2. one matching per frame, all frames batched
    chosen = max_weight_matching(align * ed.s, units, exact=exact)
    ms, mkey = ed.s[chosen], key[chosen]
    # 3. per-alpha counts: a matched pair passes alpha a iff sim >= alpha - eps
    na = len(ALPHAS)
    level = np.searchsorted(ALPHAS - EPS, ms, side="right")  # how many alphas it passes
    suffix = lambda h: np.cumsum(h[::-1])[::-1][1:]  # noqa: E731  [a] = sum over levels > a
    tp = suffix(np.bincount(level, minlength=na + 1)).astype(np.float64)
    loc = suffix(np.bincount(level, weights=ms, minlength=na + 1))
    res["HOTA_TP"] = tp
    res["HOTA_FN"] = seq.num_gt_dets - tp
    res["HOTA_FP"] = seq.num_tracker_dets - tp
    # matches per (gt id, tracker id) and alpha
    if G * T <= _DENSE_PAIRS:
        pairs = np.flatnonzero(np.bincount(mkey, minlength=G * T))
        inv = np.searchsorted(pairs, mkey)
    else:
        pairs, inv = np.unique(mkey, return_inverse=True)
    hist = np.bincount(inv * (na + 1) + level, minlength=len(pairs) * (na + 1)).reshape(len(pairs), na + 1)
    m = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)  # [P, na]
    ng, nt = gt_count[pairs // T][:, None], tr_count[pairs % T][:, None]
    norm = np.maximum(1, tp)
    res["AssA"] = (m * (m / np.maximum(1, ng + nt - m))).sum(0) / norm
    res["AssRe"] = (m * (m / np.maximum(1, ng))).sum(0) / norm
    res["AssPr"] = (m * (m / np.maximum(1, nt))).sum(0) / norm
    res["LocA"] = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    return _final_fields(res)


def _final_fields(res):
    """TrackEval ``HOTA._compute_final_fields``."""
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    res["OWTA"] = np.sqrt(res["DetRe"] * res["AssA"])
    res["HOTA(0)"] = res["HOTA"][0]
    res["LocA(0)"] = res["LocA"][0]
    res["HOTALocA(0)"] = res["HOTA(0)"] * res["LocA(0)"]
    return res


def combine_hota(results: list[dict]) -> dict:
    """TrackEval ``HOTA.combine_sequences``: detection counts summed, association scores averaged
    with weights HOTA_TP, LocA weighted by HOTA_TP."""
    res = {k: sum(r[k] for r in results) if results else np.zeros(len(ALPHAS)) for k in INTEGER_ARRAY_FIELDS}
    tp = res["HOTA_TP"]
    for k in ("AssRe", "AssPr", "AssA"):
        res[k] = sum(r[k] * r["HOTA_TP"] for r in results) / np.maximum(1.0, tp)
    loc = sum(r["LocA"] * r["HOTA_TP"] for r in results)
    res["LocA"] = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    return _final_fields(res)
