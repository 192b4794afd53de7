// Local Outlier Factor (Breunig, Kriegel, Ng & Sander 2000) with
// scikit-learn's formulas, on the exact neighbour engine.
//
// With N_k(x) the k nearest fitted rows of x (for a fitted row: excluding
// itself, see NeighborIndex::kneighbors_fitted) and kdist(o) the distance
// from fitted row o to its k-th neighbour:
//   reach(x, o) = max(dist(x, o), kdist(o))
//   lrd(x)      = 1 / (mean over o in N_k(x) of reach(x, o) + 1e-10)
//   score(x)    = -mean over o in N_k(x) of lrd(o) / lrd(x)
// score is scikit-learn's negative_outlier_factor_ for the fitted rows and
// its score_samples() for new rows; higher is more normal, about -1 inside a
// cluster. The 1e-10 keeps lrd finite when more than k rows coincide.
//
// fit() keeps the fitted rows' kdist and lrd (what novelty scoring needs) and
// their scores; it holds the n x k neighbour lists only while fitting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fraudcore/neighbors.hpp"

namespace fraudcore {

class LocalOutlierFactor {
 public:
  /// Fit on X with k = n_neighbors (1 <= k < n_rows), scoring every row.
  template <class T>
  void fit(const ConstMatrixView<T>& X, const Metric& metric, NeighborAlgorithm algorithm,
           Index leaf_size, Index n_neighbors, int n_threads);

  /// score(x) of each row of Q against the fitted rows (novelty scoring).
  template <class T>
  void score_samples(const ConstMatrixView<T>& Q, double* out, int n_threads) const;

  /// score_samples() of one row x (n_features values), single-threaded.
  double score_one(const double* x) const;

  /// |x - mean of its n_neighbors nearest fitted rows|, per feature, for
  /// every row of Q, into out (Q.rows() x n_features, row-major): which
  /// features set a row apart from its neighbourhood (LOF's reason codes).
  template <class T>
  void neighbor_deviations(const ConstMatrixView<T>& Q, double* out, int n_threads) const;

  bool fitted() const { return index_.fitted(); }
  Index n_neighbors() const { return k_; }
  const NeighborIndex& index() const { return index_; }
  const std::vector<double>& negative_outlier_factor() const { return nof_; }
  const std::vector<double>& k_distance() const { return kdist_; }
  const std::vector<double>& local_reachability_density() const { return lrd_; }

  std::string serialize() const;
  /// Throws FormatError for data that is not a consistent LOF model.
  static LocalOutlierFactor deserialize(std::string_view bytes);

 private:
  NeighborIndex index_;
  Index k_ = 0;
  std::vector<double> kdist_, lrd_, nof_;
};

}  // namespace fraudcore
