"""``python -m romp_fast.train [--config FILE|PRESET] [--output-dir DIR] [--resume RUN_DIR] [key=value ...]``

With no arguments: the CPU default (preset ``cpu``) on synthetic data, evaluated at the start and
the end. ``torchrun --nproc_per_node=N -m romp_fast.train ...`` trains with DistributedDataParallel.
A run folder holds ``config.yaml`` (resolved), ``env.json`` (seed, versions, git revision),
``metrics.jsonl``, ``checkpoints/ckpt_<iteration>.pt``, ``checkpoints/best.pt`` / ``best.json``,
``summary.json`` and, when TensorBoard is installed, ``tb/``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from romp_fast.engine import distributed as D
from romp_fast.engine.checkpoint import CheckpointError, checkpoints, load_checkpoint, load_model_state, set_rng_state
from romp_fast.engine.config import ConfigError, load_config, save_run_record
from romp_fast.engine.data import build_dataset, eval_loader, train_loader
from romp_fast.engine.events import ConsoleWriter, EventStorage, JSONLWriter, TensorBoardWriter, tensorboard_available
from romp_fast.engine.hooks import BestCheckpointer, Checkpointer, EvalHook, build_hooks
from romp_fast.engine.schedule import LRSchedule
from romp_fast.engine.trainer import Trainer


def build_optimizer(model: torch.nn.Module, s: dict) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if s["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"])
    if s["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"])
    return torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])


def make_evaluate(cfg: dict, net, device, val_set):
    from romp_fast.evaluation.inference import inference_on_dataset
    from romp_fast.evaluation.synthetic import SyntheticEvaluator

    ev = SyntheticEvaluator(net.body_model, match=cfg["eval"]["match"], match_gate=cfg["eval"]["match_gate"])
    loader = eval_loader(val_set, cfg["eval"]["batch_size"], rank=D.rank(), world_size=D.world_size())
    return lambda: inference_on_dataset(net, loader, ev, device, progress=cfg["train"]["progress"])


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m romp_fast.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="preset name (cpu, romp, bev) or YAML file; default cpu")
    ap.add_argument("--output-dir", default=None, help="run folder (default: the config's output_dir)")
    ap.add_argument("--resume", default=None, metavar="RUN_DIR",
                    help="continue the run in RUN_DIR from its newest checkpoint (overrides may extend it, "
                         "e.g. solver.max_iter=...)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. solver.lr=1e-4")
    return ap.parse_args(argv)


def run(args) -> dict:
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.yaml there (not a romp_fast run folder)")
        if args.config:
            raise ConfigError("--resume takes the run's own config.yaml; give changes as key=value overrides")
        cfg = load_config(str(run_dir / "config.yaml"), args.overrides)
        cfg["output_dir"] = str(run_dir)
    else:
        cfg = load_config(args.config, args.overrides)
        if args.output_dir:
            cfg["output_dir"] = args.output_dir
        run_dir = Path(cfg["output_dir"])
        if checkpoints(run_dir / "checkpoints"):
            raise ConfigError(f"run folder {run_dir} already has checkpoints; continue it with --resume {run_dir} "
                              f"or choose another --output-dir (nothing is overwritten)")

    device = D.init(cfg["device"], cfg["distributed"]["backend"])
    if device.type == "cpu" and cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])  # same initial weights on every rank (DDP also broadcasts rank 0's)

    from romp_fast.model import RompCriterion, build_model

    net = build_model(cfg["model"]).to(device)
    model = net
    if D.is_dist():
        if cfg["distributed"]["sync_bn"]:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            net = model
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg["distributed"]["find_unused_parameters"])
    s = cfg["solver"]
    optimizer = build_optimizer(net, s)
    schedule = LRSchedule(optimizer, s["schedule"], s["max_iter"], s["milestones"], s["gamma"],
                          s["warmup_iters"], s["warmup_factor"])
    L = cfg["loss"]
    criterion = RompCriterion(preset=L["preset"], weights=L["weights"], gmm_path=L["gmm_path"],
                              map_size=cfg["model"]["map_size"],
                              pampjpe_batch_intersection=L["pampjpe_batch_intersection"])
    size = int(cfg["model"]["input_size"])
    train_set = build_dataset(cfg["data"]["train"], size, body_model=None)
    val_set = build_dataset(cfg["data"]["val"], size, body_model=None)

    state = None
    start_iter = 0
    if args.resume:
        state = load_checkpoint(run_dir / "checkpoints")
        load_model_state(net, state, state["path"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        start_iter = int(state["iteration"])
        smp = state["sampler"]
        if (smp["batch_size"], smp["world_size"]) != (s["batch_size"], D.world_size()):
            raise CheckpointError(f"{state['path']}: saved with batch {smp['batch_size']} x {smp['world_size']} "
                                  f"processes; resuming with {s['batch_size']} x {D.world_size()} would change "
                                  f"the data order (resume with the same batch size and process count)")
    if start_iter >= s["max_iter"]:
        raise ConfigError(f"{run_dir} is already at iteration {start_iter} >= solver.max_iter={s['max_iter']}; "
                          f"extend it with solver.max_iter=N")
    loader = train_loader(train_set, s["batch_size"], seed=cfg["seed"], rank=D.rank(), world_size=D.world_size(),
                          start_iter=start_iter, num_workers=cfg["data"]["num_workers"],
                          map_size=int(cfg["model"]["map_size"]))
    storage = EventStorage(start_iter)
    trainer = Trainer(model, criterion, optimizer, loader, max_iter=s["max_iter"], start_iter=start_iter,
                      device=device, amp=s["amp"], grad_clip=s["grad_clip"], storage=storage,
                      freeze_bn=s["freeze_bn"])
    t = cfg["train"]
    eval_hook = EvalHook(make_evaluate(cfg, net, device, val_set), t["eval_period"], t["eval_at_start"])
    ck_dir = run_dir / "checkpoints"
    best = BestCheckpointer(eval_hook, None, t["best_metric"], t["best_mode"])
    checkpointer = Checkpointer(ck_dir, t["checkpoint_period"], t["keep_last"], schedule, cfg, {"best": best})
    best.checkpointer = checkpointer
    writers = []
    if D.is_main():
        save_run_record(cfg, run_dir)
        writers = [ConsoleWriter(s["max_iter"], start_iter, t["progress"]), JSONLWriter(run_dir / "metrics.jsonl")]
        if t["tensorboard"] and tensorboard_available():
            writers.append(TensorBoardWriter(run_dir / "tb"))
    trainer.register_hooks(build_hooks(schedule=schedule, eval_hook=eval_hook, checkpointer=checkpointer,
                                       best=best, writers=writers, log_period=t["log_period"]))
    if state is not None:
        trainer.scaler.load_state_dict(state["scaler"])
        trainer.skipped_steps = int(state.get("skipped_steps", 0))
        best.load_state_dict(state["hooks"].get("best", {}))
        set_rng_state(state["rng"])
    trainer.train()
    summary = {"iterations": s["max_iter"], "skipped_steps": trainer.skipped_steps,
               "evaluations": eval_hook.history, "best": best.state_dict(),
               "time_per_step_s": {k: storage.median(k) for k in storage.smoothed() if k.startswith("time/")}}
    if D.is_main():
        from romp_fast.body.io import atomic_write

        atomic_write(run_dir / "summary.json", lambda fh: fh.write(json.dumps(summary, indent=2, default=float).encode()))
        _print_summary(summary, s["batch_size"] * D.world_size())
    return summary


def _print_summary(summary: dict, global_batch: int) -> None:
    from romp_fast.evaluation.report import format_table

    ev = summary["evaluations"]
    keys = ["MPJPE_mm", "PA_MPJPE_mm", "PVE_mm", "precision", "recall", "F1"]
    rows = [{"iteration": e["iteration"], **{k: e.get(k, float("nan")) for k in keys}} for e in ev]
    if rows:
        print(format_table(rows, "validation (synthetic-val)"))
    tm = summary["time_per_step_s"]
    if tm.get("time/total"):
        parts = "  ".join(f"{k.split('/')[1]} {1000 * v:.0f} ms" for k, v in tm.items())
        print(f"throughput {global_batch / tm['time/total']:.1f} samples/s  ({parts})")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        D.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
