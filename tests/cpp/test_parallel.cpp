#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <stdexcept>
#include <vector>

#include "fraudcore/parallel.hpp"
#include "fraudcore/random.hpp"

using namespace fraudcore;

TEST(Parallel, VisitsEveryIndexOnce) {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(1000, 4, [&](Index i) { hits[static_cast<std::size_t>(i)]++; });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(Parallel, FirstExceptionIsRethrownOnTheCaller) {
  EXPECT_THROW(parallel_for(100, 4,
                            [](Index i) {
                              if (i == 37) throw std::invalid_argument("bad row");
                            }),
               std::invalid_argument);
}

TEST(Parallel, ResolvesNJobsLikeJoblibCappedAtTheCores) {
  EXPECT_EQ(resolve_n_threads(1), 1);
  EXPECT_EQ(resolve_n_threads(3), std::min(3, available_cores()));
  EXPECT_EQ(resolve_n_threads(1'000'000), available_cores());
  EXPECT_EQ(resolve_n_threads(-1), available_cores());
  EXPECT_GE(resolve_n_threads(-1000), 1);
  EXPECT_THROW(resolve_n_threads(0), std::invalid_argument);
}

// GNU OpenMP's threads do not survive fork(): a child's next parallel region
// used to wait for them forever. The child must finish every index.
TEST(Parallel, ForkedChildRunsParallelLoops) {
  if (available_cores() < 2) GTEST_SKIP() << "one core: the loops run on one thread, in a child too";
  std::atomic<Index> sum{0};
  parallel_for(10'000, 2, [&](Index i) { sum += i; });  // the parent's thread pool now exists
  ASSERT_FALSE(in_forked_child());
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Per-thread scratch, as the forest uses it: a thread_index() is never
    // shared by two bodies running at once.
    std::atomic<Index> total{0};
    std::vector<std::atomic<int>> busy(2);
    std::atomic<bool> shared{false}, out_of_range{false};
    parallel_for(10'000, 2, [&](Index i) {
      const int me = thread_index();
      if (me < 0 || me >= 2) {
        out_of_range = true;
        return;
      }
      if (busy[static_cast<std::size_t>(me)].fetch_add(1) != 0) shared = true;
      total += i;
      busy[static_cast<std::size_t>(me)].fetch_sub(1);
    });
    _exit(in_forked_child() && total.load() == 10'000LL * 9'999 / 2 && !shared && !out_of_range ? 0 : 1);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      FAIL() << "the forked child's parallel loop hung";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Rng, IsDeterministicPerStreamAndInRange) {
  Rng a(42, 3), b(42, 3), c(42, 4);
  EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng(42, 3).next(), c.next());
  Rng r(1);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    counts[r.below(7)]++;
  }
  for (int n : counts) EXPECT_NEAR(n, 10000, 500);
  double sum = 0, sq = 0;
  for (int i = 0; i < 100000; ++i) {
    const double z = r.normal();
    sum += z;
    sq += z * z;
  }
  EXPECT_NEAR(sum / 1e5, 0.0, 0.02);
  EXPECT_NEAR(sq / 1e5, 1.0, 0.02);
}
