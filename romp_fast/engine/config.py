"""Run configuration: defaults, YAML presets, ``key=value`` overrides, validation, run-folder record.

A config is a nested dict. ``ENGINE_DEFAULTS`` (below) plus the model section
(``romp_fast.model.MODEL_DEFAULTS``) define every valid key; a YAML file or a command-line override
naming any other key is an error that lists the valid ones. Presets live in ``romp_fast/configs``
(``cpu`` is the default; ``romp`` and ``bev`` carry the papers' settings, romp_protocols.md §1.1).
A YAML file may say ``base: <preset or path>`` to start from another file.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# Sections whose keys are free-form (validated by their consumer, e.g. LossComputer's term names).
FREE_FORM = {("loss", "weights")}

ENGINE_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "output_dir": "runs/cpu_default",
    "device": "auto",            # auto | cpu | cuda
    "threads": 0,                # torch.set_num_threads on CPU; 0 = leave torch's default
    "loss": {
        "preset": "romp",
        "weights": {},           # term -> weight overrides (romp_fast.losses.TERMS)
        "gmm_path": None,        # GMM pose prior file; None = prior off (the run says so)
        "pampjpe_batch_intersection": False,
    },
    "data": {
        "train": {"kind": "synthetic", "root": None, "split": "train", "length": 200000, "seed": 0,
                  "max_person": 4, "max_people": 3},
        "val": {"kind": "synthetic", "root": None, "split": "val", "length": 64, "seed": 1000003,
                "max_person": 4, "max_people": 3},
        "num_workers": 1,
    },
    "solver": {
        "optimizer": "adam",     # adam | adamw | sgd (ROMP: Adam, no weight decay)
        "lr": 3e-4,
        "weight_decay": 0.0,
        "momentum": 0.9,         # sgd only
        "batch_size": 16,        # per process
        "max_iter": 1000,
        "schedule": "multistep",  # multistep | cosine | constant
        "milestones": [],        # iterations (ROMP steps per epoch at epochs 60, 80: see presets)
        "gamma": 0.1,
        "warmup_iters": 0,
        "warmup_factor": 0.001,
        "amp": "off",            # off | fp16 (CUDA, with GradScaler) | bf16
        "grad_clip": None,       # max global grad norm; None = off (ROMP clips nothing)
        "freeze_bn": False,      # BatchNorm in eval mode while training (trainer.py explains)
    },
    "train": {
        "log_period": 20,
        "checkpoint_period": 200,
        "keep_last": 3,
        "eval_period": 0,        # 0 = only at the start and the end
        "eval_at_start": True,
        "best_metric": "PA_MPJPE_mm",
        "best_mode": "min",      # min | max: the metric's direction
        "progress": "auto",      # auto (only on a terminal) | on | off
        "tensorboard": True,     # when the tensorboard package is installed
    },
    "eval": {
        "batch_size": 16,
        "match": "hungarian",    # hungarian | greedy_agora
        "match_gate": 0.2,       # hungarian: mean 2D distance gate in normalised units
    },
    "distributed": {
        "backend": "auto",       # auto = nccl on CUDA, gloo on CPU
        "sync_bn": False,
        "find_unused_parameters": False,
    },
}


class ConfigError(ValueError):
    """A malformed config: the message names the file or key and lists what is valid."""


def defaults() -> dict[str, Any]:
    """The full default tree (engine + model)."""
    from romp_fast.model import MODEL_DEFAULTS

    d = copy.deepcopy(ENGINE_DEFAULTS)
    d["model"] = copy.deepcopy(dict(MODEL_DEFAULTS))
    return d


def _flat_keys(tree: Mapping, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping) and tuple(path.split(".")) not in FREE_FORM and v:
            out += _flat_keys(v, path + ".")
        else:
            out.append(path)
    return out


def _merge(base: dict, update: Mapping, where: str, path: tuple = ()) -> None:
    for k, v in update.items():
        key = path + (str(k),)
        if path in FREE_FORM or key in FREE_FORM:
            if key in FREE_FORM and not isinstance(v, Mapping):
                raise ConfigError(f"{where}: {'.'.join(key)} must be a mapping, got {v!r}")
            base[k] = {**base.get(k, {}), **v} if key in FREE_FORM else v  # merged, like other sections
            continue
        if k not in base:
            valid = ", ".join(_flat_keys(defaults()))
            raise ConfigError(f"{where}: unknown config key {'.'.join(key)!r}; valid keys: {valid}")
        if isinstance(base[k], dict) and base[k] and not isinstance(v, Mapping):
            raise ConfigError(f"{where}: {'.'.join(key)} is a section, got the value {v!r}")
        if isinstance(base[k], dict) and base[k] and isinstance(v, Mapping):
            _merge(base[k], v, where, key)
        else:
            base[k] = v


def _resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        return p
    preset = CONFIG_DIR / f"{name_or_path}.yaml"
    if not preset.is_file():
        names = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown preset {name_or_path!r}; presets: {names} (or give a .yaml path)")
    return preset


def _read_yaml(path: Path, seen: tuple = ()) -> dict:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    parent = _read_yaml(_resolve(str(base)), seen + (path.resolve(),))
    return _deep_update(parent, data)


def _deep_update(a: dict, b: Mapping) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_update(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"solver.lr=1e-3"`` -> (["solver", "lr"], 0.001); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. solver.lr=1e-4)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {e}") from None
    # YAML reads "1e-4" as a string (no dot): accept numbers written that way.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return key.split("."), value


def load_config(config: str | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults <- preset/YAML file (default preset ``cpu``) <- ``key=value`` overrides, validated."""
    cfg = defaults()
    path = _resolve(config or "cpu")
    _merge(cfg, _read_yaml(path), str(path))
    for text in overrides:
        keys, value = parse_override(text)
        update: Any = value
        for k in reversed(keys):
            update = {k: update}
        _merge(cfg, update, f"override {text!r}")
    validate(cfg)
    return cfg


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def validate(cfg: Mapping) -> None:
    """Value checks the key check cannot do (choices, ranges)."""
    s, t = cfg["solver"], cfg["train"]
    _need(s["optimizer"] in ("adam", "adamw", "sgd"), f"solver.optimizer must be adam|adamw|sgd, got {s['optimizer']!r}")
    _need(s["schedule"] in ("multistep", "cosine", "constant"),
          f"solver.schedule must be multistep|cosine|constant, got {s['schedule']!r}")
    _need(s["amp"] in ("off", "fp16", "bf16"), f"solver.amp must be off|fp16|bf16, got {s['amp']!r}")
    for k in ("batch_size", "max_iter"):
        _need(isinstance(s[k], int) and s[k] >= 1, f"solver.{k} must be an integer >= 1, got {s[k]!r}")
    _need(isinstance(s["lr"], (int, float)) and s["lr"] > 0, f"solver.lr must be > 0, got {s['lr']!r}")
    _need(isinstance(s["milestones"], list) and all(isinstance(m, int) for m in s["milestones"]),
          f"solver.milestones must be a list of iterations, got {s['milestones']!r}")
    _need(t["best_mode"] in ("min", "max"), f"train.best_mode must be min|max, got {t['best_mode']!r}")
    _need(t["progress"] in ("auto", "on", "off", True, False), f"train.progress must be auto|on|off, got {t['progress']!r}")
    for k in ("log_period", "checkpoint_period", "keep_last", "eval_period"):
        _need(isinstance(t[k], int) and t[k] >= 0, f"train.{k} must be an integer >= 0, got {t[k]!r}")
    _need(cfg["device"] in ("auto", "cpu", "cuda"), f"device must be auto|cpu|cuda, got {cfg['device']!r}")
    for split in ("train", "val"):
        d = cfg["data"][split]
        _need(d["kind"] in ("synthetic", "disk"), f"data.{split}.kind must be synthetic|disk, got {d['kind']!r}")
        _need(d["kind"] != "disk" or d["root"], f"data.{split}.root must name a data folder when kind is disk")
    _need(cfg["eval"]["match"] in ("hungarian", "greedy_agora"),
          f"eval.match must be hungarian|greedy_agora, got {cfg['eval']['match']!r}")


def _git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Versions and revision recorded next to a run's outputs."""
    import numpy
    import torch

    info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cuda": torch.version.cuda, "git_revision": _git_revision(),
            "argv": sys.argv, "hostname": platform.node(), "world_size": int(os.environ.get("WORLD_SIZE", 1))}
    try:
        import romp_fast.ops as ops

        info["romp_fast_build"] = ops.build_info()
    except Exception as e:  # the record must not fail the run
        info["romp_fast_build"] = f"unavailable: {e}"
    return info


def save_run_record(cfg: Mapping, run_dir: Path) -> None:
    """Write ``config.yaml`` (resolved) and ``env.json`` (seed, versions, git revision) atomically."""
    from romp_fast.body.io import atomic_write

    run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False)
    atomic_write(run_dir / "config.yaml", lambda fh: fh.write(text.encode()))
    env = dict(environment(), seed=cfg["seed"])
    atomic_write(run_dir / "env.json", lambda fh: fh.write(json.dumps(env, indent=2, default=str).encode()))
