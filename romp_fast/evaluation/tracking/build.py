"""Detections (:class:`~.formats.Dets`) -> a :class:`~.sequence.Sequence` the metrics evaluate.

- Similarities are computed on frame-padded arrays, a chunk of frames at a time (bounded memory),
  with a function from :mod:`.similarity` or a user callable.
- Ids are relabelled 0..n-1 in sorted order, as TrackEval does.
- MOTChallenge preprocessing (TrackEval ``MotChallenge2DBox.get_preprocessed_seq_data``): per frame,
  tracker boxes are matched to *all* ground-truth boxes (IoU >= 0.5, the same maximum-weight rule as
  CLEAR without its bonus); tracker boxes matched to a distractor class (person on vehicle, static
  person, distractor, reflection; plus non-MOT vehicle for MOT20) are removed; then only
  pedestrian ground truth with a non-zero "consider" flag is kept.
"""
from __future__ import annotations

import inspect

import numpy as np

from romp_fast.evaluation.benchmarks._io import BenchmarkFileError
from romp_fast.evaluation.tracking.assign import max_weight_matching, positive_units, ranges
from romp_fast.evaluation.tracking.formats import Dets
from romp_fast.evaluation.tracking.sequence import EPS, Sequence, argsort_int
from romp_fast.evaluation.tracking.similarity import SIMILARITIES, boxes_from_joints

MOT_CLASSES = {"pedestrian": 1, "person_on_vehicle": 2, "car": 3, "bicycle": 4, "motorbike": 5,
               "non_mot_vehicle": 6, "static_person": 7, "distractor": 8, "occluder": 9,
               "occluder_on_ground": 10, "occluder_full": 11, "reflection": 12, "crowd": 13}
DISTRACTORS = (2, 7, 8, 12)  # TrackEval's distractor_class_names for MOT16/17
_CHUNK_ELEMENTS = 4_000_000


def _by_frame(dets: Dets, F: int):
    order = argsort_int(dets.frame)
    dets = dets.take(order)
    counts = np.bincount(dets.frame, minlength=F)
    ptr = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return dets, ptr


def _field(dets: Dets, name: str, where: str, box_source: str, box_scale):
    if name == "boxes" and (box_source == "joints" or dets.boxes is None):
        if dets.joints2d is None:
            raise BenchmarkFileError(f"{where}: IoU needs boxes or 2D joints to build them from, the file has neither")
        return boxes_from_joints(dets.joints2d, scale=box_scale)
    value = getattr(dets, name, None)
    if value is None:
        raise BenchmarkFileError(f"{where}: the similarity needs '{name}', which the file does not have")
    return value


def _padded(values, ptr, frames, width):
    """values[n, ...] of the given frames -> [len(frames), width, ...] (zeros as padding)."""
    counts = ptr[frames + 1] - ptr[frames]
    idx = ranges(ptr[frames], counts)
    f = np.repeat(np.arange(len(frames)), counts)
    out = np.zeros((len(frames), width) + values.shape[1:])
    out[f, idx - ptr[frames][f]] = values[idx]
    return out


def similarity_matrix(gt: Dets, gt_ptr, pred: Dets, tr_ptr, F, similarity="iou", *, where=("gt", "pred"),
                      pred_boxes="auto", box_scale=(1.0, 1.0), **sim_options) -> np.ndarray:
    """Every frame's ``[n_gt, n_pred]`` similarity matrix, raveled and concatenated (frame-major)."""
    fn = SIMILARITIES.get(similarity) if isinstance(similarity, str) else similarity
    if fn is None:
        raise ValueError(f"unknown similarity {similarity!r}; valid: {sorted(SIMILARITIES)} or a callable")
    name = getattr(fn, "FIELDS", ("boxes",))[0]
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in sim_options.items() if k in params}  # e.g. zero_distance for joints3d
    gsrc = "file" if gt.boxes is not None else "joints"
    psrc = ("file" if pred.boxes is not None else "joints") if pred_boxes == "auto" else pred_boxes
    if psrc not in ("file", "joints"):
        raise ValueError(f"pred_boxes must be 'auto', 'file' or 'joints', got {pred_boxes!r}")
    gv = _field(gt, name, where[0], gsrc, box_scale) if len(gt) else None
    pv = _field(pred, name, where[1], psrc, box_scale) if len(pred) else None
    ng, nt = np.diff(gt_ptr), np.diff(tr_ptr)
    if gv is not None and pv is not None and gv.shape[1:] != pv.shape[1:]:
        raise BenchmarkFileError(f"{where[0]} '{name}' are {list(gv.shape[1:])} per detection but {where[1]} "
                                 f"'{name}' are {list(pv.shape[1:])}")
    out = []
    active = np.flatnonzero((ng > 0) & (nt > 0))
    per = int(np.prod(gv.shape[1:])) if gv is not None else 1
    i = 0
    while i < len(active):  # chunks of consecutive active frames within the memory bound
        M, N, j = 0, 0, i
        while j < len(active):
            M2, N2 = max(M, ng[active[j]]), max(N, nt[active[j]])
            if j > i and (j - i + 1) * M2 * N2 * per > _CHUNK_ELEMENTS:
                break
            M, N, j = M2, N2, j + 1
        frames = active[i:j]
        sim = np.asarray(fn(_padded(gv, gt_ptr, frames, M), _padded(pv, tr_ptr, frames, N), **kwargs))
        if sim.shape != (len(frames), M, N):
            raise ValueError(f"similarity returned {list(sim.shape)}, expected [frames, M, N] = {[len(frames), M, N]}")
        valid = ((np.arange(M)[None, :, None] < ng[frames][:, None, None])
                 & (np.arange(N)[None, None, :] < nt[frames][:, None, None]))
        out.append(sim[valid])
        i = j
    return np.concatenate(out) if out else np.zeros(0)


