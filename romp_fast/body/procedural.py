"""A procedural body model in the SMPL file format, for tests and for running without SMPL files.

``python -m romp_fast.body.procedural OUT_DIR [--pkl]`` writes ``SMPL_NEUTRAL.npz`` (the 7 arrays
smplx reads), ``J_regressor_extra.npy`` [9, 6890] (ROMP's SMPL-54 rows 45..53) and
``J_regressor_h36m.npy`` [17, 6890] (rows in :data:`romp_fast.body.joints.H36M_17` order), and with
``--pkl`` also ``SMPL_NEUTRAL.pkl`` laid out like the official chumpy pickles.

The body is a set of closed generalised cylinders (elliptic rings swept along the 24-joint SMPL
skeleton in T-pose, y up, +x the body's left, +z forward, metres): torso, head and neck, legs, feet,
arms, palms and five fingers per hand. Every joint has one ring centred exactly on it, so each
regressor row is a convex combination of ring vertices (uniform weights on a ring reproduce its
centre) and reproduces the joints for any shape, since shape changes keep rings centred on the moved
joints. Vertices are then permuted so smplx's hard-coded SMPL vertex ids (``vertex_ids['smplh']``)
hold the nose, eyes, ears, toes, heels and fingertips. Everything is deterministic (no randomness).

It is not SMPL: shapes, weights and correctives are plausible, not learnt. Use real SMPL files for
numbers that are compared with published results.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from romp_fast.body.io import NUM_VERTICES, save_npy, save_npz, save_official_style_pkl
from romp_fast.body.joints import SMPL_PARENTS

VERSION = 1
MODEL_FILE = "SMPL_NEUTRAL.npz"
PKL_FILE = "SMPL_NEUTRAL.pkl"
EXTRA_FILE = "J_regressor_extra.npy"
H36M_FILE = "J_regressor_h36m.npy"
NUM_BETAS = 10

# Rest joints of the left side and the centre line (metres), close to the SMPL neutral template.
_LEFT_AND_CENTRE = {
    0: (0.0, -0.225, 0.02), 1: (0.07, -0.315, 0.02), 3: (0.0, -0.115, 0.0), 4: (0.105, -0.69, 0.015),
    6: (0.0, 0.02, 0.0), 7: (0.09, -1.085, -0.03), 9: (0.0, 0.075, 0.025), 10: (0.12, -1.14, 0.095),
    12: (0.0, 0.285, -0.015), 13: (0.08, 0.195, -0.01), 15: (0.0, 0.355, 0.04),
    16: (0.175, 0.225, -0.02), 18: (0.43, 0.218, -0.04), 20: (0.675, 0.222, -0.042),
    22: (0.765, 0.212, -0.052),
}
_MIRROR = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}
_LEFT = (1, 4, 7, 10, 13, 16, 18, 20, 22)

# Shape parameters, one per beta: (what it changes, relative change per unit).
SHAPE_PARAMS = (
    ("stature", 0.04), ("girth", 0.08), ("leg_length", 0.05), ("arm_length", 0.05),
    ("torso_length", 0.05), ("waist", 0.12), ("shoulder_width", 0.06), ("hip_width", 0.06),
    ("limb_girth", 0.10), ("head_size", 0.06),
)

# smplx's SMPL vertex ids for its 21 vertex joints (smplx/vertex_ids.py, 'smplh'; read, not imported)
SMPLX_VERTEX_IDS = {
    "nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583,
    "rthumb": 6191, "rindex": 5782, "rmiddle": 5905, "rring": 6016, "rpinky": 6133,
    "lthumb": 2746, "lindex": 2319, "lmiddle": 2445, "lring": 2556, "lpinky": 2673,
    "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387, "RBigToe": 6617, "RSmallToe": 6624, "RHeel": 6787,
}
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")

_S_TORSO, _S_HEAD, _S_LEG, _S_FOOT, _S_ARM, _S_PALM, _S_FINGER = 48, 32, 24, 20, 20, 16, 8


def skeleton(p) -> np.ndarray:
    """Rest joints [24, 3] for shape parameters ``p`` [10] (see :data:`SHAPE_PARAMS`)."""
    k = dict(zip((n for n, _ in SHAPE_PARAMS), (1 + r * v for (_, r), v in zip(SHAPE_PARAMS, p))))
    base = np.zeros((24, 3))
    for j, xyz in _LEFT_AND_CENTRE.items():
        base[j] = xyz
        if j in _MIRROR:
            base[_MIRROR[j]] = (-xyz[0], xyz[1], xyz[2])
    J = np.zeros((24, 3))
    for j in range(24):
        par = SMPL_PARENTS[j]
        if par < 0:
            J[j] = base[j]
            continue
        off = base[j] - base[par]
        if j in (1, 2):
            off = off * (k["hip_width"], 1, 1)
        elif j in (4, 5, 7, 8, 10, 11):
            off = off * k["leg_length"]
        elif j in (3, 6, 9, 12, 15):
            off = off * (1, k["torso_length"], 1)
        elif j in (13, 14, 16, 17):
            off = off * (k["shoulder_width"], k["torso_length"] if j < 16 else 1, 1)
        elif j in (18, 19, 20, 21, 22, 23):
            off = off * k["arm_length"]
        J[j] = J[par] + off
    return J * k["stature"]


class _Builder:
    """Collects closed tubes: vertices, outward-oriented triangles, part labels, named rings."""

    def __init__(self):
        self.verts, self.faces, self.part = [], [], []
        self.rings: dict[str, np.ndarray] = {}
        self.points: dict[str, int] = {}
        self.n = 0

    def tube(self, part, stations, subdiv, u_ref, segments, start_pole, end_pole, name=None):
        """Sweep elliptic rings through ``stations`` = [(centre, a, b, ring_name or None), ...].

        ``subdiv[i]`` extra rings are interpolated between stations i and i+1. ``a`` is the radius
        along ``u_ref`` (projected off the local axis), ``b`` along ``axis x u``.
        """
        C, A, B, names = [], [], [], {}
        for i, (c, a, b, nm) in enumerate(stations):
            if nm is not None:
                names[nm] = len(C)
            C.append(np.asarray(c, float)), A.append(a), B.append(b)
            if i + 1 < len(stations):
                c2, a2, b2, _ = stations[i + 1]
                for t in np.arange(1, subdiv[i] + 1) / (subdiv[i] + 1):
                    C.append((1 - t) * np.asarray(c, float) + t * np.asarray(c2, float))
                    A.append((1 - t) * a + t * a2), B.append((1 - t) * b + t * b2)
        C, A, B = np.array(C), np.array(A), np.array(B)
        R, S = len(C), segments
        tang = np.gradient(C, axis=0)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        u = np.asarray(u_ref, float) - (tang @ np.asarray(u_ref, float))[:, None] * tang
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        w = np.cross(tang, u)  # (u, w, tangent) right-handed: rings run counter-clockwise
        th = 2 * np.pi * np.arange(S) / S
        ring = C[:, None] + A[:, None, None] * np.cos(th)[None, :, None] * u[:, None] \
            + B[:, None, None] * np.sin(th)[None, :, None] * w[:, None]
        base = self.n
        ids = base + np.arange(R * S).reshape(R, S)
        p0, p1 = base + R * S, base + R * S + 1
        k, k1 = np.arange(S), (np.arange(S) + 1) % S
        quads = [np.stack([ids[r, k], ids[r, k1], ids[r + 1, k1], ids[r + 1, k]], 1) for r in range(R - 1)]
        q = np.concatenate(quads)
        faces = [q[:, [0, 1, 2]], q[:, [0, 2, 3]],
                 np.stack([np.full(S, p0), ids[0, k1], ids[0, k]], 1),
                 np.stack([np.full(S, p1), ids[-1, k], ids[-1, k1]], 1)]
        self.verts += [ring.reshape(-1, 3), np.array([start_pole, end_pole], float)]
        self.faces += faces
        self.part += [part] * (R * S + 2)
        for nm, r in names.items():
            self.rings[nm] = ids[r]
        if name is not None:
            self.points[name + "_start"], self.points[name + "_end"] = p0, p1
        self.n += R * S + 2
        return ids

    def result(self):
        return np.concatenate(self.verts), np.concatenate(self.faces).astype(np.int64), np.array(self.part)


def _lerp(a, b, t):
    return (1 - t) * np.asarray(a) + t * np.asarray(b)


def _build_limbs(bl: _Builder, J, k):
    """Everything except the torso: head, legs, feet, arms, palms, fingers."""
    g, lg, hs = k["girth"], k["girth"] * k["limb_girth"], k["girth"] * k["head_size"]
    st = k["stature"]
    up = np.array([0.0, 1.0, 0.0])
    # head and neck: neck rings, then an ellipsoid centred above the head joint
    hc = J[15] + np.array([0.0, 0.11, -0.005]) * st * k["head_size"]
    ca, cb, cc = 0.078 * hs * st, 0.095 * hs * st, 0.115 * st * k["head_size"]
    phis = np.concatenate([np.linspace(0.75, np.pi / 2, 7), np.linspace(np.pi / 2, 2.85, 11)[1:]])
    head = [(_lerp(J[12], J[15], 0.35), 0.055 * g * st, 0.055 * g * st, None),
            (J[15], 0.05 * g * st, 0.052 * g * st, "j15")]
    for i, ph in enumerate(phis):
        nm = "head_centre" if abs(ph - np.pi / 2) < 1e-12 else ("head_top_ring" if i == len(phis) - 1 else None)
        head.append((hc - up * cc * np.cos(ph), ca * np.sin(ph), cb * np.sin(ph), nm))
    bl.tube("head", head, [1] + [0] * (len(head) - 2), (1, 0, 0), _S_HEAD,
            J[12] + up * 0.01, hc + up * cc, name="head")
    for s, (hip, knee, ankle, foot, col, sho, elb, wri, hand) in (
            (1, (1, 4, 7, 10, 13, 16, 18, 20, 22)), (-1, (2, 5, 8, 11, 14, 17, 19, 21, 23))):
        side = "L" if s > 0 else "R"
        sx = np.array([s, 1.0, 1.0])
        # leg: hip -> knee -> ankle
        leg = [(J[hip], 0.085 * lg * st, 0.085 * lg * st, f"j{hip}"),
               (J[knee], 0.052 * lg * st, 0.055 * lg * st, f"j{knee}"),
               (J[ankle], 0.038 * lg * st, 0.04 * lg * st, f"j{ankle}")]
        bl.tube(f"leg{side}", leg, [9, 9], (1, 0, 0), _S_LEG,
                J[hip] + up * 0.04 * st, J[ankle] - up * 0.03 * st)
        # foot: heel -> under the ankle -> foot joint (ball) -> toe tip, along +z
        heel = np.array([J[ankle][0], J[foot][1] + 0.005 * st, J[ankle][2] - 0.05 * st])
        toe = J[foot] + np.array([0.005 * s, -0.005, 0.07]) * st
        foot_st = [(heel, 0.03 * lg * st, 0.03 * lg * st, None),
                   (_lerp(heel, J[foot], 0.45), 0.042 * lg * st, 0.04 * lg * st, None),
                   (J[foot], 0.048 * lg * st, 0.03 * lg * st, f"j{foot}"),
                   (toe, 0.045 * lg * st, 0.022 * lg * st, "toe_" + side)]
        bl.tube(f"foot{side}", foot_st, [3, 3, 3], (1, 0, 0), _S_FOOT,
                heel - np.array([0, 0, 0.012]) * st, toe + np.array([0, 0, 0.01]) * st, name="foot" + side)
        # arm: collar -> shoulder -> elbow -> wrist, radii (vertical a, depth b)
        arm = [(J[col], 0.05 * lg * st, 0.05 * lg * st, f"j{col}"),
               (J[sho], 0.058 * lg * st, 0.055 * lg * st, f"j{sho}"),
               (J[elb], 0.042 * lg * st, 0.042 * lg * st, f"j{elb}"),
               (J[wri], 0.024 * lg * st, 0.034 * lg * st, f"j{wri}")]
        bl.tube(f"arm{side}", arm, [2, 9, 8], (0, 1, 0), _S_ARM,
                J[col] - sx * np.array([0.02, 0, 0]) * st, J[wri] + sx * np.array([0.015, 0, 0]) * st)
        # palm (flat, width along z), then fingers
        palm_end = J[hand] + sx * np.array([0.02, 0, 0]) * st
        palm = [(J[wri], 0.038 * lg * st, 0.018 * lg * st, None),
                (J[hand], 0.045 * lg * st, 0.016 * lg * st, f"j{hand}"),
                (palm_end, 0.044 * lg * st, 0.014 * lg * st, None)]
        bl.tube(f"palm{side}", palm, [2, 1], (0, 0, 1), _S_PALM,
                J[wri] - sx * np.array([0.01, 0, 0]) * st, palm_end + sx * np.array([0.006, 0, 0]) * st)
        la = k["arm_length"] * st
        fingers = {
            "thumb": (J[wri] + np.array([0.025 * s, -0.01, 0.035]) * st, np.array([0.6 * s, -0.1, 0.8]), 0.065),
            "index": (palm_end + np.array([0, 0, 0.03]) * st, np.array([s, 0, 0.0]), 0.075),
            "middle": (palm_end + np.array([0, 0, 0.01]) * st, np.array([s, 0, 0.0]), 0.085),
            "ring": (palm_end + np.array([0, 0, -0.01]) * st, np.array([s, 0, 0.0]), 0.08),
            "pinky": (palm_end + np.array([0, 0, -0.03]) * st, np.array([s, 0, 0.0]), 0.065),
        }
        for fname, (root, d, length) in fingers.items():
            d = d / np.linalg.norm(d)
            tip = root + d * length * la
            fs = [(root, 0.0095 * lg * st, 0.0095 * lg * st, None), (tip, 0.008 * lg * st, 0.008 * lg * st, None)]
            bl.tube(f"finger{side}", fs, [4], (0, 1, 0), _S_FINGER, root - d * 0.008 * st,
                    tip + d * 0.008 * st, name=side.lower() + fname)
    return hc, (ca, cb, cc)


def _torso_stations(J, k):
    g, st = k["girth"], k["stature"]
    waist, shw, hipw = k["waist"], k["shoulder_width"], k["hip_width"]
    bottom = J[0] - np.array([0, 0.10, 0]) * st
    upper = np.array([0.0, 0.5 * (J[13][1] + J[14][1]) + 0.01 * st, _lerp(J[9], J[12], 0.5)[2]])
    return [
        (bottom, 0.11 * g * hipw * st, 0.09 * g * st, None),
        (J[0], 0.165 * g * hipw * st, 0.11 * g * st, "j0"),
        (J[3], 0.15 * g * waist * st, 0.10 * g * waist * st, "j3"),
        (J[6], 0.145 * g * waist * st, 0.10 * g * waist * st, "j6"),
        (J[9], 0.165 * g * shw * st, 0.11 * g * st, "j9"),
        (upper, 0.17 * g * shw * st, 0.095 * g * st, None),
        (J[12], 0.06 * g * st, 0.055 * g * st, "j12"),
    ]


def _plan():
    """Ring counts of the torso and the number of padding vertices (fixed for every shape)."""
    k = {n: 1.0 for n, _ in SHAPE_PARAMS}
    bl = _Builder()
    _build_limbs(bl, skeleton(np.zeros(NUM_BETAS)), k)
    n_rings = (NUM_VERTICES - bl.n - 2) // _S_TORSO
    st = _torso_stations(skeleton(np.zeros(NUM_BETAS)), k)
    lengths = np.array([np.linalg.norm(st[i + 1][0] - st[i][0]) for i in range(len(st) - 1)])
    extra = n_rings - len(st)
    share = extra * lengths / lengths.sum()
    sub = np.floor(share).astype(int)
    sub[np.argsort(-(share - sub))[: extra - sub.sum()]] += 1  # largest remainders
    pad = NUM_VERTICES - bl.n - (n_rings * _S_TORSO + 2)
    return sub.tolist(), pad


_PLAN = None


def build_mesh(p):
    """Vertices (construction order) of the body for shape parameters ``p``; plus its structure."""
    global _PLAN
    if _PLAN is None:
        _PLAN = _plan()
    sub, pad = _PLAN
    k = dict(zip((n for n, _ in SHAPE_PARAMS), (1 + r * v for (_, r), v in zip(SHAPE_PARAMS, p))))
    J = skeleton(p)
    bl = _Builder()
    hc, head_radii = _build_limbs(bl, J, k)
    up = np.array([0.0, 1.0, 0.0])
    stations = _torso_stations(J, k)
    bl.tube("torso", stations, sub, (1, 0, 0), _S_TORSO, stations[0][0] - up * 0.03 * k["stature"],
            J[12] + up * 0.02 * k["stature"], name="torso")
    V, F, part = bl.result()
    # Pad to exactly 6890 vertices: split `pad` torso triangles, spread evenly, at their centroids.
    torso_faces = np.nonzero(part[F[:, 0]] == "torso")[0]
    pick = torso_faces[np.linspace(0, len(torso_faces) - 1, pad + 2)[1:-1].round().astype(int)]
    new = V[F[pick]].mean(1)
    ids = len(V) + np.arange(pad)
    a, b, c = F[pick].T
    F = np.concatenate([np.delete(F, pick, 0), np.stack([a, b, ids], 1), np.stack([b, c, ids], 1),
                        np.stack([c, a, ids], 1)])
    V = np.concatenate([V, new])
    part = np.concatenate([part, np.full(pad, "torso")])
    return V, F, part, bl, J, hc, head_radii


def _segment_distances(X, A, B):
    """Distance of points X [N,3] to segments A[j] -> B[j], [N, J], longer past the far end."""
    ab = B - A
    t_raw = ((X[:, None] - A[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)
    t = np.clip(t_raw, 0, 1)
    d = np.linalg.norm(X[:, None] - (A[None] + t[..., None] * ab[None]), axis=-1)
    # A point beyond a bone's far end belongs to the child bone: without this, points around a joint
    # tie between the bone ending there and the one starting there (e.g. the heel, the face).
    return d + np.maximum(t_raw - 1, 0) * np.linalg.norm(ab, axis=-1)[None]


_CANDIDATES = {
    "torso": (0, 3, 6, 9, 12, 13, 14, 1, 2, 16, 17), "head": (9, 12, 15),
    "legL": (0, 1, 4, 7), "legR": (0, 2, 5, 8), "footL": (4, 7, 10), "footR": (5, 8, 11),
    "armL": (9, 13, 16, 18, 20), "armR": (9, 14, 17, 19, 21), "palmL": (18, 20, 22),
    "palmR": (19, 21, 23), "fingerL": (20, 22), "fingerR": (21, 23),
}


def _skinning_weights(V, part, J, bl, hc, head_c):
    """Bone-proximity weights [N, 24]: soft-min over the part's candidate bones, top 4, normalised."""
    V_pts = V
    end = np.zeros((24, 3))
    for j in range(24):
        kids = np.nonzero(SMPL_PARENTS == j)[0]
        end[j] = J[kids].mean(0) if len(kids) else J[j]
    end[0], end[9] = J[3], J[12]  # pelvis and spine3 bones run up the spine
    end[15] = hc + np.array([0, head_c, 0])
    end[10] = V_pts[bl.points["footL_end"]]
    end[11] = V_pts[bl.points["footR_end"]]
    end[22] = V_pts[bl.points["lmiddle_end"]]
    end[23] = V_pts[bl.points["rmiddle_end"]]
    d = _segment_distances(V_pts, J, end)
    W = np.zeros_like(d)
    tau = 0.02  # metres: distance margin over which two bones share a vertex
    for name, cand in _CANDIDATES.items():
        rows = np.nonzero(part == name)[0]
        dc = d[np.ix_(rows, cand)]
        W[np.ix_(rows, cand)] = np.exp(-(dc - dc.min(1, keepdims=True)) / tau)
    W[W < 1e-2 * W.max(1, keepdims=True)] = 0
    order = np.argsort(-W, axis=1)
    W[np.arange(len(W))[:, None], order[:, 4:]] = 0
    return W / W.sum(1, keepdims=True)


