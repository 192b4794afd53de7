#include "fraudcore/tree_ensemble.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"
#include "fraudcore/serialize.hpp"

namespace fraudcore {
namespace {

constexpr Index kRowsPerTask = 256;

// One element of TreeSHAP's path of unique features (Lundberg et al. 2018,
// Algorithm 2): the feature split on, the share of cover that flows along
// the path when the feature is unknown (zero_fraction) or known
// (one_fraction), and the permutation weight of subsets of this size.
struct PathElement {
  std::int32_t feature = -1;
  double zero_fraction = 0.0;
  double one_fraction = 0.0;
  double weight = 0.0;
};

// Append a feature to the path of length depth (elements 0..depth-1) and
// update the subset weights.
void extend_path(PathElement* path, int depth, double zero_fraction, double one_fraction,
                 std::int32_t feature) {
  path[depth] = {feature, zero_fraction, one_fraction, depth == 0 ? 1.0 : 0.0};
  const double scale = 1.0 / static_cast<double>(depth + 1);
  for (int i = depth - 1; i >= 0; --i) {
    path[i + 1].weight += one_fraction * path[i].weight * static_cast<double>(i + 1) * scale;
    path[i].weight = zero_fraction * path[i].weight * static_cast<double>(depth - i) * scale;
  }
}

// Undo extend_path for element `index` of the path ending at `depth`.
void unwind_path(PathElement* path, int depth, int index) {
  const double one = path[index].one_fraction, zero = path[index].zero_fraction;
  double next = path[depth].weight;
  for (int i = depth - 1; i >= 0; --i) {
    if (one != 0.0) {
      const double kept = path[i].weight;
      path[i].weight = next * static_cast<double>(depth + 1) / (static_cast<double>(i + 1) * one);
      next = kept - path[i].weight * zero * static_cast<double>(depth - i) / static_cast<double>(depth + 1);
    } else {
      path[i].weight = path[i].weight * static_cast<double>(depth + 1) /
                       (zero * static_cast<double>(depth - i));
    }
  }
  for (int i = index; i < depth; ++i) {
    path[i].feature = path[i + 1].feature;
    path[i].zero_fraction = path[i + 1].zero_fraction;
    path[i].one_fraction = path[i + 1].one_fraction;
  }
}

// The total weight of the path with element `index` unwound, without
// changing the path.
double unwound_path_sum(const PathElement* path, int depth, int index) {
  const double one = path[index].one_fraction, zero = path[index].zero_fraction;
  double next = path[depth].weight, total = 0.0;
  for (int i = depth - 1; i >= 0; --i) {
    if (one != 0.0) {
      const double part = next * static_cast<double>(depth + 1) / (static_cast<double>(i + 1) * one);
      total += part;
      next = path[i].weight - part * zero * static_cast<double>(depth - i) / static_cast<double>(depth + 1);
    } else {
      total += path[i].weight / zero * static_cast<double>(depth + 1) / static_cast<double>(depth - i);
    }
  }
  return total;
}

inline bool goes_left(const TreeNodes& t, std::int64_t node, double x) {
  return std::isnan(x) ? t.missing_left[node] != 0 : x <= t.threshold[node];
}

// TreeSHAP's recursion from `node`; `parent_path` holds the path so far
// (depth + 1 elements are copied into this call's own segment after it).
void shap_recurse(const TreeNodes& t, const double* x, double* phi, std::int64_t node,
                  PathElement* parent_path, int depth, double zero_fraction, double one_fraction,
                  std::int32_t feature) {
  PathElement* path = parent_path + depth + 1;
  std::copy(parent_path, parent_path + depth + 1, path);
  extend_path(path, depth, zero_fraction, one_fraction, feature);
  const std::int32_t split = t.feature[node];
  if (split < 0) {
    for (int i = 1; i <= depth; ++i) {
      const double w = unwound_path_sum(path, depth, i);
      phi[path[i].feature] += w * (path[i].one_fraction - path[i].zero_fraction) * t.value[node];
    }
    return;
  }
  const bool left = goes_left(t, node, x[split]);
  const std::int64_t hot = left ? t.left[node] : t.right[node];
  const std::int64_t cold = left ? t.right[node] : t.left[node];
  const double hot_zero = t.cover[hot] / t.cover[node];
  const double cold_zero = t.cover[cold] / t.cover[node];
  double incoming_zero = 1.0, incoming_one = 1.0;
  int k = 0;
  while (k <= depth && path[k].feature != split) ++k;
  if (k <= depth) {  // split on this feature before: undo that split, then redo it below
    incoming_zero = path[k].zero_fraction;
    incoming_one = path[k].one_fraction;
    unwind_path(path, depth, k);
    --depth;
  }
  shap_recurse(t, x, phi, hot, path, depth + 1, hot_zero * incoming_zero, incoming_one, split);
  shap_recurse(t, x, phi, cold, path, depth + 1, cold_zero * incoming_zero, 0.0, split);
}

template <class T>
void gather_row(const ConstMatrixView<T>& X, Index i, std::vector<double>& row) {
  for (Index j = 0; j < X.cols(); ++j) row[static_cast<std::size_t>(j)] = static_cast<double>(X(i, j));
}

}  // namespace

TreeEnsemble::TreeEnsemble(Index n_features, double baseline, std::vector<std::int64_t> tree_begin,
                           TreeNodes nodes)
    : n_features_(n_features), baseline_(baseline), tree_begin_(std::move(tree_begin)),
      nodes_(std::move(nodes)) {
  const std::string problem = validate();
  FRAUDCORE_CHECK(problem.empty(), "invalid tree ensemble: " << problem);
}

std::string TreeEnsemble::validate() {
  const TreeNodes& t = nodes_;
  const std::size_t n = t.feature.size();
  if (n_features_ < 1 || n_features_ > std::numeric_limits<std::int32_t>::max()) {
    return "n_features = " + std::to_string(n_features_);
  }
  if (t.threshold.size() != n || t.left.size() != n || t.right.size() != n || t.value.size() != n ||
      t.cover.size() != n || t.missing_left.size() != n) {
    return "the node arrays differ in length";
  }
  if (!std::isfinite(baseline_)) return "the baseline is not finite";
  if (tree_begin_.empty() || tree_begin_[0] != 0) return "the tree table must start at node 0";
  std::vector<int> depth(n, -1), parents(n, 0);
  max_depth_ = 0;
  expected_value_ = baseline_;
  for (std::size_t tree = 0; tree < tree_begin_.size(); ++tree) {
    const std::int64_t begin = tree_begin_[tree];
    const std::int64_t end =
        tree + 1 < tree_begin_.size() ? tree_begin_[tree + 1] : static_cast<std::int64_t>(n);
    if (end <= begin || end > static_cast<std::int64_t>(n)) {
      return "tree " + std::to_string(tree) + " has bounds [" + std::to_string(begin) + ", " +
             std::to_string(end) + ")";
    }
    depth[static_cast<std::size_t>(begin)] = 0;
    const double root_cover = t.cover[static_cast<std::size_t>(begin)];
    for (std::int64_t k = begin; k < end; ++k) {
      const auto u = static_cast<std::size_t>(k);
      const std::string where = "node " + std::to_string(k) + " (tree " + std::to_string(tree) + ")";
      if (!std::isfinite(t.value[u])) return where + " has a value that is not finite";
      if (!(t.cover[u] > 0.0) || !std::isfinite(t.cover[u])) return where + " has a cover that is not positive";
      if (k != begin && parents[u] != 1) return where + " has " + std::to_string(parents[u]) + " parents";
      if (depth[u] > kMaxDepth) return where + " is deeper than " + std::to_string(kMaxDepth);
      max_depth_ = std::max(max_depth_, depth[u]);
      if (t.feature[u] < 0) {
        expected_value_ += t.value[u] * t.cover[u] / root_cover;
        continue;
      }
      if (t.feature[u] >= n_features_) return where + " splits on feature " + std::to_string(t.feature[u]);
      if (std::isnan(t.threshold[u])) return where + " has a NaN threshold";
      for (const std::int32_t child : {t.left[u], t.right[u]}) {
        if (child <= k || child >= end) return where + " has child " + std::to_string(child);
        ++parents[static_cast<std::size_t>(child)];
        depth[static_cast<std::size_t>(child)] = depth[u] + 1;
      }
      const double children = t.cover[static_cast<std::size_t>(t.left[u])] +
                              t.cover[static_cast<std::size_t>(t.right[u])];
      if (std::abs(children - t.cover[u]) > 1e-9 * t.cover[u]) {
        return where + "'s children's covers do not add up to its own";
      }
    }
  }
  if (!std::isfinite(expected_value_)) return "the expected value is not finite";
  return "";
}

template <class T>
void TreeEnsemble::decision_function(const ConstMatrixView<T>& X, double* out, int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "the tree ensemble is empty");
  FRAUDCORE_CHECK(X.cols() == n_features_,
                  "X has " << X.cols() << " features, the trees were grown on " << n_features_);
  const Index n = X.rows();
  const Index tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
  parallel_for(tasks, n_threads, [&](Index task) {
    std::vector<double> row(static_cast<std::size_t>(n_features_));
    const Index end = std::min(n, (task + 1) * kRowsPerTask);
    for (Index i = task * kRowsPerTask; i < end; ++i) {
      gather_row(X, i, row);
      double sum = baseline_;
      for (const std::int64_t root : tree_begin_) {
        std::int64_t node = root;
        while (nodes_.feature[node] >= 0) {
          node = goes_left(nodes_, node, row[nodes_.feature[node]]) ? nodes_.left[node] : nodes_.right[node];
        }
        sum += nodes_.value[node];
      }
      out[i] = sum;
    }
  });
}

