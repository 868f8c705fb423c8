"""3DPW evaluators (``3dpw``, ``3dpw-challenge``) on small sequence files written here in 3DPW's own
format (Python-2-protocol pickles; field names, per-actor lists, dtypes, all-zero ``poses2d`` for no
detection, ``campose_valid`` flags), against expected numbers computed independently: meshes and
joints from :class:`romp_fast.body.BodyModel` (smplx), errors by numpy float64 loops written here
(SVD Procrustes, the challenge kit's PCK / quad-of-interp AUC, scipy rotation angles)."""
import pickle

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.spatial.transform import Rotation

from romp_fast.body import BodyModel
from romp_fast.body import joints as J
from romp_fast.evaluation.benchmarks import get_scorer
from romp_fast.evaluation.benchmarks.threedpw import MAJOR_12, ORIENT_9, VIBE_LIMBS_12
import romp_fast.ops as ops
from romp_fast.evaluation.benchmarks.threedpw_body import EvalSMPL, load_body_models, vertex_errors
from romp_fast.evaluation.benchmarks.threedpw_io import ThreeDPWFormatError
from romp_fast.evaluation.report import write_result

K_CAM = np.array([[1960.0, 0, 540], [0, 1960, 960], [0, 0, 1]])
SEQS = {"test": [("courtyard_a_00", "mf", 9), ("downtown_b_01", "f", 7)], "train": [("outdoors_c_00", "m", 5)]}
LSP_ROOT = list(J.ROOT_LSP)


@pytest.fixture(scope="module")
def body():
    return BodyModel(dtype=torch.float64)


def rodrigues(aa):
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(*aa.shape[:-1], 3, 3)


def make_dataset(root, body):
    """Writes sequenceFiles/{test,train}/*.pkl; returns per-actor truth for building predictions."""
    rng = np.random.default_rng(0)
    truth = {}
    for split, seqs in SEQS.items():
        (root / split).mkdir(parents=True)
        for name, genders, F in seqs:
            yaw = rng.uniform(-0.3, 0.3) + 0.05 * np.arange(F)
            cam = np.tile(np.eye(4), (F, 1, 1))
            cam[:, :3, :3] = Rotation.from_euler("y", yaw[:, None]).as_matrix()
            cam[:, :3, 3] = [0.2, 0.1, 5.0]
            d = {"sequence": name, "genders": list(genders), "poses": [], "betas": [], "trans": [],
                 "campose_valid": [], "poses2d": [], "jointPositions": [], "cam_poses": cam,
                 "cam_intrinsics": K_CAM.copy(), "img_frame_ids": np.arange(F),
                 "v_template_clothed": [], "betas_clothed": []}
            for p in range(len(genders)):
                pose = np.cumsum(rng.normal(0, 0.03, (F, 72)), 0) + rng.normal(0, 0.2, 72)
                pose[:, :3] = [np.pi, 0, 0] + rng.normal(0, 0.1, 3)
                betas = rng.normal(0, 1, 10)
                trans = np.array([0.8 * p - 0.4, 0.9, 0.0]) + np.cumsum(rng.normal(0, 0.01, (F, 3)), 0)
                out = body(torch.from_numpy(pose), torch.from_numpy(np.tile(betas, (F, 1))),
                           transl=torch.from_numpy(trans))
                j24 = out.joints24.numpy()
                xc = j24 @ cam[:, :3, :3].transpose(0, 2, 1) + cam[:, None, :3, 3]
                uv = (xc @ K_CAM.T)[..., :2] / (xc @ K_CAM.T)[..., 2:]
                p2d = np.zeros((F, 3, 18))
                p2d[:, :2] = rng.uniform(100, 900, (F, 2, 18))
                p2d[:, 2] = rng.uniform(0.5, 1.0, (F, 18))
                p2d[1] = 0  # no detection: out under the challenge and VIBE rules
                p2d[2, 2, VIBE_LIMBS_12[:6]] = 0.1  # 6 confident limbs: out under VIBE's "> 6", in for the challenge
                valid = np.ones(F, bool)
                valid[3] = False  # camera pose not aligned: out under the challenge / campose rules
                d["poses"].append(pose), d["betas"].append(betas), d["trans"].append(trans)
                d["campose_valid"].append(valid), d["poses2d"].append(p2d)
                d["jointPositions"].append(j24.reshape(F, 72))
                d["v_template_clothed"].append(np.zeros((6890, 3))), d["betas_clothed"].append(betas)
                pose_cam = pose.copy()
                pose_cam[:, :3] = Rotation.from_matrix(cam[:, :3, :3] @ rodrigues(pose[:, :3])).as_rotvec()
                f = np.arange(F)
                truth[(name, p)] = dict(pose=pose_cam, betas=betas, uv=uv, root3d=xc[:, 0], F=F, split=split,
                                        valid=dict(vibe=(f != 1) & (f != 2), campose=valid, challenge=valid & (f != 1)))
            with open(root / split / f"{name}.pkl", "wb") as fh:
                pickle.dump(d, fh, protocol=2)
    return truth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, body):
    root = tmp_path_factory.mktemp("3dpw") / "sequenceFiles"
    return root, make_dataset(root, body)


