"""The per-sample contract: every dataset in ``romp_fast.data`` returns a dict with these keys.

One image sample (``P`` = ``max_person``, people padded at the end; ``H, W`` the image size)::

  key                 shape        dtype    unit / meaning                                   valid mask
  ------------------  -----------  -------  -----------------------------------------------  ------------------
  image               [3, H, W]    float32  RGB in [0, 1]                                    -
  kp2d                [P, 54, 2]   float32  SMPL-54 joints, (x, y) normalised image coords   kp2d_valid [P, 54]
                                            in [-1, 1]: x = 2 u / W - 1 with u in pixels,
                                            pixel i spanning [i, i + 1)
  kp3d                [P, 54, 3]   float32  SMPL-54 joints, metres, camera axes (x right,    kp3d_valid [P, 54]
                                            y down, z forward), root-centred at the mid-point
                                            of joints 45/46 (R_Hip, L_Hip; ``joints.ROOT_54``)
  pose                [P, 72]      float32  SMPL axis-angle (radians), 24 joints x 3; the    pose_valid [P]
                                            global orientation is in camera axes
  betas               [P, 10]      float32  SMPL shape coefficients                          betas_valid [P]
  trans               [P, 3]       float32  camera-frame position of the root (the same      trans_valid [P]
                                            mid-hip point), metres: kp3d + trans = camera-
                                            frame joints
  cam                 [P, 3]       float32  BEV normalised camera (s, ty, tx): s = 2 fx /    cam_valid [P]
                                            (W tz) = 1 / (tz tan(FOV/2)); (tx, ty) = the root's
                                            projection in normalised coords (equal to BEV's
                                            tx / (tz tan) for a centred principal point)
  centers             [P, 2]       float32  body centre (x, y) normalised [-1, 1] (ROMP      centers_valid [P]
                                            stores (y, x); here it is (x, y) like kp2d)
  boxes               [P, 4]       float32  (x0, y0, x1, y1) normalised [-1, 1], clipped     boxes_valid [P]
  person_valid        [P]          bool     slot holds a person                              -
  all_annotated       []           bool     every person in the image is annotated (gates    -
                                            the centre-map loss, ROMP's
                                            ``all_person_detected_mask``)
  camK                [3, 3]       float32  pinhole intrinsics in pixels of ``image``        -
  track_id            [P]          int64    identity, stable within a clip                   track_id_valid [P]
  frame_index         []           int64    frame number within its clip (0 for images)     -
  depth_layer         [P]          int64    Relative-Human ordinal depth layer (0 nearest)   depth_layer_valid [P]
  age_class           [P]          int64    Relative-Human age: 0 adult, 1 teen, 2 child,    age_class_valid [P]
                                            3 baby

A person's masks are all False in padded slots; invalid entries hold zeros (never ROMP's -2 / -10
sentinels, which exist only at file boundaries, see ``romp_fast.data.disk``). A clip sample (video
datasets) has every key above with a leading ``T`` axis (``image`` [T, 3, H, W], ``frame_index``
[T], ...). :func:`collate` stacks samples along a new leading batch axis. Datasets may add keys
(``MixedDataset`` adds ``dataset_id``); :func:`validate_sample` checks only the keys above.
Not carried: vertices (recompute them from ``pose`` / ``betas`` with ``romp_fast.body``).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional

import torch
from torch import Tensor

NUM_JOINTS = 54
NUM_POSE = 72
NUM_BETAS = 10
AGE_CLASSES = ("adult", "teen", "child", "baby")

# key -> (shape with symbolic dims, dtype, validity-mask key or None). "P" = max_person.
SPEC: dict[str, tuple[tuple, torch.dtype, Optional[str]]] = {
    "image": ((3, "H", "W"), torch.float32, None),
    "kp2d": (("P", NUM_JOINTS, 2), torch.float32, "kp2d_valid"),
    "kp2d_valid": (("P", NUM_JOINTS), torch.bool, None),
    "kp3d": (("P", NUM_JOINTS, 3), torch.float32, "kp3d_valid"),
    "kp3d_valid": (("P", NUM_JOINTS), torch.bool, None),
    "pose": (("P", NUM_POSE), torch.float32, "pose_valid"),
    "pose_valid": (("P",), torch.bool, None),
    "betas": (("P", NUM_BETAS), torch.float32, "betas_valid"),
    "betas_valid": (("P",), torch.bool, None),
    "trans": (("P", 3), torch.float32, "trans_valid"),
    "trans_valid": (("P",), torch.bool, None),
    "cam": (("P", 3), torch.float32, "cam_valid"),
    "cam_valid": (("P",), torch.bool, None),
    "centers": (("P", 2), torch.float32, "centers_valid"),
    "centers_valid": (("P",), torch.bool, None),
    "boxes": (("P", 4), torch.float32, "boxes_valid"),
    "boxes_valid": (("P",), torch.bool, None),
    "person_valid": (("P",), torch.bool, None),
    "all_annotated": ((), torch.bool, None),
    "camK": ((3, 3), torch.float32, None),
    "track_id": (("P",), torch.int64, "track_id_valid"),
    "track_id_valid": (("P",), torch.bool, None),
    "frame_index": ((), torch.int64, None),
    "depth_layer": (("P",), torch.int64, "depth_layer_valid"),
    "depth_layer_valid": (("P",), torch.bool, None),
    "age_class": (("P",), torch.int64, "age_class_valid"),
    "age_class_valid": (("P",), torch.bool, None),
}
KEYS = tuple(SPEC)
PER_PERSON_MASKS = tuple(k for k in KEYS if k.endswith("_valid") and k != "person_valid")


class SampleError(ValueError):
    """A sample breaks the contract; the message names the key, the expected and the actual value."""


def _fmt(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def validate_sample(sample: Mapping[str, Tensor], max_person: Optional[int] = None,
                    clip_length: Optional[int] = None, check_values: bool = True) -> None:
    """Raise :class:`SampleError` unless ``sample`` follows the contract (see the module docstring).

    Args:
        max_person: expected ``P``; ``None`` takes it from ``kp2d``.
        clip_length: ``T`` for a clip sample (every key has a leading ``T`` axis), ``None`` for an image.
        check_values: also check ranges (image in [0, 1], finite floats, masks inside
            ``person_valid``, no valid data in padded slots).
    """
    missing = [k for k in KEYS if k not in sample]
    if missing:
        raise SampleError(f"sample is missing keys {missing}")
    lead = () if clip_length is None else (clip_length,)
    dims: dict[str, int] = {}
    if max_person is not None:
        dims["P"] = max_person
    elif isinstance(sample["person_valid"], Tensor) and sample["person_valid"].dim() == len(lead) + 1:
        dims["P"] = sample["person_valid"].shape[-1]
    for key in KEYS:
        shape, dtype, _ = SPEC[key]
        v = sample[key]
        if not isinstance(v, Tensor):
            raise SampleError(f"{key} must be a torch.Tensor, got {type(v).__name__}")
        if v.dtype != dtype:
            raise SampleError(f"{key} must have dtype {dtype}, got {v.dtype}")
        want = lead + shape
        got = tuple(v.shape)
        ok = len(got) == len(want)
        seen: dict[str, int] = {}
        if ok:
            for w, g in zip(want, got):
                if isinstance(w, str):
                    w = dims.get(w, seen.setdefault(w, g))
                if w != g:
                    ok = False
        if ok:
            dims.update(seen)
        else:
            exp = [dims.get(w, w) if isinstance(w, str) else w for w in want]
            sym = "" if exp == list(want) else f" ({_fmt(want)})"
            raise SampleError(f"{key} must be {_fmt(exp)}{sym}, got {_fmt(got)}")
    if not check_values:
        return
    img = sample["image"]
    if not torch.isfinite(img).all() or img.min() < 0 or img.max() > 1:
        raise SampleError(f"image values must be finite and in [0, 1], got range "
                          f"[{img.min().item():.4g}, {img.max().item():.4g}]")
    for key in KEYS:
        v = sample[key]
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise SampleError(f"{key} has non-finite values")
    pv = sample["person_valid"]
    for m in PER_PERSON_MASKS:
        mv = sample[m]
        outside = mv & ~(pv[..., None] if mv.dim() > pv.dim() else pv)
        if outside.any():
            raise SampleError(f"{m} is True for a slot where person_valid is False "
                              f"(indices {outside.nonzero().tolist()[:4]})")
    for key in ("kp2d", "centers", "boxes"):
        v, m = sample[key], sample[SPEC[key][2]]
        bad = (v.abs() > 1 + 1e-4) & (m[..., None])
        if bad.any():
            raise SampleError(f"{key} has valid entries outside [-1, 1] (indices {bad.nonzero().tolist()[:4]})")


def collate(samples: Iterable[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Stack contract samples into a batch (``torch.utils.data.DataLoader(collate_fn=collate)``).

    Every contract key gets a leading batch axis; extra keys are stacked if they are tensors of one
    shape and kept as lists otherwise. Samples must share ``max_person`` and image size.
    """
    samples = list(samples)
    if not samples:
        raise SampleError("collate needs at least one sample")
    out: dict = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        if all(isinstance(v, Tensor) for v in vals):
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) != 1:
                if key in SPEC:
                    raise SampleError(f"cannot collate {key}: shapes differ across samples {sorted(shapes)}")
                out[key] = vals
                continue
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out


def empty_sample(max_person: int, image_size: tuple[int, int]) -> dict[str, Tensor]:
    """A contract sample with a black image and no people (all masks False)."""
    H, W = image_size
    out = {}
    for key, (shape, dtype, _) in SPEC.items():
        shp = tuple(max_person if s == "P" else H if s == "H" else W if s == "W" else s for s in shape)
        out[key] = torch.zeros(shp, dtype=dtype)
    out["camK"] = torch.eye(3)
    return out
