// Per-sample weighted similarity (Procrustes) alignment, shared by the CPU and CUDA kernels.
//
// Problem: minimise sum_n w_n |s R x_n + t - y_n|^2 over rotations R (det +1), scale s, shift t
// (Umeyama 1991). With centred points xc, yc and K = sum_n w_n xc_n yc_n^T, the optimum rotation
// maximises tr(R K). Horn (1987) writes tr(R(q) K) = q^T N(K) q for a unit quaternion q with a
// traceless symmetric 4x4 N, so R comes from N's top eigenvector and is always proper: the
// reflection fix of the SVD route is implicit. lambda_max = tr(R K) and s = lambda_max / var(x).
//
// Solve (all in double, whatever the input dtype):
//   1. lambda_max by Newton on the characteristic quartic l^4 + c2 l^2 + c1 l + c0 with
//      c2 = -2 |K|_F^2, c1 = -8 det K, c0 = det N (QCP, Theobald 2005), started from the upper bound
//      sqrt(3) |K|_F >= sum of singular values, so it converges monotonically from above;
//   2. the eigenvector from the best-conditioned column of adj(N - lambda I), refined once with the
//      Rayleigh quotient;
//   3. when that column is tiny (top eigenvalue (near) repeated: collinear points, K = 0), a cyclic
//      Jacobi eigen-solve of N instead, which always terminates and picks the lowest index on ties.
//
// The group abstraction G lets one code path serve one thread per sample (CPU: G = SerialGroup) and
// a few CUDA lanes per sample (lanes stride over points, G::sum is a shuffle all-reduce; every lane
// then runs the small solve redundantly, so no lane diverges).
//
// Degenerate-input convention (documented in romp_fast/ops/procrustes.py, tested):
//   invalid  a weight negative or NaN, or a weighted point not finite
//                                               -> R, s, t and all outputs NaN for that sample
//   empty    no point with weight > 0            -> identity transform R = I, s = 1, t = 0
//   collapsed var(pred) <= 1e-20 * sum w|pred|^2 -> R = I, s = 0, t = centroid(target)
//   regular  everything else (collinear included: the rotation about the line is arbitrary but
//            deterministic; aligned points and errors are exact)
// Points with weight 0 are ignored entirely, even when their coordinates are not finite.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define RF_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Forced inlining lets the CPU file's per-ISA clones (target_clones) compile all of this for AVX2.
#define RF_HD inline __attribute__((always_inline))
#else
#define RF_HD inline
#endif

namespace romp_fast {
namespace procrustes {

enum Kind : int { kRegular = 0, kEmpty = 1, kCollapsed = 2, kInvalid = 3 };

// Relative variance below which the prediction counts as collapsed: centroid rounding of an exactly
// collapsed fp32/fp64 cloud leaves ~1e-32 relative variance, real spreads are >= 1e-14 (fp32 ulp^2).
constexpr double kCollapsedRelVar = 1e-20;
// Adjugate column accepted when |C_jj| >= kAdjRel |K|_F^3; rounding in the cofactors is ~1e-13 |K|_F^3,
// so the eigenvector is then good to ~1e-10 relative; below it the Jacobi solve is used.
constexpr double kAdjRel = 1e-3;
// Tikhonov term on the eigen-gaps in the backward pass, relative to sqrt(var x var y): gradients are
// exact to ~1e-8 / (relative gap) and stay finite (bounded by ~1e8 / scale) at exact degeneracy.
constexpr double kGradEps = 1e-8;

struct SerialGroup {
  static constexpr int size = 1;
  RF_HD int lane() const { return 0; }
  RF_HD double sum(double v) const { return v; }
};

template <typename T>
struct Sample {
  const T* x;  // [n, 3] prediction
  const T* y;  // [n, 3] target
  const T* w;  // [n] weights or nullptr (all ones)
  int64_t n;
  RF_HD double weight(int64_t i) const { return w ? static_cast<double>(w[i]) : 1.0; }
};

struct Fit {
  double mx[3], my[3];  // weighted centroids
  double R[9];          // row-major rotation
  double s, t[3];
  double W, vx, vy;     // total weight, sum w |xc|^2, sum w |yc|^2
  double lam;           // tr(R K)
  double q[4];          // unit quaternion (w, x, y, z) of R
  double N[16];         // Horn matrix of K
  int kind;
};

template <typename V>  // double, or a GCC vector of doubles (solve_rotation_x4)
RF_HD V det3(V a, V b, V c, V d, V e, V f, V g, V h, V i) {
  return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
}

// Horn's 4x4 matrix such that q^T N q = tr(R(q) K), K[a][b] = sum w xc_a yc_b (row-major).
template <typename V>
RF_HD void horn_matrix(const V* K, V* N) {
  const V xx = K[0], xy = K[1], xz = K[2], yx = K[3], yy = K[4], yz = K[5], zx = K[6],
               zy = K[7], zz = K[8];
  const V v[16] = {xx + yy + zz, yz - zy,      zx - xz,       xy - yx,
                        yz - zy,      xx - yy - zz, xy + yx,       zx + xz,
                        zx - xz,      xy + yx,      -xx + yy - zz, yz + zy,
                        xy - yx,      zx + xz,      yz + zy,       -xx - yy + zz};
  for (int i = 0; i < 16; ++i) N[i] = v[i];
}

// Adjoint of horn_matrix: Gamma[a][b] = d <N(K), P> / d K[a][b] for a symmetric 4x4 P.
RF_HD void horn_adjoint(const double* P, double* G) {
  G[0] = P[0] + P[5] - P[10] - P[15];
  G[4] = P[0] - P[5] + P[10] - P[15];
  G[8] = P[0] - P[5] - P[10] + P[15];
  G[5] = 2 * (P[1] + P[11]);
  G[7] = 2 * (-P[1] + P[11]);
  G[6] = 2 * (P[2] + P[7]);
  G[2] = 2 * (-P[2] + P[7]);
  G[1] = 2 * (P[3] + P[6]);
  G[3] = 2 * (-P[3] + P[6]);
}

RF_HD void quat_to_rot(const double* q, double* R) {
  const double w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = w * w + x * x - y * y - z * z;
  R[1] = 2 * (x * y - w * z);
  R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z);
  R[4] = w * w - x * x + y * y - z * z;
  R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y);
  R[7] = 2 * (y * z + w * x);
  R[8] = w * w - x * x - y * y + z * z;
}

