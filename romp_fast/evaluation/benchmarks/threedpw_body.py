"""SMPL forward passes for scoring 3DPW: batched, chunked, and only as much mesh as a metric needs.

The evaluator needs, per person-frame: SMPL-24 joints and global rotations (challenge: forward
kinematics only, no mesh), the 17 H36M-regressor joints (VIBE/ROMP protocol; skinned in joint
space, no vertex posed, exact by linearity) and, for PVE, the mean distance between the predicted
and the ground-truth 6890-vertex meshes. smplx always poses the whole mesh (about 6.5 M
multiply-adds per body, dominated by the 207 x 20670 pose-corrective product), which is ~40 s for
the 70,000 bodies of one 3DPW test scoring on 2 cores. :class:`EvalSMPL` evaluates the same
equations (SMPL, Loper et al. 2015, eqs. 1-4: shape and pose blend shapes, joint regression,
forward kinematics, linear blend skinning) only where a metric needs them; it is tested against
:class:`romp_fast.body.BodyModel` (smplx). For PVE (:func:`vertex_errors`) the blend shapes of 64
pred + GT pairs are one oneDNN GEMM (the fixed cost: 1.8 s of the 3.1 s 3DPW scoring on 2 cores) and
the native ``lbs_vertex_error`` op skins both meshes and averages their distances in one pass over
that GEMM's output, reading only each vertex's non-zero skinning weights; no posed mesh is written
(0.4 s; its pure-torch reference, skinning as a [V, 24] GEMM plus passes over posed meshes: 8 s).

:func:`load_body_models` resolves the models for genders ``"m"``, ``"f"`` and ``"neutral"``: a
folder with ``SMPL_{NEUTRAL,MALE,FEMALE}.{npz,pkl}`` (+ ``J_regressor_h36m.npy``), a dict of paths,
or ``None`` for the procedural SMPL-format model for every gender (numbers then are not comparable
with published ones; the evaluators say so in their notes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from romp_fast.body import joints as J
from romp_fast.body.io import load_body_model_data, load_regressor
from romp_fast.metrics.angles import global_rotations
from romp_fast.ops.lbs_vertex_error import lbs_vertex_error, linear_blend_skinning

GENDER_FILES = {"neutral": "SMPL_NEUTRAL", "m": "SMPL_MALE", "f": "SMPL_FEMALE"}
H36M_REGRESSOR_FILE = "J_regressor_h36m.npy"
LSP_FROM_H36M = J.joint_map(J.H36M_17, J.LSP_14)  # SPIN/VIBE's H36M_TO_J14
NUM_BETAS = 10
MESH_PAIRS = 64  # pairs posed per GEMM: [3V, 218] x [218, 128] (~10 MB out) keeps the GEMM efficient
_ONEDNN = []     # [bool] once probed: oneDNN's fp32 linear is usable here


def _onednn():
    if not _ONEDNN:
        ok = False
        try:
            if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
                g = torch.Generator().manual_seed(0)
                x, w, b = (torch.randn(*s, generator=g) for s in ((5, 7), (9, 7), (9,)))
                y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
                ok = bool(torch.allclose(y, torch.addmm(b, x, w.T), rtol=1e-5, atol=1e-5))
        except (RuntimeError, AttributeError):
            ok = False
        _ONEDNN.append(ok)
    return _ONEDNN[0]


def _linear(x, w, b=None):
    """``x @ w.T + b``. float32 on CPU goes through oneDNN's GEMM when torch has it: it picks its
    kernels by instruction set (AVX-512 on any x86), where MKL's sgemm, torch's default, takes a
    slower path on non-Intel CPUs (measured 2-2.5x slower on AMD Zen 5, benchmarks/bench_eval_3dpw.py).
    The same IEEE float32 products, summed in another order."""
    if x.dtype == torch.float32 and x.device.type == "cpu" and x.shape[0] > 0 and w.shape[0] > 0 and _onednn():
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w, b, "none", [], "")
    return torch.nn.functional.linear(x, w, b)


class EvalSMPL:
    """One SMPL-format model as plain tensors (no autograd), evaluated only as far as a metric needs.

    Args:
        path: model file (``.npz`` / ``.pkl``); h36m_regressor: ``[17, 6890]`` file or array
            (``None``: ``J_regressor_h36m.npy`` next to the model, if present).
        dtype: computation dtype (float32 for meshes; the products are GEMMs).
    """

    def __init__(self, path, h36m_regressor=None, dtype=torch.float32):
        path = Path(path)
        d = load_body_model_data(path)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        self.path, self.dtype = path, dtype
        V = d["v_template"].shape[0]
        self.num_vertices = V
        # Template, shape and pose blend shapes as one [3V, 1 + 10 + 207] matrix (rows (v, c)): the
        # rest-pose vertices of N bodies are one GEMM with the features [1, betas, R_j - I], written
        # batch-innermost ([V, 3, N]), the layout the lbs_vertex_error kernel reads as vectors.
        self.blend = t(np.concatenate([d["v_template"][..., None], d["shapedirs"][:, :, :NUM_BETAS],
                                       d["posedirs"]], 2).reshape(3 * V, -1))
        self.weights = t(d["weights"])                                           # [V, 24]
        self.parents = [int(p) if i else -1 for i, p in enumerate(d["kintree_table"][0])]
        Jr = d["J_regressor"]
        self.J_template = t(Jr @ d["v_template"])                                # [24, 3]
        self.J_shapedirs = t(np.einsum("jv,vck->jck", Jr, d["shapedirs"][:, :, :NUM_BETAS]))
        if h36m_regressor is None and (path.parent / H36M_REGRESSOR_FILE).is_file():
            h36m_regressor = path.parent / H36M_REGRESSOR_FILE
        self.h36m = None
        if h36m_regressor is not None:
            reg = (load_regressor(h36m_regressor, 17) if isinstance(h36m_regressor, (str, Path))
                   else np.asarray(h36m_regressor, dtype=np.float64))
            self.h36m = t(reg)
            # Joint-space skinning (exact, by linearity of LBS and of the regressor): with
            # RW_jvk = r_jv w_vk, joint j = sum_k A_k [sum_v RW_jvk v_posed_v; sum_v RW_jvk], and
            # sum_v RW_jvk v_posed_v = C_jk + D_jk beta + E_jk pose_feature. Per body this costs
            # 17 x 24 x 3 x 207 multiply-adds whatever the regressor's support (a dense one reads
            # all 6890 vertices), instead of posing the vertices it reads.
            sup = np.flatnonzero(np.abs(reg).sum(0) > 0)
            rw = reg[:, sup, None] * d["weights"][None, sup]                       # [17, S, 24]
            basis = np.concatenate([d["v_template"][sup, :, None], d["shapedirs"][sup, :, :NUM_BETAS],
                                    d["posedirs"][sup]], axis=2)                   # [S, 3, 1 + 10 + 207]
            cde = np.tensordot(rw, basis, axes=([1], [0]))                          # [17, 24, 3, 218]
            self.h36m_basis = t(cde.reshape(-1, cde.shape[-1]).T)                   # [218, 17*24*3]
            self.h36m_weight = t(rw.sum(1))                                         # [17, 24]

    def _pad_betas(self, betas, n):
        if betas is None:
            return torch.zeros(n, NUM_BETAS, dtype=self.dtype)
        betas = betas.to(self.dtype)
        return torch.nn.functional.pad(betas[:, :NUM_BETAS], (0, NUM_BETAS - min(betas.shape[1], NUM_BETAS)))

    def kinematics(self, rotmats, betas=None):
        """Forward kinematics: posed SMPL-24 joints [N, 24, 3] (smplx's ``joints[:, :24]``, model
        frame, no translation), global rotations [N, 24, 3, 3] and skinning transforms [N, 24, 3, 4]."""
        R = rotmats.to(self.dtype)
        b = self._pad_betas(betas, R.shape[0])
        rest = self.J_template + torch.einsum("jck,nk->njc", self.J_shapedirs, b)   # [N, 24, 3]
        G = global_rotations(R, self.parents)
        par = torch.as_tensor([max(p, 0) for p in self.parents])
        offs = rest - torch.where(torch.as_tensor(self.parents)[:, None] >= 0, rest[:, par], 0)
        pos = []
        for j, p in enumerate(self.parents):  # t_j = t_parent + G_parent (J_j - J_parent)
            pos.append(offs[:, j] if p < 0 else pos[p] + (G[:, p] @ offs[:, j, :, None])[..., 0])
        posed = torch.stack(pos, 1)
        A = torch.cat([G, (posed - (G @ rest[..., None])[..., 0])[..., None]], -1)  # rest joint -> posed
        return posed, G, A

    def pose_feature(self, rotmats, betas=None):
        """The blend-shape coefficients [N, 1 + 10 + 207]: 1 (template), padded betas, R_j - I of joints 1..23."""
        R = rotmats.to(self.dtype)
        N = R.shape[0]
        return torch.cat([torch.ones(N, 1, dtype=self.dtype), self._pad_betas(betas, N),
                          (R[:, 1:] - torch.eye(3, dtype=self.dtype)).reshape(N, -1)], 1)

    def rest_vertices(self, feature):
        """Rest-pose vertices with the blend shapes, [N, V, 3] from :meth:`pose_feature`, stored
        batch-innermost (a view of [V, 3, N]): one GEMM [3V, 218] x [218, N]."""
        return _linear(self.blend, feature).view(self.num_vertices, 3, -1).permute(2, 0, 1)

    def vertices(self, rotmats, betas=None, kin=None):
        """Posed vertices [N, V, 3] (model frame)."""
        R = rotmats.to(self.dtype)
        if kin is None:
            kin = self.kinematics(R, betas)
        return linear_blend_skinning(self.rest_vertices(self.pose_feature(R, betas)), kin[2], self.weights)

    def h36m_joints(self, rotmats, betas=None, verts=None, kin=None):
        """H36M-regressor joints [N, 17, 3] (rows in ``joints.H36M_17`` order), from ``verts`` if
        given (full meshes), else by joint-space skinning without any vertex (see ``__init__``);
        ``kin``: this body's :meth:`kinematics`, if already computed."""
        if self.h36m is None:
            raise ValueError(f"{self.path}: no H36M joint regressor; put {H36M_REGRESSOR_FILE} next to "
                             "the model file (the 3DPW test protocol regresses its 14 joints with it)")
        if verts is not None:
            return torch.einsum("jv,nvc->njc", self.h36m, verts)
        R = rotmats.to(self.dtype)
        N = R.shape[0]
        b = self._pad_betas(betas, N)
        A = (self.kinematics(R, b) if kin is None else kin)[2]                          # [N, 24, 3, 4]
        X = (self.pose_feature(R, b) @ self.h36m_basis).view(N, 17, 24, 3)
        return (torch.einsum("nkcd,njkd->njc", A[..., :3], X)
                + torch.einsum("jk,nkc->njc", self.h36m_weight, A[..., 3]))


