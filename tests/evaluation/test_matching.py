"""romp_fast.evaluation.matching: match_hungarian, match_greedy_agora, match_nearest_center, Matching.

Hand-built scenes with known answers, plus per-image references written here: `hungarian_np`
(pair costs by explicit loops, the gate as forbidden pairs, a brute-force maximum-cardinality
minimum-cost matching for small images and scipy for larger ungated ones), `agora_greedy_np`
(the AGORA kit's match_2d_greedy re-implemented literally from its description: argmin over the
prediction-major pair list, spectral-norm cost, "+1" keypoint-box IoU, false-positive counter) and
`nearest_center_np`.
"""
import itertools
import re

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from romp_fast.evaluation import Matching, match_greedy_agora, match_hungarian, match_nearest_center
from romp_fast.evaluation.matching import AGORA_IOU_THRESH, ROMP_IOU_THRESH

F64 = torch.float64
NAN = float("nan")


# --------------------------------------------------------------------------- scene helpers
def person(x, y=0.0, template=None):
    """A translated copy of `template` (default: a 40 x 40 box's corners, centre and two more
    joints); translations change every joint alike, so the mean joint distance between two copies
    is their offset and the spectral-norm cost sqrt(K) times it."""
    t = np.array([[0, 0], [40, 0], [0, 40], [40, 40], [20, 20], [10, 30]], np.float64) if template is None else template
    return t + [x, y]


def scene(preds, gts, dtype=F64, device="cpu"):
    """One image: lists of [K, 2] people -> [1, P, K, 2], [1, G, K, 2] tensors."""
    K = (preds or gts)[0].shape[0]
    p = torch.tensor(np.array(preds).reshape(len(preds), K, 2), dtype=dtype, device=device)[None]
    g = torch.tensor(np.array(gts).reshape(len(gts), K, 2), dtype=dtype, device=device)[None]
    return p, g


def as_lists(m):
    return (m.pred_for_gt.tolist(), m.gt_for_pred.tolist(), m.false_positives.tolist(), m.misses.tolist())


def check_consistent(m, pred_counts, gt_counts, gt_ok):
    """Invariants of every Matching from match_hungarian / match_greedy_agora (one-to-one)."""
    B, G = m.pred_for_gt.shape
    P = m.gt_for_pred.shape[1]
    for t, dt in ((m.pred_for_gt, torch.int64), (m.gt_for_pred, torch.int64), (m.false_positives, torch.bool),
                  (m.misses, torch.bool)):
        assert t.dtype == dt
    pfg, gfp = m.pred_for_gt.cpu().numpy(), m.gt_for_pred.cpu().numpy()
    fp, miss = m.false_positives.cpu().numpy(), m.misses.cpu().numpy()
    for b in range(B):
        for g in range(G):
            if pfg[b, g] >= 0:
                assert g < gt_counts[b] and gt_ok[b, g] and pfg[b, g] < pred_counts[b]
                assert gfp[b, pfg[b, g]] == g
        real_p = np.arange(P) < pred_counts[b]
        np.testing.assert_array_equal(fp[b], real_p & (gfp[b] < 0))
        np.testing.assert_array_equal(miss[b], gt_ok[b] & (np.arange(G) < gt_counts[b]) & (pfg[b] < 0))


# --------------------------------------------------------------------------- references
def best_matching_np(cost):
    """Maximum-cardinality, then minimum-total matching of a [G, P] cost with +inf forbidden.
    Enumerates every partial matching when small; scipy when every pair is allowed."""
    G, P = cost.shape
    out = np.full(G, -1, np.int64)
    ok = np.isfinite(cost)
    if G == 0 or P == 0:
        return out
    if ok.all():
        r, c = linear_sum_assignment(cost)
        out[r] = c
        return out
    assert G <= 6 and P <= 6, "brute force is for small images"
    for k in range(min(G, P), 0, -1):
        best, best_total = None, np.inf
        for rows in itertools.combinations(range(G), k):
            for cols in itertools.permutations(range(P), k):
                if ok[rows, cols].all() and cost[rows, cols].sum() < best_total:
                    best, best_total = (rows, cols), cost[rows, cols].sum()
        if best is not None:
            out[list(best[0])] = best[1]
            return out
    return out


