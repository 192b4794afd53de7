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
#pragma once

#include "fraudcore/types.hpp"

namespace fraudcore {

void quantile_map(const double* X, Index n, Index d, const double* grid, Index m, double* out,
                  int n_threads);

}  // namespace fraudcore
