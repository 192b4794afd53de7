#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "fraudcore/quantile_map.hpp"
#include "fraudcore/random.hpp"

using namespace fraudcore;

namespace {
// The definition, counted plainly.
double mid_rank(const std::vector<double>& grid, Index m, Index d, Index j, double x) {
  if (std::isnan(x)) return 1.0;
  Index below = 0, upto = 0;
  for (Index r = 0; r < m; ++r) {
    below += grid[r * d + j] < x;
    upto += grid[r * d + j] <= x;
  }
  return static_cast<double>(below + upto) / (2.0 * static_cast<double>(m));
}
}  // namespace

TEST(QuantileMap, EqualsTheCountedDefinitionWithTiesAndOutsideValues) {
  const Index n = 10'000, d = 3, m = 101;
  Rng rng(5);
  std::vector<double> grid(m * d), X(n * d), out(n * d);
  for (Index r = 0; r < m; ++r) {
    grid[r * d + 0] = -1.0 + 2.0 * static_cast<double>(r) / (m - 1);  // continuous
    grid[r * d + 1] = static_cast<double>(r / 20);                    // runs of 20 ties
    grid[r * d + 2] = 0.0;                                            // constant
  }
  for (Index i = 0; i < n; ++i) {
    X[i * d + 0] = -1.5 + 3.0 * rng.uniform();
    X[i * d + 1] = static_cast<double>(static_cast<int>(rng.uniform() * 7) - 1);
    X[i * d + 2] = i % 3 == 0 ? 0.0 : (i % 3 == 1 ? -1.0 : 1.0);
  }
  X[0] = std::numeric_limits<double>::quiet_NaN();
  X[3] = grid[50 * d];  // exactly on a grid point
  for (int threads : {1, 2, 3}) {
    quantile_map(X.data(), n, d, grid.data(), m, out.data(), threads);
    for (Index i = 0; i < n; ++i) {
      for (Index j = 0; j < d; ++j) {
        ASSERT_EQ(out[i * d + j], mid_rank(grid, m, d, j, X[i * d + j])) << i << "," << j;
      }
    }
  }
  EXPECT_EQ(out[0], 1.0);
  EXPECT_DOUBLE_EQ(out[3], 101.0 / 202.0);
}

TEST(QuantileMap, RejectsAGridThatIsNotAscending) {
  std::vector<double> grid{0.0, 2.0, 1.0}, X{0.5}, out(1);
  EXPECT_THROW(quantile_map(X.data(), 1, 1, grid.data(), 3, out.data(), 1), std::invalid_argument);
  EXPECT_THROW(quantile_map(X.data(), 1, 1, grid.data(), 0, out.data(), 1), std::invalid_argument);
}
