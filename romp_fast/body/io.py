"""Reading and writing SMPL-format body model files without chumpy, and joint regressors.

An SMPL model file is untrusted input. ``.pkl`` files are read with :class:`SafeUnpickler`, which
admits only what an SMPL pickle is made of: numpy arrays, dtypes and scalars, the chumpy ``Ch``
wrapper and scipy sparse matrices (both replaced by small stand-ins that just hold arrays), sets
(inside chumpy's state) and Python 3's latin-1 bytes encoding. Anything else (``os.system``,
``builtins.eval``, any other class) is refused by name before it is looked up, so a crafted file
cannot run code. ``.npz`` files are read with ``allow_pickle=False``.
"""
from __future__ import annotations

import codecs
import io
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

NUM_VERTICES = 6890
NUM_JOINTS = 24
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207
MODEL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class BodyModelFileError(ValueError):
    """A body model or regressor file is missing a key, has a wrong shape, or is refused."""


# ----------------------------------------------------------------------------- stand-ins
class ChStandIn:
    """Stands in for ``chumpy.ch.Ch``: keeps the pickled state; the array is its ``x``."""

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    def to_array(self):
        x = self.state.get("x")
        if x is None:
            raise BodyModelFileError("a chumpy object without an 'x' array (only plain Ch is supported)")
        return np.asarray(to_array(x))


class SparseStandIn:
    """Stands in for scipy's csc/csr/coo matrices: rebuilds a dense array from the pickled state."""

    fmt = "csc"

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    def to_array(self):
        s = self.state
        shape = s.get("_shape", s.get("shape"))
        try:
            shape = tuple(int(v) for v in shape)
            data = np.asarray(s["data"], dtype=np.float64)
            if self.fmt == "coo":  # scipy >= 1.13 stores (row, col) as 'coords'
                rows, cols = (np.asarray(c, np.int64) for c in s.get("coords", (s.get("row"), s.get("col"))))
            else:
                indices, indptr = np.asarray(s["indices"], np.int64), np.asarray(s["indptr"], np.int64)
                major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
                rows, cols = (indices, major) if self.fmt == "csc" else (major, indices)
        except (KeyError, TypeError, ValueError) as e:
            raise BodyModelFileError(f"malformed {self.fmt} sparse matrix state: {e}") from None
        dense = np.zeros(shape, dtype=np.float64)
        np.add.at(dense, (rows, cols), data)
        return dense


class _CsrStandIn(SparseStandIn):
    fmt = "csr"


class _CooStandIn(SparseStandIn):
    fmt = "coo"


def _reconstructor(cls, base, state):
    # copyreg._reconstructor (protocols 0/1): only for our stand-ins, never a real class.
    if cls not in (ChStandIn, SparseStandIn, _CsrStandIn, _CooStandIn) or base is not object:
        raise pickle.UnpicklingError(f"refused reconstruction of {cls!r} from {base!r}")
    return object.__new__(cls)


def _latin1_encode(text, encoding="latin1"):
    # Python 3 writes bytes under protocols < 3 as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError("refused _codecs.encode with anything but latin-1 text")
    return text.encode("latin1")


_NP_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_NP_SCALAR = np.float64(0).__reduce__()[0]
_NP_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # arrays under pickle protocol 5
_SPARSE = {"csc_matrix": SparseStandIn, "csc_array": SparseStandIn, "csr_matrix": _CsrStandIn,
           "csr_array": _CsrStandIn, "coo_matrix": _CooStandIn, "coo_array": _CooStandIn}