def hungarian_np(pred, gt, vis, valid, max_dist):
    """One image. pred [P, K, >=2], gt [G, K, >=2], vis [G, K] bool, valid [G] bool."""
    G, P = len(gt), len(pred)
    cost = np.full((G, P), np.inf)
    for g in range(G):
        if not valid[g] or not vis[g].any():
            continue
        for p in range(P):
            d = np.mean([np.hypot(*(gt[g, k, :2] - pred[p, k, :2])) for k in range(gt.shape[1]) if vis[g, k]])
            if max_dist is None or d <= max_dist:
                cost[g, p] = d
    return best_matching_np(cost)


def box_iou_np(a, b):
    """Keypoint boxes over all joints, '+1' widths/heights for the intersection and the areas."""
    ax0, ay0, ax1, ay1 = a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()
    bx0, by0, bx1, by1 = b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0) + 1)
    ih = max(0.0, min(ay1, by1) - max(ay0, by0) + 1)
    inter = iw * ih
    area_a = (ax1 - ax0 + 1) * (ay1 - ay0 + 1)
    area_b = (bx1 - bx0 + 1) * (by1 - by0 + 1)
    return inter / (area_a + area_b - inter)


def agora_greedy_np(pred, gt, vis, valid, thresh):
    """One image, literally as match_2d_greedy is described. pred [P, K, 2], gt [G, K, 2];
    vis [G, K] bool or None (all joints); valid [G] bool or None (no validity list).
    Returns pred_for_gt [G]."""
    P, G = len(pred), len(gt)
    pairs, costs, ious = [], [], []
    for p in range(P):  # prediction-major list of pairs
        for g in range(G):
            v = np.ones(gt.shape[1], bool) if vis is None else vis[g]
            pairs.append((p, g))
            costs.append(np.linalg.norm(pred[p][v, :2] - gt[g][v, :2], 2))
            ious.append(box_iou_np(pred[p][:, :2], gt[g][:, :2]))
    costs = np.array(costs, np.float64)
    pred_assigned, gt_assigned = np.zeros(P, bool), np.zeros(G, bool)
    pred_for_gt = np.full(G, -1, np.int64)
    fp_counter, steps = 0, 0
    while gt_assigned.sum() < G and pred_assigned.sum() + fp_counter < P:
        found = false_positive = False
        while not found:
            steps += 1
            assert steps <= P * G, "ran out of pairs"
            i = int(np.argmin(costs))
            p, g = pairs[i]
            costs[i] = np.inf
            if not pred_assigned[p] and not gt_assigned[g] and ious[i] >= thresh:
                found = True
            elif ious[i] < thresh:
                found = false_positive = True
                fp_counter += 1
        if valid is not None and not valid[g]:
            gt_assigned[g] = True
        elif not false_positive:
            pred_for_gt[g] = p
            pred_assigned[p] = gt_assigned[g] = True
    return pred_for_gt


def nearest_center_np(pred, gt, valid):
    G, P = len(gt), len(pred)
    out = np.full(G, -1, np.int64)
    for g in range(G):
        if valid[g] and P:
            out[g] = int(np.argmin([np.linalg.norm(gt[g] - pred[p]) for p in range(P)]))
    return out


def expected_matching(pfg_list, B, P, G, pred_counts, gt_counts, gt_ok):
    """Matching fields as numpy from per-image pred_for_gt lists (first index wins in gt_for_pred)."""
    pfg = np.full((B, G), -1, np.int64)
    gfp = np.full((B, P), -1, np.int64)
    for b, row in enumerate(pfg_list):
        pfg[b, : len(row)] = row
        for g in range(len(row) - 1, -1, -1):
            if row[g] >= 0:
                gfp[b, row[g]] = g
    real_p = np.arange(P)[None] < np.asarray(pred_counts)[:, None]
    real_g = np.arange(G)[None] < np.asarray(gt_counts)[:, None]
    return pfg, gfp, real_p & (gfp < 0), real_g & gt_ok & (pfg < 0)


def assert_matching_equals(m, want):
    for got, exp, name in zip((m.pred_for_gt, m.gt_for_pred, m.false_positives, m.misses), want,
                              ("pred_for_gt", "gt_for_pred", "false_positives", "misses")):
        np.testing.assert_array_equal(got.cpu().numpy(), exp, err_msg=name)


