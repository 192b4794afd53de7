#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fraudcore/autoencoder.hpp"
#include "fraudcore/dense_kernels.hpp"
#include "fraudcore/error.hpp"
#include "fraudcore/random.hpp"

using namespace fraudcore;

namespace {

// Rows near a 2-D plane in 6 dimensions: an autoencoder with a 2-unit
// bottleneck can learn them.
RowMajorMatrix<double> plane(Index n, std::uint64_t seed) {
  Rng rng(seed);
  RowMajorMatrix<double> X(n, 6);
  for (Index i = 0; i < n; ++i) {
    const double a = rng.normal(), b = rng.normal();
    const double row[6] = {a, b, a + b, a - b, 2 * a, -b};
    for (Index j = 0; j < 6; ++j) X(i, j) = row[j] + 0.01 * rng.normal();
  }
  return X;
}

AutoEncoderParams small_params(bool float64) {
  AutoEncoderParams p;
  p.layers = {6, 8, 2, 8, 6};
  p.activation = Activation::kTanh;
  p.dropout = 0.1;
  p.learning_rate = 0.01;
  p.batch_size = 100;
  p.float64 = float64;
  p.seed = 3;
  return p;
}

}  // namespace

TEST(AutoEncoder, LearnsAndIsTheSameForEveryThreadCount) {
  const auto X = plane(700, 1);
  const auto view = row_major_view(X.data(), X.rows(), X.cols());
  for (bool float64 : {false, true}) {
    std::vector<std::vector<double>> scores;
    for (int threads : {1, 2, 4}) {
      AutoEncoder ae;
      ae.initialize(view, small_params(float64), true);
      const double first = ae.train_epoch(view, threads);
      double last = first;
      for (int e = 0; e < 30; ++e) last = ae.train_epoch(view, threads);
      EXPECT_LT(last, 0.3 * first);
      scores.emplace_back(X.rows());
      ae.row_errors(view, scores.back().data(), threads);
    }
    EXPECT_EQ(scores[0], scores[1]);
    EXPECT_EQ(scores[0], scores[2]);
  }
}

TEST(AutoEncoder, RoundTripAndRefusesDamagedData) {
  const auto X = plane(200, 2);
  const auto view = row_major_view(X.data(), X.rows(), X.cols());
  AutoEncoder ae;
  ae.initialize(view, small_params(false), true);
  ae.train_epoch(view, 2);
  const std::string bytes = ae.serialize();
  const AutoEncoder twin = AutoEncoder::deserialize(bytes);
  std::vector<double> a(200), b(200);
  ae.row_errors(view, a.data(), 1);
  twin.row_errors(view, b.data(), 2);
  EXPECT_EQ(a, b);
  for (std::size_t cut = 0; cut < bytes.size(); cut += 5) {
    EXPECT_THROW(AutoEncoder::deserialize(std::string_view(bytes.data(), cut)), FormatError) << cut;
  }
}

TEST(AutoEncoder, RejectsBadParametersAndInput) {
  const auto X = plane(50, 3);
  const auto view = row_major_view(X.data(), X.rows(), X.cols());
  AutoEncoder ae;
  auto p = small_params(false);
  p.layers = {6, 0, 6};
  EXPECT_THROW(ae.initialize(view, p, true), std::invalid_argument);
  p = small_params(false);
  p.layers = {6, 4, 5};
  EXPECT_THROW(ae.initialize(view, p, true), std::invalid_argument);
  p = small_params(false);
  p.dropout = 1.0;
  EXPECT_THROW(ae.initialize(view, p, true), std::invalid_argument);
  ae.initialize(view, small_params(false), true);
  RowMajorMatrix<double> bad = X;
  bad(40, 3) = std::nan("");
  EXPECT_THROW(ae.train_epoch(row_major_view(bad.data(), bad.rows(), bad.cols()), 2),
               std::invalid_argument);
}

