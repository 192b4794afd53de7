#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fraudcore/error.hpp"
#include "fraudcore/iforest.hpp"
#include "fraudcore/random.hpp"
#include "test_data.hpp"

using namespace fraudcore;

namespace {

ConstMatrixView<double> view(const RowMajorMatrix<double>& X) {
  return row_major_view(X.data(), X.rows(), X.cols());
}

std::vector<double> scores(const IsolationForest& f, const RowMajorMatrix<double>& X,
                           int threads) {
  std::vector<double> out(static_cast<std::size_t>(X.rows()));
  f.score_samples(view(X), out.data(), threads);
  return out;
}

}  // namespace

TEST(AveragePathLength, MatchesTheDefinition) {
  EXPECT_EQ(average_path_length(0), 0.0);
  EXPECT_EQ(average_path_length(1), 0.0);
  EXPECT_EQ(average_path_length(2), 1.0);
  EXPECT_NEAR(average_path_length(256),
              2.0 * (std::log(255.0) + 0.5772156649015329) - 2.0 * 255.0 / 256.0, 1e-12);
}

TEST(IsolationForest, OutlierScoresLowerThanInliers) {
  RowMajorMatrix<double> X = test_data::normal_rows(2000, 4, 1);
  for (Index j = 0; j < 4; ++j) X(0, j) = 8.0;
  IsolationForest f;
  IsolationForestParams p;
  p.seed = 7;
  f.fit(view(X), p, 2);
  const auto s = scores(f, X, 2);
  for (std::size_t i = 1; i < s.size(); ++i) ASSERT_LT(s[0], s[i]);
  for (double v : s) {
    ASSERT_LT(v, 0.0);
    ASSERT_GE(v, -1.0);
  }
}

TEST(IsolationForest, SameForestAndScoresForAnyThreadCount) {
  const auto X = test_data::normal_rows(3000, 5, 2);
  for (int ext : {0, 3}) {
    IsolationForestParams p;
    p.seed = 11;
    p.extension_level = ext;
    IsolationForest a, b;
    a.fit(view(X), p, 1);
    b.fit(view(X), p, 4);
    EXPECT_EQ(a.serialize(), b.serialize());
    EXPECT_EQ(scores(a, X, 1), scores(b, X, 3));
  }
}

TEST(IsolationForest, FortranOrderAndFloatInputGiveTheSameScores) {
  const auto X = test_data::normal_rows(500, 3, 3);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor> F = X;
  IsolationForestParams p;
  IsolationForest a, b;
  a.fit(view(X), p, 1);
  b.fit(col_major_view(F.data(), F.rows(), F.cols()), p, 1);
  EXPECT_EQ(a.serialize(), b.serialize());
  RowMajorMatrix<float> X32 = X.cast<float>();
  RowMajorMatrix<double> X64 = X32.cast<double>();
  std::vector<double> s32(500), s64(500);
  a.score_samples(row_major_view(X32.data(), 500, 3), s32.data(), 2);
  a.score_samples(view(X64), s64.data(), 2);
  EXPECT_EQ(s32, s64);
}

TEST(IsolationForest, TreesRespectTheDepthLimitAndChildOrder) {
  const auto X = test_data::normal_rows(1000, 3, 4);
  IsolationForestParams p;
  p.max_samples = 100;
  IsolationForest f;
  f.fit(view(X), p, 2);
  for (int t = 0; t < f.n_estimators(); ++t) {
    const auto tree = f.export_tree(t);
    ASSERT_LE(tree.left.size(), 199u);
    for (std::size_t k = 0; k < tree.left.size(); ++k) {
      if (tree.left[k] == static_cast<std::int32_t>(k)) {
        EXPECT_EQ(tree.threshold[k], std::numeric_limits<double>::infinity());
        EXPECT_LE(tree.path[k], 7 + average_path_length(100));
      } else {
        EXPECT_GT(tree.left[k], static_cast<std::int32_t>(k));
      }
    }
  }
}

