#include "fraudcore/iforest.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"
#include "fraudcore/random.hpp"
#include "fraudcore/serialize.hpp"

namespace fraudcore {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
/// Rows gathered per scoring task: big enough to amortise a pass over the
/// forest, small enough that their keys (x d x 8 bytes) stay in L1 next to
/// the tree being walked (128 measured fastest of 64..512 at d = 18).
constexpr Index kScoreBlock = 128;
/// Rows walked in lock-step through one axis-parallel tree, stored
/// interleaved: the key of feature j of lane l at group[j * kLanes + l].
constexpr int kLanes = 8;
/// Features a forest may have: feature offsets in a group of kLanes rows
/// must fit in 32 bits.
constexpr Index kMaxFeatures = std::numeric_limits<std::int32_t>::max() / kLanes;
/// Levels of each axis-parallel tree laid out as an implicit heap for the
/// walk (at most 2^kHeapLevels slots a tree); deeper levels walk the links.
constexpr int kHeapLevels = 10;

/// Order-preserving map of a non-NaN double to an unsigned integer: for
/// finite a, b (with -0.0 folded into +0.0), a > b exactly when
/// order_key(a) > order_key(b). Lets the walk compare integers, whose loads
/// and compares are shorter on the critical path than floating point.
inline std::uint64_t order_key(double v) {
  v += 0.0;  // -0.0 -> +0.0
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits >> 63) ? ~bits : bits | (std::uint64_t{1} << 63);
}

int max_depth_for(Index max_samples) {
  return static_cast<int>(
      std::ceil(std::log2(static_cast<double>(std::max<Index>(max_samples, 2)))));
}

/// A set of indices for Floyd's sampling: open addressing with linear
/// probing, emptied in time proportional to its size, its memory reused.
class IndexSet {
 public:
  /// Empties the set, ready for up to k members.
  void clear(Index k) {
    for (std::size_t p : used_) table_[p] = -1;
    used_.clear();
    std::size_t size = 16;
    while (size < static_cast<std::size_t>(2 * k)) size *= 2;
    if (table_.size() < size) table_.assign(size, -1);
    mask_ = table_.size() - 1;
  }
  /// Adds x (>= 0); false if it was there already.
  bool insert(Index x) {
    std::size_t p = static_cast<std::size_t>((static_cast<std::uint64_t>(x) * 0x9E3779B97F4A7C15ULL) >> 32) & mask_;
    for (; table_[p] >= 0; p = (p + 1) & mask_) {
      if (table_[p] == x) return false;
    }
    table_[p] = x;
    used_.push_back(p);
    return true;
  }

 private:
  std::vector<Index> table_;
  std::vector<std::size_t> used_;
  std::size_t mask_ = 0;
};

/// k distinct values of [0, n) into out, in a deterministic order; `all`
/// and `set` are scratch.
void sample_without_replacement(Index n, Index k, Rng& rng, std::vector<Index>& out,
                                std::vector<Index>& all, IndexSet& set) {
  out.clear();
  out.reserve(static_cast<std::size_t>(k));
  if (k * 4 >= n) {  // dense: partial Fisher-Yates
    all.resize(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), Index{0});
    for (Index i = 0; i < k; ++i) {
      const Index j = i + static_cast<Index>(rng.below(static_cast<std::uint64_t>(n - i)));
      std::swap(all[i], all[j]);
      out.push_back(all[i]);
    }
  } else {  // sparse: Floyd's algorithm
    set.clear(k);
    for (Index j = n - k; j < n; ++j) {
      const Index t = static_cast<Index>(rng.below(static_cast<std::uint64_t>(j + 1)));
      Index pick = t;
      if (!set.insert(t)) {  // taken: j is free, every earlier pick is below it
        pick = j;
        set.insert(j);
      }
      out.push_back(pick);
    }
  }
}

template <class T>
void gather_row(const ConstMatrixView<T>& X, Index row, double* dst) {
  const Index d = X.cols();
  for (Index j = 0; j < d; ++j) {
    const double v = static_cast<double>(X(row, j));
    FRAUDCORE_CHECK(std::isfinite(v), "X contains NaN or infinity (row "
                                          << row << ", column " << j << ")");
    dst[j] = v;
  }
}

/// Add each row's leaf path length in one tree to sums[0, n_valid).
/// `top` levels walk the heap (key, offset; entry maps bottom slots to
/// nodes), `rest` more walk the links of `tree`. Kept apart from the class
/// so the compiler sees plain pointers in the hot loop.
__attribute__((noinline)) void walk_axis_tree(
    const std::uint64_t* key, const std::int32_t* offset, const std::int32_t* entry,
    const double* bottom_path, int top, const IsolationForestWalkNode* tree, int rest,
    const double* leaf_path, const std::uint64_t* groups, Index n_rows, Index n_valid, Index d,
    double* sums) {
  for (Index r0 = 0; r0 < n_rows; r0 += kLanes) {
    const std::uint64_t* group = groups + r0 * d;
    std::uint32_t slot[kLanes] = {};
    for (int level = 0; level < top; ++level) {
      for (int l = 0; l < kLanes; ++l) {
        const std::uint32_t i = slot[l];
        slot[l] = 2 * i + 1 + ((group + l)[offset[i]] > key[i]);
      }
    }
    const Index lanes = std::min<Index>(kLanes, n_valid - r0);
    if (rest == 0) {  // the heap holds the whole tree: its bottom, the paths
      for (Index l = 0; l < lanes; ++l) sums[r0 + l] += bottom_path[slot[l]];
      continue;
    }
    std::int32_t node[kLanes];
    for (int l = 0; l < kLanes; ++l) node[l] = entry[slot[l]];
    // Below the heap, leaves loop on themselves: every lane takes the rest.
    for (int level = 0; level < rest; ++level) {
      for (int l = 0; l < kLanes; ++l) {
        const IsolationForestWalkNode& nd = tree[node[l]];
        node[l] = nd.left + ((group + l)[nd.offset] > nd.key);
      }
    }
    for (Index l = 0; l < lanes; ++l) sums[r0 + l] += leaf_path[node[l]];
  }
}

}  // namespace

