"""Relative Human evaluator: {set}_annots.npz and {set}_results.npz written here in the benchmark's
layout (BK / OCHuman 19-joint and CrowdPose 14-joint keypoints, depth_id, age), expected numbers
from a numpy fp64 re-statement of the protocol (pairs i < j, 0.2 m, 0.3 per miss)."""
import itertools
import json

import numpy as np
import pytest

from romp_fast.evaluation.benchmarks.relative_human import BenchmarkFileError, score_relative_human

# Where each CrowdPose-14 joint sits in the two 19-joint layouts (RH_evaluation/evaluation.py's
# tables, read by hand); the CrowdPose neck (13) has no source there.
CP_IN_BK = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, None]
CP_IN_OCH = [3, 0, 4, 1, 5, 2, 9, 6, 10, 7, 11, 8, 12, None]
AGE_CENTRE = [0.0, 0.3, 0.6, 0.9]  # BEV's kid-offset bin centres
RNG = np.random.default_rng(0)


def cp_person(cx, cy=300.0):
    return np.stack([cx + RNG.uniform(-60, 60, 14), cy + RNG.uniform(-150, 150, 14)], 1)


def gt_kp(cp, layout, vis=None):
    """CrowdPose-14 joints -> the annotation's kp2d in `layout` (x, y, visibility)."""
    vis = np.ones(14, bool) if vis is None else vis
    if layout == "cp":
        return np.concatenate([cp, vis[:, None] * 2.0], 1)
    table = CP_IN_BK if layout == "bk" else CP_IN_OCH
    kp = np.concatenate([RNG.uniform(0, 500, (19, 2)), np.ones((19, 1))], 1)  # unmapped joints: junk
    for c, src in enumerate(table):
        if src is not None:
            kp[src] = [cp[c, 0], cp[c, 1], 2.0 * vis[c]]
    return kp


# image name -> layout; "0000001.jpg" has a 7-character stem (BK), the others are OCHuman / CrowdPose
IMAGES = {"0000001.jpg": "bk", "och_000042.jpg": "ochuman", "crowd_17.jpg": "cp"}


def make_scene():
    """GT people: (image, cp joints, depth_id, age) on well-separated x positions."""
    people = {"0000001.jpg": [(200, 0, 0), (500, 0, 2), (800, 1, 1)],
              "och_000042.jpg": [(250, 0, 3), (650, 2, 0)],
              "crowd_17.jpg": [(200, 1, 0), (450, 0, 2), (700, -1, 1), (950, 1, 0)]}
    return {img: [(cp_person(x), d, a) for x, d, a in ps] for img, ps in people.items()}


def write_gt(tmp_path, scene, fmt="npz"):
    annots = {}
    for img, ps in scene.items():
        layout = IMAGES[img]
        annots[img] = [{"bbox": [0, 0, 1, 1], "kp2d": gt_kp(cp, layout), "depth_id": d, "age": a,
                        "gender": 0, "body_type": 0} for cp, d, a in ps]
        annots[img].append({"bbox": [0, 0, 1, 1], "kp2d": None, "depth_id": 0, "age": 0})  # no keypoints
    if fmt == "json":
        p = tmp_path / "test_annots.json"
        p.write_text(json.dumps({k: [{**q, "kp2d": None if q["kp2d"] is None else q["kp2d"].tolist()} for q in v]
                                 for k, v in annots.items()}))
        return p
    np.savez(tmp_path / "test_annots.npz", annots=annots)
    return tmp_path / "test_annots.npz"


def write_preds(tmp_path, scene, z, drop=(), extra=(), shuffle=False, noise=0.0, ages=None, as_dict=False):
    """z[(img, i)] = predicted depth; drop = GT people not predicted; extra = (img, cp) false positives."""
    results = {}
    for img, ps in scene.items():
        people = []
        for i, (cp, d, a) in enumerate(ps):
            if (img, i) in drop:
                continue
            age = a if ages is None else ages[(img, i)]
            betas = np.zeros(11)
            betas[10] = AGE_CENTRE[age] if age >= 0 else 0.0
            people.append({"kp2ds": cp + RNG.normal(scale=noise, size=cp.shape),
                           "trans": np.array([0.1, 0.2, z[(img, i)]]), "smpl_betas": betas,
                           "global_orient": np.zeros(3), "body_pose": np.zeros((23, 3))})
        people += [{"kp2ds": cp, "trans": np.array([0, 0, 5.0]), "smpl_betas": np.zeros(11)}
                   for im, cp in extra if im == img]
        if shuffle:
            people = [people[k] for k in RNG.permutation(len(people))]
        if as_dict:
            people = {k: np.stack([p[k] for p in people]) for k in ("kp2ds", "trans", "smpl_betas")}
        results[img] = people
    np.savez(tmp_path / "test_results.npz", results=results)
    return tmp_path / "test_results.npz"


