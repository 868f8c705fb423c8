// CUDA kernels for the fused keypoint and temporal errors (romp_fast/ops/keypoint_losses.py).
// masked_joint_error: one thread per sample (J is tens of joints). temporal_difference_error and
// pairwise_displacement_error: one warp per track, lanes over frames, warp-shuffle sums. Backward
// kernels give every output element to one lane, which gathers all its contributions (the
// neighbouring stencils, or every pair partner), so no atomics are needed. Accumulation in double;
// invalid entries are skipped outright; no host synchronisation.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"

namespace romp_fast {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

__device__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ double dist(const T* p, const T* g, int64_t D) {
  double s = 0;
  for (int64_t k = 0; k < D; ++k) {
    const double d = double(p[k]) - g[k];
    s += d * d;
  }
  return sqrt(s);
}

// ------------------------------------------------------------------ masked_joint_error
template <typename T>
__global__ void mje_forward(const T* p, const T* g, const T* w, int64_t B, int64_t J, int64_t D, T* out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  double W = 0, e = 0;
  for (int64_t j = 0; j < J; ++j) {
    const double wj = w[b * J + j];
    if (!(wj > 0)) continue;
    W += wj, e += wj * dist(p + (b * J + j) * D, g + (b * J + j) * D, D);
  }
  out[b] = static_cast<T>(W > 0 ? e / W : 0.0);
}

template <typename T>
__global__ void mje_backward(const T* grad, const T* p, const T* g, const T* w, int64_t B, int64_t J,
                             int64_t D, T* out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  double W = 0;
  for (int64_t j = 0; j < J; ++j) W += w[b * J + j] > 0 ? double(w[b * J + j]) : 0.0;
  const double c = W > 0 ? double(grad[b]) / W : 0.0;
  for (int64_t j = 0; j < J; ++j) {
    const int64_t i = (b * J + j) * D;
    const double wj = w[b * J + j];
    const double n = dist(p + i, g + i, D);
    const double f = (wj > 0 && n > 0) ? c * wj / n : 0.0;
    for (int64_t k = 0; k < D; ++k) out[i + k] = static_cast<T>(f != 0 ? f * (double(p[i + k]) - g[i + k]) : 0.0);
  }
}

// ------------------------------------------------------------------ temporal_difference_error
// Stencil at frame t: order 1 -> frames (t, t+1), coefficients (-1, +1), t in [0, T-1);
// order 2 -> (t-1, t, t+1), (+1, -2, +1), t in [1, T-1).
__device__ int64_t st_first(int64_t order) { return order == 1 ? 0 : 1; }
__device__ int64_t st_offset(int64_t order, int q) { return order == 1 ? q : q - 1; }
__device__ double st_coef(int64_t order, int q) { return order == 1 ? (q == 0 ? -1.0 : 1.0) : (q == 1 ? -2.0 : 1.0); }

template <typename T>
__device__ bool st_ok(int64_t order, const T* v, int64_t t, int64_t Tn) {
  if (t < st_first(order) || t >= Tn - 1) return false;
  for (int q = 0; q <= order; ++q)
    if (!(v[t + st_offset(order, q)] > 0)) return false;
  return true;
}

// |stencil(pred - target)| at frame t, joint j.
template <typename T>
__device__ double st_norm(int64_t order, const T* p, const T* g, int64_t t, int64_t j, int64_t J, int64_t D,
                          double* d) {
  for (int64_t k = 0; k < D; ++k) d[k] = 0;
  for (int q = 0; q <= order; ++q) {
    const int64_t i = ((t + st_offset(order, q)) * J + j) * D;
    for (int64_t k = 0; k < D; ++k) d[k] += st_coef(order, q) * (double(p[i + k]) - g[i + k]);
  }
  double s = 0;
  for (int64_t k = 0; k < D; ++k) s += d[k] * d[k];
  return sqrt(s);
}

template <typename T>
__global__ void tde_forward(const T* p, const T* g, const T* v, int64_t S, int64_t Tn, int64_t J,
                            int64_t D, int64_t order, T* out) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (s >= S) return;
  const T *ps = p + s * Tn * J * D, *gs = g + s * Tn * J * D, *vs = v + s * Tn;
  double e = 0, n = 0, d[8];
  for (int64_t t = lane; t < Tn; t += 32) {
    if (!st_ok(order, vs, t, Tn)) continue;
    double et = 0;
    for (int64_t j = 0; j < J; ++j) et += st_norm(order, ps, gs, t, j, J, D, d);
    e += et / J, n += 1;
  }
  e = warp_sum(e);
  n = warp_sum(n);
  if (lane == 0) out[s] = static_cast<T>(n > 0 ? e / n : 0.0);
}

