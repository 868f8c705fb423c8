// Exact solver for one dense rectangular assignment problem (CPU), torch-free so that the kernel
// file and stand-alone harnesses share it.
//
// Final phase: shortest augmenting paths with dual variables (Jonker & Volgenant 1987; in the
// rectangular form of Crouse 2016, IEEE TAES 52(4)), the method behind scipy's
// linear_sum_assignment. Before it, JV's cheap start (jv_start) settles most rows with feasible
// duals, adapted to rectangular problems.
//
// Two implementations of that method: a portable one, and one on AVX-512 vectors (lsa::avx512)
// that solve_problem picks at run time where the CPU has it (x86-64-v4). Forbidden entries become
// the big finite cost of lsa_common.h in both.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(ROMP_FAST_LSA_NO_AVX512)
#define ROMP_FAST_LSA_AVX512 1
#include <immintrin.h>
#endif

#include "../lsa_common.h"

namespace romp_fast {
namespace lsa {

// Scratch that grows to the largest problem seen and is never shrunk; a copy starts empty.
template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) {}
  AlignedBuffer& operator=(const AlignedBuffer&) { return *this; }
  ~AlignedBuffer() { release(); }
  T* get(size_t n) {  // 64-byte aligned, contents unspecified
    if (n > n_) {
      release();
      p_ = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
      n_ = n;
    }
    return p_;
  }

