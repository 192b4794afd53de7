// Point-in-time transaction features, computed once for a whole table
// (build_features, parallel over entities) or one transaction at a time
// (FeatureState), with one definition for both.
//
// Contract
// - A transaction's entity features use only that entity's earlier
//   transactions: earlier in time, or at the same time and earlier in input
//   order (batch) / arrival order (streaming). So training features equal
//   serving features: feeding a table's rows to FeatureState in (time, input
//   order) gives bit-identical rows to build_features on the table.
// - Device and IP counts use every entity's transactions up to and
//   including the current one in that same order.
// - Times are int64 nanoseconds on a naive (local wall-clock) time line;
//   hour and day of week are read from it as if it were UTC.
// - Amounts and quantities must be finite and within +-kMaxAbsAmount, and a
//   non-zero amount at least kMinAbsAmount in magnitude (so no square, sum
//   or ratio can overflow); anything else is an std::invalid_argument
//   naming the row. Neutral values stand in where there is no history, so
//   every feature is finite (see feature_names() for the list and the
//   defaults); a row whose features still were not would be refused,
//   naming it and the feature (a last line of defence for new features).
// - Batch memory is linear in the number of rows (the output, the row
//   order and a few bytes per row; scratch space is per thread and small);
//   the output is row-major, n x feature_names(config).size(), in the
//   caller's row order: the matrix a detector takes.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fraudcore/types.hpp"
#include "fraudcore/value_set.hpp"

namespace fraudcore {

class ByteReader;
class ByteWriter;
struct TransactionColumns;

/// The largest |amount| and |quantity| the features take, and the smallest
/// non-zero |amount|. Within them no feature can overflow: a ratio to a
/// mean or a standard deviation (counted as 0 below 1e-9 x the mean |amount|)
/// stays below n x 1e209.
inline constexpr double kMaxAbsAmount = 1e100;
inline constexpr double kMinAbsAmount = 1e-100;

/// Which optional columns exist, and the feature settings.
struct FeatureConfig {
  std::vector<std::int64_t> windows_ns{3'600'000'000'000LL, 86'400'000'000'000LL,
                                       604'800'000'000'000LL};  // 1 h, 24 h, 7 d
  int night_start_hour = 0;  // night: start <= hour < end (wraps past midnight when start > end)
  int night_end_hour = 6;
  double spike_sigmas = 3.0;  // quantity_spike: |q - mean| > spike_sigmas * std
  bool has_quantity = false;
  bool has_invoice = false;
  bool has_country = false;
  bool has_device = false;
  bool has_ip = false;
  bool has_signup = false;

  /// Throws std::invalid_argument for a bad setting.
  void validate() const;
};

/// One transaction. Categorical values are codes >= 0, or -1 when missing;
/// fields whose column the config lacks are ignored.
struct Transaction {
  std::int64_t entity = 0;
  std::int64_t time_ns = 0;
  double amount = 0.0;
  double quantity = 0.0;
  std::int64_t invoice = -1;
  std::int64_t country = -1;
  std::int64_t device = -1;
  std::int64_t ip = -1;
  std::int64_t signup_ns = 0;
  bool has_signup_time = false;
};

/// Feature names, in output column order, for a config.
std::vector<std::string> feature_names(const FeatureConfig& config);

/// A running sum kept as an unevaluated pair hi + lo (Knuth's two-sum), so
/// differences of two running sums are exact to about 100 bits: a window's
/// amount sum is total - total_before without the rounding of everything
/// summed before the window (1e16 then 1.0 leaves 1.0, not 0).
struct CompensatedSum {
  double hi = 0.0, lo = 0.0;

  void add(double x);
  /// (*this - earlier), rounded once.
  double minus(const CompensatedSum& earlier) const { return (hi - earlier.hi) + (lo - earlier.lo); }
};

/// Running mean and variance (Welford) of a value stream, with its mean
/// magnitude to tell a real zero from rounding noise.
struct RunningStats {
  double mean = 0.0, m2 = 0.0, magnitude = 0.0;  // magnitude: the mean of |x|

  /// Add x, the n-th value.
  void add(double x, std::int64_t n);
  /// Population standard deviation of n values (0 for none).
  double std_dev(std::int64_t n) const;
  /// |v| <= 1e-9 x magnitude: zero but for rounding (a mean after a purchase
  /// and its return, the spread of identical values).
  bool negligible(double v) const;
};

/// Running statistics of one entity's history.
class EntityHistory {
 public:
  /// Write the features of `t` (given the history so far) to out[0..);
  /// the device/IP counts are filled in by the caller. Returns the number
  /// of values written.
  Index features(const FeatureConfig& config, const Transaction& t, double* out) const;
  /// Add `t` to the history. Throws when t is earlier than the last one.
  void add(const FeatureConfig& config, const Transaction& t);

