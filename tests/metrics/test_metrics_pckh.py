"""romp_fast.metrics.pckh: hand-computed cases and a per-person numpy fp64 loop written here."""
import numpy as np
import pytest
import torch

from romp_fast.metrics.pckh import PCKH_THRESH, keypoint_box_diagonal, mpckh


def mpckh_np(pred, target, vis, thresh=PCKH_THRESH):
    """One person at a time, as ROMP's _calc_matched_PCKh_ describes it; -1 below 2 visible."""
    out = []
    for p, t, v in zip(pred, target, vis):
        if v.sum() < 2:
            out.append(-1.0)
            continue
        tv = t[v]
        scale = np.hypot(tv[:, 0].max() - tv[:, 0].min(), tv[:, 1].max() - tv[:, 1].min())
        err = np.linalg.norm(p[v] - t[v], axis=-1)
        out.append(float(np.mean(err / scale < thresh)))
    return np.array(out)


def test_hand_computed():
    # visible box 0..30 x 0..40 -> diagonal 50, threshold 0.143 * 50 = 7.15 px
    target = torch.tensor([[[0.0, 0.0], [30.0, 40.0], [10.0, 10.0], [20.0, 20.0], [500.0, 500.0]]], dtype=torch.float64)
    pred = target + torch.tensor([[[7.0, 0.0], [0.0, 7.2], [3.0, 4.0], [100.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False]])  # the far joint is invisible: not in the box
    assert keypoint_box_diagonal(target, mask).item() == pytest.approx(50.0)
    assert mpckh(pred, target, mask).item() == pytest.approx(2 / 4)  # 7 < 7.15 and 5 < 7.15


def test_perfect_is_one_and_fewer_than_two_visible_is_zero():
    rng = np.random.default_rng(0)
    t = torch.tensor(rng.uniform(0, 100, (3, 14, 2)))
    mask = torch.ones(3, 14, dtype=torch.bool)
    mask[1, 1:] = False  # one visible joint: no box
    mask[2] = False
    out = mpckh(t.clone(), t, mask)
    assert out.tolist() == [1.0, 0.0, 0.0]


def test_zero_size_box_counts_exact_hits():
    t = torch.zeros(1, 3, 2, dtype=torch.float64)
    p = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    assert mpckh(p, t).item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_against_numpy(dtype):
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 200, (50, 14, 2))
    p = t + rng.normal(scale=15, size=t.shape)
    vis = rng.random((50, 14)) < 0.7
    ref = mpckh_np(p, t, vis)
    out = mpckh(torch.tensor(p, dtype=dtype), torch.tensor(t, dtype=dtype), torch.tensor(vis)).double().numpy()
    keep = ref >= 0
    np.testing.assert_allclose(out[keep], ref[keep], atol=1e-6)
    assert (out[~keep] == 0).all()


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[B, K, 2\]"):
        mpckh(torch.zeros(2, 14, 3), torch.zeros(2, 14, 3))
    with pytest.raises(ValueError, match="mask must be"):
        mpckh(torch.zeros(2, 14, 2), torch.zeros(2, 14, 2), torch.ones(2, 13, dtype=torch.bool))
