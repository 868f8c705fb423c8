import math

import numpy as np
import pytest
import torch

from romp_fast.data.heatmap import (center_heatmap, collision_aware_centers, gaussian2d,
                                    gaussian_radius, romp_radius)


def _one(center, box, S=64, **kw):
    return center_heatmap(torch.tensor([center]), torch.tensor([True]), torch.tensor([box]),
                          map_size=S, **kw)


def test_romp_radius_hand_values():
    # S = 64: r = floor(4 * ||(h, w) / 2|| + 2)
    # (1.0, 0.6): 4 * 0.58310 + 2 = 4.332 -> 4;  (2, 2): 4 * 1.41421 + 2 = 7.657 -> 7;  (0, 0) -> 2
    assert romp_radius([[1.0, 0.6], [2.0, 2.0], [0.0, 0.0]], 64).tolist() == [4, 7, 2]
    # S = 128: 8 * 0.58310 + 4 = 8.66 -> 8
    assert romp_radius([[1.0, 0.6]], 128).tolist() == [8]


def test_gaussian_radius_hand_value():
    # h = w = 10, overlap 0.7: r1 = (20 + sqrt(400 - 4 * 17.647)) / 2 = 19.075,
    # r2 = (40 + sqrt(1600 - 480)) / 2 = 36.733, r3 = (-28 + sqrt(784 + 336)) / 2 = 2.733
    assert gaussian_radius(10, 10, 0.7) == pytest.approx(2.7330, abs=1e-3)


def test_single_person_hand_values():
    # box 0.6 wide, 1.0 tall -> r = 4, diameter 9, sigma 1.5, 2 sigma^2 = 4.5; centre (0, 0) -> cell (32, 32)
    hm, used = _one([0.0, 0.0], [-0.3, -0.5, 0.3, 0.5])
    assert hm.shape == (1, 64, 64)
    m = hm[0]
    assert m[32, 32] == 1.0
    assert m[32, 33].item() == pytest.approx(math.exp(-1 / 4.5), rel=1e-6)     # 0.80074
    assert m[33, 33].item() == pytest.approx(math.exp(-2 / 4.5), rel=1e-6)     # 0.64118
    assert m[36, 32].item() == pytest.approx(math.exp(-16 / 4.5), rel=1e-5)    # 0.02856 (edge of window)
    assert m[37, 32] == 0 and m[32, 27] == 0
    assert (m > 0).sum() == 81  # the full 9 x 9 window
    assert torch.equal(used, torch.tensor([[0.0, 0.0]]))


def test_window_clipped_at_border_and_centre_outside_skipped():
    # x = int((-0.99 + 1) / 2 * 64) = int(0.32) = 0 -> column 0; window keeps columns 0..4
    hm, _ = _one([-0.99, 0.0], [-0.3, -0.5, 0.3, 0.5])
    m = hm[0]
    assert m[32, 0] == 1 and m[32, 4].item() == pytest.approx(math.exp(-16 / 4.5), rel=1e-5)
    assert (m > 0).sum() == 9 * 5
    hm, _ = _one([1.0, 0.0], [-0.3, -0.5, 0.3, 0.5], car=False)  # x = 64: off the map
    assert hm.sum() == 0


def test_two_people_max_not_sum():
    c = torch.tensor([[0.0, 0.0], [0.25, 0.0]])  # cells 32 and 40: windows overlap at 36
    b = torch.tensor([[-0.3, -0.5, 0.3, 0.5]] * 2)
    hm, _ = center_heatmap(c, torch.tensor([True, True]), b, map_size=64, car=False)
    g = math.exp(-16 / 4.5)
    assert hm[0, 32, 36].item() == pytest.approx(g, rel=1e-5)  # max of two equal values, not 2g
    assert hm[0, 32, 32] == 1 and hm[0, 32, 40] == 1


def test_collision_aware_push_hand_values():
    # r = 4 each, S = 64: least = 9 / 64 * 2 = 0.28125; dist = 0.05 + 1e-4 = 0.0501
    # offset = |(0.28125 - 0.0501) / 0.0501| * (0.0501, 1e-4) * 0.2 = 0.922754 * (0.0501, 1e-4)
    out = collision_aware_centers(np.array([[0.0, 0.0], [0.05, 0.0]]), np.array([4, 4]), 64)
    k = abs((0.28125 - 0.0501) / 0.0501) * 0.2
    assert k == pytest.approx(0.922754, abs=1e-6)
    np.testing.assert_allclose(out, [[-k * 0.0501, -k * 1e-4], [0.05 + k * 0.0501, k * 1e-4]], atol=1e-12)
    np.testing.assert_allclose(out[0, 0], -0.0462300, atol=1e-6)
    # far apart: untouched;  pushed past the border: clipped and +-1 -> +-0.96
    far = collision_aware_centers(np.array([[-0.5, 0.0], [0.5, 0.0]]), np.array([4, 4]), 64)
    np.testing.assert_array_equal(far, [[-0.5, 0.0], [0.5, 0.0]])
    edge = collision_aware_centers(np.array([[0.98, 0.0], [0.999, 0.0]]), np.array([4, 4]), 64)
    assert edge[1, 0] == 0.96


def test_heatmap_uses_car_centres():
    c = torch.tensor([[0.0, 0.0], [0.05, 0.0]])
    b = torch.tensor([[-0.3, -0.5, 0.3, 0.5]] * 2)
    hm, used = center_heatmap(c, torch.tensor([True, True]), b, map_size=64)
    assert used[0, 0].item() == pytest.approx(-0.04623, abs=1e-5)
    # x: -0.04623 -> int(30.52) = 30;  0.09623 -> int(35.08) = 35: two separate peaks
    # y: -9.2e-5 -> int(31.997) = 31 (the +1e-4 in the push moves person 0 up a row);  +9.2e-5 -> 32
    assert hm[0, 31, 30] == 1 and hm[0, 32, 35] == 1
    assert (hm[0] == 1).sum() == 2


def test_gaussian2d_shape_and_sigma():
    g = gaussian2d(2)  # diameter 5, sigma 5/6
    assert g.shape == (5, 5) and g[2, 2] == 1
    assert g[2, 4] == pytest.approx(math.exp(-4 / (2 * (5 / 6) ** 2)))


def test_batch_heatmaps_from_synthetic(scenes):
    from romp_fast.data.contract import collate
    from romp_fast.data.heatmap import batch_center_heatmaps

    batch = collate([scenes[i] for i in range(3)])
    hm = batch_center_heatmaps(batch, map_size=32)
    assert hm.shape == (3, 1, 32, 32)
    for b in range(3):
        # one exact peak per person (CAR keeps peaks apart unless centres share a cell)
        n = int(batch["person_valid"][b].sum())
        assert 1 <= int((hm[b] == 1).sum()) <= n
        assert hm[b].max() == 1 and hm[b].min() == 0