  /// Whether an earlier transaction used this device / IP (config has it).
  bool used_device(std::int64_t device) const { return devices_.contains(device); }
  bool used_ip(std::int64_t ip) const { return ips_.contains(ip); }
  std::int64_t count() const { return count_; }
  std::int64_t last_time_ns() const { return last_time_ns_; }

  void write(ByteWriter& w) const;
  static EntityHistory read(ByteReader& r);

 private:
  struct Recent {
    std::int64_t time_ns;
    CompensatedSum total_before;  // running amount total before this transaction
  };
  std::int64_t count_ = 0;
  RunningStats amounts_, quantities_;
  CompensatedSum total_;  // running amount total
  std::int64_t last_time_ns_ = 0;
  // Transactions inside the longest window: recent_[recent_first_ ..), in
  // time order (a queue in a vector: popping advances recent_first_, and
  // the dead front is dropped once it is half the vector).
  std::vector<Recent> recent_;
  std::size_t recent_first_ = 0;
  ValueSet invoices_, countries_, devices_, ips_;
};

/// Distinct entities seen per device (or IP) value, in arrival order. The
/// caller knows whether an entity uses a value for the first time (from
/// the entity's own history), so only a count per value is kept.
class SharedUse {
 public:
  /// Count a use of `value` (>= 0), by an entity using it for the first
  /// time if first_use, and return the number of distinct entities that
  /// have used it; 0 for a missing value (-1).
  double add(std::int64_t value, bool first_use);

  void write(ByteWriter& w) const;
  static SharedUse read(ByteReader& r);

 private:
  std::unordered_map<std::int64_t, std::int64_t> users_;
};

/// Streaming features: one transaction at a time, keeping each entity's
/// history. Saves and loads, so a restarted service keeps its state.
///
/// Thread safety: every member may be called from any thread at any time.
/// Updates are applied one at a time (an update or a whole update_many
/// batch is atomic: no other call sees it half done), and serialize() is a
/// consistent snapshot taken between updates; reads share the state, an
/// update excludes every other call while it runs.
class FeatureState {
 public:
  explicit FeatureState(FeatureConfig config);

  const FeatureConfig& config() const { return config_; }
  Index n_features() const { return static_cast<Index>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  Index n_entities() const;

  /// Features of `t` into out[0..n_features()), then add it to the state.
  /// Throws std::invalid_argument (state unchanged) for a non-finite
  /// amount or quantity, or a time earlier than the entity's last one.
  void update(const Transaction& t, double* out);

  /// update() for every row of `columns` in order, into out (n x
  /// n_features(), row-major). All rows are checked first, so a rejected
  /// batch (naming its first bad row) leaves the state unchanged.
  void update_many(const TransactionColumns& columns, double* out);

  std::string serialize() const;
  static FeatureState deserialize(const std::string& bytes);

 private:
  // update() once check_transaction passed (the time order is checked by add()).
  void apply(const Transaction& t, double* out);

  // Held exclusively by updates, shared by readers (heap-held so the state
  // stays movable; a moved-from state is never used again).
  mutable std::unique_ptr<std::shared_mutex> mutex_ = std::make_unique<std::shared_mutex>();
  FeatureConfig config_;
  std::vector<std::string> names_;
  std::unordered_map<std::int64_t, EntityHistory> entities_;
  SharedUse device_users_, ip_users_;
};

/// Column arrays of a transaction table (n rows each); optional ones may be
/// null when the config lacks them.
struct TransactionColumns {
  Index n = 0;
  const std::int64_t* entity = nullptr;  // codes, any int64
  const std::int64_t* time_ns = nullptr;
  const double* amount = nullptr;
  const double* quantity = nullptr;
  const std::int64_t* invoice = nullptr;
  const std::int64_t* country = nullptr;
  const std::int64_t* device = nullptr;
  const std::int64_t* ip = nullptr;
  const std::int64_t* signup_ns = nullptr;
  const std::uint8_t* has_signup_time = nullptr;  // 1 where signup_ns holds a value

  Transaction row(Index i) const;
};

/// Batch features of every row into out (n x feature_names(config).size(),
/// row-major), parallel over entities on n_threads threads. Throws std::invalid_argument naming the
/// first row with a non-finite amount or quantity or a NaT time.
void build_features(const FeatureConfig& config, const TransactionColumns& columns, double* out,
                    int n_threads);

}  // namespace fraudcore
