#include "fraudcore/kd_tree.hpp"

#include <algorithm>
#include <numeric>

#include "fraudcore/error.hpp"

namespace fraudcore {

template <class T>
void KdTree::build(const ConstMatrixView<T>& X, Index leaf_size) {
  FRAUDCORE_CHECK(leaf_size >= 1, "leaf_size must be >= 1, got " << leaf_size);
  FRAUDCORE_CHECK(X.rows() >= 1 && X.cols() >= 1, "cannot build a tree on an empty matrix");
  FRAUDCORE_CHECK(X.rows() < (Index{1} << 31), "at most 2^31 - 1 rows are supported");
  n_ = X.rows();
  d_ = X.cols();
  leaf_size_ = leaf_size;
  data_.resize(static_cast<std::size_t>(n_ * d_));
  for (Index i = 0; i < n_; ++i) {
    for (Index j = 0; j < d_; ++j) {
      const double v = static_cast<double>(X(i, j));
      FRAUDCORE_CHECK(std::isfinite(v), "X contains NaN or infinity (row " << i << ", column "
                                                                            << j << ")");
      data_[static_cast<std::size_t>(i * d_ + j)] = v;
    }
  }
  order_.resize(static_cast<std::size_t>(n_));
  std::iota(order_.begin(), order_.end(), Index{0});
  nodes_.clear();
  lo_.clear();
  hi_.clear();
  nodes_.push_back(Node{0, n_, -1, -1});
  // Nodes are appended as they are split, so this loop visits every node;
  // children always come after their parent.
  for (std::size_t node = 0; node < nodes_.size(); ++node) {
    compute_box(static_cast<std::int32_t>(node));
    split(static_cast<std::int32_t>(node));
  }
  position_.resize(static_cast<std::size_t>(n_));
  for (Index i = 0; i < n_; ++i) position_[static_cast<std::size_t>(order_[static_cast<std::size_t>(i)])] = i;
}

void KdTree::compute_box(std::int32_t node) {
  lo_.resize(static_cast<std::size_t>((node + 1) * d_));
  hi_.resize(static_cast<std::size_t>((node + 1) * d_));
  double* lo = lo_.data() + node * d_;
  double* hi = hi_.data() + node * d_;
  Node& nd = nodes_[static_cast<std::size_t>(node)];
  nd.min_index = *std::min_element(order_.begin() + nd.begin, order_.begin() + nd.end);
  std::copy(row(nd.begin), row(nd.begin) + d_, lo);
  std::copy(row(nd.begin), row(nd.begin) + d_, hi);
  for (Index i = nd.begin + 1; i < nd.end; ++i) {
    const double* x = row(i);
    for (Index j = 0; j < d_; ++j) {
      lo[j] = std::min(lo[j], x[j]);
      hi[j] = std::max(hi[j], x[j]);
    }
  }
}

void KdTree::split(std::int32_t node) {
  const Node nd = nodes_[static_cast<std::size_t>(node)];
  const Index count = nd.end - nd.begin;
  if (count <= leaf_size_) return;
  const double* lo = lower(node);
  const double* hi = upper(node);
  Index feature = 0;
  double spread = hi[0] - lo[0];
  for (Index j = 1; j < d_; ++j) {
    if (hi[j] - lo[j] > spread) {
      spread = hi[j] - lo[j];
      feature = j;
    }
  }
  // Median split (identical rows split by index alone): partition a
  // permutation of the node's positions by (value, row index), then apply it
  // to the rows and their indices.
  const Index mid = nd.begin + count / 2;
  std::vector<Index> perm(static_cast<std::size_t>(count));
  std::iota(perm.begin(), perm.end(), nd.begin);
  std::nth_element(perm.begin(), perm.begin() + (mid - nd.begin), perm.end(),
                   [&](Index a, Index b) {
                     const double va = data_[static_cast<std::size_t>(a * d_ + feature)];
                     const double vb = data_[static_cast<std::size_t>(b * d_ + feature)];
                     return va < vb || (va == vb && order_[static_cast<std::size_t>(a)] <
                                                        order_[static_cast<std::size_t>(b)]);
                   });
  std::vector<double> rows(static_cast<std::size_t>(count * d_));
  std::vector<Index> idx(static_cast<std::size_t>(count));
  for (Index i = 0; i < count; ++i) {
    const Index from = perm[static_cast<std::size_t>(i)];
    std::copy(row(from), row(from) + d_, rows.begin() + i * d_);
    idx[static_cast<std::size_t>(i)] = order_[static_cast<std::size_t>(from)];
  }
  std::copy(rows.begin(), rows.end(), data_.begin() + nd.begin * d_);
  std::copy(idx.begin(), idx.end(), order_.begin() + nd.begin);

  const auto left = static_cast<std::int32_t>(nodes_.size());
  nodes_[static_cast<std::size_t>(node)].left = left;
  nodes_[static_cast<std::size_t>(node)].right = left + 1;
  nodes_.push_back(Node{nd.begin, mid, -1, -1});
  nodes_.push_back(Node{mid, nd.end, -1, -1});
}

std::vector<Index> KdTree::leaves() const {
  std::vector<Index> out;
  std::vector<Index> stack{0};
  while (!stack.empty()) {
    const Index node = stack.back();
    stack.pop_back();
    const Node& nd = nodes_[static_cast<std::size_t>(node)];
    if (nd.left < 0) {
      out.push_back(node);
    } else {
      stack.push_back(nd.right);
      stack.push_back(nd.left);
    }
  }
  return out;
}

void KdTree::search(const double* query, const Metric& metric, KnnHeap& heap) const {
  search_node(0, metric.min_rdist_box(query, lower(0), upper(0), d_), query, metric, heap);
}

void KdTree::search_node(Index node, double node_bound, const double* query,
                         const Metric& metric, KnnHeap& heap) const {
  const Node& nd = nodes_[static_cast<std::size_t>(node)];
  if (heap.excludes(node_bound, nd.min_index)) return;
  if (nd.left < 0) {
    for (Index i = nd.begin; i < nd.end; ++i) {
      const Index index = order_[static_cast<std::size_t>(i)];
      if (heap.excludes(0.0, index)) continue;  // a copy: cannot win even at distance 0
      const double r = metric.rdist(query, row(i), d_);
      heap.push(r, index);
    }
    return;
  }
  const Node& left = nodes_[static_cast<std::size_t>(nd.left)];
  const Node& right = nodes_[static_cast<std::size_t>(nd.right)];
  const double bound_left = metric.min_rdist_box(query, lower(nd.left), upper(nd.left), d_);
  const double bound_right = metric.min_rdist_box(query, lower(nd.right), upper(nd.right), d_);
  if (bound_left < bound_right || (bound_left == bound_right && left.min_index < right.min_index)) {
    search_node(nd.left, bound_left, query, metric, heap);
    search_node(nd.right, bound_right, query, metric, heap);
  } else {
    search_node(nd.right, bound_right, query, metric, heap);
    search_node(nd.left, bound_left, query, metric, heap);
  }
}

template void KdTree::build<float>(const ConstMatrixView<float>&, Index);
template void KdTree::build<double>(const ConstMatrixView<double>&, Index);

}  // namespace fraudcore
