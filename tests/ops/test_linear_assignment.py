"""romp_fast.ops.linear_assignment and solve_then_threshold.

Oracles, both independent of the op: scipy's ``linear_sum_assignment`` wherever every pair is
allowed (or a perfect matching among the allowed pairs exists), and `brute_force`, written here,
which enumerates every partial matching of a small problem (n, m <= 5) and keeps the maximum
cardinality, then the optimal total. Every case runs on the native kernel and on the reference path
(``use_reference``); CUDA cases skip without a GPU.
"""
import contextlib
import functools
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch.library import opcheck

import romp_fast.ops as ops

F32, F64 = torch.float32, torch.float64
PATHS = ["native", "reference"]
INF, NAN = float("inf"), float("nan")
_NO_CUDA = not torch.cuda.is_available() or not ops.native_available("cuda")


# --------------------------------------------------------------------------- helpers
def solve(path, cost, **kw):
    with ops.use_reference() if path == "reference" else contextlib.nullcontext():
        return ops.linear_assignment(cost, **kw)


def solve_both(cost, **kw):
    """{path: int64 numpy [B, M]} after checking dtype, shape and device of each result."""
    out = {}
    for path in PATHS:
        res = solve(path, cost, **kw)
        assert res.dtype == torch.int64 and res.shape == cost.shape[:2] and res.device == cost.device
        out[path] = res.cpu().numpy()
    return out


def to_torch(a, dtype=F64, device="cpu"):
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)


def as_np(cost):
    """The exact float64 values the op sees (float32 inputs widened, as both paths do)."""
    return cost.detach().cpu().double().numpy()


def blocks(cost_np, rc, cc):
    B, M, N = cost_np.shape
    rc = np.full(B, M) if rc is None else np.asarray(rc)
    cc = np.full(B, N) if cc is None else np.asarray(cc)
    for b in range(B):
        yield b, cost_np[b, : rc[b], : cc[b]], int(rc[b]), int(cc[b])


def allowed_mask(block, max_cost=None, maximize=False):
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(block)
        if max_cost is not None:
            ok &= (block >= max_cost) if maximize else (block <= max_cost)
    return ok


def picked(row, block, ok=None):
    """Checks that `row` (the op's answer for one problem, [M]) is a matching inside the block
    using allowed pairs only, with -1 for every row outside the block; returns (cardinality, total)."""
    n, m = block.shape
    assert (row[n:] == -1).all(), f"rows outside the block matched: {row[n:]}"
    row = row[:n]
    assert ((row >= -1) & (row < m)).all(), f"column outside the block: {row}"
    r = np.nonzero(row >= 0)[0]
    c = row[r]
    assert len(set(c.tolist())) == len(c), f"a column used twice: {row}"
    if ok is not None:
        assert ok[r, c].all(), f"forbidden pair used: {list(zip(r, c))}"
    return len(r), float(block[r, c].sum())


def assert_total(ours, ref, scale):
    assert abs(ours - ref) <= 1e-9 * max(1.0, scale), (ours, ref)


def scipy_row(block, maximize=False):
    """scipy's answer as a row -> column array (-1 unmatched); +inf entries forbidden."""
    out = np.full(block.shape[0], -1, np.int64)
    if block.size:
        r, c = linear_sum_assignment(block, maximize=maximize)
        out[r] = c
    return out


@functools.cache
def _partial_matchings(n, m, k):
    rows, cols = [], []
    for r in itertools.combinations(range(n), k):
        for c in itertools.permutations(range(m), k):
            rows.append(r)
            cols.append(c)
    return np.array(rows, np.int64).reshape(-1, k), np.array(cols, np.int64).reshape(-1, k)


def brute_force(block, ok, maximize=False):
    """(maximum cardinality, optimal total among those) over every partial matching of the allowed
    pairs, by enumeration; for n, m <= 5."""
    n, m = block.shape
    for k in range(min(n, m), 0, -1):
        R, C = _partial_matchings(n, m, k)
        feasible = ok[R, C].all(1)
        if feasible.any():
            totals = np.where(ok[R, C], block[R, C], 0.0).sum(1)[feasible]
            return k, float(totals.max() if maximize else totals.min())
    return 0, 0.0


def fill_padding(rng, cost, rc, cc):
    """Garbage outside each block: NaN, +-inf and attractive finite values the op must not read."""
    cost = cost.copy()
    B, M, N = cost.shape
    garbage = rng.choice(np.array([NAN, INF, -INF, -1e30, 1e30, -5.0]), size=cost.shape)
    outside = (np.arange(M)[None, :, None] >= rc[:, None, None]) | (np.arange(N)[None, None, :] >= cc[:, None, None])
    cost[outside] = garbage[outside]
    return cost


