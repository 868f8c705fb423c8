// CPU kernels for the procrustes ops: one fused pass per sample (moments, closed-form solve,
// output), samples spread over at::parallel_for so torch.set_num_threads is respected.
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

enum class Op { kTransform, kAlign, kAlignBackward, kError, kErrorBackward };

struct Job {
  Op op;
  const Inputs* in;
  const void* grad;    // upstream gradient (backward ops)
  void* out0;          // R, aligned points, errors or gradients
  void* out1;          // s
  void* out2;          // t
};

template <typename T>
RF_HD void run_sample(const Job& job, int64_t b, const Fit& f) {
  const Inputs& in = *job.in;
  const Sample<T> p = sample_at<T>(in, b);
  const int64_t off = 3 * b * in.N;
  switch (job.op) {
    case Op::kTransform: {
      T* R = static_cast<T*>(job.out0);
      for (int i = 0; i < 9; ++i) R[9 * b + i] = static_cast<T>(f.R[i]);
      static_cast<T*>(job.out1)[b] = static_cast<T>(f.s);
      for (int d = 0; d < 3; ++d) static_cast<T*>(job.out2)[3 * b + d] = static_cast<T>(f.t[d]);
      break;
    }
    case Op::kAlign: {
      T* o = static_cast<T*>(job.out0) + off;
      for (int64_t i = 0; i < in.N; ++i) {
        double a[3];
        procrustes::apply(f, p.x + 3 * i, a);
        for (int d = 0; d < 3; ++d) o[3 * i + d] = static_cast<T>(a[d]);
      }
      break;
    }
    case Op::kAlignBackward: {
      const procrustes::TensorGrad<T> up{static_cast<const T*>(job.grad) + off};
      procrustes::backward(SerialGroup{}, p, f, up, static_cast<T*>(job.out0) + off);
      break;
    }
    case Op::kError:
      static_cast<T*>(job.out0)[b] = static_cast<T>(procrustes::pa_error(SerialGroup{}, p, f));
      break;
    case Op::kErrorBackward: {
      const double g = static_cast<const T*>(job.grad)[b];
      const procrustes::PaErrorGrad<T> up{f.W > 0 ? g / f.W : 0.0};
      procrustes::backward(SerialGroup{}, p, f, up, static_cast<T*>(job.out0) + off);
      break;
    }
  }
}

// Samples in blocks of four: moments one by one, the rotation solves of the regular ones in
// lock-step (solve_rotation_x4), then each sample's output.
template <typename T>
RF_HD void run_block(const Job& job, int64_t b0, int64_t b1) {
  for (int64_t b = b0; b < b1; b += 4) {
    const int n = static_cast<int>(std::min<int64_t>(4, b1 - b));
    Fit f[4], pad;
    double K[4][9];
    Fit* lanes[4];
    int n_reg = 0;
    for (int l = 0; l < n; ++l)
      if (procrustes::fit_moments(SerialGroup{}, sample_at<T>(*job.in, b + l), f[l], K[n_reg]))
        lanes[n_reg++] = &f[l];
    if (n_reg > 0) {
      pad = *lanes[0];  // idle lanes redo lane 0's solve into a scratch Fit
      for (int l = n_reg; l < 4; ++l) {
        std::copy(K[0], K[0] + 9, K[l]);
        lanes[l] = &pad;
      }
      procrustes::solve_rotation_x4(K, lanes);
      for (int l = 0; l < n_reg; ++l) procrustes::fit_finish(*lanes[l]);
    }
    for (int l = 0; l < n; ++l) run_sample<T>(job, b + l, f[l]);
  }
}

// The per-sample work, compiled once per ISA level and picked at load time (GCC function
// multiversioning): AVX2+FMA roughly halves the point loops (bench_procrustes.py), while the
// default clone keeps the wheel portable.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void run_range(const Job& job, bool dbl, int64_t b0, int64_t b1) {
  if (dbl) {
    run_block<double>(job, b0, b1);
  } else {
    run_block<float>(job, b0, b1);
  }
}

void run(const Job& job) {
  const Inputs& in = *job.in;
  const bool dbl = in.x.scalar_type() == at::kDouble;
  // Samples per task: enough points per task that thread start-up (~us) stays small.
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(in.N, 1));
  at::parallel_for(0, in.B, grain, [&](int64_t b0, int64_t b1) { run_range(job, dbl, b0, b1); });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> similarity_transform_cpu(
    const at::Tensor& pred, const at::Tensor& target, const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("similarity_transform", pred, target, weight);
  at::Tensor R = at::empty({in.B, 3, 3}, pred.options());
  at::Tensor s = at::empty({in.B}, pred.options());
  at::Tensor t = at::empty({in.B, 3}, pred.options());
  run(Job{Op::kTransform, &in, nullptr, R.data_ptr(), s.data_ptr(), t.data_ptr()});
  return {R, s, t};
}

at::Tensor procrustes_align_cpu(const at::Tensor& pred, const at::Tensor& target,
                                const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("procrustes_align", pred, target, weight);
  at::Tensor out = at::empty({in.B, in.N, 3}, pred.options());
  run(Job{Op::kAlign, &in, nullptr, out.data_ptr(), nullptr, nullptr});
  return out;
}

at::Tensor procrustes_align_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                         const at::Tensor& target,
                                         const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("_procrustes_align_backward", pred, target, weight);
  check_grad("_procrustes_align_backward", grad, pred.sizes(), pred);
  const at::Tensor g = grad.contiguous();
  at::Tensor out = at::empty({in.B, in.N, 3}, pred.options());
  run(Job{Op::kAlignBackward, &in, g.const_data_ptr(), out.data_ptr(), nullptr, nullptr});
  return out;
}

at::Tensor pa_mpjpe_cpu(const at::Tensor& pred, const at::Tensor& target,
                        const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("pa_mpjpe", pred, target, weight);
  at::Tensor out = at::empty({in.B}, pred.options());
  run(Job{Op::kError, &in, nullptr, out.data_ptr(), nullptr, nullptr});
  return out;
}

at::Tensor pa_mpjpe_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                 const at::Tensor& target, const c10::optional<at::Tensor>& weight) {
  const Inputs in = prepare("_pa_mpjpe_backward", pred, target, weight);
  check_grad("_pa_mpjpe_backward", grad, {in.B}, pred);
  const at::Tensor g = grad.contiguous();
  at::Tensor out = at::empty({in.B, in.N, 3}, pred.options());
  run(Job{Op::kErrorBackward, &in, g.const_data_ptr(), out.data_ptr(), nullptr, nullptr});
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
