"""Hooks: LR schedule, evaluation, best-model selection, checkpointing, writers.

:func:`build_hooks` is the one place they are built; its comments give the order's reasons.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import torch

from romp_fast.body.io import atomic_write
from romp_fast.engine import distributed as D
from romp_fast.engine.checkpoint import prune, rng_state, save_checkpoint
from romp_fast.engine.schedule import LRSchedule
from romp_fast.engine.trainer import HookBase


class LRHook(HookBase):
    def __init__(self, schedule: LRSchedule):
        self.schedule = schedule

    def before_step(self) -> None:
        self.schedule.step_to(self.trainer.iter)
        self.trainer.storage.put("lr", self.trainer.optimizer.param_groups[0]["lr"], smooth=False)


class EvalHook(HookBase):
    """Runs ``evaluate() -> {metric: value}`` at the start (fresh runs), every ``period`` iterations and
    at the end, on every rank (the evaluation is sharded and gathered). Results go to the event store
    (``kind: eval``) and to ``self.last``."""

    def __init__(self, evaluate: Callable[[], dict], period: int, at_start: bool):
        self.evaluate, self.period, self.at_start = evaluate, period, at_start
        self.last: dict | None = None
        self.last_iter: int | None = None
        self.history: list[dict] = []

    def _run(self, it: int) -> None:
        self.trainer.model.eval()
        try:
            with torch.no_grad():
                res = self.evaluate()
        finally:
            self.trainer.train_mode()
        self.last, self.last_iter = res, it
        self.history.append({"iteration": it, **res})
        self.trainer.storage.record("eval", res, iteration=it)

    def before_train(self) -> None:
        if self.at_start and self.trainer.start_iter == 0:
            self._run(0)

    def after_step(self) -> None:
        nxt = self.trainer.iter + 1
        if self.period and nxt % self.period == 0 and nxt != self.trainer.max_iter:
            self._run(nxt)

    def after_train(self) -> None:
        if self.trainer.iter == self.trainer.max_iter and self.last_iter != self.trainer.max_iter:
            self._run(self.trainer.max_iter)


class BestCheckpointer(HookBase):
    """After each evaluation, keeps ``best.pt`` (and ``best.json``) for the best value of ``metric``;
    ``mode`` declares the direction ("min" for errors, "max" for F1 / PCK)."""

    def __init__(self, eval_hook: EvalHook, checkpointer: "Checkpointer", metric: str, mode: str):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.eval_hook, self.checkpointer, self.metric, self.mode = eval_hook, checkpointer, metric, mode
        self.best: float | None = None
        self.best_iter: int | None = None
        self._seen: int | None = None

    def _better(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        return self.best is None or (v < self.best if self.mode == "min" else v > self.best)

    def _check(self) -> None:
        h = self.eval_hook
        if h.last is None or h.last_iter == self._seen:
            return
        self._seen = h.last_iter
        if self.metric not in h.last:
            raise KeyError(f"best metric {self.metric!r} is not among the evaluation results {sorted(h.last)}")
        v = float(h.last[self.metric])
        if self._better(v):
            self.best, self.best_iter = v, h.last_iter
            if D.is_main():
                self.checkpointer.save(self.checkpointer.folder / "best.pt", iteration=h.last_iter)
                info = {"metric": self.metric, "mode": self.mode, "value": v, "iteration": h.last_iter,
                        "results": h.last}
                atomic_write(self.checkpointer.folder / "best.json",
                             lambda fh: fh.write(json.dumps(info, indent=2, default=float).encode()))

    def before_train(self) -> None:
        self._check()

    def after_step(self) -> None:
        self._check()

    def after_train(self) -> None:
        self._check()

    def state_dict(self) -> dict:
        return {"best": self.best, "best_iter": self.best_iter}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_iter = state.get("best"), state.get("best_iter")


class Checkpointer(HookBase):
    """Saves ``ckpt_<iteration>.pt`` every ``period`` iterations and at the end (rank 0), keeping the
    newest ``keep_last``. The state is everything :func:`romp_fast.train.resume` needs."""

    def __init__(self, folder: Path, period: int, keep_last: int, schedule: LRSchedule, config: dict,
                 stateful: dict[str, HookBase]):
        self.folder, self.period, self.keep_last = Path(folder), period, keep_last
        self.schedule, self.config, self.stateful = schedule, config, stateful
        self.last_saved: int | None = None

    def state(self, iteration: int) -> dict:
        t = self.trainer
        return {
            "iteration": iteration,
            "model": D.unwrap(t.model).state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": t.scaler.state_dict(),
            "rng": rng_state(),
            "sampler": {"iteration": iteration, "batch_size": t.data_loader.batch_size, "world_size": D.world_size()},
            "skipped_steps": t.skipped_steps,
            "hooks": {k: h.state_dict() for k, h in self.stateful.items()},
            "config": self.config,
        }

    def save(self, path: Path, iteration: int) -> Path:
        return save_checkpoint(path, self.state(iteration))

    def _save_periodic(self, iteration: int) -> None:
        if D.is_main() and self.last_saved != iteration:
            self.save(self.folder / f"ckpt_{iteration:08d}.pt", iteration)
            prune(self.folder, self.keep_last)
        self.last_saved = iteration

    def after_step(self) -> None:
        nxt = self.trainer.iter + 1
        if self.period and nxt % self.period == 0:
            self._save_periodic(nxt)

    def after_train(self) -> None:
        if self.trainer.iter == self.trainer.max_iter:
            self._save_periodic(self.trainer.max_iter)
        D.barrier()


class WriterHook(HookBase):
    """Every ``period`` iterations and at the end, hands the event store to each writer (rank 0)."""

    def __init__(self, writers: list, period: int):
        self.writers, self.period = writers, period
        self._written: int | None = None

    def _write(self) -> None:
        scalars = self._written != self.trainer.storage.iter  # each iteration's scalars once
        self._written = self.trainer.storage.iter
        records = self.trainer.storage.take_records()
        for w in self.writers:
            w.write(self.trainer.storage, records, scalars)

    def after_step(self) -> None:
        nxt = self.trainer.iter + 1
        if (self.period and nxt % self.period == 0) or self.trainer.storage.has_records():
            self.trainer.storage.iter = nxt
            self._write()

    def before_train(self) -> None:
        if self.trainer.storage.has_records():
            self._write()

    def after_train(self) -> None:
        if self.trainer.storage.has_records() or self._written != self.trainer.storage.iter:
            self._write()
        for w in self.writers:
            w.close()


def build_hooks(*, schedule: LRSchedule, eval_hook: EvalHook, checkpointer: Checkpointer,
                best: BestCheckpointer | None, writers: list, log_period: int) -> list[HookBase]:
    """The hooks in the order they run at each point.

    1. LR first: the step about to run must see this iteration's learning rate.
    2. Evaluation next, after the step that completes a period: it reads the weights just updated.
    3. Best-model selection reads the evaluation that just ran, so it comes after it.
    4. The checkpointer after both: the saved state then carries the current best-so-far, and a
       resume neither re-runs that evaluation nor forgets which checkpoint was best.
    5. Writers last: they see every scalar and evaluation record this iteration produced.
    """
    hooks: list[HookBase] = [LRHook(schedule), eval_hook]
    if best is not None:
        hooks.append(best)
    hooks.append(checkpointer)
    if writers:
        hooks.append(WriterHook(writers, log_period))
    return hooks


