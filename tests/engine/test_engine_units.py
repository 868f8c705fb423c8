"""Engine pieces on their own: config loading, sampler, schedule, checkpoint files, events."""
import io
import math
import os
import random

import numpy as np
import pytest
import torch

from romp_fast.engine import checkpoint as C
from romp_fast.engine.config import ConfigError, load_config, parse_override
from romp_fast.engine.data import ResumableSampler
from romp_fast.engine.events import ConsoleWriter, EventStorage
from romp_fast.engine.schedule import LRSchedule


# ---------------------------------------------------------------- config
def test_default_config_loads_and_overrides_apply():
    cfg = load_config(None, ["solver.lr=1e-4", "solver.milestones=[10, 20]", "loss.weights={MPJPE: 5}"])
    assert cfg["solver"]["lr"] == pytest.approx(1e-4)
    assert cfg["solver"]["milestones"] == [10, 20]
    assert cfg["loss"]["weights"] == {"MPJPE": 5}
    assert "model" in cfg and "input_size" in cfg["model"]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'solver\.lrr'.*solver\.lr"):
        load_config(None, ["solver.lrr=1"])


def test_bad_values_and_files(tmp_path):
    with pytest.raises(ConfigError, match="solver.optimizer must be"):
        load_config(None, ["solver.optimizer=rmsprop"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("solver.lr")
    bad = tmp_path / "bad.yaml"
    bad.write_text("solver: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(str(bad))
    top = tmp_path / "top.yaml"
    top.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(str(top))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config("nope")
    sec = tmp_path / "sec.yaml"
    sec.write_text("solver: 3\n")
    with pytest.raises(ConfigError, match="solver is a section"):
        load_config(str(sec))


def test_yaml_base_chain(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("base: cpu\nsolver:\n  lr: 0.5\n")
    b = tmp_path / "b.yaml"
    b.write_text(f"base: {a}\nsolver:\n  batch_size: 3\n")
    cfg = load_config(str(b))
    assert cfg["solver"]["lr"] == 0.5 and cfg["solver"]["batch_size"] == 3
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(str(loop))


@pytest.mark.parametrize("preset", ["cpu", "romp", "bev"])
def test_presets_are_valid(preset):
    cfg = load_config(preset)
    assert cfg["solver"]["max_iter"] >= 1


def test_paper_presets_carry_romp_settings():
    romp, bev = load_config("romp"), load_config("bev")
    assert romp["solver"]["lr"] == pytest.approx(5e-5) and romp["solver"]["optimizer"] == "adam"
    assert romp["model"]["input_size"] == 512 and romp["model"]["map_size"] == 64
    assert bev["model"]["map_size"] == 128 and bev["loss"]["preset"] == "bev"
    assert romp["solver"]["batch_size"] == 32 and romp["solver"]["amp"] == "fp16"


# ---------------------------------------------------------------- sampler
def _take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_shards_form_the_single_process_stream():
    one = _take(ResumableSampler(50, 8, seed=3), 8 * 20)  # spans several epochs
    r0 = _take(ResumableSampler(50, 4, rank=0, world_size=2, seed=3), 4 * 20)
    r1 = _take(ResumableSampler(50, 4, rank=1, world_size=2, seed=3), 4 * 20)
    for i in range(20):
        assert one[8 * i:8 * i + 8] == r0[4 * i:4 * i + 4] + r1[4 * i:4 * i + 4]


def test_sampler_resumes_exactly_and_drops_the_tail():
    full = _take(ResumableSampler(30, 4, seed=1), 4 * 17)
    tail = _take(ResumableSampler(30, 4, seed=1, start_iter=9), 4 * 8)
    assert full[4 * 9:] == tail
    s = ResumableSampler(30, 4, seed=1)
    epoch0 = full[:4 * s.iters_per_epoch]
    assert len(set(epoch0)) == len(epoch0) == 28  # 30 // 4 batches, no repeats within an epoch
    assert full[28:56] != epoch0  # a new permutation each epoch
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableSampler(3, 2, world_size=2)


# ---------------------------------------------------------------- schedule
def _opt(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_multistep_warmup_and_cosine_values():
    s = LRSchedule(_opt(2.0), "multistep", 100, [10, 20], 0.1, warmup_iters=4, warmup_factor=0.25)
    lrs = []
    for it in [0, 2, 4, 9, 10, 19, 20, 99]:
        s.step_to(it)
        lrs.append(s.optimizer.param_groups[0]["lr"])
    # warm-up: 2 * (0.25 * (1 - a) + a) with a = it / 4
    assert lrs == pytest.approx([0.5, 1.25, 2.0, 2.0, 0.2, 0.2, 0.02, 0.02])
    c = LRSchedule(_opt(1.0), "cosine", 10)
    c.step_to(5)
    assert c.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    c.step_to(10)
    assert c.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="increase"):
        LRSchedule(_opt(), "multistep", 10, [5, 2])


# ---------------------------------------------------------------- checkpoint
def test_checkpoint_roundtrip_rng_and_weights_only(tmp_path):
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    st = C.rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    p = C.save_checkpoint(tmp_path / "ckpt_00000001.pt", {"iteration": 1, "rng": st, "model": {"w": torch.ones(2)}})
    loaded = C.load_checkpoint(tmp_path)  # a folder resolves to its newest checkpoint
    assert loaded["path"] == str(p) and loaded["iteration"] == 1
    C.set_rng_state(loaded["rng"])
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(C.CheckpointError, match="no checkpoint"):
        C.load_checkpoint(tmp_path)
    trunc = tmp_path / "ckpt_00000002.pt"
    buf = io.BytesIO()
    torch.save({"format": C.FORMAT}, buf)
    trunc.write_bytes(buf.getvalue()[:20])
    with pytest.raises(C.CheckpointError, match="cannot read checkpoint .*ckpt_00000002.pt"):
        C.load_checkpoint(trunc)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(C.CheckpointError, match="not a romp_fast checkpoint"):
        C.load_checkpoint(other)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": C.FORMAT, "x": Evil()}, evil)
    with pytest.raises(C.CheckpointError, match="cannot read checkpoint"):
        C.load_checkpoint(evil)


def test_prune_keeps_newest_and_model_mismatch_message(tmp_path):
    for i in (1, 2, 3, 4):
        C.save_checkpoint(tmp_path / f"ckpt_{i:08d}.pt", {"iteration": i})
    C.prune(tmp_path, 2)
    assert [i for i, _ in C.checkpoints(tmp_path)] == [3, 4]
    m = torch.nn.Linear(3, 2)
    with pytest.raises(C.CheckpointError, match=r"different model: .*shape mismatches .*weight: checkpoint \[2, 4\]"):
        C.load_model_state(m, {"model": {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}}, "x.pt")
    with pytest.raises(C.CheckpointError, match="missing 1 keys"):
        C.load_model_state(m, {"model": {"weight": torch.zeros(2, 3)}}, "x.pt")


# ---------------------------------------------------------------- events
def test_console_writer_plain_lines_when_not_a_terminal():
    st = EventStorage(0)
    for i in range(5):
        st.iter = i
        st.put("loss/total", float(i))
    buf = io.StringIO()
    w = ConsoleWriter(10, 0, "auto", stream=buf)
    st.record("eval", {"MPJPE_mm": 12.5})
    w.write(st, st.take_records())
    out = buf.getvalue()
    assert "\r" not in out and "iter 4/10" in out and "loss 2" in out and "MPJPE_mm 12.5" in out
    assert math.isclose(st.median("loss/total"), 2.0)
    bar = io.StringIO()
    ConsoleWriter(10, 0, "on", stream=bar).write(st, [])
    assert bar.getvalue().startswith("\r[")


def test_free_form_weights_merge_across_file_and_overrides(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("base: cpu\nloss:\n  weights: {MPJPE: 5}\n")
    cfg = load_config(str(f), ["loss.weights.Pose=3"])
    assert cfg["loss"]["weights"] == {"MPJPE": 5, "Pose": 3}
