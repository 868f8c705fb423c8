"""Identity metrics (Ristani et al., "Performance Measures and a Data Set for Multi-Target,
Multi-Camera Tracking", ECCV workshops 2016) exactly as TrackEval computes them
(``trackeval/metrics/identity.py``, PyPI trackeval 1.3.0).

TrackEval counts, for every (gt id, tracker id), the frames where their similarity is
``>= threshold`` (no eps here), then solves one ``(G + T) x (G + T)`` assignment whose cost is
IDFN + IDFP, with dummy rows and columns for unmatched ids. Each gt row pays its detection count
minus the potential matches of its column, each tracker column likewise, so the cost is
``sum(n_g) + sum(n_t) - 2 * sum(matched potential matches)``: minimising it is a maximum-weight
matching of the ``G x T`` potential-match counts. That is what is solved here, split into the
connected components of the count matrix and batched through ``linear_assignment``. IDTP (the
optimal value) is unique even where the matching is not.
"""
from __future__ import annotations

import numpy as np

from romp_fast.evaluation.tracking.assign import component_units, max_weight_matching
from romp_fast.evaluation.tracking.sequence import Edges, Sequence

INTEGER_FIELDS = ("IDTP", "IDFN", "IDFP")
FLOAT_FIELDS = ("IDF1", "IDR", "IDP")


def id_matching(seq: Sequence, d: np.ndarray, e: np.ndarray, exact: bool = False):
    """Potential-match counts of the pairs (gt detection ``d``, tracker detection ``e``) and the
    optimal id matching. Returns (gt id[P], tracker id[P], count[P], matched bool[P])."""
    G, T = seq.num_gt_ids, seq.num_tracker_ids
    key = seq.gt_ids[d] * T + seq.tracker_ids[e]
    if G * T <= 4_000_000:
        counts = np.bincount(key, minlength=G * T)
        pairs = np.flatnonzero(counts)
        counts = counts[pairs]
    else:
        pairs, counts = np.unique(key, return_counts=True)
    g, t = pairs // T, pairs % T
    ed = Edges(g, t, counts.astype(np.float64))
    # one problem per connected component of the count matrix (its rows are gt ids: sorted)
    return g, t, counts, max_weight_matching(ed.s, component_units(ed, G, T), exact=exact)


def eval_identity(seq: Sequence, threshold: float = 0.5, exact: bool = False) -> dict:
    """TrackEval's ``Identity({'THRESHOLD': threshold}).eval_sequence(data)`` for one sequence."""
    res = {k: 0 for k in INTEGER_FIELDS + FLOAT_FIELDS}
    if seq.num_tracker_dets == 0:  # TrackEval's early exits
        res["IDFN"] = seq.num_gt_dets
        return res
    if seq.num_gt_dets == 0:
        res["IDFP"] = seq.num_tracker_dets
        return res
    if threshold > 0:
        pos = seq.positive_edges()
        ok = pos.s >= threshold
        d, e = pos.d[ok], pos.e[ok]
    else:
        allowed = seq.edges(seq.sim >= threshold)
        d, e = allowed.d, allowed.e
    _, _, counts, matched = id_matching(seq, d, e, exact)
    idtp = int(counts[matched].sum())
    res.update(IDTP=idtp, IDFN=seq.num_gt_dets - idtp, IDFP=seq.num_tracker_dets - idtp)
    return final_fields(res)


def final_fields(res: dict) -> dict:
    """TrackEval ``Identity._compute_final_fields``."""
    tp, fn, fp = res["IDTP"], res["IDFN"], res["IDFP"]
    res["IDR"] = float(tp / np.maximum(1.0, tp + fn))
    res["IDP"] = float(tp / np.maximum(1.0, tp + fp))
    res["IDF1"] = float(tp / np.maximum(1.0, tp + 0.5 * fp + 0.5 * fn))
    return res


def combine_identity(results: list[dict]) -> dict:
    """TrackEval ``Identity.combine_sequences``: counts summed, ratios recomputed."""
    return final_fields({k: sum(r[k] for r in results) for k in INTEGER_FIELDS})