 private:
  void release() {
    if (p_) ::operator delete(p_, std::align_val_t{64});
    p_ = nullptr, n_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

struct Workspace {
  AlignedBuffer<double> wide_f;  // the AVX-512 solver's arrays (lsa::avx512 below)
  AlignedBuffer<int32_t> wide_i;
  std::vector<double> C, u, v, spc;  // cost (rows <= cols), duals, shortest path costs
  std::vector<int64_t> path, row4col, col4row, remaining, rows_seen, free_rows;
  std::vector<char> SC;
  void resize(int64_t nr, int64_t nc) {
    if (static_cast<int64_t>(C.size()) < nr * nc) C.resize(nr * nc);
    if (static_cast<int64_t>(spc.size()) < nc) {
      v.resize(nc), spc.resize(nc), path.resize(nc), row4col.resize(nc), remaining.resize(nc);
      SC.resize(nc);
    }
    if (static_cast<int64_t>(u.size()) < nr) {
      u.resize(nr), col4row.resize(nr), rows_seen.resize(nr), free_rows.resize(nr);
    }
    std::fill_n(v.begin(), nc, 0.0);
    std::fill_n(row4col.begin(), nc, int64_t{-1});
    std::fill_n(u.begin(), nr, 0.0);
    std::fill_n(col4row.begin(), nr, int64_t{-1});
  }
};

// Augments from free row `cur` along a shortest alternating path; the costs are finite, so a free
// column is always reached.
inline void augment_row(Workspace& w, int64_t nc, int64_t cur) {
  const double inf = std::numeric_limits<double>::infinity();
  const double* __restrict__ C = w.C.data();
  double* __restrict__ u = w.u.data();
  double* __restrict__ v = w.v.data();
  double* __restrict__ spc = w.spc.data();
  int64_t* __restrict__ path = w.path.data();
  int64_t* __restrict__ row4col = w.row4col.data();
  int64_t* __restrict__ col4row = w.col4row.data();
  int64_t* __restrict__ remaining = w.remaining.data();
  char* __restrict__ SC = w.SC.data();
  for (int64_t j = 0; j < nc; ++j) spc[j] = inf, SC[j] = 0, remaining[j] = j;
  int64_t n_rem = nc, n_seen = 0, i = cur, sink = -1;
  double min_val = 0;
  while (sink < 0) {
    w.rows_seen[n_seen++] = i;
    const double* Ci = C + i * nc;
    const double base = min_val - u[i];
    double lowest = inf;
    int64_t idx = 0;
    // Selects rather than branches: on random costs these comparisons are coin flips.
    for (int64_t k = 0; k < n_rem; ++k) {
      const int64_t j = remaining[k];
      const double r = base + Ci[j] - v[j];
      const bool better = r < spc[j];
      const double sj = better ? r : spc[j];
      spc[j] = sj;
      path[j] = better ? i : path[j];
      // Ties prefer a free column: the search ends sooner (Crouse 2016).
      const bool take = sj < lowest || (sj == lowest && row4col[j] < 0);
      lowest = take ? sj : lowest;
      idx = take ? k : idx;
    }
    min_val = lowest;
    const int64_t j = remaining[idx];
    SC[j] = 1;
    remaining[idx] = remaining[--n_rem];
    if (row4col[j] < 0) {
      sink = j;
    } else {
      i = row4col[j];
    }
  }
  // Dual update keeps reduced costs non-negative (for any starting u[cur]), then flip the path.
  u[cur] += min_val;
  for (int64_t k = 1; k < n_seen; ++k) {
    const int64_t r = w.rows_seen[k];
    u[r] += min_val - spc[col4row[r]];
  }
  for (int64_t j = 0; j < nc; ++j)
    if (SC[j]) v[j] -= min_val - spc[j];
  int64_t j = sink;
  while (true) {
    const int64_t r = path[j];
    row4col[j] = r;
    std::swap(col4row[r], j);
    if (r == cur) break;
  }
}

// Start for the path search (Jonker & Volgenant 1987), leaving every assigned row at its minimum
// reduced cost c_ij - v_j with u_i set from it; returns the number of rows left free (in
// w.free_rows). Square problems begin with JV's column reduction (v_j = column minimum).
// Rectangular ones (nr < nc) begin with v = 0 and each row on its cheapest free column: the
// rectangular dual also needs v_j = 0 on unassigned columns, and the reduction below only lowers
// v on columns that stay assigned. Then two rounds of augmenting row reduction: a free row takes
// its cheapest column j1, lowering v[j1] until its second-cheapest column ties, and the evicted
// owner of j1 becomes free (processed at once when v[j1] moved, else in the next round).
inline int64_t jv_start(Workspace& w, int64_t nr, int64_t nc) {
  const double* __restrict__ C = w.C.data();
  double* __restrict__ v = w.v.data();
  int64_t* __restrict__ row4col = w.row4col.data();
  int64_t* __restrict__ col4row = w.col4row.data();
  int64_t* __restrict__ free_rows = w.free_rows.data();
  if (nr == nc) {
    int64_t* __restrict__ arg = w.path.data();  // scratch until the path search
    for (int64_t j = 0; j < nc; ++j) v[j] = C[j], arg[j] = 0;
    for (int64_t i = 1; i < nr; ++i) {  // rows in memory order, branch-free
      const double* Ci = C + i * nc;
      for (int64_t j = 0; j < nc; ++j) {
        const bool lt = Ci[j] < v[j];
        v[j] = lt ? Ci[j] : v[j];
        arg[j] = lt ? i : arg[j];
      }
    }
    for (int64_t j = nc - 1; j >= 0; --j)
      if (col4row[arg[j]] < 0) col4row[arg[j]] = j, row4col[j] = arg[j];
  } else {
    for (int64_t i = 0; i < nr; ++i) {
      const double* Ci = C + i * nc;
      int64_t a = 0;
      double m = Ci[0];
      for (int64_t j = 1; j < nc; ++j) {
        const bool lt = Ci[j] < m;
        m = lt ? Ci[j] : m;
        a = lt ? j : a;
      }
      if (row4col[a] < 0) row4col[a] = i, col4row[i] = a;
    }
  }
  int64_t n_free = 0;
  for (int64_t i = 0; i < nr; ++i)
    if (col4row[i] < 0) free_rows[n_free++] = i;
  for (int round = 0; round < 2 && n_free > 0; ++round) {
    int64_t k = 0, prev_free = n_free;
    n_free = 0;
    // At most 2 nr row scans a round: on dense 100x100 problems the reduction otherwise runs ~9
    // scans a row, and the path search finishes those rows sooner (bench_assignment.py: 100x100
    // 88 -> 74 us on one thread, smaller cases unchanged). Leftover rows stay free.
    int64_t guard = 0;
    while (k < prev_free && guard++ < 2 * nr) {
      const int64_t i = free_rows[k++];
      const double* Ci = C + i * nc;
      double u1 = Ci[0] - v[0], u2 = std::numeric_limits<double>::infinity();
      int64_t j1 = 0, j2 = -1;
      for (int64_t j = 1; j < nc; ++j) {  // two smallest reduced costs, branch-free
        const double h = Ci[j] - v[j];
        const bool lt1 = h < u1, lt2 = h < u2;
        u2 = lt1 ? u1 : (lt2 ? h : u2);
        j2 = lt1 ? j1 : (lt2 ? j : j2);
        u1 = lt1 ? h : u1;
        j1 = lt1 ? j : j1;
      }
      int64_t i0 = row4col[j1];
      const bool strict = u1 < u2;
      if (strict) {
        v[j1] -= u2 - u1;
      } else if (i0 >= 0 && j2 >= 0) {
        j1 = j2, i0 = row4col[j2];
      }
      if (i0 >= 0) {
        col4row[i0] = -1;
        if (strict) {
          free_rows[--k] = i0;
        } else {
          free_rows[n_free++] = i0;
        }
      }
      row4col[j1] = i, col4row[i] = j1;
    }
    for (; k < prev_free; ++k) free_rows[n_free++] = free_rows[k];  // scan budget spent: keep them free
  }
  for (int64_t i = 0; i < nr; ++i)
    if (col4row[i] >= 0) w.u[i] = C[i * nc + col4row[i]] - v[col4row[i]];
  return n_free;
}

// Asks for the block of a problem solved soon (the next one of a batch) to be brought into the
// cache while this one is solved: the row scans of the path search give the hardware prefetcher
// little to run ahead with (a few per cent on 10x12 problems). Blocks over 64 KiB are left alone.
template <typename T>
inline void prefetch_problem(const T* cost, int64_t N, int64_t rc, int64_t cc) {
  if (rc <= 0 || cc <= 0) return;
  const int64_t line = 64 / sizeof(T);
  if (rc * cc > (int64_t{1} << 16) / static_cast<int64_t>(sizeof(T))) return;
  if (cc == N) {  // one contiguous run
    for (int64_t k = 0; k < rc * cc; k += line) __builtin_prefetch(cost + k, 0, 2);
  } else {
    for (int64_t r = 0; r < rc; ++r)
      for (int64_t k = 0; k < cc; k += line) __builtin_prefetch(cost + r * N + k, 0, 2);
  }
  __builtin_prefetch(cost + (rc - 1) * N + cc - 1, 0, 2);
}

// The portable solver (any CPU); solve_problem picks the AVX-512 one where the CPU has it.
template <typename T>
void solve_portable(const T* cost, int64_t N, int64_t rc, int64_t cc, const Gate& gate,
                    Workspace& w, int64_t* out) {
  // Solve with rows <= cols: transpose tall blocks.
  const bool tr = rc > cc;
  const int64_t nr = tr ? cc : rc, nc = tr ? rc : cc;
  w.resize(nr, nc);
  double* __restrict__ C = w.C.data();
  // Gate's rule (NaN when forbidden) without its select, which GCC compiles to a branch that is
  // mispredicted on every forbidden entry (30% forbidden, 10x12: 1.4 vs 1.1 us a problem):
  // x + (x - x) is x when finite and NaN for +-inf and NaN; a gate adds a bit mask.
  auto convert = [&](auto gated) {
    const uint64_t nan_bits = std::bit_cast<uint64_t>(std::numeric_limits<double>::quiet_NaN());
    bool bad = false;
    for (int64_t r = 0; r < rc; ++r) {
      for (int64_t c = 0; c < cc; ++c) {
        const double x = static_cast<double>(cost[r * N + c]) * gate.sign;
        double y = x + (x - x);
        if constexpr (decltype(gated)::value) {
          const uint64_t keep = uint64_t{0} - static_cast<uint64_t>(x <= gate.limit);
          y = std::bit_cast<double>((std::bit_cast<uint64_t>(y) & keep) | (nan_bits & ~keep));
        }
        C[tr ? c * nc + r : r * nc + c] = y;
        bad |= y != y;
      }
    }
    return bad;
  };
  const bool any_forbidden = gate.limit == std::numeric_limits<double>::infinity()
                                 ? convert(std::false_type{})
                                 : convert(std::true_type{});
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (int64_t k = 0; k < nr * nc; ++k) {  // range of the allowed entries (NaN compares false)
    lo = C[k] < lo ? C[k] : lo;
    hi = C[k] > hi ? C[k] : hi;
  }
  const double F = any_forbidden ? forbidden_cost(lo, hi, nr) : hi;
  if (!std::isfinite(F))
    throw std::range_error("allowed costs span too wide a range to rank forbidden pairs below "
                           "them in float64");
  if (!range_solvable(lo, F, nr))
    throw std::range_error("allowed costs span too wide a range to solve in float64");
  if (any_forbidden)
    for (int64_t k = 0; k < nr * nc; ++k) C[k] = C[k] == C[k] ? C[k] : F;  // branch-free
  const int64_t n_free = jv_start(w, nr, nc);
  for (int64_t k = 0; k < n_free; ++k) augment_row(w, nc, w.free_rows[k]);
  // A pair is reported only if allowed; the gate is re-read from the input for the chosen ones.
  auto allowed = [&](int64_t r, int64_t c) {
    const double g = gate(static_cast<double>(cost[r * N + c]));
    return g == g;
  };
  if (tr) {
    for (int64_t r = 0; r < rc; ++r) {
      const int64_t c = w.row4col[r];  // original row r is column r of the transposed problem
      out[r] = (c >= 0 && allowed(r, c)) ? c : -1;
    }
  } else {
    for (int64_t r = 0; r < rc; ++r) {
      const int64_t c = w.col4row[r];
      out[r] = allowed(r, c) ? c : -1;
    }
  }
}


#ifdef ROMP_FAST_LSA_AVX512
// The same method on AVX-512 (x86-64-v4), picked at run time: eight columns a vector, rows padded
// to a multiple of 8 columns with +inf costs (never chosen, never free), int32 indices, and every
// scan a pass over whole vectors instead of a list of the columns left. Per-lane running minima
// replace the branch-free scalar chains of the portable code, whose latency bound the small
// problems, and augmenting row reduction runs only where it pays (start below).
//
// GCC 12 flags its own _mm512_undefined_* inside the intrinsics as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
#define LSA_512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi,bmi2,popcnt")))
#define LSA_512I LSA_512 __attribute__((always_inline)) inline

struct Prob {
  int64_t nr, nc, ncp, nv;  // ncp = 8 nv padded columns
  __mmask8 tail;            // real lanes of the last vector
  double *C, *v, *d, *u;    // C: nr x ncp, 64-byte aligned rows
  int32_t *row4col, *col4row, *path, *free_rows, *rows_seen;
  uint64_t *freeb, *todo;  // a bit per column, 64 a word: free; not yet scanned (path search)
  int64_t nw;               // words of those
  __mmask8 real(int64_t k) const { return k == nv - 1 ? tail : __mmask8(0xFF); }
  uint64_t real_word(int64_t w) const {  // the real columns of word w
    return w == nw - 1 && nc % 64 ? (uint64_t{1} << (nc % 64)) - 1 : ~uint64_t{0};
  }
  static __mmask8 lanes(const uint64_t* bits, int64_t k) { return __mmask8(bits[k >> 3] >> (8 * (k & 7))); }
};

inline Prob layout(Workspace& w, int64_t nr, int64_t nc) {
  Prob p;
  p.nr = nr, p.nc = nc, p.nv = (nc + 7) / 8, p.ncp = 8 * p.nv;
  p.tail = nc % 8 ? __mmask8((1u << (nc % 8)) - 1) : __mmask8(0xFF);
  p.nw = (nc + 63) / 64;
  const int64_t ncp = p.ncp, nr8 = (nr + 7) / 8 * 8, nb = 2 * p.nw;  // nb ints hold nw words
  double* f = w.wide_f.get(static_cast<size_t>(nr * ncp + 2 * ncp + nr8));
  p.C = f, p.v = f + nr * ncp, p.d = p.v + ncp, p.u = p.d + ncp;
  int32_t* q = w.wide_i.get(static_cast<size_t>(2 * ncp + 3 * nr8 + 2 * nb));
  p.row4col = q, p.path = q + ncp;
  p.col4row = q + 2 * ncp, p.free_rows = p.col4row + nr8, p.rows_seen = p.free_rows + nr8;
  p.freeb = reinterpret_cast<uint64_t*>(p.rows_seen + nr8);  // 8-byte aligned: nr8, ncp even
  p.todo = p.freeb + p.nw;
  return p;
}

// Eight costs from x, of which the lanes outside m are garbage. Masked loads are slow here (AMD
// EPYC, x86-64-v4: 20x40 problems 1.5 vs 0.67 us a problem), so a plain load reads the lanes past
// the end too whenever they lie in the same 4 KiB page, which cannot fault.
template <typename T>
LSA_512I __m512d load8(const T* x, __mmask8 m) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(x);
  const bool plain = m == 0xFF || (a & 4095) <= 4096 - 8 * sizeof(T);
  if constexpr (std::is_same_v<T, double>) {
    return plain ? _mm512_loadu_pd(x) : _mm512_maskz_loadu_pd(m, x);
  } else {
    return _mm512_cvtps_pd(plain ? _mm256_loadu_ps(x) : _mm256_maskz_loadu_ps(m, x));
  }
}

// Gates and copies the block in one pass (transposed when tall): forbidden entries become +inf for
// now; returns whether there are any, with the range [lo, hi] of the allowed costs.
template <typename T>
LSA_512I bool convert(const T* cost, int64_t N, int64_t rc, int64_t cc, bool tr, const Gate& gate,
                      const Prob& p, double& lo, double& hi) {
  const __m512d sign = _mm512_set1_pd(gate.sign), lim = _mm512_set1_pd(gate.limit);
  const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity()), zero = _mm512_setzero_pd();
  __m512d vlo = inf, vhi = _mm512_set1_pd(-std::numeric_limits<double>::infinity());
  __mmask8 bad = 0;
  const __m256i lane_rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32(static_cast<int32_t>(p.ncp)));
  for (int64_t r = 0; r < rc; ++r) {
    const T* src = cost + r * N;
    for (int64_t c0 = 0; c0 < cc; c0 += 8) {
      const __mmask8 m = cc - c0 >= 8 ? __mmask8(0xFF) : __mmask8((1u << (cc - c0)) - 1);
      const __m512d x = _mm512_mul_pd(load8(src + c0, m), sign);
      // x - x == 0 fails exactly for +-inf and NaN (lsa_common.h's Gate, eight at a time)
      const __mmask8 fin = _mm512_mask_cmp_pd_mask(m, _mm512_sub_pd(x, x), zero, _CMP_EQ_OQ);
      const __mmask8 ok = _mm512_mask_cmp_pd_mask(fin, x, lim, _CMP_LE_OQ);
      bad |= m & ~ok;
      vlo = _mm512_mask_min_pd(vlo, ok, vlo, x);
      vhi = _mm512_mask_max_pd(vhi, ok, vhi, x);
      const __m512d y = _mm512_mask_mov_pd(inf, ok, x);
      if (!tr) {
        _mm512_store_pd(p.C + r * p.ncp + c0, y);  // lanes past cc: +inf padding
      } else {
        const __m256i idx = _mm256_add_epi32(
            lane_rows, _mm256_set1_epi32(static_cast<int32_t>(c0 * p.ncp)));
        _mm512_mask_i32scatter_pd(p.C + r, m, idx, y, 8);
      }
    }
  }
  if (tr) {  // padding of the transposed rows
    for (int64_t c = 0; c < cc; ++c)
      for (int64_t r = rc; r < p.ncp; ++r) p.C[c * p.ncp + r] = std::numeric_limits<double>::infinity();
  }
  lo = _mm512_reduce_min_pd(vlo), hi = _mm512_reduce_max_pd(vhi);
  return bad != 0;
}

