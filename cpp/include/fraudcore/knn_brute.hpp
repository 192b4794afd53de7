// Exact brute-force k-nearest-neighbour search for the wide data where
// space-partitioning trees stop pruning.
//
// The fitted rows are scanned leaf by leaf of a coarse KdTree partition
// (leaves of 256 to 4096 rows), nearest leaves first, and a leaf is skipped
// for a query when none of its rows can beat the query's current k-th
// neighbour (KnnHeap::excludes: too far, or as far with higher indices). A
// row with a higher index than a heap full of distance-0 pairs is rejected
// without computing its distance, so copies of a row stay cheap.
//
// Euclidean metric: each (query, row) pair is first screened in float32 with
// the matrix-product form of the squared distance,
//     s~ = |q|^2 + |y|^2 - 2 q.y,
// on rows centred on the fitted rows' midrange and scaled by a power of two
// (so values lie in [-1, 1] and float32 neither overflows nor loses the
// spread to the offset); a query whose scaled values exceed 2^60 is searched
// exactly instead. The screening error is bounded:
//     |s~ - d^2| <= E(q, y) = c u (|q|^2 + |y|^2) + tiny,  c = 4 d + 16,
// u = 2^-24, which covers rounding the inputs to float32, the d + 1 rounded
// multiply-adds in any order, and rounding |y|^2 (the analysis needs c =
// 2 d + 6; the rest is margin). A pair becomes a candidate when
// s~ - E <= theta, theta being the query's current k-th exact rdist, and
// only candidates get their exact distance computed in double by
// Metric::rdist. A true neighbour always passes (s~ - E <= d^2 <= theta), so
// the result is exact and bit-identical to the tree's; duplicates come out
// at distance exactly 0, unlike a plain |q|^2 + |y|^2 - 2 q.y in float64.
//
// The screening kernel runs 4 queries against 64 rows at a time, with the
// rows stored feature-major ("panels" of 64 holding -2 y), compiled for
// AVX-512, AVX2+FMA and SSE2 and picked at run time from the CPU, so one
// portable wheel runs at the machine's width. Other metrics scan candidate
// leaves with Metric::rdist directly.
//
// For all fitted rows against each other, search_all_fitted() screens each
// pair of leaves once for both directions: with acc = w(b) - 2 a.b computed
// for row a as query, row b's own screening value is acc + w(a) - w(b), and
// it is a candidate when acc + w(a) < psi_b = phi_b + w(b) (rounded up).
// The two extra roundings stay inside the margin of c.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fraudcore/kd_tree.hpp"
#include "fraudcore/knn_heap.hpp"
#include "fraudcore/metric.hpp"

namespace fraudcore {

class BruteForceIndex {
 public:
  /// Rows per leaf of the partition the brute-force scan walks for n rows:
  /// n / 32 within [256, 4096]. Large leaves amortise the per-leaf work;
  /// 32 or more leaves keep every round of the symmetric scan parallel.
  static Index leaf_size_for(Index n_rows) {
    return n_rows / 32 < 256 ? 256 : (n_rows / 32 > 4096 ? 4096 : n_rows / 32);
  }
  /// Queries searched together (they share each leaf while it is in cache).
  static constexpr Index kQueryBlock = 64;

  /// Prepare the float32 panels of `tree`'s rows (built with leaf_size_for(n)).
  void build(const KdTree& tree);

  /// Offer to heaps[i] every fitted row that can be among the k nearest of
  /// query i; queries is n_queries x d, row-major, n_queries <= kQueryBlock.
  void search_block(const KdTree& tree, const Metric& metric, const double* queries,
                    Index n_queries, KnnHeap* heaps) const;

  /// search_block for a single query: the same candidates offered, the
  /// screening kernel run for that query alone (search_block's tiles of
  /// four would compute three idle slots), no allocation for up to 128
  /// leaves and 256 features. The heap ends with the same pairs.
  void search_one(const KdTree& tree, const Metric& metric, const double* query,
                  KnnHeap& heap) const;

  /// Every fitted row's k nearest fitted rows, itself included (Euclidean
  /// metric): heaps[i] belongs to tree position i. Each pair of leaves is
  /// screened once for the rows of both (half the products of search_block
  /// over all rows); the pairs run in rounds of disjoint pairs (a
  /// round-robin tournament), so two threads never touch the same heap.
  void search_all_fitted(const KdTree& tree, const Metric& metric, KnnHeap* heaps,
                         int n_threads) const;

  /// The instruction set the screening kernel runs with: "avx512", "avx2"
  /// or "sse2" on x86-64 ("portable" elsewhere); by default the widest the
  /// CPU supports.
  static const char* kernel_isa();
  /// The instruction sets this CPU can run, widest first.
  static std::vector<std::string> supported_isas();
  /// Run every later search with that kernel (for tests and benchmarks; all
  /// give identical results). Throws std::invalid_argument if unsupported.
  static void use_isa(const std::string& isa);

  /// False if build() found a row it cannot screen in float32 (never
  /// expected; the searches then compute every distance exactly).
  bool screens() const { return screens_; }

 private:
  struct Leaf {
    Index node;
    Index group_begin, group_end;  // panels of 64 rows
  };
  Index leaf_min_index(const KdTree& tree, Index leaf) const;
  double scaled_value(double x, Index feature) const;
  // Offer every row of the leaves in `leaf_order` that `bounds` (one per
  // leaf) does not rule out, with exact distances.
  void scan_exact(const KdTree& tree, const Metric& metric, const double* query, KnnHeap& heap,
                  const std::vector<Index>& leaf_order, const double* bounds) const;
  void screen_euclidean(const KdTree& tree, const Metric& metric, const double* queries,
                        Index n_queries, KnnHeap* heaps, const std::vector<Index>& leaf_order,
                        const std::vector<double>& bounds) const;

  Index d_ = 0;
  std::vector<Leaf> leaves_;
  std::vector<float> panels_;          // [group][feature][64] = -2 * scaled row value
  std::vector<float> norms_;           // [group * 64 + lane]: |y|^2 (1 - c u), +inf padding
  std::vector<std::int64_t> position_; // [group * 64 + lane]: tree position, -1 padding
  std::vector<double> sqnorm_;         // [group * 64 + lane]: scaled |y|^2, 0 padding
  std::vector<double> center_;
  double scale_ = 1.0;
  double cu_ = 0.0;  // c * u of the error bound
  bool screens_ = true;
};

}  // namespace fraudcore
