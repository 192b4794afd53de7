#include "fraudcore/lof.hpp"

#include <algorithm>
#include <cstdint>
#include <cmath>

#include "fraudcore/error.hpp"

namespace fraudcore {

namespace {

// lrd of a row from its k neighbour distances and indices.
template <class Id>
double reachability_density(const double* dist, const Id* ind, Index k,
                            const std::vector<double>& kdist) {
  double sum = 0.0;
  for (Index j = 0; j < k; ++j) sum += std::max(dist[j], kdist[static_cast<std::size_t>(ind[j])]);
  return 1.0 / (sum / static_cast<double>(k) + 1e-10);
}

// -mean(lrd(o) / lrd(x)) over the k neighbours o.
template <class Id>
double lof_score(double own_lrd, const Id* ind, Index k, const std::vector<double>& lrd) {
  double sum = 0.0;
  for (Index j = 0; j < k; ++j) sum += lrd[static_cast<std::size_t>(ind[j])] / own_lrd;
  return -(sum / static_cast<double>(k));
}

}  // namespace

template <class T>
void LocalOutlierFactor::fit(const ConstMatrixView<T>& X, const Metric& metric,
                             NeighborAlgorithm algorithm, Index leaf_size, Index n_neighbors,
                             int n_threads) {
  FRAUDCORE_CHECK(X.rows() >= 2, "LocalOutlierFactor needs at least 2 rows, got " << X.rows());
  FRAUDCORE_CHECK(n_neighbors >= 1 && n_neighbors < X.rows(),
                  "n_neighbors must be in [1, " << X.rows() - 1 << "], got " << n_neighbors);
  LocalOutlierFactor model;
  model.k_ = n_neighbors;
  model.index_.fit(X, metric, algorithm, leaf_size);
  const Index n = X.rows(), k = n_neighbors;
  const NeighborTable table = model.index_.kneighbors_fitted(k, n_threads);
  require_finite_distances(table);
  model.kdist_.resize(static_cast<std::size_t>(n));
  model.lrd_.resize(static_cast<std::size_t>(n));
  model.nof_.resize(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) model.kdist_[static_cast<std::size_t>(i)] = table.dist[i * k + k - 1];
  for (Index i = 0; i < n; ++i) {
    model.lrd_[static_cast<std::size_t>(i)] =
        reachability_density(&table.dist[i * k], &table.ind[i * k], k, model.kdist_);
  }
  for (Index i = 0; i < n; ++i) {
    model.nof_[static_cast<std::size_t>(i)] =
        lof_score(model.lrd_[static_cast<std::size_t>(i)], &table.ind[i * k], k, model.lrd_);
  }
  *this = std::move(model);
}

template <class T>
void LocalOutlierFactor::score_samples(const ConstMatrixView<T>& Q, double* out,
                                       int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "LocalOutlierFactor is not fitted");
  index_.kneighbors(Q, k_, n_threads,
                    [&](Index count, const Index* rows, const double* d, const Index* i) {
                      for (Index q = 0; q < count; ++q) {
                        const double own = reachability_density(d + q * k_, i + q * k_, k_, kdist_);
                        out[rows[q]] = lof_score(own, i + q * k_, k_, lrd_);
                      }
                    });
}

double LocalOutlierFactor::score_one(const double* x) const {
  FRAUDCORE_CHECK(fitted(), "LocalOutlierFactor is not fitted");
  std::vector<double> dist(static_cast<std::size_t>(k_));
  std::vector<Index> ind(static_cast<std::size_t>(k_));
  index_.kneighbors_one(x, k_, dist.data(), ind.data());
  return lof_score(reachability_density(dist.data(), ind.data(), k_, kdist_), ind.data(), k_, lrd_);
}

std::string LocalOutlierFactor::serialize() const {
  FRAUDCORE_CHECK(fitted(), "LocalOutlierFactor is not fitted");
  ByteWriter w;
  index_.write(w);
  w.put<std::int64_t>(k_);
  w.put_vector(kdist_);
  w.put_vector(lrd_);
  w.put_vector(nof_);
  return std::move(w.bytes());
}

LocalOutlierFactor LocalOutlierFactor::deserialize(std::string_view bytes) {
  ByteReader r(bytes, "LocalOutlierFactor data");
  LocalOutlierFactor model;
  const NeighborIndex::Saved saved = NeighborIndex::read(r);
  model.k_ = r.get<std::int64_t>();
  model.kdist_ = r.get_vector<double>();
  model.lrd_ = r.get_vector<double>();
  model.nof_ = r.get_vector<double>();
  r.expect_end();
  const Index rows = saved.rows.rows();
  const auto n = static_cast<std::size_t>(rows);
  if (model.k_ < 1 || model.k_ >= rows || model.kdist_.size() != n ||
      model.lrd_.size() != n || model.nof_.size() != n) {
    throw FormatError("LocalOutlierFactor data is inconsistent (n_neighbors or array sizes)");
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!(model.kdist_[i] >= 0.0) || !std::isfinite(model.kdist_[i]) || !(model.lrd_[i] > 0.0) ||
        !std::isfinite(model.lrd_[i]) || !std::isfinite(model.nof_[i])) {
      throw FormatError("LocalOutlierFactor data holds an invalid density or distance");
    }
  }
  model.index_ = NeighborIndex::from_saved(saved);  // only once the file checks out
  return model;
}

template <class T>
void LocalOutlierFactor::neighbor_deviations(const ConstMatrixView<T>& Q, double* out, int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "LocalOutlierFactor is not fitted");
  const Index d = index_.n_features();
  index_.kneighbors(Q, k_, n_threads, [&](Index count, const Index* queries, const double*, const Index* ind) {
    for (Index q = 0; q < count; ++q) {
      double* dev = out + queries[q] * d;
      std::fill(dev, dev + d, 0.0);
      for (Index j = 0; j < k_; ++j) {
        const double* neighbour = index_.fitted_row(ind[q * k_ + j]);
        for (Index f = 0; f < d; ++f) dev[f] += neighbour[f];
      }
      for (Index f = 0; f < d; ++f) {
        dev[f] = std::fabs(static_cast<double>(Q(queries[q], f)) - dev[f] / static_cast<double>(k_));
      }
    }
  });
}

template void LocalOutlierFactor::neighbor_deviations<float>(const ConstMatrixView<float>&, double*, int) const;
template void LocalOutlierFactor::neighbor_deviations<double>(const ConstMatrixView<double>&, double*, int) const;
template void LocalOutlierFactor::fit<float>(const ConstMatrixView<float>&, const Metric&,
                                             NeighborAlgorithm, Index, Index, int);
template void LocalOutlierFactor::fit<double>(const ConstMatrixView<double>&, const Metric&,
                                              NeighborAlgorithm, Index, Index, int);
template void LocalOutlierFactor::score_samples<float>(const ConstMatrixView<float>&, double*,
                                                       int) const;
template void LocalOutlierFactor::score_samples<double>(const ConstMatrixView<double>&, double*,
                                                        int) const;

}  // namespace fraudcore
