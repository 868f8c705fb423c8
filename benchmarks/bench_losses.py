"""Keypoint and temporal losses: romp_fast's fused kernels side by side with the eager torch code the
ROMP / VIBE / TRACE training loops run, and with torch.compile of that code.

Hot paths and contenders, one pytest-benchmark group per (op, size, kind):
  masked_joint_error [B, J, D], visibility mask with ~20 % hidden joints
    romp_fast   romp_fast.ops.masked_joint_error(pred, gt, vis)
    eager       ROMP-style: per-joint torch.norm(pred - gt, dim=-1) times the visibility mask, summed
                and divided by the visible count
    compiled    torch.compile(eager, dynamic=False); the first call (compilation) is excluded from
                the timing and its wall time recorded as extra_info["compile_s"] (much shorter on a
                rerun: Inductor's on-disk FX-graph and C++ caches survive the process)
  temporal_difference_error, order 2, [S, T, 24, 3] tracks, ~10 % invalid frames
    eager       VIBE's compute_error_accel, batched: second finite differences of pred and target,
                per-joint norm of their difference, mean over joints, mean over frames whose 3-frame
                stencil is valid
  pairwise_displacement_error [S, T, 3] world trajectories, per-track scale, ~10 % invalid frames
    eager       TRACE-style: materialise every T x T displacement of pred and target, scale, norm,
                masked mean over ordered pairs of valid frames i != j
Forward groups time ``f(inputs)``; forward+backward groups ``f(pred).sum().backward()`` on a fresh
leaf. Everything is float32, 2 threads (benchmarks/conftest.py).

Correctness before speed: every contender's value and gradient of the sum is checked against the
eager code run in float64 on the same (float32-rounded) inputs, |x - ref| <= 1e-5 (1 + |ref|).

    OMP_NUM_THREADS=2 .venv/bin/python -m pytest benchmarks/bench_losses.py -m "not slow" --benchmark-json=losses.json
    .venv/bin/python benchmarks/report.py losses.json
"""
from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import torch
import torch._inductor.config

import romp_fast.ops as rf
from _common import assert_close, joint_inputs, rounds_for

CONTENDERS = ("romp_fast", "eager", "compiled")
KINDS = ("fwd", "fwd+bwd")
MASK_FRAC = 0.2  # hidden joints
INVALID_FRAC = 0.1  # invalid frames
TRACK_JOINTS = 24  # joints per frame for the acceleration error
COMPILE_LIMIT_S = 60.0
RTOL = 1e-5

# Every (shape, requires_grad) is its own specialised graph of the same eager function.
torch._dynamo.config.recompile_limit = 64
# Inductor's default (compile_threads = 2 on this 2-core machine) starts a pool of compile worker
# subprocesses that share the benchmark's cores with the timed rounds; compile in-process instead.
torch._inductor.config.compile_threads = 1


# --------------------------------------------------------------------------- eager peers
def mje_eager(pred, gt, vis):
    """ROMP's keypoint loss shape: masked per-joint L2 distance, mean over the visible joints."""
    dist = torch.norm(pred - gt, dim=-1) * vis
    return dist.sum(-1) / vis.sum(-1).clamp(min=1)


def accel_eager(pred, gt, valid):
    """VIBE's compute_error_accel over a batch of tracks, with its 3-frame visibility rule."""
    accel_pred = pred[:, :-2] - 2 * pred[:, 1:-1] + pred[:, 2:]
    accel_gt = gt[:, :-2] - 2 * gt[:, 1:-1] + gt[:, 2:]
    err = torch.norm(accel_pred - accel_gt, dim=-1).mean(-1)  # [S, T - 2]
    ok = valid[:, :-2] * valid[:, 1:-1] * valid[:, 2:]
    return (err * ok).sum(-1) / ok.sum(-1).clamp(min=1)


def pairwise_eager(pred, gt, valid, scale):
    """TRACE's world-trajectory displacement loss: all T x T pairs materialised."""
    T = pred.shape[1]
    dp = pred[:, :, None] - pred[:, None]  # [S, T, T, 3]
    dg = gt[:, :, None] - gt[:, None]
    err = torch.norm(scale[:, None, None, None] * dp - dg, dim=-1)
    pair = valid[:, :, None] * valid[:, None] * (1 - torch.eye(T, dtype=pred.dtype))
    return (err * pair).sum((1, 2)) / pair.sum((1, 2)).clamp(min=1)


def mje_ours(pred, gt, vis):
    return rf.masked_joint_error(pred, gt, vis)


def accel_ours(pred, gt, valid):
    return rf.temporal_difference_error(pred, gt, valid, order=2)


def pairwise_ours(pred, gt, valid, scale):
    return rf.pairwise_displacement_error(pred, gt, valid, scale)


OPS = {
    "masked_joint_error": (mje_ours, mje_eager),
    "temporal_difference_error": (accel_ours, accel_eager),
    "pairwise_displacement_error": (pairwise_ours, pairwise_eager),
}


# --------------------------------------------------------------------------- cases and inputs
def _case(op, B, J, D, slow=False):
    return dict(op=op, B=B, J=J, D=D, slow=slow)


CASES = (
    [_case("masked_joint_error", B, J, D, slow=B >= 65536) for B, J, D in ((64, 54, 2), (4096, 54, 3), (65536, 24, 3))]
    # tracks: B = S tracks, J = T frames
    + [_case(op, 64, T, 3, slow=T >= 256) for op in ("temporal_difference_error", "pairwise_displacement_error")
       for T in (16, 64, 256)]
)


