"""The in-training evaluator on the synthetic validation split (also ``--benchmark synthetic-val``).

Protocol (stated so numbers are comparable between runs):
- Predictions are matched to ground-truth people per image with ``match_hungarian`` on mean 2D
  keypoint distance (normalised coordinates, the ground truth's visible SMPL-54 joints) with a gate
  of ``match_gate`` (default 0.2, a tenth of the image width); ``greedy_agora`` is the alternative.
  Unlike ROMP's in-training evaluation, misses and false positives are counted: precision, recall
  and F1 are reported next to the pose errors, which are over matched people only.
- MPJPE and PA-MPJPE on the LSP-14 joints picked from SMPL-54, both sides root-centred at the hip
  mid-point (ROMP's 3DPW protocol joint set); PVE on the 6890 vertices, ground-truth mesh from its
  pose and shape through the same body model, both root-centred the same way. Millimetres.
"""
from __future__ import annotations

import numpy as np
import torch

from romp_fast.body import joints as J
from romp_fast.evaluation.matching import match_greedy_agora, match_hungarian
from romp_fast.metrics import mpjpe, pa_mpjpe, pve
from romp_fast.metrics.detection import detection_prf

_LSP = torch.as_tensor(J.joint_map(J.SMPL_54, J.LSP_14))


class SyntheticEvaluator:
    def __init__(self, body_model, match: str = "hungarian", match_gate: float = 0.2):
        if match not in ("hungarian", "greedy_agora"):
            raise ValueError(f"match must be hungarian or greedy_agora, got {match!r}")
        self.body, self.match, self.gate = body_model, match, match_gate
        self.reset()

    def reset(self) -> None:
        self._err: dict[str, list[np.ndarray]] = {"mpjpe": [], "pa_mpjpe": [], "pve": []}
        self._counts = {"tp": 0, "fp": 0, "fn": 0}

    def process(self, inputs, outputs) -> None:
        gt_valid = inputs["person_valid"] & inputs["kp2d_valid"].any(-1)
        pred_kp2d, counts = outputs["kp2d"], outputs["counts"]
        if self.match == "hungarian":
            m = match_hungarian(pred_kp2d, inputs["kp2d"], inputs["kp2d_valid"], pred_counts=counts,
                                gt_valid=gt_valid, max_dist=self.gate)
        else:
            m = match_greedy_agora(pred_kp2d, inputs["kp2d"], inputs["kp2d_valid"], pred_counts=counts,
                                   gt_valid=gt_valid)
        c = m.counts()
        for k in self._counts:
            self._counts[k] += c[k]
        pairs = m.pairs()
        if len(pairs) == 0:
            return
        b, p, g = pairs.unbind(1)
        lsp = _LSP.to(pairs.device)
        pred = outputs["kp3d"][b, p][:, lsp].double()
        gt = inputs["kp3d"][b, g][:, lsp].double()
        vis = inputs["kp3d_valid"][b, g][:, lsp]
        ok = vis.any(-1)
        if ok.any():
            self._err["mpjpe"].append((mpjpe(pred[ok], gt[ok], vis[ok]) * 1000).cpu().numpy())
            self._err["pa_mpjpe"].append((pa_mpjpe(pred[ok], gt[ok], vis[ok]) * 1000).cpu().numpy())
        has_mesh = inputs["pose_valid"][b, g] & inputs["betas_valid"][b, g]
        if "verts" in outputs and outputs["verts"] is not None and has_mesh.any():
            sel = has_mesh.nonzero().flatten()
            gt_v = self.body(inputs["pose"][b[sel], g[sel]], inputs["betas"][b[sel], g[sel]],
                             root_align=True).vertices.double()
            pv = outputs["verts"][b[sel], p[sel]].double()
            self._err["pve"].append((pve(pv, gt_v) * 1000).cpu().numpy())

    # sharded evaluation: every rank's state is gathered and merged before evaluate()
    def state_dict(self) -> dict:
        return {"err": {k: [a.tolist() for a in v] for k, v in self._err.items()}, "counts": dict(self._counts)}

    def load_states(self, states) -> None:
        self.reset()
        for s in states:
            for k, v in s["err"].items():
                self._err[k] += [np.asarray(a, dtype=np.float64) for a in v]
            for k, v in s["counts"].items():
                self._counts[k] += int(v)

    def evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, key in (("mpjpe", "MPJPE_mm"), ("pa_mpjpe", "PA_MPJPE_mm"), ("pve", "PVE_mm")):
            vals = np.concatenate(self._err[name]) if self._err[name] else np.zeros(0)
            out[key] = float(vals.mean()) if len(vals) else float("nan")
        prf = detection_prf(**self._counts)
        out.update({"precision": prf["precision"], "recall": prf["recall"], "F1": prf["F1"],
                    "matched": float(self._counts["tp"]), "misses": float(self._counts["fn"]),
                    "false_positives": float(self._counts["fp"])})
        return out
