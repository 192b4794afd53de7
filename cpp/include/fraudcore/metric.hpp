// Minkowski distances as the neighbour engine computes them.
//
// Every search ranks points by the "reduced distance" (rdist), a cheaper
// function with the same order as the distance: the sum of squared
// differences for p = 2, of absolute differences for p = 1, of |diff|^p for
// other finite p, and the largest absolute difference for p = inf. to_dist()
// turns an rdist into the distance (sqrt, identity, pow(., 1/p)).
//
// Contract: rdist() adds the per-feature terms in feature order 0..d-1 with
// one rounding per operation, as scikit-learn's DistanceMetric does, and is
// the only function that computes an exact rdist, so every algorithm (brute
// force or tree) ranks a pair by the very same bits. min_rdist_box() is a
// lower bound that is also monotone in floating point: for any point x inside
// the box, min_rdist_box(q, box) <= rdist(q, x) as computed, so pruning by it
// never drops a point that would have been kept.
#pragma once

#include <cmath>
#include <string>

#include "fraudcore/types.hpp"

namespace fraudcore {

class Metric {
 public:
  enum class Kind : int { kManhattan = 1, kEuclidean = 2, kMinkowski = 3, kChebyshev = 4 };

  /// The Minkowski distance of order p: p >= 1 (p = inf is Chebyshev).
  /// Throws std::invalid_argument for p < 1 or NaN.
  static Metric minkowski(double p);

  Kind kind() const { return kind_; }
  double p() const { return p_; }
  std::string name() const;

  /// Reduced distance between two rows of length d (see the header).
  double rdist(const double* a, const double* b, Index d) const;
  double to_dist(double rdist) const;

  /// Lower bound of rdist(q, x) over every x with lo <= x <= hi.
  double min_rdist_box(const double* q, const double* lo, const double* hi, Index d) const;

 private:
  Metric(Kind kind, double p) : kind_(kind), p_(p) {}
  Kind kind_ = Kind::kEuclidean;
  double p_ = 2.0;
};

}  // namespace fraudcore