RF_HD double quad_form4(const double* N, const double* q) {
  double r = 0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) r += q[i] * N[4 * i + j] * q[j];
  return r;
}

// Full adjugate of a 4x4 matrix via 2x2 minors (Laplace expansion by complementary minors); returns det.
template <typename V>
RF_HD V adjugate4(const V* a, V* b) {
  const V s0 = a[0] * a[5] - a[4] * a[1], s1 = a[0] * a[6] - a[4] * a[2],
               s2 = a[0] * a[7] - a[4] * a[3], s3 = a[1] * a[6] - a[5] * a[2],
               s4 = a[1] * a[7] - a[5] * a[3], s5 = a[2] * a[7] - a[6] * a[3];
  const V c5 = a[10] * a[15] - a[14] * a[11], c4 = a[9] * a[15] - a[13] * a[11],
               c3 = a[9] * a[14] - a[13] * a[10], c2 = a[8] * a[15] - a[12] * a[11],
               c1 = a[8] * a[14] - a[12] * a[10], c0 = a[8] * a[13] - a[12] * a[9];
  b[0] = a[5] * c5 - a[6] * c4 + a[7] * c3;
  b[1] = -a[1] * c5 + a[2] * c4 - a[3] * c3;
  b[2] = a[13] * s5 - a[14] * s4 + a[15] * s3;
  b[3] = -a[9] * s5 + a[10] * s4 - a[11] * s3;
  b[4] = -a[4] * c5 + a[6] * c2 - a[7] * c1;
  b[5] = a[0] * c5 - a[2] * c2 + a[3] * c1;
  b[6] = -a[12] * s5 + a[14] * s2 - a[15] * s1;
  b[7] = a[8] * s5 - a[10] * s2 + a[11] * s1;
  b[8] = a[4] * c4 - a[5] * c2 + a[7] * c0;
  b[9] = -a[0] * c4 + a[1] * c2 - a[3] * c0;
  b[10] = a[12] * s4 - a[13] * s2 + a[15] * s0;
  b[11] = -a[8] * s4 + a[9] * s2 - a[11] * s0;
  b[12] = -a[4] * c3 + a[5] * c1 - a[6] * c0;
  b[13] = a[0] * c3 - a[1] * c1 + a[2] * c0;
  b[14] = -a[12] * s3 + a[13] * s1 - a[14] * s0;
  b[15] = a[8] * s3 - a[9] * s1 + a[10] * s0;
  return s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0;
}

// Eigenvector of eigenvalue lam from adj(N - lam I) = prod_{i != top}(lam_i - lam) q q^T (for a
// simple lam); takes the column with the largest diagonal entry. Returns that entry's magnitude
// (0 when the column is unusable), which measures how well separated lam is.
RF_HD double adjugate_vector(const double* N, double lam, double* q) {
  double A[16], C[16];
  for (int i = 0; i < 16; ++i) A[i] = N[i];
  for (int i = 0; i < 4; ++i) A[5 * i] -= lam;
  adjugate4(A, C);
  int best = 0;
  for (int j = 1; j < 4; ++j)
    if (fabs(C[5 * j]) > fabs(C[5 * best])) best = j;
  double nrm = 0;
  for (int i = 0; i < 4; ++i) nrm += C[4 * i + best] * C[4 * i + best];
  if (!(nrm > 0)) return 0;
  nrm = 1 / sqrt(nrm);
  for (int i = 0; i < 4; ++i) q[i] = C[4 * i + best] * nrm;
  return fabs(C[5 * best]);
}

