// CUDA kernel for linear_assignment: one warp per problem, lanes over columns (the layout of
// torch-linear-assignment 0.1.0's Triton kernel, perf_peers.md 3.4). Each step of the shortest
// augmenting path search (Crouse 2016) scans the free columns in parallel and picks the next
// column with a warp arg-min; dual updates run over lanes, the path flip on lane 0. Scratch lives
// in one workspace tensor; no host synchronisation (a problem whose cost range overflows float64
// when ranking forbidden pairs is left unmatched instead of raising).
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "../lsa_common.h"

namespace romp_fast {
namespace {

constexpr int kWarps = 4;  // problems per block

struct Scratch {
  double *u, *v, *spc;
  int *path, *row4col, *col4row;
  char *SC, *SR;
};

__device__ Scratch carve(char* base, int64_t nr, int64_t nc) {
  Scratch s;
  s.u = reinterpret_cast<double*>(base);
  s.v = s.u + nr;
  s.spc = s.v + nc;
  s.path = reinterpret_cast<int*>(s.spc + nc);
  s.row4col = s.path + nc;
  s.col4row = s.row4col + nc;
  s.SC = reinterpret_cast<char*>(s.col4row + nr);
  s.SR = s.SC + nc;
  return s;
}

template <typename T>
struct View {  // the problem in rows <= cols orientation, in minimisation form
  const T* cost;
  int64_t N;
  bool tr;
  lsa::Gate gate;
  double F;
  __device__ double gated(int64_t i, int64_t j) const {
    return gate(static_cast<double>(tr ? cost[j * N + i] : cost[i * N + j]));
  }
  __device__ double operator()(int64_t i, int64_t j) const {
    const double g = gated(i, j);
    return g == g ? g : F;
  }
};

// Lexicographic (value, occupied, column) minimum across the warp.
__device__ void warp_argmin(double& val, int& busy, int& col) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double v2 = __shfl_xor_sync(0xffffffffu, val, o);
    const int b2 = __shfl_xor_sync(0xffffffffu, busy, o);
    const int c2 = __shfl_xor_sync(0xffffffffu, col, o);
    if (v2 < val || (v2 == val && (b2 < busy || (b2 == busy && c2 < col)))) val = v2, busy = b2, col = c2;
  }
}

