// TreeEnsemble: scores, exact TreeSHAP on hand-computed trees, validation
// of hostile tables, and the serialized form.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "fraudcore/serialize.hpp"
#include "fraudcore/tree_ensemble.hpp"

namespace fraudcore {
namespace {

// Tree 0: x0 <= 0.5 ? 1 (cover 4) : (x1 <= 0 ? 2 : 4) (covers 3, 3).
// Tree 1 splits on x0 twice: x0 <= 0.5 ? (x0 <= -1 ? 0 : 1) : 3.
TreeNodes two_trees() {
  TreeNodes t;
  t.feature = {0, -1, 1, -1, -1, /* tree 1 */ 0, 0, -1, -1, -1};
  t.threshold = {0.5, 0, 0.0, 0, 0, 0.5, -1.0, 0, 0, 0};
  t.left = {1, 0, 3, 0, 0, 6, 7, 0, 0, 0};
  t.right = {2, 0, 4, 0, 0, 9, 8, 0, 0, 0};
  t.value = {0, 1, 0, 2, 4, 0, 0, 0, 1, 3};
  t.cover = {10, 4, 6, 3, 3, 10, 4, 1, 3, 6};
  t.missing_left = {1, 0, 0, 0, 0, 1, 1, 0, 0, 0};
  return t;
}

TEST(TreeEnsemble, ScoresAndExpectedValue) {
  TreeEnsemble e(2, 0.25, {0, 5}, two_trees());
  const std::vector<double> X = {1.0, 1.0, -2.0, 0.0, std::nan(""), -5.0};
  std::vector<double> out(3);
  e.decision_function(row_major_view(X.data(), 3, 2), out.data(), 2);
  EXPECT_DOUBLE_EQ(out[0], 0.25 + 4 + 3);
  EXPECT_DOUBLE_EQ(out[1], 0.25 + 1 + 0);
  EXPECT_DOUBLE_EQ(out[2], 0.25 + 1 + 0);  // NaN takes the left (missing) side twice
  // 0.25 + (0.4 * 1 + 0.6 * 3) + (0.1 * 0 + 0.3 * 1 + 0.6 * 3)
  EXPECT_DOUBLE_EQ(e.expected_value(), 0.25 + 2.2 + 2.1);
}

TEST(TreeEnsemble, ContributionsAreTheHandComputedShapleyValues) {
  TreeNodes first = two_trees();
  for (auto* v : {&first.feature, &first.left, &first.right}) v->resize(5);
  for (auto* v : {&first.threshold, &first.value, &first.cover}) v->resize(5);
  first.missing_left.resize(5);
  TreeEnsemble e(2, 0.0, {0}, first);
  const std::vector<double> x = {1.0, 1.0};
  std::vector<double> phi(3);
  e.contributions(row_major_view(x.data(), 1, 2), phi.data(), 1);
  // v({}) = 2.2, v({0}) = 3, v({1}) = 2.8, v({0,1}) = 4.
  EXPECT_NEAR(phi[0], 0.5 * (3 - 2.2) + 0.5 * (4 - 2.8), 1e-12);
  EXPECT_NEAR(phi[1], 0.5 * (2.8 - 2.2) + 0.5 * (4 - 3), 1e-12);
  EXPECT_NEAR(phi[2], 2.2, 1e-12);
}

TEST(TreeEnsemble, ContributionsAddUpWithRepeatedSplitsAndThreads) {
  TreeEnsemble e(2, 0.25, {0, 5}, two_trees());
  std::vector<double> X;
  for (int i = 0; i < 1000; ++i) {
    X.push_back(std::sin(i) * 2.0);
    X.push_back(std::cos(3.0 * i));
  }
  const Index n = 1000;
  std::vector<double> one(n * 3), two(n * 3), scores(n);
  e.contributions(row_major_view(X.data(), n, 2), one.data(), 1);
  e.contributions(row_major_view(X.data(), n, 2), two.data(), 2);
  e.decision_function(row_major_view(X.data(), n, 2), scores.data(), 2);
  EXPECT_EQ(one, two);
  for (Index i = 0; i < n; ++i) {
    EXPECT_NEAR(one[i * 3] + one[i * 3 + 1] + one[i * 3 + 2], scores[i], 1e-12);
  }
}

TEST(TreeEnsemble, RefusesTablesThatAreNotTrees) {
  struct Corruption {
    const char* what;
    void (*apply)(TreeNodes&);
  };
  const Corruption corruptions[] = {
      {"a child pointing back at the root", [](TreeNodes& t) { t.left[2] = 0; }},
      {"a node with two parents", [](TreeNodes& t) { t.right[0] = 1; }},
      {"a child in the next tree", [](TreeNodes& t) { t.right[2] = 7; }},
      {"children's covers not adding up", [](TreeNodes& t) { t.cover[3] = 2; }},
      {"a feature beyond n_features", [](TreeNodes& t) { t.feature[2] = 2; }},
      {"an infinite leaf", [](TreeNodes& t) { t.value[4] = std::numeric_limits<double>::infinity(); }},
  };
  for (const Corruption& c : corruptions) {
    TreeNodes t = two_trees();
    c.apply(t);
    EXPECT_THROW(TreeEnsemble(2, 0.0, {0, 5}, t), std::invalid_argument) << c.what;
  }
  EXPECT_THROW(TreeEnsemble(2, 0.0, {0, 11}, two_trees()), std::invalid_argument) << "a tree past the table";
  EXPECT_THROW(TreeEnsemble(2, 0.0, {}, two_trees()), std::invalid_argument) << "no trees";
}

TEST(TreeEnsemble, SerializedFormRoundTripsAndEveryTruncationIsRefused) {
  TreeEnsemble e(2, 0.25, {0, 5}, two_trees());
  const std::string bytes = e.serialize();
  const TreeEnsemble back = TreeEnsemble::deserialize(bytes);
  EXPECT_EQ(back.serialize(), bytes);
  EXPECT_DOUBLE_EQ(back.expected_value(), e.expected_value());
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_THROW(TreeEnsemble::deserialize(bytes.substr(0, cut)), FormatError) << cut;
  }
  for (std::size_t at = 0; at < bytes.size(); ++at) {  // any flipped byte: refused or still a valid table
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x5a);
    try {
      const TreeEnsemble f = TreeEnsemble::deserialize(flipped);
      std::vector<double> phi(3);
      const std::vector<double> x = {0.3, -0.7};
      f.contributions(row_major_view(x.data(), 1, 2), phi.data(), 1);
    } catch (const FormatError&) {
    } catch (const std::invalid_argument&) {  // a valid table whose n_features no longer matches x
    }
  }
}

}  // namespace
}  // namespace fraudcore
