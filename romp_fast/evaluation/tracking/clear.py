"""CLEAR MOT (Bernardin & Stiefelhagen, EURASIP JIVP 2008) exactly as TrackEval computes it
(``trackeval/metrics/clear.py``, PyPI trackeval 1.3.0), without a Python loop over frames.

TrackEval's rules, and how they are reproduced:

- Per frame with ground truth and tracker detections ("active" frames), the score of a pair is
  ``1000 * [the tracker id is the one matched to this gt id in the previous active frame] + sim``,
  0 where ``sim < threshold - eps``; ``linear_sum_assignment`` maximises it and pairs scoring
  ``<= eps`` are dropped. Frames without gt or tracker detections add FP / FN only and do not reset
  the "previous frame" matches.
- IDSW: a matched gt id whose last matched tracker id (at any earlier time) differs.
  Frag: per gt id, the number of times it becomes tracked (matched now, unmatched in the previous
  active frame) minus one. MT / PT / ML: tracked ratio > 0.8, >= 0.2, the rest (ids that never
  appear included).
- MOTA = (TP - FP - IDSW) / max(1, TP + FN), MOTP = sum sim / max(1, TP), and the other fields of
  ``CLEAR._compute_final_fields``.

The continuation bonus makes a frame depend on the previous one. Instead of a frame loop, every
frame is first solved without bonus (one batched call, only the sub-problems where candidate pairs
compete for a row or column). Then the bonus pairs are guessed for all frames at once by carrying
each match forward along its run of consecutive candidate frames (a continued pair always keeps its
match: its 1000 bonus outweighs any two similarities <= 1), and the problems whose bonus changed are
solved again, batched, until the guess is stable. Finally the bonus implied by each previous
frame's actual matches is checked for every frame; problems where it differs are solved again and
their successors re-checked until nothing changes. A problem is consistent with its predecessor
once its bonus no longer changes, so this fixed point is TrackEval's frame-by-frame result
(induction over frames: the first frame has no bonus). In the default mode a problem whose current
matching already contains all its new bonus pairs, and was solved with a subset of them, is kept
without solving (it stays optimal).
"""
from __future__ import annotations

import numpy as np

from romp_fast.evaluation.tracking.assign import component_units, max_weight_matching, positive_units, ranges, solve
from romp_fast.evaluation.tracking.sequence import EPS, Sequence, argsort_int, lookup

INTEGER_FIELDS = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")
FLOAT_FIELDS = ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "sMOTA",
                "CLR_F1", "FP_per_frame", "MOTAL", "MOTP_sum")
SUMMED_FIELDS = INTEGER_FIELDS + ("MOTP_sum",)
CARRY_ROUNDS = 64  # rounds of the carried-bonus guess before the frame-by-frame check takes over


def previous_active(seq: Sequence):
    """For every gt (tracker) detection, the detection with the same id in the previous frame that
    has both gt and tracker detections, or -1 (TrackEval's "previous timestep"). Cached on seq."""
    if "previous_active" in seq._cache:
        return seq._cache["previous_active"]
    active = (seq.ng > 0) & (seq.nt > 0)
    aidx = np.where(active, np.cumsum(active) - 1, -1)
    Fa = int(active.sum())
    out = []
    for ids, frame, num in ((seq.gt_ids, seq.gt_frame, seq.num_gt_ids), (seq.tracker_ids, seq.tr_frame,
                                                                          seq.num_tracker_ids)):
        key = aidx[frame] * num + ids  # negative in frames that are not active
        valid = np.flatnonzero(key >= 0)
        prev = lookup(key[valid], valid, key - num, Fa * num)  # same id, one active frame earlier
        prev[key < num] = -1  # first active frame, or not active
        out.append(prev)
    seq._cache["previous_active"] = tuple(out)
    return seq._cache["previous_active"]


def check_threshold(threshold: float) -> None:
    # Above 2 eps every pair that passes "sim >= threshold - eps" has a positive score, so TrackEval's
    # "score > eps" filter keeps every assigned pair (and zero-similarity pairs never match).
    if not threshold > 2 * EPS:
        raise ValueError(f"threshold must be > 2 * eps = {2 * EPS:.3g}, got {threshold!r}")


