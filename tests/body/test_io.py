import io
import os
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse
import torch

from romp_fast.body import io as bio
from romp_fast.body.io import BodyModelFileError, load_body_model_data, load_regressor, safe_load_pickle
from romp_fast.body.procedural import EXTRA_FILE, MODEL_FILE, PKL_FILE


def test_npz_and_chumpy_pkl_give_identical_arrays(model_dir, built):
    a = load_body_model_data(model_dir / MODEL_FILE)
    b = load_body_model_data(model_dir / PKL_FILE)
    assert set(a) == set(b) == set(bio.MODEL_KEYS)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        np.testing.assert_array_equal(a[k], built["model"][k], err_msg=k)
    assert "chumpy" not in sys.modules


def test_official_style_pickle_structure(model_dir):
    import pickletools

    out = io.StringIO()
    with open(model_dir / PKL_FILE, "rb") as fh:
        pickletools.dis(fh, out=out)
    text = out.getvalue()
    assert "chumpy.ch Ch" in text and "scipy.sparse._csc csc_matrix" in text
    assert "numpy.core.multiarray _reconstruct" in text


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_smplx_builds_the_same_model_from_both_files(model_dir, fmt):
    import smplx

    data = load_body_model_data(model_dir / (MODEL_FILE if fmt == "npz" else PKL_FILE))
    ref = load_body_model_data(model_dir / MODEL_FILE)
    gen = torch.Generator().manual_seed(0)
    pose, betas = torch.randn(2, 72, generator=gen) * 0.3, torch.randn(2, 10, generator=gen)
    outs = []
    for d in (data, ref):
        m = smplx.SMPL(str(model_dir), data_struct=smplx.utils.Struct(**d), batch_size=2)
        outs.append(m(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas))
    # same arrays; float32 sums may differ in the last bit with the arrays' memory layout
    torch.testing.assert_close(outs[0].vertices, outs[1].vertices, rtol=0, atol=1e-6)
    torch.testing.assert_close(outs[0].joints, outs[1].joints, rtol=0, atol=1e-6)


def test_sparse_stand_in_matches_real_scipy_both_ways():
    gen = np.random.default_rng(0)
    dense = np.where(gen.random((5, 7)) < 0.3, gen.random((5, 7)), 0.0)
    for cls in (scipy.sparse.csc_matrix, scipy.sparse.csr_matrix, scipy.sparse.coo_matrix):
        blob = pickle.dumps({"J_regressor": cls(dense)}, protocol=2)
        got = bio.SafeUnpickler(io.BytesIO(blob)).load()["J_regressor"]
        np.testing.assert_array_equal(bio.to_array(got), dense)
    # our writer's fake csc matrix loads as a real scipy matrix with the ordinary unpickler
    buf = io.BytesIO()
    bio._OfficialStylePickler(buf, protocol=2).dump(bio._FakeCsc(dense))
    real = pickle.loads(buf.getvalue())
    assert scipy.sparse.issparse(real)
    np.testing.assert_array_equal(real.toarray(), dense)


@pytest.mark.parametrize("protocol", [0, 1, 2, 4])
def test_chumpy_stand_in_all_protocols(tmp_path, protocol):
    arrays = {"shapedirs": np.arange(6.0).reshape(1, 2, 3), "J_regressor": np.eye(3)[:2], "f": np.arange(3)}
    bio.save_official_style_pkl(tmp_path / "m.pkl", arrays, protocol=protocol)
    got = safe_load_pickle(tmp_path / "m.pkl")
    for k, v in arrays.items():
        np.testing.assert_array_equal(bio.to_array(got[k]), v)
    assert got["bs_style"] == "lbs"


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = {"v_template": np.zeros((6890, 3)), "f": _Evil(f"touch {marker}")}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(BodyModelFileError, match=r"evil\.pkl.*refused.*(posix|os|nt)\.system"):
        load_body_model_data(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_EvalEvil(), protocol=protocol))
    with pytest.raises(BodyModelFileError, match=r"refused to load global '(__builtin__|builtins)\.eval'"):
        load_body_model_data(path)


def test_refuses_classes_disguised_among_allowed_modules(tmp_path):
    # a crafted GLOBAL naming something else inside an allowed module is still refused
    blob = b"cnumpy\nload\n(S'x'\ntR."
    (tmp_path / "a.pkl").write_bytes(blob)
    with pytest.raises(BodyModelFileError, match=r"refused to load global 'numpy\.load'"):
        load_body_model_data(tmp_path / "a.pkl")
    blob = b"ccopyreg\n_reconstructor\n(cbuiltins\nobject\ncbuiltins\nobject\nNtR."
    (tmp_path / "b.pkl").write_bytes(blob)
    with pytest.raises(BodyModelFileError, match="refused reconstruction"):
        load_body_model_data(tmp_path / "b.pkl")


def _write_npz(path, d):
    np.savez(path, **d)
    return path


def test_clear_errors(tmp_path, built):
    good = built["model"]
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_body_model_data(tmp_path / "nothere.npz")
    (tmp_path / "m.obj").write_text("x")
    with pytest.raises(BodyModelFileError, match=r"m\.obj: unknown body model extension '\.obj'"):
        load_body_model_data(tmp_path / "m.obj")
    d = {k: v for k, v in good.items() if k != "posedirs"}
    p = _write_npz(tmp_path / "nopose.npz", d)
    with pytest.raises(BodyModelFileError, match=r"nopose\.npz: missing key 'posedirs'"):
        load_body_model_data(p)
    d = dict(good, weights=good["weights"][:, :23])
    p = _write_npz(tmp_path / "badw.npz", d)
    with pytest.raises(BodyModelFileError, match=r"badw\.npz: key 'weights' must have shape \[6890, 24\], got \[6890, 23\]"):
        load_body_model_data(p)
    d = dict(good, f=good["f"] + 10)
    p = _write_npz(tmp_path / "badf.npz", d)
    with pytest.raises(BodyModelFileError, match="'f' indexes vertices outside"):
        load_body_model_data(p)
    p = tmp_path / "obj.npz"
    np.savez(p, **dict(good, f=np.array([object()], dtype=object)))
    with pytest.raises(BodyModelFileError, match=r"obj\.npz"):
        load_body_model_data(p)
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(BodyModelFileError, match="expected a dict"):
        load_body_model_data(tmp_path / "list.pkl")
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps(good["f"])[:50])
    with pytest.raises(BodyModelFileError, match=r"trunc\.pkl"):
        load_body_model_data(tmp_path / "trunc.pkl")


def test_load_regressor(model_dir, built, tmp_path):
    reg = load_regressor(model_dir / EXTRA_FILE, rows=9)
    np.testing.assert_array_equal(reg, built["J_regressor_extra"])
    np.save(tmp_path / "r.npy", reg[:8])
    with pytest.raises(BodyModelFileError, match=r"must have shape \[9, 6890\], got \[8, 6890\]"):
        load_regressor(tmp_path / "r.npy", rows=9)
    with pytest.raises(FileNotFoundError, match="joint regressor file not found"):
        load_regressor(tmp_path / "none.npy")
