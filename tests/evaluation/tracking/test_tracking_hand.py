"""Tiny hand-computed examples for HOTA, CLEAR and Identity (expected values worked out in the
comments from the metrics' definitions), checked against ours and against TrackEval; plus tied
optima, where the exact mode must reproduce TrackEval's choice and the default mode the
tie-independent numbers."""
import numpy as np
import pytest

from romp_fast.evaluation.tracking import ALPHAS, eval_sequence
from romp_fast.evaluation.tracking.synthetic import make_sequence, to_trackeval


def seq(frames, num_gt_ids, num_tr_ids):
    """frames: list of (gt ids, tracker ids, similarity rows)."""
    data = {"num_timesteps": len(frames), "num_gt_ids": num_gt_ids, "num_tracker_ids": num_tr_ids,
            "gt_ids": [np.array(g, int) for g, _, _ in frames],
            "tracker_ids": [np.array(t, int) for _, t, _ in frames],
            "similarity_scores": [np.array(s, float).reshape(len(g), len(t)) for g, t, s in frames]}
    data["num_gt_dets"] = sum(len(g) for g in data["gt_ids"])
    data["num_tracker_dets"] = sum(len(t) for t in data["tracker_ids"])
    return data


def by_alpha(*spans):
    """Per-alpha values from (upper alpha bound, value) spans."""
    out = np.empty(len(ALPHAS))
    for a_i, a in enumerate(ALPHAS):
        out[a_i] = next(v for hi, v in spans if a <= hi + 1e-9)
    return out


def test_hota_single_track_with_an_id_switch(te):
    # gt A; tracker x, x, y with similarities 0.82, 0.62, 0.91 (every frame a forced 1 x 1 match).
    data = seq([([0], [0], [[0.82]]), ([0], [0], [[0.62]]), ([0], [1], [[0.91]])], 1, 2)
    # alpha <= 0.60: 3 TP; pairs (A,x) 2 matches, (A,y) 1; n_A = 3, n_x = 2, n_y = 1
    #   AssA = (2 * 2/(3+2-2) + 1 * 1/(3+1-1)) / 3 = 5/9, DetA = 1
    # 0.65..0.80: TP 2 (0.82, 0.91), FN 1, FP 1: DetA = 2/4, AssA = (1/(3+2-1) + 1/(3+1-1)) / 2 = 7/24
    # 0.85, 0.90: TP 1 (0.91): DetA = 1/5, AssA = 1/3;  0.95: nothing
    det = by_alpha((0.6, 1.0), (0.8, 0.5), (0.9, 0.2), (1, 0.0))
    ass = by_alpha((0.6, 5 / 9), (0.8, 7 / 24), (0.9, 1 / 3), (1, 0.0))
    loc = by_alpha((0.6, (0.82 + 0.62 + 0.91) / 3), (0.8, (0.82 + 0.91) / 2), (0.9, 0.91), (1, 1.0))
    tp = by_alpha((0.6, 3), (0.8, 2), (0.9, 1), (1, 0))
    got = eval_sequence(data)["HOTA"]
    np.testing.assert_allclose(got["DetA"], det, atol=1e-12)
    np.testing.assert_allclose(got["AssA"], ass, atol=1e-12)
    np.testing.assert_allclose(got["HOTA"], np.sqrt(det * ass), atol=1e-12)
    np.testing.assert_allclose(got["LocA"], loc, atol=1e-12)
    np.testing.assert_array_equal(got["HOTA_TP"], tp)
    np.testing.assert_array_equal(got["HOTA_FN"], 3 - tp)
    np.testing.assert_array_equal(got["HOTA_FP"], 3 - tp)
    te.same(te.run(data), {"HOTA": got}, "hota hand")