// Every lane set to the minimum of x's eight.
LSA_512I __m512d all_min(__m512d x) {
  x = _mm512_min_pd(x, _mm512_shuffle_f64x2(x, x, 0x4E));
  x = _mm512_min_pd(x, _mm512_shuffle_f64x2(x, x, 0xB1));
  return _mm512_min_pd(x, _mm512_permute_pd(x, 0x55));
}

// The two smallest reduced costs C_ij - v_j of a row (u1 <= u2) and a column j1 of u1. NV: the
// number of vectors when known at compile time (the small problems), else 0.
template <int NV>
LSA_512I void two_min(const Prob& p, const double* Ci, double& u1, double& u2, int32_t& j1) {
  const int64_t nv = NV ? NV : p.nv;
  const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  __m512d m1 = inf, m2 = inf;
  __m256i i1 = _mm256_setzero_si256(), jv = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i eight = _mm256_set1_epi32(8);
  for (int64_t k = 0; k < nv; ++k) {
    const __m512d h = _mm512_sub_pd(_mm512_load_pd(Ci + 8 * k), _mm512_load_pd(p.v + 8 * k));
    const __mmask8 lt = _mm512_cmp_pd_mask(h, m1, _CMP_LT_OQ);
    m2 = _mm512_min_pd(m2, _mm512_max_pd(m1, h));
    m1 = _mm512_min_pd(h, m1);
    i1 = _mm256_mask_mov_epi32(i1, lt, jv);
    jv = _mm256_add_epi32(jv, eight);
  }
  const __m512d all1 = all_min(m1);
  const __mmask8 at = _mm512_cmp_pd_mask(m1, all1, _CMP_EQ_OQ);
  const __mmask8 lane = at & static_cast<__mmask8>(-at);  // the lowest lane holding u1
  u1 = _mm512_cvtsd_f64(all1);
  j1 = _mm256_cvtsi256_si32(_mm256_maskz_compress_epi32(lane, i1));
  u2 = _mm512_cvtsd_f64(all_min(_mm512_min_pd(_mm512_mask_mov_pd(m1, lane, inf), m2)));
}

