#include "fraudcore/knn_detector.hpp"

#include <cmath>

#include "fraudcore/error.hpp"

namespace fraudcore {

double KnnDetector::reduce(const double* dist) const {
  // dist is ascending, so the k-th distance and the median are positions.
  switch (aggregate_) {
    case KnnAggregate::kLargest:
      return dist[k_ - 1];
    case KnnAggregate::kMean: {
      double sum = 0.0;
      for (Index j = 0; j < k_; ++j) sum += dist[j];
      return sum / static_cast<double>(k_);
    }
    case KnnAggregate::kMedian:
      return k_ % 2 ? dist[k_ / 2] : (dist[k_ / 2 - 1] + dist[k_ / 2]) / 2.0;
  }
  return dist[k_ - 1];
}

template <class T>
void KnnDetector::fit(const ConstMatrixView<T>& X, const Metric& metric,
                      NeighborAlgorithm algorithm, Index leaf_size, Index n_neighbors,
                      KnnAggregate aggregate, int n_threads) {
  FRAUDCORE_CHECK(X.rows() >= 2, "KNNDetector needs at least 2 rows, got " << X.rows());
  FRAUDCORE_CHECK(n_neighbors >= 1 && n_neighbors < X.rows(),
                  "n_neighbors must be in [1, " << X.rows() - 1 << "], got " << n_neighbors);
  KnnDetector model;
  model.k_ = n_neighbors;
  model.aggregate_ = aggregate;
  model.index_.fit(X, metric, algorithm, leaf_size);
  const NeighborTable table = model.index_.kneighbors_fitted(n_neighbors, n_threads);
  require_finite_distances(table);
  model.fitted_.resize(static_cast<std::size_t>(X.rows()));
  for (Index i = 0; i < X.rows(); ++i) {
    model.fitted_[static_cast<std::size_t>(i)] = model.reduce(&table.dist[i * n_neighbors]);
  }
  *this = std::move(model);
}

template <class T>
void KnnDetector::distances(const ConstMatrixView<T>& Q, double* out, int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "KNNDetector is not fitted");
  index_.kneighbors(Q, k_, n_threads,
                    [&](Index count, const Index* rows, const double* d, const Index*) {
                      for (Index q = 0; q < count; ++q) out[rows[q]] = reduce(d + q * k_);
                    });
}

double KnnDetector::distance_one(const double* x) const {
  FRAUDCORE_CHECK(fitted(), "KNNDetector is not fitted");
  std::vector<double> dist(static_cast<std::size_t>(k_));
  std::vector<Index> ind(static_cast<std::size_t>(k_));
  index_.kneighbors_one(x, k_, dist.data(), ind.data());
  return reduce(dist.data());
}

std::string KnnDetector::serialize() const {
  FRAUDCORE_CHECK(fitted(), "KNNDetector is not fitted");
  ByteWriter w;
  index_.write(w);
  w.put<std::int64_t>(k_);
  w.put<std::int32_t>(static_cast<std::int32_t>(aggregate_));
  w.put_vector(fitted_);
  return std::move(w.bytes());
}

KnnDetector KnnDetector::deserialize(std::string_view bytes) {
  ByteReader r(bytes, "KNNDetector data");
  KnnDetector model;
  const NeighborIndex::Saved saved = NeighborIndex::read(r);
  model.k_ = r.get<std::int64_t>();
  const auto aggregate = r.get<std::int32_t>();
  model.fitted_ = r.get_vector<double>();
  r.expect_end();
  const Index rows = saved.rows.rows();
  if (model.k_ < 1 || model.k_ >= rows || aggregate < 0 || aggregate > 2 ||
      model.fitted_.size() != static_cast<std::size_t>(rows)) {
    throw FormatError("KNNDetector data is inconsistent (n_neighbors, method or array size)");
  }
  for (double v : model.fitted_) {
    if (!(v >= 0.0) || !std::isfinite(v)) throw FormatError("KNNDetector data holds an invalid distance");
  }
  model.aggregate_ = static_cast<KnnAggregate>(aggregate);
  model.index_ = NeighborIndex::from_saved(saved);  // only once the file checks out
  return model;
}

template void KnnDetector::fit<float>(const ConstMatrixView<float>&, const Metric&,
                                      NeighborAlgorithm, Index, Index, KnnAggregate, int);
template void KnnDetector::fit<double>(const ConstMatrixView<double>&, const Metric&,
                                       NeighborAlgorithm, Index, Index, KnnAggregate, int);
template void KnnDetector::distances<float>(const ConstMatrixView<float>&, double*, int) const;
template void KnnDetector::distances<double>(const ConstMatrixView<double>&, double*, int) const;

}  // namespace fraudcore
