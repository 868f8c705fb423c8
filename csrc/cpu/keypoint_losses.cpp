// CPU kernels for the fused keypoint and temporal errors (romp_fast/ops/keypoint_losses.py):
// one pass per sample or track forward, one backward, no intermediate tensors, samples spread over
// at::parallel_for. Accumulation in double (masked_joint_error's float32 AVX-512 path: see there);
// zero-weight / invalid entries are skipped outright, so their coordinates may be NaN.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif
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
// Two paths. float32 with D = 2 or 3 on a CPU with AVX-512 (the training case) runs the
// hand-vectorised float kernels of namespace mje512; everything else (float64, other D, other CPUs)
// runs the portable loops below, in double. Either way a joint with weight <= 0 (or NaN)
// contributes exact zeros whatever its coordinates.
#define RF_STR_(x) #x
#define RF_SIMD_SUM(...) _Pragma(RF_STR_(omp simd reduction(+ : __VA_ARGS__)))

// One call: contiguous pred, target [B, J, D], weight [B, J], grad [B] (backward only) and the
// output ([B] forward, [B, J, D] backward) of one dtype.
struct MjeArgs {
  const void *p, *g, *w, *grad;
  void* out;
  int64_t J, D;
  bool dbl, stream;
};

// Portable path: compile-time D (2 and 3; 0 = runtime D) and selects instead of branches. GCC
// still compiles the stride-D joint loops to scalar code (about 2 ns per joint forward, 2.5-7
// backward, on the machine of bench_losses.py).
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

template <typename T, int DC>
void mje_portable_range(const MjeArgs& a, bool bwd, int64_t b0, int64_t b1) {
  const T *p = static_cast<const T*>(a.p), *g = static_cast<const T*>(a.g), *w = static_cast<const T*>(a.w);
  T* out = static_cast<T*>(a.out);
  const int64_t J = a.J, D = a.D, row = J * D;
  for (int64_t b = b0; b < b1; ++b) {
    if (bwd) {
      mje_backward<DC>(p + b * row, g + b * row, w + b * J, J, D, double(static_cast<const T*>(a.grad)[b]),
                       out + b * row);
    } else {
      mje_forward<DC>(p + b * row, g + b * row, w + b * J, J, D, out + b);
    }
  }
}

template <typename T>
void mje_portable(const MjeArgs& a, bool bwd, int64_t b0, int64_t b1) {
  if (a.D == 3) {
    mje_portable_range<T, 3>(a, bwd, b0, b1);
  } else if (a.D == 2) {
    mje_portable_range<T, 2>(a, bwd, b0, b1);
  } else {
    mje_portable_range<T, 0>(a, bwd, b0, b1);
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#define RF_MJE512 1
// AVX-512 float path, 16 joints per vector. A sample's joints are contiguous [J, D] rows, so 16
// joints are D plain 64-byte loads of pred and of target; the differences are de-interleaved into
// per-axis vectors with two-source permutes (x = elements 0, 3, 6, ... for D = 3), giving 16
// distances per sqrt, and the backward expands 16 per-joint factors back to the [16, D] layout with
// one permute per vector. Partial blocks use masked loads, whose masked-off lanes read as 0.
// Precision: differences, distances and gradients in float (a few ulp, like the eager float32
// code); a sample's sums of w |d| and of w run per lane in float (at most 16 nonnegative terms)
// and across 256-joint chunks in double, so long J costs no accuracy.
// GCC 12's _mm512_undefined_* (behind sqrt, cvt, extract) trips -Wmaybe-uninitialized once inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace mje512 {
#define RF_512 __attribute__((target("avx512f"), always_inline)) inline

// Index tables for D = 2, 3: de-interleave (step 1 picks from vectors 0-1; step 2, for D = 3,
// fills the lanes whose element lies in vector 2) and expand (lane L of output vector k belongs to
// joint (16 k + L) / D).
struct Tables {
  alignas(64) int32_t pick[3][2][16];
  alignas(64) int32_t expand[3][16];
};

constexpr Tables make_tables(int D) {
  Tables t{};
  for (int c = 0; c < D; ++c)
    for (int i = 0; i < 16; ++i) {
      const int e = D * i + c;
      t.pick[c][0][i] = e < 32 ? e : 0;
      t.pick[c][1][i] = e < 32 ? i : 16 + e - 32;
    }
  for (int k = 0; k < D; ++k)
    for (int l = 0; l < 16; ++l) t.expand[k][l] = (16 * k + l) / D;
  return t;
}

constexpr Tables kTables2 = make_tables(2), kTables3 = make_tables(3);

template <int D>
struct Perm {
  __m512i pick[D][2], expand[D];
};

template <int D>
RF_512 Perm<D> perm() {
  const Tables& t = D == 3 ? kTables3 : kTables2;
  Perm<D> P;
  for (int k = 0; k < D; ++k) {
    P.pick[k][0] = _mm512_load_si512(t.pick[k][0]);
    P.pick[k][1] = _mm512_load_si512(t.pick[k][1]);
    P.expand[k] = _mm512_load_si512(t.expand[k]);
  }
  return P;
}

RF_512 __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Squared distances of the n <= 16 joints of a block (Full: n == 16); d gets the differences in
// the [16, D] layout.
template <int D, bool Full>
RF_512 __m512 sq16(const float* p, const float* g, int64_t n, const Perm<D>& P, __m512 (&d)[D]) {
  for (int k = 0; k < D; ++k) {
    if (Full) {
      d[k] = _mm512_sub_ps(_mm512_loadu_ps(p + 16 * k), _mm512_loadu_ps(g + 16 * k));
    } else {
      const __mmask16 m = lanes(D * n - 16 * k);
      d[k] = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + 16 * k), _mm512_maskz_loadu_ps(m, g + 16 * k));
    }
  }
  __m512 r = _mm512_setzero_ps();
  for (int c = 0; c < D; ++c) {
    __m512 x = _mm512_permutex2var_ps(d[0], P.pick[c][0], d[1]);
    if (D == 3) x = _mm512_permutex2var_ps(x, P.pick[c][1], d[D - 1]);
    r = _mm512_fmadd_ps(x, x, r);
  }
  return r;
}

