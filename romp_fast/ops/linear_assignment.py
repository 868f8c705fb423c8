"""Batched linear assignment: public wrapper, scipy reference, fake kernel.

Semantics (the same on every path, tested against brute force and scipy):

- ``cost`` is a padded batch ``[B, M, N]``; problem ``b`` is the top-left
  ``row_counts[b] x col_counts[b]`` block (default: all of it). Rows outside it get -1.
- An entry is *forbidden* when it is not finite (+inf, -inf or NaN; scipy raises on -inf and NaN)
  or worse than ``max_cost`` (greater when minimising, smaller when ``maximize=True``).
- The result is a matching of maximum cardinality among allowed pairs and, among those, of optimal
  total cost. Without forbidden entries it equals ``scipy.optimize.linear_sum_assignment`` on the
  block (rectangular included; the same assignment whenever the optimum is unique). Infeasibility is
  not an error: rows that cannot be matched get -1.
- ``max_cost`` gates *inside* the optimisation (a pair worse than it never counts). "Solve, then drop
  pairs above a threshold" is a different rule and not what this op does: use
  :func:`solve_then_threshold` for it.
"""
from __future__ import annotations

import numpy as np
import torch

from romp_fast import ops as _ops

_NATIVE = _ops._C is not None


def _check(cost, row_counts, col_counts, max_cost):
    if not isinstance(cost, torch.Tensor) or cost.dim() != 3:
        raise ValueError(f"linear_assignment: cost must be [B, M, N], got {list(getattr(cost, 'shape', []))}")
    if cost.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"linear_assignment: cost must be float32 or float64, got {cost.dtype}")
    B, M, N = cost.shape
    out = []
    for name, counts, full in (("row_counts", row_counts, M), ("col_counts", col_counts, N)):
        if counts is None:
            out.append(None)
            continue
        counts = torch.as_tensor(counts, device=cost.device)
        if counts.shape != (B,) or counts.dtype.is_floating_point or counts.dtype == torch.bool:
            raise ValueError(f"linear_assignment: {name} must be an integer [B] = [{B}] tensor, "
                             f"got {counts.dtype} {list(counts.shape)}")
        counts = counts.to(torch.int64)
        if counts.device.type == "cpu" and B and not bool(((counts >= 0) & (counts <= full)).all()):
            b = int((~((counts >= 0) & (counts <= full))).nonzero()[0])
            raise ValueError(f"linear_assignment: {name}[{b}] = {int(counts[b])} is outside [0, {full}]")
        out.append(counts)
    if max_cost is not None and not isinstance(max_cost, (int, float)):
        raise TypeError(f"linear_assignment: max_cost must be a number, got {type(max_cost).__name__}")
    return out


def linear_assignment_reference(cost, row_counts=None, col_counts=None, max_cost=None, maximize=False):
    """scipy's exact solver in a loop over problems, with the forbidden-entry rule above."""
    from scipy.optimize import linear_sum_assignment

    B, M, N = cost.shape
    c = cost.detach().cpu().double().numpy()
    rows = np.full(B, M) if row_counts is None else row_counts.cpu().numpy()
    cols = np.full(B, N) if col_counts is None else col_counts.cpu().numpy()
    out = np.full((B, M), -1, dtype=np.int64)
    for b in range(B):
        block = c[b, : rows[b], : cols[b]]
        if block.size == 0:
            continue
        g = -block if maximize else block
        with np.errstate(invalid="ignore"):
            allowed = np.isfinite(g)
            if max_cost is not None:
                allowed &= g <= (-max_cost if maximize else max_cost)
        big = 1.0
        if allowed.any():
            lo, hi = g[allowed].min(), g[allowed].max()
            n = min(block.shape)
            top = hi
            with np.errstate(over="ignore", invalid="ignore"):
                if not allowed.all():
                    # Any matching with k forbidden pairs costs more than every one with k - 1
                    # (csrc/lsa_common.h): maximum cardinality first, then minimum cost.
                    big = top = hi + (n + 1) * (hi - lo) + 1 + abs(hi)
                    if not np.isfinite(big):
                        raise ValueError(f"linear_assignment: problem {b}: allowed costs span too wide a range "
                                         "to rank forbidden pairs below them in float64")
                # lsa_common.h range_solvable: the solvers' duals must stay finite
                if not np.isfinite((n + 2) * (top - lo) + abs(top) + abs(lo)):
                    raise ValueError(f"linear_assignment: problem {b}: allowed costs span too wide a range "
                                     "to solve in float64")
        r, k = linear_sum_assignment(np.where(allowed, g, big))
        keep = allowed[r, k]
        out[b, r[keep]] = k[keep]
    return torch.from_numpy(out).to(cost.device)


def linear_assignment(cost, *, row_counts=None, col_counts=None, max_cost=None, maximize=False):
    """Solves a batch of rectangular assignment problems exactly (Crouse 2016 shortest augmenting path).

    Args:
        cost (Tensor[B, M, N]): float32/float64, CPU or CUDA.
        row_counts, col_counts (Tensor[B] int, optional): valid block size of each problem.
        max_cost (float, optional): pairs worse than this are forbidden.
        maximize (bool): maximise the total instead.
    Returns:
        Tensor[B, M] int64: the column matched to each row, -1 if none. Not differentiable.
    Raises:
        ValueError (CPU): a problem whose allowed costs span too wide a range for float64 (with
        r = min(rows, cols) of the block: (r + 2) * (largest - smallest cost the solver sees) must
        stay finite; the largest is the forbidden-pair cost when an entry is forbidden). The CUDA
        kernel leaves such a problem unmatched (-1) instead, without a host synchronisation.
    """
    row_counts, col_counts = _check(cost, row_counts, col_counts, max_cost)
    max_cost = None if max_cost is None else float(max_cost)
    if _ops._use_native("linear_assignment", cost.device):
        return torch.ops.romp_fast.linear_assignment(cost, row_counts, col_counts, max_cost, bool(maximize))
    return linear_assignment_reference(cost, row_counts, col_counts, max_cost, bool(maximize))


def solve_then_threshold(cost, threshold, *, row_counts=None, col_counts=None, maximize=False):
    """The other gating rule ("solve, then drop"): an optimal assignment ignoring ``threshold``,
    after which pairs worse than it become -1 (ByteTrack/ROMP ``_indices_to_matches`` style)."""
    match = linear_assignment(cost, row_counts=row_counts, col_counts=col_counts, maximize=maximize)
    picked = cost.gather(2, match.clamp(min=0)[..., None])[..., 0]
    worse = picked < threshold if maximize else picked > threshold
    return torch.where((match >= 0) & ~worse, match, -1)


if _NATIVE:
    @torch.library.register_fake("romp_fast::linear_assignment")
    def _(cost, row_counts, col_counts, max_cost, maximize):
        return cost.new_empty(cost.shape[:2], dtype=torch.int64)