// Cyclic Jacobi on a symmetric 4x4; writes the eigenvector of the largest eigenvalue (lowest index
// on ties, so N = 0 gives the identity quaternion). At most 16 sweeps: always terminates.
RF_HD void jacobi_top_vector(const double* N, double* q) {
  double a[16], v[16];
  for (int i = 0; i < 16; ++i) a[i] = N[i], v[i] = (i % 5 == 0) ? 1.0 : 0.0;
  for (int sweep = 0; sweep < 16; ++sweep) {
    double off = 0, diag = 0;
    for (int i = 0; i < 4; ++i) {
      diag += a[5 * i] * a[5 * i];
      for (int j = i + 1; j < 4; ++j) off += a[4 * i + j] * a[4 * i + j];
    }
    if (!(off > 1e-32 * diag)) break;  // also stops on NaN
    for (int p = 0; p < 3; ++p) {
      for (int r = p + 1; r < 4; ++r) {
        const double apr = a[4 * p + r];
        if (apr == 0) continue;
        // Rotation that zeroes a[p][r]: tan(phi) = t, the smaller root of t^2 + 2 theta t - 1 = 0.
        const double theta = (a[5 * r] - a[5 * p]) / (2 * apr);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
        const double c = 1 / sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < 4; ++k) {  // columns p, r
          const double akp = a[4 * k + p], akr = a[4 * k + r];
          a[4 * k + p] = c * akp - s * akr;
          a[4 * k + r] = s * akp + c * akr;
        }
        for (int k = 0; k < 4; ++k) {  // rows p, r
          const double apk = a[4 * p + k], ark = a[4 * r + k];
          a[4 * p + k] = c * apk - s * ark;
          a[4 * r + k] = s * apk + c * ark;
        }
        for (int k = 0; k < 4; ++k) {
          const double vkp = v[4 * k + p], vkr = v[4 * k + r];
          v[4 * k + p] = c * vkp - s * vkr;
          v[4 * k + r] = s * vkp + c * vkr;
        }
      }
    }
  }
  int best = 0;
  for (int i = 1; i < 4; ++i)
    if (a[5 * i] > a[5 * best]) best = i;
  for (int i = 0; i < 4; ++i) q[i] = v[4 * i + best];
}

// Rotation part: fills f.N, f.q, f.lam, f.R from K (f.vx > 0 assumed).
RF_HD void solve_rotation(const double* K, Fit& f) {
  horn_matrix(K, f.N);
  const double* N = f.N;
  double fro2 = 0;
  for (int i = 0; i < 9; ++i) fro2 += K[i] * K[i];
  const double c2 = -2 * fro2;
  const double c1 = -8 * det3(K[0], K[1], K[2], K[3], K[4], K[5], K[6], K[7], K[8]);
  double scratch[16];
  const double c0 = adjugate4(N, scratch);
  // Two upper bounds of lambda_max = sum of signed singular values: sqrt(3)|K|_F, and
  // sqrt(vx vy) (Cauchy-Schwarz), which is tight for a good fit and saves Newton steps.
  double lam = fmin(sqrt(3 * fro2), sqrt(f.vx * f.vy));
  for (int it = 0; it < 64; ++it) {
    const double p = ((lam * lam + c2) * lam + c1) * lam + c0;
    const double dp = (4 * lam * lam + 2 * c2) * lam + c1;
    // |p| at rounding level: lam is a root as far as this polynomial can tell. Stepping on would
    // divide noise by noise at a double root (e.g. an exact 2-point fit, where lam starts exact).
    if (!(dp > 0) || !(fabs(p) > 1e-14 * fro2 * fro2)) break;
    const double step = p / dp;
    lam -= step;
    // Quadratic convergence: after a step of 1e-8 lam the remaining error is ~1e-16 lam^2 / gap.
    if (!(fabs(step) > 1e-8 * fabs(lam))) break;
  }
  const double fro3 = fro2 * sqrt(fro2);
  double sep = adjugate_vector(N, lam, f.q);
  // Poorly separated top eigenvalue: Newton's lambda is less accurate, so refine once with the
  // Rayleigh quotient of the first vector (its error is quadratic in the vector's error).
  if (sep < 0.1 * fro3 && sep >= kAdjRel * fro3) sep = adjugate_vector(N, quad_form4(N, f.q), f.q);
  if (!(sep >= kAdjRel * fro3) || !(fro2 > 0)) jacobi_top_vector(N, f.q);
  f.lam = quad_form4(N, f.q);
  quat_to_rot(f.q, f.R);
}

