import pytest
import torch

from romp_fast.model import DEPTHS, MODEL_DEFAULTS, PARAM_CHANNELS, ResNet, build_model, load_pretrained


@pytest.mark.parametrize("depth", [10, 18, 34, 50])
def test_backbone_stage_shapes(depth):
    net = ResNet(depth, width=8).eval()
    feats = net(torch.rand(2, 3, 64, 96))
    exp = 4 if DEPTHS[depth][0] == "bottleneck" else 1
    assert net.channels == tuple(8 * 2 ** i * exp for i in range(4))
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // s, 96 // s) for c, s in zip(net.channels, (4, 8, 16, 32))]


def test_backbone_block_counts():
    # ResNet paper table 1: 18 / 34 / 50 layers = stem + 2 or 3 convs per block + fc
    for depth in (18, 34, 50, 101):
        net = ResNet(depth, width=4)
        convs = sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1) or
                    (isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and "downsample" not in n)
                    for n, m in net.named_modules())
        assert convs + 1 == depth
    with pytest.raises(ValueError, match="one of"):
        ResNet(42)


@pytest.mark.parametrize("depth", [10, 18, 34, 50])
def test_model_output_shapes(depth, body):
    cfg = {"backbone_depth": depth, "width": 8, "head_channels": 16, "input_size": 64, "map_size": 16}
    model = build_model(cfg, body_model=body)
    maps = model(torch.rand(2, 3, 64, 64))
    assert maps["center_map"].shape == (2, 1, 16, 16)
    assert maps["cam_map"].shape == (2, 3, 16, 16)
    assert maps["params_map"].shape == (2, PARAM_CHANNELS, 16, 16)
    c = maps["center_map"]
    assert ((c > 0) & (c < 1)).all() and (maps["cam_map"][:, 0] > 0).all()


@pytest.mark.parametrize("map_size", [32, 16, 8, 4])
def test_output_stride(map_size, body):
    model = build_model({"width": 8, "head_channels": 16, "map_size": map_size}, body_model=body)
    assert model(torch.rand(1, 3, 128, 128))["center_map"].shape[-1] == map_size


def test_initial_output_is_mean_person(body):
    """Heads start at the mean: centre 0.1, cam scale init_cam_scale, upright rest pose, zero betas,
    (ty, tx) at the cell's own coordinates."""
    model = build_model({"width": 8, "head_channels": 16}, body_model=body).eval()
    maps = model(torch.rand(2, 3, 128, 128))
    assert torch.allclose(maps["center_map"], torch.tensor(0.1), atol=0.02)
    assert torch.allclose(maps["cam_map"][:, 0], torch.tensor(0.3), rtol=0.02)
    S = 32
    x = (torch.arange(S) + 0.5) * 2 / S - 1
    assert torch.allclose(maps["cam_map"][:, 2], x[None, None].expand(2, S, S), atol=0.02)
    assert torch.allclose(maps["cam_map"][:, 1], x[None, :, None].expand(2, S, S), atol=0.02)
    p = maps["params_map"]
    assert torch.allclose(p[:, :6], torch.tensor([1., 0, 0, -1, 0, 0])[None, :, None, None], atol=0.02)
    assert torch.allclose(p[:, 6:12], torch.tensor([1., 0, 0, 1, 0, 0])[None, :, None, None], atol=0.02)
    assert p[:, 132:].abs().max() < 0.02


def test_build_model_config_errors(body):
    with pytest.raises(KeyError, match="valid keys"):
        build_model({"depth": 50}, body_model=body)
    with pytest.raises(ValueError, match="input_size"):
        build_model({"input_size": 128, "map_size": 64}, body_model=body)
    with pytest.raises(ValueError, match="projection"):
        build_model({"projection": "ortho"}, body_model=body)
    assert {"backbone_depth", "width", "input_size", "map_size", "head_channels", "projection", "fov_deg",
            "top_k", "conf_thresh", "nms_kernel", "pretrained", "smpl_path"} <= set(MODEL_DEFAULTS)


def test_body_model_follows_to_but_not_state_dict(body):
    from romp_fast.body import BodyModel

    model = build_model({"width": 8, "head_channels": 16}, body_model=BodyModel())
    assert not any("smpl" in k or "regressor" in k for k in model.state_dict())
    assert not any("pixel_" in k for k in model.state_dict())
    model.double()
    assert model.body_model.dtype == torch.float64
    assert model.body_model.extra_regressor.dtype == torch.float64


def test_load_pretrained_roundtrip(tmp_path):
    src = ResNet(18, width=8)
    for p in src.parameters():
        torch.nn.init.normal_(p)
    sd = {"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}
    sd["state_dict"]["module.fc.weight"] = torch.zeros(10, 64)
    torch.save(sd, tmp_path / "r18.pth")
    dst = ResNet(18, width=8)
    assert load_pretrained(dst, tmp_path / "r18.pth") == []
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    with pytest.raises(ValueError, match="shape"):
        load_pretrained(ResNet(18, width=16), tmp_path / "r18.pth")
    with pytest.raises(FileNotFoundError):
        load_pretrained(dst, tmp_path / "missing.pth")
