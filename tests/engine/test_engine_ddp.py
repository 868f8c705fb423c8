"""DistributedDataParallel on 2 gloo processes (torchrun) agrees with one process on the same global batch.

Equal only under conditions stated in the config below: BatchNorm frozen (``solver.freeze_bn``; a
training-mode BatchNorm normalises with each rank's own batch statistics), one person per image (the
loss terms are means over people, so equal counts per rank make the mean of the rank means the global
mean) and term weights small enough that ROMP's per-term cap of 1000 never rescales a rank's term.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from romp_fast.engine.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
COMMON = ["model.input_size=64", "model.map_size=16", "model.width=8", "model.head_channels=16",
          "model.conf_thresh=0.0", "model.top_k=2", "eval.match_gate=2.0", "solver.warmup_iters=0", "solver.milestones=[]", "solver.freeze_bn=true", "solver.max_iter=3",
          "data.num_workers=0", "data.train.length=40", "data.train.max_people=1", "data.val.length=5",
          "data.val.max_people=1", "eval.batch_size=2", "train.progress=off", "train.tensorboard=false",
          "train.log_period=1", "train.best_metric=F1", "train.best_mode=max",
          "loss.weights={CenterMap: 1.0, MPJPE: 1.0, PAMPJPE: 1.0, P_KP2D: 1.0, Pose: 1.0, Shape: 0.1}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def test_two_gloo_processes_match_one_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    r1 = subprocess.run([sys.executable, "-m", "romp_fast.train", "--output-dir", str(single), *COMMON,
                         "solver.batch_size=4"], env=_env(), capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                         f"--master_port={_free_port()}", "-m", "romp_fast.train", "--output-dir", str(ddp),
                         *COMMON, "solver.batch_size=2"], env=_env(), capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a = load_checkpoint(single / "checkpoints")
    b = load_checkpoint(ddp / "checkpoints")
    assert b["sampler"]["world_size"] == 2 and a["sampler"]["world_size"] == 1
    for k, v in a["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    init = load_checkpoint(single / "checkpoints" / "best.pt")  # iteration 0 weights (F1 0 at start is best)
    assert init["iteration"] == 0
    assert any(not torch.equal(init["model"][k], a["model"][k]) for k in a["model"]), "training changed nothing"
    # sharded evaluation (5 images over 2 ranks: 3 + 2) gathered = one process's evaluation
    ea = json.loads((single / "summary.json").read_text())["evaluations"]
    eb = json.loads((ddp / "summary.json").read_text())["evaluations"]
    assert len(ea) == len(eb) == 2
    for x, y in zip(ea, eb):
        assert x["matched"] + x["misses"] == 5 and x["matched"] > 0  # every threshold open: people match
        for k in ("matched", "misses", "false_positives", "F1"):
            assert x[k] == pytest.approx(y[k]), k
        for k in ("MPJPE_mm", "PA_MPJPE_mm", "PVE_mm"):
            assert x[k] == pytest.approx(y[k], rel=1e-3), k
    # only rank 0 wrote the run folder
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())
