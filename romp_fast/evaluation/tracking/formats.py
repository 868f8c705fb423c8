"""Readers for tracking files: MOTChallenge text files and TRACE-style per-sequence ``.npz`` files.

Both give :class:`Dets`: one row per detection with its 0-based timestep, the id as written in the
file, and whichever of box / 2D joints / 3D joints the file has.

**MOTChallenge text** (``gt.txt`` or ``<seq>.txt``), comma- or whitespace-separated, one detection
per line: ``frame, id, left, top, width, height[, conf[, class[, visibility ...]]]`` with 1-based
frames (TrackEval's ``MotChallenge2DBox`` columns). In ground truth, ``conf`` is the "consider"
flag (0: ignore) and ``class`` the MOT17 class id; missing columns mean 1 (a plain pedestrian).

**TRACE-style npz** (``<seq>_tracking.npz`` / ``<seq>.npz``), either
- member ``tracking`` (TRACE's ``evaluate_tracking.py`` input): a pickled ``{frame: {"track_ids":
  [n], "track_bbox": [n, 4] (left, top, w, h), "pj2ds": [n, K, 2]}}``; ground truth may use
  ``gt_ids`` / ``gt_bboxes``, or TRACE's ``[paths, gt_ids, gt_bboxes, ...]`` lists per frame; 3D
  joints as ``j3ds`` / ``joints3d``. Frame keys are integers or names ending in a number
  (``image_00012.jpg``). Pickles are read with a restricted unpickler (arrays, builtins only).
- or flat members ``frame`` [n], ``track_id`` (or ``ids``) [n] and any of ``bbox`` [n, 4],
  ``joints2d`` [n, K, 2], ``joints3d`` [n, J, 3] (no pickle).
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from romp_fast.evaluation.benchmarks._io import BenchmarkFileError, load_npz_object


@dataclass
class Dets:
    """Detections of one sequence. ``frame`` is the 0-based timestep; optional fields are None."""
    frame: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray | None = None
    joints2d: np.ndarray | None = None
    joints3d: np.ndarray | None = None
    consider: np.ndarray | None = None  # MOT ground truth: column 7 != 0
    classes: np.ndarray | None = None   # MOT ground truth: column 8
    has_classes: bool = False

    def __len__(self):
        return len(self.ids)

    def take(self, keep) -> "Dets":
        f = lambda a: None if a is None else a[keep]  # noqa: E731
        return Dets(self.frame[keep], self.ids[keep], f(self.boxes), f(self.joints2d), f(self.joints3d),
                    f(self.consider), f(self.classes), self.has_classes)


def read_mot_file(path) -> Dets:
    """A MOTChallenge text file; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkFileError(f"{path}: cannot read ({e})") from None
    rows, linenos = [], []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        tok = [t for t in re.split(r"[,\s]+", line) if t != ""]
        rows.append(tok)
        linenos.append(i)
    if not rows:
        return Dets(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)))
    width = min(len(r) for r in rows)
    for r, i in zip(rows, linenos):
        if len(r) < 6:
            raise BenchmarkFileError(f"{path}:{i}: needs at least 6 columns (frame, id, left, top, width, "
                                     f"height), got {len(r)}: {' '.join(r)!r}")
    try:
        a = np.array([r[:width] for r in rows], dtype=np.float64)
    except ValueError:
        for r, i in zip(rows, linenos):
            try:
                [float(t) for t in r[:width]]
            except ValueError:
                raise BenchmarkFileError(f"{path}:{i}: not a number in {' '.join(r)!r}") from None
        raise
    bad = (~np.isfinite(a[:, :6]).all(1) | (a[:, 0] != np.round(a[:, 0])) | (a[:, 0] < 1)
           | (a[:, 1] != np.round(a[:, 1])))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BenchmarkFileError(f"{path}:{linenos[i]}: frame must be an integer >= 1 and id an integer, "
                                 f"box finite; got {' '.join(rows[i])!r}")
    ones = np.ones(len(a), dtype=np.int64)
    return Dets(a[:, 0].astype(np.int64) - 1, a[:, 1].astype(np.int64), a[:, 2:6].copy(),
                consider=a[:, 6].astype(np.int64) if width > 6 else ones,
                classes=a[:, 7].astype(np.int64) if width > 7 else ones, has_classes=width > 7)


_ID_KEYS = ("track_ids", "gt_ids", "ids", "track_id")
_BOX_KEYS = ("track_bbox", "gt_bboxes", "bbox", "boxes")
_J2D_KEYS = ("pj2ds", "joints2d", "kp2ds")
_J3D_KEYS = ("j3ds", "joints3d", "kp3ds")


def frame_number(key, where) -> int:
    """An integer frame key, or the last number in a frame name ('image_00012.jpg' -> 12)."""
    if isinstance(key, (int, np.integer)):
        return int(key)
    m = re.findall(r"\d+", str(key))
    if not m:
        raise BenchmarkFileError(f"{where}: frame key {key!r} is neither an integer nor a name ending in a number")
    return int(m[-1])


def _pick(entry, keys):
    for k in keys:
        if k in entry:
            return entry[k]
    return None


def _array(value, where, shape):
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise BenchmarkFileError(f"{where} is not a numeric array ({e})") from None
    if a.size == 0 and a.ndim != len(shape):
        a = a.reshape((0,) + tuple(0 if s is None else s for s in shape[1:]))
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "[" + ", ".join("n" if s is None else str(s) for s in shape) + "]"
        raise BenchmarkFileError(f"{where} must be {want}, got {list(a.shape)}")
    return a


