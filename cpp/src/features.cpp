#include "fraudcore/features.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <numeric>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"
#include "fraudcore/serialize.hpp"

namespace fraudcore {

namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000LL;
constexpr std::int64_t kSecondsPerDay = 86'400;
constexpr std::int64_t kMissingTime = std::numeric_limits<std::int64_t>::min();  // pandas NaT

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// t - w without overflow (times near the int64 minimum).
std::int64_t window_start(std::int64_t t, std::int64_t w) {
  return t < std::numeric_limits<std::int64_t>::min() + w ? std::numeric_limits<std::int64_t>::min() : t - w;
}

// (a - b) in seconds, without int64 overflow for times far apart.
double seconds_between(std::int64_t a, std::int64_t b) {
  std::int64_t d;
  if (__builtin_sub_overflow(a, b, &d)) return (static_cast<double>(a) - static_cast<double>(b)) / 1e9;
  return static_cast<double>(d) / 1e9;
}

double signed_log1p(double a) { return a < 0 ? -std::log1p(-a) : std::log1p(a); }
double signed_sqrt(double a) { return a < 0 ? -std::sqrt(-a) : std::sqrt(a); }

// "1h", "24h", "7d", "30min", "45s": hours below two days, then days.
std::string window_label(std::int64_t ns) {
  const std::int64_t s = ns / kNanosPerSecond;
  if (ns % kNanosPerSecond != 0) return std::to_string(ns) + "ns";
  if (s % 3600 == 0 && s < 2 * kSecondsPerDay) return std::to_string(s / 3600) + "h";
  if (s % kSecondsPerDay == 0) return std::to_string(s / kSecondsPerDay) + "d";
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "min";
  return std::to_string(s) + "s";
}

std::int64_t longest_window(const FeatureConfig& c) {
  return c.windows_ns.empty() ? 0 : *std::max_element(c.windows_ns.begin(), c.windows_ns.end());
}

bool is_night(const FeatureConfig& c, std::int64_t hour) {
  if (c.night_start_hour <= c.night_end_hour) return hour >= c.night_start_hour && hour < c.night_end_hour;
  return hour >= c.night_start_hour || hour < c.night_end_hour;
}

void check_transaction(const FeatureConfig& c, const Transaction& t, Index row) {
  const auto where = [row] { return row >= 0 ? " (row " + std::to_string(row) + ")" : std::string(); };
  FRAUDCORE_CHECK(std::isfinite(t.amount), "amount is NaN or infinite" << where());
  FRAUDCORE_CHECK(std::abs(t.amount) <= kMaxAbsAmount && (t.amount == 0.0 || std::abs(t.amount) >= kMinAbsAmount),
                  "amount " << t.amount << where() << " is outside the magnitudes the features can hold (0, or "
                            << kMinAbsAmount << " to " << kMaxAbsAmount << ")");
  FRAUDCORE_CHECK(!c.has_quantity || std::isfinite(t.quantity), "quantity is NaN or infinite" << where());
  FRAUDCORE_CHECK(!c.has_quantity || std::abs(t.quantity) <= kMaxAbsAmount,
                  "quantity " << t.quantity << where() << " is beyond +-" << kMaxAbsAmount
                              << ", the largest quantity the features can hold");
  FRAUDCORE_CHECK(t.time_ns != kMissingTime, "timestamp is missing (NaT)" << where());
  FRAUDCORE_CHECK(!c.has_signup || !t.has_signup_time || t.signup_ns != kMissingTime,
                  "signup time is NaT; mark it missing instead" << where());
}

// Throws, naming the transaction and the feature, when a feature of it is
// not finite (amounts within kMaxAbsAmount can still meet, say, a mean of
// 1e-300 in amount_to_mean).
void check_finite_features(const FeatureConfig& c, const double* values, Index count, const Transaction& t,
                           Index row) {
  bool finite = true;
  for (Index f = 0; f < count; ++f) finite &= std::isfinite(values[f]);
  if (finite) return;
  Index f = 0;
  while (std::isfinite(values[f])) ++f;
  FRAUDCORE_CHECK(false, "the features of " << (row >= 0 ? "row " + std::to_string(row) : std::string("the transaction"))
                                            << " (amount " << t.amount << ") are not finite: "
                                            << feature_names(c)[static_cast<std::size_t>(f)] << " = " << values[f]
                                            << "; are the amounts in a sensible unit?");
}

void put_set(ByteWriter& w, const ValueSet& s) { w.put_vector(s.sorted()); }

ValueSet get_set(ByteReader& r) {
  ValueSet s;
  for (std::int64_t v : r.get_vector<std::int64_t>()) s.insert(v);
  return s;
}

// Rows grouped by key, each group's rows in input order: a stable counting
// sort when the keys are small codes (pandas' factorize gives 0..k-1), else
// a stable sort.
struct Groups {
  std::vector<Index> order;    // row indices, group after group
  std::vector<Index> offsets;  // group g is order[offsets[g] .. offsets[g + 1])