// Lane sums of a and of b, folded pairwise in float (four more roundings of nonnegative sums):
// fewer shuffles than widening to double first, and per sample that matters at J = 24.
RF_512 void hsum2(__m512 a, __m512 b, double& sa, double& sb) {
  __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));  // a's 4 partials in 128-bit lane 0, b's in 2
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
  sa = _mm512_cvtss_f32(v);
  sb = _mm_cvtss_f32(_mm512_extractf32x4_ps(v, 2));
}

constexpr int64_t kChunk = 256;  // joints per float partial sum (16 per lane)

template <int D, bool Full>
RF_512 void fwd_block(const float* p, const float* g, const float* w, int64_t n, const Perm<D>& P,
                      __m512& e, __m512& W) {
  __m512 d[D];
  const __m512 dist = _mm512_sqrt_ps(sq16<D, Full>(p, g, n, P, d));
  const __m512 wv = Full ? _mm512_loadu_ps(w) : _mm512_maskz_loadu_ps(lanes(n), w);
  const __mmask16 use = _mm512_cmp_ps_mask(wv, _mm512_setzero_ps(), _CMP_GT_OQ);
  e = _mm512_mask3_fmadd_ps(wv, dist, e, use);
  W = _mm512_mask_add_ps(W, use, W, wv);
}

template <int D>
__attribute__((target("avx512f"))) void forward(const MjeArgs& a, int64_t b0, int64_t b1) {
  const float *p = static_cast<const float*>(a.p), *g = static_cast<const float*>(a.g),
              *w = static_cast<const float*>(a.w);
  float* out = static_cast<float*>(a.out);
  const int64_t J = a.J;
  const Perm<D> P = perm<D>();
  for (int64_t b = b0; b < b1; ++b) {
    const float *ps = p + b * J * D, *gs = g + b * J * D, *ws = w + b * J;
    double es = 0, Ws = 0;
    for (int64_t j0 = 0; j0 < J; j0 += kChunk) {
      const int64_t j1 = std::min(J, j0 + kChunk);
      __m512 e = _mm512_setzero_ps(), W = _mm512_setzero_ps();
      int64_t j = j0;
      for (; j + 16 <= j1; j += 16) fwd_block<D, true>(ps + j * D, gs + j * D, ws + j, 16, P, e, W);
      if (j < j1) fwd_block<D, false>(ps + j * D, gs + j * D, ws + j, j1 - j, P, e, W);
      double ec, Wc;
      hsum2(e, W, ec, Wc);
      es += ec, Ws += Wc;
    }
    out[b] = Ws > 0 ? float(es / Ws) : 0.0f;
  }
}

