"""Every per-frame matching of a sequence through batched ``linear_assignment`` calls.

TrackEval matches each frame with ``scipy.optimize.linear_sum_assignment(-score)`` on the full
``[n_gt, n_tracker]`` score matrix, where pairs that cannot count score exactly 0 (they are *not*
forbidden), and then drops the matched pairs whose score is too low. With non-negative scores the
pairs that survive are a maximum-*weight* matching of the positive pairs: it is not the
maximum-cardinality matching that ``linear_assignment`` computes when entries are forbidden, so the
zeros stay allowed here (``maximize=True``, no ``max_cost``).

Two ways to split the work into independent problems (:class:`Units`):

- :func:`frame_units` (the exact mode): one problem per frame, the whole ``n_gt x n_tracker``
  matrix with zeros, bitwise the matrix TrackEval builds. Solved by scipy (``use_reference``),
  this reproduces TrackEval's choice even among tied optima.
- :func:`component_units` (the default): a maximum-weight matching decomposes over the connected
  components of the graph of positive pairs, so each component is its own problem. In tracking
  data most components are one gt and one tracker detection (matched without solving anything)
  and the rest are a few rows wide, so the batched problems are tiny. The surviving pairs are the
  same as TrackEval's whenever each frame's optimum is unique, which holds for continuous
  similarities; among exactly tied optima the two solvers may pick differently.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from romp_fast import ops
from romp_fast.evaluation.tracking.sequence import Edges, argsort_int


SMALL = 4


@dataclass
class Units:
    """Independent assignment problems over a set of edges.

    unit[K]: the problem of each edge, -1 for an edge alone in its component (always matched: a
    1 x 1 assignment). lr[K], lc[K]: its row and column inside the problem. shape[U, 2]: rows and
    columns of each problem. order[...] / ptr[U + 1]: the edges of problem u are
    ``order[ptr[u]:ptr[u + 1]]``.
    """
    unit: np.ndarray
    lr: np.ndarray
    lc: np.ndarray
    shape: np.ndarray
    order: np.ndarray
    ptr: np.ndarray

    @property
    def num_units(self) -> int:
        return len(self.shape)


def _group(unit, num_units):
    order = argsort_int(unit + 1)
    order = order[np.count_nonzero(unit < 0):]
    ptr = np.zeros(num_units + 1, dtype=np.int64)
    np.cumsum(np.bincount(unit[order], minlength=num_units), out=ptr[1:])
    return order, ptr


def frame_units(edges: Edges, seq) -> Units:
    """One problem per frame that has edges, the frame's full matrix (zeros where no edge)."""
    frame, r, c = seq.frame_rc(edges)
    frames, unit = np.unique(frame, return_inverse=True)
    shape = np.stack([seq.ng[frames], seq.nt[frames]], 1).astype(np.int64)
    order, ptr = _group(unit, len(frames))
    return Units(unit.astype(np.int64), r, c, shape, order, ptr)


def _rank_within(labels):
    """Position of each node among the nodes with the same label (stable)."""
    order = argsort_int(labels)
    sl = labels[order]
    first = np.r_[0, np.flatnonzero(sl[1:] != sl[:-1]) + 1]
    starts = np.repeat(first, np.diff(np.r_[first, len(sl)]))
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - starts
    return rank


def component_units(edges: Edges, num_rows: int, num_cols: int) -> Units:
    """One problem per connected component of the edge graph with more than one edge.

    ``edges.d`` (rows, in [0, num_rows)) must be sorted, as :meth:`Sequence.edges` returns them.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    K = len(edges)
    deg_r = np.bincount(edges.d, minlength=num_rows)
    deg_c = np.bincount(edges.e, minlength=num_cols)
    rest = (deg_r[edges.d] > 1) | (deg_c[edges.e] > 1)
    unit = np.full(K, -1, dtype=np.int64)
    lr = np.zeros(K, dtype=np.int64)
    lc = np.zeros(K, dtype=np.int64)
    d, e = edges.d[rest], edges.e[rest]
    if len(d) == 0:
        return Units(unit, lr, lc, np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64))
    # Rows then columns as the nodes of one graph, edges row -> column in CSR order (rows sorted);
    # weak connectivity of that directed graph is the bipartite graph's connectivity.
    n = num_rows + num_cols
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(d, minlength=n), out=indptr[1:])
    graph = csr_matrix((np.ones(len(d), np.int8), e + num_rows, indptr), shape=(n, n))
    num, labels = connected_components(graph, directed=True, connection="weak")
    rows = d[np.r_[True, d[1:] != d[:-1]]]
    col_used = np.zeros(num_cols, dtype=bool)
    col_used[e] = True
    cols = np.flatnonzero(col_used)
    used = np.zeros(num, dtype=np.int64)
    used[labels[rows]] = 1
    compact = np.cumsum(used) - 1
    row_lab, col_lab = compact[labels[rows]], compact[labels[cols + num_rows]]
    U = int(used.sum())
    rank_r = np.zeros(num_rows, dtype=np.int64)
    rank_r[rows] = _rank_within(row_lab)
    rank_c = np.zeros(num_cols, dtype=np.int64)
    rank_c[cols] = _rank_within(col_lab)
    unit[rest] = compact[labels[d]]
    lr[rest] = rank_r[d]
    lc[rest] = rank_c[e]
    shape = np.stack([np.bincount(row_lab, minlength=U), np.bincount(col_lab, minlength=U)], 1)
    order, ptr = _group(unit, U)
    return Units(unit, lr, lc, shape.astype(np.int64), order, ptr)


def restrict(units: Units, keep: np.ndarray) -> Units:
    """The same problems over a subset of the edges (a coarser split stays exact: every component
    of a subgraph lies inside one component of the graph)."""
    unit = units.unit[keep]
    order, ptr = _group(unit, units.num_units)
    return Units(unit, units.lr[keep], units.lc[keep], units.shape, order, ptr)


def _ranges(starts, lens):
    """Concatenation of ``arange(s, s + n)`` for each (s, n)."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lens) + lens, lens)
    return offsets + np.arange(total)


