#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "fraudcore/error.hpp"
#include "fraudcore/knn_detector.hpp"
#include "fraudcore/knn_heap.hpp"
#include "fraudcore/lof.hpp"
#include "fraudcore/neighbors.hpp"
#include "fraudcore/random.hpp"
#include "test_data.hpp"

using namespace fraudcore;

namespace {

ConstMatrixView<double> view(const RowMajorMatrix<double>& X) {
  return row_major_view(X.data(), X.rows(), X.cols());
}

struct Neighbors {
  std::vector<double> dist;
  std::vector<Index> ind;
};

// Exhaustive search: sort every row by (rdist, index).
Neighbors naive(const RowMajorMatrix<double>& X, const RowMajorMatrix<double>& Q, Index k,
                const Metric& metric) {
  Neighbors out;
  for (Index q = 0; q < Q.rows(); ++q) {
    std::vector<std::pair<double, Index>> all;
    for (Index i = 0; i < X.rows(); ++i) {
      all.emplace_back(metric.rdist(&Q(q, 0), &X(i, 0), X.cols()), i);
    }
    std::sort(all.begin(), all.end());
    for (Index j = 0; j < k; ++j) {
      out.dist.push_back(metric.to_dist(all[static_cast<std::size_t>(j)].first));
      out.ind.push_back(all[static_cast<std::size_t>(j)].second);
    }
  }
  return out;
}

Neighbors collect(Index n, Index k, const std::function<void(const NeighborConsumer&)>& run) {
  Neighbors out{std::vector<double>(static_cast<std::size_t>(n * k)),
                std::vector<Index>(static_cast<std::size_t>(n * k))};
  run([&](Index count, const Index* rows, const double* d, const Index* i) {
    for (Index q = 0; q < count; ++q) {
      std::copy(d + q * k, d + (q + 1) * k, out.dist.begin() + rows[q] * k);
      std::copy(i + q * k, i + (q + 1) * k, out.ind.begin() + rows[q] * k);
    }
  });
  return out;
}

Neighbors query(const NeighborIndex& index, const RowMajorMatrix<double>& Q, Index k, int threads) {
  return collect(Q.rows(), k, [&](const NeighborConsumer& c) { index.kneighbors(view(Q), k, threads, c); });
}

Neighbors fitted(const NeighborIndex& index, Index k, int threads) {
  const NeighborTable table = index.kneighbors_fitted(k, threads);
  EXPECT_EQ(table.k, k);
  return Neighbors{table.dist, std::vector<Index>(table.ind.begin(), table.ind.end())};
}

NeighborIndex make_index(const RowMajorMatrix<double>& X, double p, NeighborAlgorithm a) {
  NeighborIndex index;
  index.fit(view(X), Metric::minkowski(p), a, 10);
  return index;
}

}  // namespace

TEST(KnnHeap, KeepsTheSmallestPairsWithTiesToTheLowerIndex) {
  Rng rng(1);
  std::vector<double> rd(7);
  std::vector<KnnHeap::Id> id(7);
  KnnHeap heap(rd.data(), id.data(), 7);
  std::vector<std::pair<double, Index>> all;
  for (Index i = 0; i < 200; ++i) {
    const double r = static_cast<double>(rng.below(10));  // many ties
    all.emplace_back(r, i);
  }
  std::vector<Index> order(200);
  std::iota(order.begin(), order.end(), 0);
  for (Index i = 199; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<std::uint64_t>(i + 1))]);
  for (Index i : order) heap.push(all[i].first, all[i].second);
  heap.sort();
  std::sort(all.begin(), all.end());
  for (Index j = 0; j < 7; ++j) {
    EXPECT_EQ(rd[j], all[j].first);
    EXPECT_EQ(id[j], all[j].second);
  }
}

class EveryMetric : public ::testing::TestWithParam<double> {};

