"""AGORA (Patel et al., CVPR 2021), SMPL body protocol of the official kit
(github.com/pixelite1201/agora_evaluation: ``evaluate_agora.py``, ``matching.py``,
``calculate_v2v_error.py``, ``compute_average_error.py``), on the validation split.

Ground truth (``--gt``: a file or a folder of them), one row per image, columns used: ``imgPath``,
``isValid``, ``occlusion`` (percent), ``kid``, ``gt_joints_2d`` (per person [J, 2] pixels of the
3840x2160 image), ``gt_joints_3d`` ([J >= 24, 3] metres, camera frame), ``gt_verts`` ([6890, 3]).
Two containers:

* the kit's ``validation_*_withjv.pkl`` pandas DataFrame pickles (needs ``pandas``, not a
  dependency here; they are unpickled by pandas, so read only files you trust), or
* the equivalent flat ``.npz`` defined here (``agora_gt_to_npz`` converts, no pickle inside):
  ``imgPath`` str[I], ``person_image`` int[N] (row of each person), ``isValid`` bool[N],
  ``occlusion`` float[N], ``kid`` bool[N], ``gt_joints_2d`` float[N, J, 2], ``gt_joints_3d``
  float[N, J3, 3], ``gt_verts`` float[N, V, 3].

Predictions (``--pred``): the kit's folder of ``<image stem>_personId_<k>.pkl``, one dict per
predicted person (docs/prediction_format.md, SMPL): ``joints`` [24, 2] pixels (3840x2160) used for
matching, and either ``allSmplJoints3d`` [>= 24, 3] + ``verts`` [6890, 3] (metres) or ``params``
{``global_orient`` (1, 1, 3), ``body_pose`` (1, 23, 3), ``betas`` (1, 10 | 11), ``transl`` (1, 3)}
with optional ``kid_flag`` / ``pose2rot``; params need ``body_model`` (an SMPL file) and, for
kids, ``kid_template`` (the kit's ``smpl_kid_template.npy``). Pickles are read with a restricted
unpickler (numpy and builtins only). A ``_1280x720`` suffix on either name is ignored.

Protocol (the kit's rules): a GT person counts when ``isValid`` and 0 <= occlusion <= 90; matching
is the kit's greedy rule on the first 24 2D joints with keypoint-box IoU >= 0.1 (boxes over all
joints of each side); precision / recall / F1 with misses as FN and unmatched predictions as FP;
MPJPE on SMPL joints 0..23 and MVE on the vertices (all, or ``body_vertex_ids`` = the kit's
``utils/body_verts_smpl.npy`` for its exact B-MVE), both after subtracting each side's pelvis =
mean of SMPL joints 1 and 2 (the hips, the kit's ``align_by_pelvis``), in mm over matched people;
NMJE = MPJPE / F1, NMVE = MVE / F1. Kid numbers use kid TP / FN with *all* false positives, as the
kit. Occlusion bins (-1, 10], ..., (70, 80] report errors and errors / recall (the kit's plots).
Summary numbers are unrounded; ``details["kit_rounded"]`` repeats them with the kit's rounding
(P/R/F1 to 0.01 before dividing, errors to 0.1 mm). SMPL-X hand/face errors are not computed.
"""
from __future__ import annotations

import glob
import pickle
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from romp_fast.body.io import atomic_write, load_body_model_data
from romp_fast.evaluation.benchmarks._io import (BenchmarkFileError, Progress, as_array, load_pickle,
                                                 match_people, mean_or_nan, pad)
from romp_fast.evaluation.matching import AGORA_IOU_THRESH
from romp_fast.evaluation.report import BenchmarkResult
from romp_fast.metrics import mpjpe, pve
from romp_fast.metrics.agora import nmje, nmve, recall_normalised
from romp_fast.metrics.detection import detection_prf

COLUMNS = ("imgPath", "isValid", "occlusion", "kid", "gt_joints_2d", "gt_joints_3d", "gt_verts")
MATCH_JOINTS = 24  # the kit's match_2d_greedy nkps
PELVIS = (1, 2)  # the kit's align_by_pelvis: mean of SMPL L_Hip / R_Hip, not joint 0
OCC_BINS = (-1, 10, 20, 30, 40, 50, 60, 70, 80)  # compute_average_error.py occ_bins, right-closed
_PRED_RE = re.compile(r"^(?P<stem>.+)_personId_(?P<k>\d+)\.pkl$")