// The cheapest column of a row (v = 0).
template <int NV>
LSA_512I int32_t row_argmin(const Prob& p, const double* Ci) {
  const int64_t nv = NV ? NV : p.nv;
  __m512d m1 = _mm512_load_pd(Ci);
  __m256i i1 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), jv = i1;
  const __m256i eight = _mm256_set1_epi32(8);
  for (int64_t k = 1; k < nv; ++k) {
    jv = _mm256_add_epi32(jv, eight);
    const __m512d h = _mm512_load_pd(Ci + 8 * k);
    i1 = _mm256_mask_mov_epi32(i1, _mm512_cmp_pd_mask(h, m1, _CMP_LT_OQ), jv);
    m1 = _mm512_min_pd(h, m1);
  }
  const __mmask8 at = _mm512_cmp_pd_mask(m1, all_min(m1), _CMP_EQ_OQ);
  return _mm256_cvtsi256_si32(_mm256_maskz_compress_epi32(at & static_cast<__mmask8>(-at), i1));
}

// First column other than `skip` whose reduced cost is `val`, or -1.
template <int NV>
LSA_512I int32_t find_reduced(const Prob& p, const double* Ci, double val, int64_t skip) {
  const int64_t nv = NV ? NV : p.nv;
  const __m512d x = _mm512_set1_pd(val);
  for (int64_t k = 0; k < nv; ++k) {
    const __m512d h = _mm512_sub_pd(_mm512_load_pd(Ci + 8 * k), _mm512_load_pd(p.v + 8 * k));
    __mmask8 m = _mm512_cmp_pd_mask(h, x, _CMP_EQ_OQ);
    if (skip >> 3 == k) m &= __mmask8(~(1u << (skip & 7)));
    if (m) return static_cast<int32_t>(8 * k + __builtin_ctz(m));
  }
  return -1;
}

