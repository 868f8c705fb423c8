"""Which prediction row scores which 3DPW ground-truth person-frame: the matching rules and the
rules for ground truth left without a prediction.

Matching (``matching=``):

- ``person_id``: rows carry the 3DPW actor index (``person``); a row scores the actor it names in its
  frame. Identities are given, as in VIBE's protocol (crops from ground-truth tracks) and in the
  challenge's submission format (arrays indexed by actor). Two rows naming the same actor in one
  frame are an error.
- ``nearest_center``: ROMP's rule (``romp/eval.py``, issue #471: "we directly match the GT with the
  closest prediction"): each ground truth takes the prediction whose ``center2d`` (or the mean of its
  ``kp2d`` torso joints) is nearest to its own centre, the mean of its projected torso joints (ROMP's
  centre: pelvis, hips, neck, shoulders); no gate, a prediction may serve two people.
- ``greedy_2d``: TRACE's rule (``simple_romp/trace2/evaluation/eval_3DPW.py``: the AGORA kit's greedy
  matcher with IoU >= 0.05) on ``kp2d`` against the projected ground-truth SMPL-24 joints.
- ``hungarian``: optimal one-to-one matching on mean 2D joint distance (``max_dist_px`` gate).

Ground-truth 2D joints are ``jointPositions`` moved into the camera by ``cam_poses`` and projected
with ``cam_intrinsics``. Rows of unknown sequences or of frames without evaluated ground truth are
unused (counted; never false positives: neither protocol penalises them).
"""
from __future__ import annotations

import numpy as np
import torch

from romp_fast.body import joints as J
from romp_fast.evaluation.matching import (ROMP_IOU_THRESH, match_greedy_agora, match_hungarian,
                                           match_nearest_center)
from romp_fast.evaluation.benchmarks.threedpw_io import ThreeDPWFormatError

MATCHINGS = ("person_id", "nearest_center", "greedy_2d", "hungarian")
CENTER_JOINTS = J.index("smpl24", "Pelvis_SMPL", "L_Hip_SMPL", "R_Hip_SMPL", "Neck", "L_Shoulder", "R_Shoulder")


def _sequence_ids(preds, names):
    pos = {n: i for i, n in enumerate(names)}
    return np.array([pos.get(s, -1) for s in preds.sequence], dtype=np.int64)


def assign(gt, preds, matching, iou_thresh=ROMP_IOU_THRESH, max_dist_px=None):
    """Row of ``preds`` for each ground-truth person-frame (``-1``: none) and the number of unused
    rows. ``gt`` has flat arrays ``seq``, ``person``, ``frame`` and (2D rules) ``kp2d`` [G, 24, 2]."""
    if matching not in MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; choose one of {MATCHINGS}")
    seq = _sequence_ids(preds, gt.names)
    frame = preds.fields["frame"]
    F = max(gt.num_frames) + 1
    known = (seq >= 0) & (frame >= 0) & (frame < F)
    if matching == "person_id":
        return _by_person(gt, preds, seq, frame, known, F)
    fk_g = gt.seq * F + gt.frame
    frames, g_in = np.unique(fk_g, return_inverse=True)
    fk_p = np.where(known, seq * F + frame, -1)
    p_in = np.searchsorted(frames, fk_p).clip(max=len(frames) - 1)
    p_ok = known & (frames[p_in] == fk_p)
    B = len(frames)
    g_order, g_slot, G_max = _slots(g_in, np.ones_like(g_in, bool), B)
    p_order, p_slot, P_max = _slots(p_in, p_ok, B)
    gt_xy = torch.zeros(B, G_max, 24, 2, dtype=torch.float64)
    gt_xy[g_in[g_order], g_slot] = torch.from_numpy(gt.kp2d[g_order])
    g_counts = torch.from_numpy(np.bincount(g_in, minlength=B))
    p_counts = torch.from_numpy(np.bincount(p_in[p_ok], minlength=B))
    if matching == "nearest_center":
        if preds.has("center2d"):
            c = torch.from_numpy(preds.fields["center2d"])
        elif preds.has("kp2d"):
            c = torch.from_numpy(preds.fields["kp2d"][:, CENTER_JOINTS].mean(1))
        else:
            raise ThreeDPWFormatError(f"{preds.source}: matching='nearest_center' needs field 'center2d' or 'kp2d'")
        pc = torch.zeros(B, P_max, 2, dtype=torch.float64)
        pc[p_in[p_order], p_slot] = c[p_order]
        m = match_nearest_center(pc, gt_xy[:, :, CENTER_JOINTS].mean(2), pred_counts=p_counts, gt_counts=g_counts)
    else:
        if not preds.has("kp2d"):
            raise ThreeDPWFormatError(f"{preds.source}: matching={matching!r} needs field 'kp2d' [K, 24, 2]")
        pk = torch.zeros(B, P_max, 24, 2, dtype=torch.float64)
        pk[p_in[p_order], p_slot] = torch.from_numpy(preds.fields["kp2d"][p_order])
        if matching == "greedy_2d":
            m = match_greedy_agora(pk, gt_xy, pred_counts=p_counts, gt_counts=g_counts, iou_thresh=iou_thresh)
        else:
            m = match_hungarian(pk, gt_xy, pred_counts=p_counts, gt_counts=g_counts, max_dist=max_dist_px)
    # slot -> row: rows of frame b sit in slots 0..n_b-1 in p_order's order
    slot_row = np.full((B, max(P_max, 1)), -1, dtype=np.int64)
    slot_row[p_in[p_order], p_slot] = p_order
    pfg = m.pred_for_gt.numpy()[g_in, _inverse_slots(g_order, g_slot)]
    rec = np.where(pfg >= 0, slot_row[g_in, np.maximum(pfg, 0)], -1)
    used = np.zeros(len(frame), bool)
    used[rec[rec >= 0]] = True
    return rec, int((~used).sum())