double average_path_length(double n) {
  if (n <= 1.0) return 0.0;
  if (n <= 2.0) return 1.0;
  constexpr double kEulerGamma = 0.57721566490153286061;
  return 2.0 * (std::log(n - 1.0) + kEulerGamma) - 2.0 * (n - 1.0) / n;
}

namespace {

/// What one thread reuses from tree to tree while a forest grows: memory
/// stays O(threads x (sample + columns)), whatever the number of trees. All
/// per-feature arrays are back at their resting state (identity order, no
/// slot, nothing known constant) between trees.
struct TreeScratch {
  std::vector<Index> sample;              // the tree's rows of X, ascending
  std::vector<Index> features;            // tree-local feature -> column of X
  std::vector<std::int32_t> rows;         // positions in sample, partitioned by node
  std::vector<double> projection;         // hyperplane splits: n.x by position
  std::vector<std::int32_t> slot;         // feature -> gathered column, or -1
  std::vector<Index> gathered;            // features holding a slot
  std::vector<Index> read;                // feature -> values read from X in place
  std::vector<Index> read_set;            // features with read > 0
  std::vector<double> columns;            // gathered columns, psi values each
  std::vector<Index> order;               // identity on [0, m) between nodes
  std::vector<Index> touched;             // positions of order a node swapped
  std::vector<std::int32_t> constant_at;  // node that found a feature constant, or -1
  std::vector<std::int32_t> constant_depth;
  std::vector<Index> constant_set;        // features with constant_at set
  std::vector<Index> all;                 // sampling scratch
  IndexSet set;

  void reset(Index m) {
    restore_order();
    if (static_cast<Index>(order.size()) != m) {
      order.resize(static_cast<std::size_t>(m));
      std::iota(order.begin(), order.end(), Index{0});
      slot.assign(static_cast<std::size_t>(m), -1);
      read.assign(static_cast<std::size_t>(m), 0);
      constant_at.assign(static_cast<std::size_t>(m), -1);
      constant_depth.assign(static_cast<std::size_t>(m), 0);
    }
    for (Index j : gathered) slot[static_cast<std::size_t>(j)] = -1;
    gathered.clear();
    columns.clear();
    for (Index j : read_set) read[static_cast<std::size_t>(j)] = 0;
    read_set.clear();
    for (Index j : constant_set) constant_at[static_cast<std::size_t>(j)] = -1;
    constant_set.clear();
  }
  void restore_order() {
    for (Index p : touched) order[static_cast<std::size_t>(p)] = p;
    touched.clear();
  }
};

}  // namespace

struct IsolationForest::GrownTree {
  std::vector<Node> nodes;
  std::vector<double> path;
  std::vector<std::int32_t> plane_feature;
  std::vector<double> plane_coef;
  std::int32_t depth = 0;
};

// Grows one tree on rows s.sample and columns s.features of X, in tree-local
// feature numbers. No copy of the sample is made up front: on wide data a
// tree reads few of its columns (a split stops at the first non-constant
// feature drawn). A node reads a column's values for its rows straight from
// X until the tree has read as many of them that way as the sample has rows;
// then the column is copied out once, over the whole sample, for the nodes
// still to come (rent, then buy: never more than twice the reads of the best
// choice made in hindsight). The root copies at once, small nodes of a
// column tried once read in place.
// A feature found constant in a node is constant below it too, so it is not
// read again there; it is still drawn, so the random stream, and the tree,
// are what a plain search would give.
template <class T>
class IsolationForest::TreeBuilder {
 public:
  TreeBuilder(const ConstMatrixView<T>& X, TreeScratch& s, int extension_level, Rng& rng)
      : X_(X),
        s_(s),
        psi_(static_cast<Index>(s.sample.size())),
        m_(static_cast<Index>(s.features.size())),
        extension_level_(extension_level),
        rng_(rng) {}

