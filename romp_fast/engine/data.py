"""Datasets and loaders for training and evaluation, with a sampler that resumes exactly.

Training loops by iteration, so the sampler is an endless stream: epoch ``e`` is a permutation
drawn from ``seed + e``; the global batch of iteration ``i`` is the slice
``[i * world * B, (i + 1) * world * B)`` of that stream and rank ``r`` takes its ``r``-th block of
``B``. So one process with batch ``2B`` sees exactly the samples that two processes with ``B``
see together, and resuming at iteration ``i`` only needs ``i`` (the stream is a pure function of
seed, batch size and world size). The tail of each epoch that does not fill a global batch is
dropped (``drop_last``), as ROMP's training loader does.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator, Mapping

import torch

from romp_fast.data import DiskDataset, SyntheticScenes, batch_center_heatmaps, collate


def collate_with_heatmaps(samples, map_size: int):
    """``collate`` plus the ground-truth centre heatmaps ``center_heatmap [B, 1, S, S]``, built in the
    loader's worker processes instead of the training step (the criterion uses them as given)."""
    batch = collate(samples)
    batch["center_heatmap"] = batch_center_heatmaps(batch, map_size)
    return batch


class ResumableSampler(torch.utils.data.Sampler):
    def __init__(self, length: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, start_iter: int = 0):
        global_batch = batch_size * world_size
        if length < global_batch:
            raise ValueError(f"dataset has {length} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} processes)")
        self.length, self.batch_size, self.rank, self.world = length, batch_size, rank, world_size
        self.seed, self.shuffle, self.start_iter = seed, shuffle, start_iter
        self.iters_per_epoch = length // global_batch

    def position(self, iteration: int) -> tuple[int, int]:
        """(epoch, iteration within the epoch) of global iteration ``iteration``."""
        return divmod(iteration, self.iters_per_epoch)

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.length)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.length, generator=g)

    def __iter__(self) -> Iterator[int]:
        epoch, it = self.position(self.start_iter)
        gb = self.batch_size * self.world
        while True:
            order = self._order(epoch)
            for i in range(it, self.iters_per_epoch):
                start = i * gb + self.rank * self.batch_size
                yield from order[start:start + self.batch_size].tolist()
            epoch, it = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only needs this for its own len(), never called here
        raise TypeError("ResumableSampler is endless")


def build_dataset(spec: Mapping, image_size: int, body_model=None):
    """A dataset from a ``data.train`` / ``data.val`` config section."""
    if spec["kind"] == "synthetic":
        return SyntheticScenes(int(spec["length"]), image_size=image_size, max_person=int(spec["max_person"]),
                               max_people=spec.get("max_people"), seed=int(spec["seed"]), body_model=body_model)
    root = Path(spec["root"])
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist (data.*.root)")
    ds = DiskDataset(root, split=spec.get("split", "train"))
    if len(ds) == 0:
        raise ValueError(f"data folder {root} has no samples in split {spec.get('split')!r}")
    return ds


def train_loader(dataset, batch_size: int, *, seed: int, rank: int, world_size: int, start_iter: int,
                 num_workers: int, map_size: int | None = None) -> torch.utils.data.DataLoader:
    sampler = ResumableSampler(len(dataset), batch_size, rank=rank, world_size=world_size, seed=seed,
                               start_iter=start_iter)
    # An explicit generator keeps the loader from drawing on the global RNG (exact resume).
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        collate_fn=collate if map_size is None else functools.partial(collate_with_heatmaps, map_size=map_size),
        drop_last=True, persistent_workers=False, generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if num_workers > 0 else None)


def eval_loader(dataset, batch_size: int, *, rank: int = 0, world_size: int = 1, num_workers: int = 0):
    """Rank ``r`` scores samples ``r, r + world, ...`` (no padding: every sample counted once)."""
    indices = list(range(rank, len(dataset), world_size))
    sub = torch.utils.data.Subset(dataset, indices)
    return torch.utils.data.DataLoader(sub, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                       collate_fn=collate)
