"""One-shot GPU timing of PA-MPJPE: romp_fast's CUDA kernel vs the torch.linalg.svd pipeline, roma,
torch.linalg.svd alone and a read-once memory floor (perf_peers.md section 6, "One-off GPU run").

    python benchmarks/gpu_procrustes.py [--out DIR] [--iters 20] [--sizes 1e4,1e5,1e6]
    python benchmarks/gpu_procrustes.py --dry-run     # CPU, small sizes: checks the script itself

Cases: J=24 float32, B in --sizes; forward+backward at B=--fwdbwd-B (1e5). Each timed case gets
warm-up calls, then --iters calls timed one by one with CUDA events (a synchronize after each);
the table gives the median (and min) in ms, the ratio to romp_fast's median (>1: romp_fast is
faster), the achieved bandwidth over the useful bytes (pred + target read, the per-sample output
written) and the ratio to the memory floor (``pred.sum() + target.sum()``, one read of the inputs).
B=1e6 (576 MB of inputs) is larger than any L2, so only that row measures DRAM bandwidth honestly.

Correctness before speed: on the first --check-n samples every contender is compared with the
float64 numpy batched-SVD oracle on CPU, |x - ref| <= 1e-5 (1 + |ref|), and gradients with float64
autograd through the torch reference (1e-5 ours, 5e-5 for float32 SVD-based peers). A mismatch is
recorded in the table and JSON, the timing still runs (a lent GPU is scarce), and the exit status
is 1. Without CUDA (and without --dry-run) it prints why and exits 0 having timed nothing.
Writes JSON to $OUT/gpu_procrustes.json (OUT defaults to ./gpu_out) and prints the table last.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import assert_close, pa_mpjpe_np  # noqa: E402

J = 24


def label(B):
    """1e4 for powers of ten, else the integer."""
    e = len(str(B)) - 1
    return f"1e{e}" if B == 10 ** e and e >= 3 else str(B)


def parse_sizes(text):
    return [int(float(x)) for x in text.split(",") if x]


def make_inputs(B, device, seed=0):
    """Seeded float32 (pred, target) on ``device``, built there in chunks (1e6 x 24 x 3 is 288 MB).

    Same recipe as _common.joint_inputs: target ~ N(0, 0.3 m), pred = random similarity of the
    target + N(0, 5 cm) noise, so PA-MPJPE is ~8 cm and every sample is regular.
    """
    g = torch.Generator(device=device).manual_seed(seed)
    pred = torch.empty(B, J, 3, device=device)
    target = torch.empty(B, J, 3, device=device)
    step = 1 << 18
    for a in range(0, B, step):
        n = min(step, B - a)
        y = torch.randn(n, J, 3, device=device, generator=g, dtype=torch.float64) * 0.3
        q = torch.randn(n, 4, device=device, generator=g, dtype=torch.float64)
        w, x, yy, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
        R = torch.stack([
            torch.stack([1 - 2 * (yy * yy + z * z), 2 * (x * yy - z * w), 2 * (x * z + yy * w)], -1),
            torch.stack([2 * (x * yy + z * w), 1 - 2 * (x * x + z * z), 2 * (yy * z - x * w)], -1),
            torch.stack([2 * (x * z - yy * w), 2 * (yy * z + x * w), 1 - 2 * (x * x + yy * yy)], -1),
        ], -2)
        s = 0.7 + 0.7 * torch.rand(n, 1, 1, device=device, generator=g, dtype=torch.float64)
        t = 2.0 * torch.randn(n, 1, 3, device=device, generator=g, dtype=torch.float64)
        noise = 0.05 * torch.randn(n, J, 3, device=device, generator=g, dtype=torch.float64)
        pred[a:a + n] = s * y @ R.mT + t + noise
        target[a:a + n] = y
    return pred, target


class Timer:
    """Median/min of per-call times in ms: CUDA events on a GPU, perf_counter on CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn, setup, iters, warmup):
        for _ in range(warmup):
            fn(*setup())
        self.sync()
        times = []
        for _ in range(iters):
            args = setup()
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(*args)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn(*args)
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), min(times)