  GrownTree build(int max_depth) {
    s_.reset(m_);
    s_.rows.resize(static_cast<std::size_t>(psi_));
    std::iota(s_.rows.begin(), s_.rows.end(), 0);
    s_.projection.resize(static_cast<std::size_t>(psi_));
    path_node_.assign(static_cast<std::size_t>(max_depth) + 1, -1);
    struct Frame {
      std::int32_t node, begin, end, depth;
    };
    std::vector<Frame> stack{{0, 0, static_cast<std::int32_t>(psi_), 0}};
    tree_.nodes.emplace_back();
    tree_.path.push_back(0.0);
    while (!stack.empty()) {
      const Frame f = stack.back();
      stack.pop_back();
      tree_.depth = std::max(tree_.depth, f.depth);
      path_node_[static_cast<std::size_t>(f.depth)] = f.node;
      std::int32_t* first = s_.rows.data() + f.begin;
      const std::int32_t n = f.end - f.begin;
      bool split = false;
      if (n > 1 && f.depth < max_depth) {
        split = extension_level_ == 0 ? axis_split(f.node, f.depth, first, n)
                                      : plane_split(f.node, first, n);
      }
      if (!split) {
        tree_.nodes[f.node] = Node{0, f.node, kInf};
        tree_.path[f.node] = f.depth + average_path_length(n);
        continue;
      }
      // Partition the rows: those going left first.
      const std::int32_t* mid = partition(tree_.nodes[f.node], first, n);
      const auto left = static_cast<std::int32_t>(tree_.nodes.size());
      tree_.nodes[f.node].left = left;
      tree_.nodes.emplace_back();
      tree_.nodes.emplace_back();
      tree_.path.push_back(0.0);
      tree_.path.push_back(0.0);
      const auto cut = static_cast<std::int32_t>(mid - s_.rows.data());
      stack.push_back({left + 1, cut, f.end, f.depth + 1});
      stack.push_back({left, f.begin, cut, f.depth + 1});
    }
    return std::move(tree_);
  }

 private:
  /// Feature j of the sample as a gathered column, or nullptr when a node of
  /// n rows should read X in place.
  const double* column(Index j, std::int32_t n) {
    std::int32_t k = s_.slot[static_cast<std::size_t>(j)];
    if (k < 0) {
      Index& read = s_.read[static_cast<std::size_t>(j)];
      if (read + n < psi_) {
        if (read == 0) s_.read_set.push_back(j);
        read += n;
        return nullptr;
      }
      k = static_cast<std::int32_t>(s_.gathered.size());
      s_.slot[static_cast<std::size_t>(j)] = k;
      s_.gathered.push_back(j);
      s_.columns.resize(static_cast<std::size_t>((k + 1) * psi_));
      double* dst = s_.columns.data() + k * psi_;
      const Index feature = s_.features[static_cast<std::size_t>(j)];
      for (Index i = 0; i < psi_; ++i) {
        dst[i] = static_cast<double>(X_(s_.sample[static_cast<std::size_t>(i)], feature));
      }
    }
    return s_.columns.data() + k * psi_;
  }

  /// Calls visit(i, value of feature j at rows[i]) for i in [0, n).
  template <class Visit>
  void for_each_value(Index j, const std::int32_t* rows, std::int32_t n, Visit&& visit) {
    if (const double* col = column(j, n)) {
      for (std::int32_t i = 0; i < n; ++i) visit(i, col[rows[i]]);
    } else {
      const Index feature = s_.features[static_cast<std::size_t>(j)];
      const Index* sample = s_.sample.data();
      for (std::int32_t i = 0; i < n; ++i) visit(i, static_cast<double>(X_(sample[rows[i]], feature)));
    }
  }

