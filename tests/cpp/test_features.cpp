#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "fraudcore/error.hpp"
#include "fraudcore/features.hpp"
#include "fraudcore/ip_ranges.hpp"
#include "fraudcore/random.hpp"
#include "fraudcore/serialize.hpp"
#include "fraudcore/value_set.hpp"

using namespace fraudcore;

namespace {

constexpr std::int64_t kHour = 3'600'000'000'000LL;

FeatureConfig full_config() {
  FeatureConfig c;
  c.has_quantity = c.has_invoice = c.has_country = c.has_device = c.has_ip = c.has_signup = true;
  return c;
}

// Columns of a random table with ties in time, missing categories and
// input order != time order.
struct Table {
  std::vector<std::int64_t> entity, time, invoice, country, device, ip, signup;
  std::vector<double> amount, quantity;
  std::vector<std::uint8_t> has_signup;

  explicit Table(Index n, std::uint64_t seed) {
    Rng rng(seed);
    for (Index i = 0; i < n; ++i) {
      entity.push_back(static_cast<std::int64_t>(rng.below(7)));
      time.push_back(static_cast<std::int64_t>(rng.below(200)) * kHour / 4);
      amount.push_back(std::round(rng.uniform() * 10000) / 100 - 5);
      quantity.push_back(static_cast<double>(rng.below(5)));
      invoice.push_back(static_cast<std::int64_t>(rng.below(30)) - 1);
      country.push_back(static_cast<std::int64_t>(rng.below(4)) - 1);
      device.push_back(static_cast<std::int64_t>(rng.below(6)) - 1);
      ip.push_back(static_cast<std::int64_t>(rng.below(5)) - 1);
      signup.push_back(time.back() - static_cast<std::int64_t>(rng.below(100)) * kHour);
      has_signup.push_back(rng.below(10) != 0);
    }
  }
  TransactionColumns columns() const {
    TransactionColumns c;
    c.n = static_cast<Index>(entity.size());
    c.entity = entity.data();
    c.time_ns = time.data();
    c.amount = amount.data();
    c.quantity = quantity.data();
    c.invoice = invoice.data();
    c.country = country.data();
    c.device = device.data();
    c.ip = ip.data();
    c.signup_ns = signup.data();
    c.has_signup_time = has_signup.data();
    return c;
  }
};

// Rows in (time, input order) order: the order a stream delivers them.
std::vector<Index> stream_order(const Table& t) {
  std::vector<Index> order(t.entity.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<Index>(i);
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return t.time[a] < t.time[b]; });
  return order;
}

}  // namespace

TEST(Features, StreamingEqualsBatchBitForBit) {
  for (int threads : {1, 3}) {
    const Table table(600, 11);
    const FeatureConfig config = full_config();
    const auto width = static_cast<Index>(feature_names(config).size());
    const Index n = static_cast<Index>(table.entity.size());
    std::vector<double> batch(static_cast<std::size_t>(n * width));
    build_features(config, table.columns(), batch.data(), threads);

    FeatureState state(config);
    std::vector<double> row(static_cast<std::size_t>(width));
    for (Index i : stream_order(table)) {
      state.update(table.columns().row(i), row.data());
      for (Index f = 0; f < width; ++f) {
        ASSERT_EQ(std::memcmp(&row[f], &batch[i * width + f], sizeof(double)), 0)
            << feature_names(config)[f] << " of row " << i;
      }
    }
  }
}

TEST(Features, WindowsCountStrictlyEarlierRowsInsideTheWindow) {
  FeatureConfig config;
  config.windows_ns = {kHour};
  FeatureState state(config);
  std::vector<double> out(static_cast<std::size_t>(state.n_features()));
  const auto names = state.names();
  const auto at = [&](const char* name) {
    return out[static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin())];
  };
  Transaction t;
  t.amount = 5;
  for (std::int64_t time : {std::int64_t{0}, kHour / 2, kHour / 2, kHour + kHour / 2}) {
    t.time_ns = time;
    state.update(t, out.data());
  }
  // At 1.5 h the window (0.5 h, 1.5 h] holds nothing: both 0.5 h rows sit on its open edge.
  EXPECT_EQ(at("count_1h"), 0.0);
  t.time_ns = kHour + kHour / 2;
  state.update(t, out.data());
  EXPECT_EQ(at("count_1h"), 1.0);  // the tie at 1.5 h is earlier in arrival order
  EXPECT_EQ(at("amount_sum_1h"), 5.0);
  EXPECT_EQ(at("entity_count"), 4.0);
}

