"""romp_fast.evaluation.tracking vs TrackEval (PyPI ``trackeval``) on generated sequences.

Generated sequences (``synthetic.make_sequence``): boxes moving and bouncing off the image borders
(crossing tracks), with misses, badly localised detections, false positives, id switches and
fragmented tracks resumed under new ids. TrackEval's HOTA, CLEAR and Identity run on the same data
dict in the test; every field must match (integers exactly, floats to 1e-9, HOTA per alpha)
in the three modes (the fused native kernel, the numpy path over batched linear_assignment, scipy per
frame), per sequence and combined.
"""
import copy

import numpy as np
import pytest

from romp_fast.evaluation.tracking import combine_sequences, eval_sequence, evaluate_sequence, from_trackeval
from romp_fast.evaluation.tracking.synthetic import make_sequence, to_trackeval

CASES = {  # name: make_sequence kwargs
    "plain": dict(num_frames=150, num_ids=12, per_frame=8),
    "switchy": dict(num_frames=150, num_ids=10, per_frame=8, switch=0.03, refrag=0.5, miss=0.2),
    "crowded": dict(num_frames=80, num_ids=30, per_frame=25, fp=4.0, image=(900.0, 600.0)),
    "sparse": dict(num_frames=120, num_ids=6, per_frame=2, miss=0.4, fp=0.3),
    "noisy": dict(num_frames=100, num_ids=12, per_frame=9, bad=0.3, switch=0.02),
}


def _data(name, seed):
    kw = dict(CASES[name])
    gt, tr = make_sequence(seed=seed, **kw)
    return to_trackeval(gt, tr, kw["num_frames"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_sequences_equal_trackeval(te, name, mode):
    for seed in range(3):
        data = _data(name, seed)
        ref = te.run(data)
        te.same(ref, eval_sequence(data, exact=mode), f"{name} seed {seed}")
        # the input is not modified
        again = eval_sequence(copy.deepcopy(data), exact=mode)
        te.same(ref, again, f"{name} seed {seed} (copy)")


def test_generated_sequences_have_the_events_they_claim(te):
    """The generator really produces misses, false positives, id switches and fragmentations."""
    ref = te.run(_data("switchy", 0))["CLEAR"]
    assert ref["IDSW"] > 5 and ref["Frag"] > 5 and ref["CLR_FP"] > 20 and ref["CLR_FN"] > 20
    assert 0 < ref["PT"] + ref["ML"] or ref["MT"] > 0


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.75])
def test_thresholds(te, threshold):
    data = _data("noisy", 1)
    te.same(te.run(data, threshold), eval_sequence(data, threshold=threshold), f"threshold {threshold}")


def test_combined_over_sequences_equals_trackeval(te):
    per_ref, per_ours = {}, {}
    for i, name in enumerate(sorted(CASES)):
        data = _data(name, 10 + i)
        per_ref[name] = te.run(data)
        per_ours[name] = eval_sequence(data)
    te.same(te.combine(per_ref), combine_sequences(per_ours), "combined")
    te.same(te.combine(per_ref), combine_sequences(list(per_ours.values())), "combined (list)")


