// A set of int64 values that is cheap while small: the distinct countries,
// devices or IPs of one customer are usually a handful, so they live in a
// short vector searched linearly (no allocation per value, one cache line);
// past kSmall values the set moves to a hash set, so a customer with
// thousands of invoices still costs O(1) per lookup.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_set>
#include <vector>

namespace fraudcore {

class ValueSet {
 public:
  static constexpr std::size_t kSmall = 16;

  bool contains(std::int64_t v) const {
    if (large_.empty()) return std::find(small_.begin(), small_.end(), v) != small_.end();
    return large_.count(v) > 0;
  }

  /// Add v; true when it was not there yet.
  bool insert(std::int64_t v) {
    if (!large_.empty()) return large_.insert(v).second;
    if (std::find(small_.begin(), small_.end(), v) != small_.end()) return false;
    if (small_.size() < kSmall) {
      small_.push_back(v);
      return true;
    }
    large_.insert(small_.begin(), small_.end());
    large_.insert(v);
    small_.clear();
    small_.shrink_to_fit();
    return true;
  }

  std::size_t size() const { return large_.empty() ? small_.size() : large_.size(); }

  /// The values in increasing order (a deterministic serialization).
  std::vector<std::int64_t> sorted() const {
    std::vector<std::int64_t> out = large_.empty() ? small_ : std::vector<std::int64_t>(large_.begin(), large_.end());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::vector<std::int64_t> small_;
  std::unordered_set<std::int64_t> large_;  // empty while the set is small
};

}  // namespace fraudcore
