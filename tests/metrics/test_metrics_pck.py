"""romp_fast.metrics.pck (pck, pck_curve, auc) against hand-computed values and a numpy loop
written here the way the 3DPW challenge kit computes them (``errors <= thr``; AUC by scipy quad of
the interpolated curve on the [0, 1]-normalised threshold axis)."""
import numpy as np
import pytest
import torch
from scipy import integrate

from romp_fast.metrics.pck import auc, auc_from_curve, default_thresholds, pck, pck_curve

F64 = torch.float64


def errors_np(pred, target, root=None):
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if root is not None:
        p, t = p - p[:, [root]], t - t[:, [root]]
    return np.linalg.norm(p - t, axis=-1)


def pck_np(err, mask, thr):
    out = np.zeros(len(err))
    for b in range(len(err)):
        vis = mask[b]
        out[b] = (err[b][vis] <= thr).mean() if vis.any() else 0.0
    return out


def auc_quad_np(err_rows, thresholds):
    """The kit's recipe on a pooled error array [N, J]: PCK per threshold, then quad of np.interp."""
    x = np.asarray(thresholds) / np.max(thresholds)
    y = [np.mean(np.mean(err_rows <= t, axis=1)) for t in thresholds]
    return integrate.quad(lambda v: np.interp(v, x, y), x.min(), x.max(), limit=500, points=x[1:-1])[0]


def sample(seed, B=5, J=12, scale=0.06):
    rng = np.random.default_rng(seed)
    target = rng.normal(scale=0.3, size=(B, J, 3))
    pred = target + rng.normal(scale=scale, size=(B, J, 3))
    mask = rng.random((B, J)) < 0.8
    return torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)


def test_hand_computed_pck_boundary_is_inclusive():
    target = torch.zeros(1, 4, 3, dtype=F64)
    pred = torch.tensor([[[0.05, 0, 0], [0, 0.03, 0.04], [0.0501, 0, 0], [0.2, 0, 0]]], dtype=F64)
    # errors 0.05 (exactly the threshold: correct), 0.05 (correct), 0.0501 and 0.2 (wrong)
    assert pck(pred, target).tolist() == [0.5]
    assert pck(1000 * pred, 1000 * target, threshold=50.0).tolist() == [0.5]  # millimetres
    assert pck(pred, target, torch.tensor([[True, False, False, True]])).tolist() == [0.5]
    assert pck(pred, target, torch.tensor([[0.0, 0.0, 3.0, 1.0]])).tolist() == [0.0]  # weights


def test_hand_computed_curve_and_auc():
    target = torch.zeros(1, 2, 3, dtype=F64)
    pred = torch.tensor([[[1.0, 0, 0], [3.0, 0, 0]]], dtype=F64)  # errors 1 and 3
    thr = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=F64)
    curve = pck_curve(pred, target, thresholds=thr)
    assert curve.tolist() == [[0.0, 0.5, 0.5, 1.0, 1.0]]
    # trapezoids: (0+.5)/2 + (.5+.5)/2 + (.5+1)/2 + (1+1)/2 = 2.5 over a range of 4
    assert auc(pred, target, thresholds=thr).tolist() == [2.5 / 4]
    assert auc_from_curve(curve, thr).tolist() == [2.5 / 4]


@pytest.mark.parametrize("root", [None, 0])
def test_pck_and_curve_match_numpy(root):
    pred, target, mask = sample(0)
    mask[:, 0] = True  # the root is visible
    mask[3] = False
    mask[3, 0] = True  # sample 3: only the root is visible
    err = errors_np(pred, target, root)
    thr = default_thresholds()
    m = mask.numpy()
    np.testing.assert_allclose(pck(pred, target, mask, 0.05, root).numpy(), pck_np(err, m, 0.05), atol=1e-15)
    ref = np.stack([pck_np(err, m, t) for t in thr.numpy()], 1)
    np.testing.assert_allclose(pck_curve(pred, target, mask, thr, root).numpy(), ref, atol=1e-15)


def test_auc_matches_the_kits_quad_of_the_pooled_curve():
    pred, target, _ = sample(1, B=40, J=12, scale=0.05)
    err_mm = 1000 * errors_np(pred, target)
    thr_mm = np.arange(0, 200)
    ours = auc(1000 * pred, 1000 * target, thresholds=torch.from_numpy(thr_mm).double())
    # equal joint counts per sample: the mean of per-sample AUCs is the AUC of the pooled curve
    assert abs(ours.mean().item() - auc_quad_np(err_mm, thr_mm)) < 1e-9
    assert abs(auc(pred, target).mean().item() - auc_quad_np(err_mm, thr_mm)) < 1e-9  # metres, defaults


def test_perfect_and_hopeless_predictions():
    pred, target, _ = sample(2)
    assert pck(target, target).tolist() == [1.0] * 5
    assert torch.allclose(auc(target, target), torch.ones(5, dtype=F64), atol=1e-15)  # correct at 0 already
    far = target + 10.0
    assert pck(far, target).tolist() == [0.0] * 5
    assert auc(far, target).tolist() == [0.0] * 5


def test_empty_all_masked_nan_and_errors():
    e = torch.zeros(0, 12, 3, dtype=F64)
    assert pck(e, e).shape == (0,) and pck_curve(e, e).shape == (0, 200) and auc(e, e).shape == (0,)
    pred, target, mask = sample(3)
    mask[1] = False
    pred[1, 2] = torch.nan  # masked: ignored
    assert pck(pred, target, mask)[1] == 0 and auc(pred, target, mask)[1] == 0
    pred[2, 4], mask[2, 4] = torch.nan, True  # visible NaN: that sample only is unknown
    out = pck(pred, target, mask)
    assert torch.isnan(out[2]) and torch.isfinite(out[[0, 1, 3, 4]]).all()
    assert torch.isnan(pck_curve(pred, target, mask)[2]).all()
    m0 = mask.clone()
    m0[0, 0] = False  # root 0 invisible: NaN, as mpjpe
    assert torch.isnan(pck(pred, target, m0, root=0)[0])
    with pytest.raises(ValueError, match="increasing"):
        pck_curve(pred, target, thresholds=[0.1, 0.05])
    with pytest.raises(ValueError, match=r"pred must be \[B, N, 3\]"):
        pck(pred[..., :2], target[..., :2])
    with pytest.raises(ValueError, match="T = 3 thresholds"):
        auc_from_curve(torch.zeros(2, 4), [0.0, 1.0, 2.0])
