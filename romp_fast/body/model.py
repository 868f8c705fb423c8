"""``BodyModel``: smplx's SMPL layer plus the joint sets ROMP's losses and metrics use.

smplx is imported lazily (inside ``BodyModel``) so ``import romp_fast`` works without it.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from romp_fast.body import joints as J
from romp_fast.body.io import load_body_model_data, load_regressor
from romp_fast.body.rotations import axis_angle_to_matrix, rot6d_to_matrix

_LSP_FROM_54 = J.joint_map(J.SMPL_54, J.LSP_14)
_J17_FROM_H36M = J.joint_map(J.H36M_17, J.J17)


@dataclass
class BodyOutput:
    """All in metres, model frame (plus ``transl``). ``None`` where a regressor is unavailable."""

    vertices: Tensor                    # [B, 6890, 3]
    joints24: Tensor                    # [B, 24, 3]  SMPL joints
    joints54: Optional[Tensor] = None   # [B, 54, 3]  ROMP SMPL_ALL_54 (needs the extra regressor)
    lsp14: Optional[Tensor] = None      # [B, 14, 3]  LSP-14 picked from joints54
    h36m17: Optional[Tensor] = None     # [B, 17, 3]  H36M-style regressor rows (joints.H36M_17)
    j17: Optional[Tensor] = None        # [B, 17, 3]  ROMP's J17 order (LSP-14, Pelvis, Spine, Jaw)
    rotmats: Optional[Tensor] = None    # [B, 24, 3, 3] the local joint rotations used


def _sibling(model_path: Path, name: str):
    p = model_path.parent / name
    return p if p.is_file() else None


class BodyModel(torch.nn.Module):
    """SMPL body model built from an SMPL-format file (``.npz`` / ``.pkl``) with smplx.

    Args:
        path: model file, or ``None`` for the procedural model (created on first use in
            ``$ROMP_FAST_CACHE`` or ``~/.cache/romp_fast``).
        h36m_regressor / extra_regressor: ``[17, 6890]`` / ``[9, 6890]`` regressor files. ``None``
            looks for ``J_regressor_h36m.npy`` / ``J_regressor_extra.npy`` next to the model file;
            without an extra regressor ``joints54`` and ``lsp14`` are ``None``, without an H36M
            regressor ``h36m17`` and ``j17`` are.
        num_betas: shape coefficients used (at most the file's).
    """

    NUM_JOINTS = 24

    def __init__(self, path=None, h36m_regressor=None, extra_regressor=None, device=None,
                 dtype=torch.float32, num_betas: int = 10):
        super().__init__()
        import smplx  # lazy: the GPU machines run without smplx

        if path is None:
            from romp_fast.body.procedural import MODEL_FILE, ensure_procedural_model

            path = ensure_procedural_model() / MODEL_FILE
        path = Path(path)
        data = load_body_model_data(path)
        num_betas = min(num_betas, data["shapedirs"].shape[2])
        h36m_regressor = h36m_regressor if h36m_regressor is not None else _sibling(path, "J_regressor_h36m.npy")
        extra_regressor = extra_regressor if extra_regressor is not None else _sibling(path, "J_regressor_extra.npy")
        # smplx prints a warning for models with fewer than 300 shape directions; SMPL has 10.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPLLayer(model_path=str(path), data_struct=smplx.utils.Struct(**data),
                                        num_betas=num_betas, dtype=dtype)
        self.num_betas = num_betas
        self.path = path
        for name, src, rows in (("extra_regressor", extra_regressor, 9), ("h36m_regressor", h36m_regressor, 17)):
            reg = None if src is None else torch.as_tensor(
                load_regressor(src, rows) if isinstance(src, (str, Path)) else np.asarray(src), dtype=dtype)
            if reg is not None and tuple(reg.shape) != (rows, data["v_template"].shape[0]):
                raise ValueError(f"{name} must be [{rows}, 6890], got {list(reg.shape)}")
            self.register_buffer(name, reg)
        self.to(device=device)

    @property
    def faces(self) -> Tensor:
        """Triangles, LongTensor[F, 3]."""
        return self.smpl.faces_tensor

    @property
    def dtype(self) -> torch.dtype:
        return self.smpl.shapedirs.dtype

    # ------------------------------------------------------------------ pose parsing
    def pose_to_rotmats(self, pose: Tensor) -> Tensor:
        """Any accepted pose layout -> local rotations Tensor[B, 24, 3, 3].

        Accepted: axis-angle ``[B, 72]``, ``[B, 66]``, ``[B, 24, 3]``, ``[B, 22, 3]``; rotation
        matrices ``[B, 24, 3, 3]``, ``[B, 22, 3, 3]``; 6D ``[B, 24, 6]``, ``[B, 22, 6]``, ``[B, 144]``,
        ``[B, 132]``. 22 joints (global + 21 body, as ROMP predicts) get identity hand rotations.
        """
        s = tuple(pose.shape)
        if pose.dim() == 4 and s[2:] == (3, 3) and s[1] in (22, 24):
            R = pose
        elif pose.dim() == 3 and s[2] == 6 and s[1] in (22, 24):
            R = rot6d_to_matrix(pose)
        elif pose.dim() == 3 and s[2] == 3 and s[1] in (22, 24):
            R = axis_angle_to_matrix(pose)
        elif pose.dim() == 2 and s[1] in (66, 72):
            R = axis_angle_to_matrix(pose.reshape(s[0], s[1] // 3, 3))
        elif pose.dim() == 2 and s[1] in (132, 144):
            R = rot6d_to_matrix(pose.reshape(s[0], s[1] // 6, 6))
        else:
            raise ValueError("pose must be axis-angle [B, 72|66] or [B, 24|22, 3], rotation matrices "
                             f"[B, 24|22, 3, 3] or 6D [B, 24|22, 6] / [B, 144|132], got {list(s)}")
        if R.shape[1] == 22:
            eye = torch.eye(3, dtype=R.dtype, device=R.device).expand(R.shape[0], 2, 3, 3)
            R = torch.cat([R, eye], dim=1)
        return R

    # ------------------------------------------------------------------ forward
    def forward(self, pose: Optional[Tensor] = None, betas: Optional[Tensor] = None, *,
                global_orient: Optional[Tensor] = None, body_pose: Optional[Tensor] = None,
                transl: Optional[Tensor] = None, root_align: bool = False) -> BodyOutput:
        """Posed, shaped mesh and joint sets.

        Args:
            pose: see :meth:`pose_to_rotmats`; or give ``global_orient`` (axis-angle [B, 3]) and
                ``body_pose`` (axis-angle [B, 69] or [B, 63]) instead.
            betas: Tensor[B, <=num_betas] (missing trailing coefficients are zero); default zeros.
            transl: Tensor[B, 3] added to every output point (metres).
            root_align: subtract the mid-point of SMPL-54 joints 45/46 (LSP hips) from every output,
                as ROMP's ``smpl_mesh_root_align``; needs the extra regressor.
        Returns:
            :class:`BodyOutput`; differentiable in pose, betas and transl.
        """
        if pose is None:
            if global_orient is None or body_pose is None:
                raise ValueError("give pose, or both global_orient [B, 3] and body_pose [B, 69|63]")
            if global_orient.dim() != 2 or global_orient.shape[1] != 3:
                raise ValueError(f"global_orient must be [B, 3], got {list(global_orient.shape)}")
            if body_pose.dim() != 2 or body_pose.shape[1] not in (63, 69) or len(body_pose) != len(global_orient):
                raise ValueError(f"body_pose must be [B, 69] or [B, 63] with B = {len(global_orient)}, "
                                 f"got {list(body_pose.shape)}")
            pose = torch.cat([global_orient, body_pose], dim=1)
        elif global_orient is not None or body_pose is not None:
            raise ValueError("give either pose or global_orient + body_pose, not both")
        R = self.pose_to_rotmats(pose).to(self.dtype)
        B = R.shape[0]
        dev = R.device
        if betas is None:
            betas = torch.zeros(B, self.num_betas, dtype=self.dtype, device=dev)
        if betas.dim() != 2 or betas.shape[0] != B or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas must be [B, <= {self.num_betas}] with B = {B}, got {list(betas.shape)}")
        betas = torch.nn.functional.pad(betas.to(self.dtype), (0, self.num_betas - betas.shape[1]))
        if transl is not None and tuple(transl.shape) != (B, 3):
            raise ValueError(f"transl must be [{B}, 3], got {list(transl.shape)}")
        if B == 0:
            z = R.new_zeros
            out = BodyOutput(z(0, 6890, 3), z(0, 24, 3), rotmats=R)
            if self.extra_regressor is not None:
                out.joints54, out.lsp14 = z(0, 54, 3), z(0, 14, 3)
            if self.h36m_regressor is not None:
                out.h36m17, out.j17 = z(0, 17, 3), z(0, 17, 3)
            return out
        res = self.smpl(betas=betas, global_orient=R[:, :1], body_pose=R[:, 1:])
        verts, joints45 = res.vertices, res.joints  # 24 SMPL + 21 vertex joints (ROMP order)
        out = BodyOutput(vertices=verts, joints24=joints45[:, :24], rotmats=R)
        if self.extra_regressor is not None:
            extra = torch.einsum("jv,bvc->bjc", self.extra_regressor, verts)
            out.joints54 = torch.cat([joints45, extra], dim=1)
            out.lsp14 = out.joints54[:, torch.as_tensor(_LSP_FROM_54, device=dev)]
        if self.h36m_regressor is not None:
            out.h36m17 = torch.einsum("jv,bvc->bjc", self.h36m_regressor, verts)
            out.j17 = out.h36m17[:, torch.as_tensor(_J17_FROM_H36M, device=dev)]
        shift = None
        if root_align:
            if out.joints54 is None:
                raise ValueError("root_align needs the extra regressor (SMPL-54 joints 45/46)")
            shift = -out.joints54[:, list(J.ROOT_54)].mean(1, keepdim=True)
        if transl is not None:
            t = transl.to(self.dtype)[:, None]
            shift = t if shift is None else shift + t
        if shift is not None:
            for f in ("vertices", "joints24", "joints54", "lsp14", "h36m17", "j17"):
                v = getattr(out, f)
                if v is not None:
                    setattr(out, f, v + shift)
        return out
