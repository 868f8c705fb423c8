// CUDA kernel for lbs_vertex_error (romp_fast/ops/lbs_vertex_error.py): one thread per (vertex,
// sample); the sample's joint transforms and roots sit in shared memory, each thread sums its
// vertex's transform over the non-zero weights, skins both sides and takes the distance; a block
// sums its vertices (double) into partial[b, tile], reduced on the device afterwards. No atomics,
// no host synchronisation.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "../lbs_common.h"

namespace romp_fast {
namespace {

constexpr int kThreads = 256;

using lbs::Mesh;
using lbs::mesh;

template <typename T>
__device__ void load_side(const Mesh<T>& m, int64_t b, int64_t J, T* A, T* root) {
  for (int64_t i = threadIdx.x; i < J * 12; i += blockDim.x) {
    const int64_t j = i / 12, r = i % 12;
    A[i] = m.A[b * m.ab + j * m.aj + (r / 4) * m.ar + (r % 4) * m.ac];
  }
  if (threadIdx.x < 3) root[threadIdx.x] = m.root ? m.root[b * m.ob + threadIdx.x * m.oc] : T(0);
}

template <typename T>
__device__ void skin(const Mesh<T>& m, const T* A, const T* root, const T* w, int64_t ws0, int64_t ws1, int64_t J,
                     int64_t b, int64_t v, T* x) {
  T t[12] = {};
  for (int64_t j = 0; j < J; ++j) {
    const T wj = w[v * ws0 + j * ws1];
    if (wj == T(0)) continue;
    for (int r = 0; r < 12; ++r) t[r] += wj * A[j * 12 + r];
  }
  const T* p = m.rest + b * m.rb + v * m.rv;
  const T px = p[0], py = p[m.rc], pz = p[2 * m.rc];
  for (int c = 0; c < 3; ++c) x[c] = t[4 * c] * px + t[4 * c + 1] * py + t[4 * c + 2] * pz + t[4 * c + 3] - root[c];
}

template <typename T>
__global__ void lbs_error_kernel(Mesh<T> p, Mesh<T> g, const T* w, int64_t ws0, int64_t ws1, int64_t B, int64_t V,
                                 int64_t J, double* partial) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* Ap = reinterpret_cast<T*>(smem_raw);
  T* Ag = Ap + J * 12;
  T* rp = Ag + J * 12;
  T* rg = rp + 3;
  __shared__ double warp_sums[kThreads / 32];
  const int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    __syncthreads();  // the previous sample's transforms are no longer read
    load_side(p, b, J, Ap, rp);
    load_side(g, b, J, Ag, rg);
    __syncthreads();
    double d = 0;
    if (v < V) {
      T xp[3], xg[3];
      skin(p, Ap, rp, w, ws0, ws1, J, b, v, xp);
      skin(g, Ag, rg, w, ws0, ws1, J, b, v, xg);
      const T dx = xp[0] - xg[0], dy = xp[1] - xg[1], dz = xp[2] - xg[2];
      d = sqrt(double(dx * dx + dy * dy + dz * dz));
    }
    for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = d;
    __syncthreads();
    if (threadIdx.x == 0) {
      double s = 0;
      for (int i = 0; i < kThreads / 32; ++i) s += warp_sums[i];
      partial[b * gridDim.x + blockIdx.x] = s;
    }
  }
}

at::Tensor lbs_vertex_error_cuda(const at::Tensor& pred_rest, const at::Tensor& pred_transforms,
                                 const at::Tensor& target_rest, const at::Tensor& target_transforms,
                                 const at::Tensor& weights, const c10::optional<at::Tensor>& pred_root,
                                 const c10::optional<at::Tensor>& target_root) {
  check_lbs_vertex_error("lbs_vertex_error", pred_rest, pred_transforms, target_rest, target_transforms, weights,
                         pred_root, target_root);
  c10::cuda::CUDAGuard guard(pred_rest.device());
  const int64_t B = pred_rest.size(0), V = pred_rest.size(1), J = weights.size(1);
  if (B == 0) return pred_rest.new_empty({0});
  if (V == 0) return pred_rest.new_zeros({B});
  const int64_t tiles = (V + kThreads - 1) / kThreads;
  TORCH_CHECK(tiles < (int64_t(1) << 31), "lbs_vertex_error: too many vertices, ", V);
  at::Tensor partial = pred_rest.new_empty({B, tiles}, pred_rest.options().dtype(at::kDouble));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min<int64_t>(B, 65535)));
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (pred_rest.scalar_type() == at::kDouble) {
    using T = double;
    lbs_error_kernel<T><<<grid, kThreads, (2 * J * 12 + 6) * sizeof(T), stream>>>(
        mesh<T>(pred_rest, pred_transforms, pred_root), mesh<T>(target_rest, target_transforms, target_root),
        weights.const_data_ptr<T>(), weights.stride(0), weights.stride(1), B, V, J, partial.data_ptr<double>());
  } else {
    using T = float;
    lbs_error_kernel<T><<<grid, kThreads, (2 * J * 12 + 6) * sizeof(T), stream>>>(
        mesh<T>(pred_rest, pred_transforms, pred_root), mesh<T>(target_rest, target_transforms, target_root),
        weights.const_data_ptr<T>(), weights.stride(0), weights.stride(1), B, V, J, partial.data_ptr<double>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return partial.sum(1).div_(static_cast<double>(V)).to(pred_rest.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CUDA, m) { m.impl("lbs_vertex_error", &lbs_vertex_error_cuda); }

}  // namespace romp_fast
