#include "fraudcore/neighbors.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"

namespace fraudcore {

namespace {
constexpr Index kTreeQueryBlock = 256;

// Every search asks for at most as many neighbours as there are rows, so a
// heap with room left means a search skipped a row it should not have.
void check_complete(const KnnHeap& heap) {
  if (!heap.full()) throw std::logic_error("fraudcore internal error: a neighbour search came back short");
}
}  // namespace

NeighborAlgorithm choose_neighbor_algorithm(Index n_rows, Index n_features, Index k) {
  if (n_features > 15 || k >= n_rows / 2) return NeighborAlgorithm::kBrute;
  return NeighborAlgorithm::kKdTree;
}

template <class T>
void NeighborIndex::fit(const ConstMatrixView<T>& X, const Metric& metric,
                        NeighborAlgorithm algorithm, Index leaf_size) {
  FRAUDCORE_CHECK(X.rows() >= 1, "X has no rows");
  FRAUDCORE_CHECK(X.cols() >= 1, "X has no columns");
  FRAUDCORE_CHECK(leaf_size >= 1, "leaf_size must be >= 1, got " << leaf_size);
  FRAUDCORE_CHECK(algorithm == NeighborAlgorithm::kBrute || algorithm == NeighborAlgorithm::kKdTree,
                  "unknown neighbour algorithm " << static_cast<int>(algorithm));
  NeighborIndex fresh;
  fresh.metric_ = metric;
  fresh.algorithm_ = algorithm;
  fresh.leaf_size_ = leaf_size;
  if (algorithm == NeighborAlgorithm::kBrute) {
    fresh.tree_.build(X, BruteForceIndex::leaf_size_for(X.rows()));
    fresh.brute_.build(fresh.tree_);
  } else {
    fresh.tree_.build(X, leaf_size);
  }
  *this = std::move(fresh);
}

void NeighborIndex::search(Index n_queries, Index k, int n_threads, const QueryLoader& load,
                           const SearchTarget& target, const BlockSink& sink) const {
  const bool brute = algorithm_ == NeighborAlgorithm::kBrute;
  const Index block = brute ? BruteForceIndex::kQueryBlock : kTreeQueryBlock;
  const Index d = n_features();
  const Index n_blocks = (n_queries + block - 1) / block;
  parallel_for(n_blocks, n_threads, [&](Index b) {
    const Index first = b * block;
    const Index count = std::min(block, n_queries - first);
    std::vector<double> rows(static_cast<std::size_t>(count * d));
    std::vector<Index> ids(static_cast<std::size_t>(count));
    load(first, count, rows.data(), ids.data());
    std::vector<double> rdist(target.rdist ? 0 : static_cast<std::size_t>(count * k));
    std::vector<KnnHeap::Id> ind(target.rdist ? 0 : static_cast<std::size_t>(count * k));
    std::vector<KnnHeap> heaps;
    heaps.reserve(static_cast<std::size_t>(count));
    for (Index i = 0; i < count; ++i) {
      if (target.rdist) {
        heaps.emplace_back(target.rdist + ids[i] * target.width, target.ind + ids[i] * target.width, k);
      } else {
        heaps.emplace_back(&rdist[i * k], &ind[i * k], k);
      }
    }
    if (brute) {
      brute_.search_block(tree_, metric_, rows.data(), count, heaps.data());
    } else {
      for (Index i = 0; i < count; ++i) tree_.search(&rows[i * d], metric_, heaps[i]);
    }
    for (auto& heap : heaps) {
      check_complete(heap);
      heap.sort();
    }
    if (!target.rdist) sink(count, ids.data(), rdist.data(), ind.data());
  });
}

template <class T>
void NeighborIndex::kneighbors(const ConstMatrixView<T>& Q, Index k, int n_threads,
                               const NeighborConsumer& consume) const {
  FRAUDCORE_CHECK(fitted(), "the neighbour index is not fitted");
  FRAUDCORE_CHECK(Q.cols() == n_features(), "X has " << Q.cols() << " features, but the index was fitted with "
                                                     << n_features() << " features");
  FRAUDCORE_CHECK(k >= 1 && k <= n_rows(), "n_neighbors must be in [1, " << n_rows()
                                                                          << "] (the fitted rows), got " << k);
  const Index d = n_features();
  search(
      Q.rows(), k, n_threads,
      [&](Index first, Index count, double* rows, Index* ids) {
        for (Index i = 0; i < count; ++i) {
          ids[i] = first + i;
          for (Index j = 0; j < d; ++j) {
            const double v = static_cast<double>(Q(first + i, j));
            FRAUDCORE_CHECK(std::isfinite(v), "X contains NaN or infinity (row "
                                                  << first + i << ", column " << j << ")");
            rows[i * d + j] = v;
          }
        }
      },
      SearchTarget{},
      [&](Index count, const Index* ids, const double* rdist, const KnnHeap::Id* ind) {
        std::vector<double> dist(static_cast<std::size_t>(count * k));
        std::vector<Index> index(static_cast<std::size_t>(count * k));
        for (Index i = 0; i < count * k; ++i) {
          dist[static_cast<std::size_t>(i)] = metric_.to_dist(rdist[i]);
          index[static_cast<std::size_t>(i)] = ind[i];
        }
        consume(count, ids, dist.data(), index.data());
      });
}

void NeighborIndex::kneighbors_one(const double* query, Index k, double* dist, Index* ind) const {
  FRAUDCORE_CHECK(fitted(), "the neighbour index is not fitted");
  FRAUDCORE_CHECK(k >= 1 && k <= n_rows(), "n_neighbors must be in [1, " << n_rows()
                                                                          << "] (the fitted rows), got " << k);
  for (Index j = 0; j < n_features(); ++j) {
    FRAUDCORE_CHECK(std::isfinite(query[j]), "X contains NaN or infinity (row 0, column " << j << ")");
  }
  std::vector<double> rdist(static_cast<std::size_t>(k));
  std::vector<KnnHeap::Id> id(static_cast<std::size_t>(k));
  KnnHeap heap(rdist.data(), id.data(), k);
  if (algorithm_ == NeighborAlgorithm::kBrute) {
    brute_.search_one(tree_, metric_, query, heap);
  } else {
    tree_.search(query, metric_, heap);
  }
  check_complete(heap);
  heap.sort();
  for (Index j = 0; j < k; ++j) {
    dist[j] = metric_.to_dist(rdist[static_cast<std::size_t>(j)]);
    ind[j] = id[static_cast<std::size_t>(j)];
  }
}

void require_finite_distances(const NeighborTable& table) {
  const Index n = table.k ? static_cast<Index>(table.dist.size()) / table.k : 0;
  for (Index i = 0; i < n; ++i) {
    FRAUDCORE_CHECK(std::isfinite(table.dist[i * table.k + table.k - 1]),
                    "distances between rows of X overflow float64 (row " << i
                        << "); scale the features down");
  }
}

NeighborTable NeighborIndex::kneighbors_fitted(Index k, int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "the neighbour index is not fitted");
  FRAUDCORE_CHECK(k >= 1 && k < n_rows(), "n_neighbors must be in [1, " << n_rows() - 1
                                                                         << "] (the other fitted rows), got " << k);
  const Index n = n_rows(), d = n_features(), width = k + 1;
  NeighborTable table;
  table.k = k;
  table.dist.resize(static_cast<std::size_t>(n * width));
  table.ind.resize(static_cast<std::size_t>(n * width));