def _empty(F, gt_counts, tr_counts, num_gt_ids=None, num_tr_ids=None, sim=0.9):
    """A sequence with the given detections per frame; gt i and tracker i overlap with ``sim``."""
    data = {"num_timesteps": F, "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for g, t in zip(gt_counts, tr_counts):
        data["gt_ids"].append(np.arange(g))
        data["tracker_ids"].append(np.arange(t))
        s = np.zeros((g, t))
        k = min(g, t)
        s[np.arange(k), np.arange(k)] = sim
        data["similarity_scores"].append(s)
    data["num_gt_ids"] = max(gt_counts, default=0) if num_gt_ids is None else num_gt_ids
    data["num_tracker_ids"] = max(tr_counts, default=0) if num_tr_ids is None else num_tr_ids
    data["num_gt_dets"] = int(sum(gt_counts))
    data["num_tracker_dets"] = int(sum(tr_counts))
    return data


@pytest.mark.parametrize("case", [
    "no_frames", "no_detections", "no_tracker_output", "no_ground_truth", "empty_frames_inside",
    "ids_that_never_appear", "only_low_similarity"])
def test_empty_and_degenerate_sequences_behave_as_trackeval(te, case, mode):
    data = {
        "no_frames": _empty(0, [], []),
        "no_detections": _empty(5, [0] * 5, [0] * 5),
        "no_tracker_output": _empty(4, [2, 3, 0, 1], [0, 0, 0, 0]),
        "no_ground_truth": _empty(4, [0, 0, 0, 0], [1, 2, 2, 0]),
        "empty_frames_inside": _empty(6, [2, 0, 2, 2, 2, 1], [2, 2, 0, 2, 1, 1]),
        "ids_that_never_appear": _empty(3, [1, 2, 1], [1, 1, 2], num_gt_ids=5, num_tr_ids=4),
        "only_low_similarity": _empty(3, [2, 2, 2], [2, 2, 2], sim=0.3),
    }[case]
    te.same(te.run(data), eval_sequence(data, exact=mode), case)


def test_evaluate_sequence_flat_fields(te):
    data = _data("plain", 5)
    ref = te.run(data)
    flat = evaluate_sequence(data)
    for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr"):
        assert flat[k] == pytest.approx(float(np.mean(ref["HOTA"][k])), abs=1e-12)
    for k in ("MOTA", "MOTP", "IDSW", "CLR_FP", "CLR_FN", "Frag", "MT", "PT", "ML", "CLR_Re", "CLR_Pr"):
        assert flat[k] == pytest.approx(float(ref["CLEAR"][k]), abs=1e-12)
    for k in ("IDF1", "IDP", "IDR"):
        assert flat[k] == pytest.approx(float(ref["Identity"][k]), abs=1e-12)
    per = evaluate_sequence(data, per_alpha=True)
    np.testing.assert_allclose(per["HOTA"], ref["HOTA"]["HOTA"], atol=1e-12)
    assert isinstance(flat["IDSW"], int) and isinstance(flat["MOTA"], float)
    only = evaluate_sequence(data, metrics=["Identity"])
    assert set(only) == {"IDTP", "IDFN", "IDFP", "IDF1", "IDR", "IDP"}


def test_prepared_sequence_is_reused(te):
    data = _data("plain", 2)
    seq = from_trackeval(data)
    a = eval_sequence(seq)
    b = eval_sequence(seq)  # cached edges and sub-problems give the same answer
    te.same(te.run(data), a, "first")
    te.same(te.run(data), b, "second")


@pytest.mark.parametrize("bad, match", [
    (lambda d: d.pop("gt_ids"), "missing"),
    (lambda d: d["similarity_scores"].__setitem__(3, np.zeros((1, 1))), r"similarity_scores\[3\] must be"),
    (lambda d: d["gt_ids"].__setitem__(2, np.array([0, 0])), r"gt_ids\[2\]"),
    (lambda d: d["tracker_ids"][1].__setitem__(0, 99), r"tracker_ids\[1\] holds id 99"),
    (lambda d: d["similarity_scores"][0].__setitem__((0, 0), np.nan), r"similarity_scores\[0\].*finite"),
    (lambda d: d["similarity_scores"][1].__setitem__((0, 0), -0.5), r"similarity_scores\[1\]"),
    (lambda d: d.__setitem__("num_gt_dets", 3), "num_gt_dets = 3"),
    (lambda d: d.__setitem__("num_timesteps", 99), "num_timesteps = 99"),
])
def test_bad_input_errors_name_the_problem(bad, match):
    data = _empty(5, [2, 2, 2, 2, 2], [2, 2, 2, 2, 2])
    bad(data)
    with pytest.raises((ValueError, KeyError), match=match):
        evaluate_sequence(data)


def test_bad_arguments():
    data = _empty(2, [1, 1], [1, 1])
    with pytest.raises(ValueError, match="unknown tracking metrics"):
        evaluate_sequence(data, metrics=["MOTA"])
    with pytest.raises(ValueError, match="threshold must be"):
        evaluate_sequence(data, threshold=0.0)
