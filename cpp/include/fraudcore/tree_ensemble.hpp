// TreeEnsemble: the trees of a gradient-boosting model, evaluated natively:
// raw scores and exact per-feature contributions (TreeSHAP).
//
// A model is a baseline plus a sum of binary regression trees. Node k of the
// flat node table is a leaf when feature[k] < 0 (its output is value[k]);
// otherwise a row x goes to left[k] when x[feature[k]] <= threshold[k], or,
// when that value is NaN, when missing_left[k] is set, else to right[k].
// tree_begin[t] is the index of tree t's root; tree t's nodes run to
// tree_begin[t + 1] (the last tree's to the end of the table), and its child
// indices are absolute. cover[k] is how much training data reached node k
// (a count or a weight): it is what TreeSHAP averages over.
//
// decision_function(x) = baseline + sum over trees of the leaf value x
// reaches.
//
// contributions(x) (n x (d + 1)): columns 0..d-1 are the SHAP values of the
// d features (Lundberg, Erion & Lee, "Consistent individualized feature
// attribution for tree ensembles", 2018, Algorithm 2: exact, polynomial
// time, with the tree's cover as the conditional expectation); column d is
// expected_value() = baseline + sum over trees of sum over leaves of
// value * cover / root cover. Each row's columns add up to
// decision_function(x) (local accuracy), up to rounding.
//
// Construction and deserialize() validate the table (std::invalid_argument
// and FormatError respectively): each tree a proper tree (every node but the
// root has exactly one parent, with a smaller index), features in [0, d),
// finite values, non-NaN thresholds, positive covers on internal nodes with
// children's covers adding up to their parent's, depth at most kMaxDepth.
// Evaluation then cannot leave the table. Row-parallel; results do not
// depend on the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fraudcore/types.hpp"

namespace fraudcore {

struct TreeNodes {
  std::vector<std::int32_t> feature;  // < 0: a leaf
  std::vector<double> threshold;
  std::vector<std::int32_t> left, right;
  std::vector<double> value;
  std::vector<double> cover;
  std::vector<std::uint8_t> missing_left;
};

class TreeEnsemble {
 public:
  static constexpr int kMaxDepth = 64;

  TreeEnsemble() = default;
  TreeEnsemble(Index n_features, double baseline, std::vector<std::int64_t> tree_begin,
               TreeNodes nodes);

  template <class T>
  void decision_function(const ConstMatrixView<T>& X, double* out, int n_threads) const;
  /// out: n x (n_features + 1), row-major.
  template <class T>
  void contributions(const ConstMatrixView<T>& X, double* out, int n_threads) const;

  double expected_value() const { return expected_value_; }
  double baseline() const { return baseline_; }
  Index n_features() const { return n_features_; }
  int n_trees() const { return static_cast<int>(tree_begin_.size()); }
  bool fitted() const { return !tree_begin_.empty(); }
  const TreeNodes& nodes() const { return nodes_; }
  const std::vector<std::int64_t>& tree_begin() const { return tree_begin_; }

  std::string serialize() const;
  static TreeEnsemble deserialize(std::string_view bytes);

 private:
  // The problem with the table, or "" when it is valid; sets max_depth_ and
  // expected_value_.
  std::string validate();

  Index n_features_ = 0;
  double baseline_ = 0.0;
  double expected_value_ = 0.0;
  int max_depth_ = 0;
  std::vector<std::int64_t> tree_begin_;
  TreeNodes nodes_;
};

}  // namespace fraudcore
