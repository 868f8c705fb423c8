import pytest
import torch

from romp_fast.body import joints as J
from romp_fast.data import geometry as G
from romp_fast.data.augment import Augment, Augmented, color_jitter, hflip, rotate, scale_crop
from romp_fast.data.contract import validate_sample
from romp_fast.data.synthetic import SyntheticScenes


def _equal(a, b):
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _reprojects(s):
    """2D joints equal the projection of kp3d + trans through camK (independent pinhole formula)."""
    n = int(s["person_valid"].sum())
    K = s["camK"].double()
    H, W = s["image"].shape[-2:]
    X = (s["kp3d"][:n] + s["trans"][:n, None]).double()
    u = K[0, 0] * X[..., 0] / X[..., 2] + K[0, 2]
    v = K[1, 1] * X[..., 1] / X[..., 2] + K[1, 2]
    ref = torch.stack([2 * u / W - 1, 2 * v / H - 1], -1)
    m = s["kp2d_valid"][:n]
    assert m.any()
    torch.testing.assert_close(s["kp2d"][:n][m].double(), ref[m], atol=2e-5, rtol=0)
    assert ((ref.abs() <= 1).all(-1) | ~m).all()


def test_flip_twice_is_identity(scenes):
    for i in range(4):
        s = scenes[i]
        f = hflip(s)
        assert not torch.equal(f["image"], s["image"])
        _equal(hflip(f), s)


def test_flip_matches_mirrored_body(scenes, body):
    s = scenes[2]
    f = hflip(s)
    validate_sample(f)
    _reprojects(f)
    n = int(s["person_valid"].sum())
    # independent: the body model driven by the flipped pose gives the flipped 3D joints
    out = body(f["pose"][:n], f["betas"][:n])
    j = out.joints54 - out.joints54[:, list(J.ROOT_54)].mean(1, keepdim=True)
    torch.testing.assert_close(f["kp3d"][:n], j, atol=1e-5, rtol=0)
    # the left wrist of the flipped sample is where the right wrist was, mirrored
    lw, rw = J.index("smpl54", "L_Wrist", "R_Wrist")
    assert torch.equal(f["kp3d"][:n, lw, 0], -s["kp3d"][:n, rw, 0])
    assert torch.equal(f["image"], s["image"].flip(-1))


def test_rotate_keeps_2d_3d_consistent(scenes, body):
    s = scenes[1]
    r = rotate(s, 25.0)
    validate_sample(r)
    _reprojects(r)
    n = int(s["person_valid"].sum())
    out = body(r["pose"][:n], r["betas"][:n])
    j = out.joints54 - out.joints54[:, list(J.ROOT_54)].mean(1, keepdim=True)
    torch.testing.assert_close(r["kp3d"][:n], j, atol=1e-4, rtol=0)
    back = rotate(r, -25.0)
    torch.testing.assert_close(back["kp3d"], s["kp3d"], atol=1e-5, rtol=0)
    torch.testing.assert_close(back["pose"], s["pose"], atol=1e-4, rtol=0)


def test_scale_crop_keeps_2d_3d_consistent(scenes):
    s = scenes[4]
    W = s["image"].shape[-1]
    c = G.to_pixels(s["centers"][0], W, W).tolist()
    z = scale_crop(s, 1.8, tuple(c))
    validate_sample(z)
    _reprojects(z)
    torch.testing.assert_close(z["centers"][0], torch.zeros(2), atol=0.05, rtol=0)
    assert torch.equal(z["kp3d"], s["kp3d"]) and torch.equal(z["pose"], s["pose"])
    assert z["camK"][0, 0] == pytest.approx(1.8 * s["camK"][0, 0].item())


def _dot_image(x, y, size=32):
    s = SyntheticScenes(1, image_size=size, max_person=1)[0]
    s["image"] = torch.zeros(3, size, size)
    s["image"][:, y, x] = 1.0
    return s


@pytest.mark.parametrize("op", ["rotate90", "crop2"])
def test_image_moves_with_keypoints(op):
    # a single lit pixel must land where the 2D transform sends its centre
    s = _dot_image(20, 9)
    src = G.to_norm(torch.tensor([[20.5, 9.5]]), 32, 32)
    s["kp2d"][0, 0] = src[0]
    s["kp2d_valid"][0, 0] = True
    out = rotate(s, 90.0) if op == "rotate90" else scale_crop(s, 2.0, (18.0, 10.0))
    # rotate 90 about (16, 16): (x, y) -> (16 - (y - 16), 16 + (x - 16)) = (22.5, 20.5)
    # crop x2 about (18, 10): (x, y) -> 16 + 2 (x - 18, y - 10) = (21, 15)
    want = (22.5, 20.5) if op == "rotate90" else (21.0, 15.0)
    got = G.to_pixels(out["kp2d"][0, 0], 32, 32).tolist()
    assert got == pytest.approx(want, abs=1e-4)
    img = out["image"][0]
    yy, xx = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    centroid = ((img * xx).sum() / img.sum(), (img * yy).sum() / img.sum())
    assert centroid[0].item() == pytest.approx(want[0], abs=0.05)
    assert centroid[1].item() == pytest.approx(want[1], abs=0.05)


def test_color_jitter():
    s = _dot_image(3, 3, 8)
    s["image"] = torch.full((3, 8, 8), 0.5)
    s["image"][0] = 0.8
    _equal(color_jitter(s), s)
    half = color_jitter(s, brightness=0.5)["image"]
    torch.testing.assert_close(half, s["image"] * 0.5)
    grey = color_jitter(s, saturation=0.0)["image"]
    torch.testing.assert_close(grey[0], grey[1])  # no saturation left: r == g == b
    assert grey[0, 0, 0].item() == pytest.approx(0.299 * 0.8 + 0.701 * 0.5, abs=1e-6)


def test_augmented_dataset_is_seeded_and_valid():
    base = SyntheticScenes(4, image_size=64, max_person=4, seed=1)
    aug = Augmented(base, Augment(flip_prob=0.5, rotate_prob=0.5, crop_prob=0.5, color_prob=0.5), seed=3)
    a = aug[2]
    _equal(a, aug[2])
    validate_sample(a)
    aug.set_epoch(1)
    assert any(not torch.equal(aug[i]["image"], a["image"]) for i in [2])


def test_clip_flip():
    c = SyntheticScenes(1, image_size=64, max_person=3, clip_length=3)[0]
    f = hflip(c)
    validate_sample(f, clip_length=3)
    _equal(hflip(f), c)
    assert torch.equal(f["track_id"], c["track_id"])
