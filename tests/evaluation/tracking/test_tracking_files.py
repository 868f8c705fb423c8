"""Tracking files end to end: MOTChallenge folders scored by ``score_tracking`` vs TrackEval's own
``Evaluator`` + ``MotChallenge2DBox`` (its reader, MOT17 preprocessing with distractor classes and
"consider" flags, and sequence combination) on the same files; TRACE-style npz files vs TrackEval's
metrics on boxes rebuilt here from the 2D joints; readers' errors; the BenchmarkResult layout."""
import contextlib
import io
import json

import numpy as np
import pytest

from romp_fast.evaluation.benchmarks import get_scorer
from romp_fast.evaluation.benchmarks._io import BenchmarkFileError
from romp_fast.evaluation.report import write_result
from romp_fast.evaluation.tracking.files import SUMMARY_FIELDS, score_tracking
from romp_fast.evaluation.tracking.formats import read_mot_file
from romp_fast.evaluation.tracking.synthetic import make_sequence

trackeval = pytest.importorskip("trackeval")
RNG = np.random.default_rng(3)


def write_mot(root, names, F=80, classes=True):
    gt_root = root / "gt" / "mot_challenge"
    (gt_root / "seqmaps").mkdir(parents=True)
    tr_dir = root / "trackers" / "mot_challenge" / "MOT17-train" / "tr" / "data"
    tr_dir.mkdir(parents=True)
    (gt_root / "seqmaps" / "MOT17-train.txt").write_text("name\n" + "\n".join(names) + "\n")
    for i, n in enumerate(names):
        gt, tr = make_sequence(F, 10, 7, seed=20 + i, switch=0.02, refrag=0.3)
        d = gt_root / "MOT17-train" / n
        (d / "gt").mkdir(parents=True)
        (d / "seqinfo.ini").write_text(f"[Sequence]\nname={n}\nseqLength={F}\n")
        cls = RNG.choice([1, 1, 1, 1, 1, 1, 2, 7, 8, 12, 3], size=len(gt.ids)) if classes else np.ones(len(gt.ids), int)
        keep = (RNG.random(len(gt.ids)) > 0.05).astype(int)
        with open(d / "gt" / "gt.txt", "w") as f:
            for fr, k, b, c, z in zip(gt.frame, gt.ids, gt.boxes, cls, keep):
                f.write(f"{fr + 1},{k + 1},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},{z},{c},1\n")
        with open(tr_dir / f"{n}.txt", "w") as f:
            for fr, k, b in zip(tr.frame, tr.ids, tr.boxes):
                f.write(f"{fr + 1},{k + 1},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},1,-1,-1,-1\n")
    return gt_root, tr_dir


def trackeval_folder(gt_root, tr_dir):
    cfg = trackeval.Evaluator.get_default_eval_config()
    cfg.update(USE_PARALLEL=False, PRINT_RESULTS=False, PRINT_CONFIG=False, TIME_PROGRESS=False, OUTPUT_SUMMARY=False,
               OUTPUT_DETAILED=False, PLOT_CURVES=False)
    dcfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    dcfg.update(GT_FOLDER=str(gt_root), TRACKERS_FOLDER=str(tr_dir.parents[2]), PRINT_CONFIG=False)
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    with contextlib.redirect_stdout(io.StringIO()):
        out, _ = trackeval.Evaluator(cfg).evaluate([trackeval.datasets.MotChallenge2DBox(dcfg)], metrics)
    res = out["MotChallenge2DBox"][tr_dir.parent.name]
    flat = {}
    for seq, by_class in res.items():
        flat["COMBINED" if seq == "COMBINED_SEQ" else seq] = {
            k: float(np.mean(v)) for m in by_class["pedestrian"].values() for k, v in m.items()}
    return flat


@pytest.mark.parametrize("matching", [None, "scipy"])
def test_mot_folder_equals_trackeval_evaluator(tmp_path, matching):
    gt_root, tr_dir = write_mot(tmp_path, ["SEQ-A", "SEQ-B", "SEQ-C"])
    ref = trackeval_folder(gt_root, tr_dir)
    res = score_tracking(gt_root / "MOT17-train", tr_dir.parent, matching=matching)
    rows = res.tables["per_sequence"]
    assert [r["sequence"] for r in rows] == ["SEQ-A", "SEQ-B", "SEQ-C", "COMBINED"]
    for row in rows:
        for k in SUMMARY_FIELDS:
            assert row[k] == pytest.approx(ref[row["sequence"]][k], abs=1e-9), (row["sequence"], k)
    assert res.summary == {k: v for k, v in rows[-1].items() if k != "sequence"}
    alpha = res.details["hota_per_alpha"]
    assert len(res.details["alpha"]) == 19 and len(alpha["COMBINED"]["HOTA"]) == 19
    assert np.mean(alpha["SEQ-B"]["AssA"]) == pytest.approx(rows[1]["AssA"])
    # the preprocessing really removed something: distractor-matched tracker boxes and ignored gt
    plain = score_tracking(gt_root / "MOT17-train", tr_dir.parent, preprocess=False)
    assert plain.summary["CLR_FN"] > res.summary["CLR_FN"]


