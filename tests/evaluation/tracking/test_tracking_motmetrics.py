"""CLEAR and Identity under py-motmetrics' conventions vs py-motmetrics itself (``MOTAccumulator``
fed the distance ``1 - sim`` with NaN above ``max_distance``, as ``iou_matrix(max_iou=...)`` builds
it), per sequence and for its OVERALL row; plus the conventions that differ from TrackEval."""
import numpy as np
import pytest

from romp_fast.evaluation.tracking import eval_sequence, from_trackeval
from romp_fast.evaluation.tracking.motmetrics_compat import combine_motmetrics, eval_motmetrics
from romp_fast.evaluation.tracking.synthetic import make_sequence, to_trackeval

mm = pytest.importorskip("motmetrics")

NAMES = ["num_frames", "num_objects", "num_predictions", "num_unique_objects", "num_matches", "num_switches",
         "num_false_positives", "num_misses", "num_detections", "num_fragmentations", "mostly_tracked",
         "partially_tracked", "mostly_lost", "idtp", "idfn", "idfp", "mota", "motp", "precision", "recall",
         "idp", "idr", "idf1"]


def accumulate(data, max_distance):
    acc = mm.MOTAccumulator(auto_id=True)
    for g, t, s in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        d = 1 - s
        acc.update(g, t, np.where(d > max_distance, np.nan, d))
    return acc


def assert_mm_equal(ref, got, where):
    for k in NAMES:
        assert float(got[k]) == pytest.approx(float(ref[k]), abs=1e-9, nan_ok=True), f"{where}: {k}"


@pytest.mark.parametrize("max_distance", [0.5, 0.99])
def test_generated_sequences_equal_motmetrics(max_distance):
    accs, ours = [], []
    for seed in range(4):
        gt, tr = make_sequence(120, 10, 7, seed=seed, switch=0.02, refrag=0.4, miss=0.15)
        data = to_trackeval(gt, tr, 120)
        acc = accumulate(data, max_distance)
        ref = mm.metrics.create().compute(acc, metrics=NAMES, return_dataframe=False)
        got = eval_motmetrics(from_trackeval(data), max_distance)
        assert_mm_equal(ref, got, f"seed {seed}")
        accs.append(acc)
        ours.append(got)
    overall = mm.metrics.create().compute_many(accs, metrics=NAMES, names=[str(i) for i in range(4)],
                                               generate_overall=True).loc["OVERALL"]
    assert_mm_equal(overall, combine_motmetrics(ours), "overall")


def test_clear_and_identity_agree_with_motmetrics_where_conventions_coincide(te):
    """On sequences without crossing ambiguities both libraries count the same matches and
    switches, so TrackEval's MOTA / IDF1 / precision / recall equal py-motmetrics' here."""
    for seed in range(3):
        gt, tr = make_sequence(100, 6, 3, seed=seed, switch=0.02, refrag=0.3, fp=0.5, bad=0.0)
        data = to_trackeval(gt, tr, 100)
        ref = mm.metrics.create().compute(accumulate(data, 0.5), metrics=NAMES, return_dataframe=False)
        ours = eval_sequence(data)
        c, i = ours["CLEAR"], ours["Identity"]
        assert c["IDSW"] == ref["num_switches"] and c["CLR_FP"] == ref["num_false_positives"]
        assert c["CLR_FN"] == ref["num_misses"]
        for a, b in ((c["MOTA"], ref["mota"]), (c["CLR_Pr"], ref["precision"]), (c["CLR_Re"], ref["recall"]),
                     (c["MOTP"], 1 - ref["motp"]), (i["IDF1"], ref["idf1"]), (i["IDP"], ref["idp"]),
                     (i["IDR"], ref["idr"])):
            assert a == pytest.approx(b, abs=1e-9)


def _data(frames, G, T):
    return {"num_timesteps": len(frames), "num_gt_ids": G, "num_tracker_ids": T,
            "gt_ids": [np.array(g, int) for g, _, _ in frames], "tracker_ids": [np.array(t, int) for _, t, _ in frames],
            "similarity_scores": [np.array(s, float).reshape(len(g), len(t)) for g, t, s in frames],
            "num_gt_dets": sum(len(g) for g, _, _ in frames), "num_tracker_dets": sum(len(t) for _, t, _ in frames)}


def test_conventions_that_differ_from_trackeval():
    # tracked 4 of 5 frames: motmetrics "mostly tracked" (>= 0.8), TrackEval "partially" (> 0.8 needed)
    a = _data([([0], [0], [[0.9]])] * 4 + [([0], [], [])], 1, 1)
    assert eval_motmetrics(from_trackeval(a))["mostly_tracked"] == 1
    assert eval_sequence(a)["CLEAR"]["MT"] == 0
    # a frame without tracker output in the middle of a track: a fragmentation for motmetrics only
    b = _data([([0], [0], [[0.9]]), ([0], [], []), ([0], [0], [[0.9]])], 1, 1)
    assert eval_motmetrics(from_trackeval(b))["num_fragmentations"] == 1
    assert eval_sequence(b)["CLEAR"]["Frag"] == 0
    for d in (a, b):
        ref = mm.metrics.create().compute(accumulate(d, 0.5), metrics=NAMES, return_dataframe=False)
        assert_mm_equal(ref, eval_motmetrics(from_trackeval(d)), "hand")
    # motmetrics keeps the pair established at any earlier time, TrackEval only the previous frame's:
    # A-x; then A unmatched (only y, overlapping 0.3); then x (0.6) and y (0.95): motmetrics keeps
    # A-x (no switch), TrackEval has no bonus left and takes the better A-y (a switch).
    c = _data([([0], [0], [[0.9]]), ([0], [1], [[0.3]]), ([0], [0, 1], [[0.6, 0.95]])], 1, 2)
    ref = mm.metrics.create().compute(accumulate(c, 0.5), metrics=NAMES, return_dataframe=False)
    assert_mm_equal(ref, eval_motmetrics(from_trackeval(c)), "continuation")
    assert eval_motmetrics(from_trackeval(c))["num_switches"] == 0
    assert eval_sequence(c)["CLEAR"]["IDSW"] == 1


def test_empty_sequences_match_motmetrics():
    for frames in ([([0, 1], [], [])] * 3, [([], [0], [])] * 2, [([], [], [])] * 2):
        d = _data(frames, 2, 1)
        d["num_gt_ids"] = max((len(g) for g, _, _ in frames), default=0)
        d["num_tracker_ids"] = max((len(t) for _, t, _ in frames), default=0)
        ref = mm.metrics.create().compute(accumulate(d, 0.5), metrics=NAMES, return_dataframe=False)
        assert_mm_equal(ref, eval_motmetrics(from_trackeval(d)), str(frames[0]))
