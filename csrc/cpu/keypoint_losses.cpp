// CPU kernels for the fused keypoint and temporal errors (romp_fast/ops/keypoint_losses.py):
// one pass per sample or track forward, one backward, no intermediate tensors, samples spread over
// at::parallel_for. Accumulation in double; zero-weight / invalid entries are skipped outright, so
// their coordinates may be NaN.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../checks.h"

namespace romp_fast {
namespace {

template <class F>
void for_items(const at::Tensor& x, int64_t work_per_item, const F& f) {
  const int64_t n = x.size(0);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(work_per_item, 1));
  at::parallel_for(0, n, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

template <class F>
void dispatch(const at::Tensor& x, const F& f) {
  if (x.scalar_type() == at::kDouble) {
    f(double{});
  } else {
    f(float{});
  }
}

// ------------------------------------------------------------------ masked_joint_error
// The joint loops are written for a compile-time D (2 and 3, the cases that matter; 0 = runtime D)
// with selects instead of branches, so that they vectorise; a masked joint contributes exact zeros
// whatever its coordinates.
#define RF_STR_(x) #x
#define RF_SIMD_SUM(...) _Pragma(RF_STR_(omp simd reduction(+ : __VA_ARGS__)))

template <int DC, typename T>
double sq_dist(const T* p, const T* g, int64_t D) {
  const int64_t n = DC > 0 ? DC : D;
  double s = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double d = double(p[k]) - g[k];
    s += d * d;
  }
  return s;
}

template <int DC, typename T>
void mje_forward(const T* pp, const T* gp, const T* wp, int64_t J, int64_t D, T* out) {
  const int64_t n = DC > 0 ? DC : D;
  double W = 0, e = 0;
  RF_SIMD_SUM(W, e)
  for (int64_t j = 0; j < J; ++j) {
    const double wj = wp[j];
    const bool use = wj > 0;
    const double dist = std::sqrt(sq_dist<DC>(pp + j * n, gp + j * n, n));
    W += use ? wj : 0.0;
    e += use ? wj * dist : 0.0;
  }
  *out = static_cast<T>(W > 0 ? e / W : 0.0);
}

template <int DC, typename T>
void mje_backward(const T* pp, const T* gp, const T* wp, int64_t J, int64_t D, double grad, T* op) {
  const int64_t n = DC > 0 ? DC : D;
  double W = 0;
  RF_SIMD_SUM(W)
  for (int64_t j = 0; j < J; ++j) W += wp[j] > 0 ? double(wp[j]) : 0.0;
  const double c = W > 0 ? grad / W : 0.0;
  for (int64_t j = 0; j < J; ++j) {
    const double wj = wp[j];
    const double dist = std::sqrt(sq_dist<DC>(pp + j * n, gp + j * n, n));
    // The zero subgradient at zero distance; a masked joint gets exactly 0.
    const double f = (wj > 0 && dist > 0) ? c * wj / dist : 0.0;
    for (int64_t k = 0; k < n; ++k) {
      const double d = double(pp[j * n + k]) - gp[j * n + k];
      op[j * n + k] = static_cast<T>(f != 0 ? f * d : 0.0);
    }
  }
}

template <class F>
void dispatch_dim(int64_t D, const F& f) {
  if (D == 3) {
    f(std::integral_constant<int, 3>{});
  } else if (D == 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

at::Tensor masked_joint_error_cpu(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& weight) {
  check_keypoint_error("masked_joint_error", pred, target, weight, 3);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), w = weight.contiguous();
  const int64_t J = pred.size(1), D = pred.size(2);
  at::Tensor out = at::empty({pred.size(0)}, pred.options());
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = p.const_data_ptr<T>(), *gp = g.const_data_ptr<T>(), *wp = w.const_data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_dim(D, [&](auto dc) {
      for_items(p, J * D, [&](int64_t b) {
        mje_forward<decltype(dc)::value>(pp + b * J * D, gp + b * J * D, wp + b * J, J, D, op + b);
      });
    });
  });
  return out;
}

at::Tensor masked_joint_error_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                           const at::Tensor& target, const at::Tensor& weight) {
  check_keypoint_error("_masked_joint_error_backward", pred, target, weight, 3);
  check_grad("_masked_joint_error_backward", grad, {pred.size(0)}, pred);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), w = weight.contiguous(),
                   gr = grad.contiguous();
  const int64_t J = pred.size(1), D = pred.size(2);
  at::Tensor out = at::empty_like(p);
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = p.const_data_ptr<T>(), *gp = g.const_data_ptr<T>(), *wp = w.const_data_ptr<T>(),
            *grp = gr.const_data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_dim(D, [&](auto dc) {
      for_items(p, J * D, [&](int64_t b) {
        mje_backward<decltype(dc)::value>(pp + b * J * D, gp + b * J * D, wp + b * J, J, D,
                                          double(grp[b]), op + b * J * D);
      });
    });
  });
  return out;
}