def contenders(rf, ref_fn, roma):
    def ours(p, t):
        return rf.pa_mpjpe(p, t)

    def reference(p, t):
        return ref_fn(p, t)

    def roma_pa(p, t):
        R, tr, s = roma.rigid_points_registration(p, t, compute_scaling=True)
        return (s[:, None, None] * p @ R.mT + tr[:, None] - t).norm(dim=-1).mean(-1)

    out = {"romp_fast": ours, "reference": reference}
    if roma is not None:
        out["roma"] = roma_pa
    return out


def covariances(pred, target):
    xc = pred - pred.mean(1, keepdim=True)
    yc = target - target.mean(1, keepdim=True)
    return xc.mT @ yc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="run every step on CPU with small sizes (checks the script, times nothing useful)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_out", help="JSON folder ($OUT)")
    ap.add_argument("--sizes", default=None, help="batch sizes, default 1e4,1e5,1e6 (dry run: 256,1e3)")
    ap.add_argument("--fwdbwd-B", type=float, default=None, help="forward+backward batch (1e5; dry: 1e3)")
    ap.add_argument("--iters", type=int, default=None, help="timed calls per case (20; dry: 5)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls first (3; dry: 1)")
    ap.add_argument("--check-n", type=int, default=2000, help="samples checked against the oracle")
    ap.add_argument("--budget-s", type=float, default=240.0,
                    help="stop starting new cases after this many seconds (the run must fit 8 min)")
    args = ap.parse_args(argv)

    if args.dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print("gpu_procrustes: no CUDA device visible; nothing timed "
              "(use --dry-run to exercise the script on CPU)")
        return 0
    sizes = parse_sizes(args.sizes or ("256,1e3" if args.dry_run else "1e4,1e5,1e6"))
    fb_B = int(args.fwdbwd_B or (1e3 if args.dry_run else 1e5))
    args.iters = args.iters or (5 if args.dry_run else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.dry_run else 3)

    import romp_fast.ops as rf
    from romp_fast.ops.procrustes import pa_mpjpe_reference
    try:
        import roma
    except ImportError:
        roma = None
    if not rf.native_available(device.type):
        print(f"gpu_procrustes: romp_fast has no native {device.type} kernel "
              f"({rf.build_info()}); 'romp_fast' rows would time the reference", file=sys.stderr)

    t_start = time.perf_counter()
    timer = Timer(device)
    env = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "dry_run": args.dry_run, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_capability": list(torch.cuda.get_device_capability()) if device.type == "cuda" else None,
        "romp_fast_build": rf.build_info(), "roma": getattr(roma, "__version__", None) if roma else None,
        "iters": args.iters, "warmup": args.warmup, "J": J, "dtype": "float32",
        "torch_threads": torch.get_num_threads(),
    }
    print("gpu_procrustes:", json.dumps(env), flush=True)
    fns = contenders(rf, pa_mpjpe_reference, roma)
    rows, problems = [], []

    def over_budget(what):
        if time.perf_counter() - t_start > args.budget_s:
            rows.append(dict(case=what, contender="(skipped: --budget-s reached)"))
            return True
        return False

    def check(name, got, ref, rtol):
        try:
            return assert_close(name, got, ref, rtol), "ok"
        except AssertionError as exc:
            problems.append(str(exc))
            print("AGREEMENT FAILURE:", exc, file=sys.stderr, flush=True)
            return None, "FAIL"

    def timed(case, name, fn, setup, useful_bytes, agreement, max_abs_diff=None):
        try:
            med, mn = timer(fn, setup, args.iters, args.warmup)
        except Exception as exc:  # e.g. out of memory: record it, keep going
            traceback.print_exc()
            problems.append(f"{case} {name}: {exc!r}")
            rows.append(dict(case=case, contender=name, error=repr(exc)[:200]))
            return
        rows.append(dict(case=case, contender=name, median_ms=med, min_ms=mn, bytes=useful_bytes,
                         gbps=useful_bytes / (med * 1e-3) / 1e9 if useful_bytes else None,
                         agreement=agreement, max_abs_diff=max_abs_diff))
        print(f"  {case:<24} {name:<16} median {med:9.4f} ms  min {mn:9.4f} ms  [{agreement}]",
              flush=True)

    for B in sizes:
        case = f"fwd B={label(B)}"
        if over_budget(case):
            break
        pred, target = make_inputs(B, device)
        timer.sync()
        n = min(B, args.check_n)
        ref = pa_mpjpe_np(pred[:n].double().cpu().numpy(), target[:n].double().cpu().numpy())
        io_bytes = 2 * pred.numel() * pred.element_size() + B * pred.element_size()
        no_args = lambda: ()  # noqa: E731
        timed(case, "copy_floor", lambda: pred.sum() + target.sum(), no_args,
              2 * pred.numel() * pred.element_size(), "n/a")
        for name, fn in fns.items():
            diff, ok = check(f"{case} {name}", fn(pred[:n], target[:n]).double().cpu().numpy(), ref, 1e-5)
            # The full-batch call also has to agree where the check-n prefix came from.
            full = fn(pred, target)
            d2, ok2 = check(f"{case} {name} (full batch prefix)", full[:n].double().cpu().numpy(), ref, 1e-5)
            del full
            timed(case, name, lambda f=fn: f(pred, target), no_args, io_bytes,
                  "ok" if ok == ok2 == "ok" else "FAIL", diff)
        K = covariances(pred, target)
        U, S, Vh = torch.linalg.svd(K[:n])
        recon = ((U * S[:, None]) @ Vh - K[:n]).abs().max() / K[:n].abs().max()
        ok = "ok" if float(recon) < 1e-5 else "FAIL"
        if ok != "ok":
            problems.append(f"{case} torch.linalg.svd reconstruction error {float(recon):.3g}")
        timed(case, "svd_only(B,3,3)", lambda: torch.linalg.svd(K), no_args,
              2 * K.numel() * K.element_size(), ok)
        del pred, target, K
        if device.type == "cuda":
            torch.cuda.empty_cache()

    case = f"fwd+bwd B={label(fb_B)}"
    if not over_budget(case):
        pred, target = make_inputs(fb_B, device, seed=1)
        n = min(fb_B, args.check_n)
        p64 = pred[:n].double().cpu().requires_grad_()
        pa_mpjpe_reference(p64, target[:n].double().cpu()).sum().backward()
        g_ref = p64.grad.numpy()
        # forward reads pred, target; backward reads pred, target and writes grad_pred
        io_bytes = 5 * pred.numel() * pred.element_size() + 2 * fb_B * pred.element_size()
        for name, fn in fns.items():
            p = pred[:n].clone().requires_grad_()
            fn(p, target[:n]).sum().backward()
            diff, ok = check(f"{case} {name} grad", p.grad.double().cpu().numpy(), g_ref,
                             1e-5 if name == "romp_fast" else 5e-5)

            def step(p, f=fn):
                f(p, target).sum().backward()

            timed(case, name, step, lambda: (pred.detach().requires_grad_(),), io_bytes, ok, diff)
        del pred, target

    total_s = time.perf_counter() - t_start
    result = {"env": env, "rows": rows, "problems": problems, "seconds": total_s}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpu_procrustes.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {path} ({total_s:.1f} s)\n")
    print(table(rows, env))
    if problems:
        print(f"\n{len(problems)} problem(s): " + "; ".join(problems))
    return 1 if problems else 0


