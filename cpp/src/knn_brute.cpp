#include "fraudcore/knn_brute.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif
#include <limits>
#include <numeric>
#include <utility>

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"

namespace fraudcore {
namespace {

constexpr Index kLanes = 64;     // rows per panel
constexpr int kTile = 4;         // queries per kernel pass
constexpr double kTiny = 1e-30;  // absolute slack for float32 underflow

// What the candidate handlers need; one per thread and tile.
struct ScreenContext {
  const KdTree* tree;
  const Metric* metric;
  const std::int64_t* position;  // slot -> tree position
  double scale, cu;
  // The tile's queries (idle slots have phi = -FLT_MAX and are never read).
  const double* query[kTile];
  KnnHeap* heap[kTile];
  double qn[kTile];
  float phi[kTile];
  // Symmetric scans only: the query rows' w and indices, the scanned rows'
  // heaps (by tree position), reverse bounds psi and squared norms (by slot).
  float query_norm[kTile];
  Index query_index[kTile];
  Index query_slot[kTile];
  KnnHeap* row_heaps;
  float* row_phi;  // every row's current phi (null outside symmetric scans)
  float* psi;
  const double* slot_qn;
  const float* norms;
};

// Which rows of a panel each query of the tile takes (forward) and which
// queries each row takes (reverse, symmetric scans): bit l of query r.
struct PanelHits {
  std::uint64_t forward[kTile];
  std::uint64_t reverse[kTile];
};

// Called by the kernel when a panel holds candidates.
using CandidateSink = void (*)(ScreenContext& ctx, Index group, const PanelHits& hits);

struct ScanArgs {
  const float* queries;      // kTile x d, centred and scaled
  const float* phi;          // kTile strict screening bounds, updated by the sink
  const float* query_norms;  // kTile w of the queries (symmetric scans)
  const float* psi;          // per slot reverse bounds (symmetric scans)
  const float* panels;
  const float* norms;
  Index d;
  Index group_begin, group_end;
  ScreenContext* ctx;
  CandidateSink sink;
};

// One kernel per instruction set: the same source compiled in a target
// region, so each uses its own registers and compare instructions and no
// function compiled for a wider set is ever called on a CPU without it.
// GCC only: Clang ignores `#pragma GCC target` and builds the portable kernel.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRAUDCORE_X86_DISPATCH 1

namespace sse2 {
using V = __m128;
constexpr int kWidth = 4;
constexpr int kRows = 1;
inline std::uint32_t less_mask(V a, V b) {
  return static_cast<std::uint32_t>(_mm_movemask_ps(_mm_cmplt_ps(a, b)));
}
#include "knn_screen_kernel.inc"
}  // namespace sse2

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
using V = __m256;
constexpr int kWidth = 8;
constexpr int kRows = 1;
inline std::uint32_t less_mask(V a, V b) {
  return static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LT_OQ)));
}
#include "knn_screen_kernel.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
using V = __m512;
constexpr int kWidth = 16;
constexpr int kRows = kTile;
inline std::uint32_t less_mask(V a, V b) {
  return static_cast<std::uint32_t>(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ));
}
#include "knn_screen_kernel.inc"
}  // namespace avx512
#pragma GCC pop_options

#else
namespace portable {
typedef float V __attribute__((vector_size(16)));
constexpr int kWidth = 4;
constexpr int kRows = 1;
inline std::uint32_t less_mask(V a, V b) {
  std::uint32_t m = 0;
  for (int l = 0; l < kWidth; ++l) m |= static_cast<std::uint32_t>(a[l] < b[l]) << l;
  return m;
}
#include "knn_screen_kernel.inc"
}  // namespace portable
#endif

using ScreenKernel = void (*)(const ScanArgs&);
struct KernelChoice {
  ScreenKernel forward;
  ScreenKernel symmetric;
  ScreenKernel one;
  const char* isa;
};