  Index size() const { return static_cast<Index>(offsets.size()) - 1; }
  Index* begin(Index g) { return order.data() + offsets[static_cast<std::size_t>(g)]; }
  Index* end(Index g) { return order.data() + offsets[static_cast<std::size_t>(g + 1)]; }
};

Groups group_rows(const std::int64_t* key, Index n) {
  Groups g;
  g.order.resize(static_cast<std::size_t>(n));
  g.offsets.push_back(0);
  if (n == 0) return g;
  const auto [lo, hi] = std::minmax_element(key, key + n);
  if (*lo >= 0 && *hi <= 4 * n + 16) {
    std::vector<Index> next(static_cast<std::size_t>(*hi) + 1, 0);  // rows per key, then write positions
    for (Index i = 0; i < n; ++i) ++next[static_cast<std::size_t>(key[i])];
    Index total = 0;
    for (Index& slot : next) {
      const Index rows = slot;
      slot = total;
      total += rows;
      if (rows > 0) g.offsets.push_back(total);
    }
    for (Index i = 0; i < n; ++i) g.order[static_cast<std::size_t>(next[static_cast<std::size_t>(key[i])]++)] = i;
    return g;
  }
  std::iota(g.order.begin(), g.order.end(), Index{0});
  std::stable_sort(g.order.begin(), g.order.end(), [&](Index a, Index b) { return key[a] < key[b]; });
  for (std::size_t i = 1; i <= g.order.size(); ++i) {
    if (i == g.order.size() || key[g.order[i]] != key[g.order[i - 1]]) g.offsets.push_back(static_cast<Index>(i));
  }
  return g;
}

// Put one group's rows in (time, input order) order.
void sort_by_time(Index* first, Index* last, const std::int64_t* time_ns) {
  const auto by_time = [time_ns](Index a, Index b) { return time_ns[a] < time_ns[b]; };
  if (!std::is_sorted(first, last, by_time)) std::stable_sort(first, last, by_time);
}

}  // namespace

void FeatureConfig::validate() const {
  for (std::size_t i = 0; i < windows_ns.size(); ++i) {
    FRAUDCORE_CHECK(windows_ns[i] > 0, "every window must be positive, got " << windows_ns[i] << " ns");
    for (std::size_t j = 0; j < i; ++j) {
      FRAUDCORE_CHECK(windows_ns[j] != windows_ns[i], "the window of " << windows_ns[i] << " ns is given twice");
    }
  }
  FRAUDCORE_CHECK(night_start_hour >= 0 && night_start_hour <= 23 && night_end_hour >= 0 && night_end_hour <= 24,
                  "night hours must be in [0, 24], got " << night_start_hour << " to " << night_end_hour);
  FRAUDCORE_CHECK(spike_sigmas > 0 && std::isfinite(spike_sigmas), "spike_sigmas must be > 0, got " << spike_sigmas);
}

std::vector<std::string> feature_names(const FeatureConfig& c) {
  std::vector<std::string> names = {"amount",       "amount_log1p",  "amount_sqrt",    "entity_count",
                                    "entity_mean",  "entity_std",    "amount_zscore",  "amount_to_mean",
                                    "hour",         "day_of_week",   "is_weekend",     "is_night",
                                    "seconds_since_prev"};
  for (std::int64_t w : c.windows_ns) {
    names.push_back("count_" + window_label(w));
    names.push_back("amount_sum_" + window_label(w));
  }
  names.push_back("amount_x_hour");
  names.push_back("amount_x_night");
  if (c.has_quantity) {
    names.push_back("quantity");
    names.push_back("quantity_spike");
  }
  if (c.has_invoice) names.push_back("hist_freq");
  if (c.has_country) names.push_back("unusual_country");
  if (c.has_device) names.push_back("new_device");
  if (c.has_signup) names.push_back("signup_delay_s");
  // Shared-use counts come last: FeatureState and build_features fill them.
  if (c.has_device) names.push_back("device_users");
  if (c.has_ip) names.push_back("ip_users");
  return names;
}

