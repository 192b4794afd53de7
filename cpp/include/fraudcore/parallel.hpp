// Thread-count resolution and an exception-safe parallel loop.
//
// Contract: parallel_for(n, threads, body) calls body(i) exactly once for
// every i in [0, n) (unless one throws), on at most min(threads,
// available_cores()) threads, with dynamic scheduling. The first exception
// thrown by any body is rethrown on the calling thread after the loop; later
// iterations are skipped. No exception ever crosses the OpenMP region
// boundary.
//
// Fork safety: GNU OpenMP's worker threads do not survive fork(), and a
// child's next parallel region waits for them forever. In a process forked
// from one that loaded fraudcore (a pre-forking server, a multiprocessing
// pool, Spark's Python workers), parallel_for therefore never enters an
// OpenMP region: it runs the same loop on plain threads it starts and joins
// per call, so a forked child is as parallel as its parent.
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>

#include "fraudcore/types.hpp"

namespace fraudcore {

/// Number of processors this process may run on.
int available_cores();

/// scikit-learn/joblib convention: n_jobs >= 1 asks for that many threads,
/// -1 means every core, -2 every core but one, and so on (never fewer than
/// 1). The result is capped at available_cores(): more threads than cores
/// only costs memory and time. Throws std::invalid_argument for 0.
int resolve_n_threads(int n_jobs);

/// The calling thread's number among the threads running the current
/// parallel_for, in [0, threads it uses); 0 outside one. Lets a body use
/// per-thread scratch (in a forked child too, where the loop runs on plain
/// threads).
int thread_index();

/// True in a process forked (after fraudcore was loaded) from another.
bool in_forked_child();

namespace detail {
/// parallel_for's loop on up to `threads` freshly started std::threads (the
/// caller is one of them; fewer when the system refuses more), for a forked
/// child. `body` must not throw (parallel_for wraps it in an
/// ExceptionCollector).
void run_on_plain_threads(Index n, int threads, const std::function<void(Index)>& body) noexcept;
}  // namespace detail

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
  const int cores = available_cores();
  const Index cap = threads < cores ? threads : cores;
  const int used = static_cast<int>(n < cap ? (n < 1 ? 1 : n) : cap);
  if (used > 1 && in_forked_child()) {
    detail::run_on_plain_threads(n, used, [&](Index i) { errors.run([&] { body(i); }); });
  } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(used) if (used > 1)
    for (Index i = 0; i < n; ++i) {
      errors.run([&] { body(i); });
    }
  }
  errors.rethrow();
}

}  // namespace fraudcore
