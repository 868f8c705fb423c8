"""AGORA evaluator: ground truth in the flat .npz layout and as the kit's DataFrame pickle (through
a pandas stand-in), predictions as the kit's per-person pickles; expected numbers from a numpy
fp64 re-statement of the kit (hip-midpoint alignment, mm, P/R/F1, NMJE = MPJPE / F1)."""
import pickle
import sys
import types

import numpy as np
import pytest

from romp_fast.evaluation.benchmarks.agora import (BenchmarkFileError, agora_gt_to_npz,
                                                   export_agora_predictions, score_agora)

RNG = np.random.default_rng(0)
V = 6890
IMG = ["ag_validationset_renderpeople_bfh_archviz_5_10_cam00_00000.png",
       "ag_validationset_renderpeople_bfh_flowers_5_15_cam01_00001.png"]


def person(cx, kid=False, occ=10.0, valid=True):
    j2 = np.stack([cx + RNG.uniform(-80, 80, 45), 1000 + RNG.uniform(-300, 300, 45)], 1)
    j3 = RNG.normal(scale=0.4, size=(45, 3)) + [0, 0, 6.0]
    return {"j2": j2, "j3": j3, "v": RNG.normal(scale=0.4, size=(V, 3)) + [0, 0, 6.0], "kid": kid, "occ": occ,
            "valid": valid}


def scene():
    return {IMG[0]: [person(400), person(1200, kid=True, occ=35.0), person(2000, occ=95.0), person(2800, valid=False)],
            IMG[1]: [person(600, kid=True, occ=72.0), person(1800, occ=5.0)]}


def columns(sc):
    rows = list(sc)
    return {"imgPath": rows, "isValid": [[p["valid"] for p in sc[r]] for r in rows],
            "occlusion": [[p["occ"] for p in sc[r]] for r in rows], "kid": [[p["kid"] for p in sc[r]] for r in rows],
            "gt_joints_2d": [[p["j2"] for p in sc[r]] for r in rows],
            "gt_joints_3d": [[p["j3"] for p in sc[r]] for r in rows],
            "gt_verts": [[p["v"] for p in sc[r]] for r in rows]}


def write_npz(path, sc, drop=()):
    people = [(i, p) for i, img in enumerate(sc) for p in sc[img]]
    arrays = {"imgPath": np.array(list(sc)), "person_image": np.array([i for i, _ in people]),
              "isValid": np.array([p["valid"] for _, p in people]),
              "occlusion": np.array([p["occ"] for _, p in people]),
              "kid": np.array([p["kid"] for _, p in people]), "gt_joints_2d": np.array([p["j2"] for _, p in people]),
              "gt_joints_3d": np.array([p["j3"] for _, p in people]), "gt_verts": np.array([p["v"] for _, p in people])}
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


def write_preds(folder, sc, noise=0.0, skip=(), extra=(), suffix="", order=None):
    """One pickle per predicted person; skip = (image, gt index) not predicted; extra = (image, cx) FPs."""
    folder.mkdir(exist_ok=True)
    truth = {}
    for img, ps in sc.items():
        out = []
        for g, p in enumerate(ps):
            if (img, g) in skip:
                continue
            j3 = p["j3"][:24] + RNG.normal(scale=noise, size=(24, 3))
            v = p["v"] + RNG.normal(scale=noise, size=(V, 3))
            out.append({"joints": p["j2"][:24] + 2.0, "allSmplJoints3d": j3, "verts": v})
            truth[(img, g)] = (j3, v)
        out += [{"joints": person(cx)["j2"][:24], "allSmplJoints3d": np.zeros((24, 3)), "verts": np.zeros((V, 3))}
                for im, cx in extra if im == img]
        perm = RNG.permutation(len(out)) if order == "shuffle" else range(len(out))
        for k, i in enumerate(perm):
            with open(folder / f"{img[:-4]}{suffix}_personId_{k}.pkl", "wb") as fh:
                pickle.dump(out[i], fh, protocol=pickle.HIGHEST_PROTOCOL)
    return folder, truth


