"""One-shot GPU timing of batched linear assignment: romp_fast's CUDA kernel (one warp per problem)
vs torch-linear-assignment when it is importable, with romp_fast's CPU kernel and a scipy loop as
anchors (perf_peers.md section 6, "One-off GPU run").

    python benchmarks/gpu_assignment.py [--out DIR] [--iters 20]
    python benchmarks/gpu_assignment.py --dry-run     # CPU, small sizes: checks the script itself

Cases: B in {1e3, 1e4} x (10x12, 20x40, 50x60), uniform float32 costs. CUDA events, median of
--iters after warm-up. torch-linear-assignment's first call compiles Triton code: it is timed
separately and excluded from the table. Correctness first: on the first --check-n problems every
contender's total cost equals scipy's (float64 totals of the chosen float32 entries, 1e-6
relative); a mismatch is recorded, timing still runs, and the exit status is 1.
Writes $OUT/gpu_assignment.json and prints the table last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_procrustes import Timer, label  # noqa: E402

SHAPES = [(10, 12), (20, 40), (50, 60)]


def totals(cost, match):
    """float64 total of each problem's chosen entries; match [B, M] with -1 for none."""
    c = cost.double().cpu().numpy()
    m = match.cpu().numpy()
    rows = np.arange(m.shape[1])
    return np.array([c[b, rows[m[b] >= 0], m[b][m[b] >= 0]].sum() for b in range(len(m))])


def scipy_totals(cost):
    from scipy.optimize import linear_sum_assignment
    c = cost.double().cpu().numpy()
    return np.array([c[b][linear_sum_assignment(c[b])].sum() for b in range(len(c))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="run on CPU with small sizes")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_out")
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--check-n", type=int, default=200)
    ap.add_argument("--budget-s", type=float, default=120.0)
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_assignment: no CUDA device; nothing timed (use --dry-run to test the script)")
        return 0
    import romp_fast.ops as rf

    device = torch.device("cpu" if args.dry_run else "cuda")
    sizes = [100, 300] if args.dry_run else [1_000, 10_000]
    iters = args.iters or (3 if args.dry_run else 20)
    timer = Timer(device)
    try:
        from torch_linear_assignment import batch_linear_assignment as tla
    except ImportError:
        tla = None
    t_start = time.time()
    rows, problems = [], []
    for B in sizes:
        for M, N in SHAPES:
            if time.time() - t_start > args.budget_s:
                problems.append(f"budget reached before B={B} {M}x{N}")
                continue
            g = torch.Generator().manual_seed(B * 1000 + M)
            cost_cpu = torch.rand(B, M, N, generator=g)
            cost = cost_cpu.to(device)
            ref = scipy_totals(cost_cpu[: args.check_n])
            contenders = {"romp_fast": lambda c: rf.linear_assignment(c)}
            if device.type == "cuda":
                contenders["romp_fast_cpu"] = lambda c: rf.linear_assignment(c.cpu())
            compile_ms = None
            if tla is not None and device.type == "cuda":
                t0 = time.perf_counter()
                tla(cost[:2])
                torch.cuda.synchronize()
                compile_ms = (time.perf_counter() - t0) * 1e3
                contenders["torch_linear_assignment"] = tla
            case = {"B": B, "M": M, "N": N, "results": {}, "tla_first_call_ms": compile_ms}
            for name, fn in contenders.items():
                out = fn(cost)
                got = totals(cost_cpu[: args.check_n], out[: args.check_n])
                ok = bool(np.all(np.abs(got - ref) <= 1e-6 * np.maximum(1, np.abs(ref))))
                if not ok:
                    problems.append(f"AGREEMENT FAILURE {name} B={B} {M}x{N}")
                med, mn = timer(fn, lambda: (cost,), iters, 2)
                case["results"][name] = {"median_ms": med, "min_ms": mn, "agrees": ok}
            n_loop = min(B, 200)
            t0 = time.perf_counter()
            scipy_totals(cost_cpu[:n_loop])
            case["results"]["scipy_loop"] = {"median_ms": (time.perf_counter() - t0) * 1e3 * B / n_loop,
                                             "min_ms": None, "agrees": True, "extrapolated": True}
            rows.append(case)
    env = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (dry run)",
           "torch": torch.__version__, "tla": tla is not None}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_assignment.json"), "w") as f:
        json.dump({"env": env, "cases": rows, "problems": problems}, f, indent=1)
    names = ["romp_fast", "romp_fast_cpu", "torch_linear_assignment", "scipy_loop"]
    print(f"\n### Linear assignment on {env['device']} (median ms; ratio = contender / romp_fast)\n")
    print("| case | " + " | ".join(names) + " | µs/problem (ours) |")
    print("|---|" + "---|" * (len(names) + 1))
    for case in rows:
        ours = case["results"]["romp_fast"]["median_ms"]
        cells = []
        for n in names:
            r = case["results"].get(n)
            if r is None:
                cells.append("")
                continue
            flag = "" if r["agrees"] else " FAIL"
            star = "*" if r.get("extrapolated") else ""
            cells.append(f"{r['median_ms']:.3g}{star} ({r['median_ms'] / ours:.3g}×){flag}")
        print(f"| B={label(case['B'])} {case['M']}x{case['N']} | " + " | ".join(cells) +
              f" | {ours * 1e3 / case['B']:.3g} |")
    print("\n\\* scipy loop timed on 200 problems, scaled to B.")
    if problems:
        print("problems: " + "; ".join(problems))
    return 1 if any(p.startswith("AGREEMENT") for p in problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
