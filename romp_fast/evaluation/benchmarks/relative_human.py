"""Relative Human (BEV, Sun et al., "Putting People in their Place", CVPR 2022), scored as
``simple_romp/evaluation/eval_Relative_Human.py`` + ``RH_evaluation/evaluation.py`` do.

Ground truth (``--gt``): ``{val,test}_annots.npz``, key ``annots`` = {image name: list of people},
each person a dict with ``kp2d`` float[19 | 14, 3] (x, y, visibility; visibility 0 = not
annotated) or ``None``/absent, ``depth_id`` int (depth layer, smaller = closer; -1 unknown),
``age`` int (0 adult, 1 teen, 2 kid, 3 baby; -1 unknown) and ``bbox``, ``gender``, ``body_type``
(not used). 19-joint keypoints are in the BK layout when the image's file stem has 7 characters,
else in OCHuman's; 14-joint ones in CrowdPose order. A ``.json`` file with the same nesting works.

Predictions (``--pred``): ``{set}_results.npz``, key ``results`` = {image name: list of
{``kp2ds`` float[14, 2] pixels in CrowdPose-14 order, ``trans`` float[3] metres (camera
translation; depth = ``trans[2]``), optional ``smpl_betas`` float[>= 11] (the 11th is BEV's kid
offset, giving the age class) or ``age`` int class}}, or per image one dict of stacked arrays
(``kp2ds`` [P, 14, 2], ``trans`` [P, 3], ...); ``.json`` alike.

Protocol: GT keypoints go to CrowdPose-14 by joint name, unannotated joints become (-2, -2) and
invisible; people without a visible joint are not evaluated. Matching: the AGORA kit's greedy rule
at IoU 0.05 on the GT-visible joints (``matching="greedy"``; ``"hungarian"`` also available); the
keypoint box of a GT person spans all 14 joints, -2 markers included, as in the script
(``gt_box="visible"`` uses the visible joints only). Because the 19-joint layouts have no
CrowdPose neck, every BK / OCHuman person's box then reaches (-2, -2): a published quirk that
makes small people far from the image origin hard to match. Reported:

* PCRD_0.2: depth pairs among matched people with known layers (``romp_fast.metrics.relative``),
  correct / (pairs + 0.3 x missed GT people); per age over pairs involving that age, with that
  age's misses; equal / closer / farther accuracies without penalty.
* detection precision / recall / F1 with TP = matches; the published script's variant
  (``*_rh_script``, TP = number of predictions - misses, unrounded) alongside.
* mPCKh: mean per-person mPCKh (0.143 x visible-box diagonal; visible = both GT coordinates > -1)
  over matched people, x100 (the script prints it as "mPCKh_0.6").
* age accuracy (BEV's in-training rule: 1 / 0.667 adjacent / 0), when predictions carry an age.

Deviations from the script, all small: people with < 2 visible joints are left out of mPCKh
(the script averages their -1 in); people without a visible joint are never counted as missed
(the script counts them only in images without predictions); percentages are not rounded.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from romp_fast.body import joints as J
from romp_fast.evaluation.benchmarks._io import (BenchmarkFileError, Progress, as_array, load_mapping,
                                                 match_people, mean_or_nan, pad)
from romp_fast.evaluation.matching import ROMP_IOU_THRESH
from romp_fast.evaluation.report import BenchmarkResult
from romp_fast.metrics.detection import detection_prf
from romp_fast.metrics.pckh import mpckh
from romp_fast.metrics.relative import (AGE_CLASSES, DEPTH_THRESH, RH_MISS_PENALTY, age_accuracy,
                                        age_class_from_offset, depth_pair_accuracy, depth_pairs)

# RH_evaluation/evaluation.py's 19-joint layouts. Their neck is named "Neck", not CrowdPose's
# "Neck_LSP", so the CrowdPose neck is never filled from them (the script behaves the same way).
BK_19 = ("Head_top", "Nose", "Neck", "L_Eye", "R_Eye", "L_Shoulder", "R_Shoulder", "L_Elbow",
         "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
         "L_BigToe", "R_BigToe")
OCHUMAN_19 = ("R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip",
              "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Head_top", "Neck", "R_Ear",
              "L_Ear", "Nose", "R_Eye", "L_Eye")
_CP_FROM = {"bk": J.joint_map(BK_19, J.CROWDPOSE_14), "ochuman": J.joint_map(OCHUMAN_19, J.CROWDPOSE_14)}
K = len(J.CROWDPOSE_14)


def _int(v, default=-1) -> int:
    if v is None:
        return default
    try:
        return int(np.asarray(v).reshape(()))
    except (TypeError, ValueError):
        return default


def _gt_image(name, people, where):
    """(kp [G,14,2] with -2 where unannotated, vis [G,14], depth_id [G], age [G]) of evaluable people."""
    if not isinstance(people, (list, tuple)):
        raise BenchmarkFileError(f"{where}: expected a list of people, got {type(people).__name__}")
    kps, viss, layers, ages = [], [], [], []
    for i, p in enumerate(people):
        if not isinstance(p, dict):
            raise BenchmarkFileError(f"{where} person {i}: expected a dict, got {type(p).__name__}")
        if p.get("kp2d") is None:
            continue
        kp = as_array(p["kp2d"], f"{where} person {i} field 'kp2d'", (None, 3)).reshape(-1, 3)
        vis = kp[:, 2] > 0  # visibility 0 (or the -2 marker) = not annotated
        if len(kp) == 19:
            layout = "bk" if len(Path(str(name)).name.replace(".jpg", "")) == 7 else "ochuman"
            idx = _CP_FROM[layout]
            kp, vis = kp[np.maximum(idx, 0)], vis[np.maximum(idx, 0)] & (idx >= 0)
        elif len(kp) != K:
            raise BenchmarkFileError(f"{where} person {i} field 'kp2d' must have 19 or 14 joints, got {len(kp)}")
        if not vis.any():
            continue
        kps.append(np.where(vis[:, None], kp[:, :2], -2.0))
        viss.append(vis)
        for key, out in (("depth_id", layers), ("age", ages)):
            if key not in p:
                raise BenchmarkFileError(f"{where} person {i}: missing field '{key}'")
            out.append(_int(p[key]))
    return (np.array(kps).reshape(-1, K, 2), np.array(viss, bool).reshape(-1, K),
            np.array(layers, np.int64), np.array(ages, np.int64))


def load_rh_gt(path) -> dict:
    return {str(n): _gt_image(n, v, f"{path}: image '{n}'") for n, v in load_mapping(path, "annots").items()}


def _pred_image(entry, where):
    """(kp2ds [P,14,2], depth [P], age class [P] (-1 unknown), has_age [P])."""
    if isinstance(entry, dict):
        for f in ("kp2ds", "trans"):
            if f not in entry:
                raise BenchmarkFileError(f"{where}: missing field '{f}'")
        kp = as_array(entry["kp2ds"], f"{where} field 'kp2ds'", (None, K, (2, 3)))[..., :2]
        tr = as_array(entry["trans"], f"{where} field 'trans'", (len(kp), 3))
        people = [{k: entry[k][i] for k in ("smpl_betas", "age") if k in entry} for i in range(len(kp))]
    elif isinstance(entry, (list, tuple)):
        kps, trs, people = [], [], []
        for i, p in enumerate(entry):
            w = f"{where} person {i}"
            if not isinstance(p, dict) or "kp2ds" not in p or "trans" not in p:
                raise BenchmarkFileError(f"{w}: missing field 'kp2ds' or 'trans'")
            kps.append(as_array(p["kp2ds"], f"{w} field 'kp2ds'", (K, (2, 3)))[:, :2])
            trs.append(as_array(p["trans"], f"{w} field 'trans'", (3,)))
            people.append(p)
        kp, tr = np.array(kps).reshape(-1, K, 2), np.array(trs).reshape(-1, 3)
    else:
        raise BenchmarkFileError(f"{where}: expected a list of people or a dict of arrays")
    age = np.full(len(kp), -1, np.int64)
    has = np.zeros(len(kp), bool)
    for i, p in enumerate(people):
        if p.get("age") is not None:
            age[i], has[i] = _int(p["age"]), True
        elif p.get("smpl_betas") is not None:
            b = as_array(p["smpl_betas"], f"{where} person {i} field 'smpl_betas'", (None,))
            if len(b) >= 11:  # BEV: the 11th shape coefficient is the kid offset
                age[i] = int(age_class_from_offset(torch.tensor(b[10])))
                has[i] = True
    return kp, tr[:, 2], age, has


def load_rh_predictions(path) -> dict:
    return {str(n): _pred_image(v, f"{path}: image '{n}'") for n, v in load_mapping(path, "results").items()}


def score_relative_human(gt, pred, *, matching=None, progress=False, iou_thresh=ROMP_IOU_THRESH,
                         max_dist=None, depth_thresh=DEPTH_THRESH, miss_penalty=RH_MISS_PENALTY,
                         gt_box="all", chunk=256) -> BenchmarkResult:
    """Score a predictions file on Relative Human (formats and protocol: module docstring).

    Options: ``matching`` ("greedy" default, "hungarian"), ``iou_thresh`` (0.05), ``max_dist``
    (hungarian gate, pixels), ``depth_thresh`` (0.2 m), ``miss_penalty`` (0.3 per missed person),
    ``gt_box`` ("all" joints incl. -2 markers as the script, or "visible"), ``chunk``.
    """
    if gt_box not in ("all", "visible"):
        raise ValueError(f"gt_box must be 'all' or 'visible', got {gt_box!r}")
    gts, preds = load_rh_gt(gt), load_rh_predictions(pred)
    names = sorted(gts)
    empty = (np.zeros((0, K, 2)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool))
    acc = {"tp": 0, "fp": 0, "fn": 0, "n_pred": 0, "pckh": [], "age_score": [], "age_gt": [],
           "missed_age": [], "gt_age": [], "matched_age": [], "pairs": []}
    bar = Progress(len(names), "relative-human", progress)
    for s in range(0, len(names), chunk):
        part = names[s:s + chunk]
        _score_chunk([gts[n] for n in part], [preds.get(n, empty) for n in part], acc, matching,
                     iou_thresh, max_dist, depth_thresh, gt_box)
        bar.update(len(part))
    bar.close()
    return _rh_result(acc, matching, iou_thresh, depth_thresh, miss_penalty, gt_box, len(set(preds) - set(gts)))


def _score_chunk(g, p, acc, matching, iou_thresh, max_dist, depth_thresh, gt_box):
    gk, gc = pad([x[0] for x in g])
    gv = pad([x[1] for x in g], dtype=torch.bool)[0]
    layer = pad([x[2] for x in g], fill=-1, dtype=torch.int64)[0]
    age = pad([x[3] for x in g], fill=-1, dtype=torch.int64)[0]
    pk, pc = pad([x[0] for x in p])
    pz = torch.nn.functional.pad(pad([x[1] for x in p])[0], (0, 1))  # >= 1 column for the gather below
    page = pad([x[2] for x in p], fill=-1, dtype=torch.int64)[0]
    phas = pad([x[3] for x in p], dtype=torch.bool)[0]
    box = gk
    if gt_box == "visible":  # move unannotated joints onto a visible one so they do not widen the box
        first = gv.int().argmax(-1, keepdim=True)[..., None].expand(-1, -1, 1, 2)
        box = torch.where(gv[..., None], gk, gk.gather(2, first))
    m = match_people(matching, pk, box, gv, pc, gc, iou_thresh=iou_thresh, max_dist=max_dist)
    cnt = m.counts()
    for k in ("tp", "fp", "fn"):
        acc[k] += cnt[k]
    acc["n_pred"] += int(pc.sum())
    b, pi, gi = m.pairs().unbind(1)
    # mPCKh over matched people, visibility as ROMP: both GT coordinates > -1
    vis = (gk[b, gi] > -1).all(-1)
    keep = vis.sum(-1) >= 2
    acc["pckh"] += mpckh(pk[b, pi], gk[b, gi], vis)[keep].tolist()
    ok_age = (age[b, gi] >= 0) & phas[b, pi]
    acc["age_score"] += age_accuracy(page[b, pi][ok_age], age[b, gi][ok_age]).tolist()
    acc["age_gt"] += age[b, gi][ok_age].tolist()
    acc["gt_age"] += age[torch.arange(gk.shape[1])[None] < gc[:, None]].tolist()
    acc["matched_age"] += age[b, gi].tolist()
    acc["missed_age"] += age[m.misses].tolist()
    # depth pairs among matched people with a known layer; depth = matched prediction's trans z
    matched = m.pred_for_gt >= 0
    z = torch.where(matched, pz.gather(1, m.pred_for_gt.clamp(min=0)), 0.0)
    cat, correct, valid = depth_pairs(z, layer, matched & (layer >= 0), thresh=depth_thresh)
    acc["pairs"].append((cat[valid], correct[valid], age[:, :, None].expand_as(valid)[valid],
                         age[:, None, :].expand_as(valid)[valid]))


def _pct(x) -> float:
    x = float(x)
    return x * 100.0 if math.isfinite(x) else math.nan


def _rh_result(acc, matching, iou_thresh, depth_thresh, miss_penalty, gt_box, extra_preds):
    parts = acc["pairs"] or [(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool),
                              torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))]
    cat, correct, age_i, age_j = (torch.cat([t[k] for t in parts]) for k in range(4))
    valid = torch.ones_like(correct)
    missed = torch.tensor(acc["missed_age"], dtype=torch.int64)
    n_missed = len(missed)
    th = f"{depth_thresh:g}"

    def ratio(sel, n_miss):
        den = int(sel.sum()) + miss_penalty * n_miss
        return float((correct & sel).sum()) / den if den > 0 else math.nan

    summary = {f"PCRD_{th}_pct": _pct(ratio(valid, n_missed))}
    rows = []
    for a, name in enumerate(AGE_CLASSES):
        sel = (age_i == a) | (age_j == a)
        miss_a = int((missed == a).sum())
        # the script reports an age only when some pair involves it
        summary[f"PCRD_{th}_{name}_pct"] = _pct(ratio(sel, miss_a)) if sel.any() else math.nan
        scores = [s for s, g in zip(acc["age_score"], acc["age_gt"]) if g == a]
        rows.append({"age": name, "gt_people": acc["gt_age"].count(a), "matched": acc["matched_age"].count(a),
                     "misses": miss_a, "pairs": int(sel.sum()), "PCRD_pct": summary[f"PCRD_{th}_{name}_pct"],
                     "age_acc_pct": _pct(mean_or_nan(scores))})
    summary[f"PCRD_{th}_no_penalty_pct"] = _pct(ratio(valid, 0))
    by_cat = depth_pair_accuracy(cat[:, None], correct[:, None], valid[:, None])
    summary.update({f"depth_{k}_acc_pct": _pct(v[0]) for k, v in by_cat.items()})
    summary["mPCKh_pct"] = _pct(mean_or_nan(acc["pckh"]))
    summary["age_acc_pct"] = _pct(mean_or_nan(acc["age_score"]))
    summary.update(detection_prf(acc["tp"], acc["fp"], acc["fn"]))
    # RH script's compute_prf1(count = #predictions, miss, fp): TP = #predictions - misses
    script = detection_prf(max(acc["n_pred"] - acc["fn"], 0), acc["fp"], acc["fn"]) if acc["n_pred"] else \
        {"precision": 0.0, "recall": 0.0, "F1": 0.0}
    summary.update({f"{k}_rh_script": v for k, v in script.items()})
    summary.update({"gt_people": acc["tp"] + acc["fn"], "matched": acc["tp"], "misses": acc["fn"],
                    "false_positives": acc["fp"], "depth_pairs": int(valid.sum())})
    notes = [f"matching: {matching or 'greedy'}" + (f" (AGORA kit's greedy rule, keypoint-box IoU >= {iou_thresh}, "
             f"GT box over {gt_box} joints; RH_evaluation/matching.py)" if matching in (None, "greedy") else ""),
             f"PCRD_{th}: correct depth pairs / (pairs + {miss_penalty:g} x missed GT people), per age over pairs "
             "involving that age; depth = trans[2]; pairs among matched people with known depth_id",
             "precision/recall/F1: TP = matches; *_rh_script: the published script's TP = #predictions - misses",
             "mPCKh_pct: mean per-person mPCKh (0.143 x box diagonal) over matched people with >= 2 visible joints "
             "(the script's 'mPCKh_0.6')",
             "age_acc_pct: 1 right class / 0.667 adjacent / 0 (BEV romp/eval.py), predicted class from smpl_betas[10] "
             "or 'age'; not part of the published RH script"]
    if not acc["age_score"]:
        notes.append("no prediction carried an age (smpl_betas[10] or 'age'): age accuracy is NaN")
    return BenchmarkResult("relative-human", summary, {"relative_human_age": rows},
                           details={"prediction_images_not_in_gt": extra_preds}, notes=notes)
