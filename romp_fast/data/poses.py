"""Joint-limited random SMPL poses for synthetic scenes.

Each body joint gets intrinsic Euler angles (X, Y, Z order, degrees) inside a per-joint range, in the
body model's axes (x = body's left, y up, z forward; see ``romp_fast.body.procedural``). Ranges are
written for the left side and the spine; right-side joints use the mirrored range (a left-right
mirror negates the y and z axis-angle components, the same rule as the pose flip in ``augment``).
The ranges are rough human ranges of motion (goniometry tables, e.g. Norkin & White, "Measurement
of Joint Motion", trimmed towards everyday poses), not learnt; they keep the synthetic bodies
plausible, which uniform axis-angle noise does not (knees bending forwards, heads turned 180 deg).

Angles are drawn as ``neutral + a * (U(lo, hi) - neutral)`` with a per-person activity ``a`` in
[0.15, 1]: a convex combination, so always inside [lo, hi], and most people stay near a standing pose.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from romp_fast.body import joints as J

# SMPL-24 joint index -> ((lo_x, hi_x), (lo_y, hi_y), (lo_z, hi_z)) degrees, neutral (x, y, z).
# Sign checks in the model's axes: +x knee flexion moves the shin backwards; -x hip flexion moves the
# thigh forwards; -z on the left shoulder lowers the arm from the T-pose; -y on the left elbow bends
# the forearm forwards.
_LIMITS_LEFT_AND_SPINE = {
    1: (((-90, 25), (-30, 30), (-10, 40)), (0, 0, 0)),        # L_Hip
    3: (((-10, 30), (-20, 20), (-15, 15)), (0, 0, 0)),        # Spine1
    4: (((0, 130), (-3, 3), (-3, 3)), (0, 0, 0)),             # L_Knee
    6: (((-10, 20), (-15, 15), (-10, 10)), (0, 0, 0)),        # Spine2
    7: (((-20, 30), (-10, 10), (-10, 10)), (0, 0, 0)),        # L_Ankle
    9: (((-10, 20), (-15, 15), (-10, 10)), (0, 0, 0)),        # Spine3
    10: (((-10, 20), (-3, 3), (-3, 3)), (0, 0, 0)),           # L_Foot
    12: (((-20, 30), (-30, 30), (-15, 15)), (0, 0, 0)),       # Neck
    13: (((-10, 10), (-15, 10), (-10, 15)), (0, 0, 0)),       # L_Collar
    15: (((-20, 25), (-30, 30), (-15, 15)), (0, 0, 0)),       # Head
    16: (((-30, 30), (-70, 30), (-85, 20)), (0, 0, -65)),     # L_Shoulder (neutral: arm down)
    18: (((-10, 10), (-130, 0), (-3, 3)), (0, -10, 0)),       # L_Elbow
    20: (((-20, 20), (-20, 20), (-40, 40)), (0, 0, 0)),       # L_Wrist
    22: (((-5, 5), (-5, 5), (-10, 10)), (0, 0, 0)),           # L_Hand
}


def _tables():
    lo = np.zeros((24, 3))
    hi = np.zeros((24, 3))
    neutral = np.zeros((24, 3))
    mirror = J.flip_permutation("smpl24")
    for j, (rng, neu) in _LIMITS_LEFT_AND_SPINE.items():
        for a in range(3):
            lo[j, a], hi[j, a] = rng[a]
        neutral[j] = neu
        m = mirror[j]
        if m != j:  # right side: x kept, y and z negated (and their bounds swapped)
            lo[m] = [lo[j, 0], -hi[j, 1], -hi[j, 2]]
            hi[m] = [hi[j, 0], -lo[j, 1], -lo[j, 2]]
            neutral[m] = [neutral[j, 0], -neutral[j, 1], -neutral[j, 2]]
    return np.radians(lo), np.radians(hi), np.radians(neutral)


LIMITS_LO, LIMITS_HI, NEUTRAL = _tables()  # [24, 3] radians; row 0 (global) is unused


def sample_euler(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` joint-limited body poses as Euler angles ``[n, 24, 3]`` (radians; row 0 zero)."""
    activity = rng.uniform(0.15, 1.0, size=(n, 1, 1))
    u = rng.uniform(LIMITS_LO, LIMITS_HI, size=(n, 24, 3))
    e = NEUTRAL + activity * (u - NEUTRAL)
    e[:, 0] = 0.0
    return e


def euler_to_axis_angle(euler: np.ndarray) -> np.ndarray:
    """Intrinsic XYZ Euler angles ``[..., 3]`` (radians) -> axis-angle ``[..., 3]``."""
    shp = euler.shape
    return Rotation.from_euler("XYZ", euler.reshape(-1, 3)).as_rotvec().reshape(shp)


def global_orient(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Camera-frame global orientation ``[n, 3]`` axis-angle for an upright body.

    The body model is y-up, z-forward; the camera is x right, y down, z forward (OpenCV), so an
    upright person facing the camera is the body rotated by pi about x. ``yaw`` turns the body
    about its own vertical axis (0 = facing the camera), ``pitch`` / ``roll`` tilt it (radians).
    """
    body = Rotation.from_euler("YXZ", np.stack([yaw, pitch, roll], -1))
    flip = Rotation.from_rotvec([np.pi, 0.0, 0.0])
    return (flip * body).as_rotvec()


def in_limits(euler: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Bool ``[...]``: every body joint of ``euler [..., 24, 3]`` inside its range."""
    e = euler[..., 1:, :]
    return ((e >= LIMITS_LO[1:] - tol) & (e <= LIMITS_HI[1:] + tol)).all(axis=(-1, -2))
