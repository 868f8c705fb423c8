// Exact solver for one dense rectangular assignment problem (CPU), torch-free so that the kernel
// file and stand-alone harnesses share it.
//
// Final phase: shortest augmenting paths with dual variables (Jonker & Volgenant 1987; in the
// rectangular form of Crouse 2016, IEEE TAES 52(4)), the method behind scipy's
// linear_sum_assignment. Before it, JV's cheap start (jv_start) settles most rows with feasible
// duals, adapted to rectangular problems.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../lsa_common.h"

namespace romp_fast {
namespace lsa {

struct Workspace {
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

template <typename T>
void solve_problem(const T* cost, int64_t N, int64_t rc, int64_t cc, const Gate& gate,
                   Workspace& w, int64_t* out) {
  // Solve with rows <= cols: transpose tall blocks.
  const bool tr = rc > cc;
  const int64_t nr = tr ? cc : rc, nc = tr ? rc : cc;
  w.resize(nr, nc);
  double* __restrict__ C = w.C.data();
  bool any_forbidden = false;
  for (int64_t r = 0; r < rc; ++r) {
    for (int64_t c = 0; c < cc; ++c) {
      const double g = gate(static_cast<double>(cost[r * N + c]));  // NaN when forbidden
      C[tr ? c * nc + r : r * nc + c] = g;
      any_forbidden |= g != g;
    }
  }
  if (any_forbidden) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int64_t k = 0; k < nr * nc; ++k) {  // range of the allowed entries (NaN compares false)
      lo = C[k] < lo ? C[k] : lo;
      hi = C[k] > hi ? C[k] : hi;
    }
    const double F = forbidden_cost(lo, hi, nr);
    if (!std::isfinite(F))
      throw std::range_error("allowed costs span too wide a range to rank forbidden pairs below "
                             "them in float64");
    for (int64_t k = 0; k < nr * nc; ++k) C[k] = C[k] == C[k] ? C[k] : F;  // branch-free
  }
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

}  // namespace lsa
}  // namespace romp_fast
