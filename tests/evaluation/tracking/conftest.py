"""Shared oracles for the tracking tests: TrackEval (PyPI ``trackeval``) run on the same data, and
a field-by-field comparison (integers exact, floats to 1e-9, HOTA's per-alpha arrays elementwise)."""
import copy

import numpy as np
import pytest

trackeval = pytest.importorskip("trackeval")


def _trackeval(data, threshold=0.5):
    """TrackEval's three metrics on (a deep copy of) ``data``: {"HOTA": ..., "CLEAR": ..., "Identity": ...}."""
    m = trackeval.metrics
    cfg = {"PRINT_CONFIG": False, "THRESHOLD": threshold}
    with np.errstate(invalid="ignore"):  # TrackEval divides 0 / 0 for ids that never appear
        return {"HOTA": m.HOTA().eval_sequence(copy.deepcopy(data)),
                "CLEAR": m.CLEAR(cfg).eval_sequence(copy.deepcopy(data)),
                "Identity": m.Identity(cfg).eval_sequence(copy.deepcopy(data))}


def _combine_trackeval(per_seq, threshold=0.5):
    m = trackeval.metrics
    cfg = {"PRINT_CONFIG": False, "THRESHOLD": threshold}
    metrics = {"HOTA": m.HOTA(), "CLEAR": m.CLEAR(cfg), "Identity": m.Identity(cfg)}
    return {k: metrics[k].combine_sequences({s: r[k] for s, r in per_seq.items()}) for k in metrics}


def _assert_same(ref, got, where="", fields=None, tol=1e-9):
    """Every field of TrackEval's result ``ref`` equals ours (ints exactly, floats within tol), for
    each metric in ``got``."""
    assert got, f"{where}: no metrics"
    for metric in got:
        ref_fields = ref[metric]
        for k, want in ref_fields.items():
            if fields is not None and k not in fields:
                continue
            assert k in got[metric], f"{where}: {metric}.{k} missing"
            have = got[metric][k]
            w, h = np.asarray(want, dtype=np.float64), np.asarray(have, dtype=np.float64)
            assert w.shape == h.shape, f"{where}: {metric}.{k} shape {h.shape} != {w.shape}"
            integral = np.all(w == np.round(w)) and k in INTEGER_FIELDS
            if integral:
                np.testing.assert_array_equal(h, w, err_msg=f"{where}: {metric}.{k}")
            else:
                np.testing.assert_allclose(h, w, rtol=0, atol=tol, err_msg=f"{where}: {metric}.{k}")


INTEGER_FIELDS = {"HOTA_TP", "HOTA_FN", "HOTA_FP", "CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag",
                  "CLR_Frames", "IDTP", "IDFN", "IDFP"}


@pytest.fixture(scope="session")
def te():
    """Namespace with ``run(data, threshold)``, ``combine(per_seq, threshold)``, ``same(ref, got, where)``."""
    class NS:
        run = staticmethod(_trackeval)
        combine = staticmethod(_combine_trackeval)
        same = staticmethod(_assert_same)
    return NS


@pytest.fixture(params=["kernel", "numpy", "exact"])
def mode(request, monkeypatch):
    """How ``eval_sequence`` computes: the fused native kernel (the default), the numpy path over
    batched ``linear_assignment`` (the fallback when the kernel is not built), or scipy on every
    frame (``exact=True``). Returns the ``exact`` flag to pass."""
    from romp_fast.evaluation.tracking import native
    if request.param == "kernel" and not native.available():
        pytest.skip("romp_fast._C is not built")
    if request.param == "numpy":
        monkeypatch.setattr(native, "available", lambda: False)
    return request.param == "exact"