// The kernels this CPU can run, widest first.
std::vector<KernelChoice> supported_kernels() {
  std::vector<KernelChoice> out;
#ifdef FRAUDCORE_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    out.push_back({avx512::screen, avx512::screen_symmetric, avx512::screen_one, "avx512"});
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    out.push_back({avx2::screen, avx2::screen_symmetric, avx2::screen_one, "avx2"});
  }
  out.push_back({sse2::screen, sse2::screen_symmetric, sse2::screen_one, "sse2"});
#else
  out.push_back({portable::screen, portable::screen_symmetric, portable::screen_one, "portable"});
#endif
  return out;
}

const std::vector<KernelChoice>& kernels() {
  static const std::vector<KernelChoice> all = supported_kernels();
  return all;
}

std::atomic<const KernelChoice*> active_kernel{nullptr};

const KernelChoice& kernel_choice() {
  const KernelChoice* k = active_kernel.load(std::memory_order_acquire);
  return k ? *k : kernels().front();
}

// The smallest float >= x, capped at FLT_MAX.
float round_up_to_float(double x) {
  if (!(x < static_cast<double>(FLT_MAX))) return FLT_MAX;  // also NaN: keep everything
  float f = static_cast<float>(x);
  if (static_cast<double>(f) < x) f = std::nextafter(f, FLT_MAX);
  return f;
}

// The strict float32 screening bound phi (candidates have acc < phi) that
// keeps every pair with s~ - E <= theta, for a query with scaled squared
// norm qn. At most FLT_MAX, so padding rows (acc = +inf) never pass.
float screening_threshold(double theta, double qn, double scale, double cu) {
  if (std::isinf(theta)) return FLT_MAX;
  const float f = round_up_to_float(theta * scale * scale - qn + cu * qn + kTiny);
  return std::nextafter(f, FLT_MAX);
}

// The reverse bound of a row: psi = phi + w, rounded up.
float reverse_threshold(float phi, float w) {
  return round_up_to_float(static_cast<double>(phi) + static_cast<double>(w));
}

// Recompute a row's screening bounds after its heap changed.
void refresh_row_bounds(ScreenContext& c, Index slot, const KnnHeap& heap) {
  const float phi = screening_threshold(heap.threshold(), c.slot_qn[slot], c.scale, c.cu);
  c.row_phi[slot] = phi;
  c.psi[slot] = reverse_threshold(phi, c.norms[slot]);
}

// A context with the parts every scan shares; the rest is per scan or tile.
ScreenContext base_context(const KdTree& tree, const Metric& metric, const std::int64_t* position,
                           double scale, double cu) {
  ScreenContext ctx{};
  ctx.tree = &tree;
  ctx.metric = &metric;
  ctx.position = position;
  ctx.scale = scale;
  ctx.cu = cu;
  return ctx;
}

void take_candidates(ScreenContext& c, Index group, const PanelHits& hits) {
  const Index d = c.tree->n_features();
  for (int r = 0; r < kTile; ++r) {
    if (!hits.forward[r]) continue;
    bool changed = false;
    for (std::uint64_t bits = hits.forward[r]; bits; bits &= bits - 1) {
      const std::int64_t pos = c.position[group * kLanes + __builtin_ctzll(bits)];
      const Index index = c.tree->original_index(pos);
      if (c.heap[r]->excludes(0.0, index)) continue;  // a copy: cannot win even at distance 0
      const double rd = c.metric->rdist(c.query[r], c.tree->row(pos), d);
      changed |= c.heap[r]->push(rd, index);
    }
    if (!changed) continue;
    if (c.row_phi) {
      refresh_row_bounds(c, c.query_slot[r], *c.heap[r]);
      c.phi[r] = c.row_phi[c.query_slot[r]];
    } else {
      c.phi[r] = screening_threshold(c.heap[r]->threshold(), c.qn[r], c.scale, c.cu);
    }
  }
}