def image_key(name) -> str:
    """Image name -> the key predictions and ground truth meet on: basename, no extension, no
    ``_1280x720`` / ``_3840x2160`` suffix."""
    stem = Path(str(name)).name
    stem = re.sub(r"\.(png|jpg|jpeg)$", "", stem, flags=re.I)
    return re.sub(r"_(1280x720|3840x2160)$", "", stem)


# ----------------------------------------------------------------------------- ground truth
def _read_dataframe(path) -> dict:
    try:
        import pandas
    except ImportError:
        raise BenchmarkFileError(f"{path}: reading AGORA's DataFrame pickles needs pandas (pip install pandas), "
                                 "or convert them once with agora_gt_to_npz on a machine that has it") from None
    df = pandas.read_pickle(path)
    missing = [c for c in COLUMNS if c not in list(df.columns)]
    if missing:
        raise BenchmarkFileError(f"{path}: missing column '{missing[0]}'")
    return {c: list(df[c]) for c in COLUMNS}


def _images_from_columns(cols, path) -> list:
    out = []
    for r, img in enumerate(cols["imgPath"]):
        w = f"{path}: row {r} ({img})"
        n = len(cols["isValid"][r])
        per = {c: cols[c][r] for c in COLUMNS[1:]}
        for c, v in per.items():
            if len(v) != n:
                raise BenchmarkFileError(f"{w} column '{c}' has {len(v)} people, isValid has {n}")
        arr = {}
        for c, d, empty in (("gt_joints_2d", 2, 24), ("gt_joints_3d", 3, 24), ("gt_verts", 3, 6890)):
            arr[c] = as_array(list(per[c]), f"{w} column '{c}'", (n, None, d)) if n else np.zeros((0, empty, d))
            if c != "gt_verts" and arr[c].shape[1] < MATCH_JOINTS:
                raise BenchmarkFileError(f"{w} column '{c}' needs >= 24 joints, got {arr[c].shape[1]}")
        occ = as_array(per["occlusion"], f"{w} column 'occlusion'", (n,))
        valid = np.asarray(per["isValid"], bool) & (occ >= 0) & (occ <= 90)  # matching.py validDF
        out.append({"key": image_key(img), "j2d": arr["gt_joints_2d"], "j3d": arr["gt_joints_3d"][:, :MATCH_JOINTS],
                    "verts": arr["gt_verts"], "valid": valid,
                    "occ": occ, "kid": np.asarray(per["kid"], bool)})
    return out


def read_agora_gt(path) -> list:
    """Per-image dicts (key, j2d, j3d [G, 24, 3], verts, valid, occ, kid) of one GT file."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFileError(f"{path}: file not found")
    if path.suffix.lower() == ".pkl":
        return _images_from_columns(_read_dataframe(path), path)
    if path.suffix.lower() != ".npz":
        raise BenchmarkFileError(f"{path}: AGORA ground truth must be .pkl (DataFrame) or .npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise BenchmarkFileError(f"{path}: not a readable .npz without pickles ({e})") from None
    for c in COLUMNS + ("person_image",):
        if c not in data:
            raise BenchmarkFileError(f"{path}: missing field '{c}'")
    owner = as_array(data["person_image"], f"{path}: field 'person_image'", (None,), np.int64)
    cols = {"imgPath": [str(s) for s in data["imgPath"]]}
    rows = [np.flatnonzero(owner == r) for r in range(len(cols["imgPath"]))]
    for c in COLUMNS[1:]:
        if len(data[c]) != len(owner):
            raise BenchmarkFileError(f"{path}: field '{c}' has {len(data[c])} people, person_image has {len(owner)}")
        cols[c] = [data[c][i] for i in rows]
    return _images_from_columns(cols, path)


def agora_gt_to_npz(src, dst) -> Path:
    """Convert one of the kit's DataFrame pickles (needs pandas) to the flat ``.npz`` above."""
    cols = _read_dataframe(src)
    n = [len(v) for v in cols["isValid"]]
    flat = {c: np.concatenate([np.asarray(list(v), dtype) for v in cols[c] if len(v)])
            for c, dtype in (("isValid", bool), ("occlusion", np.float64), ("kid", bool), ("gt_joints_2d", np.float64),
                             ("gt_joints_3d", np.float64), ("gt_verts", np.float32))}
    flat["imgPath"] = np.array([str(s) for s in cols["imgPath"]])
    flat["person_image"] = np.repeat(np.arange(len(n)), n)
    atomic_write(dst, lambda fh: np.savez(fh, **flat))
    return Path(dst)


