"""Learning-rate schedules as a function of the iteration (the trainer loops by iteration only).

``multistep``: ROMP's ``MultiStepLR`` (factor ``gamma`` at each milestone; ROMP steps per epoch at
epochs 60 and 80, romp_protocols.md §1.1, here given in iterations); ``cosine``: half-cosine from 1 to
0 over ``max_iter``; ``constant``. Any of them with a linear warm-up from ``warmup_factor`` over
``warmup_iters`` (Goyal et al. 2017, "Accurate, Large Minibatch SGD").
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

import torch


class LRSchedule:
    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, max_iter: int, milestones: Sequence[int] = (),
                 gamma: float = 0.1, warmup_iters: int = 0, warmup_factor: float = 0.001):
        if kind not in ("multistep", "cosine", "constant"):
            raise ValueError(f"schedule must be multistep|cosine|constant, got {kind!r}")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must increase, got {list(milestones)}")
        self.optimizer, self.kind, self.max_iter = optimizer, kind, max_iter
        self.milestones, self.gamma = list(milestones), gamma
        self.warmup_iters, self.warmup_factor = warmup_iters, warmup_factor
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = lr
        self.last_iter = -1

    def factor(self, it: int) -> float:
        if self.kind == "multistep":
            f = self.gamma ** bisect.bisect_right(self.milestones, it)
        elif self.kind == "cosine":
            f = 0.5 * (1 + math.cos(math.pi * min(it, self.max_iter) / max(self.max_iter, 1)))
        else:
            f = 1.0
        if it < self.warmup_iters:
            a = it / self.warmup_iters
            f *= self.warmup_factor * (1 - a) + a
        return f

    def step_to(self, it: int) -> None:
        """Set the learning rate for iteration ``it``."""
        f = self.factor(it)
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = lr * f
        self.last_iter = it

    def state_dict(self) -> dict:
        return {"kind": self.kind, "last_iter": self.last_iter, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint schedule is {state.get('kind')!r}, config says {self.kind!r}")
        self.last_iter = int(state["last_iter"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