def expected(sc, truth, fp):
    """numpy: per valid GT person (0 <= occ <= 90 and isValid), errors in mm after hip alignment."""
    recs = []
    for img, ps in sc.items():
        for g, p in enumerate(ps):
            if not (p["valid"] and 0 <= p["occ"] <= 90):
                continue
            if (img, g) not in truth:
                recs.append((p["kid"], False, 0, 0))
                continue
            pj, pv = truth[(img, g)]
            gj, gv = p["j3"][:24], p["v"]
            pp, gp = (pj[1] + pj[2]) / 2, (gj[1] + gj[2]) / 2
            recs.append((p["kid"], True, 1000 * np.linalg.norm((pj - pp) - (gj - gp), axis=1).mean(),
                         1000 * np.linalg.norm((pv - pp) - (gv - gp), axis=1).mean()))

    def sub(rs):
        tp = sum(r[1] for r in rs)
        prec, rec = tp / (tp + fp), tp / len(rs)
        f1 = 2 * prec * rec / (prec + rec)
        j = np.mean([r[2] for r in rs if r[1]])
        v = np.mean([r[3] for r in rs if r[1]])
        return {"precision": prec, "recall": rec, "F1": f1, "MPJPE_mm": j, "MVE_mm": v,
                "NMJE_mm": j / f1, "NMVE_mm": v / f1}
    return sub(recs), sub([r for r in recs if r[0]])


def test_perfect_predictions(tmp_path):
    sc = scene()
    preds, _ = write_preds(tmp_path / "pred", sc, skip={(IMG[0], 2), (IMG[0], 3)})  # invalid people not predicted
    r = score_agora(write_npz(tmp_path / "gt.npz", sc), preds)
    s = r.summary
    assert s["F1"] == 1.0 and s["MPJPE_mm"] == pytest.approx(0, abs=1e-9) and s["NMVE_mm"] == pytest.approx(0, abs=1e-9)
    assert s["gt_people"] == 4 and s["kid_F1"] == 1.0


@pytest.mark.parametrize("order", [None, "shuffle"])
def test_errors_misses_false_positives_and_kids(tmp_path, order):
    sc = scene()
    # GT 1,0 (adult) missed; GT 0,3 (invalid) predicted -> the kit counts that prediction as a false positive
    preds, truth = write_preds(tmp_path / "pred", sc, noise=0.03, skip={(IMG[1], 1), (IMG[0], 2)},
                               extra=[(IMG[1], 3400)], order=order, suffix="_1280x720")
    truth = {k: v for k, v in truth.items() if k != (IMG[0], 3)}
    r = score_agora(write_npz(tmp_path / "gt.npz", sc), preds)
    every, kid = expected(sc, truth, fp=2)
    for key, val in every.items():
        assert r.summary[key] == pytest.approx(val, rel=1e-9), key
        assert r.summary[f"kid_{key}"] == pytest.approx(kid[key], rel=1e-9), key
    assert (r.summary["misses"], r.summary["false_positives"]) == (1, 2)
    occ = {row["occlusion"]: row for row in r.tables["agora_occlusion"]}
    assert occ["(70, 80]"]["people"] == 1 and occ["(-1, 10]"]["misses"] == 1 and occ["(-1, 10]"]["people"] == 2
    assert occ["(-1, 10]"]["MPJPE_per_recall_mm"] == pytest.approx(2 * occ["(-1, 10]"]["MPJPE_mm"])
    assert r.details["kit_rounded"]["F1"] == round(every["F1"], 2)