// ------------------------------------------------------------------ temporal_difference_error
// Frame t of the stencil: order 1 uses (t, t+1) with coefficients (-1, +1); order 2 uses
// (t-1, t, t+1) with (+1, -2, +1), t = 1 .. T-2.
struct Stencil {
  int64_t order, first, last;  // t in [first, last)
  int64_t offset(int64_t k) const { return order == 1 ? k : k - 1; }  // k-th frame relative to t
  int64_t size() const { return order + 1; }
};

Stencil stencil(int64_t order, int64_t T) {
  return order == 1 ? Stencil{1, 0, std::max<int64_t>(T - 1, 0)} : Stencil{2, 1, std::max<int64_t>(T - 1, 1)};
}

template <typename T>
bool stencil_ok(const Stencil& st, const T* v, int64_t t) {
  for (int64_t k = 0; k < st.size(); ++k)
    if (!(v[t + st.offset(k)] > 0)) return false;
  return true;
}

// Stencil residual at frame t of one track for every joint, D fixed at compile time where it
// matters; `scale` folds the backward's upstream factor into the unit vectors.
template <int O, int DC, typename T>
double stencil_sum(const T* p, const T* g, int64_t t, int64_t J, int64_t D) {
  const int64_t n = DC > 0 ? DC : D, row = J * n;
  const T *p0 = p + (O == 1 ? t : t - 1) * row, *g0 = g + (O == 1 ? t : t - 1) * row;
  double e = 0;
  RF_SIMD_SUM(e)
  for (int64_t j = 0; j < J; ++j) {
    double q = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t m = j * n + k;
      const double a = double(p0[m]) - g0[m], b = double(p0[row + m]) - g0[row + m];
      double d = b - a;  // order 1: x_{t+1} - x_t
      if (O == 2) d = double(p0[2 * row + m]) - g0[2 * row + m] - 2 * b + a;
      q += d * d;
    }
    e += std::sqrt(q);
  }
  return e;
}

template <int O, int DC, typename T>
void stencil_unit(const T* p, const T* g, int64_t t, int64_t J, int64_t D, double c, double* u) {
  const int64_t n = DC > 0 ? DC : D, row = J * n;
  const T *p0 = p + (O == 1 ? t : t - 1) * row, *g0 = g + (O == 1 ? t : t - 1) * row;
  for (int64_t j = 0; j < J; ++j) {
    double d[8], q = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t m = j * n + k;
      const double a = double(p0[m]) - g0[m], b = double(p0[row + m]) - g0[row + m];
      d[k] = O == 1 ? b - a : double(p0[2 * row + m]) - g0[2 * row + m] - 2 * b + a;
      q += d[k] * d[k];
    }
    q = std::sqrt(q);
    const double f = q > 0 ? c / q : 0.0;  // the zero subgradient at zero residual
    for (int64_t k = 0; k < n; ++k) u[j * n + k] = f * d[k];
  }
}

