"""The trainer only loops: fetch, forward, loss, backward, step. Everything else is a hook.

Per iteration the phases are timed (``time/data``, ``time/forward``, ``time/loss``,
``time/backward``, ``time/step``, and ``time/total``) and wrapped in NVTX ranges so Nsight Systems
shows them. A loss that is not finite skips the optimizer step on every rank (the decision is
all-reduced, so DDP never waits for a rank that skipped) and is counted in ``skipped_steps``.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable

import torch

from romp_fast.engine import distributed as D
from romp_fast.engine.events import EventStorage

try:  # NVTX ranges cost nothing without a profiler attached; the package is optional on GPU boxes
    import nvtx as _nvtx

    def _range(name: str):
        return _nvtx.annotate(name, color="green")
except ImportError:  # pragma: no cover - exercised only where nvtx is absent
    def _range(name: str):
        return contextlib.nullcontext()


class HookBase:
    """Called by :class:`Trainer` at these points; ``self.trainer`` is set on registration."""

    trainer: "Trainer"

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class Trainer:
    """Iteration loop over ``data_loader`` (endless) from ``start_iter`` to ``max_iter``.

    Args:
        model: the (possibly DDP-wrapped) network; ``model(images) -> maps``, and the unwrapped
            model's ``parse_train(maps, batch) -> parsed``.
        criterion: ``criterion(maps, parsed, batch) -> (total, logs)``.
        amp: "off", "fp16" (CUDA autocast + GradScaler) or "bf16" (autocast, no scaler).
        grad_clip: max global gradient norm, or None.
        freeze_bn: keep BatchNorm layers in eval mode while training (running statistics fixed, each
            sample's forward independent of its batch: what makes a DDP run equal to one process
            with the same global batch, and the usual choice when fine-tuning with small batches).
    """

    def __init__(self, model, criterion, optimizer, data_loader, *, max_iter: int, start_iter: int = 0,
                 device: torch.device = torch.device("cpu"), amp: str = "off", grad_clip: float | None = None,
                 storage: EventStorage | None = None, freeze_bn: bool = False):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer
        self.data_loader = data_loader
        self.max_iter, self.start_iter, self.iter = max_iter, start_iter, start_iter
        self.device, self.amp, self.grad_clip = device, amp, grad_clip
        if amp == "fp16" and device.type != "cuda":
            raise ValueError("amp=fp16 needs CUDA (use bf16 on CPU, or off)")
        self.scaler = torch.amp.GradScaler("cuda", enabled=(amp == "fp16"))
        self.storage = storage or EventStorage(start_iter)
        self.hooks: list[HookBase] = []
        self.skipped_steps = 0
        self.freeze_bn = freeze_bn
        self._data_iter = None

    def register_hooks(self, hooks: Iterable[HookBase]) -> None:
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, name: str) -> None:
        for h in self.hooks:
            getattr(h, name)()

    def train_mode(self) -> None:
        """Put the model in training mode (BatchNorm excepted under ``freeze_bn``)."""
        self.model.train()
        if self.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def train(self) -> None:
        self.train_mode()
        self._call("before_train")
        try:
            for self.iter in range(self.start_iter, self.max_iter):
                self.storage.iter = self.iter
                self._call("before_step")
                self.run_step()
                self._call("after_step")
            self.iter = self.max_iter
            self.storage.iter = self.max_iter
        finally:
            self._call("after_train")

    def _sync(self) -> None:
        if self.device.type == "cuda":  # phase times on CUDA need the queue drained
            torch.cuda.synchronize(self.device)

    def _to_device(self, batch: dict) -> dict:
        nb = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=nb) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _autocast(self):
        if self.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.amp == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def run_step(self) -> None:
        times: dict[str, float] = {}

        def phase(name: str, fn: Callable):
            t0 = time.perf_counter()
            with _range(name):
                out = fn()
            self._sync()
            times[name] = time.perf_counter() - t0
            return out

        if self._data_iter is None:
            self._data_iter = iter(self.data_loader)
        batch = phase("data", lambda: self._to_device(next(self._data_iter)))
        net = D.unwrap(self.model)

        def forward():
            with self._autocast():
                maps = self.model(batch["image"])
            maps = {k: v.float() for k, v in maps.items()}
            return maps, net.parse_train(maps, batch)

        maps, parsed = phase("forward", forward)
        total, logs = phase("loss", lambda: self.criterion(maps, parsed, batch))
        finite = torch.isfinite(total.detach()).to(torch.float32)
        if D.is_dist():  # every rank must take the same branch or DDP's all-reduce waits forever
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() < 1:
            self.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            self.storage.put("train/skipped_steps", self.skipped_steps, smooth=False)
            return
        phase("backward", lambda: self.scaler.scale(total).backward())

        def step():
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.storage.put("train/grad_norm", float(norm))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)

        phase("step", step)
        times["total"] = sum(times.values())
        self.storage.put_many({f"time/{k}": v for k, v in times.items()})
        self.storage.put_many({f"loss/{k}": float(v) for k, v in logs.items()})
        self.storage.put("train/skipped_steps", self.skipped_steps, smooth=False)