  if (algorithm_ == NeighborAlgorithm::kBrute && metric_.kind() == Metric::Kind::kEuclidean &&
      brute_.screens()) {
    // All rows at once, each pair screened once for both of its rows.
    std::vector<KnnHeap> heaps;
    heaps.reserve(static_cast<std::size_t>(n));
    for (Index pos = 0; pos < n; ++pos) {
      const Index row = tree_.original_index(pos);
      heaps.emplace_back(&table.dist[row * width], &table.ind[row * width], width);
    }
    brute_.search_all_fitted(tree_, metric_, heaps.data(), n_threads);
    parallel_for(n, n_threads, [&](Index pos) {
      check_complete(heaps[pos]);
      heaps[pos].sort();
    });
  } else {
    // Queries in tree order: consecutive queries are spatial neighbours,
    // which keeps the search structures in cache and prunes early.
    search(
        n, width, n_threads,
        [&](Index first, Index count, double* rows, Index* ids) {
          for (Index i = 0; i < count; ++i) {
            std::copy(tree_.row(first + i), tree_.row(first + i) + d, rows + i * d);
            ids[i] = tree_.original_index(first + i);
          }
        },
        SearchTarget{table.dist.data(), table.ind.data(), width}, nullptr);
  }

  // Drop each row itself (or, crowded out by duplicates, its first
  // neighbour), within its row; then close the gaps, row by row in order:
  // row i moves down to i * k <= i * (k + 1), never over a row not yet moved.
  parallel_for((n + 1023) / 1024, n_threads, [&](Index b) {
    for (Index i = b * 1024; i < std::min(n, b * 1024 + 1024); ++i) {
      double* rd = &table.dist[i * width];
      KnnHeap::Id* id = &table.ind[i * width];
      Index drop = 0;
      for (Index j = 0; j < width; ++j) {
        if (id[j] == i) {
          drop = j;
          break;
        }
      }
      for (Index j = drop; j + 1 < width; ++j) {
        rd[j] = rd[j + 1];
        id[j] = id[j + 1];
      }
      for (Index j = 0; j < k; ++j) rd[j] = metric_.to_dist(rd[j]);
    }
  });
  for (Index i = 1; i < n; ++i) {
    std::copy(&table.dist[i * width], &table.dist[i * width] + k, &table.dist[i * k]);
    std::copy(&table.ind[i * width], &table.ind[i * width] + k, &table.ind[i * k]);
  }
  table.dist.resize(static_cast<std::size_t>(n * k));
  table.ind.resize(static_cast<std::size_t>(n * k));
  return table;
}

