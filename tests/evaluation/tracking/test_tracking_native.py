"""The fused native kernel (csrc/cpu/tracking_counts.cpp) behind eval_sequence's default path.

Its two entry points (TrackEval's per-frame lists read in place, and the flat-array op used for
prepared sequences) and both id-pair tables (dense, hashed) must give TrackEval's numbers on
generated sequences; inputs it does not take in place (other dtypes, strided arrays, tuples) must
fall back and still give them; invalid values must still raise the numpy path's errors.
"""
import copy

import numpy as np
import pytest
import torch

from romp_fast.evaluation.tracking import eval_sequence, from_trackeval, native
from romp_fast.evaluation.tracking.synthetic import make_sequence, to_trackeval

pytestmark = pytest.mark.skipif(not native.available(), reason="romp_fast._C is not built")
METRICS = ("HOTA", "CLEAR", "Identity")


def _data(seed, **kw):
    args = dict(num_frames=120, num_ids=14, per_frame=10, switch=0.01, refrag=0.2, fp=2.0, miss=0.1)
    args.update(kw)
    gt, tr = make_sequence(seed=seed, **args)
    return to_trackeval(gt, tr, args["num_frames"])


@pytest.mark.parametrize("dense_limit", [native.DENSE_LIMIT, 0], ids=["dense", "hashed"])
@pytest.mark.parametrize("from_lists", [True, False], ids=["lists", "flat"])
def test_entry_points_and_pair_tables_equal_trackeval(te, from_lists, dense_limit):
    for seed in range(3):
        data = _data(seed, image=(900.0, 600.0) if seed == 2 else (1920.0, 1080.0))
        if from_lists:
            got = native.eval_lists(data, METRICS, 0.5, dense_limit=dense_limit)
        else:
            got = native.eval_flat(from_trackeval(data), METRICS, 0.5, dense_limit=dense_limit)
        assert got is not None
        te.same(te.run(data), got, f"seed {seed}")


def test_prepared_sequence_goes_through_the_flat_op(te, monkeypatch):
    data = _data(4)
    seq = from_trackeval(data)
    calls = []
    real = native.eval_flat
    monkeypatch.setattr(native, "eval_flat", lambda *a, **k: calls.append(1) or real(*a, **k))
    te.same(te.run(data), eval_sequence(seq), "sequence")
    assert calls == [1]


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.75])
def test_identity_thresholds_including_zero(te, threshold):
    # threshold 0 admits every co-occurring pair, zero similarities included (TrackEval's >=)
    data = _data(5)
    ref = te.run(data, threshold)
    got = eval_sequence(data, metrics=["Identity"], threshold=threshold)
    te.same(ref, got, f"threshold {threshold}")
    assert native.eval_lists(data, ["Identity"], threshold) is not None


@pytest.mark.parametrize("change", ["int32_ids", "strided_sims", "tuples", "float32_sims"])
def test_inputs_not_read_in_place_fall_back_to_the_same_numbers(te, change):
    data = _data(6)
    ref = te.run(data)
    d = copy.deepcopy(data)
    if change == "int32_ids":
        d["gt_ids"] = [a.astype(np.int32) for a in d["gt_ids"]]
    elif change == "strided_sims":  # same values, Fortran order: not C-contiguous
        d["similarity_scores"] = [np.asfortranarray(s) for s in d["similarity_scores"]]
    elif change == "tuples":
        d["tracker_ids"] = tuple(d["tracker_ids"])
    else:  # float32 similarities are widened to float64, as the numpy path does
        d["similarity_scores"] = [s.astype(np.float32).astype(np.float64) for s in d["similarity_scores"]]
        ref = te.run(d)
        d["similarity_scores"] = [s.astype(np.float32) for s in d["similarity_scores"]]
    assert native._counts_from_lists(d, 7, 0.5, native.DENSE_LIMIT) is None or change == "float32_sims"
    te.same(ref, eval_sequence(d), change)


def test_one_thread_equals_two():
    data = _data(7, num_frames=300, num_ids=30, per_frame=20)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = eval_sequence(data)
        torch.set_num_threads(2)
        two = eval_sequence(data)
    finally:
        torch.set_num_threads(before)
    for m in METRICS:
        for k, v in one[m].items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(two[m][k]), err_msg=f"{m}.{k}")


