import pytest
import torch

from romp_fast.model import (PARAM_CHANNELS, build_model, center_nms, match_nearest_peaks, perspective_project, top_peaks,
                             weak_perspective_project)
from romp_fast.model.parser import centers_to_cells, gather_cells


def _hand_map():
    """8 x 8 map: 0.9 at (y1, x1), 0.8 at (1, 2) and 0.5 at (3, 3) inside its 5x5 window,
    0.3 at (6, 1) outside every higher cell's window, 0.7 at (6, 6)."""
    h = torch.zeros(1, 1, 8, 8)
    for (y, x), v in {(1, 1): 0.9, (1, 2): 0.8, (3, 3): 0.5, (6, 1): 0.3, (6, 6): 0.7}.items():
        h[0, 0, y, x] = v
    return h


def test_center_nms_hand_built():
    kept = center_nms(_hand_map(), 5)[0, 0]
    nz = {tuple(i.tolist()): round(kept[tuple(i)].item(), 3) for i in kept.nonzero()}
    assert nz == {(1, 1): 0.9, (6, 1): 0.3, (6, 6): 0.7}
    # max-pool NMS: a suppressed cell still suppresses its own neighbours ((3, 3) hides (5, 1))
    h = _hand_map()
    h[0, 0, 5, 1] = 0.3
    assert center_nms(h, 5)[0, 0, 5, 1] == 0
    # a 3x3 window keeps (3, 3): it is 2 cells from (1, 1)
    assert center_nms(_hand_map(), 3)[0, 0, 3, 3] == 0.5
    with pytest.raises(ValueError, match="odd"):
        center_nms(_hand_map(), 4)


def test_top_peaks_hand_built():
    h = torch.cat([_hand_map(), torch.zeros(1, 1, 8, 8)])
    h[1, 0, 7, 0] = 0.6
    scores, cells = top_peaks(h, 3, 5)
    assert torch.allclose(scores[0], torch.tensor([0.9, 0.7, 0.3]))
    assert cells[0].tolist() == [1 * 8 + 1, 6 * 8 + 6, 6 * 8 + 1]
    assert scores[1, 0] == pytest.approx(0.6) and cells[1, 0] == 7 * 8 + 0
    assert (scores[1, 1:] == 0).all()
    assert top_peaks(h, 100, 5)[0].shape == (2, 64)  # k capped at S * S


def test_centers_to_cells():
    c = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [0.99, -0.5], [1.0, 1.0]])
    assert centers_to_cells(c, 8).tolist() == [[0, 0], [4, 4], [7, 2], [7, 7]]


def test_match_nearest_peaks_hand_computed():
    S = 16
    # image 0 peaks: A (x2, y2), B (x10, y3), a low one (x3, y3) that is not valid;
    # image 1: C (x5, y5) valid, D (x0, y1) invalid; image 2: no valid peak
    cell = lambda x, y: y * S + x  # noqa: E731
    peak_cells = torch.tensor([[cell(2, 2), cell(10, 3), cell(3, 3)],
                               [cell(5, 5), cell(0, 1), 0],
                               [cell(1, 1), 0, 0]])
    valid = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    gt = torch.tensor([[3, 2], [2, 4], [9, 9], [0, 0], [7, 8]])
    gb = torch.tensor([0, 0, 0, 1, 2])
    got, matched = match_nearest_peaks(gt, gb, peak_cells, valid, S)
    # GT0 (3,2): A at 1 vs B at sqrt(50) -> A. GT1 (2,4): A at 2 -> A (shares A with GT0).
    # GT2 (9,9): A sqrt(98), B sqrt(37) -> B. GT3 (0,0): only C is valid (D is nearer but invalid).
    # GT4: image 2 has no valid peak -> its own cell.
    assert got.tolist() == [cell(2, 2), cell(2, 2), cell(10, 3), cell(5, 5), cell(7, 8)]
    assert matched.tolist() == [True, True, True, True, False]


def test_match_tie_goes_to_higher_score():
    S = 8
    peaks = torch.tensor([[2 * S + 4, 2 * S + 2]])  # (4,2) scored higher than (2,2)
    got, _ = match_nearest_peaks(torch.tensor([[3, 2]]), torch.tensor([0]), peaks, torch.ones(1, 2, dtype=torch.bool), S)
    assert got.item() == 2 * S + 4


def test_gather_cells():
    m = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = gather_cells(m, torch.tensor([1, 0]), torch.tensor([5, 15]))
    assert torch.equal(out, torch.stack([m[1, :, 1, 1], m[0, :, 3, 3]]))


def _coded_maps(S, centers, B=2):
    """Maps whose betas[0] holds the image index and betas[1] the flat cell, so the parser's
    choice of cell can be read back from its output."""
    center = torch.zeros(B, 1, S, S)
    for (b, y, x), v in centers.items():
        center[b, 0, y, x] = v
    cam = torch.zeros(B, 3, S, S)
    cam[:, 0] = 0.4
    cam[:, 1] = torch.linspace(-0.5, 0.5, S)[:, None]
    cam[:, 2] = torch.linspace(-0.5, 0.5, S)[None]
    params = torch.zeros(B, PARAM_CHANNELS, S, S)
    params[:, :6] = torch.tensor([1., 0, 0, -1, 0, 0])[:, None, None]
    params[:, 6:132] = torch.tensor([1., 0, 0, 1, 0, 0] * 21)[:, None, None]
    params[:, 6 + 5] = 0.3  # 6D R21 of the first body joint: a rotation of atan(0.3) about x
    params[:, 132] = torch.arange(B, dtype=torch.float32)[:, None, None]
    params[:, 133] = torch.arange(S * S, dtype=torch.float32).reshape(S, S)
    return {"center_map": center, "cam_map": cam, "params_map": params}


