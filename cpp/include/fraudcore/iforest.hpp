// Isolation Forest (Liu, Ting & Zhou 2008) and its extended variant with
// random hyperplane splits (Hariri, Kind & Brunner 2021).
//
// Semantics follow scikit-learn's IsolationForest: each tree is grown on
// `max_samples` rows drawn without replacement (with, if `bootstrap`) and on
// `max_features` columns drawn without replacement, to a depth of at most
// ceil(log2(max_samples)). An axis-parallel node splits on a feature drawn
// uniformly among those not constant in the node, at a threshold uniform in
// [min, max) of that feature; rows with x <= threshold go left. A leaf holding
// n training rows at depth d has path length d + c(n), where c is the average
// path length of an unsuccessful binary-search-tree lookup. The anomaly
// score is s(x) = -2^(-E[h(x)] / c(max_samples)), higher = more normal.
//
// With extension_level = k > 0 a node instead draws k + 1 of the tree's
// features, a normal vector with N(0, 1) components on them and an intercept
// point uniform in the node's bounding box; rows with n.x <= n.p go left.
//
// Storage: all trees live in one flat node array (`tree_begin` gives each
// tree's first node); this is what is saved. A node's children are adjacent
// (right = left + 1) and a leaf points at itself. Children always have larger
// indices than their parent and leaves loop only on themselves, which
// deserialize() verifies, so a walk stays in bounds whatever a file held.
//
// Scoring walks a layout derived from the nodes after fit and load: rows in
// groups of 8, interleaved, as order-preserving integer keys of their values
// (so `x > threshold` is an integer compare with the same outcome), and each
// tree's first 10 levels as an implicit heap (children of slot s at 2s + 1,
// 2s + 2; a leaf passes rows on to its left slot) whose bottom slots hold the
// path lengths, compact enough that a whole forest of 256-sample trees stays
// in L2. The 8 rows of a group step through a tree in lock-step, without
// data-dependent branches; levels below the heap follow the links.
//
// Threading: fit() is parallel over trees, score_samples() over blocks of
// rows, both with OpenMP on `n_threads` threads. Tree t draws its random
// numbers from Rng(seed, t) alone, so the forest, and every score, is the
// same whatever the thread count. A fitted forest is immutable: concurrent
// score_samples() calls on one object are safe.
//
// Memory of fit: besides the forest, O(n_rows) bytes and, per thread, the
// columns of one tree's sample that its splits read (at most max_samples x
// max_features doubles, usually far fewer), reused tree after tree. X is
// never copied whole, nor is any tree's sample kept once the tree is grown.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fraudcore/types.hpp"

namespace fraudcore {

/// c(n): average path length of an unsuccessful search in a binary search
/// tree of n nodes: 0 for n <= 1, 1 for n = 2, else
/// 2 (ln(n - 1) + Euler's gamma) - 2 (n - 1) / n.
double average_path_length(double n);

/// An axis-parallel node as scoring walks it (internal to the forest): the
/// split feature's offset in an interleaved group of rows, the tree-local
/// left child (a leaf: itself) and the threshold as an order-preserving key.
struct IsolationForestWalkNode {
  std::int32_t offset;
  std::int32_t left;
  std::uint64_t key;
};

struct IsolationForestParams {
  int n_estimators = 100;
  /// Rows per tree, 1 <= max_samples <= n_rows (the caller resolves "auto").
  Index max_samples = 256;
  /// Columns per tree, 1 <= max_features <= n_cols; 0 means all columns.
  Index max_features = 0;
  bool bootstrap = false;
  /// 0 = axis-parallel splits; k in [1, max_features - 1] = hyperplanes on
  /// k + 1 features.
  int extension_level = 0;
  std::uint64_t seed = 0;
};

class IsolationForest {
 public:
  /// Grow the forest on X (n x d, any memory order, finite values).
  /// Throws std::invalid_argument for invalid parameters, fewer than two
  /// rows, no columns, or a NaN / infinite value in a row any tree samples
  /// (in any of its columns, read or not).
  template <class T>
  void fit(const ConstMatrixView<T>& X, const IsolationForestParams& params,
           int n_threads);

  /// Write s(x) for every row of X into out[0, X.rows()).
  /// Throws std::invalid_argument if the forest is not fitted, the column
  /// count differs from fit, or X holds a NaN or infinite value.
  template <class T>
  void score_samples(const ConstMatrixView<T>& X, double* out,
                     int n_threads) const;

