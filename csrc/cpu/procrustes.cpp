// CPU kernels for the procrustes ops: one fused pass per sample (moments, closed-form solve,
// output), samples spread over at::parallel_for so torch.set_num_threads is respected.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../checks.h"
#include "../procrustes_core.h"

namespace romp_fast {
namespace {

using procrustes::Fit;
using procrustes::Sample;
using procrustes::SerialGroup;

struct Inputs {
  at::Tensor x, y, w;  // contiguous; w undefined when no weight
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
Sample<T> sample_at(const Inputs& in, int64_t b) {
  const int64_t off = b * in.N;
  return Sample<T>{in.x.const_data_ptr<T>() + 3 * off, in.y.const_data_ptr<T>() + 3 * off,
                   in.w.defined() ? in.w.const_data_ptr<T>() + off : nullptr, in.N};
}

// Samples per task: enough points per task that thread start-up (~us) stays small.
template <class F>
void for_samples(const Inputs& in, const F& body) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(in.N, 1));
  at::parallel_for(0, in.B, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> similarity_transform_cpu(
    const at::Tensor& pred, const at::Tensor& target, const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("similarity_transform", pred, target, weight);
  at::Tensor R = at::empty({in.B, 3, 3}, pred.options());
  at::Tensor s = at::empty({in.B}, pred.options());
  at::Tensor t = at::empty({in.B, 3}, pred.options());
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "similarity_transform_cpu", [&] {
    scalar_t* Rp = R.data_ptr<scalar_t>();
    scalar_t* sp = s.data_ptr<scalar_t>();
    scalar_t* tp = t.data_ptr<scalar_t>();
    for_samples(in, [&](int64_t b) {
      Fit f;
      procrustes::fit(SerialGroup{}, sample_at<scalar_t>(in, b), f);
      for (int i = 0; i < 9; ++i) Rp[9 * b + i] = static_cast<scalar_t>(f.R[i]);
      sp[b] = static_cast<scalar_t>(f.s);
      for (int d = 0; d < 3; ++d) tp[3 * b + d] = static_cast<scalar_t>(f.t[d]);
    });
  });
  return {R, s, t};
}

at::Tensor procrustes_align_cpu(const at::Tensor& pred, const at::Tensor& target,
                                const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("procrustes_align", pred, target, weight);
  at::Tensor out = at::empty({in.B, in.N, 3}, pred.options());
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "procrustes_align_cpu", [&] {
    scalar_t* op = out.data_ptr<scalar_t>();
    for_samples(in, [&](int64_t b) {
      const Sample<scalar_t> p = sample_at<scalar_t>(in, b);
      Fit f;
      procrustes::fit(SerialGroup{}, p, f);
      scalar_t* o = op + 3 * b * in.N;
      for (int64_t i = 0; i < in.N; ++i) {
        double a[3];
        procrustes::apply(f, p.x + 3 * i, a);
        for (int d = 0; d < 3; ++d) o[3 * i + d] = static_cast<scalar_t>(a[d]);
      }
    });
  });
  return out;
}

at::Tensor procrustes_align_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                         const at::Tensor& target,
                                         const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("_procrustes_align_backward", pred, target, weight);
  check_grad("_procrustes_align_backward", grad, pred.sizes(), pred);
  const at::Tensor g = grad.contiguous();
  at::Tensor out = at::empty({in.B, in.N, 3}, pred.options());
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "procrustes_align_backward_cpu", [&] {
    for_samples(in, [&](int64_t b) {
      const Sample<scalar_t> p = sample_at<scalar_t>(in, b);
      Fit f;
      procrustes::fit(SerialGroup{}, p, f);
      const procrustes::TensorGrad<scalar_t> up{g.const_data_ptr<scalar_t>() + 3 * b * in.N};
      procrustes::backward(SerialGroup{}, p, f, up, out.data_ptr<scalar_t>() + 3 * b * in.N);
    });
  });
  return out;
}

at::Tensor pa_mpjpe_cpu(const at::Tensor& pred, const at::Tensor& target,
                        const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("pa_mpjpe", pred, target, weight);
  at::Tensor out = at::empty({in.B}, pred.options());
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "pa_mpjpe_cpu", [&] {
    scalar_t* op = out.data_ptr<scalar_t>();
    for_samples(in, [&](int64_t b) {
      const Sample<scalar_t> p = sample_at<scalar_t>(in, b);
      Fit f;
      procrustes::fit(SerialGroup{}, p, f);
      op[b] = static_cast<scalar_t>(procrustes::pa_error(SerialGroup{}, p, f));
    });
  });
  return out;
}

at::Tensor pa_mpjpe_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                 const at::Tensor& target, const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("_pa_mpjpe_backward", pred, target, weight);
  check_grad("_pa_mpjpe_backward", grad, {in.B}, pred);
  const at::Tensor g = grad.contiguous();
  at::Tensor out = at::empty({in.B, in.N, 3}, pred.options());
  AT_DISPATCH_FLOATING_TYPES(pred.scalar_type(), "pa_mpjpe_backward_cpu", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    for_samples(in, [&](int64_t b) {
      const Sample<scalar_t> p = sample_at<scalar_t>(in, b);
      Fit f;
      procrustes::fit(SerialGroup{}, p, f);
      const procrustes::PaErrorGrad<scalar_t> up{f.W > 0 ? static_cast<double>(gp[b]) / f.W : 0.0};
      procrustes::backward(SerialGroup{}, p, f, up, out.data_ptr<scalar_t>() + 3 * b * in.N);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CPU, m) {
  m.impl("similarity_transform", &similarity_transform_cpu);
  m.impl("procrustes_align", &procrustes_align_cpu);
  m.impl("_procrustes_align_backward", &procrustes_align_backward_cpu);
  m.impl("pa_mpjpe", &pa_mpjpe_cpu);
  m.impl("_pa_mpjpe_backward", &pa_mpjpe_backward_cpu);
}

}  // namespace romp_fast
