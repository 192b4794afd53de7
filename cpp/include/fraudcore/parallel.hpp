// Thread-count resolution and an exception-safe parallel loop.
//
// Contract: parallel_for(n, threads, body) calls body(i) exactly once for
// every i in [0, n) (unless one throws), on at most `threads` OpenMP threads,
// with dynamic scheduling. The first exception thrown by any body is
// rethrown on the calling thread after the loop; later iterations are
// skipped. No exception ever crosses the OpenMP region boundary.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

#include "fraudcore/types.hpp"

namespace fraudcore {

/// Number of processors this process may run on.
int available_cores();

/// scikit-learn/joblib convention: n_jobs >= 1 is a thread count, -1 means
/// every core, -2 every core but one, and so on (never fewer than 1).
/// Throws std::invalid_argument for 0.
int resolve_n_threads(int n_jobs);

/// The calling thread's number in the innermost OpenMP parallel region, in
/// [0, threads of the region); 0 outside one. Lets a parallel_for body use
/// per-thread scratch.
int thread_index();

/// Collects the first exception thrown inside a parallel region.
class ExceptionCollector {
 public:
  template <class F>
  void run(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

template <class Body>
void parallel_for(Index n, int threads, Body&& body) {
  ExceptionCollector errors;
  const int used = static_cast<int>(n < threads ? (n < 1 ? 1 : n) : threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(used) if (used > 1)
  for (Index i = 0; i < n; ++i) {
    errors.run([&] { body(i); });
  }
  errors.rethrow();
}

}  // namespace fraudcore