template <class F>
void dispatch_order(int64_t order, int64_t D, const F& f) {
  if (order == 1) {
    dispatch_dim(D, [&](auto dc) { f(std::integral_constant<int, 1>{}, dc); });
  } else {
    dispatch_dim(D, [&](auto dc) { f(std::integral_constant<int, 2>{}, dc); });
  }
}

at::Tensor temporal_difference_error_cpu(const at::Tensor& pred, const at::Tensor& target,
                                         const at::Tensor& valid, int64_t order) {
  check_keypoint_error("temporal_difference_error", pred, target, valid, 4);
  TORCH_CHECK(order == 1 || order == 2, "temporal_difference_error: order must be 1 or 2, got ", order);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous();
  const int64_t T_ = pred.size(1), J = pred.size(2), D = pred.size(3);
  const Stencil st = stencil(order, T_);
  at::Tensor out = at::empty({pred.size(0)}, pred.options());
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = p.const_data_ptr<T>(), *gp = g.const_data_ptr<T>(), *vp = v.const_data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_order(order, D, [&](auto oc, auto dc) {
      constexpr int O = decltype(oc)::value, DC = decltype(dc)::value;
      for_items(p, T_ * J * D, [&](int64_t s) {
        const T *ps = pp + s * T_ * J * D, *gs = gp + s * T_ * J * D, *vs = vp + s * T_;
        double e = 0;
        int64_t n = 0;
        for (int64_t t = st.first; t < st.last; ++t) {
          if (!stencil_ok(st, vs, t)) continue;
          e += stencil_sum<O, DC>(ps, gs, t, J, D) / J, ++n;
        }
        op[s] = static_cast<T>(n > 0 ? e / n : 0.0);
      });
    });
  });
  return out;
}

at::Tensor temporal_difference_error_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                                  const at::Tensor& target, const at::Tensor& valid,
                                                  int64_t order) {
  check_keypoint_error("_temporal_difference_error_backward", pred, target, valid, 4);
  check_grad("_temporal_difference_error_backward", grad, {pred.size(0)}, pred);
  TORCH_CHECK(order == 1 || order == 2, "temporal_difference_error: order must be 1 or 2, got ", order);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous(),
                   gr = grad.contiguous();
  const int64_t T_ = pred.size(1), J = pred.size(2), D = pred.size(3), row = J * D;
  const Stencil st = stencil(order, T_);
  at::Tensor out = at::empty_like(p);
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = p.const_data_ptr<T>(), *gp = g.const_data_ptr<T>(), *vp = v.const_data_ptr<T>(),
            *grp = gr.const_data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_order(order, D, [&](auto oc, auto dc) {
      constexpr int O = decltype(oc)::value, DC = decltype(dc)::value;
      at::parallel_for(0, p.size(0), std::max<int64_t>(1, 16384 / std::max<int64_t>(T_ * row, 1)),
                       [&](int64_t s0, int64_t s1) {
        // u[t] = c * unit residual of the stencil at t (0 where invalid); frame f then gathers
        // sum_q coef_q u[f - offset_q]: no scatter, vectorisable.
        std::vector<double> u(T_ * row);
        for (int64_t s = s0; s < s1; ++s) {
          const T *ps = pp + s * T_ * row, *gs = gp + s * T_ * row, *vs = vp + s * T_;
          T* os = op + s * T_ * row;
          int64_t n = 0;
          for (int64_t t = st.first; t < st.last; ++t) n += stencil_ok(st, vs, t);
          std::fill(u.begin(), u.end(), 0.0);
          if (n > 0) {
            const double c = double(grp[s]) / (double(n) * J);
            for (int64_t t = st.first; t < st.last; ++t)
              if (stencil_ok(st, vs, t)) stencil_unit<O, DC>(ps, gs, t, J, D, c, u.data() + t * row);
          }
          for (int64_t f = 0; f < T_; ++f) {
            T* o = os + f * row;
            const double* un = f + (O == 1 ? 0 : 1) < T_ ? u.data() + (f + (O == 1 ? 0 : 1)) * row : nullptr;
            const double* uc = O == 2 ? u.data() + f * row : nullptr;
            const double* up = f - 1 >= 0 ? u.data() + (f - 1) * row : nullptr;
            for (int64_t m = 0; m < row; ++m) {
              // order 1: frame f is x_{t+1} of stencil f-1 (+1) and x_t of stencil f (-1);
              // order 2: x_{t+1} of f-1 (+1), x_t of f (-2), x_{t-1} of f+1 (+1).
              double a = up ? up[m] : 0.0;
              a += O == 1 ? -(un ? un[m] : 0.0) : -2 * uc[m] + (un ? un[m] : 0.0);
              o[m] = static_cast<T>(a);
            }
          }
        }
      });
    });
  });
  return out;
}