inline void assign(const Prob& p, int32_t i, int32_t j) {
  p.row4col[j] = i, p.col4row[i] = j;
  p.freeb[j >> 6] &= ~(uint64_t{1} << (j & 63));
}

// jv_start above, vectorised, with fewer rounds of augmenting row reduction; returns the number of
// free rows.
template <int NV>
LSA_512I int64_t start(const Prob p) {  // by value: stores cannot alias it
  const int64_t nr = p.nr, nc = p.nc, ncp = p.ncp, nv = NV ? NV : p.nv;
  for (int64_t j = 0; j < ncp; ++j) p.row4col[j] = -1;
  for (int64_t i = 0; i < nr; ++i) p.col4row[i] = -1, p.u[i] = 0.0;
  for (int64_t w = 0; w < p.nw; ++w) p.freeb[w] = p.real_word(w);
  if (nr == nc) {  // column reduction
    for (int64_t k = 0; k < nv; ++k) {
      __m512d vmin = _mm512_load_pd(p.C + 8 * k);
      __m256i arg = _mm256_setzero_si256();
      for (int64_t i = 1; i < nr; ++i) {
        const __m512d c = _mm512_load_pd(p.C + i * ncp + 8 * k);
        arg = _mm256_mask_mov_epi32(arg, _mm512_cmp_pd_mask(c, vmin, _CMP_LT_OQ),
                                    _mm256_set1_epi32(static_cast<int32_t>(i)));
        vmin = _mm512_min_pd(c, vmin);
      }
      _mm512_store_pd(p.v + 8 * k, _mm512_maskz_mov_pd(p.real(k), vmin));  // padding: v = 0
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.path + 8 * k), arg);
    }
    for (int64_t j = nc - 1; j >= 0; --j)
      if (p.col4row[p.path[j]] < 0) assign(p, p.path[j], static_cast<int32_t>(j));
  } else {  // each row on its cheapest free column, v = 0
    for (int64_t j = 0; j < ncp; ++j) p.v[j] = 0.0;
    for (int64_t i = 0; i < nr; ++i) {  // branch-free: taken or not is a coin flip
      const int32_t j1 = row_argmin<NV>(p, p.C + i * ncp);
      const bool take = p.row4col[j1] < 0;
      p.row4col[j1] = take ? static_cast<int32_t>(i) : p.row4col[j1];
      p.col4row[i] = take ? j1 : -1;
      p.freeb[j1 >> 6] &= ~(uint64_t{take} << (j1 & 63));
    }
  }
  int64_t n_free = 0;
  for (int64_t i = 0; i < nr; ++i) {
    p.free_rows[n_free] = static_cast<int32_t>(i);
    n_free += p.col4row[i] < 0;
  }
  // One round of augmenting row reduction, on (nearly) square problems of more than 40 rows only:
  // on smaller or wider ones the path search settles the free rows in fewer row scans
  // (uniform costs, 1 thread: 30x30 2.6 vs 2.7 us, 50x60 5.0 vs 5.7, 50x50 7.5 vs 6.5, 100x100
  // 22.5 vs 18.0 without / with the round; a second round gained nothing).
  const int rounds = nr > 40 && 10 * (nc - nr) < nr ? 1 : 0;
  for (int round = 0; round < rounds && n_free > 0; ++round) {
    int64_t k = 0, prev_free = n_free, guard = 0;
    n_free = 0;
    while (k < prev_free && guard++ < 2 * nr) {
      const int32_t i = p.free_rows[k++];
      const double* Ci = p.C + i * ncp;
      double u1, u2;
      int32_t j1;
      two_min<NV>(p, Ci, u1, u2, j1);
      int32_t i0 = p.row4col[j1];
      const bool strict = u1 < u2;
      if (strict) {  // a vector store: the next scan's loads of v forward from it
        double* vj = p.v + (j1 & ~7);
        const __m512d x = _mm512_load_pd(vj);
        _mm512_store_pd(vj, _mm512_mask_sub_pd(x, __mmask8(1u << (j1 & 7)), x, _mm512_set1_pd(u2 - u1)));
      } else if (i0 >= 0) {
        const int32_t j2 = find_reduced<NV>(p, Ci, u1, j1);
        if (j2 >= 0) j1 = j2, i0 = p.row4col[j2];
      }
      if (i0 >= 0) {
        p.col4row[i0] = -1;
        if (strict) {
          p.free_rows[--k] = i0;
        } else {
          p.free_rows[n_free++] = i0;
        }
      }
      assign(p, i, j1);
    }
    for (; k < prev_free; ++k) p.free_rows[n_free++] = p.free_rows[k];
  }
  for (int64_t i = 0; i < nr; ++i) {
    const int32_t j = p.col4row[i];
    if (j >= 0) p.u[i] = p.C[i * ncp + j] - p.v[j];
  }
  return n_free;
}