void take_pairs(ScreenContext& c, Index group, const PanelHits& hits) {
  take_candidates(c, group, hits);
  const Index d = c.tree->n_features();
  for (int r = 0; r < kTile; ++r) {
    for (std::uint64_t bits = hits.reverse[r]; bits; bits &= bits - 1) {
      const Index slot = group * kLanes + __builtin_ctzll(bits);
      const std::int64_t pos = c.position[slot];
      if (c.row_heaps[pos].excludes(0.0, c.query_index[r])) continue;
      const double rd = c.metric->rdist(c.query[r], c.tree->row(pos), d);
      if (c.row_heaps[pos].push(rd, c.query_index[r])) refresh_row_bounds(c, slot, c.row_heaps[pos]);
    }
  }
}

// Lower bound of the rdist between any point of box a and any of box b
// (Euclidean), monotone in floating point as Metric::min_rdist_box.
double box_gap_rdist(const double* lo_a, const double* hi_a, const double* lo_b,
                     const double* hi_b, Index d) {
  double r = 0.0;
  for (Index j = 0; j < d; ++j) {
    const double gap = std::max(lo_a[j] - hi_b[j], 0.0) + std::max(lo_b[j] - hi_a[j], 0.0);
    r += gap * gap;
  }
  return r;
}

}  // namespace

const char* BruteForceIndex::kernel_isa() { return kernel_choice().isa; }

Index BruteForceIndex::leaf_min_index(const KdTree& tree, Index leaf) const {
  return tree.nodes()[static_cast<std::size_t>(leaves_[static_cast<std::size_t>(leaf)].node)].min_index;
}

std::vector<std::string> BruteForceIndex::supported_isas() {
  std::vector<std::string> out;
  for (const KernelChoice& k : kernels()) out.emplace_back(k.isa);
  return out;
}

void BruteForceIndex::use_isa(const std::string& isa) {
  for (const KernelChoice& k : kernels()) {
    if (isa == k.isa) {
      active_kernel.store(&k, std::memory_order_release);
      return;
    }
  }
  throw std::invalid_argument("the screening kernel '" + isa + "' is not supported on this CPU");
}

void BruteForceIndex::build(const KdTree& tree) {
  d_ = tree.n_features();
  const Index n = tree.n_rows();
  // Centre on the midrange and scale by a power of two so every scaled
  // value lies in (-1, 1); halves first, so no step can overflow.
  center_.assign(static_cast<std::size_t>(d_), 0.0);
  double max_half = 0.0;
  for (Index j = 0; j < d_; ++j) {
    const double lo = tree.lower(0)[j], hi = tree.upper(0)[j];
    center_[static_cast<std::size_t>(j)] = lo / 2 + hi / 2;
    max_half = std::max(max_half, hi / 2 - lo / 2);
  }
  int exponent = 0;
  if (max_half > 0.0) std::frexp(max_half, &exponent);
  scale_ = std::ldexp(1.0, 1 - exponent);  // max |scaled value| <= 1 (+ rounding)
  cu_ = static_cast<double>(4 * d_ + 16) * std::ldexp(1.0, -24);

  leaves_.clear();
  Index groups = 0;
  for (Index node : tree.leaves()) {
    const auto& nd = tree.nodes()[static_cast<std::size_t>(node)];
    const Index count = (nd.end - nd.begin + kLanes - 1) / kLanes;
    leaves_.push_back(Leaf{node, groups, groups + count});
    groups += count;
  }
  const auto slots = static_cast<std::size_t>(groups * kLanes);
  panels_.assign(slots * static_cast<std::size_t>(d_), 0.0f);
  norms_.assign(slots, std::numeric_limits<float>::infinity());
  position_.assign(slots, -1);
  sqnorm_.assign(slots, 0.0);
  screens_ = true;
  for (const Leaf& leaf : leaves_) {
    const auto& nd = tree.nodes()[static_cast<std::size_t>(leaf.node)];
    for (Index pos = nd.begin; pos < nd.end; ++pos) {
      const Index slot = leaf.group_begin * kLanes + (pos - nd.begin);
      const Index g = slot / kLanes, lane = slot % kLanes;
      double norm = 0.0;
      for (Index j = 0; j < d_; ++j) {
        const double v = scaled_value(tree.row(pos)[j], j);
        screens_ &= std::fabs(v) <= 2.0;  // false only if rounding went astray
        norm += v * v;
        panels_[static_cast<std::size_t>((g * d_ + j) * kLanes + lane)] =
            -2.0f * static_cast<float>(v);
      }
      norms_[static_cast<std::size_t>(slot)] = static_cast<float>(norm * (1.0 - cu_));
      position_[static_cast<std::size_t>(slot)] = pos;
      sqnorm_[static_cast<std::size_t>(slot)] = norm;
    }
  }
}

