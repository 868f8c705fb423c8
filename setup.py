"""Builds romp_fast._C: csrc/*.cpp + csrc/cpu/*.cpp always, csrc/cuda/*.cu when CUDA is on.

Environment switches
  ROMP_FAST_CPU_ONLY=1    never build CUDA kernels
  ROMP_FAST_FORCE_CUDA=1  build CUDA kernels with a CUDA torch and nvcc even when no GPU is visible
                          (TORCH_CUDA_ARCH_LIST then defaults to "8.0;9.0")
  TORCH_CUDA_ARCH_LIST    target architectures (torch's own variable, honoured as is)
  DEBUG=1                 -O0 -g, assertions on
Torch must already be installed (pip install --no-build-isolation); it is not a build requirement.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # pragma: no cover - message for people who forget --no-build-isolation
    sys.exit("romp_fast: torch must be installed first; build with "
             "`pip install --no-build-isolation .` (see README.md)")

ROOT = os.path.dirname(os.path.abspath(__file__))


def flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def resolve_cuda():
    """(build_cuda, reason): the one place that decides whether .cu files are compiled."""
    if flag("ROMP_FAST_CPU_ONLY"):
        return False, "ROMP_FAST_CPU_ONLY=1"
    if torch.version.cuda is None:
        return False, "torch is a CPU build"
    if cpp_extension.CUDA_HOME is None:
        return False, "no CUDA toolkit found (CUDA_HOME / nvcc)"
    if flag("ROMP_FAST_FORCE_CUDA"):
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        return True, "ROMP_FAST_FORCE_CUDA=1"
    if not torch.cuda.is_available():
        return False, "no GPU visible (set ROMP_FAST_FORCE_CUDA=1 to build anyway)"
    return True, "CUDA torch, toolkit and GPU found"


def extension():
    debug = flag("DEBUG")
    build_cuda, reason = resolve_cuda()
    rel = lambda pattern: sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))
    sources = rel("csrc/*.cpp") + rel("csrc/cpu/*.cpp")
    opt = ["-O0", "-g", "-UNDEBUG"] if debug else ["-O3", "-DNDEBUG"]
    # -fno-math-errno lets sqrt vectorise; nothing here reads errno.
    # -Wno-psabi: the 4-lane solve passes GCC vector types between always-inlined helpers only.
    cxx = opt + ["-std=c++20", "-fopenmp", "-fno-math-errno", "-fvisibility=hidden", "-Wno-psabi"]
    nvcc = (["-O0", "-g", "-G", "-UNDEBUG"] if debug else ["-O3", "-DNDEBUG"]) + [
        "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo"]
    macros, include_dirs = [], []
    try:  # numpy's C API lets the tracking kernel read per-frame arrays without the buffer protocol
        import numpy
        include_dirs.append(numpy.get_include())
        macros.append(("ROMP_FAST_NUMPY", None))
    except ImportError:
        pass
    if build_cuda:
        sources += rel("csrc/cuda/*.cu")
        macros.append(("ROMP_FAST_CUDA_VERSION", '"%s"' % torch.version.cuda))
    print("romp_fast build configuration:\n"
          f"  torch {torch.__version__} (CUDA {torch.version.cuda}), python {sys.version.split()[0]}\n"
          f"  CUDA kernels: {'yes' if build_cuda else 'no'} ({reason}); numpy C API: {'yes' if include_dirs else 'no'}\n"
          f"  TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '<torch default>')}\n"
          f"  mode: {'debug' if debug else 'release'}; cxx flags: {' '.join(cxx)}\n"
          f"  sources: {' '.join(sources)}", flush=True)
    cls = cpp_extension.CUDAExtension if build_cuda else cpp_extension.CppExtension
    return cls("romp_fast._C", sources, define_macros=macros, include_dirs=include_dirs,
               extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=["-fopenmp"])


setup(
    packages=find_packages(include=["romp_fast", "romp_fast.*"]),
    package_data={"romp_fast": ["configs/*.yaml"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