def clear_matches(seq: Sequence, threshold: float = 0.5, exact: bool = False):
    """TrackEval's per-frame CLEAR matching, over the positive pairs (those under the threshold
    weigh 0, exactly as TrackEval zeroes them). Returns (edges, matched bool[K], row_match[Dg]: the
    tracker detection matched to each gt detection or -1, prev_gt[Dg])."""
    check_threshold(threshold)
    if exact:  # whole frames: the positive pairs, weight 0 where not a candidate (TrackEval's matrix)
        edges, units = positive_units(seq, exact)
    else:  # the sparser graph of candidate pairs splits into far smaller problems than HOTA's
        pos = seq.positive_edges()
        edges = pos.subset(pos.s >= threshold - EPS)
        units = component_units(edges, seq.num_gt_dets, seq.num_tracker_dets)
    cand = edges.s >= threshold - EPS  # every such pair scores > eps
    base = np.where(cand, edges.s, 0.0)
    prev_gt, prev_tr = previous_active(seq)
    pg, pt = prev_gt[edges.d], prev_tr[edges.e]  # the same two ids one active frame earlier
    if exact:
        open_units = np.arange(units.num_units)
        chosen = max_weight_matching(base, units, exact)
    else:
        # A problem whose candidate pairs share no row or column matches all of them, whatever the
        # bonus: only problems with competing candidates are ever solved.
        cd, ce = edges.d[cand], edges.e[cand]
        clash = np.zeros(len(edges), dtype=bool)
        clash[cand] = (np.bincount(cd, minlength=seq.num_gt_dets)[cd] > 1) | (
            np.bincount(ce, minlength=seq.num_tracker_dets)[ce] > 1)
        open_units = np.unique(units.unit[clash])
        chosen = cand.copy()
        idx, ok = solve(units, base, which=open_units)
        chosen[idx] = ok & cand[idx]
    is_open = np.zeros(units.num_units + 1, dtype=bool)  # [-1] stays False: lone pairs always match
    is_open[open_units] = True
    linked = np.flatnonzero(cand & (pg >= 0) & (pt >= 0) & is_open[units.unit])
    # the linked pairs grouped by the earlier gt detection, to revisit only what a change touches
    by_prev = linked[argsort_int(pg[linked])]
    prev_ptr = np.zeros(seq.num_gt_dets + 1, dtype=np.int64)
    np.cumsum(np.bincount(pg[linked], minlength=seq.num_gt_dets), out=prev_ptr[1:])

    cont = np.zeros(len(edges), dtype=bool)  # the bonus pairs implied by the current matches
    solved_with = np.zeros(len(edges), dtype=bool)  # the bonus pairs each problem was last solved with
    # Phase 1 (speed only): a pair matched in one frame stays matched while it remains a candidate in
    # the next active frames (its 1000 bonus outweighs any two similarities <= 1), so the bonus is
    # guessed from the matches carried forward along such runs, and every problem whose guess
    # changed is solved again, all at once. Crossing tracks thus settle in a few rounds instead of
    # one round per frame of the crossing. Phase 2 below checks the result frame by frame.
    prev_edge = _previous_edge(seq, edges, cand, pg, pt, linked)
    carry = _carry_forward(seq, edges, cand, linked, prev_edge)
    has = prev_edge >= 0
    k_has, p_has = linked[has], prev_edge[has]
    for _ in range(CARRY_ROUNDS):
        carried, birth_of = carry(chosen)
        on = carried[p_has]
        k_on, p_on = k_has[on], p_has[on]
        guess = np.zeros(len(edges), dtype=bool)
        guess[_oldest_per_row_and_column(k_on, lambda i: birth_of(p_on[np.searchsorted(k_on, i)]), edges,
                                         seq.num_gt_dets, seq.num_tracker_dets)] = True
        changed = guess != cont
        if not changed.any():
            break
        cont = guess
        todo = np.unique(units.unit[changed])
        if not exact:
            sel = units.edges_of(todo)
            bad = (solved_with[sel] & ~cont[sel]) | (cont[sel] & ~chosen[sel])
            todo = np.unique(units.unit[sel[bad]])
            if len(todo) == 0:
                continue
        idx, ok = solve(units, base, which=todo, exact=exact, bonus=cont)
        chosen[idx] = ok & cand[idx]
        solved_with[idx] = cont[idx]
    # Phase 2 (exact): the bonus implied by the previous frame's actual matches; problems whose
    # bonus differs are solved again, and the frames after them re-checked, until none changes.
    row_match = np.full(seq.num_gt_dets, -1, dtype=np.int64)
    row_match[edges.d[chosen]] = edges.e[chosen]
    check = linked
    while len(check):
        flip = check[(row_match[pg[check]] == pt[check]) != cont[check]]
        if len(flip) == 0:
            break
        cont[flip] = ~cont[flip]
        todo = np.unique(units.unit[flip])
        if not exact:
            # keep a matching that has all its new bonus pairs and was solved with a subset of them
            sel = units.edges_of(todo)
            bad = (solved_with[sel] & ~cont[sel]) | (cont[sel] & ~chosen[sel])
            todo = np.unique(units.unit[sel[bad]])
            if len(todo) == 0:
                break
        idx, ok = solve(units, base, which=todo, exact=exact, bonus=cont)
        ok &= cand[idx]
        chosen[idx] = ok
        solved_with[idx] = cont[idx]
        rows = np.unique(edges.d[idx])
        before = row_match[rows]
        row_match[rows] = -1
        row_match[edges.d[idx[ok]]] = edges.e[idx[ok]]
        moved = rows[row_match[rows] != before]
        check = by_prev[ranges(prev_ptr[moved], prev_ptr[moved + 1] - prev_ptr[moved])]
    return edges, chosen, row_match, prev_gt