def test_registered_for_the_cli_and_writes_results(tmp_path):
    gt_root, tr_dir = write_mot(tmp_path, ["S1", "S2"], F=40, classes=False)
    scorer = get_scorer("tracking")
    res = scorer(str(gt_root / "MOT17-train"), str(tr_dir), progress=False, threshold="0.5", motmetrics="true")
    mm = res.details["motmetrics"]
    assert set(mm) == {"S1", "S2", "OVERALL"} and mm["OVERALL"]["num_objects"] == sum(
        mm[s]["num_objects"] for s in ("S1", "S2"))
    paths = write_result(res, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "tracking.json").read_text())
    assert saved["summary"]["MOTA"] == pytest.approx(res.summary["MOTA"])
    assert {p.name for p in paths} >= {"tracking.json", "per_sequence.csv", "hota_alpha.png"}


def joints_for(boxes, K=14):
    """2D joints spread inside each box (the box is their bounding box)."""
    n = len(boxes)
    u = RNG.uniform(0, 1, (n, K, 2))
    u[:, 0] = 0.0
    u[:, 1] = 1.0
    return boxes[:, None, :2] + u * boxes[:, None, 2:]


def te_data_from(gt, tr, F, pred_boxes):
    """TrackEval's data dict from detections, boxes compared with TrackEval's own IoU."""
    Base = trackeval.datasets._base_dataset._BaseDataset
    gu, tu = np.unique(gt.ids), np.unique(tr.ids)
    data = {"num_timesteps": F, "num_gt_ids": len(gu), "num_tracker_ids": len(tu), "num_gt_dets": len(gt.ids),
            "num_tracker_dets": len(tr.ids), "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for f in range(F):
        g, t = np.flatnonzero(gt.frame == f), np.flatnonzero(tr.frame == f)
        data["gt_ids"].append(np.searchsorted(gu, gt.ids[g]))
        data["tracker_ids"].append(np.searchsorted(tu, tr.ids[t]))
        data["similarity_scores"].append(Base._calculate_box_ious(gt.boxes[g].copy(), pred_boxes[t].copy()))
    return data


@pytest.mark.parametrize("layout", ["pickled", "flat"])
def test_trace_npz_with_boxes_from_joints(tmp_path, te, layout):
    from romp_fast.evaluation.tracking import eval_sequence
    F, scale = 50, np.array([1.1, 1.18])
    gt, tr = make_sequence(F, 8, 5, seed=4, switch=0.02)
    j2d = joints_for(tr.boxes)
    # TRACE's pj2ds_to_bbox: the joint box scaled about its centre
    lo, hi = j2d.min(1), j2d.max(1)
    pred_boxes = np.concatenate([(lo + hi) / 2 - (hi - lo) * scale / 2, (hi - lo) * scale], 1)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    names = {f: f"image_{f:05d}.jpg" for f in range(F)}
    if layout == "pickled":
        gt_dict = {names[f]: {"gt_ids": gt.ids[gt.frame == f], "gt_bboxes": gt.boxes[gt.frame == f]} for f in range(F)}
        pr_dict = {names[f]: {"track_ids": tr.ids[tr.frame == f], "track_bbox": tr.boxes[tr.frame == f] * 0,
                              "pj2ds": j2d[tr.frame == f]} for f in range(F)}
        np.savez(tmp_path / "gt" / "vid1.npz", tracking=np.array(gt_dict, dtype=object))
        np.savez(tmp_path / "pred" / "vid1_tracking.npz", tracking=np.array(pr_dict, dtype=object))
    else:
        np.savez(tmp_path / "gt" / "vid1.npz", frame=gt.frame + 1, track_id=gt.ids, bbox=gt.boxes)
        np.savez(tmp_path / "pred" / "vid1.npz", frame=tr.frame + 1, track_id=tr.ids, joints2d=j2d)
    res = score_tracking(tmp_path / "gt", tmp_path / "pred", pred_boxes="joints", box_scale="1.1,1.18")
    frames = sorted(set(gt.frame) | set(tr.frame))
    remap = lambda d: type(d)(np.searchsorted(frames, d.frame), d.ids, d.boxes)  # noqa: E731
    data = te_data_from(remap(gt), remap(tr), len(frames), pred_boxes)
    ref = te.run(data)
    row = res.tables["per_sequence"][0]
    for metric, fields in ref.items():
        for k, v in fields.items():
            if k in row:
                assert row[k] == pytest.approx(float(np.mean(v)), abs=1e-9), k
    te.same(ref, eval_sequence(data), "dict")


def test_joints3d_similarity_from_npz(tmp_path):
    F = 20
    gt, tr = make_sequence(F, 5, 4, seed=9)
    gj = RNG.normal(0, 1, (len(gt.ids), 6, 3))
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    np.savez(tmp_path / "gt" / "s.npz", frame=gt.frame, track_id=gt.ids, joints3d=gj)
    np.savez(tmp_path / "pred" / "s.npz", frame=gt.frame, track_id=gt.ids + 100, joints3d=gj + 0.01)
    res = score_tracking(tmp_path / "gt", tmp_path / "pred", similarity="joints3d", zero_distance=0.5)
    assert res.summary["MOTA"] == 1.0 and res.summary["IDF1"] == 1.0 and res.summary["IDSW"] == 0


def test_trace_gt_lists_and_keypoint_similarity(tmp_path):
    """TRACE's ground truth lists ``[paths, gt_ids, gt_bboxes, ...]`` per frame; 2D keypoint (OKS)
    similarity when both sides have joints."""
    F = 30
    gt, tr = make_sequence(F, 5, 4, seed=11)
    gj = joints_for(gt.boxes, K=17)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    lists = {f: [["img"], gt.ids[gt.frame == f], gt.boxes[gt.frame == f], gt.ids[gt.frame == f]] for f in range(F)}
    np.savez(tmp_path / "gt" / "v.npz", tracking=np.array(lists, dtype=object))
    np.savez(tmp_path / "pred" / "v.npz", frame=gt.frame, track_id=gt.ids + 7, bbox=gt.boxes + 1.0)
    res = score_tracking(tmp_path / "gt", tmp_path / "pred")
    assert res.summary["IDF1"] == 1.0 and res.summary["CLR_FP"] == 0 and res.summary["HOTA"] > 0.9
    np.savez(tmp_path / "gt" / "v.npz", frame=gt.frame, track_id=gt.ids, joints2d=gj)
    np.savez(tmp_path / "pred" / "v.npz", frame=gt.frame, track_id=gt.ids, joints2d=gj + RNG.normal(0, 1, gj.shape))
    res = score_tracking(tmp_path / "gt", tmp_path / "pred", similarity="keypoints")
    assert res.summary["MOTA"] == 1.0 and res.summary["LocA"] > 0.9
    with pytest.raises(BenchmarkFileError, match="needs 'joints3d'"):
        score_tracking(tmp_path / "gt", tmp_path / "pred", similarity="joints3d")


@pytest.mark.parametrize("text, match", [
    ("1,1,10,10,5,5,1,1,1\n1,2,10,x,5,5,1,1,1\n", r"gt\.txt:2: not a number"),
    ("1,1,10,10,5,5,1,1,1\n\n2,1,10,10\n", r"gt\.txt:3: needs at least 6 columns"),
    ("0,1,10,10,5,5,1,1,1\n", r"gt\.txt:1: frame must be an integer >= 1"),
    ("1.5,1,10,10,5,5,1,1,1\n", r"gt\.txt:1: frame must be an integer"),
])
def test_malformed_mot_lines_name_file_and_line(tmp_path, text, match):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(BenchmarkFileError, match=match):
        read_mot_file(p)


def test_folder_errors(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(BenchmarkFileError, match="no sequences"):
        score_tracking(tmp_path / "gt", tmp_path / "pred")
    (tmp_path / "gt" / "a.txt").write_text("1,1,10,10,5,5,1,1,1\n1,1,20,10,5,5,1,1,1\n")
    with pytest.raises(BenchmarkFileError, match="no predictions for sequence 'a'"):
        score_tracking(tmp_path / "gt", tmp_path / "pred")
    (tmp_path / "pred" / "a.txt").write_text("1,7,10,10,5,5,1\n")
    with pytest.raises(BenchmarkFileError, match="id 1 appears twice in frame 1"):
        score_tracking(tmp_path / "gt", tmp_path / "pred")
    with pytest.raises(ValueError, match="matching must be one of"):
        score_tracking(tmp_path / "gt", tmp_path / "pred", matching="greedy")
    with pytest.raises(ValueError, match="unknown options"):
        score_tracking(tmp_path / "gt", tmp_path / "pred", treshold=0.4)
    seq = tmp_path / "mot" / "S" / "gt"
    seq.mkdir(parents=True)
    (seq / "gt.txt").write_text("1,1,10,10,5,5,1,1,1\n9,1,10,10,5,5,1,1,1\n")
    (seq.parent / "seqinfo.ini").write_text("[Sequence]\nseqLength=5\n")
    (tmp_path / "pred" / "S.txt").write_text("1,7,10,10,5,5,1\n")
    with pytest.raises(BenchmarkFileError, match="frame 9 is beyond seqLength = 5"):
        score_tracking(tmp_path / "mot", tmp_path / "pred")


def test_missing_predictions_scored_as_no_output(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "a.txt").write_text("1,1,10,10,5,5\n2,1,10,10,5,5\n")
    res = score_tracking(tmp_path / "gt", tmp_path / "pred", missing_pred="empty")
    assert (res.summary["CLR_FN"], res.summary["CLR_TP"], res.summary["ML"], res.summary["IDFN"]) == (2, 0, 1, 2)