void CompensatedSum::add(double x) {
  const double sum = hi + x;
  const double virtual_x = sum - hi;
  const double error = (hi - (sum - virtual_x)) + (x - virtual_x);  // hi + x == sum + error exactly
  hi = sum;
  lo += error;
}

void RunningStats::add(double x, std::int64_t n) {
  const double d = x - mean;
  mean += d / static_cast<double>(n);
  m2 += d * (x - mean);
  magnitude += (std::fabs(x) - magnitude) / static_cast<double>(n);
}

double RunningStats::std_dev(std::int64_t n) const { return n > 0 ? std::sqrt(m2 / static_cast<double>(n)) : 0.0; }

bool RunningStats::negligible(double v) const { return std::fabs(v) <= 1e-9 * magnitude; }

Index EntityHistory::features(const FeatureConfig& c, const Transaction& t, double* out) const {
  double* p = out;
  const double a = t.amount;
  const double n = static_cast<double>(count_);
  const double sd = amounts_.std_dev(count_);
  const double mean = amounts_.mean;
  *p++ = a;
  *p++ = signed_log1p(a);
  *p++ = signed_sqrt(a);
  *p++ = n;
  *p++ = mean;
  *p++ = sd;
  *p++ = count_ >= 2 && !amounts_.negligible(sd) ? (a - mean) / sd : 0.0;
  *p++ = count_ > 0 && mean > 0 && !amounts_.negligible(mean) ? a / mean : 1.0;

  const std::int64_t seconds = floor_div(t.time_ns, kNanosPerSecond);
  const std::int64_t day = floor_div(seconds, kSecondsPerDay);
  const std::int64_t hour = (seconds - day * kSecondsPerDay) / 3600;
  const std::int64_t weekday = ((day + 3) % 7 + 7) % 7;  // 1970-01-01 was a Thursday; Monday = 0
  const bool night = is_night(c, hour);
  *p++ = static_cast<double>(hour);
  *p++ = static_cast<double>(weekday);
  *p++ = weekday >= 5 ? 1.0 : 0.0;
  *p++ = night ? 1.0 : 0.0;
  *p++ = count_ > 0 ? seconds_between(t.time_ns, last_time_ns_) : -1.0;

  for (std::int64_t w : c.windows_ns) {
    // recent_ is in time order; count the entries inside (t - w, t].
    const std::int64_t from = window_start(t.time_ns, w);
    const auto first = std::upper_bound(recent_.begin() + static_cast<std::ptrdiff_t>(recent_first_), recent_.end(), from,
                                        [](std::int64_t v, const Recent& r) { return v < r.time_ns; });
    const auto inside = recent_.end() - first;
    *p++ = static_cast<double>(inside);
    *p++ = inside > 0 ? total_.minus(first->total_before) : 0.0;
  }
  *p++ = a * static_cast<double>(hour);
  *p++ = night ? a : 0.0;
  if (c.has_quantity) {
    const double q_sd = quantities_.std_dev(count_);
    *p++ = t.quantity;
    *p++ = count_ >= 2 && !quantities_.negligible(q_sd) &&
                   std::fabs(t.quantity - quantities_.mean) > c.spike_sigmas * q_sd
               ? 1.0
               : 0.0;
  }
  if (c.has_invoice) {
    const auto earlier = static_cast<double>(invoices_.size());
    *p++ = t.invoice >= 0 && invoices_.contains(t.invoice) ? earlier - 1.0 : earlier;
  }
  if (c.has_country) *p++ = count_ > 0 && t.country >= 0 && !countries_.contains(t.country) ? 1.0 : 0.0;
  if (c.has_device) *p++ = count_ > 0 && t.device >= 0 && !devices_.contains(t.device) ? 1.0 : 0.0;
  if (c.has_signup) *p++ = t.has_signup_time ? seconds_between(t.time_ns, t.signup_ns) : -1.0;
  return p - out;
}

