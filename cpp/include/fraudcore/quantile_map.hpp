// The quantile map FraudDetector feeds its neighbour detectors and
// autoencoder: each value's mid-rank within its column's grid of training
// quantiles,
//
//   out(i, j) = (#{g in grid_j : g < x_ij} + #{g in grid_j : g <= x_ij}) / (2 m),
//
// in [0, 1], m = the grid's length. A value between two grid points lands
// between their ranks; a value equal to a run of grid points (a discrete
// feature) lands in the run's middle. NaN maps to 1 (numpy's searchsorted
// puts NaN after every number).
//
// X is n x d row-major; grid is m x d row-major (np.quantile(..., axis=0)),
// each column ascending (checked: std::invalid_argument otherwise); out is
// n x d row-major. Parallel over blocks of rows; results do not depend on
// the thread count.
//
// QuantileGrid keeps the grid's column-major copy the map searches, for
// callers that map many single rows with one grid (online scoring).
#pragma once

#include <vector>

#include "fraudcore/types.hpp"

namespace fraudcore {

void quantile_map(const double* X, Index n, Index d, const double* grid, Index m, double* out,
                  int n_threads);

class QuantileGrid {
 public:
  /// Check and copy the m x d row-major grid (std::invalid_argument if a
  /// column is not ascending or holds NaN, or m < 1).
  QuantileGrid(const double* grid, Index m, Index d);

  /// The map of n rows of d values (X and out n x d, row-major).
  void map(const double* X, Index n, double* out, int n_threads) const;
  /// The map of one row x of d values into out.
  void map_row(const double* x, double* out) const;

  Index n_quantiles() const { return m_; }
  Index n_features() const { return d_; }

 private:
  Index m_, d_;
  std::vector<double> columns_;  // column j at [j * m, (j + 1) * m)
};

}  // namespace fraudcore