# --------------------------------------------------------------------------- random scenes
def random_scenes(rng, B, P, G, K, size=300.0, crowd=1.0, conf=False):
    """Padded batches of people: predictions are noisy copies of ground truths, duplicates, or
    strangers. Padding entries are NaN (matchers must ignore them)."""
    spread = rng.uniform(8, 40, (B, G, 1, 1)) * crowd
    gt = rng.uniform(0, size, (B, G, 1, 2)) + spread * rng.normal(size=(B, G, K, 2))
    src = rng.integers(0, max(G, 1), (B, P))
    noise = rng.uniform(1, 25, (B, P, 1, 1)) * rng.normal(size=(B, P, K, 2))
    pred = (gt[np.arange(B)[:, None], src] if G else np.zeros((B, P, K, 2))) + noise
    stranger = rng.random((B, P)) < 0.25
    pred[stranger] = (rng.uniform(0, size, (B, P, 1, 2)) + 20 * rng.normal(size=(B, P, K, 2)))[stranger]
    vis = rng.random((B, G, K)) < rng.uniform(0.3, 1.0, (B, G, 1))
    vis[..., 0] |= ~vis.any(-1)  # at least one visible joint per ground truth
    valid = rng.random((B, G)) < 0.8
    pc, gc = rng.integers(0, P + 1, B), rng.integers(0, G + 1, B)
    pc[: B // 2], gc[: B // 2] = P, G
    pred[np.arange(P)[None] >= pc[:, None]] = NAN
    gt[np.arange(G)[None] >= gc[:, None]] = NAN
    if conf:  # an extra confidence channel the matchers must ignore
        pred = np.concatenate([pred, rng.uniform(size=(B, P, K, 1))], -1)
        gt = np.concatenate([gt, rng.uniform(size=(B, G, K, 1))], -1)
    return pred, gt, vis, valid, pc, gc


def t(a, device="cpu"):
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


# --------------------------------------------------------------------------- hand-built scenes
MATCHERS = {
    "hungarian": lambda p, g, **kw: match_hungarian(p, g, **kw),
    "greedy": lambda p, g, **kw: match_greedy_agora(p, g, **kw),
}


@pytest.mark.parametrize("name", ["hungarian", "greedy"])
def test_clear_one_to_one(device, name):
    p, g = scene([person(201), person(2), person(99, 1)], [person(0), person(100), person(200)], device=device)
    m = MATCHERS[name](p, g)
    assert as_lists(m) == ([[1, 2, 0]], [[2, 0, 1]], [[False] * 3], [[False] * 3])
    assert m.pairs().tolist() == [[0, 1, 0], [0, 2, 1], [0, 0, 2]]
    assert m.counts() == {"tp": 3, "fp": 0, "fn": 0}


@pytest.mark.parametrize("name", ["hungarian", "greedy"])
def test_false_positive_far_away(device, name):
    p, g = scene([person(1000, 1000), person(3)], [person(0)], device=device)
    m = MATCHERS[name](p, g)
    assert as_lists(m) == ([[1]], [[-1, 0]], [[True, False]], [[False]])
    assert m.counts() == {"tp": 1, "fp": 1, "fn": 0}


@pytest.mark.parametrize("name", ["hungarian", "greedy"])
def test_missed_ground_truth(device, name):
    p, g = scene([person(503)], [person(0), person(500)], device=device)
    m = MATCHERS[name](p, g)
    assert as_lists(m) == ([[-1, 0]], [[1]], [[False]], [[True, False]])
    assert m.pairs().tolist() == [[0, 0, 1]]
    assert m.counts() == {"tp": 1, "fp": 0, "fn": 1}


def test_hungarian_gate_makes_false_positive_and_miss(device):
    p, g = scene([person(3), person(2000)], [person(0), person(500)], device=device)
    assert as_lists(match_hungarian(p, g)) == ([[0, 1]], [[0, 1]], [[False, False]], [[False, False]])
    m = match_hungarian(p, g, max_dist=50.0)
    assert as_lists(m) == ([[0, -1]], [[0, -1]], [[False, True]], [[False, True]])
    assert m.counts() == {"tp": 1, "fp": 1, "fn": 1}
    # the gate is inclusive: the pair at exactly max_dist = 3 stays
    assert match_hungarian(p, g, max_dist=3.0).pred_for_gt.tolist() == [[0, -1]]
    assert match_hungarian(p, g, max_dist=2.999).pred_for_gt.tolist() == [[-1, -1]]


@pytest.mark.parametrize("name", ["hungarian", "greedy"])
def test_padding_and_empty_images(device, name):
    """Image 0: two people; image 1: no predictions; image 2: no ground truths; image 3: nothing.
    Padding holds NaN and people that would match if they were read."""
    pad = np.full((6, 2), NAN)
    preds = np.array([[person(1), person(300), pad], [person(0), pad, pad], [person(5), person(700), pad],
                      [person(0), person(100), person(200)]])
    gts = np.array([[person(298), person(0)], [person(0), person(50)], [person(5), pad], [person(0), person(100)]])
    p, g = t(preds, device), t(gts, device)
    kw = dict(pred_counts=torch.tensor([2, 0, 2, 0], device=device),
              gt_counts=torch.tensor([2, 2, 0, 0], device=device))
    m = MATCHERS[name](p, g, **kw)
    assert m.pred_for_gt.tolist() == [[1, 0], [-1, -1], [-1, -1], [-1, -1]]
    assert m.gt_for_pred.tolist() == [[1, 0, -1], [-1] * 3, [-1] * 3, [-1] * 3]
    assert m.false_positives.tolist() == [[False] * 3, [False] * 3, [True, True, False], [False] * 3]
    assert m.misses.tolist() == [[False, False], [True, True], [False, False], [False, False]]
    assert m.counts() == {"tp": 2, "fp": 2, "fn": 2}
    assert m.pairs().tolist() == [[0, 1, 0], [0, 0, 1]]
    # counts as Python lists work the same
    m2 = MATCHERS[name](p, g, pred_counts=[2, 0, 2, 0], gt_counts=[2, 2, 0, 0])
    assert as_lists(m2) == as_lists(m)


@pytest.mark.parametrize("name", ["hungarian", "greedy"])
def test_invalid_ground_truth_is_neither_matched_nor_missed(device, name):
    """GT 1 (invalid) sits exactly on prediction 1; GT 2 is far from everything and valid."""
    p, g = scene([person(0), person(200)], [person(2), person(200), person(900, 900)], device=device)
    m = MATCHERS[name](p, g, gt_valid=torch.tensor([[True, False, True]], device=device))
    assert m.pred_for_gt.tolist()[0][:2] == [0, -1]
    assert m.misses.tolist()[0][:2] == [False, False]
    if name == "hungarian":  # no gate: the valid far GT takes the left-over prediction
        assert as_lists(m) == ([[0, -1, 1]], [[0, 2]], [[False, False]], [[False, False, False]])
    else:  # greedy: pred 1 goes unmatched (its pair with GT 1 spends it), GT 2 has IoU 0 -> miss
        assert as_lists(m) == ([[0, -1, -1]], [[0, -1]], [[False, True]], [[False, False, True]])
    assert m.counts()["tp"] + m.counts()["fn"] == 2  # only the two valid ground truths count


def test_hungarian_no_visible_joints_is_invalid(device):
    p, g = scene([person(0), person(100)], [person(1), person(100)], device=device)
    vis = torch.ones(1, 2, 6, dtype=torch.bool, device=device)
    vis[0, 1] = False
    m = match_hungarian(p, g, vis)
    assert as_lists(m) == ([[0, -1]], [[0, -1]], [[False, True]], [[False, False]])
    # the same with gt_valid True given explicitly
    m2 = match_hungarian(p, g, vis, gt_valid=torch.ones(1, 2, dtype=torch.bool, device=device))
    assert as_lists(m2) == as_lists(m)


def test_hungarian_uses_visible_joints_only(device):
    """Pred 0 equals the GT except on joint 0 (1414 px off); pred 1 is 707 px off on every joint
    but joint 0 (1 px). All joints: means 236 vs 589, pred 0. Joint 0 only: pred 1."""
    gt = person(0)
    gt[0] = [1001.0, 1000.0]
    p0 = person(0)
    p1 = person(0) + 500.0
    p1[0] = [1000.0, 1000.0]
    p, g = scene([p0, p1], [gt], device=device)
    vis = torch.zeros(1, 1, 6, dtype=torch.bool, device=device)
    assert match_hungarian(p, g).pred_for_gt.tolist() == [[0]]
    assert match_hungarian(p, g, ~vis).pred_for_gt.tolist() == [[0]]
    vis[0, 0, 0] = True
    assert match_hungarian(p, g, vis).pred_for_gt.tolist() == [[1]]
    assert match_hungarian(p, g, vis, max_dist=1.0).pred_for_gt.tolist() == [[1]]
    assert match_hungarian(p, g, vis, max_dist=0.99).pred_for_gt.tolist() == [[-1]]


def test_crowd_greedy_and_optimal_differ(device):
    """GTs X (x = 0) and Y (x = 10); predictions A (x = 1) and B (x = -8). Greedy takes the cheapest
    pair A-X (1) and is left with B-Y (18): total 19. The optimum is A-Y + B-X = 9 + 8 = 17."""
    p, g = scene([person(1), person(-8)], [person(0), person(10)], device=device)
    greedy = match_greedy_agora(p, g)
    optimal = match_hungarian(p, g)
    assert greedy.pred_for_gt.tolist() == [[0, 1]]
    assert optimal.pred_for_gt.tolist() == [[1, 0]]
    for m in (greedy, optimal):
        assert m.counts() == {"tp": 2, "fp": 0, "fn": 0}
    # with a 10 px gate only A-X, A-Y and B-X are allowed: still the optimum, still 2 matches
    assert match_hungarian(p, g, max_dist=10.0).pred_for_gt.tolist() == [[1, 0]]
    assert match_hungarian(p, g, max_dist=5.0).pred_for_gt.tolist() == [[0, -1]]


SQUARE = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float64)


