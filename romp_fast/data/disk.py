"""On-disk format for contract samples: PNG images plus one ``.npz`` annotation file per split.

Layout::

    ROOT/
      images/SPLIT/000000.png ...     8-bit RGB, the sample's ``image`` (values round(255 x) / 255)
      SPLIT.npz                        annotations, one array per field, first axis = sample

``SPLIT.npz`` fields (``N`` samples, ``P`` = max_person; see ``romp_fast.data.contract`` for units):

    format_version   []              int64   FORMAT_VERSION
    image_file       [N]             str     path of the PNG relative to ROOT
    image_size       [2]             int64   (H, W) of every image
    kp2d, kp2d_valid [N, P, 54, 2], [N, P, 54]    float32, bool
    kp3d, kp3d_valid [N, P, 54, 3], [N, P, 54]    float32, bool
    pose, pose_valid [N, P, 72], [N, P]           float32, bool
    betas, ...       [N, P, 10], [N, P]           float32, bool
    trans, cam       [N, P, 3] each, with ``trans_valid`` / ``cam_valid`` [N, P]
    centers          [N, P, 2] + centers_valid;  boxes [N, P, 4] + boxes_valid
    person_valid     [N, P] bool;  all_annotated [N] bool;  camK [N, 3, 3] float32
    track_id, depth_layer, age_class   [N, P] int64, each with its ``*_valid`` [N, P] bool
    frame_index      [N] int64

Validity is stored as explicit boolean arrays (no -2 / -10 sentinels: this format needs none), so
reading is lossless except for the 8-bit image quantisation. The file needs no pickle
(``np.load(..., allow_pickle=False)``). Images only: clips are written frame by frame (their
``track_id`` / ``frame_index`` survive, the grouping into clips does not).

Writes are atomic: every file is written to a temporary name in its directory and moved into place
with ``os.replace``, so a crash never leaves a truncated PNG or annotation file behind. The
annotation file is written last: a failed rewrite of a split keeps its old ``SPLIT.npz`` (PNGs
written before the failure may already hold the new images; write a new split to a fresh root or
name when the old one must survive intact).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from romp_fast.data.contract import KEYS, SPEC, validate_sample

FORMAT_VERSION = 1
_ANNOT_KEYS = tuple(k for k in KEYS if k != "image")


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _png_write(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    _atomic(path, lambda f: Image.fromarray(arr, "RGB").save(f, format="PNG"))


def write_split(root, split: str, samples: Iterable[Mapping[str, torch.Tensor]]) -> int:
    """Write ``samples`` (contract image samples) as split ``split`` under ``root``; returns N."""
    root = Path(root)
    cols: dict[str, list] = {k: [] for k in _ANNOT_KEYS}
    files, size = [], None
    for i, s in enumerate(samples):
        validate_sample(s)
        hw = tuple(s["image"].shape[-2:])
        if size is None:
            size = hw
        elif hw != size:
            raise ValueError(f"every image of a split must be {list(size)}, sample {i} is {list(hw)}")
        rel = f"images/{split}/{i:06d}.png"
        _png_write(s["image"], root / rel)
        files.append(rel)
        for k in _ANNOT_KEYS:
            cols[k].append(s[k].numpy())
    arrays = {k: np.stack(v) for k, v in cols.items()} if files else {}
    arrays["format_version"] = np.array(FORMAT_VERSION, dtype=np.int64)
    arrays["image_file"] = np.array(files, dtype=str)
    arrays["image_size"] = np.array(size or (0, 0), dtype=np.int64)
    _atomic(root / f"{split}.npz", lambda f: np.savez_compressed(f, **arrays))
    return len(files)


class DiskDataset(torch.utils.data.Dataset):
    """Reads a split written by :func:`write_split`; returns contract samples."""

    def __init__(self, root, split: str = "train"):
        self.root = Path(root)
        path = self.root / f"{split}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"no annotation file {path}")
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"{path}: format_version {version}, this reader reads {FORMAT_VERSION}")
            self.files = [str(f) for f in z["image_file"]]
            self.arrays = {k: z[k] for k in _ANNOT_KEYS} if self.files else {}
        for k, a in self.arrays.items():
            if len(a) != len(self.files):
                raise ValueError(f"{path}: {k} has {len(a)} rows for {len(self.files)} images")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        with Image.open(self.root / self.files[i]) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        out = {"image": torch.from_numpy(arr).permute(2, 0, 1).contiguous()}
        for k, a in self.arrays.items():
            out[k] = torch.from_numpy(np.array(a[i])).to(SPEC[k][1])
        return out