def _slots(group, ok, B):
    """Order of the ``ok`` items by group, each item's position inside its group, largest group."""
    order = np.flatnonzero(ok)
    order = order[np.argsort(group[order], kind="stable")]
    counts = np.bincount(group[order], minlength=B)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(order)) - starts[group[order]]
    return order, slot, int(counts.max(initial=0))


def _inverse_slots(order, slot):
    out = np.empty(len(order), dtype=np.int64)
    out[order] = slot
    return out


def _by_person(gt, preds, seq, frame, known, F):
    if not preds.has("person"):
        raise ThreeDPWFormatError(f"{preds.source}: matching='person_id' needs field 'person' "
                                  "(3DPW actor index); or choose a 2D matching rule")
    person = preds.fields["person"]
    Pn = max(int(gt.person.max(initial=0)), int(person.max(initial=0))) + 1
    ok = known & (person >= 0)
    key_p = np.where(ok, (seq * F + frame) * Pn + person, -1)
    uniq, counts = np.unique(key_p[ok], return_counts=True)
    if (counts > 1).any():
        k = int(uniq[np.argmax(counts > 1)])
        s, rest = divmod(k, F * Pn)
        f, p = divmod(rest, Pn)
        raise ThreeDPWFormatError(f"{preds.source}: field 'person': {int(counts.max())} rows for sequence "
                                  f"{gt.names[s]!r}, frame {f}, person {p} (one row per person and frame)")
    order = np.argsort(key_p, kind="stable")
    sorted_keys = key_p[order]
    key_g = (gt.seq * F + gt.frame) * Pn + gt.person
    pos = np.searchsorted(sorted_keys, key_g).clip(max=max(len(order) - 1, 0))
    hit = (sorted_keys[pos] == key_g) if len(order) else np.zeros(len(key_g), bool)
    rec = np.where(hit, order[pos] if len(order) else -1, -1)
    used = np.zeros(len(frame), bool)
    used[rec[rec >= 0]] = True
    return rec, int((~used).sum())


def fill_missing(gt, rec, rule, preds=None, matching=None):
    """Apply the missing-prediction rule to ``rec`` [G]; returns (rec, zero_fill [G] bool).

    ``skip`` and ``penalty`` leave ``rec`` (the scorer drops or penalises -1 entries); ``error`` raises;
    ``previous`` (ROMP's ``collect_3DPW_results.py`` for the challenge) gives a missing person-frame
    the actor's latest earlier predicted frame: with ``person_id`` matching any earlier row of that
    actor (evaluated frame or not), with 2D rules the latest earlier evaluated frame that matched;
    with none before, a zero prediction (all joints at the origin, identity orientations).
    """
    missing = rec < 0
    if rule == "error" and missing.any():
        i = int(np.argmax(missing))
        raise ValueError(f"{int(missing.sum())} ground-truth person-frames have no prediction, e.g. "
                         f"sequence {gt.names[gt.seq[i]]!r}, frame {int(gt.frame[i])}, person "
                         f"{int(gt.person[i])} (missing='error')")
    if rule != "previous" or not missing.any():
        return rec, np.zeros(len(rec), bool)
    if matching == "person_id":
        F = max(gt.num_frames) + 1
        seq, frame, person = _sequence_ids(preds, gt.names), preds.fields["frame"], preds.fields["person"]
        Pn = max(int(gt.person.max(initial=0)), int(person.max(initial=0))) + 1
        ok = (seq >= 0) & (person >= 0) & (frame >= 0) & (frame < F)
        key_p = np.where(ok, (seq * Pn + person) * F + frame, -1)
        order = np.argsort(key_p, kind="stable")
        keys = key_p[order]
        key_g = (gt.seq * Pn + gt.person) * F + gt.frame
        pos = np.searchsorted(keys, key_g, side="left") - 1  # the last row strictly before
        same = (pos >= 0) & (keys[np.maximum(pos, 0)] // F == key_g // F) & (keys[np.maximum(pos, 0)] >= 0)
        prev = np.where(same, order[np.maximum(pos, 0)], -1)
    else:  # gt rows are sorted by (sequence, person, frame): forward-fill inside each track
        idx = np.arange(len(rec))
        last = np.maximum.accumulate(np.where(missing, -1, idx))
        track = gt.seq * (int(gt.person.max(initial=0)) + 1) + gt.person
        same = (last >= 0) & (track[np.maximum(last, 0)] == track)
        prev = np.where(same, rec[np.maximum(last, 0)], -1)
    filled = np.where(missing, prev, rec)
    return filled, filled < 0
