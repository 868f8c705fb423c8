"""Checkpoints: everything needed to continue a run exactly, written atomically, read safely.

A checkpoint is one ``torch.save`` file ``ckpt_<iteration>.pt`` holding plain containers and tensors
only: model, optimizer, scheduler and grad-scaler state, RNG states (torch CPU/CUDA, Python,
NumPy), the iteration, the sampler position, the resolved config and the best metric so far. It is
read with ``torch.load(weights_only=True)``, so loading never runs code from the file. Writing goes
to a temp file in the same folder, is flushed to disk, then renamed: a crash leaves either the old
set of checkpoints or the new one, never a truncated file. ``last_checkpoint`` names the newest.
"""
from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

FORMAT = "romp_fast-checkpoint-1"
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: the message names the file and the reason."""


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(internal) + [version, gauss],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: Mapping[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    py = st["python"]
    random.setstate((py[-2], tuple(int(v) for v in py[:-2]), py[-1]))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, state: Mapping[str, Any]) -> Path:
    """Atomically write ``state`` (plus the format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; clear errors for missing, foreign or corrupt files."""
    path = Path(path)
    if path.is_dir():
        found = last_checkpoint(path)
        if found is None:
            raise CheckpointError(f"no checkpoint (ckpt_<iteration>.pt) in {path}")
        path = found
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle with foreign classes, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a romp_fast checkpoint (format {got!r}, expected {FORMAT!r})")
    state["path"] = str(path)
    return state


def checkpoints(folder) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the complete checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(out)


def last_checkpoint(folder) -> Path | None:
    found = checkpoints(folder)
    return found[-1][1] if found else None


def prune(folder, keep_last: int, protect: tuple = ()) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (never those in ``protect``)."""
    if keep_last <= 0:
        return
    for _, p in checkpoints(folder)[:-keep_last]:
        if p.name not in protect:
            p.unlink(missing_ok=True)


def load_model_state(model: torch.nn.Module, state: Mapping[str, Any], source: str) -> None:
    """``model.load_state_dict`` with an error that lists mismatching keys and shapes (another model's file)."""
    sd = state["model"] if "model" in state else state
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: checkpoint {list(sd[k].shape)} vs model {list(own[k].shape)}"
              for k in sorted(set(own) & set(sd)) if tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:3]})")
        raise CheckpointError(f"{source} was saved from a different model: " + "; ".join(parts)
                              + ". Use the config the checkpoint was trained with (its run folder's config.yaml).")
    model.load_state_dict(sd)
