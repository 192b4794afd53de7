#include <gtest/gtest.h>

#include <atomic>
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

TEST(Parallel, ResolvesNJobsLikeJoblib) {
  EXPECT_EQ(resolve_n_threads(3), 3);
  EXPECT_EQ(resolve_n_threads(-1), available_cores());
  EXPECT_GE(resolve_n_threads(-1000), 1);
  EXPECT_THROW(resolve_n_threads(0), std::invalid_argument);
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
