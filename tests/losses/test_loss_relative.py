import math

import pytest
import torch

from romp_fast.losses import age_loss, ordinal_depth_loss


def sp(x):
    return math.log(1 + math.exp(x))


def test_ordinal_depth_piecewise_by_hand():
    # image 0: layers [0, 1, 1], depths [2, 1, 3]
    #   (0,1): dd = -1, dl = 1 -> farther but predicted closer: gap -1.3 < 0 -> log(1 + e^1)
    #   (0,2): dd = +1, dl = 1 -> gap 0.7 > 0: satisfied, inactive
    #   (1,2): same layer -> dd^2 = 4
    # image 1: layers [1, 0], depths [1, 3]: (0,1) dd = 2, dl = -1, gap 2.3 > 0 -> log(1 + e^2)
    # image 2: a single person -> no pair, not counted
    z = torch.tensor([[2.0, 1.0, 3.0], [1.0, 3.0, 0.0], [5.0, 0.0, 0.0]], dtype=torch.float64)
    lay = torch.tensor([[0, 1, 1], [1, 0, 0], [2, 0, 0]])
    v = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    want = ((sp(1) + 4) / 2 + sp(2)) / 2
    assert ordinal_depth_loss(z, lay, v).item() == pytest.approx(want)
    # BEV's "Log" variant: no gating, so (0,2) adds log(1 + e^-1)
    want_log = ((sp(1) + sp(-1) + 4) / 3 + sp(2)) / 2
    assert ordinal_depth_loss(z, lay, v, piecewise=False).item() == pytest.approx(want_log)


def test_ordinal_depth_margin_scales_with_layer_gap():
    # j two layers farther by only 0.5 m: needs 0.6 m, so active with log(1 + e^-0.5)
    z = torch.tensor([[1.0, 1.5]], dtype=torch.float64)
    lay = torch.tensor([[0, 2]])
    v = torch.ones(1, 2, dtype=torch.bool)
    assert ordinal_depth_loss(z, lay, v).item() == pytest.approx(sp(-0.5))
    z2 = torch.tensor([[1.0, 1.7]], dtype=torch.float64)
    assert ordinal_depth_loss(z2, lay, v).item() == 0


def test_ordinal_depth_masked_and_gradcheck():
    z = torch.tensor([[1.0, float("nan"), 2.0]], dtype=torch.float64, requires_grad=True)
    lay = torch.tensor([[0, 0, 0]])
    v = torch.tensor([[True, False, True]])
    loss = ordinal_depth_loss(z, lay, v)
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and torch.isfinite(z.grad).all() and z.grad[0, 1] == 0
    z0 = torch.randn(2, 3, requires_grad=True)
    l0 = ordinal_depth_loss(z0, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.bool))
    l0.backward()
    assert l0.item() == 0 and (z0.grad == 0).all()
    x = torch.tensor([[1.0, 1.2, 4.0, 0.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: ordinal_depth_loss(t, torch.tensor([[0, 1, 1, 3]]), torch.ones(1, 4, dtype=torch.bool)), (x,))


def test_age_loss_bins_by_hand():
    # adult 0.1 -> 0.01; teen 0.5 > 0.45 -> (0.5 - 0.3)^2; child 0.5 in (0.45, 0.75] -> 0;
    # baby 0.8 in (0.75, 1] -> 0; teen 0.15 <= low 0.15 -> (0.15 - 0.3)^2; child 0.45 <= 0.45 -> 0.15^2
    o = torch.tensor([0.1, 0.5, 0.5, 0.8, 0.15, 0.45], dtype=torch.float64)
    cls = torch.tensor([0, 1, 2, 3, 1, 2])
    v = torch.ones(6, dtype=torch.bool)
    want = (0.01 + 0.04 + 0 + 0 + 0.0225 + 0.0225) / 6
    assert age_loss(o, cls, v).item() == pytest.approx(want)
    # ROMP averages over all people, unlabelled ones counting as zeros
    pv = torch.ones(8, dtype=torch.bool)
    o8 = torch.cat([o, torch.tensor([5.0, float("nan")], dtype=torch.float64)])
    c8 = torch.cat([cls, torch.tensor([0, 0])])
    v8 = torch.cat([v, torch.tensor([False, False])])
    assert age_loss(o8, c8, v8, person_valid=pv).item() == pytest.approx(want * 6 / 8)


def test_age_loss_offset_term_and_masks():
    o = torch.tensor([0.2, 0.6, float("nan")], dtype=torch.float64, requires_grad=True)
    cls = torch.tensor([1, 2, 0])
    v = torch.tensor([True, True, False])
    tgt = torch.tensor([0.3, 0.5, 0.0], dtype=torch.float64)
    ov = torch.tensor([True, True, False])
    loss = age_loss(o, cls, v, offset_target=tgt, offset_valid=ov)
    assert loss.item() == pytest.approx(0 + 2 * (0.01 + 0.01) / 2)
    loss.backward()
    assert torch.isfinite(o.grad).all() and o.grad[2] == 0
    z = torch.randn(4, requires_grad=True)
    l0 = age_loss(z, torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.bool))
    l0.backward()
    assert l0.item() == 0 and (z.grad == 0).all()
