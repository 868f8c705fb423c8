"""TRACE temporal losses over person tracks ``[S, T, ...]`` with per-frame validity ``[S, T]``.

A track is one (clip, subject) sequence ordered by frame (TRACE ``extract_sequence_inds``); frames
where the subject is absent or unannotated are invalid. Sources: TRACE
``trace/lib/loss_funcs/video_loss.py`` (``calc_motion_offsets3D_loss``,
``calc_temporal_shape_consistency_loss``, ``_calc_world_gros_loss_`` + ``quaternion_loss``,
``_calc_world_trans_loss_`` + ``kabsch_umeyama``, ``calc_vel_acc_error``) and
``trace/lib/loss_funcs/calc_loss.py`` (``wrotsL2`` through ``batch_smpl_pose_l2_error``).

Deliberate differences from TRACE (documented per function): invalid frames are excluded from
pairs and from the scale fit (TRACE only skips a sequence that has no valid frame at all), and
velocity/acceleration are per-track means (TRACE concatenates the non-zero per-frame values).
"""
from __future__ import annotations

import torch
from torch import Tensor

from romp_fast import ops
from romp_fast.body.rotations import axis_angle_to_matrix
from romp_fast.losses._common import check_mask, masked_mean, safe
from romp_fast.losses.params import rotation_distance

WORLD_TRANS_MAX_SCALE = 10.0  # video_loss._calc_world_trans_loss_: kabsch_umeyama(...).clamp(max=10.0)


