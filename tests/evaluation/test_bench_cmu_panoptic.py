"""CMU Panoptic evaluator: BEV's annots.npz / predictions.npz and the raw panoptic_annot pickles,
written here in their exact layout; expected numbers from a numpy fp64 re-statement of the
protocol (pelvis-centred, visibility-weighted sum / 14, 150 mm per miss)."""
import json
import pickle

import numpy as np
import pytest

from romp_fast.evaluation.benchmarks._io import BenchmarkFileError
from romp_fast.evaluation.benchmarks.cmu_panoptic import load_cmu_gt, score_cmu_panoptic

RNG = np.random.default_rng(0)


def body(cx, cy=500.0, z=3.0):
    """A person in J14: 2D joints spread over a 200 x 400 px box around (cx, cy), 3D around z."""
    kp2d = np.stack([cx + RNG.uniform(-100, 100, 14), cy + RNG.uniform(-200, 200, 14)], 1)
    kp3d = np.stack([RNG.uniform(-0.3, 0.3, 14), RNG.uniform(-0.8, 0.8, 14), z + RNG.uniform(-0.1, 0.1, 14)], 1)
    return kp2d, kp3d


def to_j17(a):
    """J14 -> ROMP's J17: LSP 0..12, head top (13, unused), pelvis (14), spine, jaw (15, 16)."""
    out = np.zeros((len(a), 17, a.shape[-1]))
    out[:, :13], out[:, 14] = a[:, :13], a[:, 13]
    out[:, [13, 15, 16]] = 99.0  # junk the evaluator must ignore
    return out


def scene():
    """Two haggling images and one pizza image; returns gt {name: [kp2d, kp3d]} in J14."""
    gt = {}
    for name, xs in (("160422_haggling1-00_16_00000100.jpg", [300, 900, 1500]),
                     ("160422_haggling1-00_16_00000200.jpg", [400, 1200]),
                     ("160906_pizza1-00_16_00000100.jpg", [600, 1400])):
        people = [body(x) for x in xs]
        gt[name] = [np.stack([p[0] for p in people]), np.stack([p[1] for p in people])]
    gt["160422_haggling1-00_16_00000200.jpg"][1][1, 4] = -2.0  # one invisible 3D joint
    return gt


def save_npz(path, **kw):
    np.savez(path, **kw)
    return path


def expected(gt, preds, missing):
    """numpy: per GT person error in mm, or 150 for the (image, index) pairs in `missing`."""
    per_type = {}
    for name, (k2, k3) in gt.items():
        for i in range(len(k2)):
            if (name, i) in missing:
                e = 150.0
            else:
                p3 = preds[name][i]
                vis = k3[i, :, 0] > -2
                d = np.linalg.norm((p3 - p3[13]) - (k3[i] - k3[i, 13]), axis=-1)
                e = (d * vis).sum() / 14 * 1000
            per_type.setdefault("pizza" if "pizza" in name else "haggling", []).append(e)
    allv = [v for vs in per_type.values() for v in vs]
    return per_type, np.mean(allv), np.mean([np.mean(v) for v in per_type.values()])


def write_preds(tmp_path, gt, offsets, drop=(), shuffle=False, j17=True):
    preds3d, results = {}, {}
    for name, (k2, k3) in gt.items():
        p3 = k3.copy()
        p3[k3 == -2] = 0.5  # the prediction has every joint
        p3 = p3 + offsets.get(name, 0.0)
        preds3d[name] = p3
        keep = [i for i in range(len(k2)) if (name, i) not in drop]
        order = RNG.permutation(keep) if shuffle else np.array(keep, int)
        p2 = k2[order] + 3.0
        results[name] = [to_j17(p2), to_j17(p3[order])] if j17 else [p2, p3[order]]
    return save_npz(tmp_path / "predictions.npz", results=results), preds3d


