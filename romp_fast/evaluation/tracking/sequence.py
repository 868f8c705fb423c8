"""One tracking sequence, validated and flattened so every metric works on whole-sequence arrays.

TrackEval's per-sequence ``data`` dict holds one small array per frame. :class:`Sequence` keeps the
same information as a few flat arrays (frame-major, and row-major inside each frame's similarity
matrix), with offsets per frame, so the metrics never loop over frames in Python:

- ``gt_ids[Dg]`` / ``tracker_ids[Dt]``: the id of every detection, frames one after another;
  ``gt_ptr[F + 1]`` / ``tr_ptr[F + 1]`` are each frame's first detection.
- ``sim[E]``: every frame's ``[n_gt, n_tracker]`` similarity matrix, raveled and concatenated;
  ``sim_ptr[F + 1]`` are the offsets.
- :meth:`Sequence.edges` turns a mask over ``sim`` into (frame, gt detection, tracker detection,
  similarity) arrays: the sparse pairs a metric cares about.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EPS = float(np.finfo(float).eps)  # TrackEval's "np.finfo('float').eps" in every threshold test
_DENSE_LIMIT = 20_000_000  # key spaces up to this size use a dense table instead of sorting

REQUIRED_KEYS = ("num_timesteps", "num_gt_ids", "num_tracker_ids", "num_gt_dets", "num_tracker_dets",
                 "gt_ids", "tracker_ids", "similarity_scores")


@dataclass
class Edges:
    """Sparse (gt detection, tracker detection) pairs: ``d[K]`` (global gt detection index),
    ``e[K]`` (global tracker detection index) and ``s[K]`` (similarity), sorted by ``d`` then ``e``
    (the order of ``Sequence.sim``)."""
    d: np.ndarray
    e: np.ndarray
    s: np.ndarray

    def __len__(self):
        return len(self.d)

    def subset(self, keep) -> "Edges":
        return Edges(self.d[keep], self.e[keep], self.s[keep])


def argsort_int(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative integers below 2**32, as one or two 16-bit radix passes
    (numpy's stable sort is a radix sort only for 16-bit types; timsort on int64 is ~10x slower)."""
    keys = np.asarray(keys)
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    top = int(keys.max())
    if top < 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    if top >= 1 << 32:
        return np.argsort(keys, kind="stable")
    first = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    return first[np.argsort((keys[first] >> 16).astype(np.uint16), kind="stable")]


@dataclass
class Sequence:
    num_timesteps: int
    num_gt_ids: int
    num_tracker_ids: int
    gt_ids: np.ndarray
    tracker_ids: np.ndarray
    gt_ptr: np.ndarray
    tr_ptr: np.ndarray
    sim: np.ndarray
    sim_ptr: np.ndarray
    frames: list | None = field(default=None, repr=False)  # the caller's per-frame matrices, if any
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_gt_dets(self) -> int:
        return len(self.gt_ids)

    @property
    def num_tracker_dets(self) -> int:
        return len(self.tracker_ids)

    @property
    def ng(self) -> np.ndarray:
        return np.diff(self.gt_ptr)

    @property
    def nt(self) -> np.ndarray:
        return np.diff(self.tr_ptr)

    @property
    def gt_frame(self) -> np.ndarray:
        if "gt_frame" not in self._cache:
            self._cache["gt_frame"] = np.repeat(np.arange(self.num_timesteps), self.ng)
        return self._cache["gt_frame"]

    @property
    def tr_frame(self) -> np.ndarray:
        if "tr_frame" not in self._cache:
            self._cache["tr_frame"] = np.repeat(np.arange(self.num_timesteps), self.nt)
        return self._cache["tr_frame"]

    def edges(self, mask: np.ndarray) -> Edges:
        """The pairs where ``mask`` (bool[E] over ``sim``) is True."""
        idx = np.flatnonzero(mask)
        f = np.searchsorted(self.sim_ptr, idx, side="right") - 1
        local = idx - self.sim_ptr[f]
        nt = self.nt[f]
        r = local // nt
        return Edges(self.gt_ptr[f] + r, self.tr_ptr[f] + (local - r * nt), self.sim[idx])

    def frame_rc(self, edges: Edges):
        """(frame, row, column) of each pair inside its frame's similarity matrix."""
        f = self.gt_frame[edges.d]
        return f, edges.d - self.gt_ptr[f], edges.e - self.tr_ptr[f]

    def positive_edges(self) -> Edges:
        """Pairs with a positive similarity (cached: HOTA, CLEAR and Identity all start here)."""
        if "positive" not in self._cache:
            self._cache["positive"] = self.edges(self.sim > 0)
        return self._cache["positive"]

    def edges_at_least(self, threshold: float) -> Edges:
        """Pairs with ``sim >= threshold``, taken from the positive pairs when that is a subset."""
        if threshold > 0:
            pos = self.positive_edges()
            return pos.subset(pos.s >= threshold)
        return self.edges(self.sim >= threshold)


def lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, size: int) -> np.ndarray:
    """``values[i]`` where ``keys[i] == q`` for each query (keys unique, all in [0, size)), else -1."""
    out = np.full(len(queries), -1, dtype=np.int64)
    if len(keys) == 0 or len(queries) == 0:
        return out
    ok = (queries >= 0) & (queries < size)
    if size <= _DENSE_LIMIT:
        table = np.full(size, -1, dtype=np.int64)
        table[keys] = values
        out[ok] = table[queries[ok]]
        return out
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    pos = np.searchsorted(sk, queries).clip(max=len(sk) - 1)
    hit = ok & (sk[pos] == queries)
    out[hit] = values[order[pos[hit]]]
    return out


def _has_duplicates(keys: np.ndarray, size: int) -> np.ndarray:
    """Keys that occur more than once."""
    if size <= _DENSE_LIMIT:
        counts = np.bincount(keys, minlength=size)
        return np.flatnonzero(counts > 1)
    s = np.sort(keys)
    return np.unique(s[1:][s[1:] == s[:-1]])


def _flat_ids(name, arrays, F, num_ids):
    lens = np.fromiter(map(len, arrays), dtype=np.int64, count=F)
    try:
        flat = np.concatenate(arrays) if F else np.zeros(0, np.int64)
    except ValueError:
        flat = np.zeros(0)
    if flat.ndim != 1 or len(flat) != lens.sum():
        t = next(t for t, a in enumerate(arrays) if np.ndim(a) != 1)
        raise ValueError(f"{name}[{t}] must be a 1-D array of ids, got shape {list(np.shape(arrays[t]))}")
    if flat.dtype.kind not in "iu":
        if flat.dtype.kind != "f" or not np.array_equal(flat, np.round(flat)):
            raise ValueError(f"{name} must hold integer ids, got dtype {flat.dtype}")
    flat = flat.astype(np.int64, copy=False)
    if len(flat) and (flat.min() < 0 or flat.max() >= num_ids):
        bad = int(np.flatnonzero((flat < 0) | (flat >= num_ids))[0])
        t = int(np.searchsorted(np.cumsum(lens), bad, side="right"))
        raise ValueError(f"{name}[{t}] holds id {int(flat[bad])}, outside [0, num_{name[:-1]}s = {num_ids})")
    ptr = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    dup = _has_duplicates(np.repeat(np.arange(F) * max(num_ids, 1), lens) + flat, F * max(num_ids, 1))
    if len(dup):
        t, i = divmod(int(dup[0]), max(num_ids, 1))
        raise ValueError(f"{name}[{t}] repeats id {i} (ids must be unique within a frame)")
    return flat, ptr


def from_trackeval(data: dict, keep_frames: bool = False) -> Sequence:
    """Validates TrackEval's per-sequence dict and flattens it.

    ``keep_frames`` keeps the caller's per-frame matrices (the exact mode sums them the way
    TrackEval does). Errors name the offending key, frame and shape.
    """
    if isinstance(data, Sequence):
        return data
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise KeyError(f"tracking data is missing {missing}; TrackEval's per-sequence dict needs {list(REQUIRED_KEYS)}")
    F = int(data["num_timesteps"])
    G, T = int(data["num_gt_ids"]), int(data["num_tracker_ids"])
    for k in ("gt_ids", "tracker_ids", "similarity_scores"):
        if len(data[k]) != F:
            raise ValueError(f"{k} has {len(data[k])} frames, num_timesteps = {F}")
    gt, gt_ptr = _flat_ids("gt_ids", data["gt_ids"], F, G)
    tr, tr_ptr = _flat_ids("tracker_ids", data["tracker_ids"], F, T)
    sims = data["similarity_scores"]
    ng, nt = np.diff(gt_ptr), np.diff(tr_ptr)
    if not all(isinstance(s, np.ndarray) for s in sims):
        sims = [np.asarray(s, dtype=np.float64) for s in sims]
    want = list(zip(ng.tolist(), nt.tolist()))
    if [s.shape for s in sims] != want:
        t = next(t for t, s in enumerate(sims) if s.shape != want[t])
        raise ValueError(f"similarity_scores[{t}] must be [n_gt, n_tracker] = {list(want[t])}, "
                         f"got {list(sims[t].shape)}")
    sim = np.concatenate([s.ravel() for s in sims]).astype(np.float64, copy=False) if F else np.zeros(0)
    if len(sim):
        lo, hi = sim.min(), sim.max()
        if not (lo >= 0 and hi < np.inf):
            bad = int(np.flatnonzero(~((sim >= 0) & (sim < np.inf)))[0])
            sizes = np.cumsum(ng * nt)
            t = int(np.searchsorted(sizes, bad, side="right"))
            raise ValueError(f"similarity_scores[{t}] holds {sim[bad]!r}; similarities must be finite and >= 0")
    sim_ptr = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(ng * nt, out=sim_ptr[1:])
    for k, got in (("num_gt_dets", len(gt)), ("num_tracker_dets", len(tr))):
        if int(data[k]) != got:
            raise ValueError(f"{k} = {int(data[k])} but the frames hold {got} detections")
    return Sequence(F, G, T, gt, tr, gt_ptr, tr_ptr, sim, sim_ptr, list(sims) if keep_frames else None)

