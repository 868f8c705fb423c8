"""3DPW evaluators: the test protocol of VIBE / ROMP (``3dpw``) and the 3DPW challenge (``3dpw-challenge``).

Both read the dataset's public sequence files and a predictions file; formats in
:mod:`~romp_fast.evaluation.benchmarks.threedpw_io`, matching and missing-prediction rules in
:mod:`~romp_fast.evaluation.benchmarks.threedpw_match`. Every per-person-frame error is computed in
float64 by the batched metric functions (native ops); body-model passes are batched and chunked.

``3dpw`` (VIBE, Kocabas et al. CVPR 2020, ``lib/data_utils/threedpw_utils.py`` + ``eval.py``; ROMP's
``pw3d_vibe`` mode loads VIBE's files, protocols section 4.1):

- test split; person-frames whose OpenPose-18 detection (``poses2d``) has more than 6 of its 12 limb
  joints with confidence > 0.3 (VIBE's ``MIN_KP = 6``, ``VIS_THRESH = 0.3``; its bounding-box trim
  only drops frames this already drops). ``frames="campose"`` / ``"challenge"`` choose the other rules;
- ground truth: SMPL from ``poses`` (global orientation rotated into the camera, ``R_cam @ R``) and
  ``betas[:10]`` with the **neutral** model, as VIBE and ROMP build it (``gt_gender="pickle"`` for
  SPIN/TRACE's gendered models); predictions: the neutral model from ``pose``/``betas``;
- joints: the 14 LSP joints of the H36M regressor (``J_regressor_h36m`` rows via SPIN/VIBE's
  ``H36M_TO_J14``), both sides; root = mid-point of the LSP hips (VIBE's ``eval.py``);
- MPJPE, PA-MPJPE (each person-frame's own Procrustes; ROMP's batch-size transpose bug is not
  reproduced) and PVE (6890 vertices; ``pve_align="hips"`` subtracts each mesh's own LSP hip
  mid-point like the joints and ROMP's ``smpl_mesh_root_align``; ``"none"`` compares the meshes in
  the SMPL model frame as VIBE's ``compute_error_verts``), all in mm, means over person-frames;
- acceleration error (mm/frame^2) on root-aligned LSP joints per actor track, over frames whose
  three-frame stencil is evaluated (TRACE's mACC rule; VIBE's stencil also spans gaps and people);
- missing person-frames: neither VIBE nor ROMP has a penalty (ROMP and TRACE skip them; TRACE's 150 mm
  penalty is dead code), so ``missing="skip"`` is the default and the count is reported;
  ``"penalty"`` scores each with ``miss_penalty_mm`` (150, the CMU Panoptic value), ``"error"`` raises.

``3dpw-challenge`` (ECCV 2020 workshop kit ``evaluate.py``, github.com/aymenmir1/3dpw-eval; ROMP's copy
``romp/lib/evaluation/pw3d_eval``; protocols section 4.4):

- all splits present (train, validation, test); person-frames with ``campose_valid`` and a non-zero
  ``poses2d``; ground truth from the actor's **gendered** model, moved into the camera;
- 24 SMPL joints root-aligned at joint 0: MPJPE, PA-MPJPE (the Procrustes rotation is kept),
  PCK at 50 mm and AUC over 0..199 mm on the 12 major joints of the root-aligned errors
  (``errors <= thr``), MPJAE and PA-MPJAE (degrees) on the global rotations of 9 joints; all pooled
  over person-frames of every sequence;
- missing person-frames: ROMP's collector copies the actor's previous frame (``missing="previous"``);
  with none before, a zero prediction (the kit maps it to the ground-truth centroid, identity R).

Body models: ``body_models=`` a folder with ``SMPL_{NEUTRAL,MALE,FEMALE}.{npz,pkl}`` and
``J_regressor_h36m.npy``, or a dict; default the procedural SMPL-format model for every gender
(numbers then check the pipeline, they are not comparable with published results).
"""
from __future__ import annotations