def _allowed(module: str, name: str):
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        return {"_reconstruct": _NP_RECONSTRUCT, "scalar": _NP_SCALAR}.get(name)
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _NP_FROMBUFFER
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module == "chumpy.ch" and name == "Ch":
        return ChStandIn
    if module in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
                  "scipy.sparse.coo", "scipy.sparse._coo", "scipy.sparse._arrays"):
        return _SPARSE.get(name)
    if module in ("copy_reg", "copyreg") and name == "_reconstructor":
        return _reconstructor
    if module in ("__builtin__", "builtins"):
        return {"set": set, "frozenset": frozenset, "object": object}.get(name)
    if module == "_codecs" and name == "encode":
        return _latin1_encode
    return None


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals an SMPL model pickle needs (see module docstring)."""

    def find_class(self, module, name):
        obj = _allowed(module, name)
        if obj is None:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': not a class an SMPL model file needs")
        return obj


def safe_load_pickle(path):
    """Unpickle ``path`` with :class:`SafeUnpickler` (latin-1 for Python 2 strings)."""
    with open(path, "rb") as fh:
        try:
            return SafeUnpickler(fh, encoding="latin1").load()
        except pickle.UnpicklingError as e:
            raise BodyModelFileError(f"{path}: {e}") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
            raise BodyModelFileError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def to_array(x):
    """Plain numpy array from an array, a chumpy stand-in or a sparse stand-in."""
    if isinstance(x, (ChStandIn, SparseStandIn)):
        return x.to_array()
    return np.asarray(x)


# ----------------------------------------------------------------------------- reading
def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"body model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except ValueError as e:  # object arrays need pickle: refused
            raise BodyModelFileError(f"{path}: {e}") from None
    if suffix == ".pkl":
        obj = safe_load_pickle(path)
        if not isinstance(obj, dict):
            raise BodyModelFileError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
        return obj
    raise BodyModelFileError(f"{path}: unknown body model extension {suffix!r} (expected .npz or .pkl)")


def _get(data: dict, key: str, path, dtype) -> np.ndarray:
    if key not in data:
        raise BodyModelFileError(f"{path}: missing key '{key}' (has {sorted(map(str, data))})")
    try:
        arr = np.asarray(to_array(data[key]), dtype=dtype)
    except (TypeError, ValueError) as e:
        raise BodyModelFileError(f"{path}: key '{key}' is not a numeric array ({e})") from None
    return arr


def _expect(arr: np.ndarray, shape: tuple, key: str, path) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise BodyModelFileError(f"{path}: key '{key}' must have shape {want}, got {list(arr.shape)}")


def load_body_model_data(path) -> dict:
    """Read an SMPL-format model (``.npz`` or ``.pkl``, official chumpy pickles included).

    Returns a dict of numpy arrays: ``v_template`` [6890, 3], ``shapedirs`` [6890, 3, K],
    ``posedirs`` [6890, 3, 207], ``J_regressor`` [24, 6890] (dense), ``weights`` [6890, 24]
    (float64), ``kintree_table`` [2, 24] and ``f`` [F, 3] (int64). Raises ``FileNotFoundError``
    for a missing file and :class:`BodyModelFileError` naming the file and key otherwise.
    """
    path = Path(path)
    data = _read_mapping(path)
    V, J = NUM_VERTICES, NUM_JOINTS
    out = {}
    for key, shape, dtype in (
        ("v_template", (V, 3), np.float64),
        ("shapedirs", (V, 3, None), np.float64),
        ("posedirs", (V, 3, NUM_POSE_BASIS), np.float64),
        ("J_regressor", (J, V), np.float64),
        ("weights", (V, J), np.float64),
        ("kintree_table", (2, J), np.int64),
        ("f", (None, 3), np.int64),
    ):
        arr = _get(data, key, path, dtype)
        _expect(arr, shape, key, path)
        out[key] = arr
    if out["shapedirs"].shape[2] < 1:
        raise BodyModelFileError(f"{path}: key 'shapedirs' has no shape directions")
    f = out["f"]
    if f.size and (f.min() < 0 or f.max() >= V):
        raise BodyModelFileError(f"{path}: key 'f' indexes vertices outside [0, {V})")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.isfinite(out[key]).all():
            raise BodyModelFileError(f"{path}: key '{key}' has non-finite values")
    return out


def load_regressor(path, rows: int | None = None, key: str | None = None) -> np.ndarray:
    """Read a joint regressor [rows, 6890] from ``.npy``, ``.npz`` or ``.pkl`` (dense or sparse)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"joint regressor file not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise BodyModelFileError(f"{path}: {e}") from None
        name = "array"
    else:
        data = _read_mapping(path)
        if key is None:
            if len(data) != 1:
                raise BodyModelFileError(f"{path}: pass key=, the file holds {sorted(map(str, data))}")
            key = next(iter(data))
        arr, name = _get(data, key, path, np.float64), key
    arr = np.asarray(to_array(arr), dtype=np.float64)
    _expect(arr, (rows, NUM_VERTICES), name, path)
    return arr


# ----------------------------------------------------------------------------- writing
def atomic_write(path, write) -> None:
    """Write ``path`` via ``write(file_object)`` into a temp file in the same folder + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cache files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npz(path, arrays: dict) -> None:
    # compressed: the procedural posedirs are mostly zeros (39 MB -> a few MB)
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def save_npy(path, array) -> None:
    atomic_write(path, lambda fh: np.save(fh, np.asarray(array)))


class _OfficialStylePickler(pickle._Pickler):
    """Writes the fake chumpy / scipy classes below under their real module names.

    The pure-Python pickler lets ``save_global`` be replaced, so the file names ``chumpy.ch.Ch``
    and ``scipy.sparse._csc.csc_matrix`` without either being importable here.
    """

    def save_global(self, obj, name=None):
        target = getattr(obj, "_pickle_as", None)
        if obj is _NP_RECONSTRUCT or obj is _NP_SCALAR:  # the name numpy 1.x (and SMPL's files) use
            target = ("numpy.core.multiarray", obj.__name__)
        if target is None:
            return super().save_global(obj, name)
        module, qualname = target
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("utf-8"))
        self.memoize(obj)


class _FakeCh:
    _pickle_as = ("chumpy.ch", "Ch")

    def __init__(self, x):
        # the attributes a pickled chumpy Ch carries (its __getstate__ drops _parents and _cache)
        self.x = np.asarray(x, dtype=np.float64)
        self._dirty_vars = {"x"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


class _FakeCsc:
    _pickle_as = ("scipy.sparse._csc", "csc_matrix")

    def __init__(self, dense):
        dense = np.asarray(dense, dtype=np.float64)
        rows, cols = np.nonzero(dense.T)  # column-major order: (col, row) pairs
        self._shape = dense.shape
        self.maxprint = 50
        self.data = dense.T[rows, cols]
        self.indices = cols.astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[1]))]).astype(np.int32)
        self._has_sorted_indices = True


def save_official_style_pkl(path, arrays: dict, protocol: int = 2) -> None:
    """Write ``arrays`` the way the official SMPL pickles are laid out (for tests and interop).

    ``shapedirs``, ``posedirs`` and ``v_template`` become chumpy ``Ch`` objects, ``J_regressor``
    a scipy csc matrix; everything else stays a numpy array. Neither chumpy nor scipy is imported.
    """
    obj = {}
    for k, v in arrays.items():
        if k in ("shapedirs", "posedirs", "v_template"):
            obj[k] = _FakeCh(v)
        elif k == "J_regressor":
            obj[k] = _FakeCsc(v)
        else:
            obj[k] = np.asarray(v)
    obj.setdefault("bs_style", "lbs")
    obj.setdefault("bs_type", "lrotmin")

    def write(fh):
        buf = io.BytesIO()
        _OfficialStylePickler(buf, protocol=protocol).dump(obj)
        fh.write(buf.getvalue())

    atomic_write(path, write)
