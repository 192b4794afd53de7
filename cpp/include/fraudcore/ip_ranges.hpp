// Range lookup of numeric IP addresses against a table of [lower, upper]
// ranges (the IpAddress_to_Country format: IPv4 addresses as integers or
// floats, one country per range).
//
// Contract: the table is validated once (finite bounds, lower <= upper,
// sorted by lower, no two ranges overlapping); a lookup is a binary search,
// O(log ranges). An address belongs to range r when lower[r] <= ip <=
// upper[r]; NaN and addresses outside every range map to -1.
#pragma once

#include <vector>

#include "fraudcore/types.hpp"

namespace fraudcore {

class IpRangeTable {
 public:
  /// Throws std::invalid_argument naming the first bad row.
  IpRangeTable(std::vector<double> lower, std::vector<double> upper);

  Index size() const { return static_cast<Index>(lower_.size()); }

  /// Index of the range holding ip, or -1.
  Index find(double ip) const;

  /// out[i] = find(ips[i]) for i < n, on n_threads threads.
  void find_all(const double* ips, Index n, Index* out, int n_threads) const;

 private:
  std::vector<double> lower_, upper_;
};

}  // namespace fraudcore