def _case_id(c):
    return f"{c['op']}-B{c['B']}-{'J' if c['op'] == 'masked_joint_error' else 'T'}{c['J']}-D{c['D']}"


def _group(kind, c):
    if c["op"] == "masked_joint_error":
        return f"losses-{kind} masked_joint_error B={c['B']} J={c['J']} D={c['D']}"
    name = "temporal_difference_error(order 2)" if c["op"] == "temporal_difference_error" else c["op"]
    return f"losses-{kind} {name} S={c['B']} T={c['J']}"


def _params():
    return [pytest.param(c, kind, name, id=f"{_case_id(c)}-{kind}-{name}",
                         marks=[pytest.mark.slow] if c["slow"] else [])
            for c in CASES for kind in KINDS for name in CONTENDERS]


@functools.lru_cache(maxsize=4)
def _inputs(op, B, J, D):
    """float32 torch inputs (pred first), identical for every contender of the case."""
    rng = np.random.default_rng(B * 1000 + J)
    if op == "masked_joint_error":
        pred, gt, mask = joint_inputs(B, J, MASK_FRAC)
        arrays = [pred[..., :D], gt[..., :D], mask]
    else:
        S, T = B, J
        shape = (S, T, TRACK_JOINTS, 3) if op == "temporal_difference_error" else (S, T, 3)
        gt = np.cumsum(rng.normal(scale=0.05, size=shape), axis=1)  # random-walk motion, metres
        scale = rng.uniform(0.5, 2.0, S)
        pred = gt / scale.reshape((S,) + (1,) * (len(shape) - 1)) + rng.normal(scale=0.02, size=shape)
        arrays = [pred, gt, rng.random((S, T)) >= INVALID_FRAC] + ([scale] if op != "temporal_difference_error" else [])
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays)


@functools.lru_cache(maxsize=4)
def _oracle(op, B, J, D):
    """Value and d sum / d pred of the eager code in float64 on the float32-rounded inputs."""
    pred, *rest = (a.double() for a in _inputs(op, B, J, D))
    p = pred.requires_grad_()
    out = OPS[op][1](p, *rest)
    grad, = torch.autograd.grad(out.sum(), p)
    return out.detach().numpy(), grad.numpy()


_COMPILED: dict = {}


def _compiled(op, kind, args):
    """torch.compile of the eager peer, compiled by one first call on these inputs; (fn, seconds)."""
    key = (op, kind, tuple(args[0].shape))
    if key not in _COMPILED:
        fn = torch.compile(OPS[op][1], dynamic=False)
        t0 = time.perf_counter()
        try:
            if kind == "fwd":
                fn(*args)
            else:
                fn(args[0].detach().requires_grad_(), *args[1:]).sum().backward()
        except Exception as exc:  # no C++ toolchain, an inductor bug on this torch, ...
            _COMPILED[key] = (None, f"torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}")
        else:
            _COMPILED[key] = (fn, time.perf_counter() - t0)
    fn, info = _COMPILED[key]
    if fn is None:
        pytest.skip(info)
    if info > COMPILE_LIMIT_S:
        pytest.skip(f"torch.compile took {info:.0f} s (> {COMPILE_LIMIT_S:.0f} s) on this CPU")
    return fn, info


def _input_bytes(args):
    return sum(a.nbytes for a in args)


@pytest.mark.parametrize("case,kind,contender", _params())
def test_losses(benchmark, record, case, kind, contender):
    op, B, J, D = case["op"], case["B"], case["J"], case["D"]
    args = _inputs(op, B, J, D)
    ref, ref_grad = _oracle(op, B, J, D)
    ours, eager = OPS[op]
    compile_s = None
    if contender == "compiled":
        f, compile_s = _compiled(op, kind, args)
    else:
        f = ours if contender == "romp_fast" else eager
    benchmark.group = _group(kind, case)

    if kind == "fwd":
        t0 = time.perf_counter()
        out = f(*args)
        rounds = rounds_for(time.perf_counter() - t0)
        assert_close(contender, out.numpy(), ref, RTOL)
        benchmark.pedantic(f, args=args, rounds=rounds, iterations=1, warmup_rounds=1)
    else:
        rest = args[1:]

        def step(p):
            f(p, *rest).sum().backward()
            return p

        def fresh():
            return (args[0].detach().requires_grad_(),), {}

        (p,), _ = fresh()
        t0 = time.perf_counter()
        out = f(p, *rest)
        out.sum().backward()
        rounds = rounds_for(time.perf_counter() - t0)
        assert_close(contender, out.detach().numpy(), ref, RTOL)
        assert_close(f"{contender} grad", p.grad.numpy(), ref_grad, RTOL)
        benchmark.pedantic(step, setup=fresh, rounds=rounds, iterations=1, warmup_rounds=1)

    more = {"compile_s": compile_s} if compile_s is not None else {}
    if op == "masked_joint_error":
        more.update(D=D, mask_frac=MASK_FRAC)
    else:
        more.update(S=B, T=J, invalid_frac=INVALID_FRAC,
                    joints=TRACK_JOINTS if op == "temporal_difference_error" else None)
    record(contender=contender, B=B, J=J, dtype="float32", kind=kind, op=op,
           input_bytes=_input_bytes(args), **more)