def expected_pcrd(scene, z, missed, thresh=0.2, penalty=0.3):
    """numpy: pairs among matched people with known layers, per image, i < j in GT order."""
    pairs = []  # (correct, age_i, age_j, category)
    for img, ps in scene.items():
        idx = [i for i in range(len(ps)) if (img, i) not in missed and ps[i][1] >= 0]
        for i, j in itertools.combinations(idx, 2):
            dd, did = z[(img, j)] - z[(img, i)], ps[j][1] - ps[i][1]
            ok = abs(dd) < thresh if did == 0 else (dd < -thresh if did < 0 else dd > thresh)
            pairs.append((ok, ps[i][2], ps[j][2], int(np.sign(did))))
    miss_ages = [scene[img][i][2] for img, i in missed]
    out = {"all": sum(p[0] for p in pairs) / (len(pairs) + penalty * len(miss_ages))}
    for a, name in enumerate(["adult", "teen", "kid", "baby"]):
        sel = [p for p in pairs if a in (p[1], p[2])]
        if sel:
            out[name] = sum(p[0] for p in sel) / (len(sel) + penalty * miss_ages.count(a))
    for c, name in ((0, "equal"), (-1, "closer"), (1, "farther")):
        sel = [p for p in pairs if p[3] == c]
        out[name] = sum(p[0] for p in sel) / len(sel) if sel else float("nan")
    return out


def layered_depths(scene, jitter=0.05):
    return {(img, i): 2.0 + 1.0 * max(d, 0) + RNG.uniform(-jitter, jitter) for img, ps in scene.items()
            for i, (cp, d, a) in enumerate(ps)}


@pytest.mark.parametrize("fmt", ["npz", "json"])
def test_perfect_predictions(tmp_path, fmt):
    scene = make_scene()
    z = layered_depths(scene)
    r = score_relative_human(write_gt(tmp_path, scene, fmt), write_preds(tmp_path, scene, z), gt_box="visible")
    s = r.summary
    assert s["PCRD_0.2_pct"] == pytest.approx(100.0) and s["F1"] == 1.0 and s["F1_rh_script"] == 1.0
    assert s["mPCKh_pct"] == pytest.approx(100.0) and s["age_acc_pct"] == pytest.approx(100.0)
    assert s["gt_people"] == 9 and s["misses"] == 0  # the person without kp2d is not evaluated
    assert [row["age"] for row in r.tables["relative_human_age"]] == ["adult", "teen", "kid", "baby"]


@pytest.mark.parametrize("shuffle,as_dict", [(False, False), (True, False), (True, True)])
def test_depth_errors_misses_and_false_positive(tmp_path, shuffle, as_dict):
    scene = make_scene()
    z = layered_depths(scene)
    z[("0000001.jpg", 2)] = 1.0          # layer 1 predicted in front of layer-0 people: 2 wrong pairs
    z[("crowd_17.jpg", 3)] = 2.05        # layer 1 predicted at layer-0 depth
    missed = {("och_000042.jpg", 0), ("crowd_17.jpg", 1)}
    extra = [("crowd_17.jpg", cp_person(1200))]
    ages = {k: scene[k[0]][k[1]][2] for k in z}
    ages[("0000001.jpg", 0)] = 1  # adult predicted teen: 0.667
    ages[("crowd_17.jpg", 0)] = 3  # adult predicted baby: 0
    preds = write_preds(tmp_path, scene, z, drop=missed, extra=extra, shuffle=shuffle, ages=ages, as_dict=as_dict)
    r = score_relative_human(write_gt(tmp_path, scene), preds, gt_box="visible")
    s, ref = r.summary, expected_pcrd(scene, z, missed)
    assert s["PCRD_0.2_pct"] == pytest.approx(100 * ref["all"])
    for name in ("adult", "teen", "kid"):
        assert s[f"PCRD_0.2_{name}_pct"] == pytest.approx(100 * ref[name])
    assert "baby" not in ref and np.isnan(s["PCRD_0.2_baby_pct"])  # the only baby was missed: no pair
    assert s["depth_equal_acc_pct"] == pytest.approx(100 * ref["equal"])
    assert s["depth_farther_acc_pct"] == pytest.approx(100 * ref["farther"])
    assert (s["misses"], s["false_positives"], s["matched"]) == (2, 1, 7)
    assert s["precision"] == pytest.approx(7 / 8) and s["recall"] == pytest.approx(7 / 9)
    # the script: TP = #predictions - misses = 8 - 2
    assert s["precision_rh_script"] == pytest.approx(6 / 7) and s["recall_rh_script"] == pytest.approx(6 / 8)
    assert s["age_acc_pct"] == pytest.approx(100 * (5 + 0.667) / 7)


