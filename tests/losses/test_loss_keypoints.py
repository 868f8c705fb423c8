import pytest
import torch

from romp_fast.body import joints as J
from romp_fast.losses import kp2d_loss, mpjpe_loss, pampjpe_loss
from romp_fast.losses.keypoints import LEAF_PARENT_54

PELVIS, L_SHO, NOSE, L_ANK, L_HEEL = J.index("smpl54", "Pelvis_SMPL", "L_Shoulder", "Nose", "L_Ankle", "L_Heel")


def test_leaf_table_matches_romp_joint2d_tree():
    leaves = {J.SMPL_54[j]: J.SMPL_54[p] for j, p in enumerate(LEAF_PARENT_54) if p >= 0}
    assert leaves == {
        "Jaw": "L_Shoulder", "Nose": "L_Shoulder", "R_Eye": "L_Shoulder", "L_Eye": "L_Shoulder",
        "R_Ear": "L_Shoulder", "L_Ear": "L_Shoulder", "L_BigToe": "L_Ankle", "L_SmallToe": "L_Ankle",
        "L_Heel": "L_Ankle", "L_Toe_SMPL": "L_Ankle", "R_BigToe": "R_Ankle", "R_SmallToe": "R_Ankle",
        "R_Heel": "R_Ankle", "R_Toe_SMPL": "R_Ankle"}


def _kp2d_case():
    target = torch.zeros(1, 54, 2, dtype=torch.float64)
    pred = target.clone()
    vis = torch.zeros(1, 54, dtype=torch.bool)
    vis[0, [PELVIS, L_SHO, NOSE]] = True
    pred[0, PELVIS] = torch.tensor([0.3, 0.4])   # error 0.5
    pred[0, L_SHO] = torch.tensor([0.1, 0.0])    # error 0.1
    pred[0, NOSE] = torch.tensor([0.1, 0.0])     # moves with its parent: relative error 0
    return pred, target, vis


def test_kp2d_parent_relative_by_hand():
    pred, target, vis = _kp2d_case()
    assert kp2d_loss(pred, target, vis).item() == pytest.approx((0.5 + 0.1 + 0.0) / 3)
    assert kp2d_loss(pred, target, vis, parent_relative=False).item() == pytest.approx(0.7 / 3)


def test_kp2d_leaf_needs_visible_parent():
    pred, target, vis = _kp2d_case()
    vis[0, L_SHO] = False
    pred[0, NOSE] = torch.tensor([0.0, 0.2])
    # nose no longer supervised: only the pelvis counts
    assert kp2d_loss(pred, target, vis).item() == pytest.approx(0.5)


def test_kp2d_mean_over_people_and_masking():
    pred, target, vis = _kp2d_case()
    p2 = torch.full_like(pred, float("nan"))
    P = torch.cat([pred, p2, pred * 0]).requires_grad_()   # person 1: no visible joint, NaN
    T = torch.cat([target, target, target])
    V = torch.cat([vis, torch.zeros_like(vis), vis])
    loss = kp2d_loss(P.view(3, 1, 54, 2), T.view(3, 1, 54, 2), V.view(3, 1, 54))  # extra leading dim
    assert loss.item() == pytest.approx(0.6 / 3 / 2)
    loss.backward()
    assert torch.isfinite(P.grad).all() and (P.grad[1] == 0).all()


def test_kp2d_outlier_zeroes_the_term_like_romp():
    pred, target, vis = _kp2d_case()
    pred[0, PELVIS] = torch.tensor([3000.0, 4000.0])
    assert kp2d_loss(pred, target, vis).item() == 0
    assert kp2d_loss(pred, target, vis, zero_on_outlier=False).item() == pytest.approx((5000 + 0.1) / 3)


def test_kp2d_all_masked_zero_grad():
    p = torch.randn(2, 54, 2, requires_grad=True)
    loss = kp2d_loss(p, torch.zeros(2, 54, 2), torch.zeros(2, 54, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and (p.grad == 0).all()


def test_mpjpe_midhip_alignment_by_hand():
    target = torch.zeros(1, 54, 3, dtype=torch.float64)
    pred = target.clone()
    pred[0, 45, 0] = 0.2   # R_Hip moved: the root moves by 0.1, every joint is off by 0.1
    vis = torch.ones(1, 54, dtype=torch.bool)
    assert mpjpe_loss(pred, target, vis).item() == pytest.approx(0.1)
    # a global translation of the prediction costs nothing
    assert mpjpe_loss(target + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), target, vis).item() == pytest.approx(0)
    # GT not root-centred but with valid hips is centred too
    assert mpjpe_loss(pred, target + 5, vis).item() == pytest.approx(0.1)


def test_mpjpe_masks_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 54, 3, generator=g, dtype=torch.float64)
    pred = torch.randn(3, 54, 3, generator=g, dtype=torch.float64).requires_grad_()
    vis = torch.rand(3, 54, generator=g) > 0.3
    vis[2] = False
    assert torch.autograd.gradcheck(lambda p: mpjpe_loss(p, target, vis), (pred,))
    loss = mpjpe_loss(pred, target, vis)
    loss.backward()
    assert (pred.grad[2] == 0).all()
    p0 = torch.randn(2, 54, 3, requires_grad=True)
    z = mpjpe_loss(p0, torch.zeros(2, 54, 3), torch.zeros(2, 54, dtype=torch.bool))
    z.backward()
    assert z.item() == 0 and (p0.grad == 0).all()


def _rot(a):
    c, s = torch.cos(torch.tensor(a, dtype=torch.float64)), torch.sin(torch.tensor(a, dtype=torch.float64))
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def test_pampjpe_similarity_invariant_and_rule_options():
    g = torch.Generator().manual_seed(3)
    target = torch.randn(2, 54, 3, generator=g, dtype=torch.float64)
    pred = 1.7 * target @ _rot(0.4).T + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    vis = torch.ones(2, 54, dtype=torch.bool)
    assert pampjpe_loss(pred, target, vis).item() == pytest.approx(0, abs=1e-9)
    # person 0 sees joints 0..29, person 1 joints 20..53; noise on joints 0..9 of person 1 only
    vis = torch.zeros(2, 54, dtype=torch.bool)
    vis[0, :30], vis[1, 20:] = True, True
    noisy = pred.clone()
    noisy[1, :10] += 0.5
    own = pampjpe_loss(noisy, target, vis)
    assert own.item() == pytest.approx(0, abs=1e-9)   # the noisy joints are invisible for person 1
    inter = torch.zeros_like(vis)
    inter[:, 20:30] = True
    both = pampjpe_loss(noisy, target, vis, batch_intersection=True)
    assert both.item() == pytest.approx(pampjpe_loss(noisy, target, inter).item())
    noisy[0, 25] += 0.3   # inside the intersection: now the intersection rule sees an error
    assert pampjpe_loss(noisy, target, vis, batch_intersection=True).item() > 1e-3


def test_pampjpe_grad_and_masked_person():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(2, 54, 3, generator=g, dtype=torch.float64)
    pred = torch.randn(2, 54, 3, generator=g, dtype=torch.float64)
    pred[1] = float("nan")
    pred.requires_grad_()
    vis = torch.ones(2, 54, dtype=torch.bool)
    vis[1] = False
    loss = pampjpe_loss(pred, target, vis)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all() and (pred.grad[1] == 0).all()
    p = torch.randn(1, 54, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: pampjpe_loss(x, target[:1], vis[:1]), (p,))