void EntityHistory::add(const FeatureConfig& c, const Transaction& t) {
  FRAUDCORE_CHECK(count_ == 0 || t.time_ns >= last_time_ns_,
                  "transactions of an entity must arrive in time order: got time "
                      << t.time_ns << " ns after " << last_time_ns_ << " ns");
  ++count_;
  amounts_.add(t.amount, count_);
  if (c.has_quantity) quantities_.add(t.quantity, count_);
  if (!c.windows_ns.empty()) {
    recent_.push_back({t.time_ns, total_});
    const std::int64_t keep_after = window_start(t.time_ns, longest_window(c));
    while (recent_first_ < recent_.size() && recent_[recent_first_].time_ns <= keep_after) ++recent_first_;
    if (recent_first_ > 32 && 2 * recent_first_ > recent_.size()) {
      recent_.erase(recent_.begin(), recent_.begin() + static_cast<std::ptrdiff_t>(recent_first_));
      recent_first_ = 0;
    }
  }
  total_.add(t.amount);
  last_time_ns_ = t.time_ns;
  if (c.has_invoice && t.invoice >= 0) invoices_.insert(t.invoice);
  if (c.has_country && t.country >= 0) countries_.insert(t.country);
  if (c.has_device && t.device >= 0) devices_.insert(t.device);
  if (c.has_ip && t.ip >= 0) ips_.insert(t.ip);
}

void EntityHistory::write(ByteWriter& w) const {
  w.put(count_);
  for (const RunningStats* stats : {&amounts_, &quantities_}) {
    w.put(stats->mean);
    w.put(stats->m2);
    w.put(stats->magnitude);
  }
  w.put(total_.hi);
  w.put(total_.lo);
  w.put(last_time_ns_);
  w.put<std::uint64_t>(recent_.size() - recent_first_);
  for (auto r = recent_.begin() + static_cast<std::ptrdiff_t>(recent_first_); r != recent_.end(); ++r) {
    w.put(r->time_ns);
    w.put(r->total_before.hi);
    w.put(r->total_before.lo);
  }
  put_set(w, invoices_);
  put_set(w, countries_);
  put_set(w, devices_);
  put_set(w, ips_);
}

EntityHistory EntityHistory::read(ByteReader& r) {
  EntityHistory h;
  h.count_ = r.get<std::int64_t>();
  for (RunningStats* stats : {&h.amounts_, &h.quantities_}) {
    stats->mean = r.get<double>();
    stats->m2 = r.get<double>();
    stats->magnitude = r.get<double>();
  }
  h.total_.hi = r.get<double>();
  h.total_.lo = r.get<double>();
  h.last_time_ns_ = r.get<std::int64_t>();
  const auto n_recent = r.get<std::uint64_t>();
  if (h.count_ < 0 || n_recent > static_cast<std::uint64_t>(h.count_) || n_recent > r.remaining() / 24) {
    throw FormatError("feature state data is corrupted: an entity's history is inconsistent");
  }
  for (std::uint64_t i = 0; i < n_recent; ++i) {
    const auto time_ns = r.get<std::int64_t>();
    CompensatedSum total_before;
    total_before.hi = r.get<double>();
    total_before.lo = r.get<double>();
    h.recent_.push_back({time_ns, total_before});
  }
  h.invoices_ = get_set(r);
  h.countries_ = get_set(r);
  h.devices_ = get_set(r);
  h.ips_ = get_set(r);
  return h;
}

double SharedUse::add(std::int64_t value, bool first_use) {
  if (value < 0) return 0.0;
  std::int64_t& users = users_[value];
  users += first_use ? 1 : 0;
  return static_cast<double>(users);
}

void SharedUse::write(ByteWriter& w) const {
  std::vector<std::pair<std::int64_t, std::int64_t>> sorted(users_.begin(), users_.end());
  std::sort(sorted.begin(), sorted.end());
  w.put<std::uint64_t>(sorted.size());
  for (const auto& [value, users] : sorted) {
    w.put(value);
    w.put(users);
  }
}

SharedUse SharedUse::read(ByteReader& r) {
  SharedUse s;
  const auto n = r.get<std::uint64_t>();
  if (n > r.remaining() / 16) throw FormatError("feature state data is corrupted: too many shared values");
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto value = r.get<std::int64_t>();
    s.users_[value] = r.get<std::int64_t>();
  }
  return s;
}

