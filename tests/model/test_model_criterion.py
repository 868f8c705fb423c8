import warnings

import numpy as np
import pytest
import torch

from romp_fast.data import SyntheticScenes, batch_center_heatmaps, collate
from romp_fast.losses import (PRESETS, GMMPosePrior, cam_loss, centermap_focal_loss, gmm_prior_loss, kp2d_loss,
                              mpjpe_loss, pampjpe_loss, pose_loss, shape_loss)
from romp_fast.model import RompCriterion, build_model

ROMP_TERMS = ("CenterMap", "P_KP2D", "MPJPE", "PAMPJPE", "Pose", "Shape")


@pytest.fixture
def model(small_cfg, body):
    torch.manual_seed(0)
    return build_model(small_cfg, body_model=body)


def _direct_terms(maps, parsed, batch):
    """Every term by a direct call, GT gathered person by person."""
    idx = list(zip(parsed["batch_index"].tolist(), parsed["person_index"].tolist()))
    g = {k: torch.stack([batch[k][b, p] for b, p in idx]) for k in
         ("kp2d", "kp2d_valid", "kp3d", "kp3d_valid", "pose", "pose_valid", "betas", "betas_valid", "cam", "cam_valid")}
    hm = batch_center_heatmaps(batch, maps["center_map"].shape[-1])
    return {
        "CenterMap": centermap_focal_loss(maps["center_map"], hm, batch["all_annotated"]),
        "P_KP2D": kp2d_loss(parsed["kp2d"], g["kp2d"], g["kp2d_valid"]),
        "MPJPE": mpjpe_loss(parsed["kp3d"], g["kp3d"], g["kp3d_valid"]),
        "PAMPJPE": pampjpe_loss(parsed["kp3d"], g["kp3d"], g["kp3d_valid"]),
        "Pose": pose_loss(parsed["pose"], g["pose"], g["pose_valid"]),
        "Shape": shape_loss(parsed["betas"], g["betas"], g["betas_valid"]),
        "Cam": cam_loss(parsed["cam"], g["cam"], g["cam_valid"]),
    }