// Backward: the gradient at joint j of sample s is c_s w_j (p_j - g_j) / |p_j - g_j| with
// c_s = grad_s / sum w. The range's joints are one flat stream of 16-joint blocks (a block may
// straddle samples: J = 24 takes 1.5 blocks per sample instead of 2), with c_s w_j staged per
// window in an L1 buffer; full blocks of a large output go out with streaming stores, which skip
// reading each destination line before writing it (19 of ~80 MB at B = 65536, J = 24).
constexpr int64_t kWindow = 2048;  // joints staged at a time (8 KB), a multiple of 16

struct SampleScale {
  int64_t s = -1;
  float c = 0;
};

// c_s w_j for the joints [lo, hi) of the flat range (0 where w_j <= 0) into cw[0, hi - lo + 16).
RF_512 void stage_scales(const float* w, const float* grad, int64_t J, int64_t lo, int64_t hi, float* cw,
                         SampleScale& last) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t s = lo / J; s * J < hi; ++s) {
    if (last.s != s) {  // a sample split by a window boundary is summed once
      const float* ws = w + s * J;
      double Ws = 0;
      for (int64_t j0 = 0; j0 < J; j0 += kChunk) {
        const int64_t j1 = std::min(J, j0 + kChunk);
        __m512 W = zero;
        for (int64_t j = j0; j < j1; j += 16) {
          const __m512 wv = _mm512_maskz_loadu_ps(lanes(j1 - j), ws + j);
          W = _mm512_mask_add_ps(W, _mm512_cmp_ps_mask(wv, zero, _CMP_GT_OQ), W, wv);
        }
        double Wc, unused;
        hsum2(W, zero, Wc, unused);
        Ws += Wc;
      }
      last.s = s;
      last.c = Ws > 0 ? float(double(grad[s]) / Ws) : 0.0f;
    }
    const __m512 c = _mm512_set1_ps(last.c);
    const int64_t j0 = std::max(lo, s * J), j1 = std::min(hi, s * J + J);
    for (int64_t j = j0; j < j1; j += 16) {
      // Whole vectors, zeros past j1 that the next sample overwrites: AMD cores store with a mask
      // slowly, but load with one at full speed.
      const __m512 wv = _mm512_maskz_loadu_ps(lanes(j1 - j), w + j);
      _mm512_storeu_ps(cw + (j - lo), _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(wv, zero, _CMP_GT_OQ), c, wv));
    }
  }
}

template <int D, bool Full>
RF_512 void bwd_block(const float* p, const float* g, const float* cw, int64_t n, const Perm<D>& P,
                      bool stream, float* o) {
  __m512 d[D];
  const __m512 dist = _mm512_sqrt_ps(sq16<D, Full>(p, g, n, P, d));
  const __m512 zero = _mm512_setzero_ps();
  const __m512 cwv = Full ? _mm512_loadu_ps(cw) : _mm512_maskz_loadu_ps(lanes(n), cw);
  // The zero subgradient at zero (or NaN) distance; masked joints have cw = 0.
  const __m512 f = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(dist, zero, _CMP_GT_OQ), cwv, dist);
  for (int k = 0; k < D; ++k) {
    // f d, and exact zeros where f = 0 (a masked joint's coordinates may be NaN or infinite).
    const __m512 fk = _mm512_permutexvar_ps(P.expand[k], f);
    const __m512 ok = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(fk, zero, _CMP_NEQ_UQ), fk, d[k]);
    if (!Full) {
      _mm512_mask_storeu_ps(o + 16 * k, lanes(D * n - 16 * k), ok);
    } else if (stream) {
      _mm512_stream_ps(o + 16 * k, ok);
    } else {
      _mm512_storeu_ps(o + 16 * k, ok);
    }
  }
}