def predictions(truth, noise=0.0, seed=1, split="test", drop=()):
    """One row per actor and frame (every frame, evaluated or not), noisy copies of the truth."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("sequence", "frame", "person", "pose", "betas", "center2d", "kp2d", "root3d")}
    for (name, p), t in truth.items():
        if t["split"] != split:
            continue
        for f in range(t["F"]):
            if (name, p, f) in drop:
                continue
            rows["sequence"].append(name), rows["frame"].append(f), rows["person"].append(p)
            rows["pose"].append(t["pose"][f] + noise * rng.normal(size=72))
            rows["betas"].append(t["betas"] + noise * rng.normal(size=10))
            rows["kp2d"].append(t["uv"][f] + 3 * noise * rng.normal(size=(24, 2)))
            rows["center2d"].append(t["uv"][f][list(J.index("smpl24", "Pelvis_SMPL", "L_Hip_SMPL", "R_Hip_SMPL", "Neck",
                                                           "L_Shoulder", "R_Shoulder"))].mean(0))
            rows["root3d"].append(t["root3d"][f] + noise * rng.normal(size=3))
    return {k: np.array(v) for k, v in rows.items()}


def save(path, rows, **drop_fields):
    np.savez(path, **{k: v for k, v in rows.items() if k not in drop_fields})
    return path


# --------------------------------------------------------------------------- numpy references
def procrustes_np(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    U, S, Vt = np.linalg.svd(xc.T @ yc)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1, 1, d]) @ U.T
    s = (S * [1, 1, d]).sum() / (xc ** 2).sum()
    return s * x @ R.T + (y.mean(0) - s * R @ x.mean(0)), R


def expected_3dpw(body, truth, rows, frames="vibe"):
    out = {"mpjpe": [], "pa": [], "pve": [], "seq": []}
    for i in range(len(rows["frame"])):
        name, p, f = rows["sequence"][i], rows["person"][i], rows["frame"][i]
        t = truth[(name, p)]
        if not t["valid"][frames][f]:
            continue
        gt = body(torch.from_numpy(t["pose"][f][None]), torch.from_numpy(t["betas"][None]))
        pr = body(torch.from_numpy(rows["pose"][i][None]), torch.from_numpy(rows["betas"][i][None]))
        jg, jp = gt.j17[0, :14].numpy(), pr.j17[0, :14].numpy()
        rg, rp = jg[LSP_ROOT].mean(0), jp[LSP_ROOT].mean(0)
        out["mpjpe"].append(1000 * np.linalg.norm((jp - rp) - (jg - rg), axis=-1).mean())
        out["pa"].append(1000 * np.linalg.norm(procrustes_np(jp, jg)[0] - jg, axis=-1).mean())
        vp, vg = pr.vertices[0].numpy() - rp, gt.vertices[0].numpy() - rg
        out["pve"].append(1000 * np.linalg.norm(vp - vg, axis=-1).mean())
        out["seq"].append(name)
    return {k: np.array(v) for k, v in out.items()}


def global_np(local):
    G = np.zeros_like(local)
    for j, par in enumerate(J.SMPL_PARENTS):
        G[:, j] = local[:, j] if par < 0 else G[:, par] @ local[:, j]
    return G


def expected_challenge(body, truth, rows):
    """The kit's recipe: root joint 0, mm, per-frame Procrustes, PCK/AUC pooled, angle by rotvec norm."""
    err, pa, pck_rows, ang, ang_pa = [], [], [], [], []
    for i in range(len(rows["frame"])):
        t = truth[(rows["sequence"][i], rows["person"][i])]
        f = rows["frame"][i]
        if not t["valid"]["challenge"][f]:
            continue
        gt = body(torch.from_numpy(t["pose"][f][None]), torch.from_numpy(t["betas"][None]))
        pr = body(torch.from_numpy(rows["pose"][i][None]), torch.from_numpy(rows["betas"][i][None]))
        jg = 1000 * (gt.joints24[0].numpy() - gt.joints24[0, :1].numpy())
        jp = 1000 * (pr.joints24[0].numpy() - pr.joints24[0, :1].numpy())
        e = np.linalg.norm(jp - jg, axis=-1)
        err.append(e.mean()), pck_rows.append(e[MAJOR_12])
        aligned, R = procrustes_np(jp, jg)
        pa.append(np.linalg.norm(aligned - jg, axis=-1).mean())
        Gg = global_np(rodrigues(t["pose"][f][None].reshape(1, 24, 3)))[0, ORIENT_9]
        Gp = global_np(rodrigues(rows["pose"][i][None].reshape(1, 24, 3)))[0, ORIENT_9]
        def angle(A):
            return np.degrees(np.linalg.norm(Rotation.from_matrix(A @ Gg.transpose(0, 2, 1)).as_rotvec(), axis=-1))
        ang.append(angle(Gp).mean()), ang_pa.append(angle(R @ Gp).mean())
    E = np.stack(pck_rows)
    thr = np.arange(0, 200)
    ys = [np.mean(np.mean(E <= t_, axis=1)) for t_ in thr]
    x = thr / thr.max()
    auc = integrate.quad(lambda v: np.interp(v, x, ys), 0, 1, limit=500, points=x[1:-1])[0]
    return dict(MPJPE_mm=np.mean(err), PA_MPJPE_mm=np.mean(pa), PCK_pct=100 * np.mean(np.mean(E <= 50, 1)),
                AUC_pct=100 * auc, MPJAE_deg=np.mean(ang), PA_MPJAE_deg=np.mean(ang_pa))


