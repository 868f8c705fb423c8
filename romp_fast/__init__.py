"""romp_fast: training and evaluation engine for ROMP / BEV / TRACE-style multi-person 3D human
mesh recovery, with native (C++/CUDA) kernels for its hot paths.

Import torch before the extension: ``romp_fast.ops`` does it for you.
"""
import torch  # noqa: F401  (loads torch's OpenMP runtime before romp_fast._C)

from romp_fast import metrics, ops

__version__ = "0.1.0"
__all__ = ["metrics", "ops", "__version__"]
