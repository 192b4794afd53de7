// A k-d tree over a copy of the fitted rows, for exact k-nearest-neighbour
// search in few dimensions, and the spatial partition the brute-force search
// scans leaf by leaf.
//
// Build: a node holding more than leaf_size rows splits them at the median of
// the feature with the widest spread; rows with equal values split by their
// index, lower indices left, and so do identical rows, so thousands of copies
// of one row become a subtree ordered by index. Each node records the
// bounding box of its rows and the smallest row index among them. The rows are
// stored contiguously in tree order (`data`, row-major), with `order`
// mapping a tree position back to the caller's row index, so a leaf is one
// contiguous range.
//
// Search: depth first, nearer child first (on a tie, the one holding lower
// indices), skipping a node when no row in it can beat the current k-th
// neighbour: its box lies farther (Metric::min_rdist_box), or exactly as far
// with only higher indices (KnnHeap::excludes). Copies of a row thus cost a
// query O(k), not O(copies). The result
// is exact and, through KnnHeap's tie rule, identical to a brute-force scan.
#pragma once

#include <cstdint>
#include <vector>

#include "fraudcore/knn_heap.hpp"
#include "fraudcore/metric.hpp"
#include "fraudcore/types.hpp"

namespace fraudcore {

class KdTree {
 public:
  struct Node {
    Index begin = 0;  ///< first tree position of the node's rows
    Index end = 0;    ///< one past the last
    std::int32_t left = -1;  ///< child nodes; -1 for a leaf
    std::int32_t right = -1;
    Index min_index = 0;  ///< smallest row index in the node
  };

  KdTree() = default;

  /// Build over X (n x d, any memory order); leaf_size >= 1.
  template <class T>
  void build(const ConstMatrixView<T>& X, Index leaf_size);

  Index n_rows() const { return n_; }
  Index n_features() const { return d_; }
  Index leaf_size() const { return leaf_size_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  /// Bounding box of node i: d values each, from lower(i) and upper(i).
  const double* lower(Index node) const { return lo_.data() + node * d_; }
  const double* upper(Index node) const { return hi_.data() + node * d_; }
  /// Row at tree position i (d values) and its index in the fitted data.
  const double* row(Index i) const { return data_.data() + i * d_; }
  Index original_index(Index i) const { return order_[static_cast<std::size_t>(i)]; }
  /// The row that was row `original` of the fitted data.
  const double* original_row(Index original) const {
    return row(position_[static_cast<std::size_t>(original)]);
  }
  /// Indices of the leaf nodes, left to right (tree order).
  std::vector<Index> leaves() const;

  /// Offer every fitted row within reach to `heap` (exact search).
  void search(const double* query, const Metric& metric, KnnHeap& heap) const;

 private:
  void split(std::int32_t node);
  void compute_box(std::int32_t node);
  void search_node(Index node, double node_bound, const double* query, const Metric& metric,
                   KnnHeap& heap) const;

  Index n_ = 0;
  Index d_ = 0;
  Index leaf_size_ = 30;
  std::vector<double> data_;
  std::vector<Index> order_;     // tree position -> original row
  std::vector<Index> position_;  // original row -> tree position
  std::vector<Node> nodes_;
  std::vector<double> lo_, hi_;
};

}  // namespace fraudcore
