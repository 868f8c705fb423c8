// CUDA kernels for the procrustes ops. A group of G lanes owns one sample: lanes stride over the
// points (neighbouring lanes read neighbouring points, so loads coalesce), moments are all-reduced
// with shuffles inside the group, then every lane runs the small closed-form solve in double
// (fp64 is half rate on H100/H200 and the kernel is memory-bound, perf_peers.md section 5).
// G = 4 for N <= 64 (24/54 joints: 4x less redundant solve work than a warp), G = 32 above.
// No host synchronisation: invalid input becomes NaN in that sample, never an exception.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "../procrustes_core.h"

namespace romp_fast {
namespace {

using procrustes::Fit;
using procrustes::Sample;

template <int G>
struct LaneGroup {
  static constexpr int size = G;
  unsigned mask;
  int lane_;
  __device__ int lane() const { return lane_; }
  __device__ double sum(double v) const {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o, G);
    return v;
  }
};

constexpr int kThreads = 256;

template <int G>
__device__ bool make_group(int64_t B, LaneGroup<G>& g, int64_t& b) {
  const int tid = threadIdx.x;
  b = (static_cast<int64_t>(blockIdx.x) * kThreads + tid) / G;
  g.lane_ = tid % G;
  g.mask = (G == 32) ? 0xffffffffu : (((1u << G) - 1u) << ((tid % 32) / G * G));
  return b < B;  // a whole group leaves together, so the shuffle masks stay exact
}

template <typename T>
__device__ Sample<T> sample_at(const T* x, const T* y, const T* w, int64_t N, int64_t b) {
  return Sample<T>{x + 3 * b * N, y + 3 * b * N, w ? w + b * N : nullptr, N};
}

// mode 0: similarity_transform, 1: procrustes_align, 2: pa_mpjpe
template <typename T, int G, int Mode>
__global__ void forward_kernel(const T* __restrict__ x, const T* __restrict__ y,
                               const T* __restrict__ w, int64_t B, int64_t N, T* out0, T* out1,
                               T* out2) {
  LaneGroup<G> g;
  int64_t b;
  if (!make_group<G>(B, g, b)) return;
  const Sample<T> p = sample_at(x, y, w, N, b);
  Fit f;
  procrustes::fit(g, p, f);
  if (Mode == 0) {
    if (g.lane() == 0) {
      for (int i = 0; i < 9; ++i) out0[9 * b + i] = static_cast<T>(f.R[i]);
      out1[b] = static_cast<T>(f.s);
      for (int d = 0; d < 3; ++d) out2[3 * b + d] = static_cast<T>(f.t[d]);
    }
  } else if (Mode == 1) {
    T* o = out0 + 3 * b * N;
    for (int64_t i = g.lane(); i < N; i += G) {
      double a[3];
      procrustes::apply(f, p.x + 3 * i, a);
      for (int d = 0; d < 3; ++d) o[3 * i + d] = static_cast<T>(a[d]);
    }
  } else {
    const double e = procrustes::pa_error(g, p, f);
    if (g.lane() == 0) out0[b] = static_cast<T>(e);
  }
}

// pa: upstream is grad[B] of pa_mpjpe; otherwise grad[B, N, 3] of procrustes_align.
template <typename T, int G, bool Pa>
__global__ void backward_kernel(const T* __restrict__ grad, const T* __restrict__ x,
                                const T* __restrict__ y, const T* __restrict__ w, int64_t B,
                                int64_t N, T* out) {
  LaneGroup<G> g;
  int64_t b;
  if (!make_group<G>(B, g, b)) return;
  const Sample<T> p = sample_at(x, y, w, N, b);
  Fit f;
  procrustes::fit(g, p, f);
  if (Pa) {
    const procrustes::PaErrorGrad<T> up{f.W > 0 ? static_cast<double>(grad[b]) / f.W : 0.0};
    procrustes::backward(g, p, f, up, out + 3 * b * N);
  } else {
    const procrustes::TensorGrad<T> up{grad + 3 * b * N};
    procrustes::backward(g, p, f, up, out + 3 * b * N);
  }
}

struct Inputs {
  at::Tensor x, y, w;
  int64_t B, N;
};

Inputs prepare(const char* op, const at::Tensor& pred, const at::Tensor& target,
               const c10::optional<at::Tensor>& weight) {
  check_point_sets(op, pred, target, weight);
  Inputs in{pred.contiguous(), target.contiguous(), at::Tensor(), pred.size(0), pred.size(1)};
  if (weight.has_value()) in.w = weight->contiguous();
  return in;
}

template <typename T>
const T* wptr(const Inputs& in) {
  return in.w.defined() ? in.w.const_data_ptr<T>() : nullptr;
}

// Launches kernel<G> with G picked from N; F(grid, G-tag) does the launch.
template <class F>
void launch(const Inputs& in, const F& f) {
  if (in.B == 0) return;
  auto grid = [&](int G) {
    return static_cast<unsigned>((in.B * G + kThreads - 1) / kThreads);
  };
  if (in.N <= 64) {
    f(grid(4), std::integral_constant<int, 4>{});
  } else {
    f(grid(32), std::integral_constant<int, 32>{});
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class F>
void dispatch_float(at::ScalarType t, const F& f) {
  if (t == at::kDouble) {
    f(double{});
  } else {
    f(float{});
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> similarity_transform_cuda(
    const at::Tensor& pred, const at::Tensor& target, const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("similarity_transform", pred, target, weight);
  c10::cuda::CUDAGuard guard(pred.device());
  at::Tensor R = pred.new_empty({in.B, 3, 3}), s = pred.new_empty({in.B}),
             t = pred.new_empty({in.B, 3});
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_float(pred.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    launch(in, [&](unsigned grid, auto gtag) {
      forward_kernel<T, decltype(gtag)::value, 0><<<grid, kThreads, 0, stream>>>(
          in.x.const_data_ptr<T>(), in.y.const_data_ptr<T>(), wptr<T>(in), in.B, in.N,
          R.data_ptr<T>(), s.data_ptr<T>(), t.data_ptr<T>());
    });
  });
  return {R, s, t};
}

at::Tensor procrustes_align_cuda(const at::Tensor& pred, const at::Tensor& target,
                                 const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("procrustes_align", pred, target, weight);
  c10::cuda::CUDAGuard guard(pred.device());
  at::Tensor out = pred.new_empty({in.B, in.N, 3});
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_float(pred.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    launch(in, [&](unsigned grid, auto gtag) {
      forward_kernel<T, decltype(gtag)::value, 1><<<grid, kThreads, 0, stream>>>(
          in.x.const_data_ptr<T>(), in.y.const_data_ptr<T>(), wptr<T>(in), in.B, in.N,
          out.data_ptr<T>(), nullptr, nullptr);
    });
  });
  return out;
}

at::Tensor pa_mpjpe_cuda(const at::Tensor& pred, const at::Tensor& target,
                         const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("pa_mpjpe", pred, target, weight);
  c10::cuda::CUDAGuard guard(pred.device());
  at::Tensor out = pred.new_empty({in.B});
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_float(pred.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    launch(in, [&](unsigned grid, auto gtag) {
      forward_kernel<T, decltype(gtag)::value, 2><<<grid, kThreads, 0, stream>>>(
          in.x.const_data_ptr<T>(), in.y.const_data_ptr<T>(), wptr<T>(in), in.B, in.N,
          out.data_ptr<T>(), nullptr, nullptr);
    });
  });
  return out;
}

template <bool Pa>
at::Tensor backward_cuda(const char* op, const at::Tensor& grad, const at::Tensor& pred,
                         const at::Tensor& target, const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare(op, pred, target, weight);
  if (Pa) {
    check_grad(op, grad, {in.B}, pred);
  } else {
    check_grad(op, grad, pred.sizes(), pred);
  }
  c10::cuda::CUDAGuard guard(pred.device());
  const at::Tensor gc = grad.contiguous();
  at::Tensor out = pred.new_empty({in.B, in.N, 3});
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_float(pred.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    launch(in, [&](unsigned grid, auto gtag) {
      backward_kernel<T, decltype(gtag)::value, Pa><<<grid, kThreads, 0, stream>>>(
          gc.const_data_ptr<T>(), in.x.const_data_ptr<T>(), in.y.const_data_ptr<T>(),
          wptr<T>(in), in.B, in.N, out.data_ptr<T>());
    });
  });
  return out;
}

at::Tensor procrustes_align_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                          const at::Tensor& target,
                                          const c10::optional<at::Tensor>& weight) {
  return backward_cuda<false>("_procrustes_align_backward", grad, pred, target, weight);
}

at::Tensor pa_mpjpe_backward_cuda(const at::Tensor& grad, const at::Tensor& pred,
                                  const at::Tensor& target,
                                  const c10::optional<at::Tensor>& weight) {
  return backward_cuda<true>("_pa_mpjpe_backward", grad, pred, target, weight);
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CUDA, m) {
  m.impl("similarity_transform", &similarity_transform_cuda);
  m.impl("procrustes_align", &procrustes_align_cuda);
  m.impl("_procrustes_align_backward", &procrustes_align_backward_cuda);
  m.impl("pa_mpjpe", &pa_mpjpe_cuda);
  m.impl("_pa_mpjpe_backward", &pa_mpjpe_backward_cuda);
}

}  // namespace romp_fast