// ------------------------------------------------------------------ pairwise_displacement_error
// Each unordered pair {i, j} stands for both ordered pairs: |r_ij| = |r_ji| with
// r_ij = s (p_i - p_j) - (g_i - g_j), so the T x T sum costs T (T - 1) / 2 distances.
// Sum over j > i of |s (p_i - p_j) - (g_i - g_j)| for the valid j, in a loop the compiler
// vectorises (selects for validity, D fixed at 3 where it matters).
template <int DC, typename T>
double pair_row_sum(const T* p, const T* g, const T* v, int64_t i, int64_t Tn, int64_t D, double sc) {
  const int64_t n = DC > 0 ? DC : D;
  double pi[8], gi[8];
  for (int64_t k = 0; k < n; ++k) pi[k] = sc * double(p[i * n + k]), gi[k] = g[i * n + k];
  double e = 0;
  RF_SIMD_SUM(e)
  for (int64_t j = i + 1; j < Tn; ++j) {
    double q = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double r = pi[k] - sc * double(p[j * n + k]) - (gi[k] - double(g[j * n + k]));
      q += r * r;
    }
    const double d = std::sqrt(q);
    e += v[j] > 0 ? d : 0.0;
  }
  return e;
}

at::Tensor pairwise_displacement_error_cpu(const at::Tensor& pred, const at::Tensor& target,
                                           const at::Tensor& valid, const at::Tensor& scale) {
  check_keypoint_error("pairwise_displacement_error", pred, target, valid, 3);
  check_scale("pairwise_displacement_error", scale, pred);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous(),
                   sc = scale.contiguous();
  const int64_t T_ = pred.size(1), D = pred.size(2);
  at::Tensor out = at::empty({pred.size(0)}, pred.options());
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = p.const_data_ptr<T>(), *gp = g.const_data_ptr<T>(), *vp = v.const_data_ptr<T>(),
            *sp = sc.const_data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_dim(D, [&](auto dc) {
      constexpr int DC = decltype(dc)::value;
      for_items(p, T_ * T_ * D / 2, [&](int64_t s) {
        const T *ps = pp + s * T_ * D, *gs = gp + s * T_ * D, *vs = vp + s * T_;
        double e = 0;
        int64_t nv = 0;
        for (int64_t i = 0; i < T_; ++i) {
          if (!(vs[i] > 0)) continue;
          ++nv;
          e += pair_row_sum<DC>(ps, gs, vs, i, T_, D, double(sp[s]));
        }
        const double n = double(nv) * double(nv - 1);
        op[s] = static_cast<T>(n > 0 ? 2 * e / n : 0.0);
      });
    });
  });
  return out;
}