# ----------------------------------------------------------------------------- predictions
def prediction_index(pred_dir) -> dict:
    """{image key: [prediction files]} in the kit's (lexicographic) order."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise BenchmarkFileError(f"{pred_dir}: AGORA predictions must be a folder of *_personId_<k>.pkl files")
    index = {}
    for f in sorted(pred_dir.glob("*.pkl")):
        m = _PRED_RE.match(f.name)
        if m:
            index.setdefault(image_key(m["stem"]), []).append(f)
    return index


def _read_prediction(f):
    d = load_pickle(f)
    if not isinstance(d, dict) or "joints" not in d:
        raise BenchmarkFileError(f"{f}: missing field 'joints'")
    def field(k, shape):
        return as_array(np.squeeze(d[k]), f"{f}: field '{k}'", shape)

    out = {"file": f, "kp": field("joints", (None, (2, 3)))[:, :2]}
    if len(out["kp"]) < MATCH_JOINTS:
        raise BenchmarkFileError(f"{f}: field 'joints' needs >= 24 joints, got {len(out['kp'])}")
    if "allSmplJoints3d" in d and "verts" in d:
        out["j3d"], out["verts"] = field("allSmplJoints3d", (None, 3))[:MATCH_JOINTS], field("verts", (None, 3))
    elif isinstance(d.get("params"), dict):
        p = d["params"]
        if any(k not in p for k in ("global_orient", "body_pose", "betas", "transl")):
            raise BenchmarkFileError(f"{f}: field 'params' needs global_orient, body_pose, betas and transl")
        rot = not bool(d.get("pose2rot", True))  # False: rotation matrices
        shapes = {"global_orient": (1, 1, 3, 3) if rot else (1, 3), "body_pose": (1, 23, 3, 3) if rot else (1, 69),
                  "betas": (1, -1), "transl": (1, 3)}
        out["params"] = {k: _param(p[k], f"{f}: field 'params.{k}'", shp) for k, shp in shapes.items()}
        if out["params"]["betas"].shape[1] not in (10, 11):
            raise BenchmarkFileError(f"{f}: field 'params.betas' must have 10 or 11 values")
        out["kid"] = bool(d.get("kid_flag", False))
    else:
        raise BenchmarkFileError(f"{f}: needs fields 'allSmplJoints3d' and 'verts', or 'params'")
    return out


def _param(value, where, shape):
    arr = as_array(value, where, (None,) * np.ndim(value))
    try:
        return arr.reshape(shape)
    except ValueError:
        raise BenchmarkFileError(f"{where} must reshape to {list(shape)}, got {list(arr.shape)}") from None


def _array_arg(x):  # an array, or the path of a .npy file holding it
    return np.load(x, allow_pickle=False) if isinstance(x, (str, Path)) else np.asarray(x)


def _kid_body_model(model_path, kid_template):
    """SMPL with the kit's kid shape direction as the 11th coefficient (smplx SMPL(age='kid'):
    the SMIL template, centred on its mean, minus the SMPL template)."""
    from romp_fast.body import BodyModel

    data = load_body_model_data(model_path)
    kid = as_array(_array_arg(kid_template), f"kid_template {kid_template}", data["v_template"].shape)
    sd = np.zeros((*data["v_template"].shape, 300))  # smplx keeps only 10 betas of a model with < 300
    sd[:, :, :10], sd[:, :, 10] = data["shapedirs"][:, :, :10], kid - kid.mean(0) - data["v_template"]
    data["shapedirs"] = sd
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "smpl_kid.npz", **data)
        return BodyModel(Path(tmp) / "smpl_kid.npz", num_betas=11, dtype=torch.float64)


def _mesh_from_params(people, ctx):
    """Fill j3d / verts of parameter-only predictions with one batched SMPL forward."""
    if not people:
        return
    if ctx.get("model") is None:
        bm, kt = ctx["body_model"], ctx["kid_template"]
        if bm is None:
            raise BenchmarkFileError(f"{people[0]['file']}: has only 'params'; pass body_model= (an SMPL model file) "
                                     "to score parameters, or write 'allSmplJoints3d' and 'verts'")
        from romp_fast.body import BodyModel

        ctx["model"] = bm if isinstance(bm, BodyModel) else (
            _kid_body_model(bm, kt) if kt is not None else BodyModel(bm, num_betas=10, dtype=torch.float64))
    model = ctx["model"]
    kid_needed = [p for p in people if p["kid"] and p["params"]["betas"].shape[1] == 11]
    if kid_needed and model.num_betas < 11:
        raise BenchmarkFileError(f"{kid_needed[0]['file']}: kid_flag with 11 betas needs kid_template= "
                                 "(the kit's smpl_kid_template.npy)")
    from romp_fast.body import axis_angle_to_matrix

    def rotmats(p):  # axis-angle [1, 72] or matrices [1, 24, 3, 3] (pose2rot False) -> matrices
        x = torch.as_tensor(np.concatenate([p["params"]["global_orient"], p["params"]["body_pose"]], 1)).double()
        return axis_angle_to_matrix(x.reshape(1, 24, 3)) if x.dim() == 2 else x

    pose = torch.cat([rotmats(p) for p in people])
    betas = torch.zeros(len(people), model.num_betas, dtype=torch.float64)
    for i, p in enumerate(people):  # adults use 10 betas, kids 11 (get_smpl_vertices)
        b = p["params"]["betas"][0, :min(11 if p["kid"] else 10, model.num_betas)]
        betas[i, :len(b)] = torch.as_tensor(b)
    transl = torch.as_tensor(np.concatenate([p["params"]["transl"] for p in people])).double()
    with torch.no_grad():
        out = model(pose, betas, transl=transl)
    for p, j, v in zip(people, out.joints24.numpy(), out.vertices.numpy()):
        p["j3d"], p["verts"] = j, v


# ----------------------------------------------------------------------------- scoring
def _pad_rows(a, k):  # [n, J, 2] -> [n, k, 2] with copies of joint 0: inside the box, so it is unchanged
    return np.concatenate([a, np.repeat(a[:, :1], k - a.shape[1], 1)], 1) if a.shape[1] < k else a


def _score_images(images, preds, ctx, records, matching, iou_thresh, max_dist, vids):
    _mesh_from_params([q for ps in preds for q in ps if "params" in q and "j3d" not in q], ctx)
    k = max([im["j2d"].shape[1] for im in images] + [q["kp"].shape[1] for ps in preds for q in ps] + [MATCH_JOINTS])
    gk, gc = pad([_pad_rows(im["j2d"], k) for im in images])
    pk, pc = pad([np.stack([_pad_rows(q["kp"][None], k)[0] for q in ps]) if ps else np.zeros((0, k, 2))
                  for ps in preds])
    gvalid = pad([im["valid"] for im in images], dtype=torch.bool)[0]
    vis = (torch.arange(k) < MATCH_JOINTS).expand(*gk.shape[:2], k)  # cost on the first 24 joints only
    m = match_people(matching, pk, gk, vis, pc, gc, gvalid, iou_thresh=iou_thresh, max_dist=max_dist)
    pairs = m.pairs().tolist()
    err = {}
    bad = next((preds[b][p]["file"] for b, p, g in pairs
                if preds[b][p]["verts"][vids].shape != images[b]["verts"][g][vids].shape), None)
    if bad is not None:
        raise BenchmarkFileError(f"{bad}: field 'verts' does not have the ground truth's number of vertices")
    if pairs:
        pj = torch.as_tensor(np.stack([preds[b][p]["j3d"] for b, p, g in pairs])).double()
        gj = torch.as_tensor(np.stack([images[b]["j3d"][g] for b, p, g in pairs])).double()
        pv = torch.as_tensor(np.stack([preds[b][p]["verts"][vids] for b, p, g in pairs])).double()
        gv = torch.as_tensor(np.stack([images[b]["verts"][g][vids] for b, p, g in pairs])).double()
        j = (mpjpe(pj, gj, root=list(PELVIS)) * 1000).tolist()
        v = (pve(pv, gv, root=(pj[:, list(PELVIS)].mean(1), gj[:, list(PELVIS)].mean(1))) * 1000).tolist()
        err = {(b, g): (j[i], v[i]) for i, (b, p, g) in enumerate(pairs)}
    for b, im in enumerate(images):
        for g in np.flatnonzero(im["valid"]):
            e = err.get((b, int(g)))
            records.append((bool(im["kid"][g]), float(im["occ"][g]), e is not None, *(e or (np.nan, np.nan))))
    return int(m.false_positives.sum())


def _subset(recs, fp):
    tp = sum(r[2] for r in recs)
    det = detection_prf(tp, fp, len(recs) - tp)
    j, v = mean_or_nan(r[3] for r in recs if r[2]), mean_or_nan(r[4] for r in recs if r[2])
    return {"people": len(recs), "matched": tp, "misses": len(recs) - tp, **det, "MPJPE_mm": j, "MVE_mm": v,
            "NMJE_mm": float(nmje(j, det["F1"])), "NMVE_mm": float(nmve(v, det["F1"]))}


def score_agora(gt, pred, *, matching=None, progress=False, iou_thresh=AGORA_IOU_THRESH, max_dist=None,
                body_model=None, kid_template=None, body_vertex_ids=None, chunk=32) -> BenchmarkResult:
    """Score a predictions folder on AGORA validation (formats and protocol: module docstring).

    Options: ``matching`` ("greedy" default, "hungarian"), ``iou_thresh`` (0.1), ``max_dist``
    (hungarian gate, pixels), ``body_model`` (SMPL file or BodyModel, for parameter-only
    predictions), ``kid_template`` (the kit's smpl_kid_template.npy), ``body_vertex_ids`` (.npy
    path or index array; default all vertices), ``chunk`` (images per batch).
    """
    gt = Path(gt)
    files = sorted([*gt.glob("*.pkl"), *gt.glob("*.npz")]) if gt.is_dir() else [gt]
    if not files:
        raise BenchmarkFileError(f"{gt}: no .pkl or .npz ground-truth files")
    vids = slice(None) if body_vertex_ids is None else _array_arg(body_vertex_ids).astype(np.int64)
    index = prediction_index(pred)
    ctx = {"body_model": body_model, "kid_template": kid_template}
    records, fp, seen = [], 0, set()
    bar = Progress(len(files), "agora (gt files)", progress)
    for f in files:
        images = read_agora_gt(f)
        for s in range(0, len(images), chunk):
            part = images[s:s + chunk]
            seen.update(im["key"] for im in part)
            preds = [[_read_prediction(p) for p in index.get(im["key"], [])] for im in part]
            fp += _score_images(part, preds, ctx, records, matching, iou_thresh, max_dist, vids)
        bar.update(1)
    bar.close()
    return _agora_result(records, fp, len(set(index) - seen), matching, iou_thresh, body_vertex_ids is not None)


def _agora_result(records, fp, unknown_images, matching, iou_thresh, body_vertices):
    rows = [{"subset": name, **_subset([r for r in records if keep(r)], fp)}
            for name, keep in (("all", lambda r: True), ("adult", lambda r: not r[0]), ("kid", lambda r: r[0]))]
    occ = []
    for lo, hi in zip(OCC_BINS[:-1], OCC_BINS[1:]):
        d = _subset([r for r in records if lo < r[1] <= hi], 0)
        occ.append({"occlusion": f"({lo}, {hi}]", **{x: d[x] for x in ("people", "misses", "MPJPE_mm", "MVE_mm")},
                    "MPJPE_per_recall_mm": float(recall_normalised(d["MPJPE_mm"], d["recall"])),
                    "MVE_per_recall_mm": float(recall_normalised(d["MVE_mm"], d["recall"]))})
    a, k = rows[0], rows[2]
    keys = ("precision", "recall", "F1", "MPJPE_mm", "MVE_mm", "NMJE_mm", "NMVE_mm")
    summary = {**{x: a[x] for x in keys}, **{f"kid_{x}": k[x] for x in keys}}
    summary.update({"gt_people": a["people"], "matched": a["matched"], "misses": a["misses"], "false_positives": fp})
    rounded = {}
    for pre, r in (("", a), ("kid_", k)):  # compute_average_error.py rounds before dividing
        q = {**{x: round(r[x], 2) for x in keys[:3]}, **{x: round(r[x], 1) for x in keys[3:5]}}
        q["NMJE_mm"], q["NMVE_mm"] = (round(float(f(q[e], q["F1"])), 1) for f, e in ((nmje, keys[3]), (nmve, keys[4])))
        rounded.update({pre + x: v for x, v in q.items()})
    notes = [f"matching: {matching or 'greedy'}" + (f" (AGORA kit match_2d_greedy: first 24 2D joints, keypoint-box "
             f"IoU >= {iou_thresh})" if matching in (None, "greedy") else ""),
             "GT people count when isValid and 0 <= occlusion <= 90; misses = FN, unmatched predictions = FP",
             "MPJPE: SMPL joints 0-23; MVE: " + ("the given body vertex ids" if body_vertices else
             "all vertices (pass body_vertex_ids= the kit's body_verts_smpl.npy for its exact B-MVE)") +
             "; both after subtracting each side's pelvis = mean of SMPL hips 1, 2 (kit align_by_pelvis), mm",
             "NMJE = MPJPE / F1, NMVE = MVE / F1 (AGORA paper); kid P/R/F1 use all false positives (kit)",
             "unrounded; details.kit_rounded has the kit's rounding (F1 to 0.01 before dividing)"]
    return BenchmarkResult("agora", summary, {"agora_subsets": rows, "agora_occlusion": occ},
                           details={"kit_rounded": rounded, "prediction_images_not_in_gt": unknown_images}, notes=notes)


# ----------------------------------------------------------------------------- export
def export_agora_predictions(out_dir, predictions, *, overwrite=False) -> list:
    """Write predictions in the kit's per-person layout ``<image stem>_personId_<k>.pkl``, atomically.

    predictions: {image name: [person]}; a person maps ``joints`` [24, 2] (pixels of the 3840x2160
    image: scale 1280x720 outputs by 3), ``params`` {``global_orient`` (3), ``body_pose`` (69),
    ``betas`` (10 | 11, the 11th the kid coefficient), ``transl`` (3)} as axis-angle, optional
    ``verts`` [6890, 3] / ``allSmplJoints3d`` [24, 3] (metres) and ``kid_flag`` (default: 11 betas).
    Written with the kit's v_shapes, ``pose2rot`` True, neutral gender. An image's existing files
    are an error unless ``overwrite`` (then replaced, stale ids removed). Returns the paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, people in predictions.items():
        stem = re.sub(r"\.(png|jpg|jpeg)$", "", Path(str(name)).name, flags=re.I)
        old = [f for f in out.glob(f"{glob.escape(stem)}_personId_*.pkl") if _PRED_RE.match(f.name)["stem"] == stem]
        if old and not overwrite:
            raise FileExistsError(f"{old[0]} exists; pass overwrite=True to replace the predictions of {name}")
        for f in old:
            f.unlink()
        for k, person in enumerate(people):
            where = f"predictions['{name}'][{k}]"
            p = person.get("params")
            if "joints" not in person or not isinstance(p, dict):
                raise ValueError(f"{where} needs 'joints' and 'params'")
            par = {k2: _param(p.get(k2, []), f"{where} params.{k2}", shp).astype(np.float32) for k2, shp in
                   (("global_orient", (1, 1, 3)), ("body_pose", (1, 23, 3)), ("betas", (1, -1)), ("transl", (1, 3)))}
            nb = par["betas"].shape[1]
            if nb not in (10, 11):
                raise ValueError(f"{where} params.betas must have 10 or 11 values, got {nb}")
            kid = bool(person.get("kid_flag", nb == 11))
            d = {"joints": as_array(person["joints"], f"{where} joints", (MATCH_JOINTS, 2)).astype(np.float32),
                 "params": par, "pose2rot": True, "num_betas": nb, "gender": "neutral",
                 "age": "kid" if kid else "adult", "kid_flag": kid}
            for key in ("verts", "allSmplJoints3d"):
                if person.get(key) is not None:
                    d[key] = as_array(person[key], f"{where} {key}", (None, 3)).astype(np.float32)
            path = out / f"{stem}_personId_{k}.pkl"
            atomic_write(path, lambda fh, d=d: pickle.dump(d, fh, protocol=4))
            written.append(path)
    return written
