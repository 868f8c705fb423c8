"""``MixedDataset``: ROMP's block-partition mixing of several datasets (protocols section 1.2).

Epoch length ``L = min(max_i(len_i / p_i), batch_size * 10000)`` (``max_length`` overrides the cap).
The index range ``[0, L)`` is cut into contiguous blocks at ``round(L * cumsum(p))``; global index
``g`` in block ``i`` (start ``s_i``, length ``n_i``) reads ``floor(len_i * (g - s_i) / n_i)`` of
dataset ``i``; when the block is shorter than the dataset, a jitter ``randint(0, len_i // n_i)``
(ROMP: ``len_i // (p_i L)``) is added and clamped to ``len_i - 1`` so every item can be reached
over epochs. ROMP draws the jitter from the global ``random`` state; here it comes from
``default_rng([seed, epoch, g])``, so an index maps to the same item in every worker and rank
(call :meth:`set_epoch` for fresh jitter).

It is a plain map-style dataset: any sampler works, ``torch.utils.data.DistributedSampler``
included (each rank then sees a disjoint random share; the ratios hold exactly over the union of
the ranks and approximately on each). Probabilities not summing to 1 are normalised with a warning,
as ROMP prints one. Each sample gains ``dataset_id`` (int64 []) naming its source.
"""
from __future__ import annotations

import bisect
import warnings
from typing import Optional, Sequence

import numpy as np
import torch


class MixedDataset(torch.utils.data.Dataset):
    def __init__(self, datasets: Sequence, probabilities: Sequence[float], batch_size: int = 64,
                 max_length: Optional[int] = None, seed: int = 0):
        if len(datasets) != len(probabilities) or not datasets:
            raise ValueError(f"need one probability per dataset, got {len(datasets)} datasets and "
                             f"{len(probabilities)} probabilities")
        p = np.asarray(probabilities, dtype=np.float64)
        if (p <= 0).any():
            raise ValueError(f"probabilities must be > 0, got {p.tolist()}")
        if abs(p.sum() - 1) > 1e-6:
            warnings.warn(f"mixing probabilities sum to {p.sum():.4f}, not 1; normalising", stacklevel=2)
            p = p / p.sum()
        lens = np.array([len(d) for d in datasets], dtype=np.int64)
        if (lens == 0).any():
            raise ValueError(f"every dataset must be non-empty, got lengths {lens.tolist()}")
        cap = max_length if max_length is not None else batch_size * 10000
        self.length = int(min(np.max(lens / p), cap))
        bounds = np.round(self.length * np.cumsum(p)).astype(np.int64)
        bounds[-1] = self.length
        self.starts = np.concatenate([[0], bounds[:-1]]).astype(np.int64)
        self.block = bounds - self.starts
        if (self.block <= 0).any():
            raise ValueError(f"epoch length {self.length} leaves an empty block for probabilities {p.tolist()}")
        self.datasets, self.p, self.lens, self.seed, self.epoch = list(datasets), p, lens, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int]:
        """``(dataset_id, item)`` read for global ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length}")
        i = bisect.bisect_right(self.starts.tolist(), index) - 1
        n, size = int(self.block[i]), int(self.lens[i])
        item = size * (index - int(self.starts[i])) // n
        if n < size:
            jitter = int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, size // n + 1))
            item = min(item + jitter, size - 1)
        return i, item

    def __getitem__(self, index: int):
        i, item = self.locate(int(index))
        sample = self.datasets[i][item]
        if isinstance(sample, dict):
            sample = dict(sample)
            sample["dataset_id"] = torch.tensor(i, dtype=torch.int64)
        return sample