__device__ double warp_min(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmin(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ double warp_max(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <typename T>
__global__ void lsa_kernel(const T* __restrict__ cost, int64_t B, int64_t M, int64_t N,
                           const int64_t* rcount, const int64_t* ccount, lsa::Gate gate,
                           char* ws, int64_t ws_stride, int64_t* out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (b >= B) return;  // whole warps leave together
  int64_t* o = out + b * M;
  for (int64_t r = lane; r < M; r += 32) o[r] = -1;
  const int64_t rc = rcount ? min(max(rcount[b], int64_t{0}), M) : M;
  const int64_t cc = ccount ? min(max(ccount[b], int64_t{0}), N) : N;
  if (rc == 0 || cc == 0) return;
  const bool tr = rc > cc;
  const int64_t nr = tr ? cc : rc, nc = tr ? rc : cc;
  View<T> C{cost + b * M * N, N, tr, gate, 0.0};
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t k = lane; k < nr * nc; k += 32) {
    const double g = C.gated(k / nc, k % nc);
    if (g == g) lo = fmin(lo, g), hi = fmax(hi, g);
  }
  lo = warp_min(lo);
  hi = warp_max(hi);
  C.F = lsa::forbidden_cost(lo, hi, nr);
  if (!isfinite(C.F) || !lsa::range_solvable(lo, C.F, nr)) return;
  Scratch s = carve(ws + b * ws_stride, nr, nc);
  for (int64_t j = lane; j < nc; j += 32) s.v[j] = 0, s.row4col[j] = -1;
  for (int64_t r = lane; r < nr; r += 32) s.u[r] = 0, s.col4row[r] = -1;
  __syncwarp();
  for (int64_t cur = 0; cur < nr; ++cur) {
    for (int64_t j = lane; j < nc; j += 32) s.spc[j] = INFINITY, s.path[j] = -1, s.SC[j] = 0;
    for (int64_t r = lane; r < nr; r += 32) s.SR[r] = 0;
    __syncwarp();
    int64_t i = cur, sink = -1;
    double min_val = 0;
    while (sink < 0) {
      if (lane == 0) s.SR[i] = 1;
      const double base = min_val - s.u[i];
      double best = INFINITY;
      int busy = 2, col = INT_MAX;
      for (int64_t j = lane; j < nc; j += 32) {
        if (s.SC[j]) continue;
        const double r = base + C(i, j) - s.v[j];
        if (r < s.spc[j]) s.spc[j] = r, s.path[j] = static_cast<int>(i);
        const int occ = s.row4col[j] >= 0;
        const double sj = s.spc[j];
        if (sj < best || (sj == best && (occ < busy || (occ == busy && j < col))))
          best = sj, busy = occ, col = static_cast<int>(j);
      }
      warp_argmin(best, busy, col);
      if (col == INT_MAX) break;  // unreachable with finite costs; never loop forever
      min_val = best;
      if (lane == col % 32) s.SC[col] = 1;
      const int owner = s.row4col[col];
      __syncwarp();
      if (owner < 0) {
        sink = col;
      } else {
        i = owner;
      }
    }
    if (sink < 0) return;
    if (lane == 0) s.u[cur] += min_val;
    for (int64_t r = lane; r < nr; r += 32)
      if (s.SR[r] && r != cur) s.u[r] += min_val - s.spc[s.col4row[r]];
    for (int64_t j = lane; j < nc; j += 32)
      if (s.SC[j]) s.v[j] -= min_val - s.spc[j];
    __syncwarp();
    if (lane == 0) {
      int64_t j = sink;
      while (true) {
        const int r = s.path[j];
        s.row4col[j] = r;
        const int64_t prev = s.col4row[r];
        s.col4row[r] = static_cast<int>(j);
        j = prev;
        if (r == cur) break;
      }
    }
    __syncwarp();
  }
  if (tr) {
    for (int64_t r = lane; r < rc; r += 32) {  // original row r = column r of the solved problem
      const int c = s.row4col[r];
      o[r] = (c >= 0 && C.gated(c, r) == C.gated(c, r)) ? c : -1;
    }
  } else {
    for (int64_t r = lane; r < rc; r += 32) {
      const int c = s.col4row[r];
      o[r] = (c >= 0 && C.gated(r, c) == C.gated(r, c)) ? c : -1;
    }
  }
}

at::Tensor linear_assignment_cuda(const at::Tensor& cost, const c10::optional<at::Tensor>& row_counts,
                                  const c10::optional<at::Tensor>& col_counts,
                                  c10::optional<double> max_cost, bool maximize) {
  check_assignment(cost, row_counts, col_counts);
  const int64_t B = cost.size(0), M = cost.size(1), N = cost.size(2);
  c10::cuda::CUDAGuard guard(cost.device());
  const at::Tensor c = cost.contiguous();
  at::Tensor rc = row_counts.has_value() ? row_counts->contiguous() : at::Tensor();
  at::Tensor cc = col_counts.has_value() ? col_counts->contiguous() : at::Tensor();
  at::Tensor out = cost.new_empty({B, M}, cost.options().dtype(at::kLong));
  if (B == 0 || M == 0) return out;
  const int64_t nr = std::min(M, N), nc = std::max(M, N);
  // u + v + spc (double), path + row4col + col4row (int), SC + SR (char), rounded to 16 bytes.
  const int64_t stride = ((8 * (nr + 2 * nc) + 4 * (2 * nc + nr) + nc + nr) + 15) / 16 * 16;
  at::Tensor ws = cost.new_empty({B * stride}, cost.options().dtype(at::kByte));
  const lsa::Gate gate = lsa::Gate::make(maximize, max_cost.has_value(), max_cost.value_or(0.0));
  const unsigned grid = static_cast<unsigned>((B + kWarps - 1) / kWarps);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t* rp = rc.defined() ? rc.const_data_ptr<int64_t>() : nullptr;
  const int64_t* cp = cc.defined() ? cc.const_data_ptr<int64_t>() : nullptr;
  char* wp = reinterpret_cast<char*>(ws.data_ptr<uint8_t>());
  if (cost.scalar_type() == at::kDouble) {
    lsa_kernel<double><<<grid, 32 * kWarps, 0, stream>>>(c.const_data_ptr<double>(), B, M, N, rp, cp,
                                                          gate, wp, stride, out.data_ptr<int64_t>());
  } else {
    lsa_kernel<float><<<grid, 32 * kWarps, 0, stream>>>(c.const_data_ptr<float>(), B, M, N, rp, cp,
                                                         gate, wp, stride, out.data_ptr<int64_t>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CUDA, m) { m.impl("linear_assignment", &linear_assignment_cuda); }

}  // namespace romp_fast