// The end of a path search: dual update (d of the scanned columns, those no longer to do), then the
// assignment flipped along the path from `sink` back to row `cur`.
template <int NV>
LSA_512I void finish_augment(const Prob p, int32_t cur, int32_t sink, double min_val, int64_t n_seen) {
  const int64_t nv = NV ? NV : p.nv;
  p.u[cur] += min_val;
  for (int64_t k = 1; k < n_seen; ++k) {
    const int32_t r = p.rows_seen[k];
    p.u[r] += min_val - p.d[p.col4row[r]];
  }
  const __m512d mv = _mm512_set1_pd(min_val);
  for (int64_t k = 0; k < nv; ++k) {  // a vector at a time: no loop of data-dependent length
    const __mmask8 sc = p.real(k) & ~Prob::lanes(p.todo, k);
    const __m512d vk = _mm512_load_pd(p.v + 8 * k);
    _mm512_store_pd(p.v + 8 * k, _mm512_mask_sub_pd(vk, sc, vk, _mm512_sub_pd(mv, _mm512_load_pd(p.d + 8 * k))));
  }
  p.freeb[sink >> 6] &= ~(uint64_t{1} << (sink & 63));
  int32_t j = sink;
  while (true) {
    const int32_t r = p.path[j];
    p.row4col[j] = r;
    std::swap(p.col4row[r], j);
    if (r == cur) break;
  }
}