def random_counts(rng, B, M, N):
    rc, cc = rng.integers(0, M + 1, B), rng.integers(0, N + 1, B)
    if B:
        rc[0], cc[0] = M, N  # one full problem
    return rc, cc


def check_against_scipy(res, cost_np, rc, cc, maximize=False):
    """Tie-free problems without forbidden entries: the exact scipy assignment and total."""
    for b, block, n, m in blocks(cost_np, rc, cc):
        want = scipy_row(block, maximize)
        k, total = picked(res[b], block)
        assert k == min(n, m)
        assert_total(total, float(block[np.arange(n)[want >= 0], want[want >= 0]].sum()), np.abs(block).sum())
        np.testing.assert_array_equal(res[b, :n], want, err_msg=f"problem {b} ({n}x{m})")


# --------------------------------------------------------------------------- against scipy
# The CPU solver's paths (csrc/cpu/lsa_solver.h): up to 8, 16 or more columns after transposing tall
# blocks (fixed or variable vector counts), up to 64 columns or more (bit masks of one or several
# words), and augmenting row reduction on (nearly) square problems of more than 40 rows (48x48,
# 44x46, 120x120).
SHAPES = {
    "square": [(1, 1), (2, 2), (5, 5), (17, 17), (33, 33), (48, 48), (120, 120)],
    "tall": [(2, 1), (9, 4), (31, 30), (64, 1), (120, 37)],
    "wide": [(1, 2), (3, 11), (30, 31), (1, 64), (44, 46), (40, 120)],
}
CASES = [(kind, M, N) for kind, sizes in SHAPES.items() for M, N in sizes]


def _batch(B, M, N):
    """Big batches on small sizes only, to keep the runtime modest."""
    return B if M * N <= 32 * 32 or B <= 7 else 5


@pytest.mark.parametrize("kind,M,N", CASES)
@pytest.mark.parametrize("B", [0, 1, 7, 200])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_matches_scipy(device, kind, M, N, B, dtype):
    B = _batch(B, M, N)
    rng = np.random.default_rng([B, M, N, dtype == F32])
    cost = to_torch(rng.uniform(-2.0, 3.0, (B, M, N)), dtype, device)  # continuous: a unique optimum
    for path, res in solve_both(cost).items():
        check_against_scipy(res, as_np(cost), None, None)


@pytest.mark.parametrize("kind,M,N", CASES)
@pytest.mark.parametrize("B", [1, 7, 200])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_padded_blocks_ignore_garbage(device, kind, M, N, B, dtype):
    B = _batch(B, M, N)
    rng = np.random.default_rng([B, M, N, dtype == F32, 1])
    clean = rng.uniform(0.0, 1.0, (B, M, N))
    rc, cc = random_counts(rng, B, M, N)
    cost = to_torch(fill_padding(rng, clean, rc, cc), dtype, device)
    rct, cct = torch.from_numpy(rc).to(device), torch.from_numpy(cc).to(device)
    results = solve_both(cost, row_counts=rct, col_counts=cct)
    for path, res in results.items():
        check_against_scipy(res, as_np(cost), rc, cc)
    # the same problems without garbage: identical answers
    clean_t = to_torch(clean, dtype, device)
    np.testing.assert_array_equal(solve("native", clean_t, row_counts=rct, col_counts=cct).cpu().numpy(),
                                  results["native"])


@pytest.mark.parametrize("B,M,N", [(0, 3, 4), (2, 0, 4), (2, 3, 0), (0, 0, 0)])
def test_empty_dimensions(device, B, M, N):
    cost = torch.zeros(B, M, N, device=device)
    counts = dict(row_counts=torch.full((B,), M, device=device),
                  col_counts=torch.zeros(B, dtype=torch.int64, device=device))
    for kw in ({}, counts, {"max_cost": 1.0, "maximize": True}):
        for res in solve_both(cost, **kw).values():
            assert res.shape == (B, M) and (res == -1).all()


def test_counts_only_rows_or_only_columns():
    rng = np.random.default_rng(3)
    B, M, N = 20, 6, 8
    clean = rng.uniform(size=(B, M, N))
    rc, cc = random_counts(rng, B, M, N)
    for kw, r, c in (({"row_counts": torch.from_numpy(rc)}, rc, np.full(B, N)),
                     ({"col_counts": torch.from_numpy(cc)}, np.full(B, M), cc)):
        cost = torch.from_numpy(fill_padding(rng, clean, r, c))
        for res in solve_both(cost, **kw).values():
            check_against_scipy(res, clean, r, c)