double BruteForceIndex::scaled_value(double x, Index feature) const {
  return (x - center_[static_cast<std::size_t>(feature)]) * scale_;
}

void BruteForceIndex::scan_exact(const KdTree& tree, const Metric& metric, const double* query,
                                 KnnHeap& heap, const std::vector<Index>& leaf_order,
                                 const double* bounds) const {
  for (Index l : leaf_order) {
    const auto& nd =
        tree.nodes()[static_cast<std::size_t>(leaves_[static_cast<std::size_t>(l)].node)];
    if (heap.excludes(bounds[l], nd.min_index)) continue;
    for (Index pos = nd.begin; pos < nd.end; ++pos) {
      const Index index = tree.original_index(pos);
      if (heap.excludes(0.0, index)) continue;
      heap.push(metric.rdist(query, tree.row(pos), d_), index);
    }
  }
}

void BruteForceIndex::search_block(const KdTree& tree, const Metric& metric,
                                   const double* queries, Index n_queries,
                                   KnnHeap* heaps) const {
  FRAUDCORE_CHECK(n_queries <= kQueryBlock, "at most " << kQueryBlock << " queries per block");
  const Index n_leaves = static_cast<Index>(leaves_.size());
  // Lower bound of every query's rdist to every leaf; leaves nearest to the
  // block go first so the k-th distances shrink early.
  std::vector<double> bounds(static_cast<std::size_t>(n_queries * n_leaves));
  std::vector<double> nearest(static_cast<std::size_t>(n_leaves),
                              std::numeric_limits<double>::infinity());
  for (Index i = 0; i < n_queries; ++i) {
    for (Index l = 0; l < n_leaves; ++l) {
      const Index node = leaves_[static_cast<std::size_t>(l)].node;
      const double b =
          metric.min_rdist_box(queries + i * d_, tree.lower(node), tree.upper(node), d_);
      bounds[static_cast<std::size_t>(i * n_leaves + l)] = b;
      nearest[static_cast<std::size_t>(l)] = std::min(nearest[static_cast<std::size_t>(l)], b);
    }
  }
  std::vector<Index> order(static_cast<std::size_t>(n_leaves));
  std::iota(order.begin(), order.end(), Index{0});
  std::sort(order.begin(), order.end(), [&](Index a, Index b) {
    return KnnHeap::less(nearest[static_cast<std::size_t>(a)], leaf_min_index(tree, a),
                         nearest[static_cast<std::size_t>(b)], leaf_min_index(tree, b));
  });

  if (metric.kind() == Metric::Kind::kEuclidean && screens_) {
    screen_euclidean(tree, metric, queries, n_queries, heaps, order, bounds);
    return;
  }
  for (Index i = 0; i < n_queries; ++i) {
    scan_exact(tree, metric, queries + i * d_, heaps[i], order, &bounds[static_cast<std::size_t>(i * n_leaves)]);
  }
}