def test_hota_matches_by_global_alignment_not_per_frame_similarity(te):
    # Frame 0 pairs A-x, B-y (0.9). In frame 1 the crossed pairs are more similar (0.7 vs 0.6), but
    # A-x's alignment (soft matches C = 1 + 0.6/2 = 1.3, A = 1.3/(2+2-1.3) = 0.481) beats A-y's
    # (C = 0.7/1.9, A = 0.101), so HOTA keeps A-x, B-y: for alpha <= 0.6 every id pair has 2 of 2
    # matches (AssA 1, DetA 1); for 0.65..0.9 only frame 0 counts (DetA 2/6, AssA (1/3 + 1/3)/2).
    data = seq([([0, 1], [0, 1], [[0.9, 0], [0, 0.9]]), ([0, 1], [0, 1], [[0.6, 0.7], [0.7, 0.6]])], 2, 2)
    got = eval_sequence(data)["HOTA"]
    np.testing.assert_allclose(got["AssA"], by_alpha((0.6, 1.0), (0.9, 1 / 3), (1, 0.0)), atol=1e-12)
    np.testing.assert_allclose(got["DetA"], by_alpha((0.6, 1.0), (0.9, 1 / 3), (1, 0.0)), atol=1e-12)
    te.same(te.run(data), {"HOTA": got}, "alignment")


def test_clear_switch_miss_and_fragmentation(te):
    # A matched to x, x, y (switch), then a frame where the only tracker box overlaps 0.2 (FN + FP,
    # A untracked), then x again (a switch: last match was y; and a second tracked run: Frag 1).
    data = seq([([0], [0], [[0.9]]), ([0], [0], [[0.9]]), ([0], [1], [[0.9]]), ([0], [2], [[0.2]]),
                ([0], [0], [[0.9]])], 1, 3)
    c = eval_sequence(data)["CLEAR"]
    assert (c["CLR_TP"], c["CLR_FN"], c["CLR_FP"], c["IDSW"], c["Frag"]) == (4, 1, 1, 2, 1)
    assert c["MOTA"] == pytest.approx((4 - 1 - 2) / 5) and c["MOTP"] == pytest.approx(0.9)
    # tracked 4 of 5 frames = 0.8: TrackEval's "mostly tracked" needs > 0.8, so partially tracked
    assert (c["MT"], c["PT"], c["ML"]) == (0, 1, 0)
    assert c["CLR_Re"] == pytest.approx(0.8) and c["CLR_Pr"] == pytest.approx(0.8)
    te.same(te.run(data), {"CLEAR": c}, "clear hand")


def test_clear_frames_without_tracker_output_do_not_break_a_track(te):
    # A-x, a frame with no tracker boxes at all (FN; TrackEval keeps the previous match), A-x: no
    # new fragment (Frag 0) and no switch.
    data = seq([([0], [0], [[0.9]]), ([0], [], []), ([0], [0], [[0.9]])], 1, 1)
    c = eval_sequence(data)["CLEAR"]
    assert (c["CLR_TP"], c["CLR_FN"], c["IDSW"], c["Frag"], c["MT"], c["PT"]) == (2, 1, 0, 0, 0, 1)
    te.same(te.run(data), {"CLEAR": c}, "gap")


def test_clear_prefers_continuing_tracks_while_they_stay_above_threshold(te):
    # Two crossing tracks: from frame 1 the crossed pairs are more similar, but the established
    # pairs (>= 0.5) keep the 1000 bonus until frame 3, where they fall under the threshold: two
    # switches there and none before. Per-frame maximum similarity would switch in frame 1.
    frames = [[[0.9, 0.1], [0.1, 0.9]], [[0.6, 0.8], [0.8, 0.6]], [[0.55, 0.9], [0.9, 0.55]],
              [[0.3, 0.9], [0.9, 0.3]], [[0.1, 0.9], [0.9, 0.1]]]
    data = seq([([0, 1], [0, 1], s) for s in frames], 2, 2)
    c = eval_sequence(data)["CLEAR"]
    assert (c["CLR_TP"], c["IDSW"], c["Frag"]) == (10, 2, 0)
    assert c["MOTP_sum"] == pytest.approx(2 * (0.9 + 0.6 + 0.55 + 0.9 + 0.9))
    te.same(te.run(data), {"CLEAR": c}, "bonus")


