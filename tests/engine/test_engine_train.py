"""The training pipeline end to end with a tiny model: files, hook order, exact resume, skipped
non-finite steps, kill-and-resume, CLI smoke runs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from romp_fast import train as T
from romp_fast.engine.checkpoint import checkpoints, load_checkpoint
from romp_fast.engine.hooks import BestCheckpointer, Checkpointer, EvalHook, LRHook, WriterHook
from romp_fast.engine.trainer import HookBase, Trainer

TINY = ["model.input_size=64", "model.map_size=16", "model.width=8", "model.head_channels=16",
        "solver.batch_size=2", "solver.warmup_iters=0", "solver.milestones=[]", "data.num_workers=0",
        "data.train.length=40", "data.val.length=3", "eval.batch_size=3", "train.log_period=1",
        "train.progress=off", "train.tensorboard=false"]
REPO = Path(__file__).resolve().parents[2]


def _run(out, *extra, resume=False):
    args = ["--resume", str(out)] if resume else ["--output-dir", str(out)]
    return T.run(T.parse_args(args + TINY + list(extra)))


def _final_weights(out):
    return load_checkpoint(Path(out) / "checkpoints")["model"]


def test_run_folder_contents_and_hook_order(tmp_path):
    out = tmp_path / "run"
    # an untrained tiny model finds nobody (pose errors NaN), so select on F1, declared "max"
    summary = _run(out, "solver.max_iter=3", "train.checkpoint_period=2", "train.keep_last=5",
                   "train.best_metric=F1", "train.best_mode=max", "train.eval_period=2")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoints", "config.yaml", "env.json", "metrics.jsonl", "summary.json"]
    assert [i for i, _ in checkpoints(out / "checkpoints")] == [2, 3]
    assert (out / "checkpoints" / "best.pt").is_file()
    best = json.loads((out / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "F1" and best["mode"] == "max" and best["iteration"] == 0
    env = json.loads((out / "env.json").read_text())
    assert env["seed"] == 0 and env["torch"] == torch.__version__ and "git_revision" in env
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["iteration"] for r in evals] == [0, 2, 3]  # at the start, after 2 steps, at the end
    assert {"MPJPE_mm", "PA_MPJPE_mm", "PVE_mm", "precision", "recall", "F1"} <= set(evals[0])
    train_rows = [r for r in rows if r["kind"] == "train" and "loss/total" in r]
    assert train_rows and all(k in train_rows[-1] for k in ("time/data", "time/forward", "time/loss",
                                                            "time/backward", "time/step", "lr"))
    assert summary["iterations"] == 3 and [e["iteration"] for e in summary["evaluations"]] == [0, 2, 3]
    # the order build_hooks documents
    trainer = _trainer_with_hooks(tmp_path)
    assert [type(h) for h in trainer.hooks] == [LRHook, EvalHook, BestCheckpointer, Checkpointer, WriterHook]


def _trainer_with_hooks(tmp_path):
    from romp_fast.engine.events import EventStorage
    from romp_fast.engine.hooks import build_hooks
    from romp_fast.engine.schedule import LRSchedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRSchedule(opt, "constant", 1)
    ev = EvalHook(lambda: {"m": 1.0}, 0, False)
    ck = Checkpointer(tmp_path / "c", 0, 1, sched, {}, {})
    best = BestCheckpointer(ev, ck, "m", "min")
    t = Trainer(torch.nn.Linear(1, 1), None, opt, None, max_iter=1, storage=EventStorage())
    t.register_hooks(build_hooks(schedule=sched, eval_hook=ev, checkpointer=ck, best=best, writers=[object()],
                                 log_period=1))
    return t


def test_resume_continues_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _run(straight, "solver.max_iter=6")
    _run(split, "solver.max_iter=3")
    _run(split, "solver.max_iter=6", resume=True)
    a, b = _final_weights(straight), _final_weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = load_checkpoint(straight / "checkpoints")
    sb = load_checkpoint(split / "checkpoints")
    for g1, g2 in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(g1["exp_avg"], g2["exp_avg"])
    # resuming a finished run, or starting over an existing one, is refused with the way out
    with pytest.raises(Exception, match="already at iteration 6"):
        _run(split, "solver.max_iter=6", resume=True)
    with pytest.raises(Exception, match="already has checkpoints; continue it with --resume"):
        _run(split, "solver.max_iter=6")


def test_resume_refuses_another_batch_size(tmp_path):
    out = tmp_path / "r"
    _run(out, "solver.max_iter=2")
    with pytest.raises(Exception, match="saved with batch 2 x 1"):
        _run(out, "solver.max_iter=4", "solver.batch_size=3", resume=True)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, images):
        return {"x": self.w * images.mean()}

    def parse_train(self, maps, batch):
        return {}


def test_non_finite_loss_skips_the_step_and_is_counted():
    model = _Toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def criterion(maps, parsed, batch):
        calls.append(1)
        loss = (maps["x"] - 3) ** 2
        return (loss * float("nan") if len(calls) in (2, 4) else loss), {"total": loss.detach()}

    data = [{"image": torch.ones(1, 3, 2, 2)}] * 10
    seen = []

    class Watch(HookBase):
        def after_step(self):
            seen.append(float(model.w.detach()))

    t = Trainer(model, criterion, opt, data, max_iter=5)
    t.register_hooks([Watch()])
    t.train()
    assert t.skipped_steps == 2
    # w moves on steps 1, 3, 5 only: w <- w - 0.1 * 2 (w - 3)
    w, expect = 1.0, []
    for i in range(5):
        if i not in (1, 3):
            w = w - 0.1 * 2 * (w - 3)
        expect.append(w)
    assert seen == pytest.approx(expect)
    assert all(p.grad is None for p in model.parameters())


def test_bf16_autocast_and_grad_clip_run_on_cpu(tmp_path):
    out = tmp_path / "amp"
    s = _run(out, "solver.max_iter=2", "solver.amp=bf16", "solver.grad_clip=1.0", "train.eval_at_start=false")
    assert s["skipped_steps"] == 0
    assert torch.isfinite(torch.cat([v.flatten().float() for v in _final_weights(out).values()])).all()


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def test_kill_during_training_then_resume_and_finish(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "romp_fast.train", "--output-dir", str(out), *TINY, "solver.max_iter=400",
           "train.checkpoint_period=1", "train.keep_last=2", "train.eval_at_start=false"]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(checkpoints(out / "checkpoints")) < 2:
            time.sleep(0.05)
        assert len(checkpoints(out / "checkpoints")) >= 2, p.stderr.read().decode() if p.poll() is not None else ""
        p.send_signal(signal.SIGKILL)  # at an arbitrary point, possibly while a checkpoint is written
    finally:
        p.kill()
        p.wait()
    done = checkpoints(out / "checkpoints")
    last = load_checkpoint(done[-1][1])  # the newest complete checkpoint is readable
    assert last["iteration"] == done[-1][0]
    r = subprocess.run([sys.executable, "-m", "romp_fast.train", "--resume", str(out),
                        f"solver.max_iter={last['iteration'] + 2}", "train.checkpoint_period=0"],
                       cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(out / "checkpoints")["iteration"] == last["iteration"] + 2


def test_cli_errors_are_clear(tmp_path, capsys):
    assert T.main(["--output-dir", str(tmp_path / "x"), "solver.nope=1"]) == 2
    assert "unknown config key 'solver.nope'" in capsys.readouterr().err
    assert T.main(["--resume", str(tmp_path / "missing")]) == 2
    assert "no config.yaml there" in capsys.readouterr().err
    assert T.main(["--output-dir", str(tmp_path / "d"), "data.train.kind=disk",
                   f"data.train.root={tmp_path / 'nodata'}"] + TINY) == 2
    assert "nodata does not exist" in capsys.readouterr().err


def test_evaluate_cli_on_a_checkpoint(tmp_path, capsys):
    from romp_fast import evaluate as E

    out = tmp_path / "run"
    _run(out, "solver.max_iter=1", "train.eval_at_start=false")
    rc = E.main(["--checkpoint", str(out / "checkpoints" / "ckpt_00000001.pt"), "--data", "synthetic-val",
                 "--output-dir", str(tmp_path / "ev"), "--progress", "off"])
    text = capsys.readouterr().out
    assert rc == 0 and "PA_MPJPE_mm" in text and "F1" in text
    res = json.loads((tmp_path / "ev" / "synthetic-val.json").read_text())
    end = json.loads((out / "summary.json").read_text())["evaluations"][-1]
    for k in ("precision", "recall", "F1", "matched"):  # the same numbers as the in-training evaluation
        assert res["summary"][k] == pytest.approx(end[k])
    other = tmp_path / "other"
    _run(other, "solver.max_iter=1", "train.eval_at_start=false", "model.width=16")
    bad = load_checkpoint(other / "checkpoints")
    bad["config"] = load_checkpoint(out / "checkpoints")["config"]
    from romp_fast.engine.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "mixed.pt", {k: v for k, v in bad.items() if k not in ("format", "path")})
    assert E.main(["--checkpoint", str(tmp_path / "mixed.pt"), "--data", "synthetic-val"]) == 2
    assert "different model" in capsys.readouterr().err


def test_tensorboard_scalars_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb_run"
    _run(out, "solver.max_iter=2", "train.tensorboard=true")
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/total", "time/step", "lr", "eval/F1", "eval/precision"} <= tags
    assert [e.step for e in acc.Scalars("eval/F1")] == [0, 2]