#if !defined(__CUDACC__) && defined(__GNUC__)
// Four samples' rotation solves in lock-step (CPU): lane l of every vector is sample l. The scalar
// solve is a chain of dependent Newton divisions that leaves the core mostly idle; on GCC vector
// types the same arithmetic runs as AVX2 instructions in the x86-64-v3 clone (pairs of SSE2 ones
// otherwise). Lanes follow solve_rotation exactly: a finished lane stops changing (masks), and a
// lane whose top eigenvalue is not separated takes the scalar Jacobi fallback.
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4m __attribute__((vector_size(32)));  // comparison masks: -1 true, 0 false

RF_HD v4d abs4(v4d x) { return x < 0 ? -x : x; }
RF_HD v4d sqrt4(v4d x) {
  for (int l = 0; l < 4; ++l) x[l] = sqrt(x[l]);
  return x;
}
RF_HD bool any4(v4m m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }

// Best-conditioned adjugate column of N - x I per lane: q (unit) and its diagonal magnitude.
RF_HD void adjugate_vector4(const v4d* N, v4d x, v4d* q, v4d& sep) {
  v4d A[16], C[16];
  for (int i = 0; i < 16; ++i) A[i] = N[i];
  for (int i = 0; i < 4; ++i) A[5 * i] -= x;
  adjugate4(A, C);
  v4d cb = abs4(C[0]), v[4] = {C[0], C[4], C[8], C[12]};
  for (int j = 1; j < 4; ++j) {
    const v4d d = abs4(C[5 * j]);
    const v4m m = d > cb;
    cb = m ? d : cb;
    for (int i = 0; i < 4; ++i) v[i] = m ? C[4 * i + j] : v[i];
  }
  const v4d nrm = v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3];
  const v4m ok = nrm > 0;
  const v4d zero = {0, 0, 0, 0};
  const v4d inv = ok ? 1 / sqrt4(ok ? nrm : zero + 1) : zero;
  for (int i = 0; i < 4; ++i) q[i] = v[i] * inv;
  sep = ok ? cb : zero;
}

RF_HD void solve_rotation_x4(const double (*K)[9], Fit* const* fits) {
  v4d k[9], vx, vy;
  for (int l = 0; l < 4; ++l) {
    for (int i = 0; i < 9; ++i) k[i][l] = K[l][i];
    vx[l] = fits[l]->vx, vy[l] = fits[l]->vy;
  }
  v4d N[16], scratch[16];
  horn_matrix(k, N);
  v4d fro2 = k[0] * k[0];
  for (int i = 1; i < 9; ++i) fro2 += k[i] * k[i];
  const v4d c2 = -2 * fro2;
  const v4d c1 = -8 * det3(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]);
  const v4d c0 = adjugate4(N, scratch);
  const v4d b1 = sqrt4(3 * fro2), b2 = sqrt4(vx * vy);
  v4d lam = b1 < b2 ? b1 : b2;
  const v4d tolp = 1e-14 * fro2 * fro2;
  v4m active = lam == lam;  // all true
  for (int it = 0; it < 64 && any4(active); ++it) {
    const v4d p = ((lam * lam + c2) * lam + c1) * lam + c0;
    const v4d dp = (4 * lam * lam + 2 * c2) * lam + c1;
    const v4m go = active & (dp > 0) & (abs4(p) > tolp);
    const v4d step = go ? p / (go ? dp : dp * 0 + 1) : dp * 0;
    lam -= step;
    active = go & (abs4(step) > 1e-8 * abs4(lam));
  }
  v4d q[4], sep, q2[4], sep2;
  adjugate_vector4(N, lam, q, sep);
  const v4d fro3 = fro2 * sqrt4(fro2);
  const v4m refine = (sep < 0.1 * fro3) & (sep >= kAdjRel * fro3);
  if (any4(refine)) {  // Rayleigh quotient of the first vector, then a second adjugate
    v4d r = q[0] * q[0] * 0;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) r += q[i] * N[4 * i + j] * q[j];
    adjugate_vector4(N, r, q2, sep2);
    for (int i = 0; i < 4; ++i) q[i] = refine ? q2[i] : q[i];
    sep = refine ? sep2 : sep;
  }
  for (int l = 0; l < 4; ++l) {
    Fit& f = *fits[l];
    for (int i = 0; i < 16; ++i) f.N[i] = N[i][l];
    for (int i = 0; i < 4; ++i) f.q[i] = q[i][l];
    if (!(sep[l] >= kAdjRel * fro3[l]) || !(fro2[l] > 0)) jacobi_top_vector(f.N, f.q);
    f.lam = quad_form4(f.N, f.q);
    quat_to_rot(f.q, f.R);
  }
}
#endif

RF_HD void set_identity(Fit& f) {
  for (int i = 0; i < 9; ++i) f.R[i] = (i % 4 == 0) ? 1.0 : 0.0;
  f.q[0] = 1, f.q[1] = f.q[2] = f.q[3] = 0;
}

// One pass over the points accumulates shifted moments: with x0, y0 a point of the sample (the
// first one when finite, else the origin), sums of (x - x0), (y - y0) and their products lose no
// digits to a far-from-origin cloud, and K = Sxy - Sx Sy^T / W etc. recover the centred moments.
struct Moments {
  double W, bad, sx[3], sy[3], sxy[9], sxx, syy;
};