def _previous_edge(seq, edges, cand, pg, pt, linked):
    """For each linked pair: the index of the same pair one active frame earlier if it was a
    candidate there, else -1."""
    keys = edges.d * seq.num_tracker_dets + edges.e  # sorted: edges come ordered by (d, e)
    q = pg[linked] * seq.num_tracker_dets + pt[linked]
    pos = np.searchsorted(keys, q).clip(max=max(len(keys) - 1, 0))
    hit = (keys[pos] == q) & cand[pos] if len(keys) else np.zeros(0, bool)
    return np.where(hit, pos, -1)


def _carry_forward(seq, edges, cand, linked, prev_edge):
    """A function of chosen[K] giving whether each pair was matched at this or an earlier frame of
    its run (the same pair, a candidate in consecutive active frames), and a function giving the
    frame where it was first matched in the run ("birth") for some pairs."""
    k = np.flatnonzero(cand)
    pair = seq.gt_ids[edges.d[k]] * seq.num_tracker_ids + seq.tracker_ids[edges.e[k]]
    order = k[argsort_int(pair)]  # each pair's candidate edges in frame order
    prev = np.full(len(edges), -1, dtype=np.int64)
    prev[linked] = prev_edge
    pos = np.arange(len(order))
    start = np.ones(len(order), dtype=bool)
    start[1:] = prev[order[1:]] != order[:-1]
    seg_first = np.flatnonzero(start)
    seg = np.cumsum(start) - 1
    frame = seq.gt_frame[edges.d[order]]
    first_of = np.zeros(len(edges), dtype=np.int64)

    def carry(chosen):
        carried = np.zeros(len(edges), dtype=bool)
        if len(order):
            first = np.minimum.reduceat(np.where(chosen[order], pos, len(order)), seg_first)[seg]
            carried[order] = first <= pos
            first_of[order] = np.minimum(first, len(order) - 1)
        return carried, lambda idx: frame[first_of[idx]]
    return carry


def _oldest_per_row_and_column(k, birth_of, edges, num_rows, num_cols):
    """Of bonus pairs k that compete for a row or a column, the one matched longest ago wins."""
    d, e = edges.d[k], edges.e[k]
    clash = (np.bincount(d, minlength=num_rows)[d] > 1) | (np.bincount(e, minlength=num_cols)[e] > 1)
    if not clash.any():
        return k
    kc = k[clash]
    kc = kc[np.argsort(birth_of(kc), kind="stable")]
    _, first_d = np.unique(edges.d[kc], return_index=True)
    _, first_e = np.unique(edges.e[kc], return_index=True)
    win = np.zeros(len(kc), dtype=bool)
    win[first_d] = True
    win_e = np.zeros(len(kc), dtype=bool)
    win_e[first_e] = True
    return np.r_[k[~clash], kc[win & win_e]]