FeatureState::FeatureState(FeatureConfig config) : config_(std::move(config)) {
  config_.validate();
  names_ = feature_names(config_);
}

Index FeatureState::n_entities() const {
  std::shared_lock<std::shared_mutex> reading(*mutex_);
  return static_cast<Index>(entities_.size());
}

void FeatureState::update(const Transaction& t, double* out) {
  std::unique_lock<std::shared_mutex> writing(*mutex_);
  check_transaction(config_, t, -1);
  apply(t, out);
}

void FeatureState::apply(const Transaction& t, double* out) {
  static const EntityHistory kNoHistory;
  auto found = entities_.find(t.entity);
  const EntityHistory& history = found == entities_.end() ? kNoHistory : found->second;
  const Index written = history.features(config_, t, out);
  check_finite_features(config_, out, written, t, -1);
  double* p = out + written;
  const bool first_device = !history.used_device(t.device), first_ip = !history.used_ip(t.ip);
  // add() checks the time order before changing anything, so a rejected
  // update leaves the state as it was.
  EntityHistory& target = found == entities_.end() ? entities_[t.entity] : found->second;
  try {
    target.add(config_, t);
  } catch (...) {
    if (found == entities_.end()) entities_.erase(t.entity);
    throw;
  }
  if (config_.has_device) *p++ = device_users_.add(t.device, first_device);
  if (config_.has_ip) *p++ = ip_users_.add(t.ip, first_ip);
}

void FeatureState::update_many(const TransactionColumns& cols, double* out) {
  std::unique_lock<std::shared_mutex> writing(*mutex_);
  // Check every row, and each entity's time order across the state and the
  // batch, before anything changes.
  std::unordered_map<std::int64_t, std::int64_t> latest;  // entity -> last time, state then batch
  for (Index i = 0; i < cols.n; ++i) {
    const Transaction t = cols.row(i);
    check_transaction(config_, t, i);
    auto seen = latest.find(t.entity);
    if (seen == latest.end()) {
      const auto found = entities_.find(t.entity);
      seen = latest.emplace(t.entity, found == entities_.end() ? std::numeric_limits<std::int64_t>::min()
                                                               : found->second.last_time_ns()).first;
    }
    FRAUDCORE_CHECK(t.time_ns >= seen->second, "transactions of an entity must arrive in time order: row "
                                                   << i << " is earlier than the entity's previous one");
    seen->second = t.time_ns;
  }
  for (Index i = 0; i < cols.n; ++i) apply(cols.row(i), out + i * n_features());
}

std::string FeatureState::serialize() const {
  std::shared_lock<std::shared_mutex> reading(*mutex_);
  ByteWriter w;
  w.put_vector(config_.windows_ns);
  w.put<std::int32_t>(config_.night_start_hour);
  w.put<std::int32_t>(config_.night_end_hour);
  w.put(config_.spike_sigmas);
  const std::uint8_t flags = static_cast<std::uint8_t>(
      (config_.has_quantity ? 1 : 0) | (config_.has_invoice ? 2 : 0) | (config_.has_country ? 4 : 0) |
      (config_.has_device ? 8 : 0) | (config_.has_ip ? 16 : 0) | (config_.has_signup ? 32 : 0));
  w.put(flags);
  std::vector<std::int64_t> keys;
  keys.reserve(entities_.size());
  for (const auto& kv : entities_) keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  w.put<std::uint64_t>(keys.size());
  for (std::int64_t k : keys) {
    w.put(k);
    entities_.at(k).write(w);
  }
  device_users_.write(w);
  ip_users_.write(w);
  return std::move(w.bytes());
}