def _relabel(ids):
    uniq, inv = np.unique(ids, return_inverse=True)
    return inv.astype(np.int64), len(uniq)


def _check_unique(dets: Dets, where, timeline=None):
    _, local = np.unique(dets.ids, return_inverse=True)
    n = int(local.max()) + 1 if len(local) else 1
    key = dets.frame * n + local
    s = np.sort(key)
    dup = s[1:][s[1:] == s[:-1]]
    if len(dup):
        f = int(dup[0] // n)
        label = timeline[f] if timeline is not None else f + 1
        ident = dets.ids[np.flatnonzero(key == dup[0])[0]]
        raise BenchmarkFileError(f"{where}: id {ident} appears twice in frame {label}")


def build_sequence(gt: Dets, pred: Dets, num_timesteps: int, *, similarity="iou", where=("gt", "pred"),
                   timeline=None, keep_frames=False, **sim_options) -> Sequence:
    """A Sequence from two sets of detections (ids relabelled, frames ordered)."""
    F = int(num_timesteps)
    gt, gt_ptr = _by_frame(gt, F)
    pred, tr_ptr = _by_frame(pred, F)
    _check_unique(gt, where[0], timeline)
    _check_unique(pred, where[1], timeline)
    sim = similarity_matrix(gt, gt_ptr, pred, tr_ptr, F, similarity, where=where, **sim_options)
    ng, nt = np.diff(gt_ptr), np.diff(tr_ptr)
    sim_ptr = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(ng * nt, out=sim_ptr[1:])
    if len(sim) and not (np.isfinite(sim).all() and sim.min() >= 0):
        raise BenchmarkFileError(f"{where[0]} / {where[1]}: similarities must be finite and >= 0 "
                                 f"(NaN or negative values: are boxes or joints corrupted?)")
    gids, G = _relabel(gt.ids)
    tids, T = _relabel(pred.ids)
    frames = [sim[sim_ptr[f]:sim_ptr[f + 1]].reshape(ng[f], nt[f]) for f in range(F)] if keep_frames else None
    seq = Sequence(F, G, T, gids, tids, gt_ptr, tr_ptr, sim, sim_ptr, frames)
    seq._cache["gt_dets"], seq._cache["pred_dets"] = gt, pred
    return seq


def mot_preprocess(gt: Dets, pred: Dets, num_timesteps: int, *, benchmark="MOT17", where=("gt", "pred"),
                   exact=False, **build_options):
    """TrackEval's MOTChallenge preprocessing; returns the (gt, pred) detections to evaluate."""
    if gt.has_classes:
        bad = np.setdiff1d(np.unique(gt.classes), list(MOT_CLASSES.values()))
        if len(bad):
            raise BenchmarkFileError(f"{where[0]}: invalid MOT class ids {bad.tolist()} (valid 1..13); "
                                     "pass preprocess=False to evaluate every row")
        distractors = DISTRACTORS + ((6,) if benchmark.upper() == "MOT20" else ())
        raw = build_sequence(gt, pred, num_timesteps, where=where, keep_frames=exact, **build_options)
        edges, units = positive_units(raw, exact)  # CLEAR's rule without the bonus
        chosen = max_weight_matching(np.where(edges.s >= 0.5 - EPS, edges.s, 0.0), units, exact=exact)
        g_sorted, p_sorted = raw._cache["gt_dets"], raw._cache["pred_dets"]
        drop = np.zeros(len(p_sorted), dtype=bool)
        hit = chosen & np.isin(g_sorted.classes[edges.d], distractors)
        drop[edges.e[hit]] = True
        pred = p_sorted.take(~drop)
        gt = g_sorted.take((g_sorted.consider != 0) & (g_sorted.classes == MOT_CLASSES["pedestrian"]))
    elif gt.consider is not None:
        gt = gt.take(gt.consider != 0)
    return gt, pred