def eval_clear(seq: Sequence, threshold: float = 0.5, exact: bool = False) -> dict:
    """TrackEval's ``CLEAR({'THRESHOLD': threshold}).eval_sequence(data)`` for one sequence."""
    check_threshold(threshold)
    res = {k: 0 for k in INTEGER_FIELDS + FLOAT_FIELDS}
    if seq.num_tracker_dets == 0:  # TrackEval's early exits (final fields not computed)
        res.update(CLR_FN=seq.num_gt_dets, ML=seq.num_gt_ids, MLR=1.0)
        return res
    if seq.num_gt_dets == 0:
        res.update(CLR_FP=seq.num_tracker_dets, MLR=1.0)
        return res
    edges, matched, row_match, prev_gt = clear_matches(seq, threshold, exact)
    d, e = edges.d[matched], edges.e[matched]
    tp = len(d)
    gid, tid = seq.gt_ids[d], seq.tracker_ids[e]
    order = argsort_int(gid)  # matches by gt id, in frame order
    g, t = gid[order], tid[order]
    idsw = int(((g[1:] == g[:-1]) & (t[1:] != t[:-1])).sum())
    gt_count = np.bincount(seq.gt_ids, minlength=seq.num_gt_ids)
    matched_count = np.bincount(gid, minlength=seq.num_gt_ids)
    ratio = matched_count[gt_count > 0] / gt_count[gt_count > 0]
    mt = int((ratio > 0.8).sum())
    pt = int((ratio >= 0.2).sum()) - mt
    p = prev_gt[d]
    starts = (p < 0) | (row_match[np.maximum(p, 0)] < 0)
    frag_count = np.bincount(gid[starts], minlength=seq.num_gt_ids)
    res.update(CLR_TP=tp, CLR_FN=seq.num_gt_dets - tp, CLR_FP=seq.num_tracker_dets - tp, IDSW=idsw, MT=mt,
               PT=pt, ML=seq.num_gt_ids - mt - pt, Frag=int((frag_count[frag_count > 0] - 1).sum()),
               MOTP_sum=float(edges.s[matched].sum()), CLR_Frames=seq.num_timesteps)
    return final_fields(res)


def final_fields(res: dict) -> dict:
    """TrackEval ``CLEAR._compute_final_fields``."""
    tp, fn, fp, idsw = res["CLR_TP"], res["CLR_FN"], res["CLR_FP"], res["IDSW"]
    num_gt_ids = res["MT"] + res["ML"] + res["PT"]
    res["MTR"] = res["MT"] / np.maximum(1.0, num_gt_ids)
    res["MLR"] = res["ML"] / np.maximum(1.0, num_gt_ids)
    res["PTR"] = res["PT"] / np.maximum(1.0, num_gt_ids)
    res["CLR_Re"] = tp / np.maximum(1.0, tp + fn)
    res["CLR_Pr"] = tp / np.maximum(1.0, tp + fp)
    res["MODA"] = (tp - fp) / np.maximum(1.0, tp + fn)
    res["MOTA"] = (tp - fp - idsw) / np.maximum(1.0, tp + fn)
    res["MOTP"] = res["MOTP_sum"] / np.maximum(1.0, tp)
    res["sMOTA"] = (res["MOTP_sum"] - fp - idsw) / np.maximum(1.0, tp + fn)
    res["CLR_F1"] = tp / np.maximum(1.0, tp + 0.5 * fn + 0.5 * fp)
    res["FP_per_frame"] = fp / np.maximum(1.0, res["CLR_Frames"])
    safe_log_idsw = np.log10(idsw) if idsw > 0 else idsw
    res["MOTAL"] = (tp - fp - safe_log_idsw) / np.maximum(1.0, tp + fn)
    for k in FLOAT_FIELDS:
        res[k] = float(res[k])
    return res


def combine_clear(results: list[dict]) -> dict:
    """TrackEval ``CLEAR.combine_sequences``: counts and MOTP_sum summed, ratios recomputed."""
    res = {k: sum(r[k] for r in results) for k in SUMMED_FIELDS}
    return final_fields(res)