  void min_max(Index j, const std::int32_t* rows, std::int32_t n, double& lo, double& hi) {
    lo = kInf;
    hi = -kInf;
    for_each_value(j, rows, n, [&](std::int32_t, double v) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    });
  }

  /// Draws the next feature of a node: Fisher-Yates step k on s_.order.
  Index draw(Index k) {
    const Index pick = k + static_cast<Index>(rng_.below(static_cast<std::uint64_t>(m_ - k)));
    std::swap(s_.order[static_cast<std::size_t>(k)], s_.order[static_cast<std::size_t>(pick)]);
    s_.touched.push_back(k);
    s_.touched.push_back(pick);
    return s_.order[static_cast<std::size_t>(k)];
  }

  /// Was feature j found constant at this node's ancestor? path_node_ holds
  /// the nodes on the way to the current one (depth-first order).
  bool known_constant(Index j, std::int32_t depth) const {
    const std::int32_t at = s_.constant_at[static_cast<std::size_t>(j)];
    const std::int32_t at_depth = s_.constant_depth[static_cast<std::size_t>(j)];
    return at >= 0 && at_depth < depth && path_node_[static_cast<std::size_t>(at_depth)] == at;
  }

  void mark_constant(Index j, std::int32_t node, std::int32_t depth) {
    if (s_.constant_at[static_cast<std::size_t>(j)] < 0) s_.constant_set.push_back(j);
    s_.constant_at[static_cast<std::size_t>(j)] = node;
    s_.constant_depth[static_cast<std::size_t>(j)] = depth;
  }

  // scikit-learn's random splitter: features in random order until one is
  // not constant in the node; threshold uniform in [min, max).
  bool axis_split(std::int32_t node, std::int32_t depth, const std::int32_t* rows, std::int32_t n) {
    bool found = false;
    for (Index k = 0; k < m_ && !found; ++k) {
      const Index j = draw(k);
      if (known_constant(j, depth)) continue;
      double lo, hi;
      min_max(j, rows, n, lo, hi);
      if (!(hi > lo)) {
        mark_constant(j, node, depth);
        continue;
      }
      double threshold = lo + rng_.uniform() * (hi - lo);
      if (threshold >= hi) threshold = lo;
      tree_.nodes[node] = Node{static_cast<std::int32_t>(j), 0, threshold};
      found = true;
    }
    s_.restore_order();
    return found;
  }

  // Extended isolation forest: a random normal on extension_level + 1
  // features through a random point of the node's bounding box.
  bool plane_split(std::int32_t node, const std::int32_t* rows, std::int32_t n) {
    const Index k = extension_level_ + 1;
    const auto plane = static_cast<std::int32_t>(tree_.plane_feature.size() / k);
    double threshold = 0.0;
    bool spread = false;
    for (Index i = 0; i < k; ++i) {
      const Index j = draw(i);
      double lo, hi;
      min_max(j, rows, n, lo, hi);
      spread = spread || hi > lo;
      const double coef = rng_.normal();
      const double u = rng_.uniform();
      const double point = lo * (1.0 - u) + hi * u;  // cannot overflow, unlike hi - lo
      tree_.plane_feature.push_back(static_cast<std::int32_t>(j));
      tree_.plane_coef.push_back(coef);
      threshold += coef * point;
    }
    s_.restore_order();
    if (!spread) {  // every drawn feature is constant: nothing to separate
      tree_.plane_feature.resize(tree_.plane_feature.size() - k);
      tree_.plane_coef.resize(tree_.plane_coef.size() - k);
      return false;
    }
    FRAUDCORE_CHECK(std::isfinite(threshold),
                    "X has values too large for hyperplane splits (extension_level > 0): "
                    "their projections overflow; scale X or use extension_level=0");
    tree_.nodes[node] = Node{plane, 0, threshold};
    // n.x summed feature by feature, in the plane's order, for every row.
    double* projection = s_.projection.data();
    for (std::int32_t i = 0; i < n; ++i) projection[rows[i]] = 0.0;
    for (Index c = 0; c < k; ++c) {
      const double coef = tree_.plane_coef[plane * k + c];
      for_each_value(tree_.plane_feature[plane * k + c], rows, n,
                     [&](std::int32_t i, double v) { projection[rows[i]] += coef * v; });
    }
    return true;
  }

  /// Reorders rows[0, n) so those going left come first; returns the cut.
  const std::int32_t* partition(const Node& nd, std::int32_t* rows, std::int32_t n) {
    if (extension_level_ != 0) {
      const double* projection = s_.projection.data();
      return std::partition(rows, rows + n,
                            [&](std::int32_t r) { return !(projection[r] > nd.threshold); });
    }
    if (const double* col = column(nd.split, n)) {
      return std::partition(rows, rows + n,
                            [&](std::int32_t r) { return !(col[r] > nd.threshold); });
    }
    const Index feature = s_.features[static_cast<std::size_t>(nd.split)];
    const Index* sample = s_.sample.data();
    return std::partition(rows, rows + n, [&](std::int32_t r) {
      return !(static_cast<double>(X_(sample[r], feature)) > nd.threshold);
    });
  }

  const ConstMatrixView<T>& X_;
  TreeScratch& s_;
  Index psi_;
  Index m_;
  int extension_level_;
  Rng& rng_;
  GrownTree tree_;
  std::vector<std::int32_t> path_node_;
};

