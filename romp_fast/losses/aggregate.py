"""The weighted loss aggregator: per-model presets, NaN skipping, ROMP's per-term cap, grouped logs.

Source: ROMP ``romp/lib/loss_funcs/calc_loss.py`` (``Loss.forward``: each term's mean times
``args.<Name>_weight``) and ``learnable_loss.Learnable_Loss`` (sum over terms, a term >= ``loss_thresh``
= 1000 replaced by ``L * (1000 / L.item())``, group sums for logging); default weights from
``configs/v1.yml`` (ROMP), ``configs/v6_train.yml`` (BEV) and ``trace/configs/trace.yml`` (TRACE).
ROMP lets a NaN term make the total NaN (the trainer then skips the step); here a NaN term is left
out of the total and counted instead (an infinite term too: ROMP's rescaling makes it NaN).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor

GROUPS: dict[str, tuple[str, ...]] = {
    "detection": ("CenterMap", "CenterMap_3D"),
    "regression": ("MPJPE", "PAMPJPE", "P_KP2D", "Pose", "Shape", "Cam", "Prior"),
    "relative": ("R_Depth", "R_Age"),
    "temporal": ("motion_offsets3D", "temp_shape_consist", "world_grots", "wrotsL2", "world_trans",
                 "world_pj2D", "temp_velocity", "temp_acceleration"),
}
TERMS: tuple[str, ...] = tuple(t for g in GROUPS.values() for t in g)
GROUP_OF = {t: g for g, ts in GROUPS.items() for t in ts}

_ZERO = dict.fromkeys(TERMS, 0.0)
# Weight 0 = the term is off in that model's published training setup (reason in the comment).
PRESETS: dict[str, dict[str, float]] = {
    # configs/v1.yml; Cam: 200 there but supervise_cam_params is False for ROMP (weak perspective).
    "romp": {**_ZERO, "MPJPE": 200.0, "PAMPJPE": 360.0, "P_KP2D": 400.0, "Pose": 80.0, "Shape": 6.0,
             "Prior": 1.6, "CenterMap": 160.0},
    # configs/v6_train.yml (KP2D: 10 there is never computed, so it has no term here)
    "bev": {**_ZERO, "MPJPE": 200.0, "PAMPJPE": 360.0, "P_KP2D": 400.0, "Pose": 80.0, "Shape": 60.0,
            "Prior": 1.6, "CenterMap": 100.0, "CenterMap_3D": 1000.0, "Cam": 200.0,
            "R_Age": 4000.0, "R_Depth": 400.0},
    # trace/configs/trace.yml. Prior 1.6 and R_Age/R_Depth 2000/100 are listed but off
    # (learn_gmm_prior / learn_relative False); world_foot 6 is commented out in TRACE's code and
    # ortho 0.1 never computed, so neither has a term; temp_velocity / temp_acceleration are not in
    # the config (TRACE's temp_cam/rot_consist use them, off by default): 0, set them to enable.
    "trace": {**_ZERO, "MPJPE": 300.0, "PAMPJPE": 260.0, "P_KP2D": 600.0, "Pose": 80.0, "Shape": 60.0,
              "CenterMap": 200.0, "CenterMap_3D": 300.0, "Cam": 100.0, "motion_offsets3D": 300.0,
              "temp_shape_consist": 5.0, "world_grots": 40.0, "wrotsL2": 80.0, "world_trans": 400.0,
              "world_pj2D": 80.0},
}
LOSS_CAP = 1000.0  # Learnable_Loss: args().loss_thresh = 1000


def _unknown(names, what):
    bad = sorted(set(names) - set(TERMS))
    if bad:
        raise KeyError(f"unknown loss term(s) {bad} in {what}; valid terms: {list(TERMS)}")


class LossComputer:
    """Weighted sum of loss terms with ROMP's semantics.

    Args:
        preset: "romp", "bev" or "trace" (``PRESETS``).
        weights: overrides ``{term: weight}``; unknown names raise ``KeyError`` listing the valid ones.
        cap: a weighted term >= ``cap`` is rescaled to exactly ``cap`` (its gradient scaled by
            ``cap / value``), as ROMP's ``loss_thresh``; ``None`` disables.

    ``computer(terms) -> (total, logs)``: ``terms`` maps term names to unweighted values (scalar
    tensors; others are averaged, numbers are constants). Terms with weight 0 are ignored; a term
    whose weighted value is NaN (or infinite) is left out and counted (``logs["nan_skipped"]``, and
    ``computer.nan_skipped`` over the computer's life). ``logs`` is flat: ``"<group>/<term>"`` the
    detached weighted (capped) value, ``"<group>"`` the group sum, ``"total"``, ``"nan_skipped"``
    and ``"capped"`` (counts in this call). Groups: detection, regression, relative, temporal.
    """

    def __init__(self, preset: str = "romp", weights: Mapping[str, float] | None = None,
                 cap: float | None = LOSS_CAP):
        if preset not in PRESETS:
            raise KeyError(f"unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
        w = dict(PRESETS[preset])
        if weights:
            _unknown(weights, "weights")
            w.update({k: float(v) for k, v in weights.items()})
        bad = {k: v for k, v in w.items() if not math.isfinite(v) or v < 0}
        if bad:
            raise ValueError(f"loss weights must be finite and >= 0, got {bad}")
        self.preset, self.weights, self.cap = preset, w, cap
        self.nan_skipped = 0

    def active_terms(self) -> tuple[str, ...]:
        """Terms with a non-zero weight, in ``TERMS`` order."""
        return tuple(t for t in TERMS if self.weights[t] > 0)

    def __call__(self, terms: Mapping[str, Tensor | float]) -> tuple[Tensor, dict[str, Tensor | int]]:
        _unknown(terms, "terms")
        ref = next((v for v in terms.values() if isinstance(v, Tensor)), None)
        device = ref.device if ref is not None else None
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        total = torch.zeros((), device=device, dtype=dtype)
        logs: dict[str, Tensor | int] = {}
        groups = {g: torch.zeros((), device=device, dtype=dtype) for g in GROUPS}
        skipped = capped = 0
        for name in TERMS:
            if name not in terms or self.weights[name] == 0:
                continue
            v = terms[name]
            v = v.mean() if isinstance(v, Tensor) else torch.tensor(float(v), device=device, dtype=dtype)
            v = v * self.weights[name]
            value = float(v.detach())  # one sync per term, as ROMP's value.item()
            if not math.isfinite(value):  # NaN (or inf, which ROMP's rescaling would turn into NaN)
                skipped += 1
                continue
            if self.cap is not None and value >= self.cap:
                v = v * (self.cap / value)  # Learnable_Loss: value / (value.item() / loss_thresh)
                capped += 1
            total = total + v
            groups[GROUP_OF[name]] = groups[GROUP_OF[name]] + v.detach()
            logs[f"{GROUP_OF[name]}/{name}"] = v.detach()
        self.nan_skipped += skipped
        for g, s in groups.items():
            if any(k.startswith(g + "/") for k in logs):
                logs[g] = s
        logs["total"] = total.detach()
        logs["nan_skipped"] = skipped
        logs["capped"] = capped
        return total, logs
