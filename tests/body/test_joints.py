import numpy as np
import pytest
import torch

from romp_fast.body import joints as J

# Literal tables from ROMP's romp/lib/constants.py (independent reference values).
ROMP_H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
ROMP_SMPL24_FLIP = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
ROMP_EXTRA30_FLIP = [24, 26, 25, 28, 27, 32, 33, 34, 29, 30, 31, 40, 41, 42, 43, 44, 35, 36, 37, 38, 39,
                     46, 45, 47, 48, 49, 50, 51, 52, 53]


def test_set_sizes_and_romp_indices():
    sizes = {"smpl24": 24, "smpl54": 54, "lsp14": 14, "h36m17": 17, "j17": 17, "coco17": 17, "crowdpose14": 14}
    for name, n in sizes.items():
        names = J.JOINT_SETS[name]
        assert len(names) == n and len(set(names)) == n, name
    assert J.ROOT_54 == (45, 46)
    assert list(J.index("smpl54", "R_Hip", "L_Hip", "Neck_LSP", "Head_top", "Pelvis", "Thorax_MPII",
                        "Spine_H36M", "Jaw_H36M", "Head")) == list(range(45, 54))
    assert J.index("smpl54", "Nose", "R_Hand_pinky").tolist() == [24, 44]
    assert J.ROOT_J17 == 14 and J.ROOT_LSP == (2, 3)


def test_maps_match_romp_tables():
    assert J.joint_map("h36m17", "j17").tolist() == ROMP_H36M_TO_J17
    # SMPL-54 -> LSP-14 by names, hand-written from ROMP's SMPL_ALL_54 dict
    assert J.joint_map("smpl54", "lsp14").tolist() == [8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48]
    m = J.joint_map("smpl54", "coco17")
    assert m.tolist() == [24, 26, 25, 28, 27, 16, 17, 18, 19, 20, 21, 46, 45, 4, 5, 7, 8]
    assert (J.joint_map("coco17", "lsp14") == -1).sum() == 2  # Neck_LSP, Head_top


def test_flip_permutations():
    assert J.flip_permutation("smpl54").tolist() == ROMP_SMPL24_FLIP + ROMP_EXTRA30_FLIP
    for name in J.JOINT_SETS:
        p = J.flip_permutation(name)
        assert sorted(p.tolist()) == list(range(len(p)))
        assert (p[p] == np.arange(len(p))).all(), name


def test_gather_numpy_and_torch_with_fill():
    m = J.joint_map("coco17", "lsp14")
    x = np.arange(17 * 2, dtype=float).reshape(1, 17, 2)
    out = J.gather(x, m, fill=-2.0)
    assert out.shape == (1, 14, 2) and (out[0, 12:] == -2).all()
    assert (out[0, 0] == x[0, 16]).all()  # R_Ankle is COCO 16
    t = J.gather(torch.as_tensor(x), m, fill=-2.0)
    np.testing.assert_array_equal(t.numpy(), out)
    with pytest.raises(ValueError, match="no source joint"):
        J.gather(x, m)
    with pytest.raises(KeyError, match="unknown joint set"):
        J.joint_map("smpl99", "lsp14")
