"""Native ops with pure-torch references.

Every op here has a C++ (CPU) and CUDA kernel registered under ``torch.ops.romp_fast`` and a
batched pure-torch reference that is its specification, fallback and test oracle. The public
wrappers pick the path in one place, :func:`_use_native`: the native kernel when ``romp_fast._C``
loaded and has a kernel for the tensor's device type, else the reference (with one
:class:`ReferenceFallbackWarning` per op and device type).
"""
from __future__ import annotations

import contextlib
import threading
import warnings

import torch

try:
    from romp_fast import _C  # registers the ops
    _LOAD_ERROR: Exception | None = None
except ImportError as exc:  # built without the extension, or a broken build
    _C = None
    _LOAD_ERROR = exc


class ReferenceFallbackWarning(UserWarning):
    """A romp_fast op ran its pure-torch reference because no native kernel was available."""


_state = threading.local()
_warned: set[tuple[str, str]] = set()


def native_available(device_type: str = "cpu") -> bool:
    """Whether native kernels for ``device_type`` ("cpu" or "cuda") were built and loaded."""
    if _C is None:
        return False
    if device_type == "cpu":
        return True
    if device_type == "cuda":
        return _C.cuda_version is not None
    return False


def build_info() -> dict:
    """Facts about the loaded extension: compiled CUDA version, SIMD level, threads, load error."""
    if _C is None:
        return {"loaded": False, "error": repr(_LOAD_ERROR)}
    return {"loaded": True, "cuda_version": _C.cuda_version, "simd": _C.simd,
            "debug": _C.debug, "num_threads": _C.num_threads()}


@contextlib.contextmanager
def use_reference():
    """Force the pure-torch references inside the block (this thread only), e.g. for A/B checks."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def _use_native(op: str, device: torch.device) -> bool:
    """The one decision point between native kernel and reference."""
    if getattr(_state, "depth", 0):
        return False
    if native_available(device.type):
        return True
    key = (op, device.type)
    if key not in _warned:
        _warned.add(key)
        why = (f"romp_fast._C failed to load: {_LOAD_ERROR}" if _C is None
               else f"romp_fast._C was built without {device.type} kernels")
        warnings.warn(f"romp_fast.ops.{op}: {why}; using the pure-torch reference",
                      ReferenceFallbackWarning, stacklevel=3)
    return False


def _as_weight(op: str, name: str, w: torch.Tensor, shape, like: torch.Tensor, shape_label: str = ""):
    """Checks a per-point weight / validity tensor and returns it in ``like``'s dtype.

    bool or non-negative float, ``shape`` on ``like``'s device. Negative and NaN values are refused
    on CPU only: on CUDA the check would synchronise, and the kernels give NaN for that sample.
    """
    if w.shape != shape:
        raise ValueError(f"{op}: {name} must be {shape_label}{list(shape)}, got {list(w.shape)}")
    if w.device != like.device:
        raise ValueError(f"{op}: {name} is on {w.device} but pred is on {like.device}")
    if w.dtype != torch.bool and not w.is_floating_point():
        raise TypeError(f"{op}: {name} must be bool or floating point, got {w.dtype}")
    checked = w.dtype == torch.bool  # a mask cannot be negative or NaN
    w = w.to(like.dtype)
    # min() propagates NaN, so one reduction catches negative and NaN weights (4x cheaper than
    # materialising the (w >= 0) mask, which cost half of masked_joint_error's forward at B = 65536)
    if not checked and w.device.type == "cpu" and w.numel() and not bool(w.min() >= 0):
        bad = (~(w >= 0)).nonzero()[0].tolist()
        raise ValueError(f"{op}: {name} must be non-negative and not NaN, got {w[tuple(bad)].item()} at {bad}")
    return w


from romp_fast.ops.keypoint_losses import (  # noqa: E402
    masked_joint_error,
    pairwise_displacement_error,
    temporal_difference_error,
)
from romp_fast.ops.lbs_vertex_error import lbs_vertex_error  # noqa: E402
from romp_fast.ops.linear_assignment import linear_assignment, solve_then_threshold  # noqa: E402
from romp_fast.ops.procrustes import (  # noqa: E402
    pa_mpjpe,
    procrustes_align,
    similarity_transform,
)

__all__ = [
    "ReferenceFallbackWarning",
    "build_info",
    "lbs_vertex_error",
    "linear_assignment",
    "masked_joint_error",
    "native_available",
    "pa_mpjpe",
    "pairwise_displacement_error",
    "procrustes_align",
    "similarity_transform",
    "solve_then_threshold",
    "temporal_difference_error",
    "use_reference",
]