#if defined(__CUDACC__)
#define RF_SIMD_REDUCE(...)
#else
// Lets the compiler vectorise the point loops (FP reductions need explicit permission to reorder).
#define RF_SIMD_REDUCE(...) _Pragma(RF_STR(omp simd reduction(+ : __VA_ARGS__)))
#define RF_STR(x) #x
#endif

// Mode 0: no weights. Mode 1: weights multiplied in, the fast path: a masked point adds w * x =
// 0 unless x is not finite, in which case the sums turn non-finite and fit_moments reruns the
// sample in mode 2, where selects keep masked points out entirely.
template <int Mode, class G, typename T>
RF_HD void accumulate(const G& g, const Sample<T>& p, const double* o, Moments& m) {
  const double x0 = o[0], x1 = o[1], x2 = o[2], y0 = o[3], y1 = o[4], y2 = o[5];
  double W = 0, bad = 0, sx0 = 0, sx1 = 0, sx2 = 0, sy0 = 0, sy1 = 0, sy2 = 0, k0 = 0, k1 = 0,
         k2 = 0, k3 = 0, k4 = 0, k5 = 0, k6 = 0, k7 = 0, k8 = 0, sxx = 0, syy = 0;
  const T* x = p.x;
  const T* y = p.y;
  const int64_t n = p.n;
  const int64_t lane = g.lane();
  RF_SIMD_REDUCE(W, bad, sx0, sx1, sx2, sy0, sy1, sy2, k0, k1, k2, k3, k4, k5, k6, k7, k8, sxx, syy)
  for (int64_t i = lane; i < n; i += G::size) {
    double w = 1, a0 = x[3 * i] - x0, a1 = x[3 * i + 1] - x1, a2 = x[3 * i + 2] - x2,
           b0 = y[3 * i] - y0, b1 = y[3 * i + 1] - y1, b2 = y[3 * i + 2] - y2;
    if (Mode > 0) {
      w = p.w[i];
      bad += (w >= 0) ? 0.0 : 1.0;
    }
    if (Mode == 2) {
      const bool use = w > 0;
      w = use ? w : 0.0;
      a0 = use ? a0 : 0.0, a1 = use ? a1 : 0.0, a2 = use ? a2 : 0.0;
      b0 = use ? b0 : 0.0, b1 = use ? b1 : 0.0, b2 = use ? b2 : 0.0;
    }
    const double wa0 = w * a0, wa1 = w * a1, wa2 = w * a2;
    W += w;
    sx0 += wa0, sx1 += wa1, sx2 += wa2;
    sy0 += w * b0, sy1 += w * b1, sy2 += w * b2;
    k0 += wa0 * b0, k1 += wa0 * b1, k2 += wa0 * b2;
    k3 += wa1 * b0, k4 += wa1 * b1, k5 += wa1 * b2;
    k6 += wa2 * b0, k7 += wa2 * b1, k8 += wa2 * b2;
    sxx += wa0 * a0 + wa1 * a1 + wa2 * a2;
    syy += w * (b0 * b0 + b1 * b1 + b2 * b2);
  }
  const double v[19] = {W, bad, sx0, sx1, sx2, sy0, sy1, sy2, k0, k1, k2, k3, k4, k5, k6, k7, k8, sxx, syy};
  m.W = g.sum(v[0]), m.bad = g.sum(v[1]);
  for (int d = 0; d < 3; ++d) m.sx[d] = g.sum(v[2 + d]), m.sy[d] = g.sum(v[5 + d]);
  for (int i = 0; i < 9; ++i) m.sxy[i] = g.sum(v[8 + i]);
  m.sxx = g.sum(v[17]), m.syy = g.sum(v[18]);
}

