#include "fraudcore/ip_ranges.hpp"

#include <algorithm>
#include <cmath>

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"

namespace fraudcore {

IpRangeTable::IpRangeTable(std::vector<double> lower, std::vector<double> upper)
    : lower_(std::move(lower)), upper_(std::move(upper)) {
  FRAUDCORE_CHECK(lower_.size() == upper_.size(), "the IP range table has " << lower_.size()
                                                    << " lower bounds but " << upper_.size() << " upper bounds");
  for (std::size_t r = 0; r < lower_.size(); ++r) {
    FRAUDCORE_CHECK(std::isfinite(lower_[r]) && std::isfinite(upper_[r]),
                    "IP range " << r << " has a missing or infinite bound");
    FRAUDCORE_CHECK(lower_[r] <= upper_[r], "IP range " << r << " has lower bound " << lower_[r]
                                                        << " above its upper bound " << upper_[r]);
    FRAUDCORE_CHECK(r == 0 || lower_[r] > upper_[r - 1],
                    "IP range " << r << " starts at " << lower_[r] << ", not after the previous range's end "
                                << upper_[r - 1] << " (the table must be sorted and not overlap)");
  }
}

Index IpRangeTable::find(double ip) const {
  if (std::isnan(ip)) return -1;
  // The last range starting at or below ip is the only candidate.
  const auto it = std::upper_bound(lower_.begin(), lower_.end(), ip);
  if (it == lower_.begin()) return -1;
  const auto r = static_cast<Index>(it - lower_.begin()) - 1;
  return ip <= upper_[static_cast<std::size_t>(r)] ? r : -1;
}

void IpRangeTable::find_all(const double* ips, Index n, Index* out, int n_threads) const {
  constexpr Index kBlock = 4096;
  parallel_for((n + kBlock - 1) / kBlock, n_threads, [&](Index b) {
    const Index end = std::min(n, (b + 1) * kBlock);
    for (Index i = b * kBlock; i < end; ++i) out[i] = find(ips[i]);
  });
}

}  // namespace fraudcore
