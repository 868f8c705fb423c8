"""``RompCriterion``: the terms ROMP / BEV train a single-image model with, from the model's maps,
the parsed per-person predictions (``ROMPModel.parse_train``) and a collated contract batch.

Terms (protocols 3.2-3.6, weights and the sum / cap / NaN rules of 3.9 in ``LossComputer``):

* CenterMap: :func:`~romp_fast.losses.centermap_focal_loss` of ``center_map`` against ROMP's GT
  heatmaps (``romp_fast.data.heatmap.batch_center_heatmaps``, CAR on), over images with
  ``all_annotated``. A batch may carry the heatmaps precomputed as ``"center_heatmap"``
  ``[B, 1, S, S]`` (a data-loader worker can build them off the training thread); otherwise they
  are built here on the CPU from ``centers`` / ``boxes``.
* P_KP2D, MPJPE, PAMPJPE: keypoint terms on the parsed joints vs ``batch[...][batch_index,
  person_index]`` with the contract's validity masks.
* Pose (rotation matrices, no axis-angle round trip), Shape, Cam (only where the preset weights it:
  BEV / TRACE; ROMP's ``supervise_cam_params`` is False), Prior (only with a GMM file; without one
  the term is off and a warning says so once per process).

Only terms with a non-zero weight are computed. Relative and temporal terms are not part of a
single-image ROMP step (their inputs are not in this model's outputs): weighting them is an error.
"""
from __future__ import annotations

import warnings
from typing import Mapping

from torch import Tensor

from romp_fast.data.heatmap import batch_center_heatmaps
from romp_fast.losses import (GMMPosePrior, LossComputer, cam_loss, centermap_focal_loss,
                              gmm_prior_loss, kp2d_loss, mpjpe_loss, pampjpe_loss, pose_loss, shape_loss)

SUPPORTED = ("CenterMap", "P_KP2D", "MPJPE", "PAMPJPE", "Pose", "Shape", "Cam", "Prior")
_HEATMAP_KEYS = ("centers", "centers_valid", "boxes", "boxes_valid")


class RompCriterion:
    """Weighted ROMP loss.

    Args:
        preset: ``LossComputer`` preset ("romp", "bev", "trace"); its CenterMap_3D and relative /
            temporal weights are dropped (not computed by a 2D-centre model), with one warning.
        weights: overrides ``{term: weight}`` (``KeyError`` for unknown names).
        gmm_path: pose-prior mixture file (``romp_fast.losses.load_gmm``); ``None``: Prior off.
        map_size: GT heatmap side when the batch has no ``center_heatmap``; ``None``: the side of
            the predicted ``center_map``.
        pampjpe_batch_intersection: ROMP's "joints visible in every sample" rule for PAMPJPE.

    ``criterion(maps, parsed, batch) -> (total, logs)``: ``logs`` as ``LossComputer`` (flat,
    detached: ``"<group>/<term>"``, group sums, ``"total"``, ``"nan_skipped"``, ``"capped"``).
    """

    _warned: set = set()

    def __init__(self, preset: str = "romp", weights: Mapping[str, float] | None = None,
                 gmm_path=None, map_size: int | None = None, pampjpe_batch_intersection: bool = False):
        computer = LossComputer(preset, weights)
        w = dict(computer.weights)
        off = sorted(t for t in computer.active_terms() if t not in SUPPORTED)
        if weights and set(off) & set(weights):
            raise ValueError(f"RompCriterion computes only {list(SUPPORTED)}; got weights for "
                             f"{sorted(set(off) & set(weights))}")
        if off:
            self._warn_once(f"preset {preset!r}: {off} are not computed by the single-image ROMP "
                            f"criterion and are left out")
        for t in off:
            w[t] = 0.0
        self.prior = GMMPosePrior(gmm_path) if gmm_path is not None else None
        if w["Prior"] > 0 and self.prior is None:
            self._warn_once("RompCriterion: no GMM pose-prior file (gmm_path); the Prior term is off")
            w["Prior"] = 0.0
        self.computer = LossComputer(preset, {k: v for k, v in w.items() if k in computer.weights})
        self.weights = self.computer.weights
        self.map_size = map_size
        self.pampjpe_batch_intersection = pampjpe_batch_intersection

    @classmethod
    def _warn_once(cls, msg: str) -> None:
        if msg not in cls._warned:
            cls._warned.add(msg)
            warnings.warn(msg, stacklevel=3)

    def to(self, device) -> "RompCriterion":
        """Move the pose prior's buffers (if any); the rest follows its inputs."""
        if self.prior is not None:
            self.prior.to(device)
        return self

    def active_terms(self) -> tuple[str, ...]:
        return self.computer.active_terms()

    def center_targets(self, batch: Mapping[str, Tensor], size: int, device) -> Tensor:
        """GT heatmaps ``[B, 1, S, S]`` from the batch (precomputed ``center_heatmap`` or built here)."""
        hm = batch.get("center_heatmap")
        if hm is None:
            hm = batch_center_heatmaps({k: batch[k].detach().cpu() for k in _HEATMAP_KEYS}, size)
        if hm.shape[-1] != size:
            raise ValueError(f"center_heatmap is {list(hm.shape)}, the predicted map is {size} x {size}")
        return hm.to(device, non_blocking=True)

    def terms(self, maps: Mapping[str, Tensor], parsed: Mapping[str, Tensor],
              batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Unweighted values of the active terms."""
        w = self.weights
        out: dict[str, Tensor] = {}
        if w["CenterMap"] > 0:
            pred = maps["center_map"]
            S = self.map_size or pred.shape[-1]
            out["CenterMap"] = centermap_focal_loss(pred, self.center_targets(batch, S, pred.device),
                                                    batch["all_annotated"].to(pred.device))
        b, p = parsed["batch_index"], parsed["person_index"]

        def gt(key):
            return batch[key][b, p]

        if w["P_KP2D"] > 0:
            out["P_KP2D"] = kp2d_loss(parsed["kp2d"], gt("kp2d"), gt("kp2d_valid"))
        if w["MPJPE"] > 0:
            out["MPJPE"] = mpjpe_loss(parsed["kp3d"], gt("kp3d"), gt("kp3d_valid"))
        if w["PAMPJPE"] > 0:
            out["PAMPJPE"] = pampjpe_loss(parsed["kp3d"], gt("kp3d"), gt("kp3d_valid"),
                                          self.pampjpe_batch_intersection)
        if w["Pose"] > 0:
            out["Pose"] = pose_loss(parsed["rotmats"], gt("pose"), gt("pose_valid"))
        if w["Shape"] > 0:
            out["Shape"] = shape_loss(parsed["betas"], gt("betas"), gt("betas_valid"))
        if w["Cam"] > 0:
            out["Cam"] = cam_loss(parsed["cam"], gt("cam"), gt("cam_valid"))
        if w["Prior"] > 0:
            D = self.prior.means.shape[1]  # 69 for SMPLify's gmm_08 (body + hands)
            out["Prior"] = gmm_prior_loss(parsed["pose"][:, 3:3 + D], self.prior)
        return out

    def __call__(self, maps: Mapping[str, Tensor], parsed: Mapping[str, Tensor],
                 batch: Mapping[str, Tensor]) -> tuple[Tensor, dict]:
        return self.computer(self.terms(maps, parsed, batch))

