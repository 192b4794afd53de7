#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <typeinfo>

#include "fraudcore/autoencoder.hpp"
#include "fraudcore/features.hpp"
#include "fraudcore/iforest.hpp"
#include "fraudcore/knn_detector.hpp"
#include "fraudcore/lof.hpp"
#include "fraudcore/random.hpp"
#include "fraudcore/serialize.hpp"
#include "test_data.hpp"

using namespace fraudcore;

TEST(Crc32, MatchesZlibCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
}

TEST(ByteIo, RoundTripsNumbersVectorsAndStrings) {
  ByteWriter w;
  w.put<std::int32_t>(-7);
  w.put<double>(3.25);
  w.put_vector(std::vector<std::int64_t>{1, -2, 3});
  w.put_string("abc");
  ByteReader r(w.bytes());
  EXPECT_EQ(r.get<std::int32_t>(), -7);
  EXPECT_EQ(r.get<double>(), 3.25);
  EXPECT_EQ(r.get_vector<std::int64_t>(), (std::vector<std::int64_t>{1, -2, 3}));
  EXPECT_EQ(r.get_string(), "abc");
  EXPECT_NO_THROW(r.expect_end());
}

TEST(ByteIo, ShortReadsThrowInsteadOfOverrunning) {
  ByteWriter w;
  w.put<std::uint64_t>(1'000'000'000'000ULL);  // a vector length far beyond the data
  ByteReader r(w.bytes());
  EXPECT_THROW(r.get_vector<double>(), FormatError);
  ByteReader empty("");
  EXPECT_THROW(empty.get<std::int32_t>(), FormatError);
}

TEST(Envelope, RoundTrip) {
  const std::string packed = pack_envelope("Kind", "{\"a\": 1}", std::string("\0body", 5));
  const Envelope env = unpack_envelope(packed);
  EXPECT_EQ(env.kind, "Kind");
  EXPECT_EQ(env.metadata, "{\"a\": 1}");
  EXPECT_EQ(env.body, std::string("\0body", 5));
  EXPECT_EQ(env.format_version, kFormatVersion);
}

TEST(Envelope, EveryTruncationAndEveryBitFlipIsRejected) {
  const std::string packed = pack_envelope("Kind", "meta", "body bytes");
  for (std::size_t cut = 0; cut < packed.size(); ++cut) {
    EXPECT_THROW(unpack_envelope(packed.substr(0, cut)), FormatError) << "cut at " << cut;
  }
  for (std::size_t i = 0; i < packed.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = packed;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_THROW(unpack_envelope(bad), FormatError) << "byte " << i << " bit " << bit;
    }
  }
  EXPECT_THROW(unpack_envelope(packed + "x"), FormatError);
}