def test_kernel_errors_name_frame_and_value():
    data = _data(8, num_frames=10)
    seq = from_trackeval(data)
    G, T, gt, tr, gp, tp = seq.num_gt_ids, seq.num_tracker_ids, seq.gt_ids, seq.tracker_ids, seq.gt_ptr, seq.tr_ptr
    sims = data["similarity_scores"]
    f = next(i for i, s in enumerate(sims) if s.size)
    t = torch.from_numpy

    def op(sim, gt):
        return torch.ops.romp_fast._tracking_counts(t(sim), t(gt), t(tr), t(gp), t(tp), G, T, t(native._ALPHA_MIN),
                                                    0.5, 0.5, 7, native.DENSE_LIMIT)

    bad = seq.sim.copy()
    bad[seq.sim_ptr[f]] = np.inf  # entry [0, 0] of frame f
    with pytest.raises(ValueError, match=rf"similarity_scores\[{f}\] holds inf"):
        op(bad, gt)
    sims[f][0, 0] = np.inf
    with pytest.raises(ValueError, match=rf"similarity_scores\[{f}\] holds inf"):
        native._counts_from_lists(data, 7, 0.5, native.DENSE_LIMIT)
    out_of_range = gt.copy()
    out_of_range[gp[3]:gp[4]] = G  # every id of frame 3 out of range
    if gp[4] > gp[3]:
        with pytest.raises(ValueError, match=rf"gt_ids\[3\] holds id {G}, outside \[0, {G}\)"):
            op(seq.sim, out_of_range)
    with pytest.raises(RuntimeError, match="the frames need"):
        op(seq.sim[1:], gt)


def test_buffer_protocol_objects_are_read_in_place(te):
    # any C-contiguous float64 / int64 buffer works, not only numpy arrays (the buffer-protocol path)
    data = _data(9)
    ref = te.run(data)
    d = dict(data)
    for k in ("gt_ids", "tracker_ids", "similarity_scores"):
        d[k] = [memoryview(a) for a in data[k]]
    got = native._counts_from_lists(d, 7, 0.5, native.DENSE_LIMIT)
    assert got is not None
    te.same(ref, native._results(*got, ("HOTA", "CLEAR", "Identity"), data["num_timesteps"], data["num_gt_ids"],
                                 data["num_gt_dets"], data["num_tracker_dets"]), "memoryviews")


@pytest.mark.parametrize("scan", ["scalar", "avx2"])
def test_narrower_scans_give_the_same_counts(scan, tmp_path):
    # The kernel picks its widest scan (AVX-512 / AVX2 / scalar) once per process; the narrower ones
    # run in a subprocess, on frames of many widths (tails of every length) and with invalid values.
    import subprocess
    import sys
    script = tmp_path / "scan.py"
    script.write_text(
        "import pickle, sys, numpy as np\n"
        "from romp_fast.evaluation.tracking import native\n"
        "from romp_fast.evaluation.tracking.synthetic import make_sequence, to_trackeval\n"
        "out = []\n"
        "for seed, per in ((0, 3), (1, 9), (2, 17), (3, 40)):\n"
        "    gt, tr = make_sequence(seed=seed, num_frames=40, num_ids=per + 5, per_frame=per, fp=2.0, miss=0.2)\n"
        "    d = to_trackeval(gt, tr, 40)\n"
        "    out.append(native._counts_from_lists(d, 7, 0.5, native.DENSE_LIMIT))\n"
        "for f, where, value in ((5, -1, np.nan), (6, 0, -1.0)):\n"  # in a frame's tail, in a vector
        "    old = d['similarity_scores'][f].flat[where]\n"
        "    d['similarity_scores'][f].flat[where] = value\n"
        "    try:\n"
        "        native._counts_from_lists(d, 7, 0.5, native.DENSE_LIMIT)\n"
        "        out.append('no error')\n"
        "    except ValueError as e:\n"
        "        out.append(str(e))\n"
        "    d['similarity_scores'][f].flat[where] = old\n"
        "sys.stdout.buffer.write(pickle.dumps(out))\n")
    import os
    import pickle
    runs = {}
    for name in (scan, "default"):
        env = dict(os.environ)
        env.pop("ROMP_FAST_TRACKING_SCAN", None)
        if name != "default":
            env["ROMP_FAST_TRACKING_SCAN"] = name
        res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, check=True)
        runs[name] = pickle.loads(res.stdout)
    for a, b in zip(runs[scan][:-2], runs["default"][:-2]):
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]
    assert runs[scan][-2:] == runs["default"][-2:]
    assert "similarity_scores[5] holds nan" in runs[scan][-2]
    assert "similarity_scores[6] holds -1" in runs[scan][-1]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_forked_child_computes_alone():
    # After fork() ATen's inter-op pool has no threads (and its lock may be held by one that was not
    # copied): the kernels must neither wait for helpers there nor hand them work.
    import os
    data = _data(10)
    want = eval_sequence(data)["HOTA"]["HOTA"]
    pid = os.fork()
    if pid == 0:  # child: same numbers, then exit without running pytest's teardown
        ok = np.array_equal(eval_sequence(data)["HOTA"]["HOTA"], want)
        os._exit(0 if ok else 1)
    import signal
    import time
    deadline = time.monotonic() + 60
    while True:  # a child waiting for threads that fork() did not copy would hang: give it a minute
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish within 60 s")
        time.sleep(0.05)
    assert os.WEXITSTATUS(status) == 0


