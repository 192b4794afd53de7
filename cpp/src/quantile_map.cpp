#include "fraudcore/quantile_map.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"

namespace fraudcore {
namespace {

constexpr Index kRowsPerTask = 4096;

// First position in sorted g[0, m) whose value is not below x (branch-free,
// so the search costs the same for every x).
inline Index lower_bound(const double* g, Index m, double x) {
  const double* base = g;
  Index len = m;
  while (len > 1) {
    const Index half = len / 2;
    base = base[half - 1] < x ? base + half : base;
    len -= half;
  }
  return static_cast<Index>(base - g) + (len == 1 && *base < x ? 1 : 0);
}

// First position at or after `from` whose value is above x.
inline Index upper_bound(const double* g, Index m, Index from, double x) {
  Index lo = from, hi = m;
  while (lo < hi) {
    const Index mid = lo + (hi - lo) / 2;
    if (g[mid] <= x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

}  // namespace

QuantileGrid::QuantileGrid(const double* grid, Index m, Index d) : m_(m), d_(d) {
  FRAUDCORE_CHECK(m >= 1, "the quantile grid needs at least one row");
  // Column-major copy of the grid: each search then walks one contiguous column.
  columns_.resize(static_cast<std::size_t>(m * d));
  for (Index j = 0; j < d; ++j) {
    double* col = columns_.data() + j * m;
    for (Index r = 0; r < m; ++r) {
      col[r] = grid[r * d + j];
      FRAUDCORE_CHECK(!std::isnan(col[r]) && (r == 0 || col[r - 1] <= col[r]),
                      "quantile grid column " << j << " must be ascending and hold no NaN");
    }
  }
}

void QuantileGrid::map_row(const double* x, double* out) const {
  const double twice_m = 2.0 * static_cast<double>(m_);
  for (Index j = 0; j < d_; ++j) {
    const double* col = columns_.data() + j * m_;
    if (std::isnan(x[j])) {
      out[j] = 1.0;
      continue;
    }
    const Index below = lower_bound(col, m_, x[j]);
    const Index upto = below < m_ && col[below] == x[j] ? upper_bound(col, m_, below, x[j]) : below;
    out[j] = static_cast<double>(below + upto) / twice_m;
  }
}

void QuantileGrid::map(const double* X, Index n, double* out, int n_threads) const {
  const Index tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
  parallel_for(tasks, n_threads, [&](Index task) {
    const Index end = std::min(n, (task + 1) * kRowsPerTask);
    for (Index i = task * kRowsPerTask; i < end; ++i) map_row(X + i * d_, out + i * d_);
  });
}

void quantile_map(const double* X, Index n, Index d, const double* grid, Index m, double* out,
                  int n_threads) {
  QuantileGrid(grid, m, d).map(X, n, out, n_threads);
}

}  // namespace fraudcore
