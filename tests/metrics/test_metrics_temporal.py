"""romp_fast.metrics.temporal (acceleration_error, acceleration, stencil_count) against
hand-computed values and a per-frame numpy loop written here (VIBE's compute_error_accel recipe:
second differences, per-frame mean over joints, frames whose three-frame stencil is visible)."""
import numpy as np
import pytest
import torch

from romp_fast.metrics.temporal import acceleration, acceleration_error, stencil_count

F64 = torch.float64


def accel_error_np(pred, target, valid):
    out = np.zeros(len(pred))
    for s in range(len(pred)):
        vals = []
        for t in range(1, pred.shape[1] - 1):
            if valid[s, t - 1] and valid[s, t] and valid[s, t + 1]:
                ap = pred[s, t - 1] - 2 * pred[s, t] + pred[s, t + 1]
                ag = target[s, t - 1] - 2 * target[s, t] + target[s, t + 1]
                vals.append(np.linalg.norm(ap - ag, axis=-1).mean())
        out[s] = np.mean(vals) if vals else 0.0
    return out


def test_hand_computed():
    pred = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [0.0, 0, 0]]], dtype=F64)  # [S=1, T=3, 3]
    target = torch.zeros_like(pred)
    assert acceleration_error(pred, target).tolist() == [2.0]  # |0 - 2 + 0|
    assert acceleration(pred).tolist() == [2.0]
    line = torch.arange(6, dtype=F64)[None, :, None, None] * torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    assert acceleration_error(line + 5.0, torch.zeros_like(line)).abs().max() < 1e-12  # constant velocity


def test_matches_numpy_with_gaps():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(4, 9, 14, 3)), rng.normal(size=(4, 9, 14, 3))
    valid = rng.random((4, 9)) < 0.8
    valid[2] = [True, True, False] * 3  # no full stencil: 0
    pred[0, ~valid[0]] = np.nan  # invalid frames are ignored even when NaN
    ours = acceleration_error(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(valid))
    np.testing.assert_allclose(ours.numpy(), accel_error_np(pred, target, valid), atol=1e-12)
    assert ours[2] == 0
    counts = stencil_count(torch.from_numpy(valid))
    expect = [(valid[s, :-2] & valid[s, 1:-1] & valid[s, 2:]).sum() for s in range(4)]
    assert counts.tolist() == expect
    assert stencil_count(torch.from_numpy(valid), order=1).tolist() == [(valid[s, 1:] & valid[s, :-1]).sum()
                                                                       for s in range(4)]


def test_short_tracks_empty_and_errors():
    assert acceleration_error(torch.zeros(2, 2, 3, dtype=F64), torch.ones(2, 2, 3, dtype=F64)).tolist() == [0, 0]
    assert stencil_count(torch.ones(2, 2, dtype=torch.bool)).tolist() == [0, 0]
    assert acceleration_error(torch.zeros(0, 5, 3, dtype=F64), torch.zeros(0, 5, 3, dtype=F64)).shape == (0,)
    with pytest.raises(ValueError, match=r"valid must be \[S, T\]"):
        stencil_count(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="pred must be"):
        acceleration_error(torch.zeros(5, 3, dtype=F64), torch.zeros(5, 3, dtype=F64))
