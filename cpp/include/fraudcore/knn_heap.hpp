// The k best (rdist, index) pairs seen so far, as a bounded max-heap.
//
// Pairs are ordered lexicographically: by rdist, then by index, so among
// equidistant points the lower index wins, whatever order the points were
// visited in. That makes every search algorithm return the same neighbours.
// The heap borrows caller storage (k slots of each array) so results can be
// built in place in the output arrays. Indices are stored as int32 (the
// index holds fewer than 2^31 rows) to halve the memory of n x k tables.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "fraudcore/types.hpp"

namespace fraudcore {

class KnnHeap {
 public:
  using Id = std::int32_t;

  KnnHeap(double* rdist, Id* index, Index k) : rd_(rdist), id_(index), k_(k) {}

  Index capacity() const { return k_; }
  Index size() const { return size_; }
  bool full() const { return size_ == k_; }

  /// The rdist a new pair must not exceed to enter: +inf until full.
  double threshold() const {
    return full() ? rd_[0] : std::numeric_limits<double>::infinity();
  }

  /// Index of the current largest pair (meaningful once full).
  Index top_index() const { return id_[0]; }

  /// True when no pair (r, i) with r >= bound and i >= min_index can enter:
  /// lets a search skip a region whose rows all lie at least `bound` away
  /// and have indices of at least `min_index`.
  bool excludes(double bound, Index min_index) const {
    return full() && (bound > rd_[0] || (bound == rd_[0] && min_index > id_[0]));
  }

  /// Offer a pair; it is kept (and true returned) when the heap has room or
  /// it is smaller than the current largest pair.
  bool push(double rdist, Index index) {
    if (size_ < k_) {
      Index i = size_++;
      while (i > 0) {
        const Index parent = (i - 1) / 2;
        if (!less(rd_[parent], id_[parent], rdist, index)) break;
        rd_[i] = rd_[parent];
        id_[i] = id_[parent];
        i = parent;
      }
      rd_[i] = rdist;
      id_[i] = static_cast<Id>(index);
      return true;
    }
    if (!less(rdist, index, rd_[0], id_[0])) return false;
    sift_down(rdist, index, k_);
    return true;
  }

  /// Sort the pairs ascending in place (the heap is spent afterwards).
  void sort() {
    for (Index end = size_ - 1; end > 0; --end) {
      const double r = rd_[end];
      const Index i = id_[end];  // widened; sift_down narrows it back
      rd_[end] = rd_[0];
      id_[end] = id_[0];
      sift_down(r, i, end);
    }
  }

  static bool less(double ra, Index ia, double rb, Index ib) {
    return ra < rb || (ra == rb && ia < ib);
  }

 private:
  // Place (r, i) at the root of the heap rd_[0, n) and restore the order.
  void sift_down(double r, Index i, Index n) {
    Index pos = 0;
    for (;;) {
      Index child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && less(rd_[child], id_[child], rd_[child + 1], id_[child + 1])) ++child;
      if (!less(r, i, rd_[child], id_[child])) break;
      rd_[pos] = rd_[child];
      id_[pos] = id_[child];
      pos = child;
    }
    rd_[pos] = r;
    id_[pos] = static_cast<Id>(i);
  }

  double* rd_;
  Id* id_;
  Index k_;
  Index size_ = 0;
};

}  // namespace fraudcore