template <class T>
void IsolationForest::fit(const ConstMatrixView<T>& X,
                          const IsolationForestParams& params, int n_threads) {
  const Index n = X.rows();
  const Index d = X.cols();
  FRAUDCORE_CHECK(n >= 2, "IsolationForest needs at least 2 samples, got " << n);
  FRAUDCORE_CHECK(d >= 1, "IsolationForest needs at least 1 feature, got 0");
  FRAUDCORE_CHECK(d <= kMaxFeatures, "too many features: " << d << " (at most " << kMaxFeatures
                                                               << ")");
  FRAUDCORE_CHECK(params.n_estimators >= 1,
                  "n_estimators must be at least 1, got " << params.n_estimators);
  FRAUDCORE_CHECK(params.max_samples >= 1 && params.max_samples <= n,
                  "max_samples must be in [1, n_samples=" << n << "], got "
                                                           << params.max_samples);
  FRAUDCORE_CHECK(params.max_samples <= std::numeric_limits<std::int32_t>::max() / 2,
                  "max_samples too large: " << params.max_samples);
  FRAUDCORE_CHECK(params.max_features >= 0 && params.max_features <= d,
                  "max_features must be in [1, n_features=" << d << "], got "
                                                             << params.max_features);
  const Index m = params.max_features == 0 ? d : params.max_features;
  FRAUDCORE_CHECK(params.extension_level >= 0 && params.extension_level < m,
                  "extension_level must be in [0, max_features - 1 = "
                      << m - 1 << "], got " << params.extension_level);
  const Index psi = params.max_samples;
  const int max_depth = max_depth_for(psi);
  const int n_trees = params.n_estimators;

  // The rows tree t samples: without replacement, or (bootstrap) drawn with
  // replacement and kept once each, as scikit-learn passes such a draw as
  // sample weights, so its trees hold each distinct row once. Ascending: the
  // tree does not depend on their order, and X is read in address order.
  auto draw_rows = [&](Rng& rng, TreeScratch& s) {
    std::vector<Index>& rows = s.sample;
    if (params.bootstrap) {
      rows.resize(static_cast<std::size_t>(psi));
      for (auto& r : rows) r = static_cast<Index>(rng.below(static_cast<std::uint64_t>(n)));
    } else {
      sample_without_replacement(n, psi, rng, rows, s.all, s.set);
    }
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  };

  // Scratch per thread, reused tree after tree.
  std::vector<TreeScratch> scratch(static_cast<std::size_t>(std::max(n_threads, 1)));
  auto my_scratch = [&]() -> TreeScratch& {
    const auto me = static_cast<std::size_t>(thread_index());
    FRAUDCORE_CHECK(me < scratch.size(), "internal error: thread " << me << " of " << n_threads);
    return scratch[me];
  };

  // Every row some tree samples is checked for NaN and infinity once, here:
  // trees read only the values their splits need. (The rows are drawn again
  // below, from the same stream: cheaper than keeping them for every tree.)
  {
    std::unique_ptr<std::atomic<std::uint8_t>[]> sampled(
        new std::atomic<std::uint8_t>[static_cast<std::size_t>(n)]());
    parallel_for(n_trees, n_threads, [&](Index t) {
      Rng rng(params.seed, static_cast<std::uint64_t>(t));
      TreeScratch& s = my_scratch();
      draw_rows(rng, s);
      for (Index r : s.sample) sampled[static_cast<std::size_t>(r)].store(1, std::memory_order_relaxed);
    });
    constexpr Index kCheckBlock = 64;
    const bool by_column = X.innerStride() > X.outerStride();  // Fortran order
    parallel_for((n + kCheckBlock - 1) / kCheckBlock, n_threads, [&](Index b) {
      const Index end = std::min(n, (b + 1) * kCheckBlock);
      auto check = [&](Index i, Index j) {
        FRAUDCORE_CHECK(std::isfinite(static_cast<double>(X(i, j))),
                        "X contains NaN or infinity (row " << i << ", column " << j << ")");
      };
      if (by_column) {
        for (Index j = 0; j < d; ++j)
          for (Index i = b * kCheckBlock; i < end; ++i)
            if (sampled[static_cast<std::size_t>(i)].load(std::memory_order_relaxed)) check(i, j);
      } else {
        for (Index i = b * kCheckBlock; i < end; ++i)
          if (sampled[static_cast<std::size_t>(i)].load(std::memory_order_relaxed))
            for (Index j = 0; j < d; ++j) check(i, j);
      }
    });
  }

  // Only the trees are kept.
  std::vector<GrownTree> built(static_cast<std::size_t>(n_trees));
  parallel_for(n_trees, n_threads, [&](Index t) {
    TreeScratch& s = my_scratch();
    Rng rng(params.seed, static_cast<std::uint64_t>(t));
    draw_rows(rng, s);
    if (m != d) {
      sample_without_replacement(d, m, rng, s.features, s.all, s.set);
    } else if (static_cast<Index>(s.features.size()) != d) {
      s.features.resize(static_cast<std::size_t>(d));
      std::iota(s.features.begin(), s.features.end(), Index{0});
    }
    GrownTree tree = TreeBuilder<T>(X, s, params.extension_level, rng).build(max_depth);
    // Tree-local column numbers become global feature indices.
    if (params.extension_level == 0) {
      for (auto& nd : tree.nodes) {
        if (nd.left != static_cast<std::int32_t>(&nd - tree.nodes.data())) {
          nd.split = static_cast<std::int32_t>(s.features[static_cast<std::size_t>(nd.split)]);
        }
      }
    } else {
      for (auto& f : tree.plane_feature) f = static_cast<std::int32_t>(s.features[static_cast<std::size_t>(f)]);
    }
    built[static_cast<std::size_t>(t)] = std::move(tree);
  });
  scratch = {};

  // Concatenate into the flat arrays; commit only once everything succeeded.
  IsolationForest forest;
  forest.n_features_ = d;
  forest.max_samples_ = psi;
  forest.extension_level_ = params.extension_level;
  for (const GrownTree& b : built) {
    forest.tree_begin_.push_back(static_cast<std::int64_t>(forest.nodes_.size()));
    forest.tree_depth_.push_back(b.depth);
    const auto plane_offset =
        static_cast<std::int32_t>(forest.plane_feature_.size() / (params.extension_level + 1));
    for (Node nd : b.nodes) {
      const bool leaf = nd.left == static_cast<std::int32_t>(forest.nodes_.size() - forest.tree_begin_.back());
      if (params.extension_level > 0 && !leaf) nd.split += plane_offset;
      forest.nodes_.push_back(nd);
    }
    forest.path_.insert(forest.path_.end(), b.path.begin(), b.path.end());
    forest.plane_feature_.insert(forest.plane_feature_.end(), b.plane_feature.begin(),
                                 b.plane_feature.end());
    forest.plane_coef_.insert(forest.plane_coef_.end(), b.plane_coef.begin(), b.plane_coef.end());
  }
  forest.build_walk();
  *this = std::move(forest);
}

void IsolationForest::build_walk() {
  walk_.clear();
  heap_begin_.clear();
  heap_key_.clear();
  heap_offset_.clear();
  heap_entry_.clear();
  heap_leaf_.clear();
  if (extension_level_ != 0) return;
  walk_.reserve(nodes_.size());
  for (const Node& nd : nodes_) {
    walk_.push_back({nd.split * kLanes, nd.left, order_key(nd.threshold)});
  }
  // Top levels of each tree as a heap: slot s has children 2s + 1, 2s + 2.
  // A leaf passes every row on to its left slot (its key is that of +inf),
  // so the bottom slots name the node each row reached after `top` levels.
  for (int t = 0; t < n_estimators(); ++t) {
    const WalkNode* tree = walk_.data() + tree_begin_[t];
    const int top = std::min(tree_depth_[t], kHeapLevels);
    const std::int64_t inner = (std::int64_t{1} << top) - 1;
    heap_begin_.push_back(static_cast<std::int64_t>(heap_key_.size()));
    std::vector<std::int32_t> node_at(static_cast<std::size_t>(2 * inner + 1), 0);
    for (std::int64_t slot = 0; slot < inner; ++slot) {
      const std::int32_t k = node_at[slot];
      const bool leaf = tree[k].left == k;
      heap_key_.push_back(tree[k].key);
      heap_offset_.push_back(tree[k].offset);
      node_at[2 * slot + 1] = leaf ? k : tree[k].left;
      node_at[2 * slot + 2] = leaf ? k : tree[k].left + 1;
    }
    heap_entry_.insert(heap_entry_.end(), node_at.begin() + inner, node_at.end());
    for (auto k = node_at.begin() + inner; k != node_at.end(); ++k) {
      heap_leaf_.push_back(path_[static_cast<std::size_t>(tree_begin_[t] + *k)]);
    }
  }
}

