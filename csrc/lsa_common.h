// Problem set-up shared by the CPU and CUDA linear-assignment kernels.
//
// Semantics (romp_fast/ops/linear_assignment.py): an entry is forbidden when it is not finite or
// worse than max_cost; the result is a maximum-cardinality matching over allowed pairs and, among
// those, one of minimum total cost. Both follow from one full rectangular solve in which every
// forbidden entry costs F = hi + (rows + 1) * (hi - lo) + 1 + |hi| (lo, hi: range of the allowed
// entries): a matching with k forbidden pairs then always costs more than any with k - 1, so the
// solver first minimises the number of forbidden pairs and then the allowed total; forbidden pairs
// are dropped from the answer.
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
  double max_cost;  // already negated when maximising
  bool has_max;
  bool maximize;
  // Cost in minimisation form, or NaN when the entry is forbidden.
  LSA_HD double operator()(double c) const {
    if (maximize) c = -c;
    const bool ok = c == c && fabs(c) <= 1.7976931348623157e308 && !(has_max && c > max_cost);
    return ok ? c : NAN;
  }
};

LSA_HD double forbidden_cost(double lo, double hi, int64_t rows) {
  if (!(hi >= lo)) return 1.0;  // nothing allowed
  return hi + static_cast<double>(rows + 1) * (hi - lo) + 1.0 + fabs(hi);
}

}  // namespace lsa
}  // namespace romp_fast
