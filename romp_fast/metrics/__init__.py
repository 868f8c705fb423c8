"""Pure metric functions over tensors: per-sample values in the units of their inputs."""
from romp_fast.metrics.keypoints import mpjpe, pa_mpjpe, pve, root_align

__all__ = ["mpjpe", "pa_mpjpe", "pve", "root_align"]