FeatureState FeatureState::deserialize(const std::string& bytes) {
  ByteReader r(bytes, "feature state data");
  FeatureConfig c;
  c.windows_ns = r.get_vector<std::int64_t>();
  c.night_start_hour = r.get<std::int32_t>();
  c.night_end_hour = r.get<std::int32_t>();
  c.spike_sigmas = r.get<double>();
  const auto flags = r.get<std::uint8_t>();
  if (flags >= 64) throw FormatError("feature state data is corrupted: unknown column flags");
  c.has_quantity = flags & 1;
  c.has_invoice = flags & 2;
  c.has_country = flags & 4;
  c.has_device = flags & 8;
  c.has_ip = flags & 16;
  c.has_signup = flags & 32;
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw FormatError(std::string("feature state data is corrupted: ") + e.what());
  }
  FeatureState s(c);
  const auto n = r.get<std::uint64_t>();
  if (n > r.remaining() / 8) throw FormatError("feature state data is corrupted: too many entities");
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto key = r.get<std::int64_t>();
    s.entities_.emplace(key, EntityHistory::read(r));
  }
  s.device_users_ = SharedUse::read(r);
  s.ip_users_ = SharedUse::read(r);
  r.expect_end();
  return s;
}

Transaction TransactionColumns::row(Index i) const {
  Transaction t;
  t.entity = entity ? entity[i] : 0;
  t.time_ns = time_ns[i];
  t.amount = amount[i];
  if (quantity) t.quantity = quantity[i];
  if (invoice) t.invoice = invoice[i];
  if (country) t.country = country[i];
  if (device) t.device = device[i];
  if (ip) t.ip = ip[i];
  if (signup_ns && has_signup_time && has_signup_time[i]) {
    t.signup_ns = signup_ns[i];
    t.has_signup_time = true;
  }
  return t;
}

namespace {

// Copy one row of features to its (scattered) place in the output. On
// x86-64 with non-temporal stores: the destination lines are not read first
// and the output does not evict the working set (a third faster measured on
// a million rows). Call end_row_stores() before other threads read them.
void store_row(const double* values, Index count, double* destination) {
#if defined(__x86_64__)
  for (Index f = 0; f < count; ++f) {
    long long bits;
    std::memcpy(&bits, values + f, sizeof bits);
    _mm_stream_si64(reinterpret_cast<long long*>(destination + f), bits);
  }
#else
  std::memcpy(destination, values, static_cast<std::size_t>(count) * sizeof(double));
#endif
}

void end_row_stores() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// Index of the first row of `cols` that check_transaction rejects, or -1.
Index first_bad_row(const FeatureConfig& config, const TransactionColumns& cols, int n_threads) {
  constexpr Index kBlock = 1 << 14;
  const Index blocks = (cols.n + kBlock - 1) / kBlock;
  std::vector<Index> first(static_cast<std::size_t>(blocks), -1);
  parallel_for(blocks, n_threads, [&](Index b) {
    for (Index i = b * kBlock; i < std::min(cols.n, (b + 1) * kBlock); ++i) {
      try {
        check_transaction(config, cols.row(i), i);
      } catch (const std::invalid_argument&) {
        first[static_cast<std::size_t>(b)] = i;
        return;
      }
    }
  });
  for (Index f : first) {
    if (f >= 0) return f;
  }
  return -1;
}

}  // namespace

