"""One event store per run; writers read it (detectron2's EventStorage / EventWriter split).

The trainer and hooks ``put`` scalars tagged with the iteration; writers (JSONL file, TensorBoard,
terminal progress) consume what was added since they last wrote. Only rank 0 builds writers.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any


class EventStorage:
    def __init__(self, start_iter: int = 0, window: int = 20):
        self.iter = start_iter
        self._window = window
        self._hist: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self._latest: dict[str, tuple[float, int]] = {}
        self._pending: list[dict[str, Any]] = []

    def put(self, name: str, value: float, smooth: bool = True) -> None:
        value = float(value)
        self._latest[name] = (value, self.iter)
        if smooth:
            self._hist[name].append(value)

    def put_many(self, values: dict[str, float], smooth: bool = True) -> None:
        for k, v in values.items():
            self.put(k, v, smooth)

    def latest(self) -> dict[str, tuple[float, int]]:
        return dict(self._latest)

    def median(self, name: str) -> float:
        h = sorted(self._hist.get(name, ()))
        return h[len(h) // 2] if h else math.nan

    def smoothed(self) -> dict[str, float]:
        """Window medians of smoothed scalars, latest values of the others (what the writers show)."""
        out = {k: v for k, (v, _) in self._latest.items() if k not in self._hist}
        out.update({k: self.median(k) for k in self._hist})
        return out

    def record(self, kind: str, values: dict[str, Any], iteration: int | None = None) -> None:
        """A non-smoothed event (an evaluation result after ``iteration`` steps) for the writers."""
        self._pending.append({"kind": kind, "iteration": self.iter if iteration is None else iteration, **values})

    def has_records(self) -> bool:
        return bool(self._pending)

    def take_records(self) -> list[dict[str, Any]]:
        out, self._pending = self._pending, []
        return out


class JSONLWriter:
    """Appends one JSON object per log period (``kind: train``) and per evaluation (``kind: eval``)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", buffering=1)

    def write(self, storage: EventStorage, records: list[dict], scalars: bool = True) -> None:
        row = {"kind": "train", "iteration": storage.iter, "time": time.time(), **storage.smoothed()}
        for r in ([row] if scalars else []) + records:
            self._fh.write(json.dumps(r, default=float, allow_nan=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class TensorBoardWriter:
    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self._w = SummaryWriter(str(log_dir))

    def write(self, storage: EventStorage, records: list[dict], scalars: bool = True) -> None:
        for k, v in (storage.smoothed() if scalars else {}).items():
            if math.isfinite(v):
                self._w.add_scalar(k, v, storage.iter)
        for r in records:
            for k, v in r.items():
                if k not in ("kind", "iteration") and isinstance(v, (int, float)) and math.isfinite(v):
                    self._w.add_scalar(f"{r['kind']}/{k}", v, r["iteration"])
        self._w.flush()

    def close(self) -> None:
        self._w.close()


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class ConsoleWriter:
    """A log line per period; on a terminal, a one-line progress bar with rate and ETA instead.

    ``mode``: "auto" draws the bar only when ``stream`` is a terminal (a redirected log gets plain
    lines, no carriage returns), "on" always, "off" never (lines only).
    """

    def __init__(self, max_iter: int, start_iter: int, mode="auto", stream=None):
        self.stream = stream or sys.stderr
        self.bar = mode in ("on", True) or (mode == "auto" and self.stream.isatty())
        self.max_iter, self.start_iter = max_iter, start_iter
        self.t0 = time.perf_counter()

    def _rate(self, it: int) -> tuple[float, float]:
        done = max(it - self.start_iter, 1)
        el = time.perf_counter() - self.t0
        rate = done / el if el > 0 else math.nan
        eta = (self.max_iter - it) / rate if rate and rate > 0 else math.nan
        return rate, eta

    def write(self, storage: EventStorage, records: list[dict], scalars: bool = True) -> None:
        it = storage.iter
        if it <= self.start_iter:  # before the first step (e.g. the evaluation at the start): no rate yet
            self.t0 = time.perf_counter()
            parts = [f"iter {it}/{self.max_iter}"]
        else:
            rate, eta = self._rate(it)
            parts = [f"iter {it}/{self.max_iter}", f"{rate:.2f} it/s", f"eta {_hms(eta)}"]
        s = storage.smoothed()
        for k, label in (("loss/total", "loss"), ("lr", "lr"), ("time/total", "s/it"), ("time/data", "data s")):
            if k in s:
                parts.append(f"{label} {s[k]:.4g}")
        line = "  ".join(parts)
        if not scalars:
            pass
        elif self.bar:
            frac = min(max(it / max(self.max_iter, 1), 0), 1)
            bar = "#" * int(frac * 20) + "." * (20 - int(frac * 20))
            self.stream.write(f"\r[{bar}] {line}\x1b[K")
        else:
            self.stream.write(line + "\n")
        for r in records:
            if self.bar:
                self.stream.write("\n")
            vals = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                             if k not in ("kind", "iteration"))
            self.stream.write(f"[{r['kind']} @ {r['iteration']}] {vals}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