// Moments and degenerate cases of one sample: fills f (complete unless regular) and K, and
// returns true when the rotation still has to be solved (then call fit_finish). Every lane of the
// group ends with the same Fit.
template <class G, typename T>
RF_HD bool fit_moments(const G& g, const Sample<T>& p, Fit& f, double* K) {
  double o[6] = {0, 0, 0, 0, 0, 0};  // shift x0, y0
  if (p.n > 0) {
    for (int d = 0; d < 3; ++d) o[d] = p.x[d], o[3 + d] = p.y[d];
    if (!(fabs(o[0]) + fabs(o[1]) + fabs(o[2]) + fabs(o[3]) + fabs(o[4]) + fabs(o[5]) <=
          1.7976931348623157e308))
      o[0] = o[1] = o[2] = o[3] = o[4] = o[5] = 0;
  }
  const double* x0 = o;
  const double* y0 = o + 3;
  Moments m;
  if (p.w) {
    accumulate<1>(g, p, o, m);
    double chk = m.sxx + m.syy;  // finite unless some point (masked or not) is not finite
    for (int i = 0; i < 9; ++i) chk += m.sxy[i];
    if (!(fabs(chk) <= 1.7976931348623157e308)) accumulate<2>(g, p, o, m);
  } else {
    accumulate<0>(g, p, o, m);
  }
  const double W = m.W, sxx = m.sxx, syy = m.syy;
  double bad = m.bad;
  const double* sx = m.sx;
  const double* sy = m.sy;
  for (int i = 0; i < 9; ++i) K[i] = m.sxy[i];
  const double inv = W > 0 ? 1 / W : 0.0;
  for (int d = 0; d < 3; ++d) f.mx[d] = x0[d] + sx[d] * inv, f.my[d] = y0[d] + sy[d] * inv;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) K[3 * a + b] -= sx[a] * sy[b] * inv;
  f.vx = fmax(sxx - (sx[0] * sx[0] + sx[1] * sx[1] + sx[2] * sx[2]) * inv, 0.0);
  f.vy = fmax(syy - (sy[0] * sy[0] + sy[1] * sy[1] + sy[2] * sy[2]) * inv, 0.0);
  if (sxx != sxx || syy != syy) f.vx = f.vy = NAN;  // fmax would drop a NaN
  f.W = W;
  // Non-finite coordinates among weighted points make the whole sample invalid (NaN), explicitly,
  // rather than leaving it to whatever the solve does with NaN.
  double finite_check = f.vx + f.vy;
  for (int i = 0; i < 9; ++i) finite_check += fabs(K[i]);
  if (!(finite_check <= 1.7976931348623157e308)) bad += 1;
  set_identity(f);
  f.lam = 0;
  for (int i = 0; i < 16; ++i) f.N[i] = 0;
  if (bad > 0) {
    f.kind = kInvalid;
    const double nan = NAN;
    for (int i = 0; i < 9; ++i) f.R[i] = nan;
    f.s = nan;
    for (int d = 0; d < 3; ++d) f.t[d] = nan;
    return false;
  }
  if (!(W > 0)) {
    f.kind = kEmpty;
    f.s = 1;
    for (int d = 0; d < 3; ++d) f.t[d] = 0;
    return false;
  }
  const double second_moment = f.vx + W * (f.mx[0] * f.mx[0] + f.mx[1] * f.mx[1] + f.mx[2] * f.mx[2]);
  if (f.vx <= kCollapsedRelVar * second_moment) {  // false for NaN: NaN input stays NaN below
    f.kind = kCollapsed;
    f.s = 0;
    for (int d = 0; d < 3; ++d) f.t[d] = f.my[d];
    return false;
  }
  f.kind = kRegular;
  return true;
}

// Scale and shift once the rotation is known.
RF_HD void fit_finish(Fit& f) {
  f.s = f.lam / f.vx;
  for (int a = 0; a < 3; ++a)
    f.t[a] = f.my[a] - f.s * (f.R[3 * a] * f.mx[0] + f.R[3 * a + 1] * f.mx[1] + f.R[3 * a + 2] * f.mx[2]);
}

// Fits the transform of one sample. Every lane of the group ends with the same Fit.
template <class G, typename T>
RF_HD void fit(const G& g, const Sample<T>& p, Fit& f) {
  double K[9];
  if (fit_moments(g, p, f, K)) {
    solve_rotation(K, f);
    fit_finish(f);
  }
}

template <typename T>
RF_HD void apply(const Fit& f, const T* x, double* a) {
  for (int r = 0; r < 3; ++r)
    a[r] = f.s * (f.R[3 * r] * x[0] + f.R[3 * r + 1] * x[1] + f.R[3 * r + 2] * x[2]) + f.t[r];
}

// Weighted mean of |s R x_n + t - y_n| over points with weight > 0 (0 for an empty sample).
template <class G, typename T>
RF_HD double pa_error(const G& g, const Sample<T>& p, const Fit& f) {
  // a - y = s R x + t - y, with s R folded into one matrix.
  double A[9];
  for (int i = 0; i < 9; ++i) A[i] = f.s * f.R[i];
  const double t0 = f.t[0], t1 = f.t[1], t2 = f.t[2];
  const T* x = p.x;
  const T* y = p.y;
  const int64_t n = p.n;
  double e = 0;
  RF_SIMD_REDUCE(e)
  for (int64_t i = g.lane(); i < n; i += G::size) {
    const double x0 = x[3 * i], x1 = x[3 * i + 1], x2 = x[3 * i + 2];
    const double d0 = A[0] * x0 + A[1] * x1 + A[2] * x2 + t0 - y[3 * i];
    const double d1 = A[3] * x0 + A[4] * x1 + A[5] * x2 + t1 - y[3 * i + 1];
    const double d2 = A[6] * x0 + A[7] * x1 + A[8] * x2 + t2 - y[3 * i + 2];
    const double dist = sqrt(d0 * d0 + d1 * d1 + d2 * d2);
    const double w = p.w ? static_cast<double>(p.w[i]) : 1.0;
    e += w > 0 ? w * dist : 0.0;  // a select: a masked non-finite point adds 0
  }
  e = g.sum(e);
  if (f.kind == kInvalid) return NAN;
  return f.W > 0 ? e / f.W : 0.0;
}

