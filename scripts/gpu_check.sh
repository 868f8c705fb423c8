#!/usr/bin/env bash
# The single prepared command for a lent GPU machine (DESIGN.md "GPU checks"; `make gpu-check`).
# Needs: python3 with a CUDA torch, nvcc, ninja, pytest (no package registry: nothing is fetched).
#   1. facts: nvidia-smi, torch / CUDA / nvcc versions
#   2. build romp_fast._C with CUDA for this card (TORCH_CUDA_ARCH_LIST from its capability)
#   3. romp_fast.ops.native_available('cuda')
#   4. CUDA tests: pytest -m cuda (a failure is recorded, the script goes on; modules needing
#      packages the GPU machine lacks, e.g. yaml or trackeval, fail to collect and are skipped)
#   5. benchmarks/gpu_procrustes.py, gpu_assignment.py, gpu_losses.py: GPU timings side by side;
#      their tables are printed last
# Logs and JSON go to $OUT (default ./gpu_out). Every step has a time cap so the whole run ends
# well inside 8 minutes (typically: build 1-2 min, tests < 1 min, timings 1-2 min).
# Exit status: 0 only if the build, the CUDA kernels, the tests and the timing checks all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
T0=$(date +%s)
DEADLINE=$((T0 + ${GPU_CHECK_SECONDS:-450}))

# Seconds left before the deadline, capped at $1 (at least 10, so a late step still reports).
cap() { local left=$((DEADLINE - $(date +%s))); (( left > $1 )) && left=$1; (( left < 10 )) && left=10; echo "$left"; }
step() { echo; echo "== [$(( $(date +%s) - T0 )) s] $*"; }

step "machine"
nvidia-smi || echo "nvidia-smi failed"
command -v nvcc >/dev/null && nvcc --version | tail -n 2 || echo "nvcc not on PATH"
"$PY" - <<'EOF'
import sys, torch
print(f"python {sys.version.split()[0]} ({sys.executable})")
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device {torch.cuda.get_device_name()} capability {p.major}.{p.minor}, "
          f"{p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB")
else:
    print("torch sees no CUDA device")
EOF

step "build (log: $OUT/build.log)"
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>/dev/null || true)
  if [ -z "$TORCH_CUDA_ARCH_LIST" ]; then TORCH_CUDA_ARCH_LIST="9.0"; export ROMP_FAST_FORCE_CUDA=1; fi
fi
export TORCH_CUDA_ARCH_LIST
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
echo "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS"
build=ok
if ! timeout "$(cap 240)" "$PY" -m pip install --no-index --no-build-isolation --no-deps -e . \
    >"$OUT/build.log" 2>&1; then
  # pip's editable install can fail on an old setuptools; an in-place build works from the repo root.
  echo "pip install -e failed (tail of build.log below); trying setup.py build_ext --inplace"
  tail -n 30 "$OUT/build.log"
  if ! timeout "$(cap 240)" "$PY" setup.py build_ext --inplace >>"$OUT/build.log" 2>&1; then
    build=FAILED
    tail -n 40 "$OUT/build.log"
  fi
fi
grep -A6 "romp_fast build configuration" "$OUT/build.log" | head -n 7 || true
echo "build: $build ($(( $(date +%s) - T0 )) s since start)"

step "native kernels"
native=no
if "$PY" -c "
import romp_fast.ops as o
print('build_info:', o.build_info())
raise SystemExit(0 if o.native_available('cuda') else 1)
"; then native=yes; fi
echo "native_available('cuda'): $native"

step "CUDA tests (log: $OUT/tests_cuda.log)"
tests_rc=0
timeout "$(cap 150)" "$PY" -m pytest -q tests -m cuda -p no:cacheprovider --continue-on-collection-errors \
  >"$OUT/tests_cuda.log" 2>&1 || tests_rc=$?
tail -n 25 "$OUT/tests_cuda.log"
case $tests_rc in
  0) tests="passed" ;;
  5) tests="no CUDA tests collected" ;;
  124) tests="TIMED OUT" ;;
  *) tests="FAILED (pytest exit $tests_rc)" ;;
esac

step "GPU timings (log: $OUT/gpu_procrustes.log)"
bench_rc=0
limit=$(cap 240)
budget=$(( limit > 90 ? limit - 60 : 30 ))  # stop starting new cases early enough to finish
# GPU_BENCH_ARGS: extra arguments, e.g. "--dry-run" to try this script on a machine without a GPU.
# shellcheck disable=SC2086
timeout "$limit" "$PY" benchmarks/gpu_procrustes.py --out "$OUT" --budget-s "$budget" ${GPU_BENCH_ARGS:-} \
  2>&1 | tee "$OUT/gpu_procrustes.log" || bench_rc=$?
case $bench_rc in
  0) bench="ok" ;;
  124) bench="TIMED OUT" ;;
  1) bench="FAILED: agreement or errors, see the problems line" ;;
  *) bench="FAILED (exit $bench_rc)" ;;
esac

step "GPU assignment timings (log: $OUT/gpu_assignment.log)"
lsa_rc=0
limit=$(cap 120)
# shellcheck disable=SC2086
timeout "$limit" "$PY" benchmarks/gpu_assignment.py --out "$OUT" --budget-s $(( limit > 40 ? limit - 30 : 10 )) \
  ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/gpu_assignment.log" || lsa_rc=$?
case $lsa_rc in
  0) lsa="ok" ;;
  124) lsa="TIMED OUT" ;;
  *) lsa="FAILED (exit $lsa_rc)" ;;
esac

step "GPU loss timings (log: $OUT/gpu_losses.log)"
loss_rc=0
# shellcheck disable=SC2086
timeout "$(cap 90)" "$PY" benchmarks/gpu_losses.py --out "$OUT" ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/gpu_losses.log" \
  || loss_rc=$?

step "summary"
echo "build: $build | native cuda: $native | cuda tests: $tests | timings: $bench | assignment: $lsa | losses: exit $loss_rc | total $(( $(date +%s) - T0 )) s"
grep -E "AGREEMENT FAILURE|Traceback|Error" "$OUT/gpu_procrustes.log" "$OUT/gpu_assignment.log" \
  "$OUT/gpu_losses.log" | head -n 20 || true
echo
# The timing table again, last (gpu_procrustes.py ends its output with it).
sed -n '/^### Fused losses on/,$p' "$OUT/gpu_losses.log"
sed -n '/^### Linear assignment on/,$p' "$OUT/gpu_assignment.log"
sed -n '/^### PA-MPJPE on/,$p' "$OUT/gpu_procrustes.log"
[ "$build" = ok ] && [ "$native" = yes ] && { [ "$tests_rc" = 0 ] || [ "$tests_rc" = 5 ]; } && [ "$bench_rc" = 0 ] \
  && [ "$lsa_rc" = 0 ] && [ "$loss_rc" = 0 ]
