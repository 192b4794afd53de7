// The single-row paths online scoring uses give the batch paths' numbers
// bit for bit: one neighbour query, one forest row, one quantile-map row,
// and OnlineScoring's whole pipeline against the same arithmetic on batch
// results.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fraudcore/iforest.hpp"
#include "fraudcore/knn_brute.hpp"
#include "fraudcore/knn_detector.hpp"
#include "fraudcore/lof.hpp"
#include "fraudcore/neighbors.hpp"
#include "fraudcore/online.hpp"
#include "fraudcore/quantile_map.hpp"
#include "fraudcore/random.hpp"
#include "test_data.hpp"

using namespace fraudcore;

namespace {

ConstMatrixView<double> view(const RowMajorMatrix<double>& X) {
  return row_major_view(X.data(), X.rows(), X.cols());
}

// Queries: fresh rows, copies of fitted rows, and one far outside the range.
RowMajorMatrix<double> queries(const RowMajorMatrix<double>& X, Index n, std::uint64_t seed) {
  RowMajorMatrix<double> Q = test_data::awkward_rows(n, X.cols(), seed);
  for (Index i = 0; i < n; i += 5) Q.row(i) = X.row((i * 37) % X.rows());
  for (Index j = 0; j < X.cols(); ++j) Q(n - 1, j) = 1e30 * (j % 2 ? 1 : -1);
  return Q;
}

}  // namespace

TEST(OnlineSingleRow, NeighbourQueryEqualsTheBatchQuery) {
  const RowMajorMatrix<double> X = test_data::awkward_rows(3000, 26, 1);
  const RowMajorMatrix<double> Q = queries(X, 60, 2);
  for (const auto algorithm : {NeighborAlgorithm::kBrute, NeighborAlgorithm::kKdTree}) {
    for (const double p : {2.0, 1.0}) {
      NeighborIndex index;
      index.fit(view(X), Metric::minkowski(p), algorithm, 30);
      for (const Index k : {Index{1}, Index{5}, Index{20}}) {
        std::vector<double> dist(static_cast<std::size_t>(Q.rows() * k));
        std::vector<Index> ind(dist.size());
        index.kneighbors(view(Q), k, 2, [&](Index count, const Index* rows, const double* d, const Index* i) {
          for (Index q = 0; q < count; ++q) {
            std::copy(d + q * k, d + (q + 1) * k, dist.begin() + rows[q] * k);
            std::copy(i + q * k, i + (q + 1) * k, ind.begin() + rows[q] * k);
          }
        });
        std::vector<double> one_dist(static_cast<std::size_t>(k));
        std::vector<Index> one_ind(static_cast<std::size_t>(k));
        for (Index q = 0; q < Q.rows(); ++q) {
          index.kneighbors_one(&Q(q, 0), k, one_dist.data(), one_ind.data());
          for (Index j = 0; j < k; ++j) {
            ASSERT_EQ(one_dist[static_cast<std::size_t>(j)], dist[static_cast<std::size_t>(q * k + j)]);
            ASSERT_EQ(one_ind[static_cast<std::size_t>(j)], ind[static_cast<std::size_t>(q * k + j)]);
          }
        }
      }
    }
  }
}

TEST(OnlineSingleRow, EveryScreeningKernelGivesTheSameNeighbours) {
  const RowMajorMatrix<double> X = test_data::awkward_rows(2000, 26, 3);
  const RowMajorMatrix<double> Q = queries(X, 20, 4);
  NeighborIndex index;
  index.fit(view(X), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30);
  const std::string original = BruteForceIndex::kernel_isa();
  std::vector<std::vector<double>> results;
  for (const std::string& isa : BruteForceIndex::supported_isas()) {
    BruteForceIndex::use_isa(isa);
    std::vector<double> all;
    std::vector<double> dist(7);
    std::vector<Index> ind(7);
    for (Index q = 0; q < Q.rows(); ++q) {
      index.kneighbors_one(&Q(q, 0), 7, dist.data(), ind.data());
      all.insert(all.end(), dist.begin(), dist.end());
      for (Index i : ind) all.push_back(static_cast<double>(i));
    }
    results.push_back(all);
  }
  BruteForceIndex::use_isa(original);
  for (const auto& r : results) EXPECT_EQ(r, results.front());
}

TEST(OnlineSingleRow, NeighbourQueryRefusesNonFiniteValues) {
  const RowMajorMatrix<double> X = test_data::awkward_rows(300, 4, 5);
  NeighborIndex index;
  index.fit(view(X), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30);
  const double q[4] = {0.0, NAN, 1.0, 2.0};
  double dist[3];
  Index ind[3];
  EXPECT_THROW(index.kneighbors_one(q, 3, dist, ind), std::invalid_argument);
  EXPECT_THROW(index.kneighbors_one(&X(0, 0), 301, dist, ind), std::invalid_argument);
}