// Gradient of p_i: 2 s / n * sum over valid j != i of unit(r_ij); each lane of the j loop adds its
// own term, so the loop vectorises (no scatter to p_j: row i gathers all its partners).
template <int DC, typename T>
void pair_row_grad(const T* p, const T* g, const T* v, int64_t i, int64_t Tn, int64_t D, double sc,
                   double c, T* out) {
  const int64_t n = DC > 0 ? DC : D;
  double pi[8], gi[8], acc[8];
  for (int64_t k = 0; k < n; ++k) pi[k] = sc * double(p[i * n + k]), gi[k] = g[i * n + k], acc[k] = 0;
  double a0 = 0, a1 = 0, a2 = 0;
  if (DC == 3) {
    RF_SIMD_SUM(a0, a1, a2)
    for (int64_t j = 0; j < Tn; ++j) {
      const double r0 = pi[0] - sc * double(p[j * 3]) - (gi[0] - double(g[j * 3]));
      const double r1 = pi[1] - sc * double(p[j * 3 + 1]) - (gi[1] - double(g[j * 3 + 1]));
      const double r2 = pi[2] - sc * double(p[j * 3 + 2]) - (gi[2] - double(g[j * 3 + 2]));
      const double q = std::sqrt(r0 * r0 + r1 * r1 + r2 * r2);
      const bool ok = j != i && v[j] > 0 && q > 0;  // selects: an invalid frame's NaN adds 0
      const double f = ok ? 1.0 / q : 0.0;
      a0 += ok ? f * r0 : 0.0, a1 += ok ? f * r1 : 0.0, a2 += ok ? f * r2 : 0.0;
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2;
  } else {
    double r[8];
    for (int64_t j = 0; j < Tn; ++j) {
      if (j == i || !(v[j] > 0)) continue;
      double q = 0;
      for (int64_t k = 0; k < n; ++k) {
        r[k] = pi[k] - sc * double(p[j * n + k]) - (gi[k] - double(g[j * n + k]));
        q += r[k] * r[k];
      }
      q = std::sqrt(q);
      if (!(q > 0)) continue;
      for (int64_t k = 0; k < n; ++k) acc[k] += r[k] / q;
    }
  }
  for (int64_t k = 0; k < n; ++k) out[i * n + k] = static_cast<T>(c * acc[k]);
}

at::Tensor pairwise_displacement_error_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                                    const at::Tensor& target, const at::Tensor& valid,
                                                    const at::Tensor& scale) {
  check_keypoint_error("_pairwise_displacement_error_backward", pred, target, valid, 3);
  check_scale("_pairwise_displacement_error_backward", scale, pred);
  check_grad("_pairwise_displacement_error_backward", grad, {pred.size(0)}, pred);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), v = valid.contiguous(),
                   sc = scale.contiguous(), gr = grad.contiguous();
  const int64_t T_ = pred.size(1), D = pred.size(2);
  at::Tensor out = at::zeros_like(p);
  dispatch(pred, [&](auto tag) {
    using T = decltype(tag);
    const T *pp = p.const_data_ptr<T>(), *gp = g.const_data_ptr<T>(), *vp = v.const_data_ptr<T>(),
            *sp = sc.const_data_ptr<T>(), *grp = gr.const_data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_dim(D, [&](auto dc) {
      constexpr int DC = decltype(dc)::value;
      for_items(p, T_ * T_ * D, [&](int64_t s) {
        const T *ps = pp + s * T_ * D, *gs = gp + s * T_ * D, *vs = vp + s * T_;
        int64_t nv = 0;
        for (int64_t i = 0; i < T_; ++i) nv += vs[i] > 0;
        const double n = double(nv) * double(nv - 1);
        if (!(n > 0)) return;
        const double c = 2 * double(grp[s]) * double(sp[s]) / n;
        for (int64_t i = 0; i < T_; ++i)
          if (vs[i] > 0) pair_row_grad<DC>(ps, gs, vs, i, T_, D, double(sp[s]), c, op + s * T_ * D);
      });
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CPU, m) {
  m.impl("masked_joint_error", &masked_joint_error_cpu);
  m.impl("_masked_joint_error_backward", &masked_joint_error_backward_cpu);
  m.impl("temporal_difference_error", &temporal_difference_error_cpu);
  m.impl("_temporal_difference_error_backward", &temporal_difference_error_backward_cpu);
  m.impl("pairwise_displacement_error", &pairwise_displacement_error_cpu);
  m.impl("_pairwise_displacement_error_backward", &pairwise_displacement_error_backward_cpu);
}

}  // namespace romp_fast