  /// score_samples() of one row x (n_features values), single-threaded:
  /// the same trees walked for that row alone (the batch walk takes eight
  /// rows in lock-step), the path lengths added in the same order.
  double score_one(const double* x) const;

  /// Same, but writes the mean path length E[h(x)] instead of the score.
  template <class T>
  void mean_path_length(const ConstMatrixView<T>& X, double* out,
                        int n_threads) const;

  /// Each feature's share in isolating each row, into out (X.rows() x
  /// n_features(), row-major, each row summing to 1): walking every tree, a
  /// split at depth k (the root is 0) on feature f adds 1 / (k + 1) to f.
  /// Features that cut a row off near the root, in many trees, get most of
  /// the share: the forest's reason codes. Axis-parallel forests only
  /// (extension_level 0); same checks as score_samples.
  template <class T>
  void feature_contributions(const ConstMatrixView<T>& X, double* out, int n_threads) const;

  bool fitted() const { return !tree_begin_.empty(); }
  Index n_features() const { return n_features_; }
  int n_estimators() const { return static_cast<int>(tree_begin_.size()); }
  Index max_samples() const { return max_samples_; }
  int extension_level() const { return extension_level_; }
  Index n_nodes() const { return static_cast<Index>(nodes_.size()); }
  /// Number of nodes of tree t (0 <= t < n_estimators()).
  Index tree_size(int t) const;

  /// Tree t as parallel arrays in tree-local node indices, for inspection:
  /// split feature (or plane), left child (a leaf: itself), threshold (+inf
  /// for a leaf) and leaf path length d + c(n) (0 for inner nodes).
  struct TreeArrays {
    std::vector<std::int32_t> split, left;
    std::vector<double> threshold, path;
  };
  TreeArrays export_tree(int t) const;

  /// Native body of the binary format (see serialize.hpp for the envelope).
  std::string serialize() const;
  /// Inverse of serialize(); throws FormatError on any inconsistency.
  static IsolationForest deserialize(std::string_view bytes);

 private:
  struct Node {
    /// Axis split: feature index. Hyperplane split: index of the plane.
    std::int32_t split = 0;
    /// Index (within the tree) of the left child, right = left + 1; a leaf
    /// holds its own index.
    std::int32_t left = 0;
    /// Split threshold; +inf for a leaf.
    double threshold = 0.0;
  };
  struct GrownTree;
  template <class T>
  class TreeBuilder;

  template <class T>
  void path_length_sums(const ConstMatrixView<T>& X, double* out,
                        int n_threads) const;
  using WalkNode = IsolationForestWalkNode;
  /// Derive the scoring layout (walk_, heap_*) from nodes_.
  void build_walk();
  void add_axis_tree(int t, const std::uint64_t* groups, Index n_rows, Index n_valid,
                     double* sums) const;
  void add_hyperplane_tree(int t, const double* rows, Index n_rows,
                           double* sums) const;
  /// s(x) of a mean path length.
  double score_of_mean_path(double mean) const;

  Index n_features_ = 0;
  Index max_samples_ = 0;
  int extension_level_ = 0;
  std::vector<std::int64_t> tree_begin_;
  /// Depth of the deepest leaf of each tree.
  std::vector<std::int32_t> tree_depth_;
  std::vector<Node> nodes_;
  /// Scoring layout, axis-parallel forests only: nodes_ as WalkNodes, and
  /// each tree's top levels as an implicit heap (slot keys and offsets from
  /// heap_begin_[t]; entry nodes of the bottom slots from heap_begin_[t] + t).
  std::vector<WalkNode> walk_;
  std::vector<std::int64_t> heap_begin_;
  std::vector<std::uint64_t> heap_key_;
  std::vector<std::int32_t> heap_offset_;
  std::vector<std::int32_t> heap_entry_;
  std::vector<double> heap_leaf_;
  /// Path length d + c(n) of each leaf (0 for inner nodes), by node.
  std::vector<double> path_;
  /// Hyperplane p uses plane_feature_/plane_coef_[p * (extension_level + 1)
  /// ... + extension_level].
  std::vector<std::int32_t> plane_feature_;
  std::vector<double> plane_coef_;
};

}  // namespace fraudcore