@pytest.mark.parametrize("thresh", [AGORA_IOU_THRESH, ROMP_IOU_THRESH])
def test_greedy_false_positive_counter_stops_the_walk(device, thresh):
    """A (all joints at Y's centre) matches X (a point there) at cost 0. Next cheapest is A-Y (10),
    whose keypoint-box IoU is 1/121 < thresh: the counter goes up although A is taken, and
    matched + counter = 2 = #predictions ends the walk before B-Y (cost 12, IoU 121/529)."""
    A = np.full((4, 2), 5.0)
    B = (SQUARE - 5) * 2.2 + 5
    X, Y = np.full((4, 2), 5.0), SQUARE
    assert box_iou_np(A, Y) < thresh <= box_iou_np(B, Y)
    p, g = scene([A, B], [X, Y], device=device)
    m = match_greedy_agora(p, g, iou_thresh=thresh)
    assert as_lists(m) == ([[0, -1]], [[0, -1]], [[False, True]], [[False, True]])
    assert agora_greedy_np(p[0].cpu().numpy(), g[0].cpu().numpy(), None, None, thresh).tolist() == [0, -1]
    assert match_hungarian(p, g).pred_for_gt.tolist() == [[0, 1]]


def test_greedy_iou_threshold_is_inclusive_and_uses_plus_one():
    """Two 10 x 10 squares offset by 5 in x: '+1' boxes are 11 x 11 with a 6 x 11 intersection,
    IoU = 66 / 176 = 0.375 (without the +1 it would be 50 / 150)."""
    p, g = scene([SQUARE + [5, 0]], [SQUARE])
    assert match_greedy_agora(p, g, iou_thresh=66 / 176).pred_for_gt.tolist() == [[0]]
    assert match_greedy_agora(p, g, iou_thresh=66 / 176 + 1e-9).pred_for_gt.tolist() == [[-1]]
    assert match_greedy_agora(p, g, iou_thresh=0.34).pred_for_gt.tolist() == [[0]]  # > 1/3


