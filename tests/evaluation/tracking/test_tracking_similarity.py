"""Similarities: box IoU bitwise equal to TrackEval's ``_calculate_box_ious``, the 3D distance
similarity equal to TrackEval's ``_calculate_euclidean_similarity`` for single points, OKS equal to
a per-pair loop written from pycocotools' ``computeOks``, boxes from joints by hand."""
import numpy as np
import pytest

from romp_fast.evaluation.tracking.similarity import (COCO17_SIGMAS, box_iou, boxes_from_joints,
                                                      joint_distance_similarity, keypoint_similarity)

trackeval = pytest.importorskip("trackeval")
Base = trackeval.datasets._base_dataset._BaseDataset
RNG = np.random.default_rng(0)


def random_boxes(n):
    b = np.column_stack([RNG.uniform(0, 100, n), RNG.uniform(0, 100, n), RNG.uniform(0, 40, n), RNG.uniform(0, 40, n)])
    b[::7, 2] = 0.0  # zero-area boxes
    return b


@pytest.mark.parametrize("fmt", ["xywh", "xyxy"])
def test_box_iou_is_bitwise_trackeval(fmt):
    for M, N in ((0, 3), (3, 0), (1, 1), (6, 9), (17, 5)):
        a, b = random_boxes(M), random_boxes(N)
        if fmt == "xyxy":
            a[:, 2:] += a[:, :2]
            b[:, 2:] += b[:, :2]
        want = Base._calculate_box_ious(a.copy(), b.copy(), box_format={"xyxy": "x0y0x1y1"}.get(fmt, fmt))
        np.testing.assert_array_equal(box_iou(a, b, fmt), want)


def test_box_iou_batched_over_frames_equals_per_frame():
    a, b = random_boxes(4 * 5).reshape(4, 5, 4), random_boxes(4 * 3).reshape(4, 3, 4)
    got = box_iou(a, b)
    assert got.shape == (4, 5, 3)
    for f in range(4):
        np.testing.assert_array_equal(got[f], box_iou(a[f], b[f]))
    assert box_iou(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 10, 10.]]))[0, 0] == pytest.approx(50 / 150)


def test_boxes_from_joints():
    j = np.array([[[0.0, 0.0], [10.0, 20.0], [4.0, np.nan]], [[np.nan, 1.0], [np.nan, 2.0], [np.nan, 3.0]]])
    box = boxes_from_joints(j, scale=(1.1, 1.2))
    # centre (5, 10), size (11, 24): left = 5 - 5.5, top = 10 - 12; the NaN joint is ignored
    np.testing.assert_allclose(box[0], [-0.5, -2.0, 11.0, 24.0])
    np.testing.assert_array_equal(box[1], [0, 0, 0, 0])  # no valid joint
    valid = np.array([[True, False, True], [False, False, False]])
    np.testing.assert_allclose(boxes_from_joints(np.nan_to_num(j), valid)[0], [0.0, 0.0, 4.0, 0.0])


def oks_loop(gt, pred, vis, area, sigmas):
    """pycocotools computeOks, one pair at a time: e = d^2 / vars / (area + eps) / 2 with
    vars = (2 sigma)^2, averaged exp(-e) over the visible ground-truth joints."""
    out = np.zeros((len(gt), len(pred)))
    var = (2 * sigmas) ** 2
    for i in range(len(gt)):
        for j in range(len(pred)):
            d2 = ((gt[i] - pred[j]) ** 2).sum(-1)
            e = d2 / var / (area[i] + np.spacing(1)) / 2
            if vis[i].any():
                out[i, j] = np.exp(-e[vis[i]]).sum() / vis[i].sum()
    return out


def test_keypoint_similarity_is_coco_oks():
    gt = RNG.uniform(0, 200, (4, 17, 2))
    pred = gt[[1, 0, 3]] + RNG.normal(0, 5, (3, 17, 2))
    vis = RNG.random((4, 17)) > 0.2
    vis[2] = False
    area = RNG.uniform(1e3, 1e4, 4)
    got = keypoint_similarity(gt, pred, vis, area)
    np.testing.assert_allclose(got, oks_loop(gt, pred, vis, area, COCO17_SIGMAS), rtol=1e-12, atol=1e-15)
    assert got[2].max() == 0 and got[1, 0] > 0.5
    # default area: the gt joint box; default sigmas for K != 17: 0.1
    g5, p5 = gt[:, :5], pred[:, :5]
    box = boxes_from_joints(g5)
    np.testing.assert_allclose(keypoint_similarity(g5, p5), oks_loop(g5, p5, np.ones((4, 5), bool),
                                                                     box[:, 2] * box[:, 3], np.full(5, 0.1)))


def test_joint_distance_similarity():
    # single points: TrackEval's euclidean similarity max(0, 1 - dist / zero_distance)
    a, b = RNG.normal(0, 1, (5, 1, 3)), RNG.normal(0, 1, (4, 1, 3))
    np.testing.assert_allclose(joint_distance_similarity(a, b, zero_distance=2.0),
                               Base._calculate_euclidean_similarity(a[:, 0], b[:, 0], zero_distance=2.0), rtol=1e-14)
    # several joints: mean per-joint distance over the visible gt joints
    g = np.zeros((1, 3, 3))
    p = np.zeros((1, 3, 3))
    p[0, :, 0] = [0.1, 0.2, 5.0]
    vis = np.array([[True, True, False]])
    assert joint_distance_similarity(g, p, vis, zero_distance=0.5)[0, 0] == pytest.approx(1 - 0.15 / 0.5)
    assert joint_distance_similarity(g, p, zero_distance=0.5)[0, 0] == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: box_iou(np.zeros((3, 3)), np.zeros((2, 4))), r"gt boxes must be \[..., n, 4\], got \[3, 3\]"),
    (lambda: box_iou(np.zeros((3, 4)), np.zeros((2, 4)), "cxcywh"), "box_format"),
    (lambda: keypoint_similarity(np.zeros((2, 5, 2)), np.zeros((2, 4, 2))), "keypoints must be"),
    (lambda: joint_distance_similarity(np.zeros((2, 5, 2)), np.zeros((2, 5, 2))), "joints must be"),
    (lambda: boxes_from_joints(np.zeros((2, 5, 3))), r"joints must be \[..., n, 2\]"),
])
def test_shape_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
