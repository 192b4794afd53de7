#include "fraudcore/parallel.hpp"

#include <omp.h>
#include <pthread.h>

#include <system_error>
#include <thread>
#include <vector>

#include "fraudcore/error.hpp"

namespace fraudcore {

namespace {
std::atomic<bool> forked{false};

// A plain thread's number while it runs a loop of run_on_plain_threads; -1
// otherwise (then OpenMP's number counts).
thread_local int plain_thread_index = -1;

// Sets the calling thread's plain_thread_index for a scope.
struct PlainThreadIndex {
  int saved;
  explicit PlainThreadIndex(int index) : saved(plain_thread_index) { plain_thread_index = index; }
  ~PlainThreadIndex() { plain_thread_index = saved; }
};

// Registered when this library is loaded: every process forked after that
// knows it is a child. The handler only stores a flag (async-signal-safe).
const int fork_handler_registered = pthread_atfork(nullptr, nullptr, [] { forked.store(true); });
}  // namespace

int available_cores() {
  const int n = omp_get_num_procs();
  return n > 0 ? n : 1;
}

int thread_index() { return plain_thread_index >= 0 ? plain_thread_index : omp_get_thread_num(); }

int resolve_n_threads(int n_jobs) {
  FRAUDCORE_CHECK(n_jobs != 0,
                  "n_jobs == 0 is not a thread count; use None or 1 for one "
                  "thread, -1 for all cores");
  const int cores = available_cores();
  if (n_jobs > 0) return n_jobs < cores ? n_jobs : cores;
  const long long n = static_cast<long long>(cores) + 1 + n_jobs;
  return n > 1 ? static_cast<int>(n) : 1;
}

bool in_forked_child() {
  (void)fork_handler_registered;
  return forked.load(std::memory_order_relaxed);
}

namespace detail {
void run_on_plain_threads(Index n, int threads, const std::function<void(Index)>& body) noexcept {
  std::atomic<Index> next{0};
  const auto work = [&](int index) {
    const PlainThreadIndex numbered(index);
    for (Index i = next.fetch_add(1); i < n; i = next.fetch_add(1)) body(i);
  };
  struct JoinAll {  // joins whatever was started, however this function is left
    std::vector<std::thread> threads;
    ~JoinAll() {
      for (std::thread& t : threads) t.join();
    }
  } helpers;
  for (int t = 1; t < threads; ++t) {
    try {
      helpers.threads.reserve(static_cast<std::size_t>(threads - 1));
      helpers.threads.emplace_back(work, t);
    } catch (...) {
      break;  // no more threads to be had (system_error, bad_alloc): the ones running finish the loop
    }
  }
  work(0);
}
}  // namespace detail

}  // namespace fraudcore
