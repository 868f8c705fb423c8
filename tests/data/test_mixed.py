import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from romp_fast.data.mixed import MixedDataset


def _mix(lens=(1000, 3000, 500), p=(0.2, 0.5, 0.3), **kw):
    return MixedDataset([range(n) for n in lens], p, **kw)


def test_length_and_blocks_hand_values():
    # L = max(1000/.2, 3000/.5, 500/.3) = 6000; blocks at round(6000 * [.2, .7, 1]) = 1200, 4200, 6000
    m = _mix()
    assert len(m) == 6000
    assert m.starts.tolist() == [0, 1200, 4200] and m.block.tolist() == [1200, 3000, 1800]
    # block longer than the dataset: floor(len * offset / n), no jitter
    assert m.locate(0) == (0, 0) and m.locate(599) == (0, 499) and m.locate(1199) == (0, 999)
    assert m.locate(4200 + 900) == (2, 250)
    # the cap: batch_size * 10000
    assert len(_mix(batch_size=1)) == 6000 and len(_mix(max_length=100)) == 100


def test_exact_ratios_over_an_epoch():
    m = _mix()
    ids = np.array([m.locate(g)[0] for g in range(len(m))])
    np.testing.assert_allclose(np.bincount(ids) / len(m), [0.2, 0.5, 0.3], atol=1 / len(m))


def test_jitter_reaches_every_item_and_is_seeded():
    # dataset 0 has 1000 items but only a 100-index block: the jitter must still reach all of them
    m = MixedDataset([range(1000), range(10)], [0.1, 0.9], max_length=1000, seed=4)
    seen = set()
    for epoch in range(40):
        m.set_epoch(epoch)
        items = [m.locate(g)[1] for g in range(100)]
        assert all(0 <= i < 1000 for i in items)
        seen.update(items)
    assert len(seen) > 950
    m.set_epoch(3)
    a = [m.locate(g) for g in range(100)]
    m2 = MixedDataset([range(1000), range(10)], [0.1, 0.9], max_length=1000, seed=4)
    m2.set_epoch(3)
    assert a == [m2.locate(g) for g in range(100)]


def test_distributed_sampler_ratios():
    m = _mix()
    ranks = []
    for r in range(2):
        s = DistributedSampler(m, num_replicas=2, rank=r, shuffle=True, seed=0)
        s.set_epoch(0)
        ranks.append(list(s))
    assert sorted(ranks[0] + ranks[1]) == list(range(len(m)))
    for idx in ranks:
        ids = np.array([m.locate(g)[0] for g in idx])
        # 3000 draws without replacement: sd of a share <= sqrt(.25 / 3000) ~ 0.009
        np.testing.assert_allclose(np.bincount(ids, minlength=3) / len(idx), [0.2, 0.5, 0.3], atol=0.03)


def test_dataset_id_and_warnings(scenes):
    m = MixedDataset([scenes, scenes], [0.5, 0.5], max_length=10)
    assert m[0]["dataset_id"].item() == 0 and m[9]["dataset_id"].item() == 1
    with pytest.warns(UserWarning, match="sum to 1.2000"):
        _mix(p=(0.2, 0.5, 0.5))
    with pytest.raises(ValueError, match="one probability per dataset"):
        MixedDataset([range(3)], [0.5, 0.5])
    with pytest.raises(IndexError):
        _mix().locate(6000)