void BruteForceIndex::search_one(const KdTree& tree, const Metric& metric, const double* query,
                                  KnnHeap& heap) const {
  const auto n_leaves = static_cast<Index>(leaves_.size());
  // Each leaf's lower bound, nearest first, as search_block orders them.
  std::vector<double> bounds(static_cast<std::size_t>(n_leaves));
  std::vector<Index> order(static_cast<std::size_t>(n_leaves));
  for (Index l = 0; l < n_leaves; ++l) {
    const Index node = leaves_[static_cast<std::size_t>(l)].node;
    bounds[static_cast<std::size_t>(l)] =
        metric.min_rdist_box(query, tree.lower(node), tree.upper(node), d_);
  }
  std::iota(order.begin(), order.end(), Index{0});
  std::sort(order.begin(), order.end(), [&](Index a, Index b) {
    return KnnHeap::less(bounds[static_cast<std::size_t>(a)], leaf_min_index(tree, a),
                         bounds[static_cast<std::size_t>(b)], leaf_min_index(tree, b));
  });
  std::vector<float> scaled(static_cast<std::size_t>(d_));
  double qn = 0.0;
  bool exact = metric.kind() != Metric::Kind::kEuclidean || !screens_;
  for (Index j = 0; j < d_ && !exact; ++j) {
    const double v = scaled_value(query[j], j);
    exact = !(std::fabs(v) <= 0x1p60);  // beyond float32: searched exactly
    scaled[static_cast<std::size_t>(j)] = static_cast<float>(v);
    qn += v * v;
  }
  if (exact) {
    scan_exact(tree, metric, query, heap, order, bounds.data());
    return;
  }
  ScreenContext ctx = base_context(tree, metric, position_.data(), scale_, cu_);
  for (int r = 1; r < kTile; ++r) ctx.phi[r] = -FLT_MAX;  // idle slots
  ctx.query[0] = query;
  ctx.heap[0] = &heap;
  ctx.qn[0] = qn;
  const ScreenKernel kernel = kernel_choice().one;
  for (Index l : order) {
    if (heap.excludes(bounds[static_cast<std::size_t>(l)], leaf_min_index(tree, l))) continue;
    ctx.phi[0] = screening_threshold(heap.threshold(), qn, scale_, cu_);
    const Leaf& leaf = leaves_[static_cast<std::size_t>(l)];
    const ScanArgs args{scaled.data(),  ctx.phi,          nullptr,        nullptr,
                        panels_.data(), norms_.data(),    d_,             leaf.group_begin,
                        leaf.group_end, &ctx,             take_candidates};
    kernel(args);
  }
}

void BruteForceIndex::screen_euclidean(const KdTree& tree, const Metric& metric,
                                       const double* queries, Index n_queries, KnnHeap* heaps,
                                       const std::vector<Index>& leaf_order,
                                       const std::vector<double>& bounds) const {
  const Index n_leaves = static_cast<Index>(leaves_.size());
  const Index tiles = (n_queries + kTile - 1) / kTile;
  std::vector<float> scaled(static_cast<std::size_t>(tiles * kTile * d_), 0.0f);
  std::vector<double> qn(static_cast<std::size_t>(tiles * kTile), 0.0);
  // A query far outside the fitted rows' range (|scaled value| > 2^60)
  // would overflow float32: it is searched exactly instead of screened.
  std::vector<char> exact(static_cast<std::size_t>(n_queries), 0);
  for (Index i = 0; i < n_queries; ++i) {
    for (Index j = 0; j < d_; ++j) {
      const double v = scaled_value(queries[i * d_ + j], j);
      if (!(std::fabs(v) <= 0x1p60)) exact[static_cast<std::size_t>(i)] = 1;
      scaled[static_cast<std::size_t>(i * d_ + j)] = static_cast<float>(v);
      qn[static_cast<std::size_t>(i)] += v * v;
    }
    if (exact[static_cast<std::size_t>(i)]) {
      std::fill(&scaled[static_cast<std::size_t>(i * d_)], &scaled[static_cast<std::size_t>((i + 1) * d_)], 0.0f);
      scan_exact(tree, metric, queries + i * d_, heaps[i], leaf_order,
                 &bounds[static_cast<std::size_t>(i * n_leaves)]);
    }
  }
  ScreenContext ctx = base_context(tree, metric, position_.data(), scale_, cu_);
  const ScreenKernel kernel = kernel_choice().forward;
  for (Index l : leaf_order) {
    const Leaf& leaf = leaves_[static_cast<std::size_t>(l)];
    for (Index tile = 0; tile < tiles; ++tile) {
      bool any = false;
      for (int r = 0; r < kTile; ++r) {
        const Index i = tile * kTile + r;
        ctx.phi[r] = -FLT_MAX;  // an idle slot: nothing passes
        if (i >= n_queries || exact[static_cast<std::size_t>(i)]) continue;
        const double theta = heaps[i].threshold();
        if (heaps[i].excludes(bounds[static_cast<std::size_t>(i * n_leaves + l)],
                              leaf_min_index(tree, l))) {
          continue;
        }
        ctx.query[r] = queries + i * d_;
        ctx.heap[r] = &heaps[i];
        ctx.qn[r] = qn[static_cast<std::size_t>(i)];
        ctx.phi[r] = screening_threshold(theta, ctx.qn[r], scale_, cu_);
        any = true;
      }
      if (!any) continue;
      const ScanArgs args{scaled.data() + tile * kTile * d_,
                          ctx.phi,
                          nullptr,
                          nullptr,
                          panels_.data(),
                          norms_.data(),
                          d_,
                          leaf.group_begin,
                          leaf.group_end,
                          &ctx,
                          take_candidates};
      kernel(args);
    }
  }
}

