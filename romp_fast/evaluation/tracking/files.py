"""``python -m romp_fast.evaluate --benchmark tracking --gt DIR --pred DIR``: every sequence of a
folder of tracking files scored with HOTA, CLEAR and Identity, and combined as TrackEval combines
sequences (detection counts summed, association scores weighted by HOTA_TP).

Sequences are found in ``gt`` as (first match wins) ``<seq>/gt/gt.txt`` (MOTChallenge layout, with
``<seq>/seqinfo.ini`` giving the length), ``<seq>.txt``, ``<seq>_tracking.npz`` or ``<seq>.npz``;
predictions in ``pred`` as ``<seq>.txt``, ``data/<seq>.txt`` (TrackEval's tracker folder),
``<seq>_tracking.npz`` or ``<seq>.npz``. File formats: :mod:`.formats`.
"""
from __future__ import annotations

import configparser
import sys
from pathlib import Path

import numpy as np

from romp_fast.evaluation.benchmarks._io import BenchmarkFileError
from romp_fast.evaluation.report import BenchmarkResult
from romp_fast.evaluation.tracking import api, hota, motmetrics_compat
from romp_fast.evaluation.tracking.build import build_sequence, mot_preprocess
from romp_fast.evaluation.tracking.formats import read_mot_file, read_trace_file, reindex_frames

SUMMARY_FIELDS = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr", "OWTA", "HOTA(0)",
                  "LocA(0)", "HOTALocA(0)", "MOTA", "MOTP", "MODA", "sMOTA", "CLR_Re", "CLR_Pr", "MTR", "PTR",
                  "MLR", "CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "IDF1", "IDR", "IDP",
                  "IDTP", "IDFN", "IDFP")
MATCHING = {None: False, "trackeval": False, "scipy": True, "exact": True}
ALPHA_FIELDS = hota.FLOAT_ARRAY_FIELDS + hota.INTEGER_ARRAY_FIELDS


def find_sequences(gt_dir, pred_dir, missing_pred="error"):
    """[(name, gt file, pred file or None, length from seqinfo.ini or None)], sorted by name."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d, what in ((gt_dir, "ground-truth"), (pred_dir, "prediction")):
        if not d.is_dir():
            raise BenchmarkFileError(f"{d}: {what} folder not found")
    found = {}
    for p in sorted(gt_dir.iterdir()):
        if p.is_dir() and (p / "gt" / "gt.txt").is_file():
            found.setdefault(p.name, (p / "gt" / "gt.txt", p / "seqinfo.ini"))
        elif p.suffix == ".txt" and p.is_file():
            found.setdefault(p.stem, (p, None))
        elif p.suffix == ".npz" and p.is_file():
            found.setdefault(p.stem[:-9] if p.stem.endswith("_tracking") else p.stem, (p, None))
    if not found:
        raise BenchmarkFileError(f"{gt_dir}: no sequences (<seq>/gt/gt.txt, <seq>.txt or <seq>[_tracking].npz)")
    out = []
    for name, (gfile, ini) in sorted(found.items()):
        cands = [pred_dir / f"{name}.txt", pred_dir / "data" / f"{name}.txt", pred_dir / f"{name}_tracking.npz",
                 pred_dir / f"{name}.npz"]
        pfile = next((c for c in cands if c.is_file()), None)
        if pfile is None and missing_pred != "empty":
            raise BenchmarkFileError(f"{pred_dir}: no predictions for sequence '{name}' (looked for "
                                     f"{', '.join(c.name for c in cands)}); missing_pred='empty' scores it "
                                     "as no output")
        length = None
        if ini is not None and ini.is_file():
            cfg = configparser.ConfigParser()
            try:
                cfg.read(ini)
                length = int(cfg["Sequence"]["seqLength"])
            except (KeyError, ValueError, configparser.Error) as e:
                raise BenchmarkFileError(f"{ini}: needs [Sequence] seqLength ({e})") from None
        out.append((name, gfile, pfile, length))
    return out


def _read(path):
    """(Dets, frame numbers or None for MOT text whose frames are already timesteps)."""
    if path.suffix == ".npz":
        return read_trace_file(path)
    return read_mot_file(path), None


def load_sequence(name, gfile, pfile, length=None, *, exact=False, preprocess=True, benchmark="MOT17", **build):
    """One sequence's files -> a :class:`~.sequence.Sequence` (MOT preprocessing for MOT text)."""
    from romp_fast.evaluation.tracking.formats import Dets

    gt, gnum = _read(gfile)
    if pfile is None:
        pred, pnum = Dets(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4))), []
    else:
        pred, pnum = _read(pfile)
    where = (str(gfile), str(pfile))
    timeline = None
    if gnum is None and (pnum is None or pfile is None):  # MOT text: 1-based frame numbers
        top = int(max(gt.frame.max(initial=-1), pred.frame.max(initial=-1))) + 1
        if length is not None and top > length:
            bad = where[0] if gt.frame.max(initial=-1) + 1 > length else where[1]
            raise BenchmarkFileError(f"{bad}: frame {top} is beyond seqLength = {length} of '{name}'")
        F = length if length is not None else top
    else:  # frame numbers from npz keys: one timestep per distinct frame
        if gnum is None or (pnum is None and pfile is not None):
            gnum = list(range(1, int(gt.frame.max(initial=-1)) + 2)) if gnum is None else gnum
            pnum = list(range(1, int(pred.frame.max(initial=-1)) + 2)) if pnum is None else pnum
        timeline = sorted(set(gnum) | set(pnum))
        gt, pred = reindex_frames(gt, gnum, timeline), reindex_frames(pred, pnum, timeline)
        F = len(timeline)
    if preprocess and gfile.suffix == ".txt":
        gt, pred = mot_preprocess(gt, pred, F, benchmark=benchmark, where=where, exact=exact, **build)
    return build_sequence(gt, pred, F, where=where, timeline=timeline, keep_frames=exact, **build)