def vertex_errors(pred_model, pred_rot, pred_betas, gt_model, gt_rot, gt_betas, roots=None, kins=(None, None),
                  chunk=MESH_PAIRS):
    """Mean vertex distance per pair, ``mean_v |(v_pred - r_pred) - (v_gt - r_gt)|`` [n] (model units,
    the dtype of the models), never holding more than ``chunk`` pairs of rest-pose meshes.

    ``roots``: ``(r_pred, r_gt)`` [n, 3] each, or ``None`` (model frames compared as they are);
    ``kins``: the bodies' :meth:`EvalSMPL.kinematics` if already computed. Per chunk: one GEMM poses
    the rest-pose vertices of pred and GT together (when both use one model, as the 3DPW protocol's
    neutral GT), then :func:`romp_fast.ops.lbs_vertex_error` skins both and averages the distances
    without writing a posed mesh (models with different skinning weights: skinned in torch).
    """
    kp = kins[0] if kins[0] is not None else pred_model.kinematics(pred_rot, pred_betas)
    kg = kins[1] if kins[1] is not None else gt_model.kinematics(gt_rot, gt_betas)
    Fp, Fg = pred_model.pose_feature(pred_rot, pred_betas), gt_model.pose_feature(gt_rot, gt_betas)
    shared = pred_model is gt_model or (pred_model.weights.shape == gt_model.weights.shape
                                        and torch.equal(pred_model.weights, gt_model.weights))
    n = Fp.shape[0]
    out = torch.empty(n, dtype=pred_model.dtype)
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        m = sl.stop - s
        rp, rg = (None, None) if roots is None else (roots[0][sl].to(Fp.dtype), roots[1][sl].to(Fp.dtype))
        if pred_model is gt_model:
            rest = pred_model.rest_vertices(torch.cat([Fp[sl], Fg[sl]]))
            vp, vg = rest[:m], rest[m:]
        else:
            vp, vg = pred_model.rest_vertices(Fp[sl]), gt_model.rest_vertices(Fg[sl])
        if shared:
            out[sl] = lbs_vertex_error(vp, kp[2][sl], vg, kg[2][sl], pred_model.weights, rp, rg)
        else:
            xp = linear_blend_skinning(vp, kp[2][sl], pred_model.weights)
            xg = linear_blend_skinning(vg, kg[2][sl], gt_model.weights)
            if roots is not None:
                xp, xg = xp - rp[:, None], xg - rg[:, None]
            out[sl] = (xp - xg).norm(dim=-1).mean(-1)
    return out


