"""The default path of :func:`~romp_fast.evaluation.tracking.eval_sequence`: every count HOTA, CLEAR
and Identity need, accumulated in one native call (``torch.ops.romp_fast._tracking_counts``,
csrc/cpu/tracking_counts.cpp) over the sequence's flat arrays; the final fields are then computed
by the same functions as the numpy path (:mod:`.hota`, :mod:`.clear`, :mod:`.identity`).

The numpy modules stay the reference and the fallback: :func:`eval_native` returns None whenever
it does not apply (no extension, TrackEval's early exits for sequences without gt or tracker
detections, or input the kernel rejects: the numpy path then raises its error naming the key,
frame and shape).
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


def _flat(data: dict):
    """TrackEval's per-frame lists -> flat arrays, or None when anything looks off (the numpy path
    then validates and names the problem)."""
    try:
        F = int(data["num_timesteps"])
        G, T = int(data["num_gt_ids"]), int(data["num_tracker_ids"])
        gl, tl, sl = data["gt_ids"], data["tracker_ids"], data["similarity_scores"]
        if len(gl) != F or len(tl) != F or len(sl) != F or F == 0:
            return None
        ng = np.fromiter(map(len, gl), np.int64, F)
        nt = np.fromiter(map(len, tl), np.int64, F)
        gt, tr = np.concatenate(gl), np.concatenate(tl)
        if gt.ndim != 1 or tr.ndim != 1 or gt.dtype.kind not in "iu" or tr.dtype.kind not in "iu":
            return None
        if len(gt) != int(data["num_gt_dets"]) or len(tr) != int(data["num_tracker_dets"]):
            return None
        if [s.shape for s in sl] != list(zip(ng.tolist(), nt.tolist())):
            return None
        sim = np.concatenate(sl, axis=None)
        if sim.dtype.kind != "f":
            return None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    ptr = np.zeros((2, F + 1), dtype=np.int64)
    np.cumsum(ng, out=ptr[0, 1:])
    np.cumsum(nt, out=ptr[1, 1:])
    return (F, G, T, gt.astype(np.int64, copy=False), tr.astype(np.int64, copy=False), ptr[0], ptr[1],
            sim.astype(np.float64, copy=False))


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


def _counts_from_flat(flat, metrics_mask: int, threshold: float, dense_limit: int):
    F, G, T, gt, tr, gt_ptr, tr_ptr, sim = flat
    t = torch.from_numpy
    H, counts, sums = torch.ops.romp_fast._tracking_counts(
        t(sim), t(gt), t(tr), t(gt_ptr), t(tr_ptr), G, T, t(_ALPHA_MIN), float(threshold - EPS), float(threshold),
        metrics_mask, int(dense_limit))
    return H.numpy(), counts.tolist(), float(sums[0])


def eval_native(data, metrics, threshold: float = 0.5, *, dense_limit: int = DENSE_LIMIT,
                from_lists: bool = True) -> dict | None:
    """``eval_sequence(data, metrics=metrics, threshold=threshold)`` through the native kernel, or
    None where it does not apply. ``from_lists=False`` skips the per-frame-list entry point (tests)."""
    if not available():
        return None
    if isinstance(data, Sequence):
        s = data
        F, G, T, Dg, Dt = s.num_timesteps, s.num_gt_ids, s.num_tracker_ids, s.num_gt_dets, s.num_tracker_dets
    else:
        try:
            F, G, T = int(data["num_timesteps"]), int(data["num_gt_ids"]), int(data["num_tracker_ids"])
            Dg, Dt = int(data["num_gt_dets"]), int(data["num_tracker_dets"])
            if any(len(data[k]) != F for k in ("gt_ids", "tracker_ids", "similarity_scores")):
                return None
        except (KeyError, TypeError, ValueError):
            return None
    if Dg == 0 or Dt == 0 or F == 0:  # TrackEval's early exits: the numpy path has them
        return None
    if not np.isfinite(threshold):  # compared as TrackEval compares it, on the numpy path
        return None
    if "CLEAR" in metrics:
        clear.check_threshold(threshold)
    mask = sum(_BITS[m] for m in set(metrics))
    try:
        got = None
        if isinstance(data, Sequence):
            got = _counts_from_flat((F, G, T, s.gt_ids, s.tracker_ids, s.gt_ptr, s.tr_ptr, s.sim), mask, threshold,
                                    dense_limit)
        elif from_lists:
            got = _counts_from_lists(data, mask, threshold, dense_limit)
        if got is None:
            flat = _flat(data)
            if flat is None:
                return None
            got = _counts_from_flat(flat, mask, threshold, dense_limit)
    except (RuntimeError, ValueError):
        return None  # invalid input: the numpy path names the offending frame and value
    H, c, motp = got
    return _results(H, c, motp, metrics, F, G, Dg, Dt)


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