@pytest.mark.parametrize("carry_rounds", [64, 0], ids=["carried", "frame_by_frame"])
def test_clear_long_crossing(te, monkeypatch, carry_rounds, mode):
    # Two tracks side by side for 300 frames, the crossed pairs always a little more similar: the
    # established pairs keep their bonus throughout and switch only when they fall under 0.5 in
    # the last frame (2 switches). Also with the carried-bonus guess off (only the frame-by-frame
    # propagation, one frame per round).
    import romp_fast.evaluation.tracking.clear as clear
    monkeypatch.setattr(clear, "CARRY_ROUNDS", carry_rounds)
    rng = np.random.default_rng(1)
    mid = [np.array([[0.6, 0.7], [0.7, 0.6]]) + rng.uniform(0, 0.01, (2, 2)) for _ in range(298)]
    frames = [np.array([[0.9, 0.1], [0.1, 0.9]])] + mid + [np.array([[0.3, 0.9], [0.9, 0.3]])]
    data = seq([([0, 1], [0, 1], f) for f in frames], 2, 2)
    c = eval_sequence(data, exact=mode)["CLEAR"]
    assert (c["CLR_TP"], c["IDSW"], c["Frag"]) == (600, 2, 0)
    te.same(te.run(data), {"CLEAR": c}, "long crossing")


def test_clear_frame_by_frame_propagation_alone(te, monkeypatch, mode):
    """The exact frame-by-frame stage on its own (no carried guess) on generated crossings."""
    import romp_fast.evaluation.tracking.clear as clear
    monkeypatch.setattr(clear, "CARRY_ROUNDS", 0)
    for s in range(3):
        gt, tr = make_sequence(120, 20, 15, seed=s, image=(800.0, 500.0), switch=0.01)
        data = to_trackeval(gt, tr, 120)
        te.same(te.run(data), {"CLEAR": eval_sequence(data, metrics=["CLEAR"], exact=mode)["CLEAR"]}, f"seed {s}")


def test_identity_global_matching(te):
    # A: x in frames 0-1, y in 2-3; B: y in frame 0, z in 1-3. Potential matches (A,x)=2, (A,y)=2,
    # (B,y)=1, (B,z)=3: the best one-to-one id matching keeps 2 + 3 = 5 (IDTP), of 8 gt and 8
    # tracker detections: IDFN = IDFP = 3, IDF1 = 5 / (5 + 3) = 0.625.
    data = seq([([0, 1], [0, 1], [[0.9, 0], [0, 0.9]]), ([0, 1], [0, 2], [[0.9, 0], [0, 0.9]]),
                ([0, 1], [1, 2], [[0.9, 0], [0, 0.9]]), ([0, 1], [1, 2], [[0.9, 0], [0, 0.9]])], 2, 3)
    i = eval_sequence(data)["Identity"]
    assert (i["IDTP"], i["IDFN"], i["IDFP"]) == (5, 3, 3)
    assert i["IDF1"] == pytest.approx(0.625) and i["IDP"] == pytest.approx(5 / 8) and i["IDR"] == pytest.approx(5 / 8)
    te.same(te.run(data), {"Identity": i}, "identity hand")


# ---------------------------------------------------------------------------------------- ties
TIE_FREE_FIELDS = {"HOTA_TP", "HOTA_FN", "HOTA_FP", "DetA", "DetRe", "DetPr", "LocA", "CLR_TP", "CLR_FN",
                   "CLR_FP", "MOTP", "MOTP_sum", "CLR_Re", "CLR_Pr", "MODA", "IDTP", "IDFN", "IDFP", "IDF1",
                   "IDR", "IDP"}


def _duplicate_boxes():
    # Two tracker boxes identical on one gt: every frame has two optimal assignments.
    return seq([([0], [0, 1], [[0.8, 0.8]])] * 3 + [([0, 1], [0, 1], [[0.7, 0.7], [0.7, 0.7]])] * 2, 2, 2)


def _quantised(seed):
    gt, tr = make_sequence(60, 8, 6, seed=seed, switch=0.03, refrag=0.3)
    data = to_trackeval(gt, tr, 60)
    data["similarity_scores"] = [np.round(s * 4) / 4 for s in data["similarity_scores"]]  # many ties
    return data


@pytest.mark.parametrize("make", [_duplicate_boxes] + [lambda s=s: _quantised(s) for s in range(3)],
                         ids=["duplicate_boxes", "quantised0", "quantised1", "quantised2"])
def test_ties(te, make, mode):
    """Exact mode: TrackEval's own choice among tied optima (same matrices, scipy), every field.
    Default modes (kernel, numpy): an optimal choice too, so every field that does not depend on
    which one."""
    data = make()
    ref = te.run(data)
    if mode:
        te.same(ref, eval_sequence(data, exact=True), "exact")
    else:
        te.same(ref, eval_sequence(data), "default", fields=TIE_FREE_FIELDS)