TEST(Features, RejectedUpdatesLeaveTheStateUnchanged) {
  FeatureState state(full_config());
  std::vector<double> out(static_cast<std::size_t>(state.n_features()));
  Transaction t;
  t.time_ns = 10 * kHour;
  t.amount = 1;
  state.update(t, out.data());
  const std::string before = state.serialize();
  Transaction late = t;
  late.time_ns = kHour;
  EXPECT_THROW(state.update(late, out.data()), std::invalid_argument);
  Transaction nan_amount = t;
  nan_amount.amount = std::nan("");
  EXPECT_THROW(state.update(nan_amount, out.data()), std::invalid_argument);
  EXPECT_EQ(state.serialize(), before);
}

TEST(Features, StateRoundTripsAndRejectsDamagedData) {
  const Table table(300, 5);
  FeatureState state(full_config());
  std::vector<double> out(static_cast<std::size_t>(state.n_features()));
  const auto order = stream_order(table);
  for (std::size_t k = 0; k < 200; ++k) state.update(table.columns().row(order[k]), out.data());
  const std::string bytes = state.serialize();
  FeatureState copy = FeatureState::deserialize(bytes);
  EXPECT_EQ(copy.serialize(), bytes);
  std::vector<double> a(out.size()), b(out.size());
  for (std::size_t k = 200; k < order.size(); ++k) {
    state.update(table.columns().row(order[k]), a.data());
    copy.update(table.columns().row(order[k]), b.data());
    ASSERT_EQ(a, b);
  }
  for (std::size_t cut = 0; cut < bytes.size(); cut += 97) {
    EXPECT_THROW(FeatureState::deserialize(bytes.substr(0, cut)), FormatError) << cut;
  }
}

TEST(Features, BadRowsAreNamed) {
  Table table(50, 2);
  table.amount[17] = INFINITY;
  std::vector<double> out(50 * feature_names(full_config()).size());
  try {
    build_features(full_config(), table.columns(), out.data(), 2);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("row 17"), std::string::npos) << e.what();
  }
}

TEST(ValueSet, SmallAndLargeAgree) {
  ValueSet s;
  std::vector<std::int64_t> seen;
  Rng rng(3);
  for (int i = 0; i < 500; ++i) {
    const auto v = static_cast<std::int64_t>(rng.below(100));
    const bool fresh = std::find(seen.begin(), seen.end(), v) == seen.end();
    EXPECT_EQ(s.insert(v), fresh);
    if (fresh) seen.push_back(v);
    EXPECT_TRUE(s.contains(v));
    EXPECT_EQ(s.size(), seen.size());
  }
  EXPECT_FALSE(s.contains(100));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(s.sorted(), seen);
}

TEST(IpRangeTable, FindsInclusiveRangesOnly) {
  const IpRangeTable table({10, 20, 30}, {15, 25, 30});
  EXPECT_EQ(table.find(10), 0);
  EXPECT_EQ(table.find(15), 0);
  EXPECT_EQ(table.find(15.5), -1);
  EXPECT_EQ(table.find(30), 2);
  EXPECT_EQ(table.find(9.99), -1);
  EXPECT_EQ(table.find(31), -1);
  EXPECT_EQ(table.find(std::nan("")), -1);
  const std::vector<double> ips = {12, 22, 1e12, -1};
  std::vector<Index> found(ips.size());
  table.find_all(ips.data(), static_cast<Index>(ips.size()), found.data(), 2);
  EXPECT_EQ(found, (std::vector<Index>{0, 1, -1, -1}));
  EXPECT_THROW(IpRangeTable({10, 12}, {15, 20}), std::invalid_argument);  // overlap
  EXPECT_THROW(IpRangeTable({10}, {5}), std::invalid_argument);
  EXPECT_THROW(IpRangeTable({10, 20}, {15}), std::invalid_argument);
}