def test_perfect_predictions(tmp_path, capsys):
    gt = scene()
    gpath = save_npz(tmp_path / "annots.npz", annots=gt)
    ppath, _ = write_preds(tmp_path, gt, {})
    r = score_cmu_panoptic(gpath, ppath, progress=True)
    assert r.summary["MPJPE_mm"] == pytest.approx(0, abs=1e-9)
    assert r.summary["F1"] == 1.0 and r.summary["misses"] == 0
    assert "cmu-panoptic [" in capsys.readouterr().err
    assert r.summary["MPJPE_mafia_mm"] != r.summary["MPJPE_mafia_mm"]  # no mafia images: NaN
    assert [row["sequence"] for row in r.tables["cmu_panoptic_sequences"]] == ["160422_haggling1", "160906_pizza1"]


@pytest.mark.parametrize("shuffle", [False, True])
def test_errors_misses_and_both_aggregates(tmp_path, shuffle):
    gt = scene()
    gpath = save_npz(tmp_path / "annots.npz", annots=gt)
    offsets = {n: RNG.normal(scale=0.05, size=(len(v[0]), 14, 3)) for n, v in gt.items()}
    drop = {("160422_haggling1-00_16_00000100.jpg", 1), ("160906_pizza1-00_16_00000100.jpg", 0)}
    ppath, p3 = write_preds(tmp_path, gt, offsets, drop=drop, shuffle=shuffle)
    per_type, mean_people, mean_types = expected(gt, p3, drop)
    r = score_cmu_panoptic(gpath, ppath)
    assert r.summary["MPJPE_mm"] == pytest.approx(mean_people, rel=1e-9)
    assert r.summary["MPJPE_type_mean_mm"] == pytest.approx(mean_types, rel=1e-9)
    assert r.summary["MPJPE_haggling_mm"] == pytest.approx(np.mean(per_type["haggling"]), rel=1e-9)
    assert r.summary["misses"] == 2 and r.summary["recall"] == pytest.approx(5 / 7)
    assert r.summary["precision"] == 1.0
    assert any("150 mm" in n for n in r.notes)


def test_image_without_predictions_and_false_positives(tmp_path):
    gt = scene()
    gpath = save_npz(tmp_path / "annots.npz", annots=gt)
    ppath, _ = write_preds(tmp_path, gt, {})
    res = dict(np.load(ppath, allow_pickle=True)["results"][()])
    del res["160906_pizza1-00_16_00000100.jpg"]
    k2, k3 = res["160422_haggling1-00_16_00000200.jpg"]
    extra2, extra3 = k2[:1] + [[1000.0, 0.0]], k3[:1] + 1.0  # a detection far from everyone
    res["160422_haggling1-00_16_00000200.jpg"] = [np.concatenate([k2, extra2]), np.concatenate([k3, extra3])]
    ppath = save_npz(tmp_path / "p2.npz", results=res)
    r = score_cmu_panoptic(gpath, ppath)
    assert r.summary["MPJPE_pizza_mm"] == pytest.approx(150.0)
    assert r.summary["MPJPE_haggling_mm"] == pytest.approx(0.0, abs=1e-9)
    assert r.summary["false_positives"] == 1 and r.summary["misses"] == 2


def test_hungarian_option_and_json_equivalent(tmp_path):
    gt = scene()
    gpath = tmp_path / "annots.json"
    gpath.write_text(json.dumps({n: [v[0].tolist(), v[1].tolist()] for n, v in gt.items()}))
    ppath, _ = write_preds(tmp_path, gt, {}, j17=False)
    r = score_cmu_panoptic(gpath, ppath, matching="hungarian", max_dist=50.0)
    assert r.summary["MPJPE_mm"] == pytest.approx(0, abs=1e-9) and r.summary["F1"] == 1.0
    with pytest.raises(ValueError, match="unknown matching 'nearest'"):
        score_cmu_panoptic(gpath, ppath, matching="nearest")


