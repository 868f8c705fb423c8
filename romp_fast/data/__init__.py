"""Data: the per-sample contract, synthetic scenes, centre-heatmap ground truth, augmentations,
the on-disk format and ROMP's mixed-dataset sampling. See ``contract`` for every key."""
from romp_fast.data.augment import Augment, Augmented, color_jitter, hflip, rotate, scale_crop
from romp_fast.data.contract import KEYS, SPEC, SampleError, collate, empty_sample, validate_sample
from romp_fast.data.disk import DiskDataset, write_split
from romp_fast.data.heatmap import (batch_center_heatmaps, center_heatmap, collision_aware_centers,
                                    gaussian2d, gaussian_radius, romp_radius)
from romp_fast.data.mixed import MixedDataset
from romp_fast.data.synthetic import SyntheticScenes

__all__ = [
    "Augment", "Augmented", "color_jitter", "hflip", "rotate", "scale_crop", "KEYS", "SPEC",
    "SampleError", "collate", "empty_sample", "validate_sample", "DiskDataset", "write_split",
    "batch_center_heatmaps", "center_heatmap", "collision_aware_centers", "gaussian2d",
    "gaussian_radius", "romp_radius", "MixedDataset", "SyntheticScenes",
]
