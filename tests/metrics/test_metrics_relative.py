"""romp_fast.metrics.relative: depth pairs / PCRD / age accuracy against hand-computed values and a
per-image numpy fp64 loop over pairs written here."""
import numpy as np
import pytest
import torch

from romp_fast.metrics.relative import (ADJACENT_CREDIT, age_accuracy, age_class_from_offset,
                                        depth_pair_accuracy, depth_pairs, pair_involves, pcrd)


def pairs_np(z, layer, mask, thresh=0.2):
    """Per image, pairs i < j: (category, correct, ages involved) as BEV's evaluation describes it."""
    out = []
    for b in range(len(z)):
        idx = np.flatnonzero(mask[b])
        for a, i in enumerate(idx):
            for j in idx[a + 1:]:
                dd, did = z[b, j] - z[b, i], layer[b, j] - layer[b, i]
                cat = int(np.sign(did))
                ok = abs(dd) < thresh if cat == 0 else (dd < -thresh if cat < 0 else dd > thresh)
                out.append((b, i, j, cat, ok))
    return out


def test_hand_computed_image():
    # three people: A layer 0 z 2.0, B layer 0 z 2.1, C layer 1 z 1.5 (predicted in front: wrong)
    z = torch.tensor([[2.0, 2.1, 1.5]], dtype=torch.float64)
    layer = torch.tensor([[0, 0, 1]])
    cat, ok, valid = depth_pairs(z, layer)
    assert valid.sum() == 3
    assert cat[0, 0, 1] == 0 and ok[0, 0, 1]          # |0.1| < 0.2
    assert cat[0, 0, 2] == 1 and not ok[0, 0, 2]      # farther but dz = -0.5
    assert cat[0, 1, 2] == 1 and not ok[0, 1, 2]
    assert pcrd(ok, valid).item() == pytest.approx(1 / 3)
    # two missed people with the RH penalty: 1 / (3 + 0.3 * 2)
    assert pcrd(ok, valid, missed=2, miss_penalty=0.3).item() == pytest.approx(1 / 3.6)
    acc = depth_pair_accuracy(cat, ok, valid)
    assert acc["equal"][0].item() == 1.0 and acc["equal"][1] == 1
    assert acc["farther"][0].item() == 0.0 and acc["farther"][1] == 2
    assert np.isnan(acc["closer"][0].item()) and acc["closer"][1] == 0


def test_random_against_numpy_and_per_age():
    rng = np.random.default_rng(0)
    B, N = 6, 7
    z = rng.uniform(1, 8, (B, N))
    layer = rng.integers(0, 4, (B, N))
    mask = rng.random((B, N)) < 0.8
    age = rng.integers(0, 4, (B, N))
    ref = pairs_np(z, layer, mask)
    cat, ok, valid = depth_pairs(torch.tensor(z), torch.tensor(layer), torch.tensor(mask))
    got = sorted((int(b), int(i), int(j), int(cat[b, i, j]), bool(ok[b, i, j])) for b, i, j in valid.nonzero().tolist())
    assert got == sorted(ref)
    n_ok = sum(r[4] for r in ref)
    penalised = pcrd(ok, valid, missed=torch.tensor([2, 1]), miss_penalty=0.3).item()
    assert penalised == pytest.approx(n_ok / (len(ref) + 0.9))
    for a in range(4):
        sel = [r for r in ref if age[r[0], r[1]] == a or age[r[0], r[2]] == a]
        inv = valid & pair_involves(torch.tensor(age), a)
        assert int(inv.sum()) == len(sel)
        assert pcrd(ok, inv).item() == pytest.approx(sum(r[4] for r in sel) / len(sel))


def test_metric_depth_categories():
    z = torch.tensor([[3.0, 3.1, 3.5]], dtype=torch.float64)
    gt = torch.tensor([[3.0, 3.25, 3.6]], dtype=torch.float64)  # dz 0.25 -> equal, 0.6 -> farther
    cat, ok, valid = depth_pairs(z, torch.zeros(1, 3, dtype=torch.long), gt_depth=gt)
    assert cat[0, 0, 1] == 0 and cat[0, 0, 2] == 1 and cat[0, 1, 2] == 1
    assert ok[0, 0, 1] and ok[0, 0, 2] and ok[0, 1, 2]


def test_shuffling_people_changes_nothing():
    rng = np.random.default_rng(3)
    z, layer = torch.tensor(rng.uniform(1, 5, (2, 6))), torch.tensor(rng.integers(0, 3, (2, 6)))
    perm = torch.randperm(6)
    a = depth_pairs(z, layer)
    b = depth_pairs(z[:, perm], layer[:, perm])
    assert pcrd(a[1], a[2]).item() == pcrd(b[1], b[2]).item()


def test_age_bins_and_accuracy():
    off = torch.tensor([-0.1, -0.05, 0.0, 0.15, 0.16, 0.45, 0.6, 0.75, 0.9, 1.0, 1.01])
    assert age_class_from_offset(off).tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3, -1]
    pred = torch.tensor([0, 1, 3, -1, 2])
    gt = torch.tensor([0, 0, 1, 0, 3])
    assert age_accuracy(pred, gt).tolist() == pytest.approx([1.0, ADJACENT_CREDIT, 0.0, 0.0, ADJACENT_CREDIT])


def test_shape_errors():
    with pytest.raises(ValueError, match="both be"):
        depth_pairs(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mask must be"):
        depth_pairs(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3, 2, dtype=torch.bool))