# --------------------------------------------------------------------------- tests
def test_eval_smpl_matches_smplx(body):
    m = load_body_models(None, torch.float64)[0]["f"]
    rng = np.random.default_rng(5)
    pose, betas = torch.from_numpy(rng.normal(0, 0.4, (4, 72))), torch.from_numpy(rng.normal(0, 1, (4, 10)))
    out = body(pose, betas)
    R = torch.from_numpy(rodrigues(pose.numpy().reshape(4, 24, 3)))
    j24, G, _ = m.kinematics(R, betas)
    assert torch.allclose(j24, out.joints24, atol=1e-6)
    np.testing.assert_allclose(G.numpy(), global_np(R.numpy()), atol=1e-12)
    assert torch.allclose(m.vertices(R, betas), out.vertices, atol=1e-6)
    assert torch.allclose(m.h36m_joints(R, betas), out.h36m17, atol=1e-6)  # joint-space skinning
    dense = rng.random((17, 6890))
    dense /= dense.sum(1, keepdims=True)  # a regressor reading every vertex
    md = EvalSMPL(m.path, dense, torch.float64)
    assert torch.allclose(md.h36m_joints(R, betas), torch.einsum("jv,nvc->njc", torch.from_numpy(dense),
                                                                 out.vertices), atol=1e-6)