TEST(IsolationForest, RejectsBadInput) {
  auto X = test_data::normal_rows(10, 2, 5);
  IsolationForest f;
  IsolationForestParams p;
  p.max_samples = 10;
  EXPECT_THROW(f.fit(row_major_view(X.data(), 1, 2), p, 1), std::invalid_argument);
  p.max_samples = 11;
  EXPECT_THROW(f.fit(view(X), p, 1), std::invalid_argument);
  p.max_samples = 10;
  p.extension_level = 2;
  EXPECT_THROW(f.fit(view(X), p, 1), std::invalid_argument);
  p.extension_level = 0;
  std::vector<double> out(10);
  EXPECT_THROW(f.score_samples(view(X), out.data(), 1), std::invalid_argument);  // unfitted
  f.fit(view(X), p, 1);
  X(3, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(f.score_samples(view(X), out.data(), 2), std::invalid_argument);
  EXPECT_THROW(f.fit(view(X), p, 2), std::invalid_argument);
  const auto wide = test_data::normal_rows(4, 3, 6);
  EXPECT_THROW(f.score_samples(view(wide), out.data(), 1), std::invalid_argument);
}

TEST(IsolationForest, SerializeRoundTripAndCorruptionIsDetected) {
  const auto X = test_data::normal_rows(400, 3, 8);
  for (int ext : {0, 2}) {
    IsolationForestParams p;
    p.extension_level = ext;
    p.n_estimators = 10;
    IsolationForest f;
    f.fit(view(X), p, 2);
    const std::string bytes = f.serialize();
    const IsolationForest g = IsolationForest::deserialize(bytes);
    EXPECT_EQ(scores(f, X, 1), scores(g, X, 1));
    for (std::size_t cut = 0; cut < bytes.size(); cut += 7) {
      EXPECT_THROW(IsolationForest::deserialize(bytes.substr(0, cut)), FormatError);
    }
    // Any single flipped byte either is refused or yields a forest whose
    // walk stays in bounds (ASan would catch an overrun here).
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ 0x5A);
      try {
        const IsolationForest h = IsolationForest::deserialize(bad);
        std::vector<double> out(static_cast<std::size_t>(X.rows()));
        if (h.n_features() == 3) h.score_samples(view(X), out.data(), 1);
      } catch (const FormatError&) {
      } catch (const std::invalid_argument&) {
      }
    }
  }
}

TEST(IsolationForest, ScoresEqualAPlainTraversalForShallowAndDeepTrees) {
  const auto X = test_data::normal_rows(5000, 3, 9);
  for (Index max_samples : {2, 50, 4000}) {  // depth 1, 6 and 12 (beyond the heap levels)
    IsolationForestParams p;
    p.n_estimators = 5;
    p.max_samples = max_samples;
    IsolationForest f;
    f.fit(view(X), p, 2);
    std::vector<double> expected(200, 0.0);
    for (int t = 0; t < f.n_estimators(); ++t) {
      const auto tree = f.export_tree(t);
      for (Index i = 0; i < 200; ++i) {
        std::int32_t k = 0;
        while (tree.left[k] != k) k = tree.left[k] + (X(i, tree.split[k]) > tree.threshold[k]);
        expected[i] += tree.path[k] / f.n_estimators();
      }
    }
    std::vector<double> got(200);
    f.mean_path_length(row_major_view(X.data(), 200, 3), got.data(), 2);
    for (Index i = 0; i < 200; ++i) EXPECT_NEAR(got[i], expected[i], 1e-12) << max_samples;
  }
}

TEST(IsolationForest, WideDataSameForestForAnyThreadCountAndMemoryOrder) {
  // Wide rows with sparse binary columns and repeated rows: trees read few
  // columns, some in place and some from gathered copies.
  RowMajorMatrix<double> X = test_data::normal_rows(400, 600, 10);
  Rng rng(11);
  for (Index i = 0; i < X.rows(); ++i)
    for (Index j = 3; j < X.cols(); ++j) X(i, j) = rng.uniform() < 0.03 ? 1.0 : 0.0;
  for (Index i = 200; i < 400; ++i) X.row(i) = X.row(i % 50);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor> F = X;
  for (int ext : {0, 2}) {
    IsolationForestParams p;
    p.seed = 5;
    p.extension_level = ext;
    p.max_features = ext == 0 ? 0 : 300;
    IsolationForest a, b, c;
    a.fit(view(X), p, 1);
    b.fit(view(X), p, 3);
    c.fit(col_major_view(F.data(), F.rows(), F.cols()), p, 2);
    EXPECT_EQ(a.serialize(), b.serialize());
    EXPECT_EQ(a.serialize(), c.serialize());
  }
}

TEST(IsolationForest, NanInAColumnNoSplitReadsIsStillRefused) {
  auto X = test_data::normal_rows(300, 500, 12);
  X(123, 499) = std::numeric_limits<double>::infinity();
  IsolationForestParams p;
  p.max_samples = 300;  // every tree samples every row
  p.n_estimators = 3;
  IsolationForest f;
  try {
    f.fit(view(X), p, 2);
    FAIL() << "fit accepted an infinite value";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("row 123, column 499"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(f.fitted());
}