Index IsolationForest::tree_size(int t) const {
  FRAUDCORE_CHECK(t >= 0 && t < n_estimators(), "tree index " << t << " out of range");
  const std::size_t end = t + 1 < n_estimators() ? static_cast<std::size_t>(tree_begin_[t + 1])
                                                 : nodes_.size();
  return static_cast<Index>(end - static_cast<std::size_t>(tree_begin_[t]));
}

IsolationForest::TreeArrays IsolationForest::export_tree(int t) const {
  const Index size = tree_size(t);
  TreeArrays out;
  for (Index k = 0; k < size; ++k) {
    const Node& nd = nodes_[static_cast<std::size_t>(tree_begin_[t] + k)];
    out.split.push_back(nd.split);
    out.left.push_back(nd.left);
    out.threshold.push_back(nd.threshold);
    out.path.push_back(path_[static_cast<std::size_t>(tree_begin_[t] + k)]);
  }
  return out;
}

void IsolationForest::add_axis_tree(int t, const std::uint64_t* groups, Index n_rows,
                                    Index n_valid, double* sums) const {
  const int depth = tree_depth_[t];
  const int top = std::min(depth, kHeapLevels);
  const std::int64_t inner = (std::int64_t{1} << top) - 1;
  // heap_begin_[t] + t: each tree has one more bottom slot than inner slots.
  const std::int64_t bottom = heap_begin_[t] + t - inner;
  walk_axis_tree(heap_key_.data() + heap_begin_[t], heap_offset_.data() + heap_begin_[t],
                 heap_entry_.data() + bottom, heap_leaf_.data() + bottom, top,
                 walk_.data() + tree_begin_[t], depth - top, path_.data() + tree_begin_[t],
                 groups, n_rows, n_valid, n_features_, sums);
}

void IsolationForest::add_hyperplane_tree(int t, const double* rows, Index n_rows,
                                          double* sums) const {
  const Node* tree = nodes_.data() + tree_begin_[t];
  const double* leaf_path = path_.data() + tree_begin_[t];
  const Index k = extension_level_ + 1;
  for (Index r = 0; r < n_rows; ++r) {
    const double* x = rows + r * n_features_;
    std::int32_t node = 0;
    while (tree[node].left != node) {
      const Node& nd = tree[node];
      const std::int32_t* f = plane_feature_.data() + nd.split * k;
      const double* c = plane_coef_.data() + nd.split * k;
      double dot = 0.0;
      for (Index i = 0; i < k; ++i) dot += c[i] * x[f[i]];
      node = nd.left + (dot > nd.threshold);
    }
    sums[r] += leaf_path[node];
  }
}

template <class T>
void IsolationForest::path_length_sums(const ConstMatrixView<T>& X, double* out,
                                       int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "this IsolationForest is not fitted yet");
  FRAUDCORE_CHECK(X.cols() == n_features_, "X has " << X.cols()
                                                    << " features, but the forest was fitted on "
                                                    << n_features_);
  const Index n = X.rows();
  const Index n_blocks = (n + kScoreBlock - 1) / kScoreBlock;
  parallel_for(n_blocks, n_threads, [&](Index b) {
    const Index begin = b * kScoreBlock;
    const Index rows = std::min(kScoreBlock, n - begin);
    double* sums = out + begin;
    std::fill(sums, sums + rows, 0.0);
    if (extension_level_ != 0) {
      std::vector<double> block(static_cast<std::size_t>(rows * n_features_));
      for (Index i = 0; i < rows; ++i) gather_row(X, begin + i, block.data() + i * n_features_);
      for (int t = 0; t < n_estimators(); ++t) add_hyperplane_tree(t, block.data(), rows, sums);
      return;
    }
    // Interleaved groups of kLanes rows as order keys; padding lanes hold 0.
    const Index padded = (rows + kLanes - 1) / kLanes * kLanes;
    std::vector<std::uint64_t> groups(static_cast<std::size_t>(padded * n_features_), 0);
    std::vector<double> row(static_cast<std::size_t>(n_features_));
    for (Index i = 0; i < rows; ++i) {
      gather_row(X, begin + i, row.data());
      std::uint64_t* lane = groups.data() + (i / kLanes) * kLanes * n_features_ + i % kLanes;
      for (Index j = 0; j < n_features_; ++j) lane[j * kLanes] = order_key(row[j]);
    }
    for (int t = 0; t < n_estimators(); ++t) add_axis_tree(t, groups.data(), padded, rows, sums);
  });
}

