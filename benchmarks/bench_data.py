"""Synthetic data throughput: samples/s at 256 x 256 on ONE thread, rendering and ground truth included.

Cases (group ``data``), each timing one ``SyntheticScenes`` sample per call over a fixed index range:
  sample          ``ds[i]``: scene draw, body model, z-buffer render, every contract field
  sample+heatmap  the same plus ROMP's 64 x 64 centre heatmap (``center_heatmap``, CAR on)
  sample+augment  the same plus ``Augment`` with every augmentation on (p = 1)
  clip8/frame     ``clip_length=8`` clips, reported per frame
The target is >= 50 samples/s per thread (so a few DataLoader workers feed one GPU); it is measured
here and never asserted. Samples are checked against the contract before timing.

    .venv/bin/python -m pytest benchmarks/bench_data.py --benchmark-columns=min,median,ops
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from _common import BUDGET_S
from romp_fast.data.augment import Augment
from romp_fast.data.contract import validate_sample
from romp_fast.data.heatmap import center_heatmap
from romp_fast.data.synthetic import SyntheticScenes

S = 256


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _heatmap(s):
    return center_heatmap(s["centers"], s["centers_valid"], s["boxes"], s["boxes_valid"], 64)


@pytest.mark.parametrize("case", ["sample", "sample+heatmap", "sample+augment", "clip8/frame"])
def test_synthetic_throughput(benchmark, one_thread, case):
    T = 8 if case.startswith("clip") else None
    ds = SyntheticScenes(10_000, image_size=S, max_person=16, seed=0, clip_length=T)
    aug = Augment(1.0, 1.0, 1.0, 1.0)
    validate_sample(ds[0], clip_length=T)
    ds[1]  # build the body model outside the timed region
    counter = itertools.count()

    def step():
        i = next(counter)
        s = ds[i]
        if case == "sample+heatmap":
            _heatmap(s)
        elif case == "sample+augment":
            s = aug(s, np.random.default_rng(i))
        return s

    rounds = max(5, int(BUDGET_S / (0.02 * (T or 1))))
    benchmark.group = "data"
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=2)
    if benchmark.stats is None:  # --benchmark-disable (CI smoke tier): ran once, nothing timed
        return
    per = benchmark.stats.stats.median / (T or 1)
    benchmark.extra_info.update(case=case, image_size=S, threads=1, frames_per_call=T or 1,
                                samples_per_s_median=1.0 / per)
    print(f"\n{case}: {1.0 / per:.1f} samples/s (median, 1 thread, {S}x{S})")
