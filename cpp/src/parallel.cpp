#include "fraudcore/parallel.hpp"

#include <omp.h>

#include "fraudcore/error.hpp"

namespace fraudcore {

int available_cores() {
  const int n = omp_get_num_procs();
  return n > 0 ? n : 1;
}

int thread_index() { return omp_get_thread_num(); }

int resolve_n_threads(int n_jobs) {
  FRAUDCORE_CHECK(n_jobs != 0,
                  "n_jobs == 0 is not a thread count; use None or 1 for one "
                  "thread, -1 for all cores");
  if (n_jobs > 0) return n_jobs;
  const int n = available_cores() + 1 + n_jobs;
  return n > 1 ? n : 1;
}

}  // namespace fraudcore
