"""Benchmark evaluators, one module each; ``python -m romp_fast.evaluate --benchmark NAME``.

``REGISTRY`` maps a benchmark name to ``"module:function"``; the function has the signature
``score(gt: str | Path, pred: str | Path, *, matching: str | None = None, progress: bool = False,
**options) -> romp_fast.evaluation.report.BenchmarkResult`` and is imported only when used, so
one benchmark's optional needs never break another.
"""
from __future__ import annotations

import importlib

REGISTRY: dict[str, str] = {
    "3dpw": "romp_fast.evaluation.benchmarks.threedpw:score_3dpw",
    "3dpw-challenge": "romp_fast.evaluation.benchmarks.threedpw:score_3dpw_challenge",
    "agora": "romp_fast.evaluation.benchmarks.agora:score_agora",
    "relative-human": "romp_fast.evaluation.benchmarks.relative_human:score_relative_human",
    "cmu-panoptic": "romp_fast.evaluation.benchmarks.cmu_panoptic:score_cmu_panoptic",
    "tracking": "romp_fast.evaluation.tracking.files:score_tracking",
}


def get_scorer(name: str):
    """The scoring function registered under ``name``; unknown names list the valid ones."""
    if name not in REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; valid benchmarks: {sorted(REGISTRY)}")
    module, fn = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), fn)