template <typename T>
__global__ void tde_backward(const T* grad, const T* p, const T* g, const T* v, int64_t S, int64_t Tn,
                             int64_t J, int64_t D, int64_t order, T* out) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (s >= S) return;
  const T *ps = p + s * Tn * J * D, *gs = g + s * Tn * J * D, *vs = v + s * Tn;
  double n = 0;
  for (int64_t t = lane; t < Tn; t += 32) n += st_ok(order, vs, t, Tn);
  n = warp_sum(n);
  const double c = n > 0 ? double(grad[s]) / (n * J) : 0.0;
  T* os = out + s * Tn * J * D;
  double d[8];
  for (int64_t f = lane; f < Tn; f += 32) {  // output frame f gathers every stencil that uses it
    for (int64_t j = 0; j < J; ++j) {
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int q = 0; q <= order; ++q) {
        const int64_t t = f - st_offset(order, q);
        if (c == 0 || !st_ok(order, vs, t, Tn)) continue;
        const double nrm = st_norm(order, ps, gs, t, j, J, D, d);
        if (!(nrm > 0)) continue;
        for (int64_t k = 0; k < D; ++k) acc[k] += c * st_coef(order, q) * d[k] / nrm;
      }
      for (int64_t k = 0; k < D; ++k) os[(f * J + j) * D + k] = static_cast<T>(acc[k]);
    }
  }
}

// ------------------------------------------------------------------ pairwise_displacement_error
template <typename T>
__global__ void pde_forward(const T* p, const T* g, const T* v, const T* scale, int64_t S, int64_t Tn,
                            int64_t D, T* out) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (s >= S) return;
  const T *ps = p + s * Tn * D, *gs = g + s * Tn * D, *vs = v + s * Tn;
  const double sc = scale[s];
  double e = 0, nv = 0;
  for (int64_t i = lane; i < Tn; i += 32) {
    if (!(vs[i] > 0)) continue;
    nv += 1;
    for (int64_t j = 0; j < Tn; ++j) {
      if (j == i || !(vs[j] > 0)) continue;
      double q = 0;
      for (int64_t k = 0; k < D; ++k) {
        const double r = sc * (double(ps[i * D + k]) - ps[j * D + k]) - (double(gs[i * D + k]) - gs[j * D + k]);
        q += r * r;
      }
      e += sqrt(q);
    }
  }
  e = warp_sum(e);
  nv = warp_sum(nv);
  const double n = nv * (nv - 1);
  if (lane == 0) out[s] = static_cast<T>(n > 0 ? e / n : 0.0);
}

template <typename T>
__global__ void pde_backward(const T* grad, const T* p, const T* g, const T* v, const T* scale, int64_t S,
                             int64_t Tn, int64_t D, T* out) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (s >= S) return;
  const T *ps = p + s * Tn * D, *gs = g + s * Tn * D, *vs = v + s * Tn;
  T* os = out + s * Tn * D;
  const double sc = scale[s];
  double nv = 0;
  for (int64_t i = lane; i < Tn; i += 32) nv += vs[i] > 0;
  nv = warp_sum(nv);
  const double n = nv * (nv - 1);
  // d/dp_i of (sum over ordered pairs |r|) / n = 2 s / n * sum_{j != i} unit(r_ij).
  const double c = n > 0 ? 2 * double(grad[s]) * sc / n : 0.0;
  for (int64_t i = lane; i < Tn; i += 32) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, r[8];
    if (vs[i] > 0 && c != 0) {
      for (int64_t j = 0; j < Tn; ++j) {
        if (j == i || !(vs[j] > 0)) continue;
        double q = 0;
        for (int64_t k = 0; k < D; ++k) {
          r[k] = sc * (double(ps[i * D + k]) - ps[j * D + k]) - (double(gs[i * D + k]) - gs[j * D + k]);
          q += r[k] * r[k];
        }
        const double nrm = sqrt(q);
        if (!(nrm > 0)) continue;
        for (int64_t k = 0; k < D; ++k) acc[k] += c * r[k] / nrm;
      }
    }
    for (int64_t k = 0; k < D; ++k) os[i * D + k] = static_cast<T>(acc[k]);
  }
}

template <class F>
void dispatch(const at::Tensor& x, const F& f) {
  if (x.scalar_type() == at::kDouble) {
    f(double{});
  } else {
    f(float{});
  }
}

unsigned blocks_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned>((items + per_block - 1) / per_block);
}