def solve(units: Units, weight: np.ndarray, which=None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total assignment of each selected problem (zeros allowed, as TrackEval's scipy call).

    Args:
        weight (float64[K]): the score of each edge; absent pairs score 0.
        which (int[U'] or None): problems to solve (default: all of them).
        exact: solve with scipy (``use_reference``) instead of the native kernel.
    Returns:
        (edge indices[K'] of the selected problems' edges, bool[K'] whether each is matched).
    """
    if which is None:
        which = np.flatnonzero(np.diff(units.ptr) > 0)
    which = np.asarray(which, dtype=np.int64)
    idx = units.order[_ranges(units.ptr[which], units.ptr[which + 1] - units.ptr[which])]
    chosen = np.zeros(len(idx), dtype=bool)
    if len(idx) == 0:
        return idx, chosen
    shape = units.shape[which]
    # At most two batched calls: the many tiny problems padded to SMALL x SMALL, the few larger ones
    # to their maximum (padding is written, never solved: row/col counts bound each problem).
    big = np.maximum(shape[:, 0], shape[:, 1]) > SMALL
    pos = np.empty(units.num_units, dtype=np.int64)
    pos[which] = np.arange(len(which))
    edge_pos = pos[units.unit[idx]]
    lr, lc = units.lr[idx], units.lc[idx]
    for flag in (False, True):
        sel = np.flatnonzero(big == flag)
        if len(sel) == 0:
            continue
        slot = np.empty(len(which), dtype=np.int64)
        slot[sel] = np.arange(len(sel))
        ei = np.flatnonzero(big[edge_pos] == flag) if big.any() and not big.all() else np.arange(len(idx))
        rows, cols = shape[sel, 0], shape[sel, 1]
        bi = slot[edge_pos[ei]]
        cost = np.zeros((len(sel), int(rows.max()), int(cols.max())))
        cost[bi, lr[ei], lc[ei]] = weight[idx[ei]]
        with ops.use_reference() if exact else contextlib.nullcontext():
            match = ops.linear_assignment(torch.from_numpy(cost), row_counts=torch.from_numpy(rows),
                                          col_counts=torch.from_numpy(cols), maximize=True).numpy()
        chosen[ei] = match[bi, lr[ei]] == lc[ei]
    return idx, chosen


def max_weight_matching(edges: Edges, weight: np.ndarray, units: Units, exact: bool = False) -> np.ndarray:
    """bool[K]: the edges TrackEval's per-frame ``linear_sum_assignment(-score)`` matches."""
    chosen = units.unit < 0  # alone in their component: a 1 x 1 problem always matches
    idx, ok = solve(units, weight, exact=exact)
    chosen[idx] = ok
    return chosen


def make_units(edges: Edges, seq, exact: bool) -> Units:
    """Frame problems (exact) or component problems (default) over ``edges`` of ``seq``."""
    if exact:
        return frame_units(edges, seq)
    return component_units(edges, seq.num_gt_dets, seq.num_tracker_dets)


def positive_units(seq, exact: bool) -> tuple[Edges, Units]:
    """The pairs with a positive similarity and their problems (cached on ``seq``)."""
    key = ("units", "positive", exact)
    if key not in seq._cache:
        pos = seq.positive_edges()
        seq._cache[key] = (pos, make_units(pos, seq, exact))
    return seq._cache[key]


def units_at_least(seq, threshold: float, exact: bool) -> tuple[Edges, Units]:
    """The pairs with ``sim >= threshold`` and their problems, cached on ``seq``: for a positive
    threshold, the positive pairs' problems restricted to them (computed once for all metrics)."""
    key = ("units", float(threshold), exact)
    if key not in seq._cache:
        if threshold > 0:
            pos, units = positive_units(seq, exact)
            keep = pos.s >= threshold
            seq._cache[key] = (pos.subset(keep), restrict(units, keep))
        else:
            edges = seq.edges(seq.sim >= threshold)
            seq._cache[key] = (edges, make_units(edges, seq, exact))
    return seq._cache[key]