TEST(OnlineSingleRow, DetectorsScoreOneRowAsTheBatch) {
  const RowMajorMatrix<double> X = test_data::awkward_rows(2500, 26, 6);
  const RowMajorMatrix<double> Q = queries(X, 40, 7);
  KnnDetector knn;
  knn.fit(view(X), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30, 5, KnnAggregate::kMean, 2);
  LocalOutlierFactor lof;
  lof.fit(view(X), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30, 20, 2);
  std::vector<double> knn_batch(static_cast<std::size_t>(Q.rows())), lof_batch(knn_batch.size());
  knn.distances(view(Q), knn_batch.data(), 2);
  lof.score_samples(view(Q), lof_batch.data(), 2);
  for (Index q = 0; q < Q.rows(); ++q) {
    EXPECT_EQ(knn.distance_one(&Q(q, 0)), knn_batch[static_cast<std::size_t>(q)]);
    EXPECT_EQ(lof.score_one(&Q(q, 0)), lof_batch[static_cast<std::size_t>(q)]);
  }
}

TEST(OnlineSingleRow, ForestScoresOneRowAsTheBatch) {
  const RowMajorMatrix<double> X = test_data::normal_rows(3000, 26, 8);
  const RowMajorMatrix<double> Q = queries(X, 50, 9);
  for (const int extension : {0, 2}) {
    for (const Index max_samples : {Index{256}, Index{3000}}) {  // shallow and deep trees
      IsolationForestParams params;
      params.n_estimators = 60;
      params.max_samples = max_samples;
      params.max_features = 26;
      params.extension_level = extension;
      params.seed = 11;
      IsolationForest forest;
      forest.fit(view(X), params, 2);
      std::vector<double> batch(static_cast<std::size_t>(Q.rows()));
      forest.score_samples(view(Q), batch.data(), 2);
      for (Index q = 0; q < Q.rows(); ++q) {
        ASSERT_EQ(forest.score_one(&Q(q, 0)), batch[static_cast<std::size_t>(q)]) << q;
      }
      const double bad[26] = {INFINITY};
      EXPECT_THROW(forest.score_one(bad), std::invalid_argument);
    }
  }
}

TEST(OnlineSingleRow, QuantileGridMapsOneRowAsTheBatch) {
  const RowMajorMatrix<double> X = test_data::awkward_rows(500, 6, 10);
  // a grid with runs of equal values, as np.quantile gives for flags
  RowMajorMatrix<double> grid(11, 6);
  for (Index r = 0; r < 11; ++r) {
    for (Index j = 0; j < 6; ++j) grid(r, j) = j % 3 == 0 ? std::floor(r / 4.0) : 10.0 + (r - 5) * 0.8;
  }
  RowMajorMatrix<double> batch(500, 6);
  quantile_map(X.data(), 500, 6, grid.data(), 11, batch.data(), 2);
  const QuantileGrid kept(grid.data(), 11, 6);
  double row[6];
  for (Index i = 0; i < 500; ++i) {
    kept.map_row(&X(i, 0), row);
    for (Index j = 0; j < 6; ++j) ASSERT_EQ(row[j], batch(i, j));
  }
  grid(3, 1) = grid(2, 1) - 1.0;
  EXPECT_THROW(QuantileGrid(grid.data(), 11, 6), std::invalid_argument);
}

