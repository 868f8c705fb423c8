"""Joint sets as named index tables, and the mappings between them.

Every set is an ordered tuple of names; a joint's index in its set is its position in the tuple.
Names follow ROMP's ``romp/lib/constants.py`` (``SMPL_24``, ``SMPL_EXTRA_30`` -> ``SMPL_ALL_54``,
``LSP_14``, ``COCO_17``, ``Crowdpose_14``), so mapping two sets by name gives ROMP's
``joint_mapping`` tables. Nothing else in the package should hold a literal index list for a joint
set: derive it here with :func:`joint_map` / :func:`flip_permutation` / :func:`index`.

H36M-17 is the row order of the H36M-style joint regressor (SPIN's ``J_regressor_h36m.npy``, the
file ROMP uses). In that file rows 1-3 are the left leg and 4-6 the right leg; ROMP's
``H36M_TO_J17 = [6, 5, 4, 1, 2, 3, ...]`` turns those rows into LSP order (R_Ankle first), which
only works with that row order, so it is the order used here. ``J17`` is ROMP's evaluation order:
the 14 LSP joints, then Pelvis, Spine_H36M and Jaw_H36M.
"""
from __future__ import annotations

import numpy as np

SMPL_24 = (
    "Pelvis_SMPL", "L_Hip_SMPL", "R_Hip_SMPL", "Spine_SMPL", "L_Knee", "R_Knee", "Thorax_SMPL",
    "L_Ankle", "R_Ankle", "Thorax_up_SMPL", "L_Toe_SMPL", "R_Toe_SMPL", "Neck", "L_Collar",
    "R_Collar", "Jaw", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
    "L_Hand", "R_Hand",
)

# The 21 joints smplx appends from vertices (VertexJointSelector order: face, feet, left tips,
# right tips), which is also ROMP's order for SMPL-54 indices 24..44.
SMPL_VERTEX_21 = (
    "Nose", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
    "L_BigToe", "L_SmallToe", "L_Heel", "R_BigToe", "R_SmallToe", "R_Heel",
    "L_Hand_thumb", "L_Hand_index", "L_Hand_middle", "L_Hand_ring", "L_Hand_pinky",
    "R_Hand_thumb", "R_Hand_index", "R_Hand_middle", "R_Hand_ring", "R_Hand_pinky",
)

# Rows of ROMP's J_regressor_extra (SMPL-54 indices 45..53).
SMPL_EXTRA_9 = (
    "R_Hip", "L_Hip", "Neck_LSP", "Head_top", "Pelvis", "Thorax_MPII", "Spine_H36M", "Jaw_H36M",
    "Head",
)

SMPL_54 = SMPL_24 + SMPL_VERTEX_21 + SMPL_EXTRA_9

LSP_14 = (
    "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "R_Wrist", "R_Elbow",
    "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist", "Neck_LSP", "Head_top",
)

# Row order of the H36M-style regressor (see the module docstring for the leg order). Row 8 (H36M
# "Thorax") and row 10 (H36M "Head") carry the names of the LSP joints ROMP evaluates them as, so that
# joint_map(H36M_17, J17) is exactly ROMP's H36M_TO_J17.
H36M_17 = (
    "Pelvis", "L_Hip", "L_Knee", "L_Ankle", "R_Hip", "R_Knee", "R_Ankle", "Spine_H36M",
    "Neck_LSP", "Jaw_H36M", "Head_top", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder",
    "R_Elbow", "R_Wrist",
)

# ROMP's evaluation order: H36M-17 rows picked by H36M_TO_J17 = [6,5,4,1,2,3,16,15,14,11,12,13,8,10,0,7,9].
J17 = LSP_14 + ("Pelvis", "Spine_H36M", "Jaw_H36M")

COCO_17 = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
    "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)

CROWDPOSE_14 = (
    "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip",
    "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Head_top", "Neck_LSP",
)

JOINT_SETS: dict[str, tuple[str, ...]] = {
    "smpl24": SMPL_24,
    "smpl54": SMPL_54,
    "lsp14": LSP_14,
    "h36m17": H36M_17,
    "j17": J17,
    "coco17": COCO_17,
    "crowdpose14": CROWDPOSE_14,
}

# SMPL kinematic tree: parent of each SMPL-24 joint (-1 for the root).
SMPL_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21], dtype=np.int64
)

# ROMP's root for training MPJPE and mesh root alignment: mid-point of SMPL-54 R_Hip / L_Hip.
ROOT_54 = (SMPL_54.index("R_Hip"), SMPL_54.index("L_Hip"))  # (45, 46)
ROOT_LSP = (LSP_14.index("R_Hip"), LSP_14.index("L_Hip"))  # (2, 3)
ROOT_J17 = J17.index("Pelvis")  # 14


def _names(joint_set) -> tuple[str, ...]:
    if isinstance(joint_set, str):
        try:
            return JOINT_SETS[joint_set.lower()]
        except KeyError:
            raise KeyError(f"unknown joint set {joint_set!r}; known: {sorted(JOINT_SETS)}") from None
    return tuple(joint_set)


def index(joint_set, *names: str) -> np.ndarray:
    """Indices of ``names`` in ``joint_set`` (a set name such as ``"smpl54"`` or a name tuple)."""
    table = _names(joint_set)
    missing = [n for n in names if n not in table]
    if missing:
        raise KeyError(f"joints {missing} are not in the joint set")
    return np.array([table.index(n) for n in names], dtype=np.int64)


def joint_map(src, dst) -> np.ndarray:
    """``m[i]`` = index in ``src`` of the joint named ``dst[i]``, or -1 if ``src`` lacks it.

    ``x_dst = x_src[..., m, :]`` where ``m >= 0`` (ROMP's ``joint_mapping(src, dst)``).
    """
    s, d = _names(src), _names(dst)
    pos = {n: i for i, n in enumerate(s)}
    return np.array([pos.get(n, -1) for n in d], dtype=np.int64)


def _mirror(name: str) -> str:
    for a, b in (("L_", "R_"), ("R_", "L_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


def flip_permutation(joint_set) -> np.ndarray:
    """Permutation ``p`` with ``flipped = x[..., p, :]`` after mirroring the image/body left-right.

    Left and right joints swap by name (``L_*`` <-> ``R_*``); central joints stay (ROMP's
    ``smpl24_flip`` / ``All54_flip``).
    """
    names = _names(joint_set)
    pos = {n: i for i, n in enumerate(names)}
    return np.array([pos.get(_mirror(n), i) for i, n in enumerate(names)], dtype=np.int64)


def gather(joints, mapping, fill=None):
    """Apply a :func:`joint_map` result to ``joints[..., J_src, C]`` (numpy or torch).

    Missing joints (``-1``) are set to ``fill``; with ``fill=None`` a missing joint is an error.
    """
    mapping = np.asarray(mapping)
    missing = mapping < 0
    if missing.any() and fill is None:
        raise ValueError(f"{int(missing.sum())} target joints have no source joint; pass fill=")
    safe = np.where(missing, 0, mapping)
    try:
        import torch

        if isinstance(joints, torch.Tensor):
            out = joints[..., torch.as_tensor(safe, device=joints.device), :].clone()
            if missing.any():
                out[..., torch.as_tensor(missing, device=joints.device), :] = fill
            return out
    except ImportError:  # pragma: no cover
        pass
    out = np.array(np.asarray(joints)[..., safe, :], copy=True)
    if missing.any():
        out[..., missing, :] = fill
    return out