// augment for up to 16 columns: d, the to-do and free bits stay in registers (one or two vectors).
template <int NV>
LSA_512I void augment_small(const Prob p, int32_t cur) {
  static_assert(NV == 1 || NV == 2);
  const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  __m512d d[NV];
  for (int k = 0; k < NV; ++k) d[k] = inf;
  uint64_t todo = p.real_word(0);
  const uint64_t freeb = p.freeb[0];
  int64_t n_seen = 0;
  int32_t i = cur, sink;
  __m512d x = _mm512_setzero_pd();  // min_val in every lane
  while (true) {
    p.rows_seen[n_seen++] = i;
    const double* Ci = p.C + static_cast<int64_t>(i) * p.ncp;
    // r = (C_ij - v_j) + (min_val - u_i): the row's loads wait on i, the base on u_i too
    const __m512d base = _mm512_sub_pd(x, _mm512_set1_pd(p.u[i]));
    const __m256i iv = _mm256_set1_epi32(i);
    __m512d mn = inf;
    for (int k = 0; k < NV; ++k) {
      const __mmask8 m = __mmask8(todo >> (8 * k));
      const __m512d r = _mm512_add_pd(_mm512_sub_pd(_mm512_load_pd(Ci + 8 * k), _mm512_load_pd(p.v + 8 * k)),
                                      base);
      const __mmask8 lt = _mm512_mask_cmp_pd_mask(m, r, d[k], _CMP_LT_OQ);  // off the chain
      d[k] = _mm512_mask_min_pd(d[k], m, r, d[k]);  // = lt ? r : d, one step sooner than a blend
      _mm256_mask_storeu_epi32(p.path + 8 * k, lt, iv);
      mn = _mm512_mask_min_pd(mn, m, d[k], mn);
    }
    x = all_min(mn);
    uint64_t eq = 0;
    for (int k = 0; k < NV; ++k)
      eq |= uint64_t{_mm512_mask_cmp_pd_mask(__mmask8(todo >> (8 * k)), d[k], x, _CMP_EQ_OQ)} << (8 * k);
    const uint64_t f = eq & freeb;
    const int32_t j = static_cast<int32_t>(__builtin_ctzll(f ? f : eq));
    todo &= ~(uint64_t{1} << j);
    if (f) {
      sink = j;
      break;
    }
    i = p.row4col[j];
  }
  for (int k = 0; k < NV; ++k) _mm512_store_pd(p.d + 8 * k, d[k]);
  p.todo[0] = todo;
  finish_augment<NV>(p, cur, sink, _mm512_cvtsd_f64(x), n_seen);
}

// augment_row above, vectorised. d holds the shortest path costs; a scanned column keeps its d.
template <int NV>
LSA_512I void augment(const Prob p, int32_t cur) {  // by value: stores cannot alias it
  const int64_t nv = NV ? NV : p.nv;
  const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  for (int64_t k = 0; k < nv; ++k) _mm512_store_pd(p.d + 8 * k, inf);
  for (int64_t w = 0; w < p.nw; ++w) p.todo[w] = p.real_word(w);
  int64_t n_seen = 0;
  int32_t i = cur, sink = -1;
  double min_val = 0;
  while (true) {
    p.rows_seen[n_seen++] = i;
    const double* Ci = p.C + static_cast<int64_t>(i) * p.ncp;
    const __m512d base = _mm512_set1_pd(min_val - p.u[i]);
    const __m256i iv = _mm256_set1_epi32(i);
    __m512d mn = inf;
    for (int64_t k = 0; k < nv; ++k) {
      const __mmask8 m = Prob::lanes(p.todo, k);
      const __m512d r = _mm512_add_pd(_mm512_sub_pd(_mm512_load_pd(Ci + 8 * k), _mm512_load_pd(p.v + 8 * k)),
                                      base);
      __m512d dd = _mm512_load_pd(p.d + 8 * k);
      const __mmask8 lt = _mm512_mask_cmp_pd_mask(m, r, dd, _CMP_LT_OQ);
      dd = _mm512_mask_min_pd(dd, m, r, dd);  // = lt ? r : dd, one step sooner than a blend
      _mm512_store_pd(p.d + 8 * k, dd);
      _mm256_mask_storeu_epi32(p.path + 8 * k, lt, iv);
      mn = _mm512_mask_min_pd(mn, m, dd, mn);
    }
    const __m512d x = all_min(mn);
    min_val = _mm512_cvtsd_f64(x);
    // A column at the minimum, a free one if any: the search ends sooner (Crouse 2016). Branch-free
    // within each word of 64 columns.
    int32_t j = -1;
    for (int64_t w = 0; w < p.nw; ++w) {
      uint64_t eq = 0;
      const int64_t k1 = std::min<int64_t>(nv, 8 * w + 8);
      for (int64_t k = 8 * w; k < k1; ++k)
        eq |= uint64_t{_mm512_mask_cmp_pd_mask(Prob::lanes(p.todo, k), _mm512_load_pd(p.d + 8 * k), x,
                                               _CMP_EQ_OQ)} << (8 * (k & 7));
      const uint64_t f = eq & p.freeb[w];
      const int32_t pick = static_cast<int32_t>(64 * w + __builtin_ctzll((f ? f : eq) | (uint64_t{1} << 63)));
      j = (j < 0 && eq) || f ? pick : j;
      if (f) {
        sink = j;
        break;
      }
    }
    p.todo[j >> 6] &= ~(uint64_t{1} << (j & 63));
    if (sink >= 0) break;
    i = p.row4col[j];
  }
  finish_augment<NV>(p, cur, sink, min_val, n_seen);
}