void BruteForceIndex::search_all_fitted(const KdTree& tree, const Metric& metric,
                                        KnnHeap* heaps, int n_threads) const {
  FRAUDCORE_CHECK(metric.kind() == Metric::Kind::kEuclidean,
                  "the symmetric scan needs the Euclidean metric");
  const auto n_leaves = static_cast<Index>(leaves_.size());
  const KernelChoice& kernels = kernel_choice();
  // Every row's phi and psi, kept current as its heap changes; padding
  // rows never pass (-FLT_MAX), rows with room take anything (FLT_MAX).
  std::vector<float> row_phi(norms_.size()), psi(norms_.size());
  for (std::size_t slot = 0; slot < norms_.size(); ++slot) {
    row_phi[slot] = psi[slot] = position_[slot] < 0 ? -FLT_MAX : FLT_MAX;
  }

  // Leaf a's rows as queries, row-major: their float values are the
  // panels' divided by -2, exactly.
  const auto leaf_queries = [&](const Leaf& a, std::vector<float>& q) {
    q.resize(static_cast<std::size_t>((a.group_end - a.group_begin) * kLanes * d_));
    for (Index g = a.group_begin; g < a.group_end; ++g) {
      for (Index j = 0; j < d_; ++j) {
        const float* src = &panels_[static_cast<std::size_t>((g * d_ + j) * kLanes)];
        float* dst = &q[static_cast<std::size_t>((g - a.group_begin) * kLanes * d_ + j)];
        for (Index lane = 0; lane < kLanes; ++lane) dst[lane * d_] = -0.5f * src[lane];
      }
    }
  };
  // Point ctx's tile at slots [first, first + kTile).
  const auto load_tile = [&](ScreenContext& ctx, Index first) {
    for (int r = 0; r < kTile; ++r) {
      const Index slot = first + r;
      const std::int64_t pos = position_[static_cast<std::size_t>(slot)];
      if (pos < 0) {  // padding: idle in both directions
        ctx.phi[r] = -FLT_MAX;
        ctx.query_norm[r] = std::numeric_limits<float>::infinity();
        continue;
      }
      ctx.query[r] = tree.row(pos);
      ctx.heap[r] = &heaps[pos];
      ctx.qn[r] = sqnorm_[static_cast<std::size_t>(slot)];
      ctx.phi[r] = row_phi[static_cast<std::size_t>(slot)];
      ctx.query_norm[r] = norms_[static_cast<std::size_t>(slot)];
      ctx.query_index[r] = tree.original_index(pos);
      ctx.query_slot[r] = slot;
    }
  };
  const auto new_context = [&]() {
    ScreenContext ctx = base_context(tree, metric, position_.data(), scale_, cu_);
    ctx.row_heaps = heaps;
    ctx.row_phi = row_phi.data();
    ctx.psi = psi.data();
    ctx.slot_qn = sqnorm_.data();
    ctx.norms = norms_.data();
    return ctx;
  };
  // Scan leaf a's rows as queries against leaf b's rows (b's rows also take
  // the pairs as queries when symmetric).
  const auto scan = [&](const Leaf& a, const Leaf& b, bool symmetric) {
    ScreenContext ctx = new_context();
    std::vector<float> q;
    leaf_queries(a, q);
    const Index first_slot = a.group_begin * kLanes;
    for (Index first = first_slot; first < a.group_end * kLanes; first += kTile) {
      load_tile(ctx, first);
      const ScanArgs args{&q[static_cast<std::size_t>((first - first_slot) * d_)],
                          ctx.phi,
                          ctx.query_norm,
                          psi.data(),
                          panels_.data(),
                          norms_.data(),
                          d_,
                          b.group_begin,
                          b.group_end,
                          &ctx,
                          symmetric ? take_pairs : take_candidates};
      (symmetric ? kernels.symmetric : kernels.forward)(args);
    }
  };
  // The largest (k-th rdist, index) pair over a leaf's rows: no row of the
  // leaf takes a pair that is not below it (+inf while a heap has room).
  const auto worst_pair = [&](const Leaf& leaf) {
    std::pair<double, Index> worst{0.0, 0};
    const auto& nd = tree.nodes()[static_cast<std::size_t>(leaf.node)];
    for (Index pos = nd.begin; pos < nd.end; ++pos) {
      const KnnHeap& h = heaps[pos];
      if (!h.full()) return std::pair<double, Index>{std::numeric_limits<double>::infinity(), 0};
      if (KnnHeap::less(worst.first, worst.second, h.threshold(), h.top_index())) {
        worst = {h.threshold(), h.top_index()};
      }
    }
    return worst;
  };

  // Round 0: every leaf against itself, so each row starts with its own
  // leaf's neighbours (tight bounds for the rounds that follow).
  parallel_for(n_leaves, n_threads, [&](Index l) {
    const Leaf& leaf = leaves_[static_cast<std::size_t>(l)];
    scan(leaf, leaf, false);
  });

  // Then every unordered pair of leaves once, nearest first: leaves are in
  // k-d tree order, so a small index offset means nearby leaves, and the
  // k-th distances shrink early. Offset delta pairs (a, a + delta); taking
  // a with even (a / delta), then odd, gives two rounds in which no leaf
  // appears twice.
  for (Index delta = 1; delta < n_leaves; ++delta) {
    for (Index parity = 0; parity < 2; ++parity) {
      std::vector<Index> firsts;
      for (Index a = 0; a + delta < n_leaves; ++a) {
        if ((a / delta) % 2 == parity) firsts.push_back(a);
      }
      parallel_for(static_cast<Index>(firsts.size()), n_threads, [&](Index i) {
      const Index a = firsts[static_cast<std::size_t>(i)];
      const Index b = a + delta;
      const Leaf& la = leaves_[static_cast<std::size_t>(a)];
      const Leaf& lb = leaves_[static_cast<std::size_t>(b)];
      const double gap = box_gap_rdist(tree.lower(la.node), tree.upper(la.node),
                                       tree.lower(lb.node), tree.upper(lb.node), d_);
      // Skip the pair when no row of either leaf can take a row of the other:
      // every such pair is at least (gap, the other leaf's lowest index).
      const auto& na = tree.nodes()[static_cast<std::size_t>(la.node)];
      const auto& nb = tree.nodes()[static_cast<std::size_t>(lb.node)];
      const auto wa = worst_pair(la), wb = worst_pair(lb);
      if (!KnnHeap::less(gap, nb.min_index, wa.first, wa.second) &&
          !KnnHeap::less(gap, na.min_index, wb.first, wb.second)) {
        return;
      }
      scan(la, lb, true);
      });
    }
  }
}

}  // namespace fraudcore
