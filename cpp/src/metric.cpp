#include "fraudcore/metric.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

#include "fraudcore/error.hpp"

namespace fraudcore {

Metric Metric::minkowski(double p) {
  FRAUDCORE_CHECK(p >= 1.0, "p must be >= 1 (1 = Manhattan, 2 = Euclidean, inf = Chebyshev), got "
                                << p);
  if (p == 1.0) return Metric(Kind::kManhattan, p);
  if (p == 2.0) return Metric(Kind::kEuclidean, p);
  if (std::isinf(p)) return Metric(Kind::kChebyshev, p);
  return Metric(Kind::kMinkowski, p);
}

std::string Metric::name() const {
  switch (kind_) {
    case Kind::kManhattan: return "manhattan";
    case Kind::kEuclidean: return "euclidean";
    case Kind::kChebyshev: return "chebyshev";
    case Kind::kMinkowski: break;
  }
  std::ostringstream s;
  s << "minkowski(p=" << p_ << ")";
  return s.str();
}

// Kept out of line on purpose: one compiled body, hence one rounding
// behaviour, for every caller (see the header's contract).
__attribute__((noinline)) double Metric::rdist(const double* a, const double* b, Index d) const {
  double r = 0.0;
  switch (kind_) {
    case Kind::kEuclidean:
      for (Index j = 0; j < d; ++j) {
        const double t = a[j] - b[j];
        r += t * t;
      }
      return r;
    case Kind::kManhattan:
      for (Index j = 0; j < d; ++j) r += std::fabs(a[j] - b[j]);
      return r;
    case Kind::kChebyshev:
      for (Index j = 0; j < d; ++j) r = std::max(r, std::fabs(a[j] - b[j]));
      return r;
    case Kind::kMinkowski:
      for (Index j = 0; j < d; ++j) r += std::pow(std::fabs(a[j] - b[j]), p_);
      return r;
  }
  return r;
}

double Metric::to_dist(double rdist) const {
  switch (kind_) {
    case Kind::kEuclidean: return std::sqrt(rdist);
    case Kind::kMinkowski: return std::pow(rdist, 1.0 / p_);
    case Kind::kManhattan:
    case Kind::kChebyshev: break;
  }
  return rdist;
}

// The gap to the box per feature is never larger than |q_j - x_j| for a point
// inside it (rounding is monotone), and each metric accumulates the gaps in
// the same order and with the same operations as rdist().
__attribute__((noinline)) double Metric::min_rdist_box(const double* q, const double* lo,
                                                       const double* hi, Index d) const {
  // gap_j = max(lo - q, 0) + max(q - hi, 0): at most one term is non-zero.
  const auto gap = [&](Index j) {
    return std::max(lo[j] - q[j], 0.0) + std::max(q[j] - hi[j], 0.0);
  };
  double r = 0.0;
  switch (kind_) {
    case Kind::kEuclidean:
      for (Index j = 0; j < d; ++j) r += gap(j) * gap(j);
      return r;
    case Kind::kManhattan:
      for (Index j = 0; j < d; ++j) r += gap(j);
      return r;
    case Kind::kChebyshev:
      for (Index j = 0; j < d; ++j) r = std::max(r, gap(j));
      return r;
    case Kind::kMinkowski:
      for (Index j = 0; j < d; ++j) r += std::pow(gap(j), p_);
      return r;
  }
  return r;
}

}  // namespace fraudcore
