"""CMU Panoptic, multi-person protocol (Jiang et al., "Coherent Reconstruction of Multiple Humans",
CVPR 2020), scored as BEV's ``simple_romp/evaluation/eval_cmu_panoptic.py`` does.

Ground truth (``--gt``), one of:

* BEV's processed ``annots.npz``: key ``annots`` = {image name: [kp2d float[N, 14, 2] pixels of
  the 1920x1080 frame, kp3d float[N, 14, 3] metres with -2 for missing joints]} (``load_gts`` in
  the script writes it). A ``.json`` file with the same nesting (lists, or
  ``{"kp2d": ..., "kp3d": ...}`` per image) is read the same way.
* the raw annotation folder of that protocol, ``panoptic_annot/`` (or one of its ``.pkl`` files):
  lists of {``filename`` "…/<sequence>/…/<frame>.png", ``kpts2d`` float[N, 24, 3] in the 832x512
  frame, ``kpts3d`` float[N, 24, 4] metres + confidence, ``width``, ``height``}, turned into the
  processed form with ``load_gts``' rules: SPIN's 24 joints -> J14 (13 LSP joints without the head
  top, then the pelvis); a person is kept with more than 5 joints inside the image; 2D x 1920/832;
  3D joints with confidence < 0.2 are missing; +(0, 0.06, 0.03) m is added to the 13 LSP joints;
  the image name is "<second path part>-<frame>.jpg".

J14 is the joint set: LSP_14 without Head_top, then Pelvis (root, index 13). 2D joints count as
visible for the matcher when x > -2 (the script's rule); 3D joints when x > -2.

Predictions (``--pred``): ``predictions.npz`` key ``results`` = {image name: [kp2d float[P, 17, 2]
pixels, kp3d float[P, 17, 3] metres]} in ROMP's J17 order (``romp_fast.body.joints.J17``; BEV
writes ``pj2d_org[:, 54:]`` and ``joints[:, 54:]``), or ``{"kp2d": ..., "kp3d": ...}`` per image, in
``.npz`` or ``.json``; [P, 14, ...] arrays are taken as J14 already. Images without an entry have
no detections.

Protocol: match by 2D joints with the AGORA kit's greedy rule at IoU 0.05 (``matching="greedy"``;
``"hungarian"`` is the alternative). Each side is centred on its own pelvis; a matched person's
error is ``sum_j |p_j - g_j| * visible_j / 14`` (the CRMH convention: invisible joints count as
0 and the mean is over all 14); every missed person scores ``miss_penalty_mm`` = 150 mm;
unmatched predictions are not penalised (they are reported as false positives). Sequence type
(haggling, mafia, ultimatum, pizza) is the substring of the image name; images of no type are
not scored (as in the script). Reported: the mean over people (BEV's "MPJPE results") and the mean
of the four type means (CRMH / ``romp/test.py``), both labelled.

Deviation from the script: a person whose ground-truth pelvis is missing cannot be centred (the
script subtracts the -2 marker and reports metres of error); such people are left out and counted
in ``details["gt_without_root"]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from romp_fast.body import joints as J
from romp_fast.evaluation.benchmarks._io import (BenchmarkFileError, Progress, as_array, load_mapping,
                                                 load_pickle, match_people, mean_or_nan, pad)
from romp_fast.evaluation.matching import ROMP_IOU_THRESH
from romp_fast.evaluation.report import BenchmarkResult
from romp_fast.metrics import mpjpe
from romp_fast.metrics.detection import detection_prf


SEQUENCE_TYPES = ("haggling", "mafia", "ultimatum", "pizza")
MISS_PENALTY_MM = 150.0  # BEV eval_cmu_panoptic.py: every missed person scores 150 mm
J14 = J.LSP_14[:13] + ("Pelvis",)
ROOT = J14.index("Pelvis")  # 13
# SPIN's 24-joint order, which the protocol's raw annotations use (names as romp_fast.body.joints).
SPIN_J24 = ("R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "R_Wrist", "R_Elbow",
            "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist", "Neck_LSP", "Head_top", "Pelvis",
            "Thorax_MPII", "Spine_H36M", "Jaw_H36M", "Head", "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear")
_J14_FROM_J24 = J.joint_map(SPIN_J24, J14)
_J14_FROM_J17 = J.joint_map(J.J17, J14)
_GT_BIAS = np.array([0.0, 0.06, 0.03])  # m, added to the 13 LSP joints by load_gts
_SCALE_2D = 1920.0 / 832.0


def _raw_image(info, where, min_conf_2d):
    for f in ("filename", "kpts2d", "kpts3d", "width", "height"):
        if f not in info:
            raise BenchmarkFileError(f"{where}: missing field '{f}'")
    k2 = as_array(info["kpts2d"], f"{where} field 'kpts2d'", (None, 24, 3))[:, _J14_FROM_J24]
    k3 = as_array(info["kpts3d"], f"{where} field 'kpts3d'", (len(k2), 24, 4))[:, _J14_FROM_J24]
    w, h = float(info["width"]), float(info["height"])
    inside = (k2[..., 0] > 0) & (k2[..., 0] < w) & (k2[..., 1] > 0) & (k2[..., 1] < h)
    if min_conf_2d is not None:  # the script means to test conf > 0.2, but logical_and's 3rd arg is `out`
        inside &= k2[..., 2] > min_conf_2d
    keep = inside.sum(1) > 5
    kp2d = k2[keep, :, :2] * _SCALE_2D
    kp3d, vis3d = k3[keep, :, :3].copy(), k3[keep, :, 3] >= 0.2
    kp3d[:, :13] += _GT_BIAS
    parts = str(info["filename"]).split("/")
    name = (parts[1] + "-" if len(parts) > 1 else "") + parts[-1].replace(".png", ".jpg")
    return name, (kp2d, np.ones(kp2d.shape[:2], bool), kp3d, vis3d)


def load_cmu_gt(path, min_conf_2d=None) -> dict:
    """{image name: (kp2d [N,14,2], vis2d [N,14], kp3d [N,14,3], vis3d [N,14])} from any GT form."""
    path = Path(path)
    out = {}
    if path.is_dir() or path.suffix.lower() == ".pkl":
        files = sorted(path.glob("*.pkl")) if path.is_dir() else [path]
        if not files:
            raise BenchmarkFileError(f"{path}: no .pkl annotation files")
        for f in files:
            infos = load_pickle(f)
            if not isinstance(infos, (list, tuple)):
                raise BenchmarkFileError(f"{f}: expected a list of per-image dicts, got {type(infos).__name__}")
            for i, info in enumerate(infos):
                if not isinstance(info, dict):
                    raise BenchmarkFileError(f"{f}: entry {i} is not a dict")
                name, item = _raw_image(info, f"{f}: entry {i}", min_conf_2d)
                out[name] = item
        return out
    for name, entry in load_mapping(path, "annots").items():
        where = f"{path}: image '{name}'"
        kp2d, kp3d = _pair(entry, where, ("kp2d", "kp3d"))
        kp2d = as_array(kp2d, f"{where} field 'kp2d'", (None, 14, 2))
        kp3d = as_array(kp3d, f"{where} field 'kp3d'", (len(kp2d), 14, 3))
        out[str(name)] = (kp2d, kp2d[..., 0] > -2, kp3d, kp3d[..., 0] > -2)
    return out


def _pair(entry, where, keys):
    if isinstance(entry, dict):
        missing = [k for k in keys if k not in entry]
        if missing:
            raise BenchmarkFileError(f"{where}: missing field '{missing[0]}'")
        return entry[keys[0]], entry[keys[1]]
    if isinstance(entry, (list, tuple)) and len(entry) == 2:
        return entry
    raise BenchmarkFileError(f"{where}: expected [{keys[0]}, {keys[1]}] or a dict with those fields")


def load_cmu_predictions(path) -> dict:
    """{image name: (kp2d [P,14,2], kp3d [P,14,3])} from predictions.npz / .json (J17 or J14)."""
    out = {}
    for name, entry in load_mapping(path, "results").items():
        where = f"{path}: image '{name}'"
        kp2d, kp3d = _pair(entry, where, ("kp2d", "kp3d"))
        kp2d = as_array(kp2d, f"{where} field 'kp2d'", (None, (14, 17), 2))
        kp3d = as_array(kp3d, f"{where} field 'kp3d'", (len(kp2d), kp2d.shape[1], 3))
        if kp2d.shape[1] == 17:
            kp2d, kp3d = kp2d[:, _J14_FROM_J17], kp3d[:, _J14_FROM_J17]
        out[str(name)] = (kp2d, kp3d)
    return out


def _sequence_type(name: str):
    base = name.replace("\\", "/").split("/")[-1]
    return next((t for t in SEQUENCE_TYPES if t in base), None)


def score_cmu_panoptic(gt, pred, *, matching=None, progress=False, iou_thresh=ROMP_IOU_THRESH,
                       max_dist=None, miss_penalty_mm=MISS_PENALTY_MM, min_conf_2d=None,
                       chunk=256) -> BenchmarkResult:
    """Score a predictions file on CMU Panoptic (formats and protocol: module docstring).

    Options: ``matching`` ("greedy" default, "hungarian"), ``iou_thresh`` (greedy gate, 0.05),
    ``max_dist`` (hungarian gate, pixels), ``miss_penalty_mm`` (150), ``min_conf_2d`` (raw
    annotations only: also require 2D confidence above it to keep a person; default off as the
    script), ``chunk`` (images per batch).
    """
    gts, preds = load_cmu_gt(gt, min_conf_2d), load_cmu_predictions(pred)
    names = sorted(n for n in gts if _sequence_type(n))
    untyped = len(gts) - len(names)
    rows, fp_total, no_root = [], 0, 0  # rows: (image, matched, error_mm)
    bar = Progress(len(names), "cmu-panoptic", progress)
    for s in range(0, len(names), chunk):
        part = names[s:s + chunk]
        g2, gv2, g3, gv3 = (pad([gts[n][i] for n in part], dtype=torch.bool if i % 2 else torch.float64)[0]
                            for i in range(4))
        gcount = torch.tensor([len(gts[n][0]) for n in part])
        empty = (np.zeros((0, 14, 2)), np.zeros((0, 14, 3)))
        p2, pcount = pad([preds.get(n, empty)[0] for n in part])
        p3, _ = pad([preds.get(n, empty)[1] for n in part])
        gvalid = gv3[..., ROOT] | (torch.arange(g2.shape[1])[None] >= gcount[:, None])
        no_root += int((~gvalid).sum())
        m = match_people(matching, p2, g2, gv2, pcount, gcount, gvalid, iou_thresh=iou_thresh, max_dist=max_dist)
        fp_total += int(m.false_positives.sum())
        b, p, g = m.pairs().unbind(1)
        vis = gv3[b, g]
        # CRMH convention: visibility-weighted sum over the 14 joints divided by 14 (not by #visible)
        err = mpjpe(p3[b, p], g3[b, g], vis, root=ROOT) * vis.sum(1) / len(J14) * 1000.0
        for bi, e in zip(b.tolist(), err.tolist()):
            rows.append((part[bi], True, e))
        for bi, gi in m.misses.nonzero().tolist():
            rows.append((part[bi], False, float(miss_penalty_mm)))
        bar.update(len(part))
    bar.close()
    return _cmu_result(rows, fp_total, no_root, untyped, len(names), set(preds) - set(gts), matching,
                       iou_thresh, miss_penalty_mm)


def _cmu_result(rows, fp_total, no_root, untyped, n_images, extra_preds, matching, iou_thresh, penalty):
    matched = sum(r[1] for r in rows)
    det = detection_prf(matched, fp_total, len(rows) - matched)
    types = {t: [r[2] for r in rows if _sequence_type(r[0]) == t] for t in SEQUENCE_TYPES}
    summary = {"MPJPE_mm": mean_or_nan(r[2] for r in rows),
               "MPJPE_type_mean_mm": mean_or_nan(mean_or_nan(v) for v in types.values() if v)}
    summary.update({f"MPJPE_{t}_mm": mean_or_nan(v) for t, v in types.items()})
    summary["MPJPE_matched_mm"] = mean_or_nan(r[2] for r in rows if r[1])
    summary.update(det)
    summary.update({"people": len(rows), "matched": matched, "misses": len(rows) - matched,
                    "false_positives": fp_total, "images": n_images})
    seqs = {}
    for name, ok, e in rows:
        seqs.setdefault(name.split("-")[0] if "-" in name else str(Path(name).parent), []).append((name, ok, e))
    table = [{"sequence": k, "type": _sequence_type(v[0][0]), "images": len({r[0] for r in v}),
              "people": len(v), "matched": sum(r[1] for r in v), "misses": sum(not r[1] for r in v),
              "MPJPE_mm": mean_or_nan(r[2] for r in v), "MPJPE_matched_mm": mean_or_nan(r[2] for r in v if r[1])}
             for k, v in sorted(seqs.items())]
    notes = [f"matching: {matching or 'greedy'} (AGORA kit's greedy rule, keypoint-box IoU >= {iou_thresh}; "
             "BEV eval_cmu_panoptic.py)" if matching in (None, "greedy") else f"matching: {matching}",
             "joints: J14 = 13 LSP joints (no head top) + pelvis; each side centred on its own pelvis; "
             "error = visibility-weighted sum over the 14 joints / 14 (CRMH), in mm",
             f"every missed person scores {penalty:g} mm; false positives are not penalised (reported only)",
             "MPJPE_mm = mean over people (BEV's 'MPJPE results'); MPJPE_type_mean_mm = mean of the "
             "sequence-type means (CRMH, romp/test.py)"]
    if no_root:
        notes.append(f"{no_root} ground-truth people without a pelvis were left out (not centrable)")
    details = {"gt_without_root": no_root, "images_without_sequence_type": untyped,
               "prediction_images_not_in_gt": len(extra_preds)}
    return BenchmarkResult("cmu-panoptic", summary, {"cmu_panoptic_sequences": table}, details=details, notes=notes)