import numpy as np
import torch

from romp_fast import metrics, ops
from romp_fast.body import joints as J
from romp_fast.body.rotations import axis_angle_to_matrix
from romp_fast.evaluation.benchmarks import threedpw_io as io
from romp_fast.evaluation.benchmarks._io import Progress
from romp_fast.evaluation.benchmarks.threedpw_body import LSP_FROM_H36M, load_body_models, vertex_errors
from romp_fast.evaluation.benchmarks.threedpw_match import assign, fill_missing
from romp_fast.evaluation.report import BenchmarkResult
from romp_fast.metrics.angles import global_rotations, mpjae
from romp_fast.metrics.pck import auc_from_curve, pck, pck_curve
from romp_fast.metrics.temporal import acceleration_error, stencil_count
from romp_fast.metrics.translation import root_translation_error

MAJOR_12 = J.index("smpl24", "L_Hip_SMPL", "R_Hip_SMPL", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
                   "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist")
ORIENT_9 = J.index("smpl24", "Pelvis_SMPL", "L_Hip_SMPL", "R_Hip_SMPL", "L_Knee", "R_Knee",
                   "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow")
VIBE_LIMBS_12 = J.index(io.OPENPOSE_18, "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow",
                        "L_Wrist", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle")
ROOT_LSP = list(J.ROOT_LSP)
PCK_THRESH_MM, AUC_RANGE_MM = 50.0, (0, 200)
JOINT_CHUNK = 4096  # person-frames per body-model batch (meshes: MESH_PAIRS at a time within it)


class _GT:
    """Evaluated ground-truth person-frames, flat and sorted by (sequence, actor, frame)."""

    def __init__(self, files, frames, need_2d):
        parts, self.names, self.num_frames, self.people = [], [], [], []
        for s, path in enumerate(files):
            seq = io.read_sequence(path, need_2d=frames != "campose", need_joints=need_2d)
            self.names.append(seq.name)
            self.num_frames.append(seq.num_frames)
            self.people.append(len(seq.genders))
            valid = seq.campose_valid
            if frames == "vibe":
                valid = (seq.poses2d[:, :, 2, VIBE_LIMBS_12] > 0.3).sum(-1) > 6
            elif frames == "challenge":
                valid = valid & (np.abs(seq.poses2d).mean((2, 3)) != 0)
            elif frames != "campose":
                raise ValueError(f"frames must be 'vibe', 'campose' or 'challenge', got {frames!r}")
            Rc = torch.from_numpy(seq.cam_poses[:, :3, :3])
            for p in range(len(seq.genders)):
                f = np.flatnonzero(valid[p])
                R = axis_angle_to_matrix(torch.from_numpy(seq.poses[p, f]).view(-1, 24, 3))
                R[:, 0] = Rc[f] @ R[:, 0]  # the ground truth in the camera frame
                part = dict(seq=np.full(len(f), s), person=np.full(len(f), p), frame=f, rot=R,
                            betas=torch.from_numpy(seq.betas[p, f]), gender=np.full(len(f), seq.genders[p]))
                if need_2d:
                    xc = (seq.joint_positions[p, f] @ seq.cam_poses[f, :3, :3].transpose(0, 2, 1)
                          + seq.cam_poses[f, None, :3, 3])
                    part["root3d"] = xc[:, 0]
                    uvw = xc @ seq.intrinsics.T
                    part["kp2d"] = uvw[..., :2] / np.where(np.abs(uvw[..., 2:]) > 1e-9, uvw[..., 2:], 1e-9)
                parts.append(part)
        cat = lambda k: (torch.cat if isinstance(parts[0][k], torch.Tensor) else np.concatenate)(  # noqa: E731
            [q[k] for q in parts])
        for k in parts[0] if parts else ():
            setattr(self, k, cat(k))
        if not parts or len(self.seq) == 0:
            raise ValueError(f"no evaluable person-frames in {len(files)} sequence file(s) (frames={frames!r})")

    def __len__(self):
        return len(self.seq)


def _pred_rotmats(preds, rows):
    f = preds.fields
    if "rotmat" in f:
        return torch.from_numpy(f["rotmat"][rows])
    if "pose" in f:
        return axis_angle_to_matrix(torch.from_numpy(f["pose"][rows]).view(-1, 24, 3))
    return None


def _pred_betas(preds, rows):
    return torch.from_numpy(preds.fields["betas"][rows]) if preds.has("betas") else None


def _chunks(n, size):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _options(options, defaults, name):
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"{name}: unknown options {unknown}; known: {sorted(defaults)}")
    return {**defaults, **options}