// Upstream gradient of the PA-MPJPE error with respect to aligned point i (zero-distance and
// unweighted points get the zero (sub)gradient). Branch-free so the point loop vectorises.
template <typename T>
struct PaErrorGrad {
  double scale;  // dL/d(error) / W
  RF_HD void operator()(const Sample<T>& p, int64_t i, const double* a, double* G) const {
    const double w = p.w ? static_cast<double>(p.w[i]) : 1.0;
    const double d0 = a[0] - p.y[3 * i], d1 = a[1] - p.y[3 * i + 1], d2 = a[2] - p.y[3 * i + 2];
    const double nrm = sqrt(d0 * d0 + d1 * d1 + d2 * d2);
    const bool live = w > 0 && nrm > 0;  // selects, so a masked NaN point gives 0, not 0 * NaN
    const double c = live ? scale * w / nrm : 0.0;
    G[0] = live ? c * d0 : 0.0, G[1] = live ? c * d1 : 0.0, G[2] = live ? c * d2 : 0.0;
  }
};

// Upstream gradient read from a [n, 3] tensor (procrustes_align backward).
template <typename T>
struct TensorGrad {
  const T* grad;
  RF_HD void operator()(const Sample<T>&, int64_t i, const double*, double* G) const {
    for (int k = 0; k < 3; ++k) G[k] = grad[3 * i + k];
  }
};