def _tracks(name, pred, target, valid, tail_dims):
    if pred.dim() < 2 + tail_dims:
        raise ValueError(f"{name}: pred must be [S, T, ...] with {tail_dims} trailing dims, got {list(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"{name}: target must match pred {list(pred.shape)}, got {list(target.shape)}")
    v = check_mask(f"{name} valid", valid, pred.shape[:2])
    return safe(pred, v), safe(target, v).to(pred.dtype).detach(), v


def gather_tracks(track_id: Tensor, valid: Tensor, *values: Tensor):
    """Regroup a clip batch into person tracks: TRACE's ``extract_sequence_inds`` for the contract.

    Args:
        track_id (Tensor[B, T, P] int64): the contract's ``track_id`` of a collated clip batch.
        valid (Tensor[B, T, P] bool): ``track_id_valid`` (AND any other per-frame mask).
        values: tensors ``[B, T, P, ...]`` (predictions or GT) to regroup.
    Returns:
        ``(mask [S, T] bool, keys [S, 2] (clip index, track id), *tracks [S, T, ...])`` with one
        track per (clip, id) present, sorted by clip then id; frame t of a track is the clip's frame
        t (zeros where absent). Differentiable in ``values``. Ids must be unique within a frame.
    """
    if track_id.dim() != 3:
        raise ValueError(f"track_id must be [B, T, P], got {list(track_id.shape)}")
    B, T, P = track_id.shape
    m = check_mask("valid", valid, track_id.shape)
    clip = torch.arange(B, device=track_id.device)[:, None, None].expand(B, T, P)
    frame = torch.arange(T, device=track_id.device)[None, :, None].expand(B, T, P)
    keys, inv = torch.unique(torch.stack([clip[m], track_id[m]], -1), dim=0, return_inverse=True)
    S = keys.shape[0]
    mask = torch.zeros(S, T, dtype=torch.bool, device=track_id.device)
    mask[inv, frame[m]] = True
    if int(mask.sum()) != int(m.sum()):
        raise ValueError("gather_tracks: a track id occurs twice in one frame of a clip")
    out = []
    for i, x in enumerate(values):
        if tuple(x.shape[:3]) != (B, T, P):
            raise ValueError(f"values[{i}] must be [{B}, {T}, {P}, ...], got {list(x.shape)}")
        z = x.new_zeros((S, T) + tuple(x.shape[3:]))
        out.append(z.index_put((inv, frame[m]), x[m]))
    return (mask, keys, *out)


def motion_offset_loss(pred_offset: Tensor, trajectory: Tensor, valid: Tensor) -> Tensor:
    """TRACE ``motion_offsets3D``: mean over frames t > 0 with t and t - 1 valid of
    ``|pred_offset_t - (traj_t - traj_{t-1})|_2``, scalar.

    pred_offset, trajectory (Tensor[S, T, 3]): predicted motion offset of frame t (from t - 1) and
    the GT trajectory (TRACE: normalised camera (s, ty, tx) per frame); valid (Tensor[S, T]).
    """
    p, g, v = _tracks("motion_offset_loss", pred_offset, trajectory, valid, 1)
    ok = v[:, 1:] & v[:, :-1]
    err = torch.linalg.vector_norm(p[:, 1:] - (g[:, 1:] - g[:, :-1]), dim=-1)
    return masked_mean(err, ok)


def shape_consistency_loss(betas: Tensor, valid: Tensor) -> Tensor:
    """TRACE ``temp_shape_consist``: mean over valid frames of ``|beta_t - mean_track(beta)|_2``
    with the track mean (over its valid frames) detached, scalar. betas: Tensor[S, T, K]."""
    if betas.dim() != 3:
        raise ValueError(f"betas must be [S, T, K], got {list(betas.shape)}")
    v = check_mask("valid", valid, betas.shape[:2])
    b = safe(betas, v)
    n = v.sum(1).clamp(min=1).to(b.dtype)[:, None, None]
    mean = (b.sum(1, keepdim=True) / n).detach()
    return masked_mean(torch.linalg.vector_norm(safe(b - mean, v), dim=-1), v)


def _quaternion(aa: Tensor) -> Tensor:
    """Axis-angle -> (w, x, y, z) as TRACE's ``angle_axis_to_quaternion`` (no sign canonicalisation:
    w = cos(theta / 2) may be negative for theta > pi)."""
    t2 = (aa * aa).sum(-1, keepdim=True)
    small = t2 < 1e-6
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = t2s.sqrt()
    # sin(t/2)/t and cos(t/2) by their series below t = 1e-3 (exact to ~1e-13; avoids 0/0 gradients)
    k = torch.where(small, 0.5 - t2 / 48, torch.sin(t / 2) / t)
    w = torch.where(small, 1 - t2 / 8, torch.cos(t / 2))
    return torch.cat([w, aa * k], -1)


def _qmul(a: Tensor, b: Tensor) -> Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def _conj(q: Tensor) -> Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def world_rotation_loss(pred_aa: Tensor, target_aa: Tensor, valid: Tensor) -> Tensor:
    """TRACE ``world_grots``: pairwise relative-rotation angle, scalar (radians).

    For every ordered pair i != j of valid frames, the relative rotations ``q_i^-1 q_j`` of the
    prediction and of the GT are compared by ``2 acos(clamp(<q_pred, q_gt>, -1, 1))`` with no sign
    disambiguation (so the value lies in [0, 2 pi], as TRACE's ``quaternion_loss``). It is evaluated
    as ``2 atan2(|vec(r)|, w(r))`` with ``r = conj(q_gt) q_pred`` (``w(r) = <q_gt, q_pred>``): the
    same value, but a finite gradient at zero error. Per track the mean over pairs; then the mean
    over tracks with >= 2 valid frames.

    pred_aa, target_aa (Tensor[S, T, 3]): world global orientation, axis-angle.
    """
    p, g, v = _tracks("world_rotation_loss", pred_aa, target_aa, valid, 1)
    if p.shape[-1] != 3:
        raise ValueError(f"world_rotation_loss: pred_aa must be [S, T, 3], got {list(pred_aa.shape)}")
    qp, qg = _quaternion(p), _quaternion(g)
    dp = _qmul(_conj(qp)[:, :, None], qp[:, None, :])  # [S, i, j] = q_i^-1 q_j
    dg = _qmul(_conj(qg)[:, :, None], qg[:, None, :])
    r = _qmul(_conj(dg), dp)
    T = v.shape[1]
    pair = v[:, :, None] & v[:, None, :] & ~torch.eye(T, dtype=torch.bool, device=v.device)
    r = torch.where(pair[..., None], r, r.new_tensor([1.0, 0.0, 0.0, 0.0]))
    angle = 2 * torch.atan2(torch.linalg.vector_norm(r[..., 1:], dim=-1), r[..., 0])
    n = pair.sum((1, 2))
    per_track = torch.where(pair, angle, 0).sum((1, 2)) / n.clamp(min=1).to(angle.dtype)
    return masked_mean(per_track, n > 0)


def world_rotation_l2_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """TRACE ``wrotsL2``: mean over valid frames of ``|R_pred - R_gt|_F``, scalar.

    pred, target: axis-angle Tensor[S, T, 3] or matrices Tensor[S, T, 3, 3]; valid Tensor[S, T].
    """
    p, g, v = _tracks("world_rotation_l2_loss", pred, target, valid, 1)
    if p.shape[-1] == 3 and p.dim() == 3:
        p, g = axis_angle_to_matrix(p), axis_angle_to_matrix(g)
    return masked_mean(rotation_distance(p, g), v)


def world_translation_scale(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """TRACE's ``kabsch_umeyama`` scale per track, Tensor[S], detached: ``Var(gt) / sum sigma(H)``
    with H the cross-covariance of the centred GT and prediction over valid frames, clamped <= 10
    (``WORLD_TRANS_MAX_SCALE``). NaN where undefined (0 / 0, e.g. a single valid frame)."""
    with torch.no_grad():
        v = valid[..., None].to(pred.dtype)
        n = v.sum(1, keepdim=True)
        nn_ = n.clamp(min=1)
        gc = (target - (target * v).sum(1, keepdim=True) / nn_) * v
        pc = (pred - (pred * v).sum(1, keepdim=True) / nn_) * v
        var = (gc * gc).sum((1, 2)) / nn_[:, 0, 0]
        H = gc.transpose(1, 2) @ pc / nn_
        sv = torch.linalg.svdvals(H).sum(-1)
        return (var / sv).clamp(max=WORLD_TRANS_MAX_SCALE)


def world_translation_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """TRACE ``world_trans``: scale-aligned pairwise displacement error, scalar (metres).

    Per track: ``mean_{i != j valid} |c (p_i - p_j) - (g_i - g_j)|_2`` with the detached scale c of
    :func:`world_translation_scale` (via :func:`romp_fast.ops.pairwise_displacement_error`); then
    the mean over tracks with >= 2 valid frames and a finite scale (TRACE skips NaN sequences).

    pred, target (Tensor[S, T, 3]): world root translations; valid (Tensor[S, T]).
    """
    p, g, v = _tracks("world_translation_loss", pred, target, valid, 1)
    c = world_translation_scale(p.detach(), g, v)
    ok = (v.sum(1) >= 2) & torch.isfinite(c)
    c = torch.where(ok, c, 1.0)
    err = ops.pairwise_displacement_error(p, g, v & ok[:, None], c)
    return masked_mean(err, ok)


def _difference_loss(pred, target, valid, order, name):
    if pred.dim() not in (3, 4):
        raise ValueError(f"{name}: pred must be [S, T, J, D] or [S, T, D], got {list(pred.shape)}")
    p, g, v = _tracks(name, pred, target, valid, pred.dim() - 2)
    per = ops.temporal_difference_error(p, g, v, order)
    ok = v[:, order:]
    for k in range(1, order + 1):
        ok = ok & v[:, order - k: v.shape[1] - k]
    return masked_mean(per, ok.any(1))


def velocity_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Velocity consistency (TRACE ``calc_vel_acc_error``, first part): scalar mean over tracks
    with two consecutive valid frames of :func:`romp_fast.ops.temporal_difference_error` (order 1).
    pred, target: Tensor[S, T, J, D] or [S, T, D]."""
    return _difference_loss(pred, target, valid, 1, "velocity_loss")


def acceleration_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Acceleration consistency (TRACE ``calc_vel_acc_error``, second part): as
    :func:`velocity_loss` with second differences (three consecutive valid frames)."""
    return _difference_loss(pred, target, valid, 2, "acceleration_loss")
