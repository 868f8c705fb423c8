"""3DPW file formats: the public sequence files (ground truth) and the predictions file.

Ground truth: ``sequenceFiles/{train,validation,test}/<sequence>.pkl``, one Python-2 pickle per
sequence, read with :func:`romp_fast.body.io.safe_load_pickle` (latin-1; numpy arrays, lists, str
only). Fields read here (3DPW readme, virtualhumans.mpi-inf.mpg.de/3DPW/readme; VIBE's
``lib/data_utils/threedpw_utils.py``; the 3DPW challenge ``evaluate.py``), F = image frames,
P = actors, lists indexed by actor:

==================  ===============================  =============================================
field               layout                           use
==================  ===============================  =============================================
``genders``         P strings ``'m'`` / ``'f'``      gendered GT model (challenge; opt. test)
``poses``           P x [F, 72] float axis-angle     SMPL pose, global orientation in world frame
``betas``           P x [>=10] (or [F, >=10])        shape; the first 10 are used (VIBE, challenge)
``trans``           P x [F, 3]                       not needed (every metric is root-relative)
``campose_valid``   P x [F] bool/int                 frame filter (camera pose aligned to image)
``cam_poses``       [F, 4, 4] world -> camera        ``X_c = R X_w + t``; rotates the GT into the
                                                     camera frame (``R_cam @ R_global``)
``poses2d``         P x [F, 3, 18] (x, y, conf)      OpenPose-18 detections; all-zero = none
``jointPositions``  P x [F, 72] world, metres        GT 2D (projection) for matching; GT root
``cam_intrinsics``  [3, 3] K                         projection for matching
==================  ===============================  =============================================

Predictions (what a model writes; the same format for ``3dpw`` and ``3dpw-challenge``): one
``.npz`` file (``np.savez``, no pickled objects), or a folder of ``<sequence>.npz`` files without
the ``sequence`` field. One row per predicted person in a frame, K rows:

=================  =======================  ====================================================
field              layout                   meaning
=================  =======================  ====================================================
``sequence``       [K] str (unicode)        sequence name = pickle stem (single-file form only)
``frame``          [K] int                  image index in the sequence (``image_{frame:05d}``)
``person``         [K] int, optional        3DPW actor index (order of the pickle's lists);
                                            needed by ``matching="person_id"``
``pose``           [K, 72] float, or        SMPL axis-angle pose, global orientation in the
``rotmat``         [K, 24, 3, 3]            camera frame (ROMP/VIBE outputs); or rotations
``betas``          [K, <=10] float          SMPL shape (neutral model); default zeros
``joints24``       [K, 24, 3] m, optional   SMPL-24 joints, camera frame (challenge; else FK)
``lsp14``          [K, 14, 3] m, optional   the test protocol's 14 joints (LSP order, H36M
                                            regressor); else regressed from pose/betas
``center2d``       [K, 2] px, optional      body centre, for ``matching="nearest_center"``
``kp2d``           [K, 24, 2] px, optional  SMPL-24 joints in the image, for ``greedy_2d`` /
                                            ``hungarian`` (and the centre when no center2d)
``root3d``         [K, 3] m, optional       camera-frame pelvis (SMPL joint 0): root
                                            translation error
=================  =======================  ====================================================

``3dpw-challenge`` also reads the challenge's own submission folder: ``<sequence>.pkl`` files
(optionally under ``train/ validation/ test/``) with ``jointPositions`` [P, F, 24, 3] (or
[P, F, 72]) and ``orientations`` [P, F, 9, 3, 3] (global rotations of the 9 evaluated joints).
Every reader error is a :class:`ThreeDPWFormatError` naming the file and the field.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from romp_fast.evaluation.benchmarks._io import load_pickle

SPLITS = ("train", "validation", "test")
OPENPOSE_18 = ("Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
               "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear")


class ThreeDPWFormatError(ValueError):
    """A 3DPW ground-truth or predictions file is missing a field or has a wrong layout."""


def _shape(a):
    return list(np.shape(a))


@dataclass
class Sequence:
    """One 3DPW sequence pickle, validated; arrays stacked over actors."""
    name: str
    path: Path
    genders: list
    poses: np.ndarray                 # [P, F, 72]
    betas: np.ndarray                 # [P, F, 10]
    campose_valid: np.ndarray         # [P, F] bool
    cam_poses: np.ndarray             # [F, 4, 4]
    poses2d: np.ndarray | None = None          # [P, F, 3, 18]
    joint_positions: np.ndarray | None = None  # [P, F, 24, 3] world
    intrinsics: np.ndarray | None = None       # [3, 3]

    @property
    def num_frames(self) -> int:
        return self.cam_poses.shape[0]


def find_sequence_files(gt, splits) -> list[Path]:
    """Sequence pickles under ``gt``: ``gt/<split>/*.pkl`` for the given splits when such folders
    exist, else ``gt/*.pkl`` (``gt`` is one split's folder), else ``gt`` itself if it is a file."""
    gt = Path(gt)
    if gt.is_file():
        return [gt]
    if not gt.is_dir():
        raise FileNotFoundError(f"3DPW ground truth not found: {gt}")
    split_dirs = [gt / s for s in splits if (gt / s).is_dir()]
    files = sorted(p for d in split_dirs for p in d.glob("*.pkl")) if split_dirs else sorted(gt.glob("*.pkl"))
    if not files:
        where = ", ".join(str(d) for d in split_dirs) or str(gt)
        raise FileNotFoundError(f"no 3DPW sequence pickles (*.pkl) in {where}")
    return files


def _per_person(data, key, path, P, F, tail, dtype=np.float64, optional=False):
    if key not in data:
        if optional:
            return None
        raise ThreeDPWFormatError(f"{path}: missing field '{key}' (3DPW sequence files have "
                                  f"{sorted(map(str, data))})")
    seq = data[key]
    if not isinstance(seq, (list, tuple, np.ndarray)) or len(seq) != P:
        n = len(seq) if hasattr(seq, "__len__") else "?"
        raise ThreeDPWFormatError(f"{path}: field '{key}' must be a list with one entry per actor "
                                  f"(P = {P}), got {type(seq).__name__} of length {n}")
    out = []
    for i, a in enumerate(seq):
        try:
            arr = np.asarray(a, dtype=dtype)
        except (TypeError, ValueError):
            raise ThreeDPWFormatError(f"{path}: field '{key}'[{i}] is not numeric ({type(a).__name__})") from None
        want = (F,) + tail
        if arr.shape != want:
            raise ThreeDPWFormatError(f"{path}: field '{key}'[{i}] must be {list(want)} (F = {F} frames), "
                                      f"got {_shape(arr)}")
        out.append(arr)
    return np.stack(out)


def read_sequence(path, need_2d=False, need_joints=False) -> Sequence:
    """Read and validate one sequence pickle (see the module docstring for the fields)."""
    path = Path(path)
    data = load_pickle(path, ThreeDPWFormatError)
    if not isinstance(data, dict):
        raise ThreeDPWFormatError(f"{path}: a 3DPW sequence file holds a dict, got {type(data).__name__}")
    for key in ("genders", "poses", "betas", "campose_valid", "cam_poses"):
        if key not in data:
            raise ThreeDPWFormatError(f"{path}: missing field '{key}' (has {sorted(map(str, data))})")
    try:
        cam = np.asarray(data["cam_poses"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ThreeDPWFormatError(f"{path}: field 'cam_poses' is not a numeric [F, 4, 4] array") from None
    if cam.ndim != 3 or cam.shape[1:] != (4, 4):
        raise ThreeDPWFormatError(f"{path}: field 'cam_poses' must be [F, 4, 4], got {_shape(cam)}")
    F = cam.shape[0]
    genders = data["genders"]
    if not isinstance(genders, (list, tuple)) or not genders:
        raise ThreeDPWFormatError(f"{path}: field 'genders' must be a non-empty list of 'm'/'f'")
    norm = []
    for i, g in enumerate(genders):
        g = g.decode("latin1") if isinstance(g, bytes) else g
        if not isinstance(g, str) or g.lower()[:1] not in ("m", "f"):
            raise ThreeDPWFormatError(f"{path}: field 'genders'[{i}] must be 'm' or 'f', got {g!r}")
        norm.append(g.lower()[0])
    P = len(norm)
    poses = _per_person(data, "poses", path, P, F, (72,))
    valid = _per_person(data, "campose_valid", path, P, F, (), dtype=np.float64) != 0
    raw_betas = data["betas"]
    if not isinstance(raw_betas, (list, tuple, np.ndarray)) or len(raw_betas) != P:
        raise ThreeDPWFormatError(f"{path}: field 'betas' must have one entry per actor (P = {P})")
    betas = []
    for i, b in enumerate(raw_betas):
        try:
            b = np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError):
            raise ThreeDPWFormatError(f"{path}: field 'betas'[{i}] is not numeric ({type(b).__name__})") from None
        if b.ndim == 1 and b.shape[0] >= 10:
            b = np.broadcast_to(b[:10], (F, 10))
        elif b.ndim == 2 and b.shape[0] == F and b.shape[1] >= 10:
            b = b[:, :10]
        else:
            raise ThreeDPWFormatError(f"{path}: field 'betas'[{i}] must be [>=10] or [F, >=10] (F = {F}), "
                                      f"got {_shape(b)}")
        betas.append(b)
    seq = Sequence(path.stem, path, norm, poses, np.stack(betas), valid, cam)
    if need_2d:
        seq.poses2d = _per_person(data, "poses2d", path, P, F, (3, 18))
    if need_joints:
        jp = _per_person(data, "jointPositions", path, P, F, (72,))
        seq.joint_positions = jp.reshape(P, F, 24, 3)
        K = np.asarray(data.get("cam_intrinsics", np.zeros(0)), dtype=np.float64)
        if K.shape != (3, 3):
            raise ThreeDPWFormatError(f"{path}: field 'cam_intrinsics' must be [3, 3], got {_shape(K)}")
        seq.intrinsics = K
    return seq


# ----------------------------------------------------------------------------- predictions
PRED_FIELDS = {  # name -> (trailing shape, kind)
    "frame": ((), "i"), "person": ((), "i"), "pose": ((72,), "f"), "rotmat": ((24, 3, 3), "f"),
    "betas": ((None,), "f"), "joints24": ((24, 3), "f"), "lsp14": ((14, 3), "f"),
    "center2d": ((2,), "f"), "kp2d": ((24, 2), "f"), "root3d": ((3,), "f"),
}


@dataclass
class Predictions:
    """Prediction rows from one file or folder; ``fields`` maps a field name to its [K, ...] array."""
    source: str
    sequence: np.ndarray                      # [K] str
    fields: dict = field(default_factory=dict)
    official: bool = False                    # read from the challenge's own pkl submission

    def __len__(self):
        return len(self.sequence)

    def has(self, name):
        return name in self.fields


def _check_field(src, name, arr, K):
    tail, kind = PRED_FIELDS[name]
    arr = np.asarray(arr)
    if arr.dtype == object:
        raise ThreeDPWFormatError(f"{src}: field '{name}' must be a numeric array, not objects")
    ok_kind = arr.dtype.kind in ("i", "u") if kind == "i" else arr.dtype.kind in ("f", "i", "u")
    shape_ok = arr.ndim == 1 + len(tail) and arr.shape[0] == K and all(
        t is None or t == s for t, s in zip(tail, arr.shape[1:]))
    if name == "betas" and shape_ok and not 1 <= arr.shape[1] <= 10:
        shape_ok = False
    if not ok_kind or not shape_ok:
        want = "[K" + "".join(f", {'<=10' if t is None else t}" for t in tail) + "]"
        raise ThreeDPWFormatError(f"{src}: field '{name}' must be {want} "
                                  f"{'integers' if kind == 'i' else 'numbers'} with K = {K} rows, "
                                  f"got {_shape(arr)} {arr.dtype}")
    if kind == "f" and not np.isfinite(arr).all():
        raise ThreeDPWFormatError(f"{src}: field '{name}' has non-finite values")
    return arr.astype(np.int64) if kind == "i" else arr.astype(np.float64)


def _read_npz(path, sequence=None) -> Predictions:
    raw = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                try:
                    raw[k] = z[k]
                except ValueError:  # object arrays need pickle: refused
                    raise ThreeDPWFormatError(f"{path}: field '{k}' holds Python objects; save it as a "
                                              "numeric or unicode string array") from None
    except ThreeDPWFormatError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ThreeDPWFormatError(f"{path}: not a readable .npz file ({e})") from None
    unknown = sorted(set(raw) - set(PRED_FIELDS) - {"sequence"})
    if unknown:
        raise ThreeDPWFormatError(f"{path}: unknown fields {unknown}; known: {['sequence'] + sorted(PRED_FIELDS)}")
    if "frame" not in raw:
        raise ThreeDPWFormatError(f"{path}: missing field 'frame'")
    K = len(np.atleast_1d(raw["frame"]))
    if "sequence" in raw:
        seq = np.asarray(raw["sequence"])
        if seq.dtype.kind != "U" or seq.shape != (K,):
            raise ThreeDPWFormatError(f"{path}: field 'sequence' must be [K] unicode strings with K = {K}, "
                                      f"got {_shape(seq)} {seq.dtype}")
    elif sequence is None:
        raise ThreeDPWFormatError(f"{path}: missing field 'sequence' (needed in the single-file form)")
    else:
        seq = np.full(K, sequence)
    fields = {k: _check_field(path, k, v, K) for k, v in raw.items() if k != "sequence"}
    if not any(k in fields for k in ("pose", "rotmat", "joints24", "lsp14")):
        raise ThreeDPWFormatError(f"{path}: needs one of the fields 'pose', 'rotmat', 'joints24', 'lsp14'")
    return Predictions(str(path), seq.astype(str), fields)


def _read_official(path) -> Predictions:
    """A 3DPW challenge submission pkl -> rows for every (person, frame)."""
    data = load_pickle(path, ThreeDPWFormatError)
    if not isinstance(data, dict) or "jointPositions" not in data:
        raise ThreeDPWFormatError(f"{path}: missing field 'jointPositions' (challenge submission format)")
    jp = np.asarray(data["jointPositions"], dtype=np.float64)
    if jp.ndim == 3 and jp.shape[-1] == 72:
        jp = jp.reshape(jp.shape[0], jp.shape[1], 24, 3)
    if jp.ndim != 4 or jp.shape[2:] != (24, 3):
        raise ThreeDPWFormatError(f"{path}: field 'jointPositions' must be [P, F, 24, 3], got {_shape(jp)}")
    P, F = jp.shape[:2]
    person, frame = np.meshgrid(np.arange(P), np.arange(F), indexing="ij")
    fields = {"person": person.reshape(-1), "frame": frame.reshape(-1), "joints24": jp.reshape(-1, 24, 3)}
    if "orientations" in data:
        ori = np.asarray(data["orientations"], dtype=np.float64)
        if ori.shape != (P, F, 9, 3, 3):
            raise ThreeDPWFormatError(f"{path}: field 'orientations' must be [P, F, 9, 3, 3] = "
                                      f"{[P, F, 9, 3, 3]}, got {_shape(ori)}")
        fields["orient9"] = ori.reshape(-1, 9, 3, 3)
    if not all(np.isfinite(v).all() for v in fields.values()):
        raise ThreeDPWFormatError(f"{path}: non-finite values in 'jointPositions' or 'orientations'")
    return Predictions(str(path), np.full(P * F, path.stem), fields, official=True)


def read_predictions(pred, allow_official=False) -> Predictions:
    """Read a predictions ``.npz`` file or folder (see the module docstring)."""
    pred = Path(pred)
    if pred.is_file():
        return _read_npz(pred)
    if not pred.is_dir():
        raise FileNotFoundError(f"predictions not found: {pred}")
    parts = [_read_npz(p, p.stem) for p in sorted(pred.rglob("*.npz"))]
    if allow_official:
        parts += [_read_official(p) for p in sorted(pred.rglob("*.pkl"))]
    if not parts:
        kinds = "*.npz or challenge *.pkl" if allow_official else "*.npz"
        raise ThreeDPWFormatError(f"{pred}: no prediction files ({kinds})")
    names = [set(p.fields) for p in parts]
    if any(n != names[0] for n in names):
        raise ThreeDPWFormatError(f"{pred}: every prediction file must have the same fields, got "
                                  f"{sorted(map(sorted, {frozenset(n) for n in names}))}")
    fields = {k: np.concatenate([p.fields[k] for p in parts]) for k in names[0]}
    return Predictions(str(pred), np.concatenate([p.sequence for p in parts]), fields,
                       official=any(p.official for p in parts))