template <int D>
__attribute__((target("avx512f"))) void backward(const MjeArgs& a, int64_t b0, int64_t b1) {
  const float *p = static_cast<const float*>(a.p), *g = static_cast<const float*>(a.g),
              *w = static_cast<const float*>(a.w), *grad = static_cast<const float*>(a.grad);
  float* out = static_cast<float*>(a.out);
  const int64_t J = a.J, k0 = b0 * J, k1 = b1 * J;
  const Perm<D> P = perm<D>();
  alignas(64) float cw[kWindow + 16];
  SampleScale last;
  // Windows [m kWindow, (m + 1) kWindow) clipped to the range, in memory order (walking them
  // backwards, to meet first what the forward left in cache, was a third slower: it defeats the
  // hardware prefetchers).
  for (int64_t m = k0 / kWindow; m * kWindow < k1; ++m) {
    const int64_t lo = std::max(k0, m * kWindow), hi = std::min(k1, (m + 1) * kWindow);
    stage_scales(w, grad, J, lo, hi, cw, last);
    int64_t k = lo;
    if (k % 16 != 0) {  // only at the start of a range: every later block starts a 64-byte line
      const int64_t n = std::min<int64_t>(16 - k % 16, hi - k);
      bwd_block<D, false>(p + k * D, g + k * D, cw, n, P, false, out + k * D);
      k += n;
    }
    const bool stream = a.stream && reinterpret_cast<uintptr_t>(out + k * D) % 64 == 0;
    for (; k + 16 <= hi; k += 16)
      bwd_block<D, true>(p + k * D, g + k * D, cw + (k - lo), 16, P, stream, out + k * D);
    if (k < hi) bwd_block<D, false>(p + k * D, g + k * D, cw + (k - lo), hi - k, P, false, out + k * D);
  }
  if (a.stream) _mm_sfence();
}

void run(const MjeArgs& a, bool bwd, int64_t b0, int64_t b1) {
  if (a.D == 3) {
    bwd ? backward<3>(a, b0, b1) : forward<3>(a, b0, b1);
  } else {
    bwd ? backward<2>(a, b0, b1) : forward<2>(a, b0, b1);
  }
}

bool supported() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}
#undef RF_512
}  // namespace mje512
#pragma GCC diagnostic pop
#endif

void mje_run(const MjeArgs& a, bool bwd, int64_t B) {
#ifdef RF_MJE512
  const bool fast = !a.dbl && (a.D == 2 || a.D == 3) && mje512::supported();
#else
  const bool fast = false;
#endif
  // Samples per task: at least ~16k joints, so that small batches run inline; at::parallel_for
  // hands each thread one contiguous range.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(a.J, 1));
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    if (fast) {
#ifdef RF_MJE512
      mje512::run(a, bwd, b0, b1);
#endif
    } else if (a.dbl) {
      mje_portable<double>(a, bwd, b0, b1);
    } else {
      mje_portable<float>(a, bwd, b0, b1);
    }
  });
}

at::Tensor masked_joint_error_cpu(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& weight) {
  check_keypoint_error("masked_joint_error", pred, target, weight, 3);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), w = weight.contiguous();
  at::Tensor out = at::empty({pred.size(0)}, pred.options());
  const MjeArgs a{p.const_data_ptr(), g.const_data_ptr(), w.const_data_ptr(), nullptr, out.data_ptr(),
                  pred.size(1), pred.size(2), pred.scalar_type() == at::kDouble, false};
  mje_run(a, false, pred.size(0));
  return out;
}

at::Tensor masked_joint_error_backward_cpu(const at::Tensor& grad, const at::Tensor& pred,
                                           const at::Tensor& target, const at::Tensor& weight) {
  check_keypoint_error("_masked_joint_error_backward", pred, target, weight, 3);
  check_grad("_masked_joint_error_backward", grad, {pred.size(0)}, pred);
  const at::Tensor p = pred.contiguous(), g = target.contiguous(), w = weight.contiguous(),
                   gr = grad.contiguous();
  at::Tensor out = at::empty_like(p);
  // Streaming stores only for a gradient that would not stay in cache anyway (B = 65536, J = 24:
  // the backward op takes 0.64 ms instead of 0.90 on 2 threads, bench_losses.py sizes).
  const bool stream = out.nbytes() > (size_t(4) << 20);
  const MjeArgs a{p.const_data_ptr(), g.const_data_ptr(), w.const_data_ptr(), gr.const_data_ptr(),
                  out.data_ptr(), pred.size(1), pred.size(2), pred.scalar_type() == at::kDouble, stream};
  mje_run(a, true, pred.size(0));
  return out;
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
