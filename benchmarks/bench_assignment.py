"""Batched small linear assignment: romp_fast.ops.linear_assignment side by side with its peers.

Contenders, each a parametrized id inside one pytest-benchmark group per case:
  romp_fast     romp_fast.ops.linear_assignment on the [B, M, N] float64 tensor (threads: 2)
  scipy_loop    scipy.optimize.linear_sum_assignment in a Python loop, one call per problem
  lap_loop      lap.lapjv(c, extend_cost=True) in a Python loop (lapx provides ``lap``)
  lapx_batch    lap.lapjvr_batch(costs, extend_cost=True, n_threads=2), lapx's native batch solver
Cases (perf_peers.md section 6c): (B, M, N) in (1e4, 5, 5), (1e4, 10, 12), (5e3, 20, 40),
(1e3, 50, 60), (100, 100, 100), uniform [0, 1) costs, plus a variant with 30 % forbidden (+inf)
entries around a planted finite permutation, so every problem stays feasible.

Correctness before speed: every contender's total cost per problem equals scipy's to 1e-9
relative (float64), on every problem of the case. The loops over 1e4 problems are timed on the
first 1e3 (report.py scales them, marked *). The forbidden variant runs romp_fast, scipy and lapx's
batch solver only: lap.lapjv with extend_cost mishandles inf (gatagat/lap#20).

    OMP_NUM_THREADS=2 .venv/bin/python -m pytest benchmarks/bench_assignment.py --benchmark-json=lsa.json
    .venv/bin/python benchmarks/report.py lsa.json
"""
from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch
from _common import rounds_for

import romp_fast.ops as rf

scipy_optimize = pytest.importorskip("scipy.optimize")
try:
    import lap
except ImportError:  # lapx is a [dev] extra; its rows are skipped without it
    lap = None

CASES = [(10_000, 5, 5), (10_000, 10, 12), (5_000, 20, 40), (1_000, 50, 60), (100, 100, 100)]
CONTENDERS = ("romp_fast", "scipy_loop", "lap_loop", "lapx_batch")
FORBIDDEN_CONTENDERS = ("romp_fast", "scipy_loop", "lapx_batch")
LOOP_MAX_B = 1_000
FORBIDDEN_FRAC = 0.3


@functools.lru_cache(maxsize=4)
def _inputs(B, M, N, forbidden):
    rng = np.random.default_rng([B, M, N, forbidden])
    cost = rng.random((B, M, N))
    if forbidden:
        keep = rng.random((B, M, N)) >= FORBIDDEN_FRAC
        # A planted permutation of allowed entries keeps every problem feasible.
        rows = np.arange(min(M, N))
        for b in range(B):
            keep[b, rows, rng.permutation(N)[: len(rows)]] = True
        cost = np.where(keep, cost, np.inf)
    cost.setflags(write=False)
    totals = np.array([_total(c, *scipy_optimize.linear_sum_assignment(c)) for c in cost])
    return cost, torch.from_numpy(cost.copy()), totals


def _total(c, rows, cols):
    return float(c[rows, cols].sum())


def _ours(tc):
    return rf.linear_assignment(tc)


def _scipy_loop(cost):
    return [scipy_optimize.linear_sum_assignment(c) for c in cost]


def _lap_loop(cost):
    return [lap.lapjv(c, extend_cost=True)[1] for c in cost]


def _lapx_batch(cost):
    return lap.lapjvr_batch(cost, extend_cost=True, n_threads=torch.get_num_threads(), return_cost=False)


def _totals_of(contender, out, cost):
    """Per-problem totals of a contender's answer, whatever its output format."""
    if contender == "romp_fast":
        out = out.numpy()
        return np.array([_total(c, np.flatnonzero(o >= 0), o[o >= 0]) for c, o in zip(cost, out)])
    if contender == "scipy_loop":
        return np.array([_total(c, r, k) for c, (r, k) in zip(cost, out)])
    if contender == "lap_loop":
        return np.array([_total(c, np.flatnonzero(x >= 0), x[x >= 0]) for c, x in zip(cost, out)])
    rows, cols = out  # lapx_batch: per-problem row and column index arrays
    return np.array([_total(c, np.asarray(r), np.asarray(k)) for c, r, k in zip(cost, rows, cols)])


def _params(forbidden):
    names = FORBIDDEN_CONTENDERS if forbidden else CONTENDERS
    tag = "-forbidden30" if forbidden else ""
    return [pytest.param(case, name, forbidden, id=f"{case[1]}x{case[2]}-B{case[0]}{tag}-{name}")
            for case in CASES for name in names]


@pytest.mark.parametrize("case,contender,forbidden", _params(False) + _params(True))
def test_linear_assignment(benchmark, record, case, contender, forbidden):
    if contender in ("lap_loop", "lapx_batch") and lap is None:
        pytest.skip("lapx not installed")
    B, M, N = case
    cost, tc, ref_totals = _inputs(B, M, N, forbidden)
    benchmark.group = f"assignment {M}x{N} B={B}" + (" forbidden30%" if forbidden else "")
    timed_B = B
    if contender == "romp_fast":
        fn, args = _ours, (tc,)
    elif contender == "lapx_batch":
        fn, args = _lapx_batch, (cost,)
    else:
        timed_B = min(B, LOOP_MAX_B)
        fn, args = (_scipy_loop if contender == "scipy_loop" else _lap_loop), (cost[:timed_B],)

    t0 = time.perf_counter()
    out = fn(*args)
    rounds = rounds_for(time.perf_counter() - t0)
    got = _totals_of(contender, out, cost[:timed_B])
    ref = ref_totals[:timed_B]
    bad = np.abs(got - ref) > 1e-9 * np.maximum(1.0, np.abs(ref))
    assert not bad.any(), (f"{contender}: total differs from scipy on {int(bad.sum())} of {timed_B} "
                           f"problems, first {int(np.argmax(bad))}: {got[bad][0]!r} vs {ref[bad][0]!r}")

    benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=1)
    record(contender=contender, B=B, J=M, dtype="float64", timed_B=timed_B, kind="lsa",
           M=M, N=N, forbidden_frac=FORBIDDEN_FRAC if forbidden else 0.0)
