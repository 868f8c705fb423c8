"""pytest setup for the benchmark suites (DESIGN.md "Benchmarks", perf_peers.md section 6).

- Collects ``bench_*.py`` (pytest's default patterns would skip them).
- Two threads for every contender: ``torch.set_num_threads(2)`` here, and ``OMP_NUM_THREADS=2`` on
  the command line (``make bench`` does). Exporting it here is too late for libraries already
  loaded: pyproject's warning filter imports romp_fast, hence torch, before this file runs.
  ``BENCH_THREADS=1`` gives per-core numbers. Both are recorded per case and in machine_info.
- ``slow`` marks large sizes; ``-m "not slow"`` is the CI/smoke tier (``make bench-smoke``).
- ``record(benchmark, ...)`` fills ``benchmark.extra_info`` (contender, B, J, dtype, threads,
  ns/sample) for ``benchmarks/report.py``.
Pure helpers (input builders, numpy references) are in ``_common.py`` so the standalone GPU script
can use them too.
"""
from __future__ import annotations

import os
import platform

THREADS = int(os.environ.get("BENCH_THREADS", os.environ.get("OMP_NUM_THREADS", "2")))
os.environ["OMP_NUM_THREADS"] = str(THREADS)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)


def pytest_configure(config):
    # Also declared in pyproject.toml; repeated so the suite runs from another rootdir.
    config.addinivalue_line("markers", "slow: large benchmark sizes, not run in CI")


def pytest_collect_file(file_path, parent):
    # A file named on the command line is already collected by pytest itself; don't add it twice.
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_benchmark_update_machine_info(config, machine_info):
    import romp_fast.ops as ops

    machine_info["cpu_model"] = _cpu_model()
    machine_info["logical_cpus"] = os.cpu_count()
    machine_info["threads"] = thread_info()
    versions = {"torch": torch.__version__, "numpy": np.__version__}
    try:
        import roma
        versions["roma"] = getattr(roma, "__version__", "?")
    except ImportError:
        pass
    machine_info["versions"] = versions
    machine_info["romp_fast_build"] = ops.build_info()


def thread_info() -> dict:
    return {"torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


@pytest.fixture(scope="session", autouse=True)
def _threads():
    # Something imported later (or a previous test) must not have changed the setting.
    torch.set_num_threads(THREADS)
    yield


@pytest.fixture
def record(benchmark):
    """``record(contender=..., B=..., J=..., dtype=..., timed_B=None, **more)`` after pedantic().

    ``timed_B`` is the number of samples one timed call processed when it is a subset of ``B``
    (per-sample loops on large batches); report.py extrapolates those rows to ``B``.
    """
    def _record(*, contender: str, B: int, J: int, dtype, timed_B: int | None = None, **more):
        timed_B = B if timed_B is None else timed_B
        info = benchmark.extra_info
        info.update(thread_info())
        info.update(contender=contender, B=B, J=J, timed_B=timed_B,
                    dtype=str(np.dtype(str(dtype).replace("torch.", ""))))
        info.update(more)
        stats = getattr(benchmark.stats, "stats", None) if benchmark.stats is not None else None
        if stats is not None and stats.data:
            info["ns_per_sample_min"] = stats.min * 1e9 / max(timed_B, 1)
            info["ns_per_sample_median"] = stats.median * 1e9 / max(timed_B, 1)
    return _record