TEST(AutoEncoder, DivergenceThrowsNamingTheEpochAndDropsTheModel) {
  // Unstandardised inputs far too large for the compute type: the gradients
  // overflow float32; float64's squared errors overflow.
  for (bool float64 : {false, true}) {
    RowMajorMatrix<double> X = plane(300, 4) * (float64 ? 1e160 : 1e20);
    const auto view = row_major_view(X.data(), X.rows(), X.cols());
    AutoEncoder ae;
    ae.initialize(view, small_params(float64), false);
    std::string message;
    try {
      ae.train_epoch(view, 2);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    EXPECT_NE(message.find("diverged in epoch 1:"), std::string::npos) << message;
    EXPECT_NE(message.find("learning_rate"), std::string::npos) << message;
    EXPECT_NE(message.find("standardize"), std::string::npos) << message;
    EXPECT_FALSE(ae.initialized());  // nothing left to score or save
    EXPECT_THROW(ae.serialize(), std::invalid_argument);
  }
}

TEST(AutoEncoder, LoaderRefusesWeightsThatOverflowAndScoringNeverGivesNaN) {
  const auto X = plane(200, 5);
  const auto view = row_major_view(X.data(), X.rows(), X.cols());
  for (bool float64 : {false, true}) {
    auto p = small_params(float64);
    p.activation = Activation::kRelu;  // unbounded: 1e30 weights overflow float32
    AutoEncoder ae;
    ae.initialize(view, p, true);
    ae.train_epoch(view, 2);
    const std::string bytes = ae.serialize();
    const std::size_t n_weights = 8 * 7 + 2 * 9 + 8 * 3 + 6 * 9;  // layers 6-8-2-8-6, with biases
    for (double value : {1e300, 1e160, 1e30}) {
      if (float64 && value == 1e30) continue;  // finite scores in float64: a sound model
      std::string bad = bytes;
      for (std::size_t i = 0; i < n_weights; ++i) {
        std::memcpy(&bad[bad.size() - 8 * (i + 1)], &value, 8);  // little-endian hosts
      }
      EXPECT_THROW(AutoEncoder::deserialize(bad), FormatError) << value << " float64=" << float64;
    }
    // Beyond the guaranteed radius an overflowing row scores +inf, not NaN.
    RowMajorMatrix<double> far = X.topRows(3);
    far.row(1).setConstant(float64 ? 1e300 : 1e30);
    std::vector<double> errors(3);
    ae.row_errors(row_major_view(far.data(), far.rows(), far.cols()), errors.data(), 1);
    EXPECT_TRUE(std::isfinite(errors[0]) && std::isfinite(errors[2]));
    EXPECT_FALSE(std::isnan(errors[1]));
    EXPECT_GT(errors[1], 1e40);
  }
}

TEST(DenseGemm, EveryKernelMatchesADoubleReference) {
  Rng rng(9);
  for (const char* isa : {"avx512", "avx2"}) {
    const DenseGemm gemm = dense_gemm_for(isa);
    if (!gemm) continue;  // not on this CPU
    for (Index M : {1, 3, 4, 9, 64}) {
      for (Index N : {1, 7, 16, 18, 33, 64, 70}) {
        for (Index K : {1, 18, 65}) {
          for (bool transposed : {false, true}) {
            // from zero, from C, from the bias, then the bias with ReLU / leaky ReLU
            for (int start : {0, 1, 2, 3, 4}) {
              const bool accumulate = start == 1;
              DenseEpilogue epilogue;
              epilogue.rectify = start >= 3;
              epilogue.negative_slope = start == 4 ? 0.01f : 0.0f;
              std::vector<float> a(M * K), b(K * N), c(M * N), bias(N);
              for (auto& x : a) x = static_cast<float>(rng.normal());
              for (auto& x : b) x = static_cast<float>(rng.normal());
              for (auto& x : c) x = static_cast<float>(rng.normal());
              for (auto& x : bias) x = static_cast<float>(rng.normal());
              const Index a_row = transposed ? 1 : K, a_col = transposed ? M : 1;
              std::vector<double> expected(M * N);
              for (Index i = 0; i < M; ++i) {
                for (Index j = 0; j < N; ++j) {
                  double s = start == 1 ? c[i * N + j] : start >= 2 ? bias[j] : 0.0;
                  for (Index k = 0; k < K; ++k) s += double(a[i * a_row + k * a_col]) * b[k * N + j];
                  expected[i * N + j] = epilogue.rectify && s < 0 ? epilogue.negative_slope * s : s;
                }
              }
              epilogue.bias = start >= 2 ? bias.data() : nullptr;
              gemm(M, N, K, a.data(), a_row, a_col, b.data(), N, c.data(), N, accumulate, &epilogue);
              for (Index i = 0; i < M * N; ++i) {
                ASSERT_NEAR(c[i], expected[i], 1e-5 * (1.0 + std::fabs(expected[i]))) << isa;
              }
            }
          }
        }
      }
    }
  }
}