def read_trace_file(path) -> tuple[Dets, list]:
    """A TRACE-style npz. Returns (Dets with ``frame`` = index into the sorted frame numbers,
    the sorted frame numbers)."""
    path = Path(path)
    try:
        names = set(n[:-4] for n in zipfile.ZipFile(path).namelist())
    except (OSError, zipfile.BadZipFile) as e:
        raise BenchmarkFileError(f"{path}: not a readable .npz ({e})") from None
    if "tracking" not in names and "frame" in names:
        return _read_flat(path, names)
    if "tracking" not in names:
        raise BenchmarkFileError(f"{path}: needs member 'tracking' (TRACE's frame -> results dict) or flat "
                                 f"members 'frame', 'track_id', ...; has {sorted(names)}")
    data = load_npz_object(path, "tracking")
    if not isinstance(data, dict):
        raise BenchmarkFileError(f"{path}: 'tracking' must be a dict of frame -> results, got {type(data).__name__}")
    keyed = sorted(((frame_number(k, f"{path}"), k) for k in data), key=lambda x: x[0])
    numbers = [n for n, _ in keyed]
    if len(set(numbers)) != len(numbers):
        raise BenchmarkFileError(f"{path}: two frame keys map to the same frame number")
    cols = {"frame": [], "ids": [], "boxes": [], "joints2d": [], "joints3d": []}
    for t, (num, key) in enumerate(keyed):
        entry, where = data[key], f"{path}: frame {key!r}"
        if isinstance(entry, (list, tuple)) and len(entry) >= 3:  # TRACE gt: [paths, gt_ids, gt_bboxes, ...]
            entry = {"gt_ids": entry[1], "gt_bboxes": entry[2]}
        if not isinstance(entry, dict):
            raise BenchmarkFileError(f"{where}: expected a dict with track_ids / track_bbox / pj2ds")
        ids = _pick(entry, _ID_KEYS)
        if ids is None:
            raise BenchmarkFileError(f"{where}: missing ids (one of {list(_ID_KEYS)})")
        ids = _array(ids, f"{where} ids", (None,))
        n = len(ids)
        cols["frame"].append(np.full(n, t))
        cols["ids"].append(ids)
        for name, keys, shape in (("boxes", _BOX_KEYS, (n, 4)), ("joints2d", _J2D_KEYS, (n, None, 2)),
                                  ("joints3d", _J3D_KEYS, (n, None, 3))):
            v = _pick(entry, keys)
            cols[name].append(None if v is None else _array(v, f"{where} {keys[0]}", shape))
    return _assemble(path, cols), numbers


def _assemble(path, cols):
    out = {}
    for name, empty in (("boxes", (0, 4)), ("joints2d", (0, 0, 2)), ("joints3d", (0, 0, 3))):
        have = [p is not None for p in cols[name]]
        missing = [t for t, (h, i) in enumerate(zip(have, cols["ids"])) if not h and len(i)]
        if any(have) and missing:
            raise BenchmarkFileError(f"{path}: frame index {missing[0]} lacks '{name}' that other frames have")
        parts = [p for p in cols[name] if p is not None and len(p)]
        if len({p.shape[1:] for p in parts}) > 1:
            raise BenchmarkFileError(f"{path}: '{name}' changes shape between frames: "
                                     f"{sorted({p.shape[1:] for p in parts})}")
        out[name] = np.concatenate(parts) if parts else (np.zeros(empty) if any(have) else None)
    ids = np.concatenate(cols["ids"]) if cols["ids"] else np.zeros(0)
    if not np.array_equal(ids, np.round(ids)):
        raise BenchmarkFileError(f"{path}: ids must be integers")
    frame = np.concatenate(cols["frame"]).astype(np.int64) if cols["frame"] else np.zeros(0, np.int64)
    return Dets(frame, ids.astype(np.int64), out["boxes"], out["joints2d"], out["joints3d"])


def _read_flat(path, names):
    frame = load_npz_object(path, "frame")
    idk = next((k for k in ("track_id", "ids", "track_ids") if k in names), None)
    if idk is None:
        raise BenchmarkFileError(f"{path}: flat layout needs 'track_id' next to 'frame'")
    ids = _array(load_npz_object(path, idk), f"{path}: {idk}", (None,))
    frame = _array(frame, f"{path}: frame", (len(ids),))
    cols = {}
    for name, key, shape in (("boxes", "bbox", (len(ids), 4)), ("joints2d", "joints2d", (len(ids), None, 2)),
                             ("joints3d", "joints3d", (len(ids), None, 3))):
        cols[name] = _array(load_npz_object(path, key), f"{path}: {key}", shape) if key in names else None
    numbers, index = np.unique(frame.astype(np.int64), return_inverse=True)
    if not np.array_equal(ids, np.round(ids)):
        raise BenchmarkFileError(f"{path}: ids must be integers")
    return Dets(index.astype(np.int64), ids.astype(np.int64), **cols), [int(n) for n in numbers]


def reindex_frames(dets: Dets, numbers: list, timeline: list) -> Dets:
    """Maps ``dets.frame`` (indices into ``numbers``) onto positions in the sorted ``timeline``."""
    pos = np.searchsorted(np.asarray(timeline), np.asarray(numbers, dtype=np.int64))
    out = dets.take(slice(None))
    out.frame = pos[dets.frame] if len(dets.frame) else dets.frame
    return out