def table(rows, env) -> str:
    lines = [f"### PA-MPJPE on {env['device']} (J={J} float32, median of {env['iters']} after "
             f"{env['warmup']} warm-up; torch {env['torch']}, CUDA {env['torch_cuda']})"
             + (" -- DRY RUN on CPU" if env["dry_run"] else ""), "",
             "| case | contender | median ms | min ms | vs romp_fast | GB/s | × copy floor | agrees |",
             "|---|---|---|---|---|---|---|---|"]
    by_case = {}
    for r in rows:
        by_case.setdefault(r["case"], []).append(r)
    for case, rs in by_case.items():
        ours = next((r.get("median_ms") for r in rs if r["contender"] == "romp_fast"), None)
        floor = next((r.get("median_ms") for r in rs if r["contender"] == "copy_floor"), None)
        for r in rs:
            med = r.get("median_ms")
            if med is None:
                lines.append(f"| {case} | {r['contender']} | {r.get('error', '')} | | | | | |")
                continue
            vs = f"{med / ours:.3g}×" if ours and r["contender"] != "romp_fast" else ("1" if ours else "")
            fl = f"{med / floor:.3g}×" if floor else ""
            gb = f"{r['gbps']:.3g}" if r.get("gbps") else ""
            lines.append(f"| {case} | {r['contender']} | {med:.4f} | {r['min_ms']:.4f} | {vs} | {gb} | "
                         f"{fl} | {r['agreement']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