@pytest.mark.parametrize("preset", ["romp", "bev"])
def test_criterion_equals_direct_calls(preset, model, batch4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Prior off / BEV's 3D and relative terms left out
        crit = RompCriterion(preset)
    maps = model(batch4["image"])
    parsed = model.parse_train(maps, batch4)
    total, logs = crit(maps, parsed, batch4)
    direct = _direct_terms(maps, parsed, batch4)
    expected_terms = ROMP_TERMS + (("Cam",) if preset == "bev" else ())
    assert set(crit.active_terms()) == set(expected_terms)
    manual = 0.0
    for name in expected_terms:
        v = PRESETS[preset][name] * direct[name].item()
        v = min(v, 1000.0)  # ROMP's per-term cap
        key = [k for k in logs if k.endswith("/" + name)]
        assert len(key) == 1, name
        assert logs[key[0]].item() == pytest.approx(v, rel=1e-4), name
        manual += v
    assert total.item() == pytest.approx(manual, rel=1e-4)
    assert "regression/Prior" not in logs and "regression/Cam" in logs if preset == "bev" else True
    # precomputed GT heatmaps (e.g. from a loader worker) give the same value
    pre = dict(batch4, center_heatmap=batch_center_heatmaps(batch4, maps["center_map"].shape[-1]))
    assert crit(maps, parsed, pre)[0].item() == pytest.approx(total.item(), rel=1e-6)


def test_prior_off_without_gmm_says_so_once():
    RompCriterion._warned.clear()
    with pytest.warns(UserWarning, match="Prior term is off"):
        crit = RompCriterion("romp")
    assert "Prior" not in crit.active_terms()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RompCriterion("romp")  # second time: silent


def test_prior_with_gmm_file(tmp_path, model, batch4):
    K, D = 2, 69
    np.savez(tmp_path / "gmm.npz", means=np.full((K, D), 0.5), weights=np.array([0.3, 0.7]),
             covars=np.stack([np.eye(D) * 1e-2, np.eye(D) * 2e-2]))
    crit = RompCriterion("romp", gmm_path=tmp_path / "gmm.npz")
    assert "Prior" in crit.active_terms()
    maps = model(batch4["image"])
    parsed = model.parse_train(maps, batch4)
    _, logs = crit(maps, parsed, batch4)
    ref = gmm_prior_loss(parsed["pose"][:, 3:], GMMPosePrior(tmp_path / "gmm.npz"))
    assert ref.item() > 5  # above ROMP's threshold, so the term is really on
    assert logs["regression/Prior"].item() == pytest.approx(min(1.6 * ref.item(), 1000.0), rel=1e-5)


def test_unsupported_weights_rejected():
    with pytest.raises(ValueError, match="computes only"):
        RompCriterion("romp", weights={"R_Depth": 1.0})
    with pytest.raises(KeyError, match="valid terms"):
        RompCriterion("romp", weights={"Bogus": 1.0})


def test_gradients_reach_every_head_and_the_backbone(model, batch4):
    crit = RompCriterion("romp", weights={"Prior": 0.0})
    maps = model(batch4["image"])
    total, _ = crit(maps, model.parse_train(maps, batch4), batch4)
    total.backward()
    for name, mod in [("center", model.heads.center), ("cam", model.heads.cam), ("params", model.heads.params),
                      ("neck", model.neck), ("backbone", model.backbone)]:
        grads = [p.grad for p in mod.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    for name in ("center", "cam", "params"):
        assert getattr(model.heads, name).final.weight.grad.abs().sum() > 0, name


def test_batch_without_people(model, batch4):
    crit = RompCriterion("romp", weights={"Prior": 0.0})
    empty = dict(batch4)
    for k in ("centers_valid", "person_valid"):
        empty[k] = torch.zeros_like(batch4[k])
    maps = model(batch4["image"])
    parsed = model.parse_train(maps, empty)
    assert parsed["kp3d"].shape == (0, 54, 3)
    total, logs = crit(maps, parsed, empty)
    assert torch.isfinite(total)
    total.backward()
    # every head stays in the graph (zero gradients, not None), as ROMP's dummy sample ensures for DDP
    assert all(p.grad is not None for p in model.parameters())


def test_overfit_two_images(body, small_cfg):
    """20 Adam steps on two synthetic images: the total loss drops clearly."""
    ds = SyntheticScenes(2, image_size=128, max_person=4, seed=11, body_model=body)
    batch = collate([ds[0], ds[1]])
    torch.manual_seed(0)
    model = build_model({**small_cfg, "width": 16, "head_channels": 32}, body_model=body)
    crit = RompCriterion("romp", weights={"Prior": 0.0})
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    hist = []
    for _ in range(20):
        maps = model(batch["image"])
        total, logs = crit(maps, model.parse_train(maps, batch, with_verts=False), batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        hist.append(total.item())
    assert all(np.isfinite(hist))
    assert np.mean(hist[-3:]) < 0.5 * np.mean(hist[:3]), hist


def test_model_and_criterion_on_device(device, small_cfg, batch4):
    from romp_fast.body import BodyModel

    model = build_model(small_cfg, body_model=BodyModel()).to(device)
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch4.items()}
    crit = RompCriterion("bev", weights={"Prior": 0.0, "CenterMap_3D": 0.0, "R_Age": 0.0, "R_Depth": 0.0})
    maps = model(batch["image"])
    assert all(v.device.type == device.type for v in maps.values())
    parsed = model.parse_train(maps, batch)
    total, logs = crit(maps, parsed, batch)
    assert total.device.type == device.type and torch.isfinite(total)
    total.backward()
    det = model.eval().parse_infer(model(batch["image"]))
    assert det["counts"].device.type == device.type
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            maps = model.train()(batch["image"])
            total, _ = crit(maps, model.parse_train(maps, batch), batch)
        assert torch.isfinite(total)