template <int NV>
LSA_512 void assign_all(const Prob& p) {
  const int64_t n_free = start<NV>(p);
  for (int64_t k = 0; k < n_free; ++k) {
    if constexpr (NV == 1 || NV == 2) {
      augment_small<NV>(p, p.free_rows[k]);
    } else {
      augment<NV>(p, p.free_rows[k]);
    }
  }
}

template <typename T>
LSA_512 void solve(const T* cost, int64_t N, int64_t rc, int64_t cc, const Gate& gate, Workspace& w,
                   int64_t* out) {
  const bool tr = rc > cc;
  const Prob p = layout(w, tr ? cc : rc, tr ? rc : cc);
  double lo, hi;
  const bool any_forbidden = convert(cost, N, rc, cc, tr, gate, p, lo, hi);
  const double top = any_forbidden ? forbidden_cost(lo, hi, p.nr) : hi;
  if (any_forbidden && !std::isfinite(top))
    throw std::range_error("allowed costs span too wide a range to rank forbidden pairs below "
                           "them in float64");
  if (!range_solvable(lo, top, p.nr))
    throw std::range_error("allowed costs span too wide a range to solve in float64");
  if (any_forbidden) {  // the big finite cost of lsa_common.h, on the real columns only
    const double F = top;
    const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity()), f = _mm512_set1_pd(F);
    for (int64_t i = 0; i < p.nr; ++i) {
      for (int64_t k = 0; k < p.nv; ++k) {
        double* c = p.C + i * p.ncp + 8 * k;
        const __m512d x = _mm512_load_pd(c);
        _mm512_store_pd(c, _mm512_mask_mov_pd(x, _mm512_mask_cmp_pd_mask(p.real(k), x, inf, _CMP_EQ_OQ), f));
      }
    }
  }
  switch (p.nv) {  // the small problems with a fixed number of vectors
    case 1: assign_all<1>(p); break;
    case 2: assign_all<2>(p); break;
    default: assign_all<0>(p);
  }
  auto allowed = [&](int64_t r, int64_t c) {
    if (!any_forbidden) return true;
    const double g = gate(static_cast<double>(cost[r * N + c]));
    return g == g;
  };
  if (tr) {
    for (int64_t r = 0; r < rc; ++r) {
      const int64_t c = p.row4col[r];
      out[r] = (c >= 0 && allowed(r, c)) ? c : -1;
    }
  } else {
    for (int64_t r = 0; r < rc; ++r) {
      const int64_t c = p.col4row[r];
      out[r] = allowed(r, c) ? c : -1;
    }
  }
}

inline bool supported() {
  // ROMP_FAST_LSA_PORTABLE=1 forces the portable solver (tests compare both on one machine).
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                         std::getenv("ROMP_FAST_LSA_PORTABLE") == nullptr;
  return ok;
}
#undef LSA_512I
#undef LSA_512
}  // namespace avx512
#pragma GCC diagnostic pop
#endif

// One problem: the top-left rc x cc block of `cost` (row stride N), gated; out[r] = column of row
// r or -1 (rc entries written).
template <typename T>
void solve_problem(const T* cost, int64_t N, int64_t rc, int64_t cc, const Gate& gate,
                   Workspace& w, int64_t* out) {
#ifdef ROMP_FAST_LSA_AVX512
  if (avx512::supported()) return avx512::solve(cost, N, rc, cc, gate, w, out);
#endif
  solve_portable(cost, N, rc, cc, gate, w, out);
}

}  // namespace lsa
}  // namespace romp_fast