TEST(Envelope, NewerFormatVersionIsNamed) {
  std::string packed = pack_envelope("Kind", "", "");
  packed[8] = static_cast<char>(kFormatVersion + 1);
  ByteWriter crc;
  crc.put<std::uint32_t>(crc32(std::string_view(packed).substr(0, packed.size() - 4)));
  packed.replace(packed.size() - 4, 4, crc.bytes());
  try {
    unpack_envelope(packed);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------
// Every native body parser against seeded damage: a mutated body either
// throws FormatError or loads to a model that scores rows of its width
// (throwing at most std::invalid_argument). Run under ASan/UBSan by
// scripts/run_cpp_tests.sh, so an out-of-bounds read fails too.

namespace {

using test_data::normal_rows;

// A bit flipped, a byte replaced, 8 bytes made a huge count, or a cut.
std::string mutate(const std::string& body, Rng& rng, std::string& how) {
  std::string bad = body;
  const auto at = static_cast<std::size_t>(rng.below(body.size()));
  switch (rng.below(4)) {
    case 0:
      bad[at] = static_cast<char>(bad[at] ^ (1 << rng.below(8)));
      how = "bit flip at " + std::to_string(at);
      break;
    case 1:
      bad[at] = static_cast<char>(rng.below(256));
      how = "byte at " + std::to_string(at);
      break;
    case 2: {
      const std::uint64_t counts[] = {~std::uint64_t{0}, std::uint64_t{1} << 63, std::uint64_t{1} << 40,
                                      std::uint64_t{1} << 31, 0};
      const std::uint64_t v = counts[rng.below(5)];
      for (std::size_t k = 0; k < 8 && at + k < bad.size(); ++k) bad[at + k] = static_cast<char>(v >> (8 * k));
      how = "count at " + std::to_string(at);
      break;
    }
    default:
      bad.resize(at);
      how = "cut at " + std::to_string(at);
  }
  return bad;
}

// load(bytes) deserializes and scores the result.
void fuzz(const char* kind, const std::string& body, const std::function<void(const std::string&)>& load) {
  Rng rng(std::hash<std::string>{}(kind));
  int loaded = 0;
  for (int i = 0; i < 400; ++i) {
    std::string how;
    const std::string bad = mutate(body, rng, how);
    try {
      load(bad);
      ++loaded;
    } catch (const FormatError&) {
    } catch (const std::invalid_argument& e) {
      // Scoring may refuse input of another width; loading may not throw it.
      const std::string what = e.what();
      if (what.find("features") == std::string::npos && what.find("columns") == std::string::npos &&
          what.find("out of range") == std::string::npos && what.find("finite") == std::string::npos) {
        ADD_FAILURE() << kind << ", " << how << ": " << what;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << kind << ", " << how << ": " << typeid(e).name() << ": " << e.what();
    }
  }
  EXPECT_GT(loaded, 0) << kind;
}

}  // namespace

TEST(NativeBodies, EveryMutationIsRefusedOrLoadsAWorkingModel) {
  const auto X = normal_rows(60, 3, 1);
  const auto view = row_major_view(X.data(), X.rows(), X.cols());
  const auto Q = normal_rows(7, 3, 2);
  const auto q = row_major_view(Q.data(), Q.rows(), Q.cols());
  std::vector<double> out(static_cast<std::size_t>(Q.size()) * 64);
  const auto finite = [&](Index n) {
    for (Index i = 0; i < n; ++i) {
      if (!std::isfinite(out[static_cast<std::size_t>(i)])) throw std::runtime_error("a non-finite score");
    }
  };

  for (int level : {0, 1}) {
    IsolationForest forest;
    IsolationForestParams p;
    p.n_estimators = 4;
    p.max_samples = 32;
    p.extension_level = level;
    forest.fit(view, p, 1);
    fuzz(level ? "extended forest" : "forest", forest.serialize(), [&](const std::string& bytes) {
      const IsolationForest f = IsolationForest::deserialize(bytes);
      f.score_samples(q, out.data(), 1);
      finite(Q.rows());
    });
  }

  LocalOutlierFactor lof;
  lof.fit(view, Metric::minkowski(2.0), NeighborAlgorithm::kKdTree, 10, 5, 1);
  fuzz("lof", lof.serialize(), [&](const std::string& bytes) {
    const LocalOutlierFactor m = LocalOutlierFactor::deserialize(bytes);
    m.score_samples(q, out.data(), 1);
  });

  KnnDetector knn;
  knn.fit(view, Metric::minkowski(1.0), NeighborAlgorithm::kBrute, 10, 3, KnnAggregate::kMean, 1);
  fuzz("knn", knn.serialize(), [&](const std::string& bytes) {
    const KnnDetector m = KnnDetector::deserialize(bytes);
    m.distances(q, out.data(), 1);
  });

  for (bool float64 : {false, true}) {
    AutoEncoder ae;
    AutoEncoderParams p;
    p.layers = {3, 4, 2, 4, 3};
    p.float64 = float64;
    p.seed = 1;
    ae.initialize(view, p, true);
    ae.train_epoch(view, 1);
    fuzz(float64 ? "autoencoder64" : "autoencoder32", ae.serialize(), [&](const std::string& bytes) {
      const AutoEncoder m = AutoEncoder::deserialize(bytes);
      m.row_errors(q, out.data(), 1);
    });
  }

  FeatureConfig config;
  config.windows_ns = {3'600'000'000'000};
  config.has_country = config.has_device = config.has_ip = true;
  FeatureState state(config);
  Transaction t;
  for (int i = 0; i < 30; ++i) {
    t.entity = i % 4;
    t.time_ns = 1'000'000'000LL * i;
    t.amount = 1.0 + i;
    t.country = i % 3;
    t.device = i % 5;
    t.ip = i % 7;
    state.update(t, out.data());
  }
  fuzz("feature state", state.serialize(), [&](const std::string& bytes) {
    FeatureState s = FeatureState::deserialize(bytes);
    Transaction next = t;
    next.time_ns = std::numeric_limits<std::int64_t>::max();
    if (s.n_features() <= 64) s.update(next, out.data());
  });
}
