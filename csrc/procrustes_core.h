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

RF_HD double det3(double a, double b, double c, double d, double e, double f, double g, double h,
                  double i) {
  return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
}

// Horn's 4x4 matrix such that q^T N q = tr(R(q) K), K[a][b] = sum w xc_a yc_b (row-major).
RF_HD void horn_matrix(const double* K, double* N) {
  const double xx = K[0], xy = K[1], xz = K[2], yx = K[3], yy = K[4], yz = K[5], zx = K[6],
               zy = K[7], zz = K[8];
  const double v[16] = {xx + yy + zz, yz - zy,      zx - xz,       xy - yx,
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

// Cofactor C_ij of the symmetric 4x4 matrix A (rows/cols i, j removed, with sign).
RF_HD double cofactor4(const double* A, int i, int j) {
  int r[3], c[3];
  for (int k = 0, a = 0, b = 0; k < 4; ++k) {
    if (k != i) r[a++] = k;
    if (k != j) c[b++] = k;
  }
  const double m = det3(A[4 * r[0] + c[0]], A[4 * r[0] + c[1]], A[4 * r[0] + c[2]],
                        A[4 * r[1] + c[0]], A[4 * r[1] + c[1]], A[4 * r[1] + c[2]],
                        A[4 * r[2] + c[0]], A[4 * r[2] + c[1]], A[4 * r[2] + c[2]]);
  return ((i + j) & 1) ? -m : m;
}

// Eigenvector of eigenvalue lam from adj(N - lam I); false when the column is too small to trust.
RF_HD bool adjugate_vector(const double* N, double lam, double tol, double* q) {
  double A[16];
  for (int i = 0; i < 16; ++i) A[i] = N[i];
  for (int i = 0; i < 4; ++i) A[5 * i] -= lam;
  int best = 0;
  double cbest = -1;
  for (int j = 0; j < 4; ++j) {
    const double c = fabs(cofactor4(A, j, j));
    if (c > cbest) cbest = c, best = j;
  }
  if (!(cbest >= tol)) return false;
  double nrm = 0;
  for (int i = 0; i < 4; ++i) {
    q[i] = cofactor4(A, i, best);
    nrm += q[i] * q[i];
  }
  nrm = sqrt(nrm);
  for (int i = 0; i < 4; ++i) q[i] /= nrm;
  return true;
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
  double fro2 = 0;
  for (int i = 0; i < 9; ++i) fro2 += K[i] * K[i];
  const double c2 = -2 * fro2;
  const double c1 = -8 * det3(K[0], K[1], K[2], K[3], K[4], K[5], K[6], K[7], K[8]);
  const double* N = f.N;
  // det N by cofactor expansion along the first row.
  const double c0 = N[0] * cofactor4(N, 0, 0) + N[1] * cofactor4(N, 0, 1) +
                    N[2] * cofactor4(N, 0, 2) + N[3] * cofactor4(N, 0, 3);
  double lam = sqrt(3 * fro2);
  for (int it = 0; it < 64; ++it) {
    const double p = ((lam * lam + c2) * lam + c1) * lam + c0;
    const double dp = (4 * lam * lam + 2 * c2) * lam + c1;
    if (!(dp > 0)) break;
    const double step = p / dp;
    lam -= step;
    if (!(fabs(step) > 1e-15 * fabs(lam))) break;
  }
  const double tol = kAdjRel * fro2 * sqrt(fro2);
  bool ok = fro2 > 0 && adjugate_vector(N, lam, tol, f.q);
  if (ok) ok = adjugate_vector(N, quad_form4(N, f.q), tol, f.q);
  if (!ok) jacobi_top_vector(N, f.q);
  f.lam = quad_form4(N, f.q);
  quat_to_rot(f.q, f.R);
}

RF_HD void set_identity(Fit& f) {
  for (int i = 0; i < 9; ++i) f.R[i] = (i % 4 == 0) ? 1.0 : 0.0;
  f.q[0] = 1, f.q[1] = f.q[2] = f.q[3] = 0;
}

// Fits the transform of one sample. Every lane of the group ends with the same Fit.
template <class G, typename T>
RF_HD void fit(const G& g, const Sample<T>& p, Fit& f) {
  double W = 0, bad = 0, sx[3] = {0, 0, 0}, sy[3] = {0, 0, 0};
  for (int64_t i = g.lane(); i < p.n; i += G::size) {
    const double w = p.weight(i);
    if (!(w >= 0)) bad += 1;
    if (w > 0) {
      W += w;
      for (int d = 0; d < 3; ++d) sx[d] += w * p.x[3 * i + d], sy[d] += w * p.y[3 * i + d];
    }
  }
  W = g.sum(W);
  bad = g.sum(bad);
  for (int d = 0; d < 3; ++d) sx[d] = g.sum(sx[d]), sy[d] = g.sum(sy[d]);
  for (int d = 0; d < 3; ++d) {
    f.mx[d] = W > 0 ? sx[d] / W : 0.0;
    f.my[d] = W > 0 ? sy[d] / W : 0.0;
  }
  // Second pass on centred points: the one-pass formula loses digits for far-from-origin clouds.
  double K[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, vx = 0, vy = 0;
  for (int64_t i = g.lane(); i < p.n; i += G::size) {
    const double w = p.weight(i);
    if (!(w > 0)) continue;
    double xc[3], yc[3];
    for (int d = 0; d < 3; ++d) xc[d] = p.x[3 * i + d] - f.mx[d], yc[d] = p.y[3 * i + d] - f.my[d];
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) K[3 * a + b] += w * xc[a] * yc[b];
    vx += w * (xc[0] * xc[0] + xc[1] * xc[1] + xc[2] * xc[2]);
    vy += w * (yc[0] * yc[0] + yc[1] * yc[1] + yc[2] * yc[2]);
  }
  for (int i = 0; i < 9; ++i) K[i] = g.sum(K[i]);
  f.vx = g.sum(vx);
  f.vy = g.sum(vy);
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
    return;
  }
  if (!(W > 0)) {
    f.kind = kEmpty;
    f.s = 1;
    for (int d = 0; d < 3; ++d) f.t[d] = 0;
    return;
  }
  const double second_moment = f.vx + W * (f.mx[0] * f.mx[0] + f.mx[1] * f.mx[1] + f.mx[2] * f.mx[2]);
  if (f.vx <= kCollapsedRelVar * second_moment) {  // false for NaN: NaN input stays NaN below
    f.kind = kCollapsed;
    f.s = 0;
    for (int d = 0; d < 3; ++d) f.t[d] = f.my[d];
    return;
  }
  f.kind = kRegular;
  solve_rotation(K, f);
  f.s = f.lam / f.vx;
  for (int a = 0; a < 3; ++a)
    f.t[a] = f.my[a] - f.s * (f.R[3 * a] * f.mx[0] + f.R[3 * a + 1] * f.mx[1] + f.R[3 * a + 2] * f.mx[2]);
}

template <typename T>
RF_HD void apply(const Fit& f, const T* x, double* a) {
  for (int r = 0; r < 3; ++r)
    a[r] = f.s * (f.R[3 * r] * x[0] + f.R[3 * r + 1] * x[1] + f.R[3 * r + 2] * x[2]) + f.t[r];
}

// Weighted mean of |s R x_n + t - y_n| over points with weight > 0 (0 for an empty sample).
template <class G, typename T>
RF_HD double pa_error(const G& g, const Sample<T>& p, const Fit& f) {
  double e = 0;
  for (int64_t i = g.lane(); i < p.n; i += G::size) {
    const double w = p.weight(i);
    if (!(w > 0)) continue;
    double a[3];
    apply(f, p.x + 3 * i, a);
    const double d0 = a[0] - p.y[3 * i], d1 = a[1] - p.y[3 * i + 1], d2 = a[2] - p.y[3 * i + 2];
    e += w * sqrt(d0 * d0 + d1 * d1 + d2 * d2);
  }
  e = g.sum(e);
  if (f.kind == kInvalid) return NAN;
  return f.W > 0 ? e / f.W : 0.0;
}

// Upstream gradient of the PA-MPJPE error with respect to aligned point i (zero-distance points
// get the zero subgradient).
template <typename T>
struct PaErrorGrad {
  double scale;  // dL/d(error) / W
  RF_HD void operator()(const Sample<T>& p, int64_t i, const double* a, double* G) const {
    const double w = p.weight(i);
    G[0] = G[1] = G[2] = 0;
    if (!(w > 0)) return;
    const double d[3] = {a[0] - p.y[3 * i], a[1] - p.y[3 * i + 1], a[2] - p.y[3 * i + 2]};
    const double nrm = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    if (!(nrm > 0)) return;
    for (int k = 0; k < 3; ++k) G[k] = scale * w * d[k] / nrm;
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
// derivation in romp_fast/ops/procrustes.py. Upstream gradient G_n = up(p, n, a_n).
template <class G, typename T, class Up>
RF_HD void backward(const G& g, const Sample<T>& p, const Fit& f, const Up& up, T* out) {
  if (f.kind != kRegular) {
    for (int64_t i = g.lane(); i < p.n; i += G::size) {
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
  double M[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, sG[3] = {0, 0, 0};
  for (int64_t i = g.lane(); i < p.n; i += G::size) {
    double a[3], Gi[3], xc[3];
    apply(f, p.x + 3 * i, a);
    up(p, i, a, Gi);
    // Skipping zero upstream gradients keeps a masked, non-finite point out of M.
    if (Gi[0] == 0 && Gi[1] == 0 && Gi[2] == 0) continue;
    for (int k = 0; k < 3; ++k) xc[k] = p.x[3 * i + k] - f.mx[k], sG[k] += Gi[k];
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) M[3 * r + c] += Gi[r] * xc[c];
  }
  for (int i = 0; i < 9; ++i) M[i] = g.sum(M[i]);
  for (int k = 0; k < 3; ++k) sG[k] = g.sum(sG[k]);

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
    double A[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        A[4 * i + j] = -f.N[4 * i + j] + scale * f.q[i] * f.q[j] +
                       (i == j ? f.lam + kGradEps * scale : 0.0);
    // Cholesky A = L L^T in place (lower triangle), then two triangular solves.
    for (int j = 0; j < 4; ++j) {
      double d = A[5 * j];
      for (int k = 0; k < j; ++k) d -= A[4 * j + k] * A[4 * j + k];
      d = sqrt(d > 0 ? d : kGradEps * scale);
      A[5 * j] = d;
      for (int i = j + 1; i < 4; ++i) {
        double v = A[4 * i + j];
        for (int k = 0; k < j; ++k) v -= A[4 * i + k] * A[4 * j + k];
        A[4 * i + j] = v / d;
      }
    }
    for (int i = 0; i < 4; ++i) {
      double v = gq[i];
      for (int k = 0; k < i; ++k) v -= A[4 * i + k] * u[k];
      u[i] = v / A[5 * i];
    }
    for (int i = 3; i >= 0; --i) {
      double v = u[i];
      for (int k = i + 1; k < 4; ++k) v -= A[4 * k + i] * u[k];
      u[i] = v / A[5 * i];
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
  for (int64_t i = g.lane(); i < p.n; i += G::size) {
    double a[3], Gi[3];
    apply(f, p.x + 3 * i, a);
    up(p, i, a, Gi);
    const double w = p.weight(i);
    const double wr = w > 0 ? w / f.W : 0.0;
    double h[3];
    for (int k = 0; k < 3; ++k) h[k] = Gi[k] - wr * sG[k];
    for (int k = 0; k < 3; ++k) {  // s R^T h
      double v = f.s * (f.R[k] * h[0] + f.R[3 + k] * h[1] + f.R[6 + k] * h[2]);
      if (w > 0) {
        const double yc0 = p.y[3 * i] - f.my[0], yc1 = p.y[3 * i + 1] - f.my[1],
                     yc2 = p.y[3 * i + 2] - f.my[2];
        v += w * (Gam[3 * k] * yc0 + Gam[3 * k + 1] * yc1 + Gam[3 * k + 2] * yc2 -
                  beta * (p.x[3 * i + k] - f.mx[k]));
      }
      out[3 * i + k] = static_cast<T>(v);
    }
  }
}

}  // namespace procrustes
}  // namespace romp_fast
