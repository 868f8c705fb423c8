"""``python -m romp_fast.evaluate``: score a predictions file on a benchmark, or a checkpoint on data.

  python -m romp_fast.evaluate --benchmark 3dpw --gt DIR --pred FILE [--matching RULE] [--output-dir DIR]
  python -m romp_fast.evaluate --checkpoint CKPT --data synthetic-val [--output-dir DIR]
  python -m romp_fast.evaluate --checkpoint CKPT --data DATA_DIR [--split val]

Prints a table and writes ``<benchmark>.json`` (every number), per-sequence / per-subset CSVs and,
for the 3DPW challenge protocol, the PCK curve PNG into ``--output-dir`` (default
``eval_out/<benchmark>``). Benchmarks: see ``romp_fast.evaluation.benchmarks.REGISTRY``.
``--checkpoint`` runs the model first on the synthetic validation split (as configured in the
checkpoint's run) or on a folder in romp_fast's on-disk format (``romp_fast.data.disk``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from romp_fast.evaluation.benchmarks import REGISTRY, get_scorer
from romp_fast.evaluation.report import BenchmarkResult, format_result, write_result

CHECKPOINT_BENCHMARKS = ("synthetic-val",)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m romp_fast.evaluate", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default=None, choices=sorted(REGISTRY) + list(CHECKPOINT_BENCHMARKS))
    ap.add_argument("--gt", default=None, help="ground-truth file or folder in the benchmark's own format")
    ap.add_argument("--pred", default=None, help="predictions file or folder (format: the evaluator's docstring)")
    ap.add_argument("--matching", default=None, help="matching rule (default: the protocol's own)")
    ap.add_argument("--option", action="append", default=[], metavar="key=value",
                    help="evaluator option (repeatable; value parsed as YAML), e.g. missing=penalty, "
                         "body_models=DIR; each evaluator's docstring lists its options")
    ap.add_argument("--checkpoint", default=None, help="a romp_fast checkpoint (.pt) or run folder")
    ap.add_argument("--data", default=None, help="synthetic-val, or a data folder in romp_fast's on-disk format")
    ap.add_argument("--split", default="val", help="split of --data DATA_DIR (default val)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--output-dir", default=None)
    ap.add_argument("--progress", default="auto", choices=["auto", "on", "off"])
    return ap.parse_args(argv)


def score_checkpoint(checkpoint: str, data: str, *, split: str = "val", batch_size: int | None = None,
                     device: str = "auto", matching: str | None = None, progress="auto") -> BenchmarkResult:
    """Run the checkpoint's model over ``data`` and score it with the synthetic-val protocol."""
    from romp_fast.engine import distributed as D
    from romp_fast.engine.checkpoint import load_checkpoint, load_model_state
    from romp_fast.engine.data import build_dataset, eval_loader
    from romp_fast.evaluation.inference import inference_on_dataset
    from romp_fast.evaluation.synthetic import SyntheticEvaluator
    from romp_fast.model import build_model

    state = load_checkpoint(Path(checkpoint) / "checkpoints" if Path(checkpoint).is_dir()
                            and (Path(checkpoint) / "checkpoints").is_dir() else checkpoint)
    cfg = state["config"]
    dev = D.init(device)
    net = build_model(cfg["model"]).to(dev)
    load_model_state(net, state, state["path"])
    if data == "synthetic-val":
        spec = cfg["data"]["val"]
        name = "synthetic-val"
    else:
        spec = {"kind": "disk", "root": data, "split": split}
        name = f"disk:{Path(data).name}/{split}"
    dataset = build_dataset(spec, int(cfg["model"]["input_size"]))
    match = matching or cfg["eval"]["match"]
    ev = SyntheticEvaluator(net.body_model, match=match, match_gate=cfg["eval"]["match_gate"])
    loader = eval_loader(dataset, batch_size or cfg["eval"]["batch_size"], rank=D.rank(), world_size=D.world_size())
    summary = inference_on_dataset(net, loader, ev, dev, progress=progress)
    notes = [f"checkpoint {state['path']} (iteration {state['iteration']}), data {name} ({len(dataset)} images)",
             f"matching: {match} (gate {cfg['eval']['match_gate']} normalised units for hungarian); misses and "
             f"false positives counted in precision/recall/F1; pose errors over matched people",
             "MPJPE / PA-MPJPE on LSP-14 joints, root = hip mid-point; PVE on 6890 vertices; millimetres"]
    return BenchmarkResult("synthetic-val", summary, notes=notes)


def _parse_option(text: str):
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--option {text!r} must look like key=value")
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ValueError(f"--option {text!r}: value is not valid YAML: {e}") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.checkpoint:
            if args.benchmark not in (None, *CHECKPOINT_BENCHMARKS):
                raise ValueError(f"--checkpoint runs the model on romp_fast-format data (synthetic-val or a "
                                 f"data folder); for --benchmark {args.benchmark}, write the model's predictions "
                                 f"in that benchmark's format and pass --gt/--pred")
            if not args.data:
                raise ValueError("--checkpoint needs --data (synthetic-val or a data folder)")
            result = score_checkpoint(args.checkpoint, args.data, split=args.split, batch_size=args.batch_size,
                                      device=args.device, matching=args.matching, progress=args.progress)
        else:
            if not args.benchmark or not args.gt or not args.pred:
                raise ValueError("give --benchmark NAME --gt PATH --pred PATH, or --checkpoint CKPT --data DATA")
            if args.benchmark in CHECKPOINT_BENCHMARKS:
                raise ValueError(f"--benchmark {args.benchmark} scores a checkpoint: use --checkpoint CKPT --data {args.benchmark}")
            scorer = get_scorer(args.benchmark)
            options = dict(_parse_option(o) for o in args.option)
            result = scorer(args.gt, args.pred, matching=args.matching, progress=args.progress != "off", **options)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    out = Path(args.output_dir or Path("eval_out") / result.benchmark)
    paths = write_result(result, out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