def test_raw_annotations_follow_load_gts(tmp_path):
    """The raw 832x512 J24 pickles -> the processed form: scale, keep rule, 3D mask, bias, name."""
    k2 = np.zeros((2, 24, 3))
    k2[:, :, 0], k2[:, :, 1], k2[:, :, 2] = np.linspace(10, 300, 24), np.linspace(20, 400, 24), 1.0
    k2[1, 5:, 0] = -5.0  # second person: only 5 joints inside the image -> dropped (needs > 5)
    k3 = np.concatenate([RNG.normal(size=(2, 24, 3)), np.ones((2, 24, 1))], -1)
    k3[0, 14, 3] = 0.1  # the pelvis (SPIN J24 index 14) under 0.2 confidence
    infos = [{"filename": "hd_00_16/160422_mafia2/x/00_16_00001234.png", "kpts2d": k2, "kpts3d": k3,
              "width": 832, "height": 512}]
    (tmp_path / "panoptic_annot").mkdir()
    with open(tmp_path / "panoptic_annot" / "a.pkl", "wb") as fh:
        pickle.dump(infos, fh, protocol=2)
    gt = load_cmu_gt(tmp_path / "panoptic_annot")
    assert list(gt) == ["160422_mafia2-00_16_00001234.jpg"]
    kp2d, vis2d, kp3d, vis3d = gt["160422_mafia2-00_16_00001234.jpg"]
    assert kp2d.shape == (1, 14, 2) and vis2d.all()
    np.testing.assert_allclose(kp2d[0, :13], k2[0, :13, :2] * 1920 / 832)
    np.testing.assert_allclose(kp2d[0, 13], k2[0, 14, :2] * 1920 / 832)
    np.testing.assert_allclose(kp3d[0, :13], k3[0, :13, :3] + [0, 0.06, 0.03])
    assert not vis3d[0, 13] and vis3d[0, :13].all()


def test_missing_pelvis_is_left_out_and_noted(tmp_path):
    gt = scene()
    gt["160906_pizza1-00_16_00000100.jpg"][1][0, 13] = -2.0
    gpath = save_npz(tmp_path / "annots.npz", annots=gt)
    ppath, _ = write_preds(tmp_path, gt, {})
    r = score_cmu_panoptic(gpath, ppath)
    assert r.details["gt_without_root"] == 1 and r.summary["people"] == 6
    assert r.summary["MPJPE_mm"] == pytest.approx(0, abs=1e-9)


def test_malformed_files_name_file_and_field(tmp_path):
    gt = scene()
    gpath = save_npz(tmp_path / "annots.npz", annots=gt)
    bad = save_npz(tmp_path / "wrongkey.npz", preds={})
    with pytest.raises(BenchmarkFileError, match=r"wrongkey.npz: missing field 'results'"):
        score_cmu_panoptic(gpath, bad)
    name = "160906_pizza1-00_16_00000100.jpg"
    bad = save_npz(tmp_path / "shape.npz", results={name: [np.zeros((2, 17, 2)), np.zeros((2, 17, 2))]})
    with pytest.raises(BenchmarkFileError, match=rf"shape.npz: image '{name}' field 'kp3d' must have shape \[2, 17, 3"):
        score_cmu_panoptic(gpath, bad)
    badgt = save_npz(tmp_path / "g.npz", annots={name: [np.zeros((2, 13, 2)), np.zeros((2, 14, 3))]})
    with pytest.raises(BenchmarkFileError, match=r"g.npz: image .* field 'kp2d' must have shape \[\*, 14, 2\]"):
        score_cmu_panoptic(badgt, bad)
    with pytest.raises(BenchmarkFileError, match="nothere.npz: file not found"):
        score_cmu_panoptic(tmp_path / "nothere.npz", bad)


def test_result_files(tmp_path):
    from romp_fast.evaluation.report import write_result

    gt = scene()
    ppath, _ = write_preds(tmp_path, gt, {}, drop={("160906_pizza1-00_16_00000100.jpg", 1)})
    r = score_cmu_panoptic(save_npz(tmp_path / "annots.npz", annots=gt), ppath)
    paths = write_result(r, tmp_path / "out")
    assert {p.name for p in paths} == {"cmu-panoptic.json", "cmu_panoptic_sequences.csv"}
    data = json.loads((tmp_path / "out" / "cmu-panoptic.json").read_text())
    assert data["summary"]["MPJPE_mafia_mm"] is None  # NaN -> null
    assert (tmp_path / "out" / "cmu_panoptic_sequences.csv").read_text().startswith("sequence,type,images,people")