def pve_np(vp, vg, rp=None, rg=None):
    """Mean vertex distance per pair of [N, V, 3] meshes, each minus its root, float64."""
    vp, vg = np.asarray(vp, np.float64), np.asarray(vg, np.float64)
    if rp is not None:
        vp, vg = vp - rp[:, None], vg - rg[:, None]
    return np.linalg.norm(vp - vg, axis=-1).mean(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [1, 3, 64])
@pytest.mark.parametrize("with_roots", [True, False])
def test_vertex_errors_match_smplx_meshes(body, dtype, chunk, with_roots):
    """PVE without posed meshes (rest-pose GEMM + the lbs_vertex_error op, chunked) equals the
    distance between smplx's meshes, for chunks of 1, 3 (a partial last chunk) and all 7 pairs
    (float64: to smplx's own rounding, its model arrays pass through float32)."""
    m = load_body_models(None, dtype)[0]["neutral"]
    rng = np.random.default_rng(11)
    n = 7
    pose = [torch.from_numpy(rng.normal(0, 0.4, (n, 72))) for _ in range(2)]
    betas = [torch.from_numpy(rng.normal(0, 1, (n, 10))) for _ in range(2)]
    R = [torch.from_numpy(rodrigues(p.numpy().reshape(n, 24, 3))) for p in pose]
    meshes = [body(p, b).vertices.numpy() for p, b in zip(pose, betas)]
    roots = (torch.from_numpy(rng.normal(0, 0.1, (n, 3))), torch.from_numpy(rng.normal(0, 0.1, (n, 3))))
    ref = pve_np(*meshes, *(r.numpy() for r in roots)) if with_roots else pve_np(*meshes)
    got = vertex_errors(m, R[0], betas[0], m, R[1], betas[1], roots if with_roots else None, chunk=chunk)
    assert got.dtype == dtype and got.shape == (n,)
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=1e-5 if dtype == torch.float32 else 1e-7, atol=0)
    with ops.use_reference():  # the op's pure-torch reference: same numbers
        again = vertex_errors(m, R[0], betas[0], m, R[1], betas[1], roots if with_roots else None, chunk=chunk)
    torch.testing.assert_close(again, got, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0)


def test_vertex_errors_with_two_models(body):
    """A GT model that is another object (gendered GT): its own GEMM; with other skinning weights,
    the torch skinning path; both equal the distance between the two models' own meshes."""
    m = load_body_models(None, torch.float64)[0]["neutral"]
    same = EvalSMPL(m.path, dtype=torch.float64)
    other = EvalSMPL(m.path, dtype=torch.float64)
    w = other.weights.roll(1, dims=1) + 0.5 * other.weights  # other weights (more joints per vertex)
    other.weights = w / w.sum(1, keepdim=True)
    rng = np.random.default_rng(12)
    n = 5
    R = [torch.from_numpy(rodrigues(rng.normal(0, 0.4, (n, 24, 3)))) for _ in range(2)]
    b = [torch.from_numpy(rng.normal(0, 1, (n, 10))) for _ in range(2)]
    roots = (torch.zeros(n, 3, dtype=torch.float64), torch.full((n, 3), 0.05, dtype=torch.float64))
    for gt_model in (same, other):
        ref = pve_np(m.vertices(R[0], b[0]).numpy(), gt_model.vertices(R[1], b[1]).numpy(),
                     *(r.numpy() for r in roots))
        got = vertex_errors(m, R[0], b[0], gt_model, R[1], b[1], roots, chunk=2)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=0)
    assert not np.allclose(other.vertices(R[1], b[1]).numpy(), same.vertices(R[1], b[1]).numpy())