def _coerce(options):
    """Options from a command line arrive as strings: numbers, booleans, 'a,b' pairs."""
    out = {}
    for k, v in options.items():
        if isinstance(v, str):
            low = v.lower()
            if low in ("true", "false"):
                v = low == "true"
            elif k in ("threshold", "max_distance", "zero_distance"):
                v = float(v)
            elif k == "box_scale":
                v = tuple(float(x) for x in v.split(","))
        out[k] = v
    return out


def _row(name, flat):
    return {"sequence": name, **{k: flat[k] for k in SUMMARY_FIELDS if k in flat}}


def score_tracking(gt, pred, *, matching=None, progress=False, **options) -> BenchmarkResult:
    """Scores a folder of tracking predictions against a folder of ground truth.

    Args:
        gt, pred: folders (layouts in the module docstring).
        matching: ``None``/``"trackeval"`` (native solver on independent sub-problems; identical to
            TrackEval whenever each frame's optimum is unique) or ``"scipy"``/``"exact"`` (every
            frame's full matrix through scipy, as TrackEval, so ties resolve identically too).
        options: ``threshold`` (0.5; CLEAR/Identity), ``similarity`` ("iou", "keypoints",
            "joints3d" or a callable), ``pred_boxes`` ("auto", "file", "joints": TRACE builds the
            predicted boxes from the projected 2D joints), ``box_scale`` ((sx, sy) for boxes from
            joints; TRACE: (1.1, 1.18) MuPoTS, (1.0, 1.05) Dyna3DPW), ``zero_distance`` (metres, for
            "joints3d"), ``preprocess`` (True: TrackEval's MOTChallenge preprocessing of MOT text
            ground truth with class columns), ``benchmark`` ("MOT17"/"MOT20"), ``motmetrics``
            (also report py-motmetrics' conventions, with ``max_distance``, default 1 - threshold),
            ``missing_pred`` ("error" or "empty").
    Returns:
        BenchmarkResult: ``summary`` = the combined numbers, ``tables["per_sequence"]`` = one row per
        sequence plus "COMBINED", ``details`` = HOTA per alpha (and motmetrics' numbers),
        ``curves["hota_alpha"]`` = combined HOTA over alpha.
    """
    if matching not in MATCHING:
        raise ValueError(f"tracking: matching must be one of {[m for m in MATCHING if m]} or None, got {matching!r}")
    exact = MATCHING[matching]
    opts = _coerce(options)
    threshold = float(opts.pop("threshold", 0.5))
    with_mm = bool(opts.pop("motmetrics", False))
    max_distance = float(opts.pop("max_distance", 1.0 - threshold))
    missing = opts.pop("missing_pred", "error")
    load_keys = ("preprocess", "benchmark", "similarity", "pred_boxes", "box_scale", "zero_distance")
    unknown = sorted(set(opts) - set(load_keys))
    if unknown:
        valid = sorted(load_keys + ("threshold", "motmetrics", "max_distance", "missing_pred"))
        raise ValueError(f"tracking: unknown options {unknown}; valid: {valid}")
    seqs = find_sequences(gt, pred, missing)
    per_seq, rows, alpha_details, mm = {}, [], {}, {}
    for i, (name, gfile, pfile, length) in enumerate(seqs):
        if progress:
            print(f"[tracking] {i + 1}/{len(seqs)} {name}", file=sys.stderr, flush=True)
        seq = load_sequence(name, gfile, pfile, length, exact=exact, **opts)
        res = api.eval_sequence(seq, threshold=threshold, exact=exact)
        per_seq[name] = res
        rows.append(_row(name, api.flatten(res)))
        alpha_details[name] = {k: res["HOTA"][k].tolist() for k in ALPHA_FIELDS}
        if with_mm:
            mm[name] = motmetrics_compat.eval_motmetrics(seq, max_distance)
    combined = api.combine_sequences(per_seq)
    sim = opts.get("similarity", "iou")
    flat = api.flatten(combined)
    rows.append(_row("COMBINED", flat))
    alpha_details["COMBINED"] = {k: combined["HOTA"][k].tolist() for k in ALPHA_FIELDS}
    details = {"alpha": hota.ALPHAS.tolist(), "hota_per_alpha": alpha_details}
    notes = [f"TrackEval definitions (HOTA, CLEAR, Identity), threshold {threshold} for CLEAR/Identity; HOTA "
             "fields are means over alpha = 0.05..0.95",
             "combined as TrackEval combines sequences: counts summed, AssA/AssRe/AssPr/LocA weighted by HOTA_TP "
             "(TRACE's own script averages HOTA over videos instead)",
             "matching: " + ("scipy on every frame's full matrix (TrackEval's tie-breaking)" if exact
                             else "native linear_assignment on independent sub-problems (same as TrackEval "
                                  "when each frame's optimum is unique)"),
             f"similarity: {sim if isinstance(sim, str) else getattr(sim, '__name__', 'custom')}"]
    if with_mm:
        mm["OVERALL"] = motmetrics_compat.combine_motmetrics(list(mm.values()))
        details["motmetrics"] = mm
        notes.append(f"details.motmetrics: py-motmetrics conventions, distance 1 - sim <= {max_distance}")
    curves = {"hota_alpha": {"x": hota.ALPHAS.tolist(), "y": combined["HOTA"]["HOTA"].tolist(),
                             "xlabel": "alpha", "ylabel": "HOTA", "title": "combined"}}
    summary = {k: v for k, v in rows[-1].items() if k != "sequence"}
    return BenchmarkResult("tracking", summary, {"per_sequence": rows}, curves, details, notes)
