// The k-nearest-neighbour outlier score (Ramaswamy, Rastogi & Shim 2000;
// Angiulli & Pizzuti 2002): how far a row lies from its k nearest fitted
// rows, as the k-th distance ("largest"), their mean or their median. A
// fitted row's own score excludes the row itself (as PyOD's KNN computes
// its training scores); a new row is scored against every fitted row.
// Larger is more abnormal.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fraudcore/neighbors.hpp"

namespace fraudcore {

enum class KnnAggregate : int { kLargest = 0, kMean = 1, kMedian = 2 };

class KnnDetector {
 public:
  /// Fit on X with k = n_neighbors (1 <= k < n_rows), scoring every row.
  template <class T>
  void fit(const ConstMatrixView<T>& X, const Metric& metric, NeighborAlgorithm algorithm,
           Index leaf_size, Index n_neighbors, KnnAggregate aggregate, int n_threads);

  /// Aggregated neighbour distance of each row of Q.
  template <class T>
  void distances(const ConstMatrixView<T>& Q, double* out, int n_threads) const;

  /// distances() of one row x (n_features values), single-threaded.
  double distance_one(const double* x) const;

  bool fitted() const { return index_.fitted(); }
  Index n_neighbors() const { return k_; }
  KnnAggregate aggregate() const { return aggregate_; }
  const NeighborIndex& index() const { return index_; }
  /// The fitted rows' own scores (each excluding itself).
  const std::vector<double>& fitted_distances() const { return fitted_; }

  std::string serialize() const;
  static KnnDetector deserialize(std::string_view bytes);

 private:
  double reduce(const double* dist) const;

  NeighborIndex index_;
  Index k_ = 0;
  KnnAggregate aggregate_ = KnnAggregate::kLargest;
  std::vector<double> fitted_;
};

}  // namespace fraudcore