def load_body_models(spec=None, dtype=torch.float32) -> tuple[dict, bool]:
    """Models for genders ``"m"``, ``"f"``, ``"neutral"`` and whether they are the procedural one.

    ``spec``: ``None`` (procedural model for all), a folder (``SMPL_NEUTRAL`` / ``SMPL_MALE`` /
    ``SMPL_FEMALE`` with ``.npz`` or ``.pkl``, and ``J_regressor_h36m.npy``), or a dict mapping
    gender to a model path (plus optional ``"h36m_regressor"``). Missing genders raise only when used.
    """
    if spec is None:
        from romp_fast.body.procedural import H36M_FILE, MODEL_FILE, ensure_procedural_model

        folder = ensure_procedural_model()
        m = EvalSMPL(folder / MODEL_FILE, folder / H36M_FILE, dtype)
        return {"m": m, "f": m, "neutral": m}, True
    if isinstance(spec, dict):
        paths = {g: spec.get(g) for g in GENDER_FILES}
        reg = spec.get("h36m_regressor")
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise FileNotFoundError(f"body_models: {folder} is not a folder")
        paths = {}
        for g, stem in GENDER_FILES.items():
            found = [folder / f"{stem}{ext}" for ext in (".npz", ".pkl") if (folder / f"{stem}{ext}").is_file()]
            paths[g] = found[0] if found else None
        reg = folder / H36M_REGRESSOR_FILE if (folder / H36M_REGRESSOR_FILE).is_file() else None
    models = _LazyModels({g: p for g, p in paths.items()}, reg, dtype)
    return models, False


class _LazyModels(dict):
    """Loads a gender's model on first use; a missing one is an error naming the gender and file."""

    def __init__(self, paths, reg, dtype):
        super().__init__()
        self.paths, self.reg, self.dtype = paths, reg, dtype

    def __missing__(self, gender):
        p = self.paths.get(gender)
        if p is None:
            want = GENDER_FILES.get(gender, gender)
            raise FileNotFoundError(f"body_models: no model for gender {gender!r} ({want}.npz or .pkl)")
        self[gender] = EvalSMPL(p, self.reg, self.dtype)
        return self[gender]
