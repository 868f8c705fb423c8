import math
import pickle
import warnings

import numpy as np
import pytest
import torch

from romp_fast.losses import GMMFileError, GMMPosePrior, gmm_prior_loss, load_gmm
from romp_fast.losses import prior as prior_mod

MEANS = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
VARS = np.array([[1.0, 1.0, 1.0], [0.5, 0.5, 2.0]])
WEIGHTS = np.array([0.3, 0.7])


def _nll_by_hand(theta):
    logdet = np.log(VARS).sum(1)
    best = math.inf
    for k in range(2):
        quad = ((theta - MEANS[k][: len(theta)]) ** 2 / VARS[k][: len(theta)]).sum()
        val = 0.5 * quad - math.log(WEIGHTS[k]) + 1.5 * math.log(2 * math.pi) + 0.5 * logdet[k] - 0.5 * logdet.min()
        best = min(best, val)
    return best


@pytest.fixture
def npz_path(tmp_path):
    p = tmp_path / "gmm.npz"
    np.savez(p, means=MEANS, covars=np.stack([np.diag(v) for v in VARS]), weights=WEIGHTS)
    return p


def test_prior_value_by_hand(npz_path):
    prior = GMMPosePrior(npz_path)
    poses = torch.tensor([[0.2, -0.1, 0.4], [0.9, 1.3, 0.2]], dtype=torch.float64)
    want = [_nll_by_hand(p.numpy()) for p in poses]
    assert prior(poses).tolist() == pytest.approx(want, rel=1e-6)
    assert gmm_prior_loss(poses, prior, threshold=0).item() == pytest.approx(sum(want) / 2 / 100, rel=1e-6)
    # shorter poses use the leading block (ROMP's 63-of-69 slicing)
    assert prior(poses[:, :2]).tolist() == pytest.approx([_nll_by_hand(p.numpy()) for p in poses[:, :2]], rel=1e-6)


def test_prior_threshold_zeroes_small_losses(npz_path):
    prior = GMMPosePrior(npz_path)
    pose = torch.zeros(1, 3, requires_grad=True)
    loss = gmm_prior_loss(pose, prior)          # ~0.03 < 5
    loss.backward()
    assert loss.item() == 0 and (pose.grad == 0).all()
    far = torch.full((1, 3), 40.0, requires_grad=True)
    big = gmm_prior_loss(far, prior)            # ROMP threshold 5: far pose is kept
    assert big.item() > 5
    assert gmm_prior_loss(far, prior, threshold=1e9).item() == 0


def test_prior_mask_and_precision_file(tmp_path, npz_path):
    p2 = tmp_path / "prec.npz"
    np.savez(p2, means=MEANS, precisions=np.stack([np.diag(1 / v) for v in VARS]), weights=WEIGHTS)
    a, b = GMMPosePrior(npz_path), GMMPosePrior(p2)
    poses = torch.tensor([[0.5, 0.5, 0.5], [float("nan")] * 3], dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([True, False])
    la = gmm_prior_loss(poses, a, valid, threshold=0)
    assert la.item() == pytest.approx(gmm_prior_loss(poses, b, valid, threshold=0).item(), rel=1e-9)
    la.backward()
    assert torch.isfinite(poses.grad).all() and (poses.grad[1] == 0).all()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gmm_prior_loss(t, a, threshold=0), (x,))


def test_pickle_layout_is_read_safely(tmp_path):
    for proto in (2, 4, 5):
        good = tmp_path / f"gmm_08_{proto}.pkl"
        good.write_bytes(pickle.dumps({"means": MEANS, "covars": np.stack([np.diag(v) for v in VARS]),
                                       "weights": WEIGHTS}, protocol=proto))
        g = load_gmm(good)
        assert np.allclose(g["precisions"][1], np.diag(1 / VARS[1]))
        assert np.allclose(g["means"], MEANS) and np.allclose(g["weights"], WEIGHTS)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"means": Evil()}, protocol=2))
    with pytest.raises(GMMFileError, match="refusing to unpickle"):
        load_gmm(bad)
    assert not marker.exists()
    with pytest.raises(GMMFileError, match="does not exist"):
        load_gmm(tmp_path / "missing.pkl")
    odd = tmp_path / "odd.npz"
    np.savez(odd, means=MEANS, weights=WEIGHTS)
    with pytest.raises(GMMFileError, match="precisions or covars"):
        load_gmm(odd)


def test_no_file_means_prior_off_with_one_message(monkeypatch):
    monkeypatch.setattr(GMMPosePrior, "_warned", False)
    pose = torch.randn(4, 63, requires_grad=True)
    with pytest.warns(UserWarning, match="no pose-prior"):
        loss = gmm_prior_loss(pose, GMMPosePrior(None))
    loss.backward()
    assert loss.item() == 0 and (pose.grad == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gmm_prior_loss(pose, None).item() == 0   # second time: silent
    assert prior_mod.PRIOR_DIVISOR == 100 and prior_mod.TRACE_PRIOR_THRESHOLD == 8