TEST_P(EveryMetric, BruteForceTreeAndExhaustiveSearchAgreeExactly) {
  const double p = GetParam();
  const Metric metric = Metric::minkowski(p);
  for (Index d : {2, 7, 19}) {
    const auto X = test_data::awkward_rows(700, d, 3 + d);
    const auto Q = test_data::awkward_rows(90, d, 99 + d);
    const Neighbors expected = naive(X, Q, 9, metric);
    for (auto algorithm : {NeighborAlgorithm::kBrute, NeighborAlgorithm::kKdTree}) {
      const auto index = make_index(X, p, algorithm);
      for (int threads : {1, 3}) {
        const Neighbors got = query(index, Q, 9, threads);
        EXPECT_EQ(got.dist, expected.dist) << "d=" << d;
        EXPECT_EQ(got.ind, expected.ind) << "d=" << d;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Minkowski, EveryMetric,
                         ::testing::Values(1.0, 2.0, 3.5, std::numeric_limits<double>::infinity()));

TEST(NeighborIndex, EveryScreeningKernelGivesTheExhaustiveResult) {
  const auto X = test_data::awkward_rows(1500, 21, 5);
  const Metric metric = Metric::minkowski(2.0);
  const Neighbors expected_q = naive(X, X.topRows(100), 8, metric);
  const std::string initial = BruteForceIndex::kernel_isa();
  for (const std::string& isa : BruteForceIndex::supported_isas()) {
    BruteForceIndex::use_isa(isa);
    const auto index = make_index(X, 2.0, NeighborAlgorithm::kBrute);
    const Neighbors got = query(index, X.topRows(100), 8, 2);
    EXPECT_EQ(got.dist, expected_q.dist) << isa;
    EXPECT_EQ(got.ind, expected_q.ind) << isa;
    // The symmetric all-rows scan against the tree's block search.
    const Neighbors all = fitted(index, 8, 2);
    const Neighbors tree = fitted(make_index(X, 2.0, NeighborAlgorithm::kKdTree), 8, 1);
    EXPECT_EQ(all.dist, tree.dist) << isa;
    EXPECT_EQ(all.ind, tree.ind) << isa;
  }
  BruteForceIndex::use_isa(initial);
  EXPECT_THROW(BruteForceIndex::use_isa("avx1024"), std::invalid_argument);
}

TEST(NeighborIndex, FittedSearchDropsTheRowItselfOrItsFirstNeighbour) {
  // Rows 0..5 coincide; with k = 3 each searches 4 neighbours: rows 0..3
  // find themselves among rows 0..3, rows 4 and 5 do not and drop row 0.
  RowMajorMatrix<double> X(10, 2);
  for (Index i = 0; i < 10; ++i) {
    X(i, 0) = i < 6 ? 0.0 : static_cast<double>(i);
    X(i, 1) = 0.0;
  }
  for (auto algorithm : {NeighborAlgorithm::kBrute, NeighborAlgorithm::kKdTree}) {
    const Neighbors got = fitted(make_index(X, 2.0, algorithm), 3, 2);
    EXPECT_EQ(std::vector<Index>(got.ind.begin(), got.ind.begin() + 3), (std::vector<Index>{1, 2, 3}));
    EXPECT_EQ(std::vector<Index>(got.ind.begin() + 6, got.ind.begin() + 9), (std::vector<Index>{0, 1, 3}));
    EXPECT_EQ(std::vector<Index>(got.ind.begin() + 15, got.ind.begin() + 18), (std::vector<Index>{1, 2, 3}));
    EXPECT_EQ(got.dist[15], 0.0);
  }
}

TEST(NeighborIndex, RejectsBadInputFromEveryThread) {
  const auto X = test_data::awkward_rows(300, 4, 2);
  const auto index = make_index(X, 2.0, NeighborAlgorithm::kBrute);
  RowMajorMatrix<double> Q = X.topRows(200);
  Q(170, 2) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(query(index, Q, 3, 2), std::invalid_argument);
  EXPECT_THROW(query(index, X, 301, 1), std::invalid_argument);
  EXPECT_THROW(fitted(index, 300, 1), std::invalid_argument);
  EXPECT_THROW(Metric::minkowski(0.5), std::invalid_argument);
  EXPECT_THROW(Metric::minkowski(std::nan("")), std::invalid_argument);
}

TEST(LocalOutlierFactor, MatchesTheFormulasOnExhaustiveNeighbours) {
  const auto X = test_data::awkward_rows(400, 5, 8);
  const Index n = X.rows(), k = 6;
  const Metric metric = Metric::minkowski(2.0);
  // Exhaustive k + 1 neighbours, the row itself (first among its
  // duplicates at distance 0, or absent) removed as scikit-learn does.
  const Neighbors all = naive(X, X, k + 1, metric);
  std::vector<double> dist;
  std::vector<Index> ind;
  for (Index i = 0; i < n; ++i) {
    Index drop = 0;
    for (Index j = 0; j <= k; ++j) {
      if (all.ind[i * (k + 1) + j] == i) drop = j;
    }
    for (Index j = 0; j <= k; ++j) {
      if (j == drop) continue;
      dist.push_back(all.dist[i * (k + 1) + j]);
      ind.push_back(all.ind[i * (k + 1) + j]);
    }
  }
  std::vector<double> lrd(n), nof(n);
  for (Index i = 0; i < n; ++i) {
    double s = 0.0;
    for (Index j = 0; j < k; ++j) s += std::max(dist[i * k + j], dist[ind[i * k + j] * k + k - 1]);
    lrd[i] = 1.0 / (s / k + 1e-10);
  }
  for (Index i = 0; i < n; ++i) {
    double s = 0.0;
    for (Index j = 0; j < k; ++j) s += lrd[ind[i * k + j]] / lrd[i];
    nof[i] = -s / k;
  }
  for (auto algorithm : {NeighborAlgorithm::kBrute, NeighborAlgorithm::kKdTree}) {
    LocalOutlierFactor lof;
    lof.fit(view(X), metric, algorithm, 10, k, 2);
    for (Index i = 0; i < n; ++i) EXPECT_DOUBLE_EQ(lof.negative_outlier_factor()[i], nof[i]) << i;
  }
}

TEST(NeighborModels, RoundTripAndRefuseDamagedData) {
  const auto X = test_data::awkward_rows(250, 3, 4);
  LocalOutlierFactor lof;
  lof.fit(view(X), Metric::minkowski(1.0), NeighborAlgorithm::kKdTree, 5, 7, 1);
  KnnDetector knn;
  knn.fit(view(X), Metric::minkowski(2.0), NeighborAlgorithm::kBrute, 30, 4, KnnAggregate::kMedian, 1);
  const auto Q = test_data::awkward_rows(40, 3, 5);
  std::vector<double> a(40), b(40);

  const LocalOutlierFactor lof2 = LocalOutlierFactor::deserialize(lof.serialize());
  lof.score_samples(view(Q), a.data(), 1);
  lof2.score_samples(view(Q), b.data(), 2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(lof2.negative_outlier_factor(), lof.negative_outlier_factor());

  const KnnDetector knn2 = KnnDetector::deserialize(knn.serialize());
  knn.distances(view(Q), a.data(), 1);
  knn2.distances(view(Q), b.data(), 2);
  EXPECT_EQ(a, b);

  const std::string lof_bytes = lof.serialize(), knn_bytes = knn.serialize();
  for (std::size_t cut = 0; cut < lof_bytes.size(); cut += 7) {
    EXPECT_THROW(LocalOutlierFactor::deserialize(std::string_view(lof_bytes.data(), cut)),
                 FormatError) << cut;
  }
  for (std::size_t cut = 0; cut < knn_bytes.size(); cut += 7) {
    EXPECT_THROW(KnnDetector::deserialize(std::string_view(knn_bytes.data(), cut)), FormatError)
        << cut;
  }
  std::string hostile = lof.serialize();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::memcpy(&hostile[hostile.size() - 8], &nan, 8);  // the last score
  EXPECT_THROW(LocalOutlierFactor::deserialize(hostile), FormatError);
  hostile = knn.serialize();
  const std::int64_t rows = std::int64_t{1} << 40;
  std::memcpy(&hostile[20], &rows, 8);  // a row count beyond the data
  EXPECT_THROW(KnnDetector::deserialize(hostile), FormatError);
}