def test_mpckh_by_hand(tmp_path):
    scene = {"crowd_17.jpg": [(cp_person(300), 0, 0)]}
    cp = scene["crowd_17.jpg"][0][0]
    diag = np.hypot(*(cp.max(0) - cp.min(0)))
    pred = cp.copy()
    pred[:3, 0] += 0.2 * diag  # three joints beyond 0.143 x diagonal
    np.savez(tmp_path / "r.npz", results={"crowd_17.jpg": [{"kp2ds": pred, "trans": np.array([0, 0, 3.0])}]})
    r = score_relative_human(write_gt(tmp_path, scene), tmp_path / "r.npz")
    assert r.summary["mPCKh_pct"] == pytest.approx(100 * 11 / 14)
    assert np.isnan(r.summary["age_acc_pct"]) and any("no prediction carried an age" in n for n in r.notes)


def test_script_box_quirk_and_visible_option(tmp_path):
    """A small BK person far from the origin: with the script's box (reaching the -2 neck marker)
    the IoU falls under 0.05 and the person is missed; gt_box='visible' matches it."""
    cp = np.stack([1500 + np.linspace(0, 40, 14), 1500 + np.linspace(0, 80, 14)], 1)
    scene = {"0000001.jpg": [(cp, 0, 0)]}
    gt = write_gt(tmp_path, scene)
    preds = write_preds(tmp_path, scene, {("0000001.jpg", 0): 3.0})
    assert score_relative_human(gt, preds).summary["misses"] == 1
    assert score_relative_human(gt, preds, gt_box="visible").summary["misses"] == 0


def test_malformed_files_name_file_and_field(tmp_path):
    scene = make_scene()
    preds = write_preds(tmp_path, scene, layered_depths(scene))
    np.savez(tmp_path / "bad_annots.npz",
             annots={"crowd_17.jpg": [{"kp2d": np.zeros((17, 3)), "depth_id": 0, "age": 0}]})
    with pytest.raises(BenchmarkFileError, match=r"bad_annots.npz: image 'crowd_17.jpg' person 0 field 'kp2d' must"):
        score_relative_human(tmp_path / "bad_annots.npz", preds)
    np.savez(tmp_path / "nodepth.npz", annots={"crowd_17.jpg": [{"kp2d": gt_kp(cp_person(100), "cp"), "age": 0}]})
    with pytest.raises(BenchmarkFileError, match=r"nodepth.npz: image 'crowd_17.jpg' person 0: missing field 'dep"):
        score_relative_human(tmp_path / "nodepth.npz", preds)
    np.savez(tmp_path / "badpred.npz", results={"crowd_17.jpg": [{"kp2ds": np.zeros((14, 2))}]})
    with pytest.raises(BenchmarkFileError, match=r"badpred.npz: image 'crowd_17.jpg' person 0: missing field"):
        score_relative_human(write_gt(tmp_path, scene), tmp_path / "badpred.npz")
    with pytest.raises(ValueError, match="gt_box must be"):
        score_relative_human(write_gt(tmp_path, scene), preds, gt_box="box")


def test_result_files(tmp_path):
    from romp_fast.evaluation.report import write_result

    scene = make_scene()
    preds = write_preds(tmp_path, scene, layered_depths(scene))
    r = score_relative_human(write_gt(tmp_path, scene), preds, progress=True)
    paths = write_result(r, tmp_path / "out")
    assert {p.name for p in paths} == {"relative-human.json", "relative_human_age.csv"}
    assert json.loads((tmp_path / "out" / "relative-human.json").read_text())["summary"]["PCRD_0.2_pct"] is not None
