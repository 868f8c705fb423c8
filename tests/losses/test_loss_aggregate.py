import pytest
import torch

from romp_fast.losses import GROUPS, PRESETS, TERMS, LossComputer


def test_presets_carry_published_weights():
    # configs/v1.yml, configs/v6_train.yml, trace/configs/trace.yml (romp_protocols.md 3.9)
    r, b, t = PRESETS["romp"], PRESETS["bev"], PRESETS["trace"]
    assert (r["MPJPE"], r["PAMPJPE"], r["P_KP2D"], r["Pose"], r["Shape"], r["Prior"], r["CenterMap"]) == (
        200, 360, 400, 80, 6, 1.6, 160)
    assert r["Cam"] == 0 and r["CenterMap_3D"] == 0 and r["R_Depth"] == 0
    assert (b["Shape"], b["CenterMap"], b["CenterMap_3D"], b["Cam"], b["R_Age"], b["R_Depth"]) == (
        60, 100, 1000, 200, 4000, 400)
    assert (t["MPJPE"], t["PAMPJPE"], t["P_KP2D"], t["CenterMap"], t["CenterMap_3D"], t["Cam"]) == (
        300, 260, 600, 200, 300, 100)
    assert (t["motion_offsets3D"], t["temp_shape_consist"], t["world_grots"], t["wrotsL2"],
            t["world_trans"], t["world_pj2D"]) == (300, 5, 40, 80, 400, 80)
    assert t["Prior"] == 0 and t["R_Age"] == 0   # listed in trace.yml but disabled
    for p in PRESETS.values():
        assert set(p) == set(TERMS)
    assert sorted(TERMS) == sorted(x for g in GROUPS.values() for x in g)


def test_weighted_sum_and_logs():
    a = torch.tensor(0.5, requires_grad=True)
    b = torch.tensor([1.0, 3.0], requires_grad=True)   # non-scalar terms are averaged (ROMP .mean())
    lc = LossComputer("romp")
    total, logs = lc({"MPJPE": a, "CenterMap": b, "Cam": torch.tensor(7.0)})   # Cam weight 0 in ROMP
    assert total.item() == pytest.approx(0.5 * 200 + 2.0 * 160)
    total.backward()
    assert a.grad.item() == pytest.approx(200) and b.grad.tolist() == pytest.approx([80, 80])
    assert logs["regression/MPJPE"].item() == pytest.approx(100)
    assert logs["detection/CenterMap"].item() == pytest.approx(320)
    assert logs["regression"].item() == pytest.approx(100) and logs["detection"].item() == pytest.approx(320)
    assert logs["total"].item() == pytest.approx(420)
    assert "regression/Cam" not in logs and "relative" not in logs
    assert logs["nan_skipped"] == 0 and logs["capped"] == 0
    assert not any(isinstance(v, torch.Tensor) and v.requires_grad for v in logs.values())


def test_nan_term_is_skipped_and_counted():
    a = torch.tensor(0.5, requires_grad=True)
    lc = LossComputer("bev")
    total, logs = lc({"MPJPE": a, "R_Depth": torch.tensor(float("nan"), requires_grad=True), "P_KP2D": 0})
    assert total.item() == pytest.approx(100)
    total.backward()
    assert a.grad.item() == pytest.approx(200)
    assert logs["nan_skipped"] == 1 and lc.nan_skipped == 1 and "relative/R_Depth" not in logs
    lc({"Shape": torch.tensor(float("nan"))})
    assert lc.nan_skipped == 2


def test_cap_scales_value_and_gradient_like_romp():
    x = torch.tensor(10.0, requires_grad=True)   # 10 * 400 = 4000 >= 1000 -> 1000, gradient / 4
    lc = LossComputer("romp")
    total, logs = lc({"P_KP2D": x})
    assert total.item() == pytest.approx(1000)
    total.backward()
    assert x.grad.item() == pytest.approx(400 / 4)
    assert logs["capped"] == 1 and logs["regression/P_KP2D"].item() == pytest.approx(1000)
    y = torch.tensor(2.0, requires_grad=True)
    tot2, logs2 = LossComputer("romp", cap=None)({"P_KP2D": y})
    assert tot2.item() == pytest.approx(800) and logs2["capped"] == 0
    tot3, _ = LossComputer("romp")({"P_KP2D": torch.tensor(2.4)})   # 960 < 1000: untouched
    assert tot3.item() == pytest.approx(960)
    inf = torch.tensor(float("inf"), requires_grad=True)
    tot4, logs4 = LossComputer("romp")({"P_KP2D": inf, "Pose": torch.tensor(1.0)})
    assert tot4.item() == pytest.approx(80) and logs4["nan_skipped"] == 1   # non-finite: skipped


def test_weight_overrides_and_errors():
    lc = LossComputer("trace", weights={"temp_velocity": 3.0, "MPJPE": 0})
    assert lc.weights["temp_velocity"] == 3 and lc.weights["MPJPE"] == 0 and lc.weights["PAMPJPE"] == 260
    assert "temp_velocity" in lc.active_terms() and "MPJPE" not in lc.active_terms()
    total, _ = lc({"temp_velocity": torch.tensor(2.0), "MPJPE": torch.tensor(float("nan"))})
    assert total.item() == pytest.approx(6)
    with pytest.raises(KeyError, match=r"unknown loss term\(s\) \['MPJPEE'\].*valid terms: \['CenterMap'"):
        LossComputer("romp", weights={"MPJPEE": 1.0})
    with pytest.raises(KeyError, match="unknown loss term.*'foo'"):
        LossComputer("romp")({"foo": torch.tensor(1.0)})
    with pytest.raises(KeyError, match="valid presets"):
        LossComputer("hmr")
    with pytest.raises(ValueError, match=">= 0"):
        LossComputer("romp", weights={"Pose": -1.0})


def test_empty_terms_give_zero_total():
    total, logs = LossComputer("romp")({})
    assert total.item() == 0 and logs["total"].item() == 0