def _vertex_normals(V, F):
    n = np.zeros_like(V)
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    for i in range(3):
        np.add.at(n, F[:, i], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _ring_row(bl, mix, n):
    """Regressor row: ``mix`` = [(ring name or vertex id, weight)], uniform inside each ring."""
    row = np.zeros(n)
    for key, w in mix:
        ids = bl.rings[key] if isinstance(key, str) else np.array([key])
        row[ids] += w / len(ids)
    return row


def build_procedural_model() -> dict:
    """Build the model in memory: ``{'model': {7 smplx arrays}, 'J_regressor_extra', 'J_regressor_h36m',
    'joints': rest joints [24, 3], 'landmarks': {smplx vertex-id name: vertex id}}``."""
    p0 = np.zeros(NUM_BETAS)
    V, F, part, bl, J, hc, (ca, cb, cc) = build_mesh(p0)
    n = len(V)
    assert n == NUM_VERTICES, n
    # shape directions: central differences of the generator (it is nearly linear in p)
    shapedirs = np.zeros((n, 3, NUM_BETAS))
    for i in range(NUM_BETAS):
        e = np.zeros(NUM_BETAS)
        e[i] = 1.0
        shapedirs[:, :, i] = (build_mesh(e)[0] - build_mesh(-e)[0]) / 2
    W = _skinning_weights(V, part, J, bl, hc, cc)
    # pose correctives: a small outward bulge where joint j's and its parent's weights overlap,
    # driven by the diagonal of (R_j - I) (<= 0, so flexing a joint pushes its skin outward)
    normals = _vertex_normals(V, F)
    posedirs = np.zeros((n, 3, 207))
    for j in range(1, 24):
        bulge = 4 * W[:, j] * W[:, SMPL_PARENTS[j]]
        for e in (0, 4, 8):
            posedirs[:, :, 9 * (j - 1) + e] = -0.01 / 3 * bulge[:, None] * normals
    J_reg = np.stack([_ring_row(bl, [(f"j{j}", 1.0)], n) for j in range(24)])
    # landmarks for smplx's vertex joints
    head_ids = np.nonzero(part == "head")[0]

    def nearest(ids, target):
        return int(ids[np.argmin(np.linalg.norm(V[ids] - target, axis=1))])

    lm = {"nose": nearest(head_ids, hc + np.array([0, -0.02, cb]))}
    for s, side in ((1, "l"), (-1, "r")):
        lm[side + "eye"] = nearest(head_ids, hc + np.array([0.032 * s, 0.012, 0.9 * cb]))
        lm[side + "ear"] = nearest(head_ids, hc + np.array([ca * s, 0.0, 0.0]))
        toe = bl.rings["toe_" + side.upper()]
        lm[side.upper() + "BigToe"] = int(toe[np.argmin(s * V[toe, 0])])
        lm[side.upper() + "SmallToe"] = int(toe[np.argmax(s * V[toe, 0])])
        lm[side.upper() + "Heel"] = bl.points[f"foot{side.upper()}_start"]
        for f in _FINGERS:
            lm[side + f] = bl.points[f"{side}{f}_end"]
    nose = lm["nose"]
    extra = np.stack([_ring_row(bl, mix, n) for mix in (
        [("j2", 0.85), ("j5", 0.15)], [("j1", 0.85), ("j4", 0.15)],          # R_Hip, L_Hip (LSP)
        [("j12", 0.75), ("j9", 0.25)], [("head_top_ring", 0.5), (bl.points["head_end"], 0.5)],
        [("j1", 0.5), ("j2", 0.5)], [("j12", 0.5), ("j9", 0.5)],             # Pelvis, Thorax_MPII
        [("j3", 0.5), ("j6", 0.5)], [("j15", 0.6), (nose, 0.4)],             # Spine_H36M, Jaw_H36M
        [("head_centre", 1.0)],                                               # Head
    )])
    h36m = np.stack([_ring_row(bl, mix, n) for mix in (
        [("j0", 1.0)], [("j1", 0.9), ("j4", 0.1)], [("j4", 1.0)], [("j7", 1.0)],
        [("j2", 0.9), ("j5", 0.1)], [("j5", 1.0)], [("j8", 1.0)], [("j3", 0.5), ("j6", 0.5)],
        [("j12", 0.75), ("j9", 0.25)], [("j15", 0.6), (nose, 0.4)],
        [("head_centre", 0.5), ("head_top_ring", 0.5)],
        [("j16", 1.0)], [("j18", 1.0)], [("j20", 1.0)], [("j17", 1.0)], [("j19", 1.0)], [("j21", 1.0)],
    )])
    # permute vertices so that smplx's hard-coded ids hold the landmarks
    order = np.full(n, -1, dtype=np.int64)
    for name, vid in SMPLX_VERTEX_IDS.items():
        order[vid] = lm[name]
    rest = np.setdiff1d(np.arange(n), order[order >= 0])
    order[order < 0] = rest
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    model = {
        "v_template": V[order],
        "shapedirs": shapedirs[order],
        "posedirs": posedirs[order],
        "J_regressor": J_reg[:, order],
        "weights": W[order],
        "kintree_table": np.stack([SMPL_PARENTS, np.arange(24)]).astype(np.int64),
        "f": inv[F],
    }
    return {"model": model, "J_regressor_extra": extra[:, order], "J_regressor_h36m": h36m[:, order],
            "joints": J, "landmarks": {k: int(inv[v]) for k, v in lm.items()}}


def write_procedural_model(out_dir, pkl: bool = False) -> dict:
    """Write the model files into ``out_dir`` (atomically, file by file); returns their paths."""
    out = Path(out_dir)
    built = build_procedural_model()
    paths = {"model": out / MODEL_FILE, "extra": out / EXTRA_FILE, "h36m": out / H36M_FILE}
    save_npz(paths["model"], built["model"])
    save_npy(paths["extra"], built["J_regressor_extra"])
    save_npy(paths["h36m"], built["J_regressor_h36m"])
    if pkl:
        paths["pkl"] = out / PKL_FILE
        save_official_style_pkl(paths["pkl"], built["model"])
    return paths


def default_cache_dir() -> Path:
    """``$ROMP_FAST_CACHE`` or ``~/.cache/romp_fast``."""
    env = os.environ.get("ROMP_FAST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "romp_fast"


def ensure_procedural_model(cache_dir=None) -> Path:
    """Folder holding the procedural model files, creating them on first use."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder / "body" / f"procedural-v{VERSION}"
    if not all((folder / f).is_file() for f in (MODEL_FILE, EXTRA_FILE, H36M_FILE)):
        write_procedural_model(folder)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m romp_fast.body.procedural", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="folder to write SMPL_NEUTRAL.npz and the regressors into")
    ap.add_argument("--pkl", action="store_true", help="also write SMPL_NEUTRAL.pkl (official chumpy layout)")
    args = ap.parse_args(argv)
    for name, path in write_procedural_model(args.out_dir, pkl=args.pkl).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
