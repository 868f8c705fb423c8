"""The evaluator protocol (detectron2's ``DatasetEvaluator``): ``reset / process / evaluate``.

An evaluator accumulates per-person or per-image results in :meth:`process` and turns them into
named numbers in :meth:`evaluate`. Protocol details (joint maps, units, miss penalties, matching
rule) live in the evaluator; the numbers come from the pure functions in ``romp_fast.metrics``.
In distributed runs each rank processes its shard; ``romp_fast.evaluation.inference.inference_on_dataset``
then gathers every rank's ``state_dict()`` (plain Python containers) and hands the list to
``load_states(states)`` before :meth:`evaluate`, so every rank returns the numbers of the whole set.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable


@runtime_checkable
class Evaluator(Protocol):
    def reset(self) -> None:
        """Forget everything processed so far."""

    def process(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Accumulate one batch: ``inputs`` is the collated batch, ``outputs`` the parsed predictions."""

    def evaluate(self) -> dict[str, float]:
        """Return the metrics over everything processed since :meth:`reset` (flat ``name -> number``)."""


class EvaluatorList:
    """Several evaluators fed the same batches; their result dicts are merged (names must not clash)."""

    def __init__(self, evaluators):
        self.evaluators = list(evaluators)

    def reset(self) -> None:
        for e in self.evaluators:
            e.reset()

    def process(self, inputs, outputs) -> None:
        for e in self.evaluators:
            e.process(inputs, outputs)

    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for e in self.evaluators:
            r = e.evaluate()
            clash = sorted(set(r) & set(out))
            if clash:
                raise KeyError(f"evaluators report the same metric names {clash}")
            out.update(r)
        return out
