// Problem set-up shared by the CPU and CUDA linear-assignment kernels.
//
// Semantics (romp_fast/ops/linear_assignment.py): an entry is forbidden when it is not finite or
// worse than max_cost; the result is a maximum-cardinality matching over allowed pairs and, among
// those, one of minimum total cost. Both follow from one full rectangular solve in which every
// forbidden entry costs F = hi + (rows + 1) * (hi - lo) + 1 + |hi| (lo, hi: range of the allowed
// entries): a matching with k forbidden pairs then always costs more than any with k - 1, so the
// solver first minimises the number of forbidden pairs and then the allowed total; forbidden pairs
// are dropped from the answer. Problems whose costs span too wide a range for float64 (range_solvable)
// are refused.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define LSA_HD __host__ __device__ __forceinline__
#else
#define LSA_HD inline
#endif

namespace romp_fast {
namespace lsa {

struct Gate {
  double sign;   // -1 when maximising: everything below works in minimisation form
  double limit;  // max_cost in minimisation form, +inf without a gate
  static Gate make(bool maximize, bool has_max, double max_cost) {
    return Gate{maximize ? -1.0 : 1.0, has_max ? (maximize ? -max_cost : max_cost) : INFINITY};
  }
  // Cost in minimisation form, or NaN when the entry is forbidden. Branch-free: x - x == 0 is
  // false exactly for +-inf and NaN.
  LSA_HD double operator()(double c) const {
    c *= sign;
    const bool ok = (c - c == 0) & (c <= limit);
    return ok ? c : NAN;
  }
};

LSA_HD double forbidden_cost(double lo, double hi, int64_t rows) {
  if (!(hi >= lo)) return 1.0;  // nothing allowed
  return hi + static_cast<double>(rows + 1) * (hi - lo) + 1.0 + fabs(hi);
}

// Whether the solve stays finite in float64. The duals of the shortest-path method stay within about
// rows x (range of the costs it sees) of the costs, and the search adds and subtracts them; once that
// bound overflows, reduced costs turn into inf or NaN and the search can no longer reach a column
// (it would loop). lo: the smallest allowed cost; top: the largest cost the solver sees (the
// largest allowed one, or forbidden_cost when some entry is forbidden). Such problems are refused.
LSA_HD bool range_solvable(double lo, double top, int64_t rows) {
  if (!(top >= lo)) return true;  // nothing allowed: every entry costs the same
  const double b = static_cast<double>(rows + 2) * (top - lo) + fabs(top) + fabs(lo);
  return b - b == 0;  // finite
}

}  // namespace lsa
}  // namespace romp_fast
