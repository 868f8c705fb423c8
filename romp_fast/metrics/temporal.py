"""Temporal smoothness errors over tracks: acceleration error and acceleration, per track.

Acceleration error (Kanazawa et al., "Learning 3D Human Dynamics from Video", CVPR 2019; VIBE's
``compute_error_accel``; TRACE's mACC): for every frame t whose three-frame stencil t-1, t, t+1 is
valid, the mean over joints of ``|(p_{t-1} - 2 p_t + p_{t+1}) - (g_{t-1} - 2 g_t + g_{t+1})|``;
a track's value is the mean over those frames. Units: input units per frame^2 (metres in ->
metres/frame^2; evaluators report mm/frame^2, which VIBE's tables label "mm/s^2").

Runs on the fused native op :func:`romp_fast.ops.temporal_difference_error` (order 2).
Tracks are [S, T, J, 3] (or [S, T, 3]); ``valid`` [S, T] marks frames that exist (bool or
non-negative float; a frame is used when > 0). A track without a valid stencil scores 0; use
:func:`stencil_count` to weight or drop tracks when pooling. Differentiable in ``pred``.
"""
from __future__ import annotations

import torch

from romp_fast import ops


def stencil_count(valid: torch.Tensor, order: int = 2) -> torch.Tensor:
    """Number of frames of each track whose difference stencil is fully valid, Tensor[S] int64.

    ``order`` 1: pairs (t, t+1); 2: triples (t-1, t, t+1). Pooling tracks by these counts gives the
    mean over all valid stencils of a dataset.
    """
    if valid.dim() != 2:
        raise ValueError(f"valid must be [S, T], got {list(valid.shape)}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    v = valid > 0
    if v.shape[1] <= order:
        return torch.zeros(v.shape[0], dtype=torch.int64, device=v.device)
    ok = v[:, 1:] & v[:, :-1] if order == 1 else v[:, 2:] & v[:, 1:-1] & v[:, :-2]
    return ok.sum(-1)


def acceleration_error(pred, target, valid=None) -> torch.Tensor:
    """Mean acceleration error per track, Tensor[S] in input units per frame^2.

    pred, target (Tensor[S, T, J, 3] or [S, T, 3]); valid (Tensor[S, T], optional, default all).
    Root-align the joints first when the protocol does (VIBE and TRACE use pelvis-aligned joints).
    """
    return ops.temporal_difference_error(pred, target, valid, order=2)


def acceleration(x, valid=None) -> torch.Tensor:
    """Mean acceleration magnitude per track, Tensor[S] (VIBE's ``compute_accel``, a smoothness
    measure of one side): :func:`acceleration_error` against a motionless target."""
    return ops.temporal_difference_error(x, torch.zeros_like(x), valid, order=2)
