import numpy as np
import pytest
import torch

from romp_fast.data.contract import KEYS, validate_sample
from romp_fast.data.disk import DiskDataset, write_split
from romp_fast.data.export_synthetic import main as export_main


def test_round_trip(scenes, tmp_path):
    n = write_split(tmp_path, "val", (scenes[i] for i in range(5)))
    assert n == 5
    ds = DiskDataset(tmp_path, "val")
    assert len(ds) == 5
    for i in range(5):
        a, b = scenes[i], ds[i]
        validate_sample(b, max_person=6)
        for k in KEYS:
            if k == "image":
                assert (a[k] - b[k]).abs().max() <= 0.5 / 255 + 1e-6
            else:
                assert b[k].dtype == a[k].dtype and torch.equal(a[k], b[k]), k
    # images are real PNGs on disk; nothing temporary is left behind
    files = sorted(p.name for p in (tmp_path / "images" / "val").iterdir())
    assert files == [f"{i:06d}.png" for i in range(5)]
    assert not [p for p in tmp_path.rglob("*.tmp")]
    with np.load(tmp_path / "val.npz", allow_pickle=False) as z:
        assert z["kp2d"].shape == (5, 6, 54, 2) and z["image_file"][0] == "images/val/000000.png"


def test_rewrite_replaces_and_version_checked(scenes, tmp_path):
    write_split(tmp_path, "train", [scenes[0], scenes[1]])
    write_split(tmp_path, "train", [scenes[2]])
    ds = DiskDataset(tmp_path, "train")
    assert len(ds) == 1 and torch.equal(ds[0]["pose"], scenes[2]["pose"])
    with np.load(tmp_path / "train.npz") as z:
        arrays = dict(z)
    arrays["format_version"] = np.array(99)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="format_version 99"):
        DiskDataset(tmp_path, "bad")
    with pytest.raises(FileNotFoundError, match="no annotation file"):
        DiskDataset(tmp_path, "missing")


def test_failed_write_leaves_old_file(scenes, tmp_path):
    write_split(tmp_path, "train", [scenes[0]])
    before = (tmp_path / "train.npz").read_bytes()
    bad = dict(scenes[1])
    bad["kp2d"] = torch.zeros(6, 17, 2)
    with pytest.raises(ValueError, match="kp2d must be"):
        write_split(tmp_path, "train", [scenes[0], bad])
    assert (tmp_path / "train.npz").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_export_cli(tmp_path, capsys):
    assert export_main([str(tmp_path / "out"), "--n", "3", "--image-size", "64", "--max-person", "4"]) == 0
    ds = DiskDataset(tmp_path / "out", "train")
    assert len(ds) == 3 and ds[0]["image"].shape == (3, 64, 64)
    assert "wrote 3 samples" in capsys.readouterr().out
