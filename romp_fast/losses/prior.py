"""Gaussian-mixture pose prior: ROMP's ``Prior`` term (``prior_loss.MaxMixturePrior``, "merged").

Source: ROMP ``romp/lib/loss_funcs/prior_loss.py`` ``MaxMixturePrior.merged_log_likelihood``
(from SMPLify-X / SPIN) and ``calc_loss._calc_param_loss`` (``.mean() / 100``, zeroed below
``valuable_prior_loss_thresh`` = 5; TRACE: 8). Per pose::

    nll(theta) = min_k [ 1/2 (theta - mu_k)^T P_k (theta - mu_k) - log c_k ],
    c_k = w_k / ((2 pi)^(D/2) sqrt(det Sigma_k) / min_j sqrt(det Sigma_j)),  P_k = Sigma_k^-1

with D = 69 for SMPLify's ``gmm_08.pkl`` (ROMP hard-codes 69; here D = the file's mean size).
A pose shorter than D (63-d body pose) uses the leading block of mu and P, as ROMP does.
The constants are computed in log space (float64), equal to ROMP's up to rounding.

The mixture is read from ``.npz`` (``means`` [K, D], ``weights`` [K], and ``precisions`` or
``covars`` [K, D, D]) or from SMPLify/SPIN/ROMP's ``gmm_08.pkl`` (a dict of numpy arrays, Python 2
pickle) through a restricted unpickler that only admits numpy's array/dtype reconstructors.
"""
from __future__ import annotations

import io
import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from romp_fast.losses._common import check_mask, masked_mean, safe

PRIOR_DIVISOR = 100.0       # calc_loss: gmm_prior(...).mean() / 100.
PRIOR_THRESHOLD = 5.0       # calc_loss (ROMP/BEV): valuable_prior_loss_thresh = 5.
TRACE_PRIOR_THRESHOLD = 8.0  # trace calc_loss: valuable_prior_loss_thresh = 8.

_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"),
    ("builtins", "object"),
    # protocol-5 arrays and Python-3-written protocol-2 byte strings
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
}


class GMMFileError(ValueError):
    """A pose-prior file is missing, malformed or contains objects other than numpy arrays."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise GMMFileError(f"refusing to unpickle {module}.{name}: a pose-prior pickle may only "
                           f"hold numpy arrays (convert other files to .npz)")


def load_gmm(path) -> dict[str, np.ndarray]:
    """Read a mixture: ``{"means" [K, D], "precisions" [K, D, D], "weights" [K], "logdet_cov" [K]}``."""
    path = Path(path)
    if not path.is_file():
        raise GMMFileError(f"pose-prior file {path} does not exist")
    raw = path.read_bytes()
    if path.suffix == ".npz" or raw[:2] == b"PK":
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        try:
            data = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
        except GMMFileError:
            raise
        except Exception as exc:  # truncated / not a pickle
            raise GMMFileError(f"cannot read pose-prior pickle {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise GMMFileError(f"pose-prior pickle {path} must hold a dict, got {type(data).__name__}")
    missing = [k for k in ("means", "weights") if k not in data]
    if missing or not ({"precisions", "covars", "covariances"} & set(data)):
        raise GMMFileError(f"pose-prior file {path} needs means, weights and precisions or covars; "
                           f"has {sorted(data)}")
    means = np.asarray(data["means"], dtype=np.float64)
    weights = np.asarray(data["weights"], dtype=np.float64).reshape(-1)
    if "precisions" in data:
        prec = np.asarray(data["precisions"], dtype=np.float64)
        logdet_cov = -np.linalg.slogdet(prec)[1]
    else:
        cov = np.asarray(data.get("covars", data.get("covariances")), dtype=np.float64)
        prec = np.linalg.inv(cov)
        logdet_cov = np.linalg.slogdet(cov)[1]
    K, D = means.shape if means.ndim == 2 else (None, None)
    if K is None or weights.shape != (K,) or prec.shape != (K, D, D):
        raise GMMFileError(f"pose-prior file {path}: inconsistent shapes means {means.shape}, "
                           f"weights {weights.shape}, precisions {prec.shape}")
    return {"means": means, "precisions": prec, "weights": weights, "logdet_cov": logdet_cov}


class GMMPosePrior(torch.nn.Module):
    """Max-mixture pose prior; ``GMMPosePrior(None)`` is disabled (the loss is 0, one warning).

    ``forward(body_pose [N, d <= D]) -> Tensor[N]``: the merged NLL per pose (see module docstring).
    """

    _warned = False

    def __init__(self, path=None):
        super().__init__()
        self.enabled = path is not None
        if not self.enabled:
            for name in ("means", "precisions", "nll_const"):
                self.register_buffer(name, None)
            return
        g = load_gmm(path)
        D = g["means"].shape[1]
        # -log c_k = -log w_k + D/2 log(2 pi) + 1/2 logdet Sigma_k - min_j 1/2 logdet Sigma_j
        const = (-np.log(g["weights"]) + 0.5 * D * math.log(2 * math.pi)
                 + 0.5 * g["logdet_cov"] - 0.5 * g["logdet_cov"].min())
        self.register_buffer("means", torch.from_numpy(g["means"]))
        self.register_buffer("precisions", torch.from_numpy(g["precisions"]))
        self.register_buffer("nll_const", torch.from_numpy(const))

    def forward(self, body_pose: Tensor) -> Tensor:
        if not self.enabled:
            raise RuntimeError("GMMPosePrior has no mixture file; use gmm_prior_loss, which returns 0")
        d = body_pose.shape[-1]
        if d > self.means.shape[1]:
            raise ValueError(f"body_pose has {d} values but the mixture is over {self.means.shape[1]}")
        mu = self.means[:, :d].to(body_pose)
        P = self.precisions[:, :d, :d].to(body_pose)
        diff = body_pose[..., None, :] - mu  # [..., K, d]
        quad = (torch.einsum("kij,...kj->...ki", P, diff) * diff).sum(-1)
        return (0.5 * quad + self.nll_const.to(body_pose)).min(-1).values


def gmm_prior_loss(body_pose: Tensor, prior: GMMPosePrior | None, valid: Tensor | None = None,
                   threshold: float = PRIOR_THRESHOLD) -> Tensor:
    """ROMP's ``Prior`` term: ``mean_n nll(theta_n) / 100``, set to 0 when below ``threshold``.

    Args:
        body_pose (Tensor[..., d]): predicted body pose, axis-angle (63 or 69 values; no global
            orientation). ROMP applies it to every prediction; ``valid`` (Tensor[...] bool) can
            restrict it to real people (padded slots).
        prior: a :class:`GMMPosePrior`; ``None`` or a disabled one gives 0 (warned once).
        threshold: ROMP/BEV 5, TRACE ``TRACE_PRIOR_THRESHOLD`` = 8 ("only punish the high loss").
    """
    if prior is None or not prior.enabled:
        if not GMMPosePrior._warned:
            GMMPosePrior._warned = True
            warnings.warn("romp_fast.losses: no pose-prior (GMM) file given; the Prior term is off",
                          stacklevel=2)
        return torch.where(torch.zeros_like(body_pose, dtype=torch.bool), body_pose, 0).sum()
    lead = body_pose.shape[:-1]
    v = torch.ones(lead, dtype=torch.bool, device=body_pose.device) if valid is None else check_mask("valid", valid, lead)
    nll = prior(safe(body_pose, v))
    loss = masked_mean(nll, v) / PRIOR_DIVISOR
    return torch.where(loss.detach() < threshold, 0, loss)
