"""One-shot GPU timing of the fused keypoint / temporal error ops against eager torch written the
way ROMP / TRACE / VIBE write those terms (perf_peers.md section 6, "One-off GPU run").

    python benchmarks/gpu_losses.py [--out DIR] [--iters 20]
    python benchmarks/gpu_losses.py --dry-run     # CPU, small sizes: checks the script itself

Cases: masked_joint_error forward and forward+backward at (B, J, D) = (65536, 24, 3);
pairwise_displacement_error and temporal_difference_error (order 2) forward+backward at
(S, T) = (64, 256). CUDA events, median of --iters after warm-up. Values and gradients are
checked against the eager version first (1e-4 relative in float32); a mismatch is recorded,
timing still runs, and the exit status is 1. Writes $OUT/gpu_losses.json, prints the table last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_procrustes import Timer  # noqa: E402


def eager_joint(pred, target, weight):
    d = torch.norm(pred - target, dim=-1) * weight
    return d.sum(-1) / weight.sum(-1).clamp(min=1)


def eager_pairwise(pred, target, valid, scale):
    dp = pred[:, :, None] - pred[:, None]
    dg = target[:, :, None] - target[:, None]
    pair = valid[:, :, None] * valid[:, None] * (1 - torch.eye(pred.shape[1], device=pred.device))
    r = (scale[:, None, None, None] * dp - dg).norm(dim=-1) * pair
    return r.sum((1, 2)) / pair.sum((1, 2)).clamp(min=1)


def eager_accel(pred, target, valid):
    acc = lambda x: x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]  # noqa: E731
    ok = valid[:, 2:] * valid[:, 1:-1] * valid[:, :-2]
    err = (acc(pred) - acc(target)).norm(dim=-1).mean(-1) * ok
    return err.sum(-1) / ok.sum(-1).clamp(min=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_out")
    ap.add_argument("--iters", type=int, default=None)
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_losses: no CUDA device; nothing timed (use --dry-run to test the script)")
        return 0
    import romp_fast.ops as rf

    dev = torch.device("cpu" if args.dry_run else "cuda")
    iters = args.iters or (3 if args.dry_run else 20)
    timer = Timer(dev)
    g = torch.Generator(device=dev).manual_seed(0)
    B, J = (1024, 24) if args.dry_run else (65536, 24)
    S, T = (8, 64) if args.dry_run else (64, 256)
    pred = torch.randn(B, J, 3, device=dev, generator=g)
    target = torch.randn(B, J, 3, device=dev, generator=g)
    weight = (torch.rand(B, J, device=dev, generator=g) > 0.1).float()
    tp = torch.randn(S, T, 3, device=dev, generator=g)
    tt = torch.randn(S, T, 3, device=dev, generator=g)
    tv = (torch.rand(S, T, device=dev, generator=g) > 0.1).float()
    sc = torch.ones(S, device=dev)
    jp = torch.randn(S, T, J, 3, device=dev, generator=g)
    jt = torch.randn(S, T, J, 3, device=dev, generator=g)
    cases = {
        f"masked_joint_error B={B}": (pred, lambda x: rf.masked_joint_error(x, target, weight),
                                      lambda x: eager_joint(x, target, weight)),
        f"pairwise_displacement S={S} T={T}": (tp, lambda x: rf.pairwise_displacement_error(x, tt, tv, sc),
                                               lambda x: eager_pairwise(x, tt, tv, sc)),
        f"accel_error S={S} T={T} J={J}": (jp, lambda x: rf.temporal_difference_error(x, jt, tv, 2),
                                           lambda x: eager_accel(x, jt, tv)),
    }
    rows, problems = [], []
    for name, (x0, ours, eager) in cases.items():
        xa, xb = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        a, b = ours(xa), eager(xb)
        a.sum().backward()
        b.sum().backward()
        ok = torch.allclose(a, b, rtol=1e-4, atol=1e-5) and torch.allclose(xa.grad, xb.grad, rtol=1e-4, atol=1e-6)
        if not ok:
            problems.append(f"AGREEMENT FAILURE {name}")
        row = {"case": name, "agrees": ok}
        for label, f in (("ours", ours), ("eager", eager)):
            row[f"{label}_fwd_ms"] = timer(f, lambda: (x0,), iters, 2)[0]

            def step(x, f=f):
                f(x).sum().backward()
            row[f"{label}_fwdbwd_ms"] = timer(step, lambda: (x0.detach().requires_grad_(),), iters, 2)[0]
        rows.append(row)
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu (dry run)"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_losses.json"), "w") as f:
        json.dump({"device": device, "rows": rows, "problems": problems}, f, indent=1)
    print(f"\n### Fused losses on {device} (median ms; ratio = eager / ours)\n")
    print("| case | ours fwd | eager fwd | ratio | ours fwd+bwd | eager fwd+bwd | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        flag = "" if r["agrees"] else " FAIL"
        print(f"| {r['case']}{flag} | {r['ours_fwd_ms']:.3g} | {r['eager_fwd_ms']:.3g} | "
              f"{r['eager_fwd_ms'] / r['ours_fwd_ms']:.3g}x | {r['ours_fwdbwd_ms']:.3g} | "
              f"{r['eager_fwdbwd_ms']:.3g} | {r['eager_fwdbwd_ms'] / r['ours_fwdbwd_ms']:.3g}x |")
    if problems:
        print("problems: " + "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