def _missing_rule(rule, allowed):
    if rule not in allowed:
        raise ValueError(f"missing must be one of {allowed}, got {rule!r}")
    return rule


def _mean(x):
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


def _per_sequence(gt, columns, counts):
    rows = []
    for s, name in enumerate(gt.names):
        sel = gt.seq == s
        row = {"sequence": name, "people": gt.people[s], "person_frames": int(sel.sum())}
        row.update({k: int(v[sel].sum()) for k, v in counts.items()})
        row.update({k: _mean(v[sel]) for k, v in columns.items()})
        rows.append(row)
    return rows


def score_3dpw(gt, pred, *, matching=None, progress=False, **options) -> BenchmarkResult:
    """Score ``pred`` against the 3DPW test split under the VIBE / ROMP protocol (module docstring).

    Options: ``split`` ("test"), ``frames`` ("vibe" | "campose" | "challenge"), ``gt_gender``
    ("neutral" | "pickle"), ``pve`` (None = when predictions have poses, True, False), ``pve_align``
    ("hips" | "none"), ``missing`` ("skip" | "penalty" | "error"), ``miss_penalty_mm`` (150),
    ``body_models`` (None | folder | dict), ``iou_thresh`` (0.05, greedy_2d), ``max_dist_px``
    (hungarian). ``matching``: "person_id" (default when rows have ``person``), "nearest_center"
    (ROMP's rule; the default otherwise), "greedy_2d" (TRACE), "hungarian".
    """
    o = _options(options, dict(split="test", frames="vibe", gt_gender="neutral", pve=None, pve_align="hips",
                               missing="skip", miss_penalty_mm=150.0, body_models=None, iou_thresh=0.05,
                               max_dist_px=None), "score_3dpw")
    missing = _missing_rule(o["missing"], ("skip", "penalty", "error"))
    if o["pve_align"] not in ("hips", "none") or o["gt_gender"] not in ("neutral", "pickle"):
        raise ValueError(f"pve_align must be 'hips' or 'none' and gt_gender 'neutral' or 'pickle', got "
                         f"{o['pve_align']!r} and {o['gt_gender']!r}")
    preds = io.read_predictions(pred)
    matching = matching or ("person_id" if preds.has("person") else "nearest_center")
    has_pose = preds.has("pose") or preds.has("rotmat")
    do_pve = has_pose if o["pve"] is None else bool(o["pve"])
    if do_pve and not has_pose:
        raise io.ThreeDPWFormatError(f"{preds.source}: pve=True needs field 'pose' or 'rotmat'")
    if not preds.has("lsp14") and not has_pose:
        raise io.ThreeDPWFormatError(f"{preds.source}: the 3DPW test protocol needs 'lsp14' or 'pose'/'rotmat'")
    g = _GT(io.find_sequence_files(gt, [o["split"]]), o["frames"], need_2d=matching != "person_id"
            or preds.has("root3d"))
    rec, unused = assign(g, preds, matching, o["iou_thresh"], o["max_dist_px"])
    rec, _ = fill_missing(g, rec, missing)
    models, procedural = load_body_models(o["body_models"])
    gi = np.flatnonzero(rec >= 0)
    G = len(g)
    jg, jp = torch.zeros(G, 14, 3, dtype=torch.float64), torch.zeros(G, 14, 3, dtype=torch.float64)
    pve = np.full(G, np.nan)
    genders = g.gender[gi] if o["gt_gender"] == "pickle" else np.full(len(gi), "neutral")
    work = [(gd, gi[genders == gd]) for gd in np.unique(genders)]
    bar = Progress(sum(len(_chunks(len(ix), JOINT_CHUNK)) for _, ix in work), "3dpw", progress)
    neutral = models["neutral"]
    for gd, ix in work:
        model = models[gd]
        for sl in _chunks(len(ix), JOINT_CHUNK):
            i = ix[sl]
            r = rec[i]
            pr, pb = _pred_rotmats(preds, r), _pred_betas(preds, r)
            kg = model.kinematics(g.rot[i], g.betas[i])
            hg = model.h36m_joints(g.rot[i], g.betas[i], kin=kg)[:, LSP_FROM_H36M].double()
            kp = hp = None
            if pr is not None and (do_pve or not preds.has("lsp14")):
                kp = neutral.kinematics(pr, pb)
                hp = neutral.h36m_joints(pr, pb, kin=kp)[:, LSP_FROM_H36M].double()
            if do_pve:  # rest-pose meshes of 64 pairs at a time, skinned and compared by a native op
                root = None if o["pve_align"] == "none" else (hp[:, ROOT_LSP].mean(1), hg[:, ROOT_LSP].mean(1))
                pve[i] = 1000 * vertex_errors(neutral, pr, pb, model, g.rot[i], g.betas[i], root,
                                              (kp, kg)).double().numpy()
            jg[i] = hg
            jp[i] = torch.from_numpy(preds.fields["lsp14"][r]) if preds.has("lsp14") else hp
            bar.update()
    ok = torch.from_numpy(rec >= 0)
    e_mpjpe = torch.where(ok, 1000 * metrics.mpjpe(jp, jg, root=ROOT_LSP), torch.nan).numpy()
    e_pa = torch.where(ok, 1000 * metrics.pa_mpjpe(jp, jg), torch.nan).numpy()
    if missing == "penalty":
        for e in (e_mpjpe, e_pa) + ((pve,) if do_pve else ()):
            e[rec < 0] = o["miss_penalty_mm"]
    accel = _accel(g, jp, jg, rec >= 0)
    summary = {"MPJPE_mm": _mean(e_mpjpe), "PA_MPJPE_mm": _mean(e_pa)}
    if do_pve:
        summary["PVE_mm"] = _mean(pve)
    summary["ACCEL_ERR_mm_per_frame2"] = accel
    columns = {"MPJPE_mm": e_mpjpe, "PA_MPJPE_mm": e_pa, **({"PVE_mm": pve} if do_pve else {})}
    if preds.has("root3d") and len(gi):
        l2, axis = root_translation_error(torch.from_numpy(preds.fields["root3d"][rec[gi]]),
                                          torch.from_numpy(g.root3d[gi]))
        summary["ROOT_TRANS_mm"] = 1000 * float(l2.mean())
        summary.update({f"ROOT_TRANS_{a}_mm": 1000 * float(v) for a, v in zip("xyz", axis.mean(0))})
    summary["matched_fraction"] = len(gi) / G
    penalty = f" ({o['miss_penalty_mm']} mm each)" if missing == "penalty" else ""
    notes = [f"matching={matching}; missing={missing}{penalty}",
             f"frames={o['frames']}; GT model {o['gt_gender']}; 14 LSP joints (H36M regressor), root = LSP hip "
             f"mid-point; PVE align={o['pve_align'] if do_pve else 'not computed'}; errors in mm",
             "accel: mm/frame^2 on root-aligned LSP joints, three-frame stencils inside evaluated frames"]
    if procedural:
        notes.append("procedural SMPL-format body model: checks the pipeline, not comparable with published numbers")
    details = {"person_frames": G, "matched": int(len(gi)), "missed": int(G - len(gi)), "unused_rows": unused,
               "sequences": len(g.names), "options": {k: (str(v) if k == "body_models" else v) for k, v in o.items()}}
    return BenchmarkResult("3dpw", summary, {"per_sequence": _per_sequence(
        g, columns, {"matched": (rec >= 0).astype(np.int64)})}, details=details, notes=notes)


