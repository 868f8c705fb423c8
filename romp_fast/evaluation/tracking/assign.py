"""Every per-frame matching of a sequence through batched ``linear_assignment`` calls.

TrackEval matches each frame with ``scipy.optimize.linear_sum_assignment(-score)`` on the full
``[n_gt, n_tracker]`` score matrix, where pairs that cannot count score exactly 0 (they are *not*
forbidden), and then drops the matched pairs whose score is too low. With non-negative scores the
pairs that survive are a maximum-*weight* matching of the positive pairs: it is not the
maximum-cardinality matching that ``linear_assignment`` computes when entries are forbidden, so the
zeros stay allowed here (``maximize=True``, no ``max_cost``).

Two ways to split the work into independent problems (:class:`Units`) over a set of pairs (HOTA:
those with a positive similarity; CLEAR: its candidates, or in the exact mode the positive pairs
with weight 0 where not a candidate):

- :func:`frame_units` (the exact mode): one problem per frame, the whole ``n_gt x n_tracker``
  matrix with zeros, bitwise the matrix TrackEval builds. Solved by scipy (``use_reference``),
  this reproduces TrackEval's choice even among tied optima.
- :func:`component_units` (the default): a maximum-weight matching decomposes over the connected
  components of the graph of positive pairs, so each component is its own problem. In tracking
  data many components are one gt and one tracker detection (matched without solving anything)
  and the rest are a few rows wide, so the batched problems are tiny. The surviving pairs are the
  same as TrackEval's whenever each frame's optimum is unique, which holds for continuous
  similarities; among exactly tied optima the two solvers may pick differently.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from romp_fast import ops
from romp_fast.evaluation.tracking.sequence import Edges, argsort_int

SMALL = 4  # problems up to SMALL x SMALL share one padded batch, larger ones another


class Units:
    """Independent assignment problems over a set of edges.

    unit[K]: the problem of each edge, -1 for an edge alone in its component (a 1 x 1 problem).
    lr[K], lc[K]: its row and column inside the problem. shape[U, 2]: rows and columns of each
    problem. ``edges_of(which)``: the edges of the given problems.
    """

    def __init__(self, unit, lr, lc, shape):
        self.unit, self.lr, self.lc, self.shape = unit, lr, lc, shape
        self._order = self._ptr = None

    @property
    def num_units(self) -> int:
        return len(self.shape)

    def edges_of(self, which: np.ndarray) -> np.ndarray:
        if self._order is None:  # edges grouped by problem, built on first use
            order = argsort_int(self.unit + 1)
            self._order = order[np.count_nonzero(self.unit < 0):]
            self._ptr = np.zeros(self.num_units + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.unit[self._order], minlength=self.num_units), out=self._ptr[1:])
        return self._order[ranges(self._ptr[which], self._ptr[which + 1] - self._ptr[which])]


def frame_units(edges: Edges, seq) -> Units:
    """One problem per frame that has edges, the frame's full matrix (zeros where no edge)."""
    frame, r, c = seq.frame_rc(edges)
    frames, unit = np.unique(frame, return_inverse=True)
    shape = np.stack([seq.ng[frames], seq.nt[frames]], 1).astype(np.int64)
    return Units(unit.astype(np.int64), r, c, shape)


def _rank_within(labels):
    """Position of each node among the nodes with the same label."""
    order = argsort_int(labels)
    sl = labels[order]
    first = np.flatnonzero(np.r_[True, sl[1:] != sl[:-1]])
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - np.repeat(first, np.diff(np.r_[first, len(sl)]))
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
    rest = np.flatnonzero((deg_r[edges.d] > 1) | (deg_c[edges.e] > 1))
    unit = np.full(K, -1, dtype=np.int64)
    lr = np.zeros(K, dtype=np.int64)
    lc = np.zeros(K, dtype=np.int64)
    if len(rest) == 0:
        return Units(unit, lr, lc, np.zeros((0, 2), np.int64))
    d, e = edges.d[rest], edges.e[rest]
    # Rows then columns as the nodes of one graph, edges row -> column in CSR order (rows sorted);
    # weak connectivity of that directed graph is the bipartite graph's connectivity. float64 data
    # and int32 indices are what csgraph works on (anything else is converted first).
    n = num_rows + num_cols
    idx_t = np.int32 if n + len(d) < 2**31 else np.int64
    indptr = np.zeros(n + 1, dtype=idx_t)
    np.cumsum(np.bincount(d, minlength=n), out=indptr[1:])
    graph = csr_matrix((np.ones(len(d)), (e + num_rows).astype(idx_t), indptr), shape=(n, n))
    num, labels = connected_components(graph, directed=True, connection="weak")
    first_of_row = np.r_[True, d[1:] != d[:-1]]
    rows = d[first_of_row]
    col_used = np.zeros(num_cols, dtype=bool)
    col_used[e] = True
    cols = np.flatnonzero(col_used)
    used = np.zeros(num, dtype=bool)
    used[labels[rows]] = True
    compact = np.cumsum(used) - 1
    row_lab, col_lab = compact[labels[rows]], compact[labels[cols + num_rows]]
    U = int(compact[-1]) + 1
    rank_c = np.zeros(num_cols, dtype=np.int64)
    rank_c[cols] = _rank_within(col_lab)
    unit[rest] = np.repeat(row_lab, np.diff(np.r_[np.flatnonzero(first_of_row), len(d)]))
    lr[rest] = np.repeat(_rank_within(row_lab), np.diff(np.r_[np.flatnonzero(first_of_row), len(d)]))
    lc[rest] = rank_c[e]
    shape = np.stack([np.bincount(row_lab, minlength=U), np.bincount(col_lab, minlength=U)], 1)
    return Units(unit, lr, lc, shape)