RowMajorMatrix<double> NeighborIndex::fitted_rows() const {
  RowMajorMatrix<double> rows(n_rows(), n_features());
  for (Index i = 0; i < n_rows(); ++i) {
    std::copy(tree_.row(i), tree_.row(i) + n_features(), rows.data() + tree_.original_index(i) * n_features());
  }
  return rows;
}

void NeighborIndex::write(ByteWriter& w) const {
  FRAUDCORE_CHECK(fitted(), "the neighbour index is not fitted");
  w.put<double>(metric_.p());
  w.put<std::int32_t>(static_cast<std::int32_t>(algorithm_));
  w.put<std::int64_t>(leaf_size_);
  w.put<std::int64_t>(n_rows());
  w.put<std::int64_t>(n_features());
  const RowMajorMatrix<double> rows = fitted_rows();
  for (Index i = 0; i < rows.size(); ++i) w.put<double>(rows.data()[i]);
}

NeighborIndex::Saved NeighborIndex::read(ByteReader& r) {
  Saved saved;
  saved.p = r.get<double>();
  const auto algorithm = r.get<std::int32_t>();
  saved.leaf_size = r.get<std::int64_t>();
  const auto n = r.get<std::int64_t>();
  const auto d = r.get<std::int64_t>();
  if (!(saved.p >= 1.0) || (algorithm != 1 && algorithm != 2) || saved.leaf_size < 1 || n < 1 ||
      d < 1 || n >= (std::int64_t{1} << 31)) {
    throw FormatError("neighbour index header is inconsistent (metric, algorithm or sizes)");
  }
  if (static_cast<std::uint64_t>(d) > r.remaining() / sizeof(double) ||
      static_cast<std::uint64_t>(n) > r.remaining() / sizeof(double) / static_cast<std::uint64_t>(d)) {
    throw FormatError("neighbour index data is truncated");
  }
  saved.algorithm = static_cast<NeighborAlgorithm>(algorithm);
  saved.rows.resize(n, d);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) {
      saved.rows(i, j) = r.get<double>();
      if (!std::isfinite(saved.rows(i, j))) throw FormatError("neighbour index holds a non-finite value");
    }
  }
  return saved;
}

NeighborIndex NeighborIndex::from_saved(const Saved& saved) {
  NeighborIndex index;
  index.fit(row_major_view(saved.rows.data(), saved.rows.rows(), saved.rows.cols()),
            Metric::minkowski(saved.p), saved.algorithm, saved.leaf_size);
  return index;
}

template void NeighborIndex::fit<float>(const ConstMatrixView<float>&, const Metric&,
                                        NeighborAlgorithm, Index);
template void NeighborIndex::fit<double>(const ConstMatrixView<double>&, const Metric&,
                                         NeighborAlgorithm, Index);
template void NeighborIndex::kneighbors<float>(const ConstMatrixView<float>&, Index, int,
                                               const NeighborConsumer&) const;
template void NeighborIndex::kneighbors<double>(const ConstMatrixView<double>&, Index, int,
                                                const NeighborConsumer&) const;

}  // namespace fraudcore
