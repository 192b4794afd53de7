#include "fraudcore/knn_brute.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "fraudcore/error.hpp"

namespace fraudcore {
namespace {

constexpr Index kLanes = 64;  // rows per panel
constexpr int kTile = 4;      // queries per kernel pass
constexpr double kTiny = 1e-30;  // absolute slack for float32 underflow

struct ScreenContext {
  const KdTree* tree;
  const Metric* metric;
  const std::int64_t* position;
  double scale, cu;
  const double* query[kTile];
  KnnHeap* heap[kTile];
  double qn[kTile];
  float phi[kTile];
};

// Called by the kernel when a panel holds candidates: t is the kTile x 64
// screened values of the panel, hit_rows a bit per query with a candidate.
using CandidateSink = void (*)(ScreenContext& ctx, Index group, const float* t,
                               std::uint32_t hit_rows);

struct ScanArgs {
  const float* queries;  // kTile x d, centred and scaled
  const float* phi;      // kTile strict screening bounds, updated by the sink
  const float* panels;
  const float* norms;
  Index d;
  Index group_begin, group_end;
  ScreenContext* ctx;
  CandidateSink sink;
};

// An int32 vector as wide as a float vector of `bytes` bytes (a dependent
// vector_size attribute is not reliable inside a template).
template <std::size_t bytes>
struct SameSizeInts;
template <>
struct SameSizeInts<16> {
  typedef std::int32_t type __attribute__((vector_size(16)));
};
template <>
struct SameSizeInts<32> {
  typedef std::int32_t type __attribute__((vector_size(32)));
};
template <>
struct SameSizeInts<64> {
  typedef std::int32_t type __attribute__((vector_size(64)));
};

// Whether any int32 lane of `bits` has its sign bit set.
template <class Bits>
__attribute__((always_inline)) inline bool has_sign_bit(const Bits& bits) {
  std::uint64_t words[sizeof(Bits) / 8];
  std::memcpy(words, &bits, sizeof(Bits));
  std::uint64_t any = 0;
  for (std::uint64_t word : words) any |= word;
  return (any & 0x8000000080000000ull) != 0;
}

// The screening kernel, written once over GCC/Clang vector extensions and
// inlined into one function per instruction set below, where the compiler
// lowers V to that set's registers. t = |y|^2 (1 - cu) - 2 q.y per pair;
// QR queries share each load of a panel row. phi is a strict bound: a pair
// is a candidate when t < phi.
template <class V, int QR>
__attribute__((always_inline)) inline void screen_panels(const ScanArgs& a) {
  constexpr int W = static_cast<int>(sizeof(V) / sizeof(float));
  constexpr int NV = static_cast<int>(kLanes) / W;
  using Bits = typename SameSizeInts<sizeof(V)>::type;
  const Index d = a.d;
  alignas(64) float t[kTile][kLanes];
  for (Index g = a.group_begin; g < a.group_end; ++g) {
    const float* panel = a.panels + g * d * kLanes;
    const float* norms = a.norms + g * kLanes;
    std::uint32_t hit_rows = 0;
    for (int r0 = 0; r0 < kTile; r0 += QR) {
      V acc[QR][NV];
      for (int v = 0; v < NV; ++v) {
        V w;
        std::memcpy(&w, norms + v * W, sizeof(V));
        for (int r = 0; r < QR; ++r) acc[r][v] = w;
      }
      const float* q = a.queries + r0 * d;
      for (Index j = 0; j < d; ++j) {
        for (int v = 0; v < NV; ++v) {
          V y;
          std::memcpy(&y, panel + j * kLanes + v * W, sizeof(V));
          for (int r = 0; r < QR; ++r) acc[r][v] += y * q[r * d + j];
        }
      }
      // A pair is a candidate when t < phi; the sign bit of t - phi says so
      // exactly (a rounded difference keeps its sign and is never -0).
      // Integer ORs and no vector compares: the latter lower poorly outside
      // AVX-512's mask registers.
      Bits sign[QR];
      Bits any_sign = Bits{};
      for (int r = 0; r < QR; ++r) {
        const float phi = a.phi[r0 + r];
        sign[r] = reinterpret_cast<Bits>(acc[r][0] - phi);
        for (int v = 1; v < NV; ++v) sign[r] |= reinterpret_cast<Bits>(acc[r][v] - phi);
        any_sign |= sign[r];
      }
      if (!has_sign_bit(any_sign)) continue;  // the common case: no candidate
      for (int r = 0; r < QR; ++r) {
        if (!has_sign_bit(sign[r])) continue;
        hit_rows |= 1u << (r0 + r);
        std::memcpy(t[r0 + r], acc[r], sizeof(acc[r]));
      }
    }
    if (hit_rows) a.sink(*a.ctx, g, &t[0][0], hit_rows);
  }
}

typedef float Vec4 __attribute__((vector_size(16)));
void screen_generic(const ScanArgs& a) { screen_panels<Vec4, 1>(a); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FRAUDCORE_X86_DISPATCH 1
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec16 __attribute__((vector_size(64)));
__attribute__((target("avx2,fma"))) void screen_avx2(const ScanArgs& a) {
  screen_panels<Vec8, 1>(a);
}
__attribute__((target("avx512f"))) void screen_avx512(const ScanArgs& a) {
  screen_panels<Vec16, kTile>(a);
}
#endif

using ScreenKernel = void (*)(const ScanArgs&);
struct KernelChoice {
  ScreenKernel kernel;
  const char* isa;
};

KernelChoice best_kernel() {
#ifdef FRAUDCORE_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {screen_avx512, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {screen_avx2, "avx2"};
#endif
  return {screen_generic, "sse2"};
}

const KernelChoice& kernel_choice() {
  static const KernelChoice choice = best_kernel();
  return choice;
}

// The strict float32 screening bound phi (candidates have t < phi) that
// keeps every pair with s~ - E <= theta, for a query with scaled squared
// norm qn. At most FLT_MAX, so padding rows (t = +inf) never pass.
float screening_threshold(double theta, double qn, double scale, double cu) {
  if (std::isinf(theta)) return FLT_MAX;
  const double x = theta * scale * scale - qn + cu * qn + kTiny;
  if (x >= static_cast<double>(FLT_MAX)) return FLT_MAX;
  float f = static_cast<float>(x);
  if (static_cast<double>(f) < x) f = std::nextafter(f, FLT_MAX);
  return std::nextafter(f, FLT_MAX);
}

void take_candidates(ScreenContext& c, Index group, const float* t, std::uint32_t hit_rows) {
  const Index d = c.tree->n_features();
  for (int r = 0; r < kTile; ++r) {
    if (!(hit_rows & (1u << r))) continue;
    const float phi = c.phi[r];
    KnnHeap& heap = *c.heap[r];
    for (Index lane = 0; lane < kLanes; ++lane) {
      if (!(t[r * kLanes + lane] < phi)) continue;
      const std::int64_t pos = c.position[group * kLanes + lane];
      const double rd = c.metric->rdist(c.query[r], c.tree->row(pos), d);
      if (rd <= heap.threshold()) heap.push(rd, c.tree->original_index(pos));
    }
    c.phi[r] = screening_threshold(heap.threshold(), c.qn[r], c.scale, c.cu);
  }
}

}  // namespace

const char* BruteForceIndex::kernel_isa() { return kernel_choice().isa; }

void BruteForceIndex::build(const KdTree& tree) {
  d_ = tree.n_features();
  const Index n = tree.n_rows();
  center_.assign(static_cast<std::size_t>(d_), 0.0);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d_; ++j) center_[static_cast<std::size_t>(j)] += tree.row(i)[j];
  }
  for (double& c : center_) c /= static_cast<double>(n);
  double max_abs = 0.0;
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d_; ++j) {
      max_abs = std::max(max_abs, std::fabs(tree.row(i)[j] - center_[static_cast<std::size_t>(j)]));
    }
  }
  int exponent = 0;
  if (max_abs > 0.0) std::frexp(max_abs, &exponent);
  scale_ = std::ldexp(1.0, -exponent);  // max |scaled value| in [0.5, 1)
  cu_ = static_cast<double>(4 * d_ + 16) * std::ldexp(1.0, -24);

  leaves_.clear();
  Index groups = 0;
  for (Index node : tree.leaves()) {
    const auto& nd = tree.nodes()[static_cast<std::size_t>(node)];
    const Index count = (nd.end - nd.begin + kLanes - 1) / kLanes;
    leaves_.push_back(Leaf{node, groups, groups + count});
    groups += count;
  }
  panels_.assign(static_cast<std::size_t>(groups * d_ * kLanes), 0.0f);
  norms_.assign(static_cast<std::size_t>(groups * kLanes), std::numeric_limits<float>::infinity());
  position_.assign(static_cast<std::size_t>(groups * kLanes), -1);
  std::vector<double> y(static_cast<std::size_t>(d_));
  for (const Leaf& leaf : leaves_) {
    const auto& nd = tree.nodes()[static_cast<std::size_t>(leaf.node)];
    for (Index pos = nd.begin; pos < nd.end; ++pos) {
      const Index g = leaf.group_begin + (pos - nd.begin) / kLanes;
      const Index lane = (pos - nd.begin) % kLanes;
      double norm = 0.0;
      for (Index j = 0; j < d_; ++j) {
        const double v = (tree.row(pos)[j] - center_[static_cast<std::size_t>(j)]) * scale_;
        norm += v * v;
        panels_[static_cast<std::size_t>((g * d_ + j) * kLanes + lane)] =
            -2.0f * static_cast<float>(v);
      }
      norms_[static_cast<std::size_t>(g * kLanes + lane)] =
          static_cast<float>(norm * (1.0 - cu_));
      position_[static_cast<std::size_t>(g * kLanes + lane)] = pos;
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
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
    return nearest[static_cast<std::size_t>(a)] < nearest[static_cast<std::size_t>(b)];
  });

  if (metric.kind() == Metric::Kind::kEuclidean) {
    screen_euclidean(tree, metric, queries, n_queries, heaps, order, bounds);
    return;
  }
  for (Index l : order) {
    const auto& nd = tree.nodes()[static_cast<std::size_t>(leaves_[static_cast<std::size_t>(l)].node)];
    for (Index i = 0; i < n_queries; ++i) {
      KnnHeap& heap = heaps[i];
      if (bounds[static_cast<std::size_t>(i * n_leaves + l)] > heap.threshold()) continue;
      for (Index pos = nd.begin; pos < nd.end; ++pos) {
        const double rd = metric.rdist(queries + i * d_, tree.row(pos), d_);
        if (rd <= heap.threshold()) heap.push(rd, tree.original_index(pos));
      }
    }
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
  for (Index i = 0; i < n_queries; ++i) {
    for (Index j = 0; j < d_; ++j) {
      const double v = (queries[i * d_ + j] - center_[static_cast<std::size_t>(j)]) * scale_;
      scaled[static_cast<std::size_t>(i * d_ + j)] = static_cast<float>(v);
      qn[static_cast<std::size_t>(i)] += v * v;
    }
  }
  ScreenContext ctx{};
  ctx.tree = &tree;
  ctx.metric = &metric;
  ctx.position = position_.data();
  ctx.scale = scale_;
  ctx.cu = cu_;
  const ScreenKernel kernel = kernel_choice().kernel;
  for (Index l : leaf_order) {
    const Leaf& leaf = leaves_[static_cast<std::size_t>(l)];
    for (Index tile = 0; tile < tiles; ++tile) {
      bool any = false;
      for (int r = 0; r < kTile; ++r) {
        const Index i = tile * kTile + r;
        ctx.phi[r] = -FLT_MAX;  // an idle slot: nothing passes
        if (i >= n_queries) continue;
        const double theta = heaps[i].threshold();
        if (bounds[static_cast<std::size_t>(i * n_leaves + l)] > theta) continue;
        ctx.query[r] = queries + i * d_;
        ctx.heap[r] = &heaps[i];
        ctx.qn[r] = qn[static_cast<std::size_t>(i)];
        ctx.phi[r] = screening_threshold(theta, ctx.qn[r], scale_, cu_);
        any = true;
      }
      if (!any) continue;
      const ScanArgs args{scaled.data() + tile * kTile * d_,
                          ctx.phi,
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

}  // namespace fraudcore
