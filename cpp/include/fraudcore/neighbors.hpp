// The exact k-nearest-neighbour engine every neighbour-based detector uses.
//
// fit() copies the rows (as float64) into a KdTree; the brute-force
// algorithm also prepares its float32 screening panels (knn_brute.hpp). Both
// algorithms are exact and return identical neighbours: pairs are ranked by
// Metric::rdist, ties by the lower row index. Distances are returned as
// distances (not reduced ones), ascending.
//
//  - kneighbors(Q, k): the k nearest fitted rows of every query row.
//  - kneighbors_fitted(k): every fitted row against the others, as one
//    n x k table. As scikit-learn's kneighbors(X=None), it searches k + 1
//    neighbours and drops the row itself or, when k + 1 duplicates of lower
//    index crowd it out, the first neighbour. The search writes straight
//    into the table, which is then compacted in place: its n x (k + 1)
//    doubles and int32 indices are the whole memory of the search.
//
// kneighbors() hands its results on per block of query rows through a
// consumer, called concurrently from the worker threads with disjoint rows,
// so a detector can reduce them to scores without storing n x k arrays.
// Work is parallel over blocks of queries (OpenMP, `n_threads`): never an
// n x n matrix. A fitted index is immutable and safe to query from several
// threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fraudcore/kd_tree.hpp"
#include "fraudcore/knn_brute.hpp"
#include "fraudcore/metric.hpp"
#include "fraudcore/serialize.hpp"

namespace fraudcore {

enum class NeighborAlgorithm : int { kBrute = 1, kKdTree = 2 };

/// The algorithm "auto" picks: the k-d tree in up to 15 dimensions (where
/// its pruning pays, the rule scikit-learn uses) unless k is at least half
/// the rows, brute force otherwise.
NeighborAlgorithm choose_neighbor_algorithm(Index n_rows, Index n_features, Index k);

/// Receives `count` query rows: rows[i] is the query's row number (in Q, or
/// in the fitted data for kneighbors_fitted), dist/ind its k neighbours at
/// dist[i * k + j], ind[i * k + j].
using NeighborConsumer =
    std::function<void(Index count, const Index* rows, const double* dist, const Index* ind)>;

/// Each fitted row's k nearest other rows: row i's distances (ascending,
/// ties by index) at dist[i * k, i * k + k), their row indices likewise.
struct NeighborTable {
  Index k = 0;
  std::vector<double> dist;
  std::vector<std::int32_t> ind;
};

/// Throws std::invalid_argument naming the first row whose neighbour
/// distances overflow float64 (the detectors cannot score such data).
void require_finite_distances(const NeighborTable& table);

class NeighborIndex {
 public:
  NeighborIndex() = default;

  /// Index the rows of X (finite values; checked). leaf_size applies to the
  /// k-d tree.
  template <class T>
  void fit(const ConstMatrixView<T>& X, const Metric& metric, NeighborAlgorithm algorithm,
           Index leaf_size);

  /// k nearest fitted rows of each row of Q (1 <= k <= n_rows; Q finite,
  /// with n_features columns; both checked).
  template <class T>
  void kneighbors(const ConstMatrixView<T>& Q, Index k, int n_threads,
                  const NeighborConsumer& consume) const;

  /// kneighbors for one query row (d finite values; checked) without
  /// threads or per-call blocks: its k distances (ascending) and row
  /// indices, the same as kneighbors gives that row.
  void kneighbors_one(const double* query, Index k, double* dist, Index* ind) const;

  /// k nearest other fitted rows of each fitted row (1 <= k < n_rows).
  NeighborTable kneighbors_fitted(Index k, int n_threads) const;

  /// Fitted row i (of the fitted data's order), without a copy.
  const double* fitted_row(Index i) const { return tree_.original_row(i); }

  /// The fitted rows in their original order (n_rows x n_features, row-major).
  RowMajorMatrix<double> fitted_rows() const;

  bool fitted() const { return tree_.n_rows() > 0; }
  Index n_rows() const { return tree_.n_rows(); }
  Index n_features() const { return tree_.n_features(); }
  const Metric& metric() const { return metric_; }
  NeighborAlgorithm algorithm() const { return algorithm_; }
  Index leaf_size() const { return leaf_size_; }

  /// What write() stores: the parameters and the rows in their fitted order.
  struct Saved {
    double p = 2.0;
    NeighborAlgorithm algorithm = NeighborAlgorithm::kKdTree;
    Index leaf_size = 30;
    RowMajorMatrix<double> rows;
  };
  /// Append the index to w.
  void write(ByteWriter& w) const;
  /// Read what write() stored, checked (FormatError otherwise) but not yet
  /// indexed, so a caller can validate the rest of a file first.
  static Saved read(ByteReader& r);
  /// Rebuild the same search structures from what read() returned.
  static NeighborIndex from_saved(const Saved& saved);

 private:
  // Fills `count` query rows (row-major, float64) starting at query number
  // `first`, and the row number each result belongs to.
  using QueryLoader = std::function<void(Index first, Index count, double* rows, Index* ids)>;
  // Receives a block's sorted (rdist, index) lists, k per query.
  using BlockSink = std::function<void(Index count, const Index* ids, const double* rdist,
                                       const KnnHeap::Id* ind)>;
  // Where results go: a table with `width` slots per row number, or (null)
  // per-block buffers handed to the sink.
  struct SearchTarget {
    double* rdist = nullptr;
    KnnHeap::Id* ind = nullptr;
    Index width = 0;
  };
  void search(Index n_queries, Index k, int n_threads, const QueryLoader& load,
              const SearchTarget& target, const BlockSink& sink) const;

  Metric metric_ = Metric::minkowski(2.0);
  NeighborAlgorithm algorithm_ = NeighborAlgorithm::kKdTree;
  Index leaf_size_ = 30;
  KdTree tree_;
  BruteForceIndex brute_;
};

}  // namespace fraudcore
