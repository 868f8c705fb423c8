"""Run a model over a loader and feed an evaluator; shard-aware (each rank scores its share)."""
from __future__ import annotations

import sys

import torch

from romp_fast.engine import distributed as D
from romp_fast.evaluation.benchmarks._io import Progress


def inference_on_dataset(model, loader, evaluator, device: torch.device, *, progress: bool | str = "auto",
                         with_verts: bool = True) -> dict[str, float]:
    """``evaluator.reset()``, then for every batch ``evaluator.process(batch, model.parse_infer(maps))``,
    then gather the evaluators' states across ranks and return ``evaluator.evaluate()``.

    ``progress``: "auto" prints a progress line only on a terminal (rank 0)."""
    net = D.unwrap(model)
    evaluator.reset()
    show = D.is_main() and (progress is True or progress == "on" or (progress == "auto" and sys.stderr.isatty()))
    bar = Progress(len(loader), "eval", show)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                maps = net(batch["image"])
                out = net.parse_infer({k: v.float() for k, v in maps.items()}, with_verts=with_verts)
                evaluator.process(batch, out)
                bar.update()
    finally:
        net.train(was_training)
        bar.close()
    if D.is_dist():
        states = D.all_gather_object(evaluator.state_dict())
        evaluator.load_states(states)
    return evaluator.evaluate()
