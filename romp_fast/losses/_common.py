"""Helpers shared by the loss terms: flattening, masking, masked means.

NaN hygiene: a masked entry may hold anything (zeros by the sample contract, but NaN predictions
in padded slots are allowed). Every term replaces masked inputs with a harmless value *before*
any non-linear op (``torch.where``, never a multiplication by the mask), so a masked NaN changes
neither the value nor the gradient. A term with nothing to supervise returns 0 whose gradient is 0.
"""
from __future__ import annotations

import torch
from torch import Tensor


def check_shape(name: str, x: Tensor, tail: tuple, what: str) -> None:
    """Raise unless ``x`` is a tensor ending in ``tail`` (``None`` = any size)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    got = tuple(x.shape[x.dim() - len(tail):]) if x.dim() >= len(tail) else None
    if got is None or any(t is not None and t != g for t, g in zip(tail, got)):
        raise ValueError(f"{name} must be {what}, got {list(x.shape)}")


def check_mask(name: str, m: Tensor, lead: torch.Size) -> Tensor:
    """A validity mask of shape ``lead`` as bool (float masks: > 0)."""
    if not isinstance(m, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(m).__name__}")
    if tuple(m.shape) != tuple(lead):
        raise ValueError(f"{name} must be {list(lead)}, got {list(m.shape)}")
    return m if m.dtype == torch.bool else m > 0


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask`` (same shape); 0 with a zero gradient if nothing is masked in."""
    n = mask.sum()
    return torch.where(mask, values, 0).sum() / n.clamp(min=1).to(values.dtype)


def safe(x: Tensor, mask: Tensor, fill: float = 0.0) -> Tensor:
    """``x`` with masked-out entries (``mask`` broadcast over trailing dims) replaced by ``fill``."""
    while mask.dim() < x.dim():
        mask = mask[..., None]
    return torch.where(mask, x, fill)