TEST(OnlineScoringPipeline, EqualsTheBatchArithmetic) {
  const Index d = 8;
  const RowMajorMatrix<double> X = test_data::awkward_rows(1500, d, 12);
  const RowMajorMatrix<double> Q = queries(X, 30, 13);
  // Inputs: the identity "quantile grid" is not needed; any ascending grid.
  RowMajorMatrix<double> grid(21, d);
  for (Index r = 0; r < 21; ++r)
    for (Index j = 0; j < d; ++j) grid(r, j) = 10.0 + (r - 10) * 0.5;
  RowMajorMatrix<double> mapped(X.rows(), d), q_mapped(Q.rows(), d);
  quantile_map(X.data(), X.rows(), d, grid.data(), 21, mapped.data(), 1);
  quantile_map(Q.data(), Q.rows(), d, grid.data(), 21, q_mapped.data(), 1);

  IsolationForestParams params;
  params.n_estimators = 40;
  params.max_samples = 256;
  params.max_features = d;
  params.seed = 3;
  IsolationForest forest;
  forest.fit(view(X), params, 1);
  KnnDetector knn;
  knn.fit(view(mapped), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30, 5, KnnAggregate::kLargest, 1);

  // training risks, sorted; a "normal" table (any ascending values) for the forest
  std::vector<double> forest_train(static_cast<std::size_t>(X.rows())), knn_train(forest_train.size());
  forest.score_samples(view(X), forest_train.data(), 1);
  for (double& v : forest_train) v = -v;
  knn_train = knn.fitted_distances();
  std::sort(forest_train.begin(), forest_train.end());
  std::sort(knn_train.begin(), knn_train.end());
  std::vector<double> table(forest_train.size() + 1);
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = std::sqrt(static_cast<double>(i)) - 20.0;

  OnlineDetector a;
  a.forest = &forest;
  a.quantile_input = false;
  a.training_sorted = forest_train;
  a.normalization = Normalization::kNormal;
  a.normal_table = table;
  a.weight = 0.8;
  OnlineDetector b;
  b.knn = &knn;
  b.training_sorted = knn_train;
  b.normalization = Normalization::kRank;
  b.weight = 0.2;
  std::vector<double> reference;
  for (int i = 0; i < 500; ++i) reference.push_back(-25.0 + 0.05 * i);
  const double threshold = 0.9;
  const OnlineScoring scoring(QuantileGrid(grid.data(), 21, d), {a, b}, reference, nullptr, threshold);

  std::vector<double> raw_a(static_cast<std::size_t>(Q.rows())), raw_b(raw_a.size());
  forest.score_samples(view(Q), raw_a.data(), 2);
  knn.distances(view(q_mapped), raw_b.data(), 2);
  const auto below = [](const std::vector<double>& s, double x) {
    return static_cast<Index>(std::lower_bound(s.begin(), s.end(), x) - s.begin());
  };
  std::vector<double> quantile_x(static_cast<std::size_t>(d));
  OnlineResult result;
  for (Index q = 0; q < Q.rows(); ++q) {
    // The "log map" is the row itself here: the forest was fitted on X.
    scoring.score(&Q(q, 0), &Q(q, 0), quantile_x.data(), result);
    for (Index j = 0; j < d; ++j) ASSERT_EQ(quantile_x[static_cast<std::size_t>(j)], q_mapped(q, j));
    const double ra = -raw_a[static_cast<std::size_t>(q)], rb = raw_b[static_cast<std::size_t>(q)];
    const Index ba = below(forest_train, ra), bb = below(knn_train, rb);
    const double na = table[static_cast<std::size_t>(ba)];
    const double nb = static_cast<double>(bb) / static_cast<double>(knn_train.size());
    const double final_score = 0.0 + 0.8 * na + 0.2 * nb;
    EXPECT_EQ(result.raw[0], ra);
    EXPECT_EQ(result.raw[1], rb);
    EXPECT_EQ(result.normed[0], na);
    EXPECT_EQ(result.normed[1], nb);
    EXPECT_EQ(result.final_score, final_score);
    EXPECT_EQ(result.risk, static_cast<double>(below(reference, final_score)) / 500.0);
    const double rank_a = static_cast<double>(ba) / static_cast<double>(forest_train.size());
    EXPECT_EQ(result.confidence, 0.0 + 0.8 * (rank_a >= threshold) + 0.2 * (nb >= threshold));
  }
}

TEST(OnlineScoringPipeline, RefusesInconsistentParts) {
  const RowMajorMatrix<double> X = test_data::awkward_rows(200, 4, 14);
  KnnDetector knn;
  knn.fit(view(X), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30, 3, KnnAggregate::kLargest, 1);
  RowMajorMatrix<double> grid(3, 4);
  for (Index r = 0; r < 3; ++r)
    for (Index j = 0; j < 4; ++j) grid(r, j) = r;
  OnlineDetector det;
  det.knn = &knn;
  det.training_sorted = {0.0, 1.0};
  det.normalization = Normalization::kNormal;  // but no table
  EXPECT_THROW(OnlineScoring(QuantileGrid(grid.data(), 3, 4), {det}, {0.0}, nullptr, 0.9),
               std::invalid_argument);
  det.normalization = Normalization::kRank;
  EXPECT_THROW(OnlineScoring(QuantileGrid(grid.data(), 3, 4), {det}, {1.0, 0.0}, nullptr, 0.9),
               std::invalid_argument);
  EXPECT_THROW(OnlineScoring(QuantileGrid(grid.data(), 2, 6), {det}, {0.0}, nullptr, 0.9),
               std::invalid_argument);
  det.knn = nullptr;
  EXPECT_THROW(OnlineScoring(QuantileGrid(grid.data(), 3, 4), {det}, {0.0}, nullptr, 0.9),
               std::invalid_argument);
}