def test_greedy_ties_go_to_the_first_pair_in_prediction_major_order():
    """Two identical predictions and two identical ground truths: every cost ties, so the walk
    takes (pred 0, GT 0) then (pred 1, GT 1)."""
    p, g = scene([person(0), person(0)], [person(3), person(3)])
    assert match_greedy_agora(p, g).pred_for_gt.tolist() == [[0, 1]]
    p, g = scene([person(0), person(50), person(0)], [person(3), person(3)])
    assert match_greedy_agora(p, g).pred_for_gt.tolist() == [[0, 2]]


def test_greedy_visibility_changes_the_cost():
    """Without visibility pred 0 is closer overall; on GT's visible joint 0 alone pred 1 is."""
    gt = person(0)
    p0 = gt + 4.0
    p1 = gt.copy()
    p1[1:] += 6.0
    p1[0] += 0.5
    p, g = scene([p0, p1], [gt])
    assert match_greedy_agora(p, g).pred_for_gt.tolist() == [[0]]
    vis = torch.zeros(1, 1, 6, dtype=torch.bool)
    vis[0, 0, 0] = True
    assert match_greedy_agora(p, g, vis).pred_for_gt.tolist() == [[1]]


# --------------------------------------------------------------------------- against references
@pytest.mark.parametrize("max_dist", [None, 15.0, 40.0])
@pytest.mark.parametrize("with_vis", [False, True])
@pytest.mark.parametrize("with_valid", [False, True])
def test_hungarian_against_reference_small(device, max_dist, with_vis, with_valid):
    rng = np.random.default_rng([int(max_dist or 0), with_vis, with_valid])
    B, P, G, K = 80, 5, 5, 14
    pred, gt, vis, valid, pc, gc = random_scenes(rng, B, P, G, K, size=150, conf=with_vis)
    vis[:5, 0] = False  # a ground truth without visible joints
    vis_arg = t(vis, device) if with_vis else None
    valid_arg = t(valid, device) if with_valid else None
    m = match_hungarian(t(pred, device), t(gt, device), vis_arg, pred_counts=t(pc, device), gt_counts=t(gc, device),
                        gt_valid=valid_arg, max_dist=max_dist)
    vis_use = vis if with_vis else np.ones_like(vis)
    valid_use = (valid if with_valid else np.ones_like(valid)) & vis_use.any(-1)
    rows = [hungarian_np(pred[b, : pc[b]], gt[b, : gc[b]], vis_use[b, : gc[b]], valid_use[b, : gc[b]], max_dist)
            for b in range(B)]
    assert_matching_equals(m, expected_matching(rows, B, P, G, pc, gc, valid_use))
    check_consistent(m, pc, gc, valid_use)