template <class T>
void TreeEnsemble::contributions(const ConstMatrixView<T>& X, double* out, int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "the tree ensemble is empty");
  FRAUDCORE_CHECK(X.cols() == n_features_,
                  "X has " << X.cols() << " features, the trees were grown on " << n_features_);
  const Index n = X.rows(), width = n_features_ + 1;
  const Index tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
  // Each recursion level copies the path (at most depth + 2 elements) after its parent's.
  const std::size_t path_size =
      static_cast<std::size_t>(max_depth_ + 3) * static_cast<std::size_t>(max_depth_ + 6) / 2;
  parallel_for(tasks, n_threads, [&](Index task) {
    std::vector<double> row(static_cast<std::size_t>(n_features_));
    std::vector<PathElement> path(path_size);
    const Index end = std::min(n, (task + 1) * kRowsPerTask);
    for (Index i = task * kRowsPerTask; i < end; ++i) {
      gather_row(X, i, row);
      double* phi = out + i * width;
      std::fill(phi, phi + width, 0.0);
      for (const std::int64_t root : tree_begin_) {
        shap_recurse(nodes_, row.data(), phi, root, path.data(), 0, 1.0, 1.0, -1);
      }
      phi[n_features_] = expected_value_;
    }
  });
}

template void TreeEnsemble::decision_function(const ConstMatrixView<double>&, double*, int) const;
template void TreeEnsemble::decision_function(const ConstMatrixView<float>&, double*, int) const;
template void TreeEnsemble::contributions(const ConstMatrixView<double>&, double*, int) const;
template void TreeEnsemble::contributions(const ConstMatrixView<float>&, double*, int) const;

