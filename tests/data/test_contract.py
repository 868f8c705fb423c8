import pytest
import torch

from romp_fast.data.contract import KEYS, SampleError, collate, empty_sample, validate_sample


def test_synthetic_sample_passes(scenes):
    s = scenes[0]
    validate_sample(s, max_person=6)
    assert set(KEYS) <= set(s)


def test_empty_sample_passes():
    validate_sample(empty_sample(3, (32, 48)), max_person=3)


@pytest.mark.parametrize("key, bad, msg", [
    ("kp2d", torch.zeros(6, 17, 2), r"kp2d must be \[6, 54, 2\] .* got \[6, 17, 2\]"),
    ("pose", torch.zeros(5, 72), r"pose must be \[6, 72\] .* got \[5, 72\]"),
    ("image", torch.zeros(128, 128, 3), r"image must be \[3, H, W\], got \[128, 128, 3\]"),
    ("betas", torch.zeros(6, 10, dtype=torch.float64), r"betas must have dtype torch.float32, got torch.float64"),
    ("person_valid", torch.zeros(6, dtype=torch.uint8), r"person_valid must have dtype torch.bool"),
    ("frame_index", 3, r"frame_index must be a torch.Tensor, got int"),
])
def test_shape_and_dtype_errors_name_the_key(scenes, key, bad, msg):
    s = dict(scenes[0])
    s[key] = bad
    with pytest.raises(SampleError, match=msg):
        validate_sample(s)


def test_missing_key():
    s = empty_sample(2, (8, 8))
    del s["cam_valid"]
    with pytest.raises(SampleError, match=r"missing keys \['cam_valid'\]"):
        validate_sample(s)


def test_wrong_max_person(scenes):
    with pytest.raises(SampleError, match=r"kp2d must be \[4, 54, 2\]"):
        validate_sample(scenes[0], max_person=4)


def test_value_errors(scenes):
    s = dict(scenes[0])
    s["image"] = s["image"] * 2
    with pytest.raises(SampleError, match=r"image values must be finite and in \[0, 1\]"):
        validate_sample(s)
    s = dict(scenes[0])
    pv = s["person_valid"].clone()
    last = int(pv.nonzero().max())
    s["pose_valid"] = pv.clone()
    s["person_valid"] = pv.clone()
    s["person_valid"][last] = False
    s["kp2d_valid"] = s["kp2d_valid"] & s["person_valid"][:, None]
    with pytest.raises(SampleError, match=r"_valid is True for a slot where person_valid is False"):
        validate_sample(s)
    s = dict(scenes[0])
    s["kp2d"] = s["kp2d"].clone()
    j = s["kp2d_valid"].nonzero()[0]
    s["kp2d"][j[0], j[1], 0] = 1.5
    with pytest.raises(SampleError, match=r"kp2d has valid entries outside \[-1, 1\]"):
        validate_sample(s)
    s = dict(scenes[0])
    s["trans"] = s["trans"].clone()
    s["trans"][0, 0] = float("nan")
    with pytest.raises(SampleError, match="trans has non-finite values"):
        validate_sample(s)


def test_collate_and_dataloader(scenes):
    loader = torch.utils.data.DataLoader(scenes, batch_size=3, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, 128, 128)
    assert batch["kp2d"].shape == (3, 6, 54, 2)
    assert batch["all_annotated"].shape == (3,)
    for i in range(3):
        assert torch.equal(batch["kp3d"][i], scenes[i]["kp3d"])


def test_collate_rejects_mixed_shapes():
    with pytest.raises(SampleError, match="cannot collate image"):
        collate([empty_sample(2, (8, 8)), empty_sample(2, (8, 9))])
