// "Caller helps" parallelism for the CPU kernels: tasks [0, n) are claimed from a shared counter by
// the calling thread and by helper tasks on ATen's inter-op pool (at::launch). The caller waits
// only for tasks that were claimed; a helper that starts late (its core held by another process)
// finds the counter spent and touches nothing else. A fork-join over at::parallel_for instead waits
// for every OpenMP thread of the team to be scheduled: with one core busy, the median
// linear_assignment call (10x12, B = 1e4) took 8 ms against 3 ms on the calling thread alone.
#pragma once

#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <thread>

namespace romp_fast {

// Set in a child process after fork(): ATen's inter-op pool has no threads there (fork copies only
// the calling thread), so launched helpers would never run; the caller then works alone.
inline std::atomic<bool> forked_child{false};
inline const int fork_hook = pthread_atfork(nullptr, nullptr, [] { forked_child.store(true); });

// Runs fn(i) for every i in [0, n) on up to `threads` threads (the caller included); rethrows the
// first exception a task raised, after every claimed task has finished. Per-thread state belongs in
// thread_local variables inside fn.
template <typename Fn>
void share_work(int64_t n, int64_t threads, Fn&& fn) {
  if (n <= 0) return;
  threads = std::min<int64_t>(threads, n);
  if (threads <= 1 || at::in_parallel_region() || forked_child.load(std::memory_order_relaxed)) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0}, done{0};
    std::function<void(int64_t)> run;  // called only for claimed tasks, while the caller waits
    std::mutex m;
    std::exception_ptr error;
  };
  auto sh = std::make_shared<Shared>();
  sh->run = [&fn](int64_t i) { fn(i); };
  auto work = [sh, n] {
    for (int64_t i; (i = sh->next.fetch_add(1)) < n;) {
      try {
        sh->run(i);
      } catch (...) {
        std::lock_guard<std::mutex> g(sh->m);
        if (!sh->error) sh->error = std::current_exception();
      }
      sh->done.fetch_add(1, std::memory_order_acq_rel);
    }
  };
  std::exception_ptr launch_error;
  try {
    for (int64_t t = 1; t < threads; ++t) at::launch(work);
  } catch (...) {  // e.g. no thread could be made: helpers already launched still need fn alive
    launch_error = std::current_exception();
  }
  work();
  while (sh->done.load(std::memory_order_acquire) < n) std::this_thread::yield();  // tasks helpers hold
  if (sh->error) std::rethrow_exception(sh->error);
  if (launch_error) std::rethrow_exception(launch_error);
}

}  // namespace romp_fast