def test_3dpw_perfect_noisy_and_per_sequence(dataset, body, tmp_path):
    root, truth = dataset
    score = get_scorer("3dpw")
    perfect = score(root, save(tmp_path / "p.npz", predictions(truth)))
    for k in ("MPJPE_mm", "PA_MPJPE_mm", "PVE_mm", "ACCEL_ERR_mm_per_frame2", "ROOT_TRANS_mm"):
        assert perfect.summary[k] < 1e-3, k
    assert perfect.summary["matched_fraction"] == 1.0
    assert perfect.details["person_frames"] == 2 * 7 + 5  # VIBE's rule drops frames 1 and 2 of each actor
    rows = predictions(truth, noise=0.05)
    res = score(root, save(tmp_path / "n.npz", rows))
    ref = expected_3dpw(body, truth, rows)
    assert res.summary["MPJPE_mm"] == pytest.approx(ref["mpjpe"].mean(), abs=2e-3)
    assert res.summary["PA_MPJPE_mm"] == pytest.approx(ref["pa"].mean(), abs=2e-3)
    assert res.summary["PVE_mm"] == pytest.approx(ref["pve"].mean(), abs=2e-3)
    table = {r["sequence"]: r for r in res.tables["per_sequence"]}
    court = ref["pa"][ref["seq"] == "courtyard_a_00"].mean()
    assert table["courtyard_a_00"]["PA_MPJPE_mm"] == pytest.approx(court, abs=2e-3)
    assert table["downtown_b_01"]["person_frames"] == 5 and table["courtyard_a_00"]["people"] == 2
    assert res.summary["MPJPE_mm"] > 10 and res.summary["ACCEL_ERR_mm_per_frame2"] > 1
    written = write_result(res, tmp_path / "out")
    assert {p.name for p in written} == {"3dpw.json", "per_sequence.csv"}


def test_3dpw_shuffle_matching_rules_and_unused_rows(dataset, tmp_path):
    root, truth = dataset
    score = get_scorer("3dpw")
    rows = predictions(truth, noise=0.05)
    base = score(root, save(tmp_path / "a.npz", rows), pve=False)
    perm = np.random.default_rng(2).permutation(len(rows["frame"]))
    shuffled = {k: v[perm] for k, v in rows.items()}
    junk = {k: np.concatenate([v, v[:3]]) for k, v in shuffled.items()}  # rows in an unknown sequence
    junk["sequence"][-3:] = "not_a_sequence"
    for f, kw in ((save(tmp_path / "b.npz", shuffled), {}),
                  (save(tmp_path / "c.npz", shuffled, person=1), dict(matching="nearest_center")),
                  (save(tmp_path / "d.npz", shuffled, person=1), dict(matching="greedy_2d")),
                  (save(tmp_path / "e.npz", shuffled, person=1), dict(matching="hungarian")),
                  (save(tmp_path / "f.npz", junk), {})):
        res = score(root, f, pve=False, **kw)
        for k in ("MPJPE_mm", "PA_MPJPE_mm", "ACCEL_ERR_mm_per_frame2"):
            assert res.summary[k] == pytest.approx(base.summary[k], abs=1e-9), (kw, k)
    assert res.details["unused_rows"] == base.details["unused_rows"] + 3


def test_3dpw_missing_person_rules(dataset, body, tmp_path):
    root, truth = dataset
    score = get_scorer("3dpw")
    drop = {("courtyard_a_00", 1, f) for f in range(4, 9)} | {("downtown_b_01", 0, 5)}
    rows = predictions(truth, noise=0.05, drop=drop)
    f = save(tmp_path / "m.npz", rows)
    ref = expected_3dpw(body, truth, rows)
    skip = score(root, f)
    assert skip.details["missed"] == 6 and skip.summary["matched_fraction"] == pytest.approx(13 / 19)
    assert skip.summary["PVE_mm"] == pytest.approx(ref["pve"].mean(), abs=2e-3)
    pen = score(root, f, missing="penalty", miss_penalty_mm=150.0)
    assert pen.summary["MPJPE_mm"] == pytest.approx((ref["mpjpe"].sum() + 6 * 150) / 19, abs=2e-3)
    assert pen.summary["PA_MPJPE_mm"] == pytest.approx((ref["pa"].sum() + 6 * 150) / 19, abs=2e-3)
    with pytest.raises(ValueError, match="6 ground-truth person-frames have no prediction.*courtyard_a_00"):
        score(root, f, missing="error")