template <class T>
void IsolationForest::mean_path_length(const ConstMatrixView<T>& X, double* out,
                                       int n_threads) const {
  path_length_sums(X, out, n_threads);
  const double trees = static_cast<double>(n_estimators());
  for (Index i = 0; i < X.rows(); ++i) out[i] /= trees;
}

double IsolationForest::score_of_mean_path(double mean) const {
  // scikit-learn scores -0.5 when c(max_samples) is 0 (max_samples = 1).
  const double c = average_path_length(static_cast<double>(max_samples_));
  return c > 0.0 ? -std::exp2(-mean / c) : -0.5;
}

template <class T>
void IsolationForest::score_samples(const ConstMatrixView<T>& X, double* out,
                                    int n_threads) const {
  mean_path_length(X, out, n_threads);
  for (Index i = 0; i < X.rows(); ++i) out[i] = score_of_mean_path(out[i]);
}

double IsolationForest::score_one(const double* x) const {
  FRAUDCORE_CHECK(fitted(), "this IsolationForest is not fitted yet");
  if (extension_level_ != 0) {
    double score = 0.0;
    score_samples(row_major_view(x, 1, n_features_), &score, 1);
    return score;
  }
  // The row's keys where the walk reads lane 0 of a group (feature j at
  // j * kLanes); the other lanes are never read.
  std::vector<std::uint64_t> keys(static_cast<std::size_t>(n_features_ * kLanes));
  for (Index j = 0; j < n_features_; ++j) {
    FRAUDCORE_CHECK(std::isfinite(x[j]), "X contains NaN or infinity (row 0, column " << j << ")");
    keys[static_cast<std::size_t>(j * kLanes)] = order_key(x[j]);
  }
  double sum = 0.0;
  for (int t = 0; t < n_estimators(); ++t) {
    const int depth = tree_depth_[t];
    const int top = std::min(depth, kHeapLevels);
    const std::uint64_t* key = heap_key_.data() + heap_begin_[t];
    const std::int32_t* offset = heap_offset_.data() + heap_begin_[t];
    std::uint32_t slot = 0;
    for (int level = 0; level < top; ++level) {
      slot = 2 * slot + 1 + (keys[static_cast<std::size_t>(offset[slot])] > key[slot]);
    }
    // As add_axis_tree: bottom slots from heap_begin_[t] + t - (2^top - 1).
    const std::int64_t bottom = heap_begin_[t] + t - ((std::int64_t{1} << top) - 1);
    if (depth == top) {
      sum += heap_leaf_[static_cast<std::size_t>(bottom + slot)];
      continue;
    }
    const WalkNode* tree = walk_.data() + tree_begin_[t];
    std::int32_t node = heap_entry_[static_cast<std::size_t>(bottom + slot)];
    for (int level = top; level < depth; ++level) {
      const WalkNode& nd = tree[node];
      node = nd.left + (keys[static_cast<std::size_t>(nd.offset)] > nd.key);
    }
    sum += path_[static_cast<std::size_t>(tree_begin_[t] + node)];
  }
  return score_of_mean_path(sum / static_cast<double>(n_estimators()));
}

template <class T>
void IsolationForest::feature_contributions(const ConstMatrixView<T>& X, double* out, int n_threads) const {
  FRAUDCORE_CHECK(fitted(), "this IsolationForest is not fitted yet");
  FRAUDCORE_CHECK(extension_level_ == 0,
                  "feature contributions need an axis-parallel forest (extension_level=0)");
  FRAUDCORE_CHECK(X.cols() == n_features_, "X has " << X.cols() << " features, but the forest was fitted on "
                                                    << n_features_);
  const Index n = X.rows(), d = n_features_;
  parallel_for((n + kScoreBlock - 1) / kScoreBlock, n_threads, [&](Index b) {
    for (Index i = b * kScoreBlock; i < std::min(n, (b + 1) * kScoreBlock); ++i) {
      double* share = out + i * d;
      std::fill(share, share + d, 0.0);
      for (Index j = 0; j < d; ++j) {
        FRAUDCORE_CHECK(std::isfinite(static_cast<double>(X(i, j))),
                        "X contains NaN or infinity (row " << i << ", column " << j << ")");
      }
      double total = 0.0;
      for (std::size_t t = 0; t < tree_begin_.size(); ++t) {
        const Node* tree = nodes_.data() + tree_begin_[t];
        std::int32_t node = 0;
        for (int depth = 0; tree[node].left != node; ++depth) {
          const Node& split = tree[node];
          const double weight = 1.0 / (depth + 1);
          share[split.split] += weight;
          total += weight;
          node = static_cast<double>(X(i, split.split)) <= split.threshold ? split.left : split.left + 1;
        }
      }
      if (total > 0) {
        for (Index j = 0; j < d; ++j) share[j] /= total;
      }
    }
  });
}

std::string IsolationForest::serialize() const {
  ByteWriter w;
  w.put<std::int64_t>(n_features_);
  w.put<std::int64_t>(max_samples_);
  w.put<std::int32_t>(extension_level_);
  w.put_vector(tree_begin_);
  w.put_vector(tree_depth_);
  w.put<std::uint64_t>(nodes_.size());
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    w.put(nodes_[i].split);
    w.put(nodes_[i].left);
    w.put(nodes_[i].threshold);
    w.put(path_[i]);
  }
  w.put_vector(plane_feature_);
  w.put_vector(plane_coef_);
  return std::move(w.bytes());
}

