import numpy as np

from romp_fast.body import procedural as P
from romp_fast.body.joints import SMPL_PARENTS


def test_arrays_and_shapes(built):
    m = built["model"]
    shapes = {"v_template": (6890, 3), "shapedirs": (6890, 3, 10), "posedirs": (6890, 3, 207),
              "J_regressor": (24, 6890), "weights": (6890, 24), "kintree_table": (2, 24)}
    for k, s in shapes.items():
        assert m[k].shape == s, k
        assert np.isfinite(m[k]).all(), k
    assert m["f"].ndim == 2 and m["f"].shape[1] == 3
    assert (m["kintree_table"][0] == SMPL_PARENTS).all()
    assert built["J_regressor_extra"].shape == (9, 6890) and built["J_regressor_h36m"].shape == (17, 6890)


def test_deterministic(built):
    again = P.build_procedural_model()
    for k, v in built["model"].items():
        np.testing.assert_array_equal(again["model"][k], v, err_msg=k)
    for k in ("J_regressor_extra", "J_regressor_h36m", "joints"):
        np.testing.assert_array_equal(again[k], built[k], err_msg=k)


def test_mesh_is_closed_outward_and_uses_every_vertex(built):
    V, F = built["model"]["v_template"], built["model"]["f"]
    edges = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    directed = set(map(tuple, edges.tolist()))
    assert len(directed) == len(edges)  # no directed edge twice: consistent orientation
    assert all((b, a) in directed for a, b in directed)  # every edge shared by two faces
    assert len(np.unique(F)) == 6890
    volume = np.einsum("ij,ij->i", V[F[:, 0]], np.cross(V[F[:, 1]], V[F[:, 2]])).sum() / 6
    assert 0.04 < volume < 0.1  # m^3, outward normals; a person is ~0.07


def test_skeleton_is_plausible(built):
    J, V = built["joints"], built["model"]["v_template"]
    assert 1.6 < V[:, 1].max() - V[:, 1].min() < 1.9  # stature in metres
    left, right = [1, 4, 7, 10, 13, 16, 18, 20, 22], [2, 5, 8, 11, 14, 17, 19, 21, 23]
    assert (J[left, 0] > 0).all()
    np.testing.assert_allclose(J[right], J[left] * [-1, 1, 1])
    assert J[15, 1] > J[12, 1] > J[9, 1] > J[6, 1] > J[3, 1] > J[0, 1] > J[4, 1] > J[7, 1]


def test_regressor_reproduces_rest_joints_and_shape_changes(built):
    m = built["model"]
    for name in ("J_regressor",):
        R = m[name]
        assert (R >= 0).all() and np.allclose(R.sum(1), 1)
        assert ((R > 0).sum(1) <= 64).all()  # sparse: one ring of vertices per joint
    np.testing.assert_allclose(m["J_regressor"] @ m["v_template"], built["joints"], atol=1e-12)
    for i in range(10):
        e = np.zeros(10)
        e[i] = 1
        dJ = (P.skeleton(e) - P.skeleton(-e)) / 2
        np.testing.assert_allclose(m["J_regressor"] @ m["shapedirs"][:, :, i], dJ, atol=1e-12)
    for name in ("J_regressor_extra", "J_regressor_h36m"):
        R = built[name]
        assert (R >= 0).all() and np.allclose(R.sum(1), 1), name


def test_shape_directions_change_height_girth_and_limbs(built):
    m = built["model"]
    V, S = m["v_template"], m["shapedirs"]
    height = lambda X: X[:, 1].max() - X[:, 1].min()
    assert 0.05 < height(V + 2 * S[:, :, 0]) - height(V) < 0.2  # stature
    waist = np.abs(np.round(V[:, 1], 2) - np.round(built["joints"][3, 1], 2)) < 0.01
    width = lambda X: np.ptp(X[waist, 0])
    assert width(V + S[:, :, 1]) > width(V)  # girth
    assert (V + S[:, :, 2])[:, 1].min() < V[:, 1].min() - 0.02  # longer legs: feet lower
    assert np.abs(S).reshape(-1, 10).max(0).min() > 5e-3  # every direction does something


def test_smplx_vertex_ids_land_on_landmarks(built):
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplh"]
    V, J = built["model"]["v_template"], built["joints"]
    head = V[V[:, 1] > J[15, 1]]
    nose = V[ids["nose"]]
    assert abs(nose[0]) < 1e-6 and nose[2] > head[:, 2].max() - 0.01  # front of the face
    for s, side in ((1, "l"), (-1, "r")):
        eye, ear = V[ids[side + "eye"]], V[ids[side + "ear"]]
        assert s * eye[0] > 0.01 and eye[1] > nose[1] and eye[2] > J[15, 2] + 0.05
        assert s * ear[0] > 0.06 and abs(ear[2] - J[15, 2]) < 0.05
        S = side.upper()
        ankle, foot, wrist, hand = (J[7], J[10], J[20], J[22]) if s > 0 else (J[8], J[11], J[21], J[23])
        big, small, heel = V[ids[S + "BigToe"]], V[ids[S + "SmallToe"]], V[ids[S + "Heel"]]
        assert big[2] > foot[2] and small[2] > foot[2] and heel[2] < ankle[2] - 0.03
        assert s * big[0] < s * small[0]  # big toe is medial
        tips = np.array([V[ids[side + f]] for f in ("thumb", "index", "middle", "ring", "pinky")])
        assert (s * tips[1:, 0] > s * hand[0] + 0.05).all() and s * tips[0, 0] > s * wrist[0] + 0.05
        assert (np.diff(tips[:, 2]) < 0).all()  # thumb forward ... pinky back (palms down)
    assert len(set(ids.values())) == 21


def test_weights_are_normalised_and_local(built):
    from smplx.vertex_ids import vertex_ids

    W = built["model"]["weights"]
    assert (W >= 0).all() and np.allclose(W.sum(1), 1) and ((W > 0).sum(1) <= 4).all()
    ids = vertex_ids["smplh"]
    assert W[ids["lmiddle"], [20, 22]].sum() > 0.99 and W[ids["rmiddle"], [21, 23]].sum() > 0.99
    assert W[ids["nose"], 15] > 0.8
    assert W[ids["LHeel"], 7] > 0.9 and W[ids["nose"], 15] > 0.99


def test_cli_and_cache(tmp_path, monkeypatch):
    assert P.main([str(tmp_path / "out")]) == 0
    for f in (P.MODEL_FILE, P.EXTRA_FILE, P.H36M_FILE):
        assert (tmp_path / "out" / f).is_file()
    monkeypatch.setenv("ROMP_FAST_CACHE", str(tmp_path / "cache"))
    folder = P.ensure_procedural_model()
    assert folder == tmp_path / "cache" / "body" / f"procedural-v{P.VERSION}"
    stamp = (folder / P.MODEL_FILE).stat().st_mtime_ns
    assert P.ensure_procedural_model() == folder
    assert (folder / P.MODEL_FILE).stat().st_mtime_ns == stamp  # not rewritten
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left
