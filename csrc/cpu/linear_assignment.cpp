// CPU kernel for linear_assignment: a batch of padded rectangular problems, each solved exactly by
// the shortest augmenting path method (Jonker & Volgenant 1987 without their initialisation, in the
// rectangular form of Crouse 2016, "On implementing 2D rectangular assignment algorithms", IEEE
// TAES 52(4)), the algorithm behind scipy.optimize.linear_sum_assignment (lsa_solver.h). Chunks of
// problems run on the calling thread and helper tasks (share_work.h); each chunk keeps one
// workspace, so nothing is allocated per problem.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../checks.h"
#include "lsa_solver.h"
#include "share_work.h"

namespace romp_fast {
namespace {

at::Tensor linear_assignment_cpu(const at::Tensor& cost, const c10::optional<at::Tensor>& row_counts,
                                 const c10::optional<at::Tensor>& col_counts,
                                 c10::optional<double> max_cost, bool maximize) {
  check_assignment(cost, row_counts, col_counts);
  const int64_t B = cost.size(0), M = cost.size(1), N = cost.size(2);
  auto counts = [&](const c10::optional<at::Tensor>& t, const char* name, int64_t full) {
    if (!t.has_value()) return at::Tensor();
    at::Tensor c = t->contiguous();
    const int64_t* p = c.const_data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      TORCH_CHECK(p[b] >= 0 && p[b] <= full, "linear_assignment: ", name, "[", b, "] = ", p[b],
                  " is outside [0, ", full, "]");
    return c;
  };
  const at::Tensor rcount = counts(row_counts, "row_counts", M);
  const at::Tensor ccount = counts(col_counts, "col_counts", N);
  const at::Tensor c = cost.contiguous();
  at::Tensor out = at::empty({B, M}, cost.options().dtype(at::kLong));
  const lsa::Gate gate = lsa::Gate::make(maximize, max_cost.has_value(), max_cost.value_or(0.0));
  // At least ~32k cost cells (a few hundred microseconds of solving) per thread: a batch of tiny
  // problems (tracking's per-frame matchings) runs on the calling thread instead of paying for
  // waking threads.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(M * N, 1));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* cp = c.const_data_ptr<T>();
    int64_t* op = out.data_ptr<int64_t>();
    const int64_t* rp = rcount.defined() ? rcount.const_data_ptr<int64_t>() : nullptr;
    const int64_t* cpn = ccount.defined() ? ccount.const_data_ptr<int64_t>() : nullptr;
    auto solve = [=](lsa::Workspace& w, int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t rc = rp ? rp[b] : M, cc = cpn ? cpn[b] : N;
        if (b + 1 < b1)
          lsa::prefetch_problem(cp + (b + 1) * M * N, N, rp ? rp[b + 1] : M, cpn ? cpn[b + 1] : N);
        int64_t* o = op + b * M;
        std::fill(o, o + M, int64_t{-1});
        if (rc > 0 && cc > 0) {
          try {
            lsa::solve_problem(cp + b * M * N, N, rc, cc, gate, w, o);
          } catch (const std::range_error& e) {
            TORCH_CHECK_VALUE(false, "linear_assignment: problem ", b, ": ", e.what());
          }
        }
      }
    };
    // Up to get_num_threads() threads, none for less than `grain` problems, chunks of ~20 us taken
    // by whichever thread is free (share_work.h: no waiting for a descheduled thread).
    const int64_t threads = std::min<int64_t>(at::get_num_threads(), (B + grain - 1) / grain);
    const int64_t chunk =
        threads <= 1 ? std::max<int64_t>(B, 1) : std::max<int64_t>(1, 8192 / std::max<int64_t>(M * N, 1));
    share_work((B + chunk - 1) / chunk, threads, [&](int64_t i) {
      lsa::Workspace w;
      solve(w, i * chunk, std::min(B, (i + 1) * chunk));
    });
  };
  if (cost.scalar_type() == at::kDouble) {
    run(double{});
  } else {
    run(float{});
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CPU, m) { m.impl("linear_assignment", &linear_assignment_cpu); }

}  // namespace romp_fast
