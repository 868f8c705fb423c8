"""The default path of :func:`~romp_fast.evaluation.tracking.eval_sequence`: every count HOTA, CLEAR
and Identity need, accumulated in one native call (csrc/cpu/tracking_counts.cpp); the final fields
are then computed by the same functions as the numpy path (:mod:`.hota`, :mod:`.clear`,
:mod:`.identity`).

Two entry points: :func:`eval_lists` reads TrackEval's per-frame lists in place
(``romp_fast._C._tracking_counts_lists``); :func:`eval_flat` takes a prepared
:class:`~.sequence.Sequence` (``torch.ops.romp_fast._tracking_counts``). Both return None where
they do not apply (no extension, TrackEval's early exits for sequences without gt or tracker
detections, a non-finite threshold, and for the lists: arrays not read in place or values the
kernel rejects); the caller then prepares a Sequence with ``from_trackeval``, which names any
offending key, frame and shape, and the numpy modules stay the reference and the fallback.
"""
from __future__ import annotations

import numpy as np
import torch

from romp_fast import ops
from romp_fast.ops import _C
from romp_fast.evaluation.tracking import clear, hota, identity
from romp_fast.evaluation.tracking.sequence import EPS, Sequence

_BITS = {"HOTA": 1, "CLEAR": 2, "Identity": 4}
DENSE_LIMIT = 1 << 22  # id-pair spaces up to this size use a dense table in the kernel, larger a hash map
_ALPHA_MIN = hota.ALPHAS - EPS  # TrackEval's "sim >= alpha - eps"


def available() -> bool:
    return ops.native_available("cpu") and hasattr(torch.ops.romp_fast, "_tracking_counts")


def _applies(F, Dg, Dt, metrics, threshold) -> bool:
    if not available() or Dg == 0 or Dt == 0 or F == 0:  # TrackEval's early exits: the numpy path has them
        return False
    if not np.isfinite(threshold):  # compared as TrackEval compares it, on the numpy path
        return False
    if "CLEAR" in metrics:
        clear.check_threshold(threshold)
    return True


def _mask(metrics) -> int:
    return sum(_BITS[m] for m in set(metrics))


def _counts_from_lists(data: dict, metrics_mask: int, threshold: float, dense_limit: int):
    """The counts straight from TrackEval's per-frame lists (no concatenation), or None when the
    lists are not int64 / float64 numpy arrays of the right shapes."""
    gl, tl, sl = data["gt_ids"], data["tracker_ids"], data["similarity_scores"]
    if type(gl) is not list or type(tl) is not list or type(sl) is not list:
        return None
    G, T = int(data["num_gt_ids"]), int(data["num_tracker_ids"])
    out = _C._tracking_counts_lists(gl, tl, sl, G, T, _ALPHA_MIN.tolist(), float(threshold - EPS), float(threshold),
                                    metrics_mask, int(dense_limit))
    if out is None or out[3] != int(data["num_gt_dets"]) or out[4] != int(data["num_tracker_dets"]):
        return None  # the numpy path names the mismatch
    H, c, motp = out[:3]
    return np.asarray(H).reshape(5, -1), list(c), motp


def eval_lists(data: dict, metrics, threshold: float = 0.5, *, dense_limit: int = DENSE_LIMIT) -> dict | None:
    """``eval_sequence(data, ...)`` on TrackEval's per-sequence dict read in place, or None."""
    try:
        F, G = int(data["num_timesteps"]), int(data["num_gt_ids"])
        Dg, Dt = int(data["num_gt_dets"]), int(data["num_tracker_dets"])
        if any(len(data[k]) != F for k in ("gt_ids", "tracker_ids", "similarity_scores")):
            return None
    except (KeyError, TypeError, ValueError):
        return None
    if not _applies(F, Dg, Dt, metrics, threshold):
        return None
    try:
        got = _counts_from_lists(data, _mask(metrics), threshold, dense_limit)
    except ValueError:
        return None  # invalid values: from_trackeval names the offending frame and value
    return None if got is None else _results(*got, metrics, F, G, Dg, Dt)


def eval_flat(seq: Sequence, metrics, threshold: float = 0.5, *, dense_limit: int = DENSE_LIMIT) -> dict | None:
    """``eval_sequence(seq, ...)`` on a prepared (validated, flat) Sequence, or None."""
    F, G, T, Dg, Dt = seq.num_timesteps, seq.num_gt_ids, seq.num_tracker_ids, seq.num_gt_dets, seq.num_tracker_dets
    if not _applies(F, Dg, Dt, metrics, threshold):
        return None
    t = torch.from_numpy
    H, counts, sums = torch.ops.romp_fast._tracking_counts(
        t(seq.sim), t(seq.gt_ids), t(seq.tracker_ids), t(seq.gt_ptr), t(seq.tr_ptr), G, T, t(_ALPHA_MIN),
        float(threshold - EPS), float(threshold), _mask(metrics), int(dense_limit))
    return _results(H.numpy(), counts.tolist(), float(sums[0]), metrics, F, G, Dg, Dt)


def _results(H, c, motp, metrics, F, G, Dg, Dt) -> dict:
    out = {}
    for m in metrics:
        if m == "HOTA":
            res = hota._empty_result()
            tp = H[0].copy()
            norm = np.maximum(1, tp)
            res.update(HOTA_TP=tp, HOTA_FN=Dg - tp, HOTA_FP=Dt - tp, AssA=H[2] / norm, AssRe=H[3] / norm,
                       AssPr=H[4] / norm, LocA=np.maximum(1e-10, H[1]) / np.maximum(1e-10, tp))
            out[m] = hota._final_fields(res)
        elif m == "CLEAR":
            res = {k: 0 for k in clear.INTEGER_FIELDS + clear.FLOAT_FIELDS}
            tp, idsw, mt, pt, frag = c[:5]
            res.update(CLR_TP=tp, CLR_FN=Dg - tp, CLR_FP=Dt - tp, IDSW=idsw, MT=mt, PT=pt, ML=G - mt - pt, Frag=frag,
                       MOTP_sum=float(motp), CLR_Frames=F)
            out[m] = clear.final_fields(res)
        else:
            res = {k: 0 for k in identity.INTEGER_FIELDS + identity.FLOAT_FIELDS}
            res.update(IDTP=c[5], IDFN=Dg - c[5], IDFP=Dt - c[5])
            out[m] = identity.final_fields(res)
    return out