def ranges(starts, lens):
    """Concatenation of ``arange(s, s + n)`` for each (s, n)."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)


def solve(units: Units, weight: np.ndarray, which=None, exact: bool = False,
          bonus=None) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total assignment of each selected problem (zeros allowed, as TrackEval's scipy call).

    Args:
        weight (float64[K]): the score of each edge (>= 0); absent pairs score 0.
        which (int[U'] or None): problems to solve (default: all of them).
        exact: solve with scipy (``use_reference``) instead of the native kernel.
        bonus (bool[K], optional): edges whose score is ``1000 + weight`` (CLEAR's continuation).
    Returns:
        (edge indices[K'] of the selected problems' edges, bool[K'] whether each is assigned).
    """
    if which is None:
        idx = np.flatnonzero(units.unit >= 0)
        slot_of_unit, shape = None, units.shape
    else:
        which = np.asarray(which, dtype=np.int64)
        idx = units.edges_of(which)
        slot_of_unit = np.empty(units.num_units, dtype=np.int64)
        slot_of_unit[which] = np.arange(len(which))
        shape = units.shape[which]
    chosen = np.zeros(len(idx), dtype=bool)
    if len(idx) == 0:
        return idx, chosen
    pos = units.unit[idx] if slot_of_unit is None else slot_of_unit[units.unit[idx]]
    lr, lc = units.lr[idx], units.lc[idx]
    w = weight[idx]
    if bonus is not None:
        w = np.where(bonus[idx], 1000.0, 0.0) + w  # TrackEval: 1000 * continues + similarity
    # At most two batched calls: the many tiny problems padded to SMALL x SMALL, the few larger ones
    # to their maximum (padding is written, never solved: row/col counts bound each problem); a
    # handful of problems go in one call.
    big = np.maximum(shape[:, 0], shape[:, 1]) > SMALL
    if len(shape) <= 64:
        big[:] = True
    mixed = big.any() and not big.all()
    for flag in (False, True):
        sel = np.flatnonzero(big == flag) if mixed else (np.arange(len(shape)) if big.all() == flag else None)
        if sel is None or len(sel) == 0:
            continue
        slot = np.empty(len(shape), dtype=np.int64)
        slot[sel] = np.arange(len(sel))
        ei = np.flatnonzero(big[pos] == flag) if mixed else slice(None)
        rows, cols = shape[sel, 0], shape[sel, 1]
        bi, r, c = slot[pos[ei]], lr[ei], lc[ei]
        cost = np.zeros((len(sel), int(rows.max()), int(cols.max())))
        cost[bi, r, c] = w[ei]
        with ops.use_reference() if exact else contextlib.nullcontext():
            match = ops.linear_assignment(torch.from_numpy(cost), row_counts=torch.from_numpy(rows),
                                          col_counts=torch.from_numpy(cols), maximize=True).numpy()
        chosen[ei] = match[bi, r] == c
    return idx, chosen


def max_weight_matching(weight: np.ndarray, units: Units, exact: bool = False) -> np.ndarray:
    """bool[K]: the edges with positive weight that TrackEval's per-frame
    ``linear_sum_assignment(-score)`` matches (zero-weight edges are never reported)."""
    chosen = units.unit < 0  # alone in its component: a 1 x 1 problem always assigns it
    idx, ok = solve(units, weight, exact=exact)
    chosen[idx] = ok
    return chosen & (weight > 0)


def positive_units(seq, exact: bool) -> tuple[Edges, Units]:
    """The pairs with a positive similarity and their problems (cached on ``seq``)."""
    key = ("units", exact)
    if key not in seq._cache:
        pos = seq.positive_edges()
        units = frame_units(pos, seq) if exact else component_units(pos, seq.num_gt_dets, seq.num_tracker_dets)
        seq._cache[key] = (pos, units)
    return seq._cache[key]