std::string TreeEnsemble::serialize() const {
  ByteWriter w;
  w.put<std::int64_t>(n_features_);
  w.put<double>(baseline_);
  w.put_vector(tree_begin_);
  w.put_vector(nodes_.feature);
  w.put_vector(nodes_.threshold);
  w.put_vector(nodes_.left);
  w.put_vector(nodes_.right);
  w.put_vector(nodes_.value);
  w.put_vector(nodes_.cover);
  w.put_vector(nodes_.missing_left);
  return std::move(w.bytes());
}

TreeEnsemble TreeEnsemble::deserialize(std::string_view bytes) {
  ByteReader r(bytes, "TreeEnsemble data");
  TreeEnsemble e;
  e.n_features_ = r.get<std::int64_t>();
  e.baseline_ = r.get<double>();
  e.tree_begin_ = r.get_vector<std::int64_t>();
  e.nodes_.feature = r.get_vector<std::int32_t>();
  e.nodes_.threshold = r.get_vector<double>();
  e.nodes_.left = r.get_vector<std::int32_t>();
  e.nodes_.right = r.get_vector<std::int32_t>();
  e.nodes_.value = r.get_vector<double>();
  e.nodes_.cover = r.get_vector<double>();
  e.nodes_.missing_left = r.get_vector<std::uint8_t>();
  r.expect_end();
  const std::string problem = e.validate();
  if (!problem.empty()) throw FormatError("TreeEnsemble data is corrupted: " + problem);
  return e;
}

}  // namespace fraudcore