void build_features(const FeatureConfig& config, const TransactionColumns& cols, double* out, int n_threads) {
  config.validate();
  FRAUDCORE_CHECK(cols.time_ns && cols.amount, "the timestamp and amount columns are required");
  FRAUDCORE_CHECK(!config.has_quantity || cols.quantity, "the config has quantities but no column was given");
  FRAUDCORE_CHECK(!config.has_invoice || cols.invoice, "the config has invoices but no column was given");
  FRAUDCORE_CHECK(!config.has_country || cols.country, "the config has countries but no column was given");
  FRAUDCORE_CHECK(!config.has_device || cols.device, "the config has devices but no column was given");
  FRAUDCORE_CHECK(!config.has_ip || cols.ip, "the config has IPs but no column was given");
  FRAUDCORE_CHECK(!config.has_signup || (cols.signup_ns && cols.has_signup_time),
                  "the config has signup times but no column was given");
  const Index n = cols.n;
  const Index bad = first_bad_row(config, cols, n_threads);
  if (bad >= 0) check_transaction(config, cols.row(bad), bad);  // throws the message

  const auto width = static_cast<Index>(feature_names(config).size());
  const Index shared_columns = (config.has_device ? 1 : 0) + (config.has_ip ? 1 : 0);
  const Index entity_width = width - shared_columns;
  std::vector<std::int64_t> no_entity;
  const std::int64_t* entity = cols.entity;
  if (!entity) {  // one entity: the whole table
    no_entity.assign(static_cast<std::size_t>(n), 0);
    entity = no_entity.data();
  }

  // Entity features. Entities are cut into tasks of consecutive groups of
  // about kTaskRows rows; a task first gathers its rows (each entity's in
  // time order) into a small buffer of its thread, where the loads are
  // independent and overlap, then runs each entity's history over them and
  // stores every row's features (store_row) as one contiguous run.
  Groups by_entity = group_rows(entity, n);
  const std::vector<Index>& order = by_entity.order;
  constexpr Index kTaskRows = 1 << 13;
  std::vector<Index> task_first_group = {0};
  for (Index g = 0, rows = 0; g < by_entity.size(); ++g) {
    rows += by_entity.offsets[static_cast<std::size_t>(g + 1)] - by_entity.offsets[static_cast<std::size_t>(g)];
    if (rows >= kTaskRows || g + 1 == by_entity.size()) {
      task_first_group.push_back(g + 1);
      rows = 0;
    }
  }
  // Whether a row is its entity's first use of its device / IP.
  std::vector<std::uint8_t> first_device(config.has_device ? static_cast<std::size_t>(n) : 0);
  std::vector<std::uint8_t> first_ip(config.has_ip ? static_cast<std::size_t>(n) : 0);
  parallel_for(static_cast<Index>(task_first_group.size()) - 1, n_threads, [&](Index task) {
    const Index g0 = task_first_group[static_cast<std::size_t>(task)];
    const Index g1 = task_first_group[static_cast<std::size_t>(task + 1)];
    for (Index g = g0; g < g1; ++g) sort_by_time(by_entity.begin(g), by_entity.end(g), cols.time_ns);
    const Index k0 = by_entity.offsets[static_cast<std::size_t>(g0)];
    const Index k1 = by_entity.offsets[static_cast<std::size_t>(g1)];
    std::vector<Transaction> rows(static_cast<std::size_t>(k1 - k0));
    for (Index k = k0; k < k1; ++k) {
      const Index row = order[static_cast<std::size_t>(k)];
      Transaction& t = rows[static_cast<std::size_t>(k - k0)];
      t = cols.row(row);
      t.entity = entity[row];
    }
    std::vector<double> values(static_cast<std::size_t>(width));
    for (Index g = g0; g < g1; ++g) {
      EntityHistory history;
      for (Index k = by_entity.offsets[static_cast<std::size_t>(g)]; k < by_entity.offsets[static_cast<std::size_t>(g + 1)]; ++k) {
        const Transaction& t = rows[static_cast<std::size_t>(k - k0)];
        const auto row = static_cast<std::size_t>(order[static_cast<std::size_t>(k)]);
        const Index written = history.features(config, t, values.data());
        check_finite_features(config, values.data(), written, t, static_cast<Index>(row));
        store_row(values.data(), written, out + static_cast<Index>(row) * width);
        if (config.has_device) first_device[row] = !history.used_device(t.device);
        if (config.has_ip) first_ip[row] = !history.used_ip(t.ip);
        history.add(config, t);
      }
    }
    end_row_stores();
  });
  if (shared_columns == 0) return;

  // Shared-use counts (the last columns): one pass over every row in (time,
  // input order) order, as FeatureState sees a stream.
  std::vector<Index> by_time;
  const auto earlier = [&](Index a, Index b) { return cols.time_ns[a] < cols.time_ns[b]; };
  if (!std::is_sorted(cols.time_ns, cols.time_ns + n)) {
    by_time.resize(static_cast<std::size_t>(n));
    std::iota(by_time.begin(), by_time.end(), Index{0});
    std::stable_sort(by_time.begin(), by_time.end(), earlier);
  }
  const auto shared = [&](const std::int64_t* key, const std::vector<std::uint8_t>& first_use, Index column) {
    SharedUse use;
    for (Index k = 0; k < n; ++k) {
      const Index row = by_time.empty() ? k : by_time[static_cast<std::size_t>(k)];
      out[row * width + column] = use.add(key[row], first_use[static_cast<std::size_t>(row)] != 0);
    }
  };
  // Device and IP are independent passes: one thread each.
  parallel_for(shared_columns, n_threads, [&](Index which) {
    const bool device = config.has_device && which == 0;
    shared(device ? cols.device : cols.ip, device ? first_device : first_ip, entity_width + which);
  });
}

}  // namespace fraudcore