// Gradient of L(a) with a_n = s R (x_n - mx) + my with respect to x, through s, R and the centroid;
// derivation in romp_fast/ops/procrustes.py. Upstream gradient G_n = up(p, n, a_n). The first pass
// parks G_n in `out`, the second overwrites it with the result.
template <class G, typename T, class Up>
RF_HD void backward(const G& g, const Sample<T>& p, const Fit& f, const Up& up, T* out) {
  const int64_t n = p.n;
  if (f.kind != kRegular) {
    for (int64_t i = g.lane(); i < n; i += G::size) {
      double a[3], Gi[3] = {0, 0, 0};
      if (f.kind == kEmpty) {  // identity transform: the gradient passes through
        for (int k = 0; k < 3; ++k) a[k] = p.x[3 * i + k];
        up(p, i, a, Gi);
      } else if (f.kind == kInvalid) {
        Gi[0] = Gi[1] = Gi[2] = NAN;
      }  // collapsed: aligned points are the target centroid, constant in pred
      for (int k = 0; k < 3; ++k) out[3 * i + k] = static_cast<T>(Gi[k]);
    }
    return;
  }
  double A[9];
  for (int i = 0; i < 9; ++i) A[i] = f.s * f.R[i];
  const double mx0 = f.mx[0], mx1 = f.mx[1], mx2 = f.mx[2];
  double m0 = 0, m1 = 0, m2 = 0, m3 = 0, m4 = 0, m5 = 0, m6 = 0, m7 = 0, m8 = 0, g0 = 0, g1 = 0,
         g2 = 0;
  RF_SIMD_REDUCE(m0, m1, m2, m3, m4, m5, m6, m7, m8, g0, g1, g2)
  for (int64_t i = g.lane(); i < n; i += G::size) {
    const double x0 = p.x[3 * i], x1 = p.x[3 * i + 1], x2 = p.x[3 * i + 2];
    const double a[3] = {A[0] * x0 + A[1] * x1 + A[2] * x2 + f.t[0],
                         A[3] * x0 + A[4] * x1 + A[5] * x2 + f.t[1],
                         A[6] * x0 + A[7] * x1 + A[8] * x2 + f.t[2]};
    double Gi[3];
    up(p, i, a, Gi);
    // A zero upstream gradient keeps a masked, non-finite point out of M (0 * NaN = NaN).
    const bool z = Gi[0] == 0 && Gi[1] == 0 && Gi[2] == 0;
    const double c0 = z ? 0.0 : x0 - mx0, c1 = z ? 0.0 : x1 - mx1, c2 = z ? 0.0 : x2 - mx2;
    m0 += Gi[0] * c0, m1 += Gi[0] * c1, m2 += Gi[0] * c2;
    m3 += Gi[1] * c0, m4 += Gi[1] * c1, m5 += Gi[1] * c2;
    m6 += Gi[2] * c0, m7 += Gi[2] * c1, m8 += Gi[2] * c2;
    g0 += Gi[0], g1 += Gi[1], g2 += Gi[2];
    out[3 * i] = static_cast<T>(Gi[0]), out[3 * i + 1] = static_cast<T>(Gi[1]),
    out[3 * i + 2] = static_cast<T>(Gi[2]);
  }
  const double M[9] = {g.sum(m0), g.sum(m1), g.sum(m2), g.sum(m3), g.sum(m4),
                       g.sum(m5), g.sum(m6), g.sum(m7), g.sum(m8)};
  const double sG[3] = {g.sum(g0), g.sum(g1), g.sum(g2)};

  // c = <R, M>; dL/dq = 2 s N(M^T) q, projected off q; u = (lam I - N)^+ dL/dq.
  double c = 0, Mt[9], NM[16], gq[4], u[4] = {0, 0, 0, 0}, Gam[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 9; ++i) c += f.R[i] * M[i];
  for (int r = 0; r < 3; ++r)
    for (int cc = 0; cc < 3; ++cc) Mt[3 * r + cc] = M[3 * cc + r];
  horn_matrix(Mt, NM);
  double gqq = 0;
  for (int i = 0; i < 4; ++i) {
    gq[i] = 0;
    for (int j = 0; j < 4; ++j) gq[i] += 2 * f.s * NM[4 * i + j] * f.q[j];
    gqq += gq[i] * f.q[i];
  }
  for (int i = 0; i < 4; ++i) gq[i] -= gqq * f.q[i];
  const double scale = sqrt(f.vx * f.vy);
  if (scale > 0) {
    // A = lam I - N + scale q q^T + eps scale I is SPD; on vectors orthogonal to q its inverse is the
    // pseudo-inverse of (lam I - N) with the gaps regularised by eps * scale.
    double L[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        L[4 * i + j] = -f.N[4 * i + j] + scale * f.q[i] * f.q[j] +
                       (i == j ? f.lam + kGradEps * scale : 0.0);
    // Cholesky L L^T in place (lower triangle), then two triangular solves.
    for (int j = 0; j < 4; ++j) {
      double d = L[5 * j];
      for (int k = 0; k < j; ++k) d -= L[4 * j + k] * L[4 * j + k];
      d = sqrt(d > 0 ? d : kGradEps * scale);
      L[5 * j] = d;
      for (int i = j + 1; i < 4; ++i) {
        double v = L[4 * i + j];
        for (int k = 0; k < j; ++k) v -= L[4 * i + k] * L[4 * j + k];
        L[4 * i + j] = v / d;
      }
    }
    for (int i = 0; i < 4; ++i) {
      double v = gq[i];
      for (int k = 0; k < i; ++k) v -= L[4 * i + k] * u[k];
      u[i] = v / L[5 * i];
    }
    for (int i = 3; i >= 0; --i) {
      double v = u[i];
      for (int k = i + 1; k < 4; ++k) v -= L[4 * k + i] * u[k];
      u[i] = v / L[5 * i];
    }
    double P[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) P[4 * i + j] = 0.5 * (u[i] * f.q[j] + f.q[i] * u[j]);
    horn_adjoint(P, Gam);
  }
  // Gamma' = Gamma_R + (c / vx) R^T (through s = lam / vx, d lam = <dK, R^T>), beta = 2 s c / vx.
  for (int r = 0; r < 3; ++r)
    for (int cc = 0; cc < 3; ++cc) Gam[3 * r + cc] += c / f.vx * f.R[3 * cc + r];
  const double beta = 2 * f.s * c / f.vx;
  const double invW = 1 / f.W;
  const double my0 = f.my[0], my1 = f.my[1], my2 = f.my[2];
  for (int64_t i = g.lane(); i < n; i += G::size) {
    const double w = p.w ? static_cast<double>(p.w[i]) : 1.0;
    const bool use = w > 0;
    const double wr = use ? w * invW : 0.0, wu = use ? w : 0.0;
    const double h0 = out[3 * i] - wr * sG[0], h1 = out[3 * i + 1] - wr * sG[1],
                 h2 = out[3 * i + 2] - wr * sG[2];
    // Selects keep a masked non-finite point's NaN out of its (zero-weight) second term.
    const double c0 = use ? p.x[3 * i] - mx0 : 0.0, c1 = use ? p.x[3 * i + 1] - mx1 : 0.0,
                 c2 = use ? p.x[3 * i + 2] - mx2 : 0.0;
    const double y0 = use ? p.y[3 * i] - my0 : 0.0, y1 = use ? p.y[3 * i + 1] - my1 : 0.0,
                 y2 = use ? p.y[3 * i + 2] - my2 : 0.0;
    for (int k = 0; k < 3; ++k) {  // s R^T h + w (Gamma' yc - beta xc)
      const double xk = k == 0 ? c0 : (k == 1 ? c1 : c2);
      out[3 * i + k] = static_cast<T>(A[k] * h0 + A[3 + k] * h1 + A[6 + k] * h2 +
                                      wu * (Gam[3 * k] * y0 + Gam[3 * k + 1] * y1 +
                                            Gam[3 * k + 2] * y2 - beta * xk));
    }
  }
}

}  // namespace procrustes
}  // namespace romp_fast