def test_dataframe_pickle_via_pandas_and_conversion(tmp_path, monkeypatch):
    """The kit's .pkl is read through pandas.read_pickle; a stand-in module plays pandas here."""
    sc = scene()

    class FrameStandIn:
        def __init__(self, cols):
            self.cols, self.columns = cols, list(cols)

        def __getitem__(self, c):
            return self.cols[c]

    fake = types.ModuleType("pandas")
    fake.read_pickle = lambda path: FrameStandIn(columns(sc))
    monkeypatch.setitem(sys.modules, "pandas", fake)
    (tmp_path / "validation_0_withjv.pkl").write_bytes(b"stand-in")
    preds, _ = write_preds(tmp_path / "pred", sc, noise=0.02)
    a = score_agora(tmp_path / "validation_0_withjv.pkl", preds)
    npz = agora_gt_to_npz(tmp_path / "validation_0_withjv.pkl", tmp_path / "conv" / "validation_0.npz")
    b = score_agora(npz, preds)
    assert a.summary == pytest.approx(b.summary, rel=1e-6)  # gt_verts are stored as float32
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(BenchmarkFileError, match="validation_0_withjv.pkl: reading AGORA's DataFrame pickles needs"):
        score_agora(tmp_path / "validation_0_withjv.pkl", preds)


def test_params_only_predictions_with_kid_model(tmp_path):
    """Zero pose and shape: an adult is the template, a kid with coefficient 1 is the centred SMIL
    template (smplx's kid model); both + transl, joints = J_regressor @ vertices."""
    from romp_fast.body import load_body_model_data
    from romp_fast.body.procedural import MODEL_FILE, ensure_procedural_model

    model = ensure_procedural_model() / MODEL_FILE
    data = load_body_model_data(model)
    kid_t = data["v_template"] * 0.6 + RNG.normal(scale=0.01, size=(V, 3)) + 0.3
    np.save(tmp_path / "kid_template.npy", kid_t)
    t = np.array([0.2, 0.1, 5.0])
    verts = {False: data["v_template"] + t, True: kid_t - kid_t.mean(0) + t}
    sc = {IMG[0]: [person(500), person(1500, kid=True)]}
    for p in sc[IMG[0]]:
        p["v"] = verts[p["kid"]]
        p["j3"] = np.concatenate([data["J_regressor"] @ p["v"], np.zeros((21, 3))])
    (tmp_path / "pred").mkdir()
    for k, p in enumerate(sc[IMG[0]]):
        betas = np.zeros((1, 11))
        betas[0, 10] = 1.0 if p["kid"] else 0.0
        d = {"joints": p["j2"][:24], "kid_flag": p["kid"], "params": {"global_orient": np.zeros((1, 1, 3)),
             "body_pose": np.zeros((1, 23, 3)), "betas": betas, "transl": t[None]}}
        with open(tmp_path / "pred" / f"{IMG[0][:-4]}_personId_{k}.pkl", "wb") as fh:
            pickle.dump(d, fh)
    gt = write_npz(tmp_path / "gt.npz", sc)
    r = score_agora(gt, tmp_path / "pred", body_model=model, kid_template=tmp_path / "kid_template.npy")
    assert r.summary["MPJPE_mm"] == pytest.approx(0, abs=1e-4) and r.summary["MVE_mm"] == pytest.approx(0, abs=1e-4)
    with pytest.raises(BenchmarkFileError, match="personId_1.pkl: kid_flag with 11 betas needs kid_template"):
        score_agora(gt, tmp_path / "pred", body_model=model)
    with pytest.raises(BenchmarkFileError, match="has only 'params'; pass body_model="):
        score_agora(gt, tmp_path / "pred")


def test_export_round_trip_and_overwrite(tmp_path):
    sc = scene()
    preds = {img: [{"joints": p["j2"][:24], "allSmplJoints3d": p["j3"][:24], "verts": p["v"],
                    "params": {"global_orient": np.zeros(3), "body_pose": np.zeros(69), "betas": np.zeros(11),
                               "transl": np.zeros(3)}} for p in ps] for img, ps in sc.items()}
    paths = export_agora_predictions(tmp_path / "out", preds)
    assert paths[0].name == IMG[0][:-4] + "_personId_0.pkl" and len(paths) == 6
    with open(paths[0], "rb") as fh:
        d = pickle.load(fh)
    assert d["params"]["body_pose"].shape == (1, 23, 3) and d["params"]["betas"].shape == (1, 11) and d["kid_flag"]
    r = score_agora(write_npz(tmp_path / "gt.npz", sc), tmp_path / "out")
    assert r.summary["MPJPE_mm"] == pytest.approx(0, abs=1e-3)  # float32 files
    assert r.summary["false_positives"] == 2  # predictions on the two invalid people (kit rule)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_agora_predictions(tmp_path / "out", preds)
    export_agora_predictions(tmp_path / "out", {IMG[0]: preds[IMG[0]][:1]}, overwrite=True)
    assert len(list((tmp_path / "out").glob(IMG[0][:-4] + "_personId_*.pkl"))) == 1  # stale ids removed