def test_list_subclass_length_is_not_trusted():
    # items are read without bounds checks: the kernel must use the lists' real sizes
    from romp_fast.ops import _C

    class Liar(list):
        def __len__(self):
            return 2

    one = np.array([0])
    gl, tl, sl = Liar([one]), Liar([one]), Liar([np.array([[0.9]])])
    got = _C._tracking_counts_lists(gl, tl, sl, 1, 1, native._ALPHA_MIN.tolist(), 0.5 - native.EPS, 0.5, 7,
                                    native.DENSE_LIMIT)
    assert got is not None and got[3:] == (1, 1)  # one frame, one gt and one tracker detection
    assert got[1][0] == 1 and got[1][5] == 1  # CLR_TP, IDTP


def test_identity_nan_threshold_counts_nothing_as_trackeval(te):
    data = _data(11)
    ref = te.run(data, float("nan"))
    got = eval_sequence(data, metrics=["Identity"], threshold=float("nan"))
    te.same(ref, got, "nan threshold")
    assert got["Identity"]["IDTP"] == 0


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_allocation_failure_raises_instead_of_hanging(tmp_path):
    # If HOTA's preparation fails (here: bad_alloc under an address-space cap), the threads waiting to
    # match frames must give up and the error must reach Python. Whatever the cap does on a given
    # machine, the call has to finish.
    import subprocess
    import sys
    script = tmp_path / "cap.py"
    script.write_text(
        "import resource, numpy as np, torch\n"
        "from romp_fast.ops import _C\n"
        "from romp_fast.evaluation.tracking import native\n"
        "torch.set_num_threads(2)\n"
        "A = native._ALPHA_MIN.tolist()\n"
        "G, F = 50000, 200\n"
        "gl = [np.arange(G, dtype=np.int64) for _ in range(F)]\n"
        "tl = [np.zeros(0, np.int64) for _ in range(F)]\n"
        "sl = [np.zeros((G, 0)) for _ in range(F)]\n"
        "small = ([np.array([0])] * 300, [np.array([0])] * 300, [np.array([[0.5]])] * 300)\n"
        "for _ in range(3):\n"
        "    _C._tracking_counts_lists(*small, 1, 1, A, 0.5, 0.5, 7, 1 << 22)  # starts the helper pool\n"
        "vm = int([l for l in open('/proc/self/status') if l.startswith('VmSize')][0].split()[1]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 40 * 2**20, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    _C._tracking_counts_lists(gl, tl, sl, G, 1, A, 0.5, 0.5, 1, 1 << 22)\n"
        "    print('finished')\n"
        "except MemoryError:\n"
        "    print('MemoryError')\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() in ("finished", "MemoryError"), res.stdout + res.stderr