def _accel(g, jp, jg, ok):
    """Pooled acceleration error (mm/frame^2) over actor tracks, root-aligned LSP joints."""
    track = g.seq * (max(g.people) + 1) + g.person
    tracks, t_in = np.unique(track, return_inverse=True)
    T = max(g.num_frames)
    P = torch.zeros(len(tracks), T, 14, 3, dtype=torch.float64)
    Q = torch.zeros_like(P)
    V = torch.zeros(len(tracks), T, dtype=torch.bool)
    P[t_in, g.frame] = jp - jp[:, ROOT_LSP].mean(1, keepdim=True)
    Q[t_in, g.frame] = jg - jg[:, ROOT_LSP].mean(1, keepdim=True)
    V[t_in, g.frame] = torch.as_tensor(ok)
    n = stencil_count(V)
    if int(n.sum()) == 0:
        return float("nan")
    return 1000 * float((acceleration_error(P, Q, V) * n).sum() / n.sum())


def score_3dpw_challenge(gt, pred, *, matching=None, progress=False, **options) -> BenchmarkResult:
    """Score ``pred`` under the 3DPW challenge protocol (module docstring).

    Options: ``splits`` (train, validation, test), ``frames`` ("challenge"), ``gt_gender``
    ("pickle" | "neutral"), ``missing`` ("previous" | "skip" | "error"), ``body_models``,
    ``pck_thresh_mm`` (50), ``iou_thresh``, ``max_dist_px``. ``matching`` defaults to "person_id".
    """
    o = _options(options, dict(splits=io.SPLITS, frames="challenge", gt_gender="pickle", missing="previous",
                               body_models=None, pck_thresh_mm=PCK_THRESH_MM, iou_thresh=0.05,
                               max_dist_px=None), "score_3dpw_challenge")
    missing = _missing_rule(o["missing"], ("previous", "skip", "error"))
    preds = io.read_predictions(pred, allow_official=True)
    matching = matching or "person_id"
    splits = [o["splits"]] if isinstance(o["splits"], str) else list(o["splits"])
    g = _GT(io.find_sequence_files(gt, splits), o["frames"], need_2d=matching != "person_id")
    rec, unused = assign(g, preds, matching, o["iou_thresh"], o["max_dist_px"])
    matched = rec >= 0
    rec, zero = fill_missing(g, rec, missing, preds, matching)
    models, procedural = load_body_models(o["body_models"], torch.float64)
    G = len(g)
    jg, Gg = torch.zeros(G, 24, 3, dtype=torch.float64), torch.zeros(G, 24, 3, 3, dtype=torch.float64)
    genders = g.gender if o["gt_gender"] == "pickle" else np.full(G, "neutral")
    bar = Progress(2, "3dpw-challenge", progress)
    for gd in np.unique(genders):
        i = np.flatnonzero(genders == gd)
        jg[i], Gg[i], _ = models[gd].kinematics(g.rot[i], g.betas[i])
    bar.update()
    has = rec >= 0
    r = rec[has]
    jp = torch.zeros(G, 24, 3, dtype=torch.float64)
    Gp = torch.eye(3, dtype=torch.float64).repeat(G, 9, 1, 1)
    pr = _pred_rotmats(preds, r)
    if preds.has("joints24"):
        jp[has] = torch.from_numpy(preds.fields["joints24"][r])
    elif pr is not None:
        jp[has] = models["neutral"].kinematics(pr, _pred_betas(preds, r))[0]
    else:
        raise io.ThreeDPWFormatError(f"{preds.source}: the challenge needs 'joints24' or 'pose'/'rotmat'")
    with_angles = preds.has("orient9") or pr is not None
    if preds.has("orient9"):  # foreign matrices: nearest rotation, as the kit's Rodrigues/scipy do
        U, _, Vh = torch.linalg.svd(torch.from_numpy(preds.fields["orient9"][r]))
        D = torch.ones(*U.shape[:-1], dtype=U.dtype)
        D[..., -1] = torch.sign(torch.linalg.det(U @ Vh))
        Gp[has] = (U * D[..., None, :]) @ Vh
    elif pr is not None:
        Gp[has] = global_rotations(pr, J.SMPL_PARENTS)[:, ORIENT_9]
    bar.update()
    keep = torch.from_numpy(rec >= 0) if missing == "skip" else torch.ones(G, dtype=torch.bool)
    jp, jg, Gp, Gg = jp[keep], jg[keep], Gp[keep], Gg[keep][:, ORIENT_9]
    jp, jg = 1000 * (jp - jp[:, :1]), 1000 * (jg - jg[:, :1])  # mm, root = SMPL joint 0
    e_mpjpe = metrics.mpjpe(jp, jg)
    e_pa = metrics.pa_mpjpe(jp, jg)
    R = ops.similarity_transform(jp, jg)[0]
    thr = torch.arange(*AUC_RANGE_MM, dtype=torch.float64)
    curves = pck_curve(jp[:, MAJOR_12], jg[:, MAJOR_12], thresholds=thr)
    e_pck = 100 * pck(jp[:, MAJOR_12], jg[:, MAJOR_12], threshold=o["pck_thresh_mm"])
    e_auc = 100 * auc_from_curve(curves, thr)
    columns = {"MPJPE_mm": e_mpjpe, "PA_MPJPE_mm": e_pa, "PCK_pct": e_pck, "AUC_pct": e_auc}
    if with_angles:
        columns["MPJAE_deg"], columns["PA_MPJAE_deg"] = mpjae(Gp, Gg), mpjae(Gp, Gg, align=R)
    kept = keep.numpy()
    full = {k: np.full(G, np.nan) for k in columns}
    for k, v in columns.items():
        full[k][kept] = v.numpy()
    summary = {k: _mean(v) for k, v in full.items()}
    curve = curves.mean(0) if len(curves) else torch.zeros(len(thr), dtype=torch.float64)
    notes = [f"matching={matching}; missing={missing}; frames={o['frames']}; GT model {o['gt_gender']}",
             "24 SMPL joints root-aligned at joint 0; PCK/AUC on 12 major joints (<= thr), AUC over "
             f"{AUC_RANGE_MM[0]}..{AUC_RANGE_MM[1] - 1} mm; MPJAE on 9 global rotations; mm, %, degrees"]
    if procedural:
        notes.append("procedural SMPL-format body model: checks the pipeline, not comparable with published numbers")
    details = {"person_frames": G, "matched": int(matched.sum()), "filled_previous": int((~matched & ~zero
               & (rec >= 0)).sum()), "zero_filled": int(zero.sum()) if missing == "previous" else 0,
               "unused_rows": unused, "sequences": len(g.names),
               "options": {k: (str(v) if k == "body_models" else v) for k, v in o.items()}}
    counts = {"matched": matched.astype(np.int64)}
    return BenchmarkResult(
        "3dpw-challenge", summary, {"per_sequence": _per_sequence(g, full, counts)},
        curves={"pck_curve": {"x": thr.tolist(), "y": curve.tolist(), "xlabel": "threshold (mm)",
                              "ylabel": "PCK (12 major joints)", "title": "3DPW challenge"}},
        details=details, notes=notes)