@pytest.mark.parametrize("with_vis", [False, True])
def test_hungarian_against_scipy_large(device, with_vis):
    rng = np.random.default_rng([with_vis, 2])
    B, P, G, K = 20, 15, 12, 24
    pred, gt, vis, valid, pc, gc = random_scenes(rng, B, P, G, K, size=200)
    vis_arg = t(vis, device) if with_vis else None
    m = match_hungarian(t(pred, device), t(gt, device), vis_arg, pred_counts=t(pc, device), gt_counts=t(gc, device))
    vis_use = vis if with_vis else np.ones_like(vis)
    ok = np.ones((B, G), bool)
    rows = [hungarian_np(pred[b, : pc[b]], gt[b, : gc[b]], vis_use[b, : gc[b]], ok[b, : gc[b]], None)
            for b in range(B)]
    assert_matching_equals(m, expected_matching(rows, B, P, G, pc, gc, ok))
    assert m.counts()["tp"] == int(np.minimum(pc, gc).sum())


@pytest.mark.parametrize("thresh", [AGORA_IOU_THRESH, ROMP_IOU_THRESH])
@pytest.mark.parametrize("with_vis", [False, True])
@pytest.mark.parametrize("with_valid", [False, True])
@pytest.mark.parametrize("crowd", [0.5, 2.0])
def test_greedy_against_literal_reimplementation(device, thresh, with_vis, with_valid, crowd):
    rng = np.random.default_rng([int(thresh * 100), with_vis, with_valid, int(crowd * 10)])
    B = 120
    kinds = {"fp": 0, "matched": 0, "miss": 0}
    for K in (14, 24):
        P, G = rng.integers(1, 9, 2)
        pred, gt, vis, valid, pc, gc = random_scenes(rng, B, P, G, K, size=250, crowd=crowd, conf=K == 24)
        vis_arg = t(vis, device) if with_vis else None
        valid_arg = t(valid, device) if with_valid else None
        m = match_greedy_agora(t(pred, device), t(gt, device), vis_arg, pred_counts=t(pc, device),
                               gt_counts=t(gc, device), gt_valid=valid_arg, iou_thresh=thresh)
        rows = [agora_greedy_np(pred[b, : pc[b]], gt[b, : gc[b]], vis[b, : gc[b]] if with_vis else None,
                                valid[b, : gc[b]] if with_valid else None, thresh) for b in range(B)]
        valid_use = valid if with_valid else np.ones_like(valid)
        want = expected_matching(rows, B, P, G, pc, gc, valid_use)
        assert_matching_equals(m, want)
        check_consistent(m, pc, gc, valid_use)
        c = m.counts()
        kinds["matched"] += c["tp"]
        kinds["fp"] += c["fp"]
        kinds["miss"] += c["fn"]
    assert min(kinds.values()) > 10, kinds  # the scenes exercise every outcome


