"""File helpers the benchmark evaluators share: the error type, safe readers for ``.npz`` / pickle /
JSON fields, array checks, padding, the named matching rules, a progress bar."""
from __future__ import annotations

import io
import json
import math
import pickle
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from romp_fast.body.io import BodyModelFileError, SafeUnpickler, safe_load_pickle
from romp_fast.evaluation.matching import match_greedy_agora, match_hungarian


class BenchmarkFileError(ValueError):
    """A ground-truth or predictions file is missing, unreadable or malformed; names file and field."""


def load_npz_object(path, key):
    """Member ``key`` of an ``np.savez`` file, object arrays included, without running arbitrary
    pickles: object members go through :class:`romp_fast.body.io.SafeUnpickler` (numpy arrays,
    scalars, builtins only). A 0-d object array is unwrapped (``arr[()]``)."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFileError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as z:
            if f"{key}.npy" not in z.namelist():
                keys = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
                raise BenchmarkFileError(f"{path}: missing field '{key}' (has {keys})")
            with z.open(f"{key}.npy") as fh:
                fh = io.BytesIO(fh.read())
            version = np.lib.format.read_magic(fh)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in header:
                raise BenchmarkFileError(f"{path}: field '{key}' uses .npy format {version}, not 1.0/2.0")
            shape, fortran, dtype = header[version](fh)
            if dtype.hasobject:
                arr = SafeUnpickler(fh, encoding="latin1").load()
            else:
                fh.seek(0)
                arr = np.load(fh, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, pickle.UnpicklingError, EOFError) as e:
        if isinstance(e, BenchmarkFileError):
            raise
        raise BenchmarkFileError(f"{path}: field '{key}' is not readable ({type(e).__name__}: {e})") from None
    arr = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    return arr[()] if arr.dtype == object and arr.shape == () else arr


def load_pickle(path, error=BenchmarkFileError):
    """A pickle read with :class:`romp_fast.body.io.SafeUnpickler` (numpy arrays, scalars, builtins
    only); an unreadable or unsafe file raises ``error`` with the reader's message, which names it."""
    try:
        return safe_load_pickle(path)
    except (BodyModelFileError, OSError) as e:
        raise error(str(e)) from None


def load_mapping(path, key) -> dict:
    """A {name: value} mapping from ``.npz`` (member ``key``) or ``.json`` (the mapping itself, or
    ``{key: mapping}``)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise BenchmarkFileError(f"{path}: file not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BenchmarkFileError(f"{path}: not valid JSON ({e})") from None
        if isinstance(data, dict) and set(data) == {key}:
            data = data[key]
    else:
        data = load_npz_object(path, key)
    if not isinstance(data, dict):
        raise BenchmarkFileError(f"{path}: field '{key}' must be a mapping of image name -> entries, "
                                 f"got {type(data).__name__}")
    return data


def as_array(value, where: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    """``value`` as an array of ``shape`` (None = any size; ints or tuples of allowed sizes), or a
    :class:`BenchmarkFileError` that says where (``"file: image 'x' field 'kp2d'"``)."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise BenchmarkFileError(f"{where} is not a numeric array ({e})") from None
    ok = arr.ndim == len(shape) and all(
        s is None or (a in s if isinstance(s, tuple) else a == s) for s, a in zip(shape, arr.shape))
    if not ok:
        want = "[" + ", ".join("*" if s is None else "|".join(map(str, s)) if isinstance(s, tuple) else str(s)
                               for s in shape) + "]"
        raise BenchmarkFileError(f"{where} must have shape {want}, got {list(arr.shape)}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise BenchmarkFileError(f"{where} has non-finite values")
    return arr


def pad(arrays, fill=0.0, dtype=torch.float64):
    """Stack [n_i, ...] arrays into Tensor[B, max n, ...] (``fill`` elsewhere) and counts [B]."""
    counts = torch.tensor([len(a) for a in arrays], dtype=torch.int64)
    n = int(counts.max()) if len(arrays) else 0
    tail = next((a.shape[1:] for a in arrays if a.ndim > 1), ())
    out = torch.full((len(arrays), n, *tail), fill, dtype=dtype)
    for i, a in enumerate(arrays):
        if len(a):
            out[i, :len(a)] = torch.as_tensor(np.asarray(a), dtype=dtype)
    return out, counts


MATCHERS = ("greedy", "hungarian")


def match_people(matching, pred_kp, gt_kp, gt_vis, pred_counts, gt_counts, gt_valid=None, *,
                 iou_thresh, max_dist=None):
    """Dispatch by name: ``"greedy"`` (the AGORA kit's rule at ``iou_thresh``, the protocols'
    default) or ``"hungarian"`` (optimal on mean visible-joint distance, gate ``max_dist``)."""
    if matching in (None, "greedy"):
        return match_greedy_agora(pred_kp, gt_kp, gt_vis, pred_counts=pred_counts, gt_counts=gt_counts,
                                  gt_valid=gt_valid, iou_thresh=iou_thresh)
    if matching == "hungarian":
        return match_hungarian(pred_kp, gt_kp, gt_vis, pred_counts=pred_counts, gt_counts=gt_counts,
                               gt_valid=gt_valid, max_dist=max_dist)
    raise ValueError(f"unknown matching {matching!r}; valid: {list(MATCHERS)}")


def mean_or_nan(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


class Progress:
    """A progress bar on stderr (no tqdm dependency); silent when ``enabled`` is False. Redraws at
    most 5 times a second, and always at the end."""

    def __init__(self, total, label, enabled, stream=None):
        self.total, self.label, self.enabled, self.n = max(int(total), 1), label, bool(enabled), 0
        self.stream = stream or sys.stderr
        self.t0 = self.shown = time.time()
        self._ended = False

    def update(self, k=1):
        if not self.enabled:
            return
        self.n = min(self.n + k, self.total)
        if self.n < self.total and time.time() - self.shown < 0.2:
            return
        self.shown = time.time()
        frac = self.n / self.total
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% {time.time() - self.t0:6.1f}s")
        if self.n == self.total:
            self.stream.write("\n")
            self._ended = True
        self.stream.flush()

    def close(self):
        if self.enabled and not self._ended:
            self.stream.write("\n")
            self.stream.flush()
            self._ended = True