IsolationForest IsolationForest::deserialize(std::string_view bytes) {
  ByteReader r(bytes, "IsolationForest data");
  IsolationForest f;
  auto fail = [](const std::string& what) {
    throw FormatError("IsolationForest data is corrupted: " + what);
  };
  f.n_features_ = r.get<std::int64_t>();
  f.max_samples_ = r.get<std::int64_t>();
  f.extension_level_ = r.get<std::int32_t>();
  f.tree_begin_ = r.get_vector<std::int64_t>();
  f.tree_depth_ = r.get_vector<std::int32_t>();
  const auto n_nodes = r.get<std::uint64_t>();
  if (n_nodes > r.remaining() / 24) fail("node count exceeds the data");
  f.nodes_.resize(static_cast<std::size_t>(n_nodes));
  f.path_.resize(static_cast<std::size_t>(n_nodes));
  for (std::size_t i = 0; i < n_nodes; ++i) {
    f.nodes_[i].split = r.get<std::int32_t>();
    f.nodes_[i].left = r.get<std::int32_t>();
    f.nodes_[i].threshold = r.get<double>();
    f.path_[i] = r.get<double>();
  }
  f.plane_feature_ = r.get_vector<std::int32_t>();
  f.plane_coef_ = r.get_vector<double>();
  r.expect_end();

  if (f.n_features_ < 1 || f.n_features_ > kMaxFeatures) {
    fail("n_features = " + std::to_string(f.n_features_));
  }
  if (f.max_samples_ < 1) fail("max_samples = " + std::to_string(f.max_samples_));
  if (f.extension_level_ < 0 || f.extension_level_ >= f.n_features_) fail("extension_level");
  if (f.tree_begin_.empty() || f.tree_begin_.size() != f.tree_depth_.size()) fail("tree table");
  const auto k = static_cast<std::size_t>(f.extension_level_ + 1);
  if (f.plane_feature_.size() != f.plane_coef_.size() || f.plane_feature_.size() % k != 0) {
    fail("plane table");
  }
  const auto n_planes = static_cast<std::int64_t>(f.plane_feature_.size() / k);
  if (f.extension_level_ == 0 && n_planes != 0) fail("planes in an axis-parallel forest");
  for (std::int32_t feature : f.plane_feature_) {
    if (feature < 0 || feature >= f.n_features_) fail("plane feature index");
  }
  for (int t = 0; t < f.n_estimators(); ++t) {
    const std::int64_t begin = f.tree_begin_[t];
    const std::int64_t end = t + 1 < f.n_estimators() ? f.tree_begin_[t + 1]
                                                      : static_cast<std::int64_t>(n_nodes);
    if (begin < 0 || end <= begin || end > static_cast<std::int64_t>(n_nodes) ||
        end - begin > std::numeric_limits<std::int32_t>::max()) {
      fail("tree " + std::to_string(t) + " bounds");
    }
    // A proper tree: every node but the root has exactly one parent, with a
    // smaller index; its depth is then well defined, and must be the stored
    // one and within what max_samples allows, so the walk ends at leaves.
    const std::int64_t size = end - begin;
    std::vector<std::int32_t> depth(static_cast<std::size_t>(size), -1);
    depth[0] = 0;
    std::int32_t deepest = 0;
    for (std::int64_t i = 0; i < size; ++i) {
      const Node& nd = f.nodes_[static_cast<std::size_t>(begin + i)];
      const double path = f.path_[static_cast<std::size_t>(begin + i)];
      if (depth[static_cast<std::size_t>(i)] < 0) fail("node without a parent");
      deepest = std::max(deepest, depth[static_cast<std::size_t>(i)]);
      if (nd.left == i) {  // leaf: stays put, reading feature 0, whatever the input
        if (nd.split != 0 || nd.threshold != kInf || !std::isfinite(path) || path < 0) {
          fail("leaf");
        }
        continue;
      }
      const std::int64_t left = nd.left;
      if (left <= i || left + 1 >= size) fail("child index");
      const std::int64_t limit = f.extension_level_ == 0 ? f.n_features_ : n_planes;
      if (nd.split < 0 || nd.split >= limit) fail("split index");
      if (std::isnan(nd.threshold) || path != 0.0) fail("inner node");
      for (std::int64_t child : {left, left + 1}) {
        if (depth[static_cast<std::size_t>(child)] >= 0) fail("node with two parents");
        depth[static_cast<std::size_t>(child)] = depth[static_cast<std::size_t>(i)] + 1;
      }
    }
    if (f.tree_depth_[t] != deepest || deepest > max_depth_for(f.max_samples_)) {
      fail("tree " + std::to_string(t) + " depth");
    }
  }
  f.build_walk();
  return f;
}

#define FRAUDCORE_INSTANTIATE(T)                                                       \
  template void IsolationForest::fit<T>(const ConstMatrixView<T>&,                     \
                                        const IsolationForestParams&, int);            \
  template void IsolationForest::score_samples<T>(const ConstMatrixView<T>&, double*,  \
                                                  int) const;                          \
  template void IsolationForest::mean_path_length<T>(const ConstMatrixView<T>&,        \
                                                     double*, int) const;              \
  template void IsolationForest::feature_contributions<T>(const ConstMatrixView<T>&,   \
                                                          double*, int) const;
FRAUDCORE_INSTANTIATE(float)
FRAUDCORE_INSTANTIATE(double)
#undef FRAUDCORE_INSTANTIATE

}  // namespace fraudcore