def test_3dpw_frame_rules_and_gendered_option(dataset, tmp_path, capsys):
    root, truth = dataset
    f = save(tmp_path / "p.npz", predictions(truth))
    get_scorer("3dpw")(root, f, progress=True)
    err = capsys.readouterr().err
    assert "3dpw [" in err and "100.0%" in err
    counts = {fr: get_scorer("3dpw")(root, f, frames=fr, pve=False).details["person_frames"]
              for fr in ("vibe", "campose", "challenge")}
    # per actor: VIBE drops frames 1 (no detection) and 2 (6 confident limbs, not > 6); campose_valid
    # drops frame 3; the challenge drops frames 1 and 3
    assert counts == {"vibe": 2 * 7 + 5, "campose": 2 * 8 + 6, "challenge": 2 * 7 + 5}
    res = get_scorer("3dpw")(root, f, gt_gender="pickle", pve_align="none")
    assert res.summary["PVE_mm"] < 1e-3  # one procedural model for every gender


def test_challenge_against_the_kits_recipe(dataset, body, tmp_path):
    root, truth = dataset
    score = get_scorer("3dpw-challenge")
    perfect = score(root, save(tmp_path / "p.npz", predictions(truth)), splits=("test",))
    assert perfect.summary["MPJPE_mm"] < 1e-6 and perfect.summary["PCK_pct"] == 100
    assert perfect.summary["MPJAE_deg"] < 1e-5 and perfect.summary["AUC_pct"] > 99.7
    rows = predictions(truth, noise=0.05)
    res = score(root, save(tmp_path / "n.npz", rows), splits="test")
    ref = expected_challenge(body, truth, rows)
    for k, v in ref.items():
        assert res.summary[k] == pytest.approx(v, abs=1e-6 if "deg" in k else 1e-4), k
    assert res.details["person_frames"] == 2 * 7 + 5
    written = {p.name for p in write_result(res, tmp_path / "out")}
    assert written == {"3dpw-challenge.json", "per_sequence.csv", "pck_curve.png"}
    c = res.curves["pck_curve"]
    assert len(c["x"]) == 200 and c["y"][50] == pytest.approx(res.summary["PCK_pct"] / 100)


def test_challenge_all_splits_previous_fill_and_official_format(dataset, body, tmp_path):
    root, truth = dataset
    score = get_scorer("3dpw-challenge")
    rows = {s: predictions(truth, noise=0.05, split=s) for s in ("test", "train")}
    both = {k: np.concatenate([rows["test"][k], rows["train"][k]]) for k in rows["test"]}
    full = score(root, save(tmp_path / "all.npz", both))
    assert full.details["sequences"] == 3 and full.details["person_frames"] == 19 + 3
    # a missing frame takes the actor's previous predicted frame (ROMP's collector): frame 4 <- row of
    # frame 3, although frame 3 is not evaluated (campose_valid False)
    base = score(root / "train", save(tmp_path / "base.npz", rows["train"]))
    filled = {k: v.copy() for k, v in rows["train"].items()}
    filled["pose"][4], filled["betas"][4] = filled["pose"][3], filled["betas"][3]
    ref = score(root / "train", save(tmp_path / "f.npz", filled))
    prev = score(root / "train", save(tmp_path / "d.npz", predictions(truth, 0.05, split="train",
                                                                        drop={("outdoors_c_00", 0, 4)})))
    assert prev.details["filled_previous"] == 1 and prev.details["zero_filled"] == 0
    for k in ("MPJPE_mm", "PA_MPJPE_mm", "PCK_pct", "MPJAE_deg"):
        assert prev.summary[k] == pytest.approx(ref.summary[k], abs=1e-9), k
    # nothing before frame 0: a zero prediction; root-aligned MPJPE |g_j - g_0|, PA to the GT centroid
    kept = predictions(truth, 0.05, split="train", drop={("outdoors_c_00", 0, 0)})
    zero = score(root / "train", save(tmp_path / "z.npz", kept))
    assert zero.details["zero_filled"] == 1
    others = expected_challenge(body, truth, kept)  # frames 2 and 4
    t = truth[("outdoors_c_00", 0)]
    g0 = 1000 * body(torch.from_numpy(t["pose"][:1]), torch.from_numpy(t["betas"][None])).joints24[0].numpy()
    e_zero = np.linalg.norm(g0 - g0[0], axis=-1).mean()
    pa_zero = np.linalg.norm(g0 - g0.mean(0), axis=-1).mean()
    assert zero.summary["MPJPE_mm"] == pytest.approx((2 * others["MPJPE_mm"] + e_zero) / 3, abs=1e-4)
    assert zero.summary["PA_MPJPE_mm"] == pytest.approx((2 * others["PA_MPJPE_mm"] + pa_zero) / 3, abs=1e-4)
    # the challenge's own submission format: dense [P, F, 24, 3] joints and [P, F, 9, 3, 3] orientations
    sub = tmp_path / "submission" / "train"
    sub.mkdir(parents=True)
    out = body(torch.from_numpy(rows["train"]["pose"]), torch.from_numpy(rows["train"]["betas"]))
    ori = global_np(rodrigues(rows["train"]["pose"].reshape(-1, 24, 3)))[:, ORIENT_9]
    with open(sub / "outdoors_c_00.pkl", "wb") as fh:
        pickle.dump({"jointPositions": out.joints24.numpy()[None] + 3.0, "orientations": ori[None]}, fh, protocol=2)
    official = score(root / "train", tmp_path / "submission")
    for k in ("MPJPE_mm", "PA_MPJPE_mm", "PCK_pct", "AUC_pct", "MPJAE_deg", "PA_MPJAE_deg"):
        assert official.summary[k] == pytest.approx(base.summary[k], abs=1e-4), k