def test_malformed_files_name_file_and_field(tmp_path):
    sc = scene()
    preds, _ = write_preds(tmp_path / "pred", sc)
    with pytest.raises(BenchmarkFileError, match=r"gt.npz: missing field 'gt_verts'"):
        score_agora(write_npz(tmp_path / "gt.npz", sc, drop=("gt_verts",)), preds)
    gt = write_npz(tmp_path / "gt2.npz", sc)
    bad = tmp_path / "pred" / f"{IMG[0][:-4]}_personId_0.pkl"
    with open(bad, "wb") as fh:
        pickle.dump({"verts": np.zeros((V, 3))}, fh)
    with pytest.raises(BenchmarkFileError, match=r"personId_0.pkl: missing field 'joints'"):
        score_agora(gt, preds)
    with open(bad, "wb") as fh:
        pickle.dump({"joints": np.zeros((24, 2)), "run": print}, fh)  # a global a prediction never holds
    with pytest.raises(BenchmarkFileError, match=r"personId_0.pkl: refused to load global 'builtins.print'"):
        score_agora(gt, preds)


def test_box_spans_all_gt_joints_like_the_kit(tmp_path):
    """The kit matches on the first 24 joints but boxes all of a GT person's joints: far-flung
    extra joints (24..44) shrink the IoU under 0.1 and the person is missed."""
    sc = {IMG[0]: [person(1000)]}
    preds, _ = write_preds(tmp_path / "pred", sc)
    assert score_agora(write_npz(tmp_path / "a.npz", sc), preds).summary["misses"] == 0
    sc[IMG[0]][0]["j2"][24:] = [[0.0, 0.0]] * 10 + [[3800.0, 2100.0]] * 11
    r = score_agora(write_npz(tmp_path / "b.npz", sc), preds, progress=True)
    assert r.summary["misses"] == 1 and r.summary["false_positives"] == 1
    assert score_agora(tmp_path / "b.npz", preds, matching="hungarian", max_dist=50.0).summary["misses"] == 0


def test_result_files(tmp_path):
    import json

    from romp_fast.evaluation.report import format_result, write_result

    sc = scene()
    preds, _ = write_preds(tmp_path / "pred", sc, noise=0.01)
    r = score_agora(write_npz(tmp_path / "gt.npz", sc), preds)
    paths = write_result(r, tmp_path / "out")
    assert {p.name for p in paths} == {"agora.json", "agora_subsets.csv", "agora_occlusion.csv"}
    assert json.loads((tmp_path / "out" / "agora.json").read_text())["summary"]["F1"] == pytest.approx(r.summary["F1"])
    assert "NMJE_mm" in format_result(r)


def test_real_pandas_dataframe_pickle(tmp_path):
    """A DataFrame pickled by pandas itself (one row per image, a list per cell, as the kit's
    ``validation_*_withjv.pkl``) scores like the same scene written as the flat .npz."""
    pandas = pytest.importorskip("pandas")
    sc = scene()
    pandas.DataFrame(columns(sc)).to_pickle(tmp_path / "validation_0_withjv.pkl")
    write_npz(tmp_path / "gt.npz", sc)
    preds, _ = write_preds(tmp_path / "pred", sc, noise=0.02)
    a = score_agora(tmp_path / "validation_0_withjv.pkl", preds)
    b = score_agora(tmp_path / "gt.npz", preds)
    assert a.summary == pytest.approx(b.summary, rel=1e-6)
    assert a.summary["F1"] == b.summary["F1"]
