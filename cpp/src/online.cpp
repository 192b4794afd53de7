#include "fraudcore/online.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "fraudcore/error.hpp"

namespace fraudcore {

namespace {

// #{values < x} of sorted values (NumPy's searchsorted, side="left").
Index count_below(const std::vector<double>& sorted, double x) {
  return static_cast<Index>(std::lower_bound(sorted.begin(), sorted.end(), x) - sorted.begin());
}

bool is_sorted_finite(const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || (i > 0 && v[i - 1] > v[i])) return false;
  }
  return true;
}

int models_set(const OnlineDetector& d) {
  return (d.forest != nullptr) + (d.lof != nullptr) + (d.knn != nullptr) + (d.autoencoder != nullptr);
}

}  // namespace

OnlineScoring::OnlineScoring(QuantileGrid grid, std::vector<OnlineDetector> detectors,
                             std::vector<double> reference, const TreeEnsemble* supervised,
                             double threshold)
    : grid_(std::move(grid)),
      detectors_(std::move(detectors)),
      reference_(std::move(reference)),
      supervised_(supervised),
      threshold_(threshold) {
  const Index d = grid_.n_features();
  FRAUDCORE_CHECK(!detectors_.empty(), "online scoring needs at least one detector");
  FRAUDCORE_CHECK(!reference_.empty() && is_sorted_finite(reference_),
                  "the reference scores must be finite and ascending, and not empty");
  for (const OnlineDetector& det : detectors_) {
    FRAUDCORE_CHECK(models_set(det) == 1, "each detector needs exactly one model");
    const Index features = det.forest      ? det.forest->n_features()
                           : det.lof       ? det.lof->index().n_features()
                           : det.knn       ? det.knn->index().n_features()
                                           : det.autoencoder->n_features();
    FRAUDCORE_CHECK(features == d, "a detector has " << features << " features, the grid " << d);
    FRAUDCORE_CHECK(!det.training_sorted.empty() && is_sorted_finite(det.training_sorted),
                    "a detector's training scores must be finite and ascending, and not empty");
    FRAUDCORE_CHECK(det.normalization != Normalization::kNormal ||
                        det.normal_table.size() == det.training_sorted.size() + 1,
                    "the normal table needs one value per count of training scores below (n + 1)");
  }
  if (supervised_) {
    FRAUDCORE_CHECK(supervised_->n_features() == d + n_detectors(),
                    "the supervised stage must take the " << d << " features and "
                                                          << n_detectors() << " detector scores");
  }
}

void OnlineScoring::score(const double* x, const double* log_x, double* quantile_x,
                          OnlineResult& out) const {
  const Index d = n_features();
  const auto k = static_cast<std::size_t>(n_detectors());
  grid_.map_row(x, quantile_x);
  out.raw.resize(k);
  out.normed.resize(k);
  std::vector<double> hybrid;
  if (supervised_) {
    hybrid.assign(x, x + d);
    hybrid.resize(static_cast<std::size_t>(d) + k);
  }
  double ensemble = 0.0, confidence = 0.0;
  for (std::size_t i = 0; i < k; ++i) {
    const OnlineDetector& det = detectors_[i];
    const double* input = det.quantile_input ? quantile_x : log_x;
    double raw = 0.0;
    if (det.forest) {
      raw = -det.forest->score_one(input);
    } else if (det.lof) {
      raw = -det.lof->score_one(input);
    } else if (det.knn) {
      raw = det.knn->distance_one(input);
    } else {
      det.autoencoder->row_errors(row_major_view(input, 1, d), &raw, 1);
    }
    const Index below = count_below(det.training_sorted, raw);
    const auto n = static_cast<double>(det.training_sorted.size());
    double normed = 0.0;
    switch (det.normalization) {
      case Normalization::kNormal:
        normed = det.normal_table[static_cast<std::size_t>(below)];
        break;
      case Normalization::kRank:
        normed = static_cast<double>(below) / n;
        break;
      case Normalization::kZscore:
      case Normalization::kMinmax:
        normed = (raw - det.a) / det.b;
        break;
    }
    out.raw[i] = raw;
    out.normed[i] = normed;
    ensemble += det.weight * normed;
    confidence += det.weight * (static_cast<double>(below) / n >= threshold_ ? 1.0 : 0.0);
    if (supervised_) hybrid[static_cast<std::size_t>(d) + i] = normed;
  }
  if (supervised_) {
    supervised_->decision_function(row_major_view(hybrid.data(), 1, d + n_detectors()),
                                   &out.final_score, 1);
  } else {
    out.final_score = ensemble;
  }
  out.risk = static_cast<double>(count_below(reference_, out.final_score)) /
             static_cast<double>(reference_.size());
  out.confidence = confidence;
}

}  // namespace fraudcore