@pytest.mark.parametrize("path", PATHS)
def test_counts_as_list_or_int32(path):
    rng = np.random.default_rng(4)
    cost = torch.from_numpy(rng.uniform(size=(3, 4, 5)))
    want = solve(path, cost, row_counts=torch.tensor([4, 0, 2]), col_counts=torch.tensor([1, 5, 3]))
    check_against_scipy(want.numpy(), cost.numpy(), [4, 0, 2], [1, 5, 3])
    for rc, cc in (([4, 0, 2], [1, 5, 3]), (torch.tensor([4, 0, 2], dtype=torch.int32),
                                            torch.tensor([1, 5, 3], dtype=torch.int16))):
        assert torch.equal(solve(path, cost, row_counts=rc, col_counts=cc), want)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_non_contiguous_inputs(device, dtype):
    rng = np.random.default_rng(5)
    base = to_torch(rng.uniform(size=(9, 7, 6)), dtype, device)
    cost = base.transpose(1, 2)[::2]  # [5, 6, 7], non-contiguous
    rc = torch.tensor([6, 3, 0, 5, 2, 9, 1, 4, 6, 0], device=device)[::2]
    cc = torch.tensor([[7, 7, 2, 5, 7], [0, 0, 0, 0, 0]], device=device)[0]
    assert not (cost.is_contiguous() or rc.is_contiguous())
    for path, res in solve_both(cost, row_counts=rc, col_counts=cc).items():
        check_against_scipy(res, as_np(cost), rc.cpu().numpy(), cc.cpu().numpy())
        dense = solve(path, cost.contiguous(), row_counts=rc.contiguous(), col_counts=cc)
        np.testing.assert_array_equal(res, dense.cpu().numpy())


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("M,N", [(3, 5), (6, 13), (13, 6), (4, 8)])
def test_block_ending_at_page_boundary(dtype, M, N):
    """The CPU kernel reads eight costs at a time and may read past a row's end when that stays in
    the same 4 KiB page; a problem whose last row ends exactly at a page boundary must not."""
    rng = np.random.default_rng([M, N, dtype == F32])
    B, size = 3, torch.finfo(dtype).bits // 8
    buf = torch.empty(3 * 4096 // size + B * M * N, dtype=dtype)
    end = (buf.data_ptr() // 4096 + 2) * 4096  # a page boundary inside the buffer
    start = (end - buf.data_ptr()) // size - B * M * N
    cost = buf[start: start + B * M * N].view(B, M, N)
    cost.copy_(torch.from_numpy(rng.uniform(size=(B, M, N))))
    assert cost.data_ptr() + B * M * N * size == end and cost.is_contiguous()
    for path, res in solve_both(cost).items():
        check_against_scipy(res, as_np(cost), None, None)
    rc = torch.tensor([M, M - 1, 1])
    for path, res in solve_both(cost, row_counts=rc).items():
        check_against_scipy(res, as_np(cost), rc.numpy(), None)


_PORTABLE_CHECK = """
import numpy as np, torch
import romp_fast.ops as ops
rng = np.random.default_rng(0)
for B, M, N in ((50, 5, 5), (50, 10, 12), (20, 13, 6), (5, 50, 50), (3, 40, 120)):
    cost = torch.from_numpy(rng.uniform(-1, 1, (B, M, N)))
    cost[torch.from_numpy(rng.random((B, M, N)) < 0.3)] = float("inf")
    rc = torch.from_numpy(rng.integers(1, M + 1, B))
    for kw in ({}, dict(row_counts=rc, max_cost=0.8), dict(maximize=True, max_cost=-0.5),
               dict(max_cost=float("-inf"))):
        print(B, M, N, ops.linear_assignment(cost, **kw).tolist())
"""


def test_portable_solver_equals_vectorised():
    """ROMP_FAST_LSA_PORTABLE=1 forces the CPU kernel's portable solver where the AVX-512 one would
    run: both must give the same answers (random costs, forbidden entries, gates, padding)."""
    import os
    import subprocess
    import sys

    def run(**env):
        return subprocess.run([sys.executable, "-c", _PORTABLE_CHECK], env={**os.environ, **env},
                              capture_output=True, text=True, check=True).stdout

    portable = run(ROMP_FAST_LSA_PORTABLE="1")
    assert portable.count("\n") == 20 and portable == run()


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("M,N", [(5, 6), (13, 9)])
def test_batches_split_over_threads(two_threads, M, N):
    """Batches past the CPU kernel's per-thread minimum (32k cells) are shared by the calling thread
    and helper tasks chunk by chunk: every problem solved once, as alone."""
    rng = np.random.default_rng([M, N, 11])
    B = 4000
    cost = torch.from_numpy(rng.uniform(size=(B, M, N)))
    rc = torch.from_numpy(rng.integers(0, M + 1, B))
    res = ops.linear_assignment(cost, row_counts=rc).numpy()
    check_against_scipy(res, cost.numpy(), rc.numpy(), None)
    one = np.stack([ops.linear_assignment(cost[b: b + 1], row_counts=rc[b: b + 1]).numpy()[0]
                    for b in range(0, B, 97)])
    np.testing.assert_array_equal(res[::97], one)


@pytest.mark.parametrize("bad", [0, 1999, 3999])
def test_error_in_a_split_batch(two_threads, bad):
    """A refused problem anywhere in a batch solved by several threads raises its own error."""
    cost = torch.rand(4000, 5, 6, dtype=F64)
    cost[bad] = torch.tensor([1e307, -1e307] * 15, dtype=F64).view(5, 6)  # solvable until an entry is forbidden
    cost[bad, 0, 0] = INF
    with pytest.raises(ValueError, match=rf"linear_assignment: problem {bad}: allowed costs span too wide"):
        torch.ops.romp_fast.linear_assignment(cost, None, None, None, False)
    cost[bad, 0, 0] = 1.0
    assert (torch.ops.romp_fast.linear_assignment(cost, None, None, None, False) >= 0).all()


def test_shared_expanded_cost(device):
    one = to_torch(np.random.default_rng(6).uniform(size=(1, 8, 8)), F64, device)
    res = solve_both(one.expand(4, 8, 8))
    for r in res.values():
        check_against_scipy(r, as_np(one.expand(4, 8, 8)), None, None)
        assert (r == r[:1]).all()


# --------------------------------------------------------------------------- ties
@pytest.mark.parametrize("values", [2, 4, 50])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_integer_costs_with_ties(device, values, dtype):
    """Many optima: the total equals scipy's and the answer is a full matching."""
    rng = np.random.default_rng([values, dtype == F32])
    for M, N, B in ((12, 12, 300), (3, 3, 300), (40, 40, 5), (50, 50, 5), (12, 7, 200), (7, 12, 200)):
        cost_np = rng.integers(0, values, (B, M, N)).astype(np.float64)
        cost_np[: B // 4] -= values  # negative ones too
        rc, cc = random_counts(rng, B, M, N)
        if M == N:
            rc[B // 2:] = cc[B // 2:]  # plenty of square blocks (the square start path)
        cost = to_torch(fill_padding(rng, cost_np, rc, cc), dtype, device)
        for path, res in solve_both(cost, row_counts=torch.from_numpy(rc).to(device),
                                    col_counts=torch.from_numpy(cc).to(device)).items():
            for b, block, n, m in blocks(as_np(cost), rc, cc):
                k, total = picked(res[b], block)
                want = scipy_row(block)
                assert k == min(n, m), (path, b)
                assert total == block[np.nonzero(want >= 0)[0], want[want >= 0]].sum(), (path, b, block)


@pytest.mark.parametrize("path", PATHS)
def test_all_equal_costs(device, path):
    for M, N in ((5, 5), (3, 8), (8, 3)):
        res = solve(path, torch.full((2, M, N), 7.0, device=device)).cpu().numpy()
        for b in range(2):
            assert picked(res[b], np.full((M, N), 7.0)) == (min(M, N), 7.0 * min(M, N))


# --------------------------------------------------------------------------- forbidden entries
@pytest.mark.parametrize("density", [0.2, 0.6, 0.95])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_forbidden_feasible_matches_scipy(device, density, dtype):
    """A perfect matching among allowed pairs exists (one is planted): scipy's answer on the
    problem with +inf marking every forbidden entry."""
    rng = np.random.default_rng([int(100 * density), dtype == F32])
    for M, N, B in ((6, 6, 100), (30, 30, 4), (9, 5, 60), (5, 9, 60), (25, 60, 3)):
        cost_np = rng.uniform(-1.0, 1.0, (B, M, N))
        forbid = rng.random((B, M, N)) < density
        for b in range(B):  # plant a perfect matching
            if M <= N:
                forbid[b, np.arange(M), rng.permutation(N)[:M]] = False
            else:
                forbid[b, rng.permutation(M)[:N], np.arange(N)] = False
        cost_np[forbid] = rng.choice(np.array([INF, -INF, NAN]), size=int(forbid.sum()))
        cost = to_torch(cost_np, dtype, device)
        finite = np.where(np.isfinite(as_np(cost)), as_np(cost), INF)
        for path, res in solve_both(cost).items():
            for b in range(B):
                want = scipy_row(finite[b])
                k, total = picked(res[b], finite[b], np.isfinite(finite[b]))
                assert k == min(M, N)
                np.testing.assert_array_equal(res[b], want, err_msg=f"{path} problem {b}")


def _small_problems(rng, B, integer):
    """[B, 5, 5] padded small problems with varied densities of +inf/-inf/NaN entries, whole
    forbidden rows and columns, and everything forbidden; plus random block sizes."""
    cost = rng.integers(-3, 4, (B, 5, 5)).astype(np.float64) if integer else rng.uniform(-2, 2, (B, 5, 5))
    density = rng.choice([0.0, 0.3, 0.6, 0.85, 1.0], size=(B, 1, 1))
    forbid = rng.random((B, 5, 5)) < density
    forbid[0::7, rng.integers(0, 5)] = True  # a row of forbidden entries
    forbid[3::7, :, rng.integers(0, 5)] = True  # a column
    cost[forbid] = rng.choice(np.array([INF, -INF, NAN]), size=int(forbid.sum()))
    rc, cc = rng.integers(1, 6, B), rng.integers(1, 6, B)
    rc[:10], cc[:10] = 5, 5
    return cost, rc, cc


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_forbidden_against_brute_force(device, integer, dtype):
    rng = np.random.default_rng([integer, dtype == F32, 7])
    B = 300
    cost_np, rc, cc = _small_problems(rng, B, integer)
    cost = to_torch(fill_padding(rng, cost_np, rc, cc), dtype, device)
    results = solve_both(cost, row_counts=torch.from_numpy(rc).to(device), col_counts=torch.from_numpy(cc).to(device))
    seen_partial = 0
    for b, block, n, m in blocks(as_np(cost), rc, cc):
        ok = allowed_mask(block)
        want_k, want_total = brute_force(block, ok)
        seen_partial += 0 < want_k < min(n, m)
        for path, res in results.items():
            k, total = picked(res[b], block, ok)
            assert k == want_k, (path, b, block)
            assert_total(total, want_total, np.abs(np.where(ok, block, 0)).sum())
    assert seen_partial > 20  # the infeasible cases really occur


@pytest.mark.parametrize("path", PATHS)
def test_forbidden_hand_built(device, path):
    c = torch.tensor([
        [[INF, INF, INF], [1.0, 2.0, 3.0], [4.0, 0.0, 5.0]],    # row 0 unmatched, others free to choose
        [[NAN, 1.0, NAN], [-INF, 2.0, NAN], [5.0, 9.0, 0.0]],  # rows 0 and 1 only allow column 1
        [[NAN, NAN, NAN], [INF, -INF, NAN], [INF, INF, INF]],  # nothing allowed
        [[1.0, INF, INF], [INF, INF, INF], [INF, INF, 3.0]],   # only the diagonal corners
    ], dtype=F64, device=device)
    res = solve(path, c).cpu().tolist()
    assert res[0] == [-1, 0, 1]
    assert res[1] == [1, -1, 2]  # cardinality 2 either way; 1 + 0 is the cheapest
    assert res[2] == [-1, -1, -1]
    assert res[3] == [0, -1, 2]


def test_too_wide_cost_range():
    """Costs that would overflow the forbidden-pair ranking: refused, naming the problem (kernel and
    both wrapper paths); a wide range without forbidden entries that stays solvable is solved
    normally."""
    ok = torch.tensor([[[1.0, 5.0], [3.0, 4.0]], [[1e307, -1e307], [-1e307, 1e307]]], dtype=F64)
    wide = ok.clone()
    wide[1, 0, 0] = INF
    with pytest.raises(ValueError, match=r"linear_assignment: problem 1: allowed costs span too wide a range"):
        torch.ops.romp_fast.linear_assignment(wide, None, None, None, False)
    for path in PATHS:
        with pytest.raises(ValueError, match=r"linear_assignment: problem 1: allowed costs span too wide a range"):
            solve(path, wide)
    res = solve_both(ok)
    for r in res.values():
        assert r.tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize("cost", [
    [[-1e308, -1e308], [1e308, 1.7e308]],
    [[-9e307, 1e308, 0, 9e307, 9e307], [1.7e308, 9e307, -1e308, 1.7e308, 9e307], [0, 9e307, -1e308, 1e308, 1.7e308],
     [9e307, -1.7e308, 1, -1.7e308, 9e307], [-1.7e308, 1.7e308, 9e307, 9e307, 1]],
], ids=["2x2", "5x5"])
def test_costs_near_the_float64_limit_are_refused_not_looped_on(cost):
    """Without forbidden entries too: reduced costs near 1e308 overflow to inf / NaN, after which the
    path search used to loop forever (both CPU solvers). Refused like a too-wide forbidden range,
    by the kernel (both solvers) and the reference."""
    import os
    import subprocess
    import sys
    c = torch.tensor([cost], dtype=F64)
    for path in PATHS:
        with pytest.raises(ValueError, match=r"linear_assignment: problem 0: allowed costs span too wide a range"):
            solve(path, c)
    script = ("import torch, romp_fast.ops as ops\n"
              f"c = torch.tensor([{cost!r}], dtype=torch.float64)\n"
              "try:\n    ops.linear_assignment(c); print('solved')\n"
              "except ValueError as e:\n    print('refused' if 'too wide' in str(e) else e)\n")
    res = subprocess.run([sys.executable, "-c", script], env={**os.environ, "ROMP_FAST_LSA_PORTABLE": "1"},
                         capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "refused", res.stdout + res.stderr


# --------------------------------------------------------------------------- gating and maximize
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("integer", [False, True])
def test_max_cost_gate_against_brute_force(device, maximize, integer):
    rng = np.random.default_rng([maximize, integer, 8])
    B = 200
    cost_np, rc, cc = _small_problems(rng, B, integer)
    cost_np[: B // 2] = np.where(np.isfinite(cost_np[: B // 2]), cost_np[: B // 2], 0.5)  # half without non-finite
    cost = to_torch(fill_padding(rng, cost_np, rc, cc), F64, device)
    rct, cct = torch.from_numpy(rc).to(device), torch.from_numpy(cc).to(device)
    for max_cost in (-1, 0.0, 0.7, 1) if integer else (-0.5, 0.3, 1.5):
        results = solve_both(cost, row_counts=rct, col_counts=cct, max_cost=max_cost, maximize=maximize)
        for b, block, n, m in blocks(as_np(cost), rc, cc):
            ok = allowed_mask(block, max_cost, maximize)
            want_k, want_total = brute_force(block, ok, maximize)
            for path, res in results.items():
                k, total = picked(res[b], block, ok)
                assert k == want_k, (path, b, max_cost, block)
                assert_total(total, want_total, np.abs(np.where(ok, block, 0)).sum())


@pytest.mark.parametrize("kind,M,N", [("square", 17, 17), ("tall", 31, 9), ("wide", 4, 40), ("square", 1, 1)])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_maximize_matches_scipy(device, kind, M, N, dtype):
    rng = np.random.default_rng([M, N, dtype == F32, 9])
    B = 30
    clean = rng.uniform(-1.0, 5.0, (B, M, N))
    rc, cc = random_counts(rng, B, M, N)
    cost = to_torch(fill_padding(rng, clean, rc, cc), dtype, device)
    for path, res in solve_both(cost, row_counts=torch.from_numpy(rc).to(device),
                                col_counts=torch.from_numpy(cc).to(device), maximize=True).items():
        check_against_scipy(res, as_np(cost), rc, cc, maximize=True)


@pytest.mark.parametrize("path", PATHS)
def test_gate_boundary_is_inclusive(device, path):
    c = torch.tensor([[[1.0, 2.0], [2.0, 3.0]]], dtype=F64, device=device)
    assert solve(path, c, max_cost=2.0).tolist() == [[1, 0]]  # 2 == max_cost is allowed
    assert solve(path, c, max_cost=2).tolist() == [[1, 0]]   # an int works too
    assert solve(path, c, max_cost=1.999).tolist() == [[0, -1]]
    assert solve(path, c, max_cost=2.0, maximize=True).tolist() == [[1, 0]]  # 1 is forbidden
    assert solve(path, c, max_cost=3.0, maximize=True).tolist() == [[-1, 1]]
    assert solve(path, c, max_cost=2.5, maximize=True).tolist() == [[-1, 1]]


@pytest.mark.parametrize("maximize", [False, True])
def test_infinite_and_nan_max_cost(device, maximize):
    rng = np.random.default_rng(10)
    cost = to_torch(rng.uniform(-1, 1, (6, 5, 7)), F64, device)
    free = solve_both(cost, maximize=maximize)["native"]
    check_against_scipy(free, as_np(cost), None, None, maximize)
    lenient, strict = (-INF, INF) if maximize else (INF, -INF)
    for path, res in solve_both(cost, max_cost=lenient, maximize=maximize).items():
        np.testing.assert_array_equal(res, free)
    for path, res in solve_both(cost, max_cost=strict, maximize=maximize).items():
        assert (res == -1).all()
    res = solve_both(cost, max_cost=NAN, maximize=maximize)
    np.testing.assert_array_equal(res["native"], res["reference"])


# --------------------------------------------------------------------------- solve_then_threshold
def solve_then_threshold_np(cost_np, rc, cc, threshold, maximize):
    """Its definition: scipy's assignment ignoring the threshold, then pairs worse than it dropped."""
    B, M, _ = cost_np.shape
    out = np.full((B, M), -1, np.int64)
    for b, block, n, m in blocks(cost_np, rc, cc):
        want = scipy_row(block, maximize)
        r = np.nonzero(want >= 0)[0]
        v = block[r, want[r]]
        keep = (v >= threshold) if maximize else (v <= threshold)
        out[b, r[keep]] = want[r[keep]]
    return out


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("path", PATHS)
def test_solve_then_threshold_definition(device, maximize, integer, path):
    rng = np.random.default_rng([maximize, integer, 11])
    B, M, N = 60, 6, 8
    clean = rng.integers(0, 10, (B, M, N)).astype(np.float64) if integer else rng.uniform(0, 10, (B, M, N))
    rc, cc = random_counts(rng, B, M, N)
    cost = to_torch(fill_padding(rng, clean, rc, cc), F64, device)
    for threshold in (2.0, 5.0, 8.0):
        with ops.use_reference() if path == "reference" else contextlib.nullcontext():
            res = ops.solve_then_threshold(cost, threshold, row_counts=torch.from_numpy(rc).to(device),
                                           col_counts=torch.from_numpy(cc).to(device), maximize=maximize)
        assert res.dtype == torch.int64 and res.shape == (B, M)
        if integer:
            # Ties: which optimum is thresholded depends on the tie break, so apply the rule to
            # this path's own (optimal, tested above) unconstrained answer.
            with ops.use_reference() if path == "reference" else contextlib.nullcontext():
                full = ops.linear_assignment(cost, row_counts=torch.from_numpy(rc).to(device),
                                             col_counts=torch.from_numpy(cc).to(device), maximize=maximize)
            full = full.cpu().numpy()
            want = np.full_like(full, -1)
            for b, block, n, m in blocks(as_np(cost), rc, cc):
                r = np.nonzero(full[b] >= 0)[0]
                v = block[r, full[b, r]]
                keep = r[(v >= threshold) if maximize else (v <= threshold)]
                want[b, keep] = full[b, keep]
        else:
            want = solve_then_threshold_np(as_np(cost), rc, cc, threshold, maximize)
        np.testing.assert_array_equal(res.cpu().numpy(), want)


@pytest.mark.parametrize("path", PATHS)
def test_gate_inside_versus_solve_then_threshold(device, path):
    """[[0, 4], [4, 6]] with limit 5: the unconstrained optimum (0 + 6) loses its second pair to
    the threshold, while the gate finds the full matching 4 + 4 of allowed pairs."""
    c = torch.tensor([[[0.0, 4.0], [4.0, 6.0]]], dtype=F64, device=device)
    with ops.use_reference() if path == "reference" else contextlib.nullcontext():
        assert ops.linear_assignment(c, max_cost=5.0).tolist() == [[1, 0]]
        assert ops.solve_then_threshold(c, 5.0).tolist() == [[0, -1]]
        assert ops.linear_assignment(c).tolist() == [[0, 1]]
        m = 10.0 - c  # the same in maximisation form
        assert ops.linear_assignment(m, max_cost=5.0, maximize=True).tolist() == [[1, 0]]
        assert ops.solve_then_threshold(m, 5.0, maximize=True).tolist() == [[0, -1]]


# --------------------------------------------------------------------------- opcheck
def _opcheck_cases(device):
    rng = np.random.default_rng(12)
    c32 = to_torch(rng.uniform(size=(3, 4, 5)), F32, device)
    c64 = to_torch(rng.uniform(size=(4, 6, 3)), F64, device)
    c64[0, 1, 2] = INF
    rc = torch.tensor([6, 0, 2, 5], device=device)
    cc = torch.tensor([3, 3, 1, 0], device=device)
    return {
        "plain": (c32, None, None, None, False),
        "counts": (c64, rc, cc, None, False),
        "gate": (c64, None, cc, 0.5, False),
        "maximize": (c32, torch.tensor([4, 1, 3], device=device), None, 0.3, True),
        "empty": (torch.zeros(0, 3, 2, device=device), None, None, None, False),
    }


@pytest.mark.parametrize("case", ["plain", "counts", "gate", "maximize", "empty"])
def test_opcheck(device, case):
    opcheck(torch.ops.romp_fast.linear_assignment.default, _opcheck_cases(device)[case])


# --------------------------------------------------------------------------- errors
def _wrapper_errors():
    c = torch.zeros(2, 4, 5)
    return [
        ((torch.zeros(3, 4),), {}, ValueError, r"linear_assignment: cost must be \[B, M, N\], got \[3, 4\]"),
        ((torch.zeros(1, 2, 3, 4),), {}, ValueError, r"cost must be \[B, M, N\], got \[1, 2, 3, 4\]"),
        ((torch.zeros(2, 4, 5, dtype=torch.int64),), {}, TypeError,
         r"linear_assignment: cost must be float32 or float64, got torch\.int64"),
        ((c.half(),), {}, TypeError, r"cost must be float32 or float64, got torch\.float16"),
        ((c,), {"row_counts": torch.tensor([1, 2, 3])}, ValueError,
         r"linear_assignment: row_counts must be an integer \[B\] = \[2\] tensor, got torch\.int64 \[3\]"),
        ((c,), {"col_counts": torch.tensor([[1, 2]])}, ValueError,
         r"col_counts must be an integer \[B\] = \[2\] tensor, got torch\.int64 \[1, 2\]"),
        ((c,), {"col_counts": torch.tensor([1.0, 2.0])}, ValueError,
         r"col_counts must be an integer \[B\] = \[2\] tensor, got torch\.float32 \[2\]"),
        ((c,), {"row_counts": torch.tensor([True, False])}, ValueError,
         r"row_counts must be an integer \[B\] = \[2\] tensor, got torch\.bool \[2\]"),
        ((c,), {"row_counts": torch.tensor([4, 5])}, ValueError,
         r"linear_assignment: row_counts\[1\] = 5 is outside \[0, 4\]"),
        ((c,), {"col_counts": [-1, 2]}, ValueError, r"col_counts\[0\] = -1 is outside \[0, 5\]"),
        ((c,), {"max_cost": "1.0"}, TypeError, r"linear_assignment: max_cost must be a number, got str"),
        ((c,), {"max_cost": torch.tensor(1.0)}, TypeError, r"max_cost must be a number, got Tensor"),
    ]


@pytest.mark.parametrize("i", range(12))
@pytest.mark.parametrize("path", PATHS)
def test_wrapper_error_messages(path, i):
    args, kw, exc, msg = _wrapper_errors()[i]
    with ops.use_reference() if path == "reference" else contextlib.nullcontext():
        with pytest.raises(exc, match=msg):
            ops.linear_assignment(*args, **kw)


def test_wrapper_errors_in_solve_then_threshold():
    with pytest.raises(ValueError, match=r"row_counts\[0\] = 7 is outside \[0, 4\]"):
        ops.solve_then_threshold(torch.zeros(2, 4, 5), 1.0, row_counts=torch.tensor([7, 1]))


def test_kernel_error_messages():
    op = torch.ops.romp_fast.linear_assignment
    c = torch.zeros(2, 4, 5)
    cases = [
        ((torch.zeros(3, 4), None, None), r"linear_assignment: cost must be \[B, M, N\], got \[3, 4\]"),
        ((c.long(), None, None), r"linear_assignment: cost must be float32 or float64, got Long"),
        ((c.half(), None, None), r"cost must be float32 or float64, got Half"),
        ((c, torch.tensor([1, 2], dtype=torch.int32), None),
         r"linear_assignment: row_counts must be int64 \[B\] = \[2\], got Int \[2\]"),
        ((c, None, torch.tensor([[1], [2]])), r"col_counts must be int64 \[B\] = \[2\], got Long \[2, 1\]"),
        ((c, None, torch.tensor([1, 2, 3])), r"col_counts must be int64 \[B\] = \[2\], got Long \[3\]"),
        ((c, torch.tensor([4, 5]), None), r"linear_assignment: row_counts\[1\] = 5 is outside \[0, 4\]"),
        ((c, None, torch.tensor([-3, 5])), r"linear_assignment: col_counts\[0\] = -3 is outside \[0, 5\]"),
    ]
    for (cost, rc, cc), msg in cases:
        with pytest.raises(RuntimeError, match=msg):
            op(cost, rc, cc, None, False)


@pytest.mark.cuda
@pytest.mark.skipif(_NO_CUDA, reason="needs a GPU and romp_fast built with CUDA")
def test_kernel_counts_on_other_device():
    c = torch.zeros(2, 4, 5, device="cuda")
    with pytest.raises(RuntimeError, match=r"row_counts is on cpu but cost is on cuda"):
        torch.ops.romp_fast.linear_assignment(c, torch.tensor([1, 2]), None, None, False)


# --------------------------------------------------------------------------- CUDA vs CPU
@pytest.mark.cuda
@pytest.mark.skipif(_NO_CUDA, reason="needs a GPU and romp_fast built with CUDA")
@pytest.mark.parametrize("maximize", [False, True])
def test_cuda_equals_cpu_on_forbidden_and_gated(maximize):
    rng = np.random.default_rng([maximize, 13])
    cost_np, rc, cc = _small_problems(rng, 400, integer=False)
    cost = torch.from_numpy(fill_padding(rng, cost_np, rc, cc))
    kw = dict(max_cost=0.5 if not maximize else -0.5, maximize=maximize)
    cpu = ops.linear_assignment(cost, row_counts=torch.from_numpy(rc), col_counts=torch.from_numpy(cc), **kw)
    gpu = ops.linear_assignment(cost.cuda(), row_counts=torch.from_numpy(rc).cuda(),
                                col_counts=torch.from_numpy(cc).cuda(), **kw)
    assert torch.equal(cpu, gpu.cpu())
