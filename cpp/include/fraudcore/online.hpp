// One transaction's FraudDetector score from its feature row, in one call.
//
// FraudDetector.score (Python) maps a table's features for each detector
// (standardised signed log1p for the isolation forest, the training
// quantile map for the others), scores them, normalises each detector's
// score against its sorted training scores, combines them (a weighted sum,
// or the supervised stage's trees on the features plus the normalised
// scores) and ranks the result among the training rows. OnlineScoring does
// the same arithmetic for one row, in the same order, with the detectors'
// single-row kernels, so each number equals the batch path's bit for bit:
//
//   raw_k     = detector k's risk (minus its score_samples; the k-NN
//               distance, the autoencoder's mean squared error)
//   below_k   = #{training scores of k < raw_k}
//   normed_k  = normal: table_k[below_k] (the caller's ndtri((b + 0.5) /
//               (n + 1)) for b = 0..n, from the same SciPy function batch
//               uses); rank: below_k / n; zscore / minmax: (raw_k - a) / b
//   final     = supervised ? trees(features, normed) : 0 + sum_k w_k normed_k
//   risk      = #{reference < final} / #reference
//   confidence = 0 + sum_k w_k [below_k / n >= threshold]
//
// The log map is the caller's (NumPy's log1p, as batch); the quantile map
// is computed here (QuantileGrid, as batch). The models are borrowed: they
// must outlive this object and not change. score() only reads, so threads
// may share one object.
#pragma once

#include <vector>

#include "fraudcore/autoencoder.hpp"
#include "fraudcore/iforest.hpp"
#include "fraudcore/knn_detector.hpp"
#include "fraudcore/lof.hpp"
#include "fraudcore/quantile_map.hpp"
#include "fraudcore/tree_ensemble.hpp"

namespace fraudcore {

enum class Normalization : int { kNormal = 0, kRank = 1, kZscore = 2, kMinmax = 3 };

struct OnlineDetector {
  // Exactly one model is set.
  const IsolationForest* forest = nullptr;
  const LocalOutlierFactor* lof = nullptr;
  const KnnDetector* knn = nullptr;
  const AutoEncoder* autoencoder = nullptr;
  bool quantile_input = true;  // false: the log map
  std::vector<double> training_sorted;
  Normalization normalization = Normalization::kNormal;
  double a = 0.0, b = 1.0;          // zscore: (mean, std); minmax: (min, span)
  std::vector<double> normal_table;  // kNormal: training_sorted.size() + 1 values
  double weight = 0.0;
};

struct OnlineResult {
  double final_score = 0.0, risk = 0.0, confidence = 0.0;
  std::vector<double> raw, normed;  // per detector
};

class OnlineScoring {
 public:
  /// Throws std::invalid_argument for inconsistent parts (sizes, a missing
  /// model, an unsorted or empty reference).
  OnlineScoring(QuantileGrid grid, std::vector<OnlineDetector> detectors,
                std::vector<double> reference, const TreeEnsemble* supervised, double threshold);

  /// Score the feature row x (n_features values) whose log map is log_x;
  /// the quantile map is written to quantile_x (n_features values).
  void score(const double* x, const double* log_x, double* quantile_x, OnlineResult& out) const;

  Index n_features() const { return grid_.n_features(); }
  Index n_detectors() const { return static_cast<Index>(detectors_.size()); }

 private:
  QuantileGrid grid_;
  std::vector<OnlineDetector> detectors_;
  std::vector<double> reference_;
  const TreeEnsemble* supervised_;
  double threshold_;
};

}  // namespace fraudcore