at::Tensor masked_joint_error_cuda(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& weight) {
  check_keypoint_error("masked_joint_error", pred, target, weight, 3);
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), w = weight.contiguous();
  at::Tensor out = pred.new_empty({pred.size(0)});
  if (pred.size(0) == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    mje_forward<T><<<blocks_for(pred.size(0), kThreads), kThreads, 0, stream>>>(
        p.const_data_ptr<T>(), g.const_data_ptr<T>(), w.const_data_ptr<T>(), pred.size(0), pred.size(1),
        pred.size(2), out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor masked_joint_error_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                            const at::Tensor& target, const at::Tensor& weight) {
  check_keypoint_error("_masked_joint_error_backward", pred, target, weight, 3);
  check_grad("_masked_joint_error_backward", grad, {pred.size(0)}, pred);
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), w = weight.contiguous(),
                   gr = grad.contiguous();
  at::Tensor out = p.new_empty(p.sizes());
  if (pred.size(0) == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    mje_backward<T><<<blocks_for(pred.size(0), kThreads), kThreads, 0, stream>>>(
        gr.const_data_ptr<T>(), p.const_data_ptr<T>(), g.const_data_ptr<T>(), w.const_data_ptr<T>(),
        pred.size(0), pred.size(1), pred.size(2), out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor temporal_difference_error_cuda(const at::Tensor& pred, const at::Tensor& target,
                                          const at::Tensor& valid, int64_t order) {
  check_keypoint_error("temporal_difference_error", pred, target, valid, 4);
  TORCH_CHECK(order == 1 || order == 2, "temporal_difference_error: order must be 1 or 2, got ", order);
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous();
  at::Tensor out = pred.new_empty({pred.size(0)});
  if (pred.size(0) == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    tde_forward<T><<<blocks_for(pred.size(0), kWarpsPerBlock), kThreads, 0, stream>>>(
        p.const_data_ptr<T>(), g.const_data_ptr<T>(), v.const_data_ptr<T>(), pred.size(0), pred.size(1),
        pred.size(2), pred.size(3), order, out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor temporal_difference_error_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                                   const at::Tensor& target, const at::Tensor& valid,
                                                   int64_t order) {
  check_keypoint_error("_temporal_difference_error_backward", pred, target, valid, 4);
  check_grad("_temporal_difference_error_backward", grad, {pred.size(0)}, pred);
  TORCH_CHECK(order == 1 || order == 2, "temporal_difference_error: order must be 1 or 2, got ", order);
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous(),
                   gr = grad.contiguous();
  at::Tensor out = p.new_empty(p.sizes());
  if (pred.size(0) == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    tde_backward<T><<<blocks_for(pred.size(0), kWarpsPerBlock), kThreads, 0, stream>>>(
        gr.const_data_ptr<T>(), p.const_data_ptr<T>(), g.const_data_ptr<T>(), v.const_data_ptr<T>(),
        pred.size(0), pred.size(1), pred.size(2), pred.size(3), order, out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor pairwise_displacement_error_cuda(const at::Tensor& pred, const at::Tensor& target,
                                            const at::Tensor& valid, const at::Tensor& scale) {
  check_keypoint_error("pairwise_displacement_error", pred, target, valid, 3);
  check_scale("pairwise_displacement_error", scale, pred);
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous(),
                   sc = scale.contiguous();
  at::Tensor out = pred.new_empty({pred.size(0)});
  if (pred.size(0) == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    pde_forward<T><<<blocks_for(pred.size(0), kWarpsPerBlock), kThreads, 0, stream>>>(
        p.const_data_ptr<T>(), g.const_data_ptr<T>(), v.const_data_ptr<T>(), sc.const_data_ptr<T>(),
        pred.size(0), pred.size(1), pred.size(2), out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor pairwise_displacement_error_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                                     const at::Tensor& target, const at::Tensor& valid,
                                                     const at::Tensor& scale) {
  check_keypoint_error("_pairwise_displacement_error_backward", pred, target, valid, 3);
  check_scale("_pairwise_displacement_error_backward", scale, pred);
  check_grad("_pairwise_displacement_error_backward", grad, {pred.size(0)}, pred);
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous(),
                   sc = scale.contiguous(), gr = grad.contiguous();
  at::Tensor out = p.new_empty(p.sizes());
  if (pred.size(0) == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    pde_backward<T><<<blocks_for(pred.size(0), kWarpsPerBlock), kThreads, 0, stream>>>(
        gr.const_data_ptr<T>(), p.const_data_ptr<T>(), g.const_data_ptr<T>(), v.const_data_ptr<T>(),
        sc.const_data_ptr<T>(), pred.size(0), pred.size(1), pred.size(2), out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CUDA, m) {
  m.impl("masked_joint_error", &masked_joint_error_cuda);
  m.impl("_masked_joint_error_backward", &masked_joint_error_backward_cuda);
  m.impl("temporal_difference_error", &temporal_difference_error_cuda);
  m.impl("_temporal_difference_error_backward", &temporal_difference_error_backward_cuda);
  m.impl("pairwise_displacement_error", &pairwise_displacement_error_cuda);
  m.impl("_pairwise_displacement_error_backward", &pairwise_displacement_error_backward_cuda);
}

}  // namespace romp_fast