# --------------------------------------------------------------------------- nearest centre
def test_nearest_center_shared_prediction(device):
    """GT 1 sits on pred 0, GT 0 next to it: both take pred 0, gt_for_pred reports GT 0;
    pred 2 is nobody's nearest; GT 2 is a million away yet matched (no threshold)."""
    pc = torch.tensor([[[0.4, 0.0], [9.0, 9.0], [50.0, 50.0]]], dtype=F64, device=device)
    gc = torch.tensor([[[1.0, 0.0], [0.4, 0.0], [10.0, 10.0], [1e6, -1e6]]], dtype=F64, device=device)
    m = match_nearest_center(pc, gc)
    assert m.pred_for_gt.tolist() == [[0, 0, 1, 0]]
    assert m.gt_for_pred.tolist() == [[0, 2, -1]]
    assert m.false_positives.tolist() == [[False, False, True]]
    assert m.misses.tolist() == [[False] * 4]
    assert m.counts() == {"tp": 4, "fp": 1, "fn": 0}
    assert m.pairs().tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 3]]


def test_nearest_center_images_without_predictions(device):
    pc = torch.tensor([[[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]], [[NAN, NAN, NAN], [0.0, 0.0, 0.0]]],
                      dtype=F64, device=device)
    gc = torch.tensor([[[4.0, 4.0, 4.0], [1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]],
                      dtype=F64, device=device)
    m = match_nearest_center(pc, gc, pred_counts=torch.tensor([2, 0], device=device),
                             gt_valid=torch.tensor([[True, True], [True, False]], device=device))
    assert m.pred_for_gt.tolist() == [[1, 0], [-1, -1]]
    assert m.misses.tolist() == [[False, False], [True, False]]  # the invalid GT is no miss
    assert m.false_positives.tolist() == [[False, False], [False, False]]
    assert m.counts() == {"tp": 2, "fp": 0, "fn": 1}
    # no predictions at all (P = 0)
    m0 = match_nearest_center(torch.zeros(2, 0, 3, dtype=F64, device=device), gc)
    assert m0.pred_for_gt.tolist() == [[-1, -1], [-1, -1]] and m0.misses.all()
    assert m0.gt_for_pred.shape == (2, 0) and m0.false_positives.shape == (2, 0)


def test_nearest_center_against_reference(device):
    rng = np.random.default_rng(40)
    B, P, G = 50, 6, 5
    pred = rng.uniform(0, 10, (B, P, 2))
    gt = rng.uniform(0, 10, (B, G, 2))
    pcount, gcount = rng.integers(0, P + 1, B), rng.integers(0, G + 1, B)
    valid = rng.random((B, G)) < 0.8
    pred[np.arange(P)[None] >= pcount[:, None]] = -1e9  # padding that would be nearest if read
    m = match_nearest_center(t(pred, device), t(gt, device), pred_counts=t(pcount, device),
                             gt_counts=t(gcount, device), gt_valid=t(valid, device))
    pfg = np.full((B, G), -1, np.int64)
    for b in range(B):
        pfg[b, : gcount[b]] = nearest_center_np(pred[b, : pcount[b]], gt[b, : gcount[b]], valid[b, : gcount[b]])
    np.testing.assert_array_equal(m.pred_for_gt.cpu().numpy(), pfg)
    gfp = np.full((B, P), -1, np.int64)
    for b in range(B):
        for g in range(G - 1, -1, -1):
            if pfg[b, g] >= 0:
                gfp[b, pfg[b, g]] = g
    np.testing.assert_array_equal(m.gt_for_pred.cpu().numpy(), gfp)
    real_g = (np.arange(G)[None] < gcount[:, None]) & valid
    np.testing.assert_array_equal(m.misses.cpu().numpy(), real_g & (pcount[:, None] == 0))
    np.testing.assert_array_equal(m.false_positives.cpu().numpy(), (np.arange(P)[None] < pcount[:, None]) & (gfp < 0))


# --------------------------------------------------------------------------- Matching
def test_matching_pairs_and_counts_by_hand():
    m = Matching(pred_for_gt=torch.tensor([[2, -1, 0], [-1, -1, -1], [1, 0, -1]]),
                 gt_for_pred=torch.tensor([[2, -1, 0], [-1, -1, -1], [1, 0, -1]]),
                 false_positives=torch.tensor([[False, True, False], [False] * 3, [False, False, True]]),
                 misses=torch.tensor([[False, True, False], [True, False, False], [False, False, False]]))
    assert m.pairs().tolist() == [[0, 2, 0], [0, 0, 2], [2, 1, 0], [2, 0, 1]]
    assert m.pairs().dtype == torch.int64
    assert m.counts() == {"tp": 4, "fp": 2, "fn": 2}
    empty = Matching(*(torch.zeros(0, 3, dtype=torch.int64),) * 2, *(torch.zeros(0, 3, dtype=torch.bool),) * 2)
    assert empty.pairs().shape == (0, 3) and empty.counts() == {"tp": 0, "fp": 0, "fn": 0}


# --------------------------------------------------------------------------- errors
def _kp(*shape):
    return torch.zeros(*shape, dtype=F64)


@pytest.mark.parametrize("matcher", [match_hungarian, match_greedy_agora])
def test_keypoint_matcher_errors(matcher):
    p, g = _kp(2, 4, 5, 2), _kp(2, 3, 5, 2)
    cases = [
        ((_kp(2, 4, 5), g), {}, r"pred keypoints must be \[B, P, K, >=2\], got \[2, 4, 5\]"),
        ((_kp(2, 4, 5, 1), g), {}, r"pred keypoints must be \[B, P, K, >=2\], got \[2, 4, 5, 1\]"),
        ((p, _kp(2, 3, 6, 2)), {}, r"gt keypoints must be \[B, G, K, >=2\] = \[2, G, 5, 2\], got \[2, 3, 6, 2\]"),
        ((p, _kp(3, 3, 5, 2)), {}, r"gt keypoints must be \[B, G, K, >=2\] = \[2, G, 5, 2\], got \[3, 3, 5, 2\]"),
        ((p, _kp(2, 3, 5)), {}, r"gt keypoints must be .* got \[2, 3, 5\]"),
        ((p, g, torch.ones(2, 3, dtype=torch.bool)), {}, r"gt_visible must be \[B, G, K\] = \[2, 3, 5\], got \[2, 3\]"),
        ((p, g), {"pred_counts": torch.tensor([5, 1])},
         r"pred_counts must be \[B\] = \[2\] integers in \[0, 4\], got \[5, 1\]"),
        ((p, g), {"gt_counts": torch.tensor([1, 1, 1])},
         r"gt_counts must be \[B\] = \[2\] integers in \[0, 3\], got \[1, 1, 1\]"),
        ((p, g), {"gt_counts": [-1, 0]}, r"gt_counts must be \[B\] = \[2\] integers in \[0, 3\], got \[-1, 0\]"),
    ]
    for args, kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            matcher(*args, **kw)


@pytest.mark.parametrize("shape", [(2,), (3,), (1, 3), (2, 3, 1)])
@pytest.mark.parametrize("matcher", [
    match_hungarian,
    match_greedy_agora,
    lambda p, g, **kw: match_nearest_center(p[:, :, 0], g[:, :, 0], **kw),
])
def test_gt_valid_shape_error(matcher, shape):
    p, g = _kp(2, 4, 5, 2), _kp(2, 3, 5, 2)
    with pytest.raises(ValueError, match=rf"gt_valid must be \[B, G\] = \[2, 3\], got {re.escape(str(list(shape)))}"):
        matcher(p, g, gt_valid=torch.ones(shape, dtype=torch.bool))


def test_nearest_center_errors():
    cases = [
        ((_kp(2, 3, 2), _kp(2, 4, 3)), r"centres must be \[B, P, D\] and \[B, G, D\], got \[2, 3, 2\] and \[2, 4, 3\]"),
        ((_kp(2, 3, 2), _kp(3, 4, 2)), r"got \[2, 3, 2\] and \[3, 4, 2\]"),
        ((_kp(2, 3), _kp(2, 4, 2)), r"got \[2, 3\] and \[2, 4, 2\]"),
    ]
    for args, msg in cases:
        with pytest.raises(ValueError, match=msg):
            match_nearest_center(*args)
    with pytest.raises(ValueError, match=r"gt_valid must be \[B, G\] = \[2, 4\], got \[2, 3\]"):
        match_nearest_center(_kp(2, 3, 2), _kp(2, 4, 2), gt_valid=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"pred_counts must be \[B\] = \[2\] integers in \[0, 3\], got \[4, 0\]"):
        match_nearest_center(_kp(2, 3, 2), _kp(2, 4, 2), pred_counts=[4, 0])