def test_parse_train_takes_nearest_peak(body):
    model = build_model({"width": 8, "head_channels": 16, "map_size": 8, "input_size": 64}, body_model=body)
    S = 8
    maps = _coded_maps(S, {(0, 1, 1): 0.9, (0, 6, 6): 0.8, (1, 3, 3): 0.1})  # image 1: below threshold
    P = 4
    batch = {"centers": torch.zeros(2, P, 2), "centers_valid": torch.zeros(2, P, dtype=torch.bool),
             "person_valid": torch.zeros(2, P, dtype=torch.bool)}
    to_norm = lambda x, y: torch.tensor([(x + 0.5) / S * 2 - 1, (y + 0.5) / S * 2 - 1])  # noqa: E731
    for b, p, (x, y) in [(0, 0, (2, 1)), (0, 2, (5, 7)), (0, 3, (1, 2)), (1, 1, (4, 2))]:
        batch["centers"][b, p] = to_norm(x, y)
        batch["centers_valid"][b, p] = batch["person_valid"][b, p] = True
    batch["person_valid"][1, 3] = True  # a person without a valid centre: not supervised
    out = model.parse_train(maps, batch)
    assert out["batch_index"].tolist() == [0, 0, 0, 1]
    assert out["person_index"].tolist() == [0, 2, 3, 1]
    assert out["cell"].tolist() == [1 * S + 1, 6 * S + 6, 1 * S + 1, 2 * S + 4]
    assert out["matched"].tolist() == [True, True, True, False]
    assert out["betas"][:, 0].tolist() == [0, 0, 0, 1]
    assert out["betas"][:, 1].tolist() == out["cell"].float().tolist()
    N = 4
    shapes = {"cam": (N, 3), "pose": (N, 72), "rotmats": (N, 24, 3, 3), "betas": (N, 10), "kp3d": (N, 54, 3),
              "verts": (N, 6890, 3), "kp2d": (N, 54, 2)}
    for k, s in shapes.items():
        assert tuple(out[k].shape) == s, k
    # decoding: rotations from 6D, axis-angle with zero hands, root-centred SMPL-54, projection
    ref = body(pose=out["rotmats"], betas=out["betas"], root_align=True)
    assert torch.allclose(out["kp3d"], ref.joints54, atol=1e-5)
    assert torch.allclose(out["kp3d"][:, [45, 46]].mean(1), torch.zeros(N, 3), atol=1e-5)
    assert torch.allclose(out["kp2d"], perspective_project(out["kp3d"], out["cam"]), atol=1e-6)
    assert (out["pose"][:, 66:] == 0).all()
    assert torch.allclose(out["pose"][:, 3:6], torch.tensor([0.2914568, 0, 0]).expand(N, 3), atol=1e-5)
    assert torch.allclose(out["pose"][:, :3], torch.tensor([3.1415927, 0, 0]).expand(N, 3), atol=1e-4)
    assert torch.allclose(body.pose_to_rotmats(out["pose"]), out["rotmats"], atol=1e-5)


def test_parse_infer_padded(body):
    model = build_model({"width": 8, "head_channels": 16, "map_size": 8, "input_size": 64, "top_k": 3}, body_model=body)
    S = 8
    maps = _coded_maps(S, {(0, 1, 1): 0.9, (0, 6, 6): 0.8, (0, 4, 2): 0.5, (0, 6, 1): 0.3, (1, 3, 3): 0.1})
    out = model.parse_infer(maps)
    assert out["counts"].tolist() == [3, 0]
    assert torch.allclose(out["scores"][0], torch.tensor([0.9, 0.8, 0.5]))  # top-3 of 4 peaks
    assert (out["scores"][1] == 0).all()
    cells = [1 * S + 1, 6 * S + 6, 4 * S + 2]
    assert out["betas"][0, :, 1].tolist() == cells
    exp_centers = torch.tensor([[1.5, 1.5], [6.5, 6.5], [2.5, 4.5]]) / S * 2 - 1
    assert torch.allclose(out["centers"][0], exp_centers)
    for k, s in {"cam": 3, "pose": 72, "betas": 10, "kp3d": (54, 3), "kp2d": (54, 2), "verts": (6890, 3)}.items():
        s = s if isinstance(s, tuple) else (s,)
        assert tuple(out[k].shape) == (2, 3) + s, k
        assert (out[k][1] == 0).all(), k
    assert torch.allclose(out["kp2d"][0], perspective_project(out["kp3d"][0], out["cam"][0]), atol=1e-6)
    assert "verts" not in model.parse_infer(maps, with_verts=False)
    weak = build_model({"width": 8, "head_channels": 16, "map_size": 8, "input_size": 64, "top_k": 3,
                        "projection": "weak"}, body_model=body).parse_infer(maps, with_verts=False)
    assert torch.allclose(weak["kp2d"][0], weak_perspective_project(out["kp3d"][0], out["cam"][0]), atol=1e-6)
    empty = model.parse_infer({k: v * 0 for k, v in maps.items()})
    assert empty["counts"].tolist() == [0, 0] and empty["kp3d"].shape == (2, 3, 54, 3)