def test_malformed_files_name_file_and_field(dataset, tmp_path):
    root, truth = dataset
    score = get_scorer("3dpw")
    rows = predictions(truth)
    good = save(tmp_path / "good.npz", rows)
    with open(root / "test" / "courtyard_a_00.pkl", "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    cases = [("campose_valid", None, "missing field 'campose_valid'"),
             ("poses", [np.zeros((9, 69))] * 2, r"field 'poses'\[0\] must be \[9, 72\]"),
             ("genders", ["m", "x"], r"field 'genders'\[1\] must be 'm' or 'f'"),
             ("cam_poses", np.zeros((9, 3, 4)), r"field 'cam_poses' must be \[F, 4, 4\]")]
    for key, value, msg in cases:
        bad = dict(d)
        bad.pop(key) if value is None else bad.__setitem__(key, value)
        (tmp_path / key).mkdir()
        with open(tmp_path / key / "courtyard_a_00.pkl", "wb") as fh:
            pickle.dump(bad, fh, protocol=2)
        with pytest.raises(ThreeDPWFormatError, match=f"courtyard_a_00.pkl: {msg}"):
            score(tmp_path / key, good)
    pred_cases = [({"pose": rows["pose"][:, :69]}, r"field 'pose' must be \[K, 72\]"),
                  ({"frame": None}, "missing field 'frame'"),
                  ({"person": np.zeros(len(rows["frame"]), int)}, "field 'person': 2 rows for sequence"),
                  ({"betas": np.zeros((len(rows["frame"]), 12))}, r"field 'betas' must be \[K, <=10\]"),
                  ({"sequence": rows["sequence"].astype(object)}, "field 'sequence' holds Python objects"),
                  ({"extra": rows["frame"]}, r"unknown fields \['extra'\]")]
    for i, (change, msg) in enumerate(pred_cases):
        r = {k: v for k, v in (rows | change).items() if v is not None}
        p = tmp_path / f"bad{i}.npz"
        np.savez(p, **r)
        with pytest.raises(ThreeDPWFormatError, match=f"bad{i}.npz.*{msg}|{msg}"):
            score(root, p)
    with pytest.raises(ThreeDPWFormatError, match="needs field 'center2d' or 'kp2d'"):
        score(root, save(tmp_path / "nc.npz", rows, person=1, center2d=1, kp2d=1))
    with pytest.raises(TypeError, match="unknown options"):
        score(root, good, pve_alignment="hips")
