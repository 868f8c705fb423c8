#!/usr/bin/env bash
# Compile-only check of every csrc/cuda/*.cu with nvcc (sm_90, C++20), for machines without a GPU
# and with a CPU-only torch. The CPU wheel lacks the generated c10/cuda/impl/cuda_cmake_macros.h, so
# a stub folder supplies it. Usage: scripts/check_cuda_compile.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-${PYTHON:-.venv/bin/python}}
NVCC=${NVCC:-nvcc}
if ! command -v "$NVCC" >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then echo "check_cuda_compile: nvcc not found" >&2; exit 1; fi
  echo "check_cuda_compile: nvcc not found, skipped"; exit 0
fi
TORCH_INC=$("$PYTHON" -c "import torch.utils.cpp_extension as c; print(' '.join(c.include_paths()))")
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$stub/c10/cuda/impl/cuda_cmake_macros.h"
incs=(-I "$stub")
for d in $TORCH_INC; do incs+=(-I "$d"); done
status=0
for f in csrc/cuda/*.cu; do
  [ -e "$f" ] || continue
  start=$(date +%s)
  if "$NVCC" -std=c++20 -arch=sm_90 -O2 -c "$f" -o /dev/null "${incs[@]}" \
      -DTORCH_EXTENSION_NAME=_C -D_GLIBCXX_USE_CXX11_ABI=1 --expt-relaxed-constexpr; then
    echo "nvcc ok: $f ($(( $(date +%s) - start )) s)"
  else
    echo "nvcc FAILED: $f" >&2; status=1
  fi
done
exit $status
