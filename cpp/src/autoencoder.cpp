#include "fraudcore/autoencoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <numeric>
#include <type_traits>

#include "fraudcore/dense_kernels.hpp"
#include "fraudcore/error.hpp"
#include "fraudcore/parallel.hpp"
#include "fraudcore/random.hpp"
#include "fraudcore/serialize.hpp"

namespace fraudcore {

namespace {

constexpr Index kChunk = 64;  // rows per parallel work unit (fixed: determinism)
constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kAdamEps = 1e-8;
constexpr double kLeakySlope = 0.01;
constexpr std::uint64_t kInitStream = 0;

template <class S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using Vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;

std::uint64_t epoch_stream(int epoch) { return (static_cast<std::uint64_t>(epoch) + 1) << 40; }

template <class S>
struct Network {
  std::vector<Mat<S>> W;   // W[l]: layers[l + 1] x layers[l]
  std::vector<Mat<S>> Wt;  // W[l] transposed, for the vector kernels (float32)
  std::vector<Vec<S>> b;
  std::vector<Mat<S>> mW, vW;  // Adam moments
  std::vector<Vec<S>> mb, vb;
  std::int64_t step = 0;
};

// One chunk's forward and backward state.
template <class S>
struct Workspace {
  std::vector<Mat<S>> A;  // A[0]: input; A[l + 1]: output of layer l (after dropout)
  std::vector<Mat<S>> H;  // H[l]: activation of hidden layer l (before dropout)
  std::vector<Mat<S>> Z;  // Z[l]: pre-activation of layer l
  std::vector<Mat<S>> mask;
  std::vector<Mat<S>> gW;
  std::vector<Vec<S>> gb;
  Mat<S> delta, back;
  double sq_error = 0.0;
};

// True when none of p[0..n) is NaN or infinite: a branch-free test of the
// exponent bits that the compiler vectorises (Eigen's allFinite does not).
template <class S>
bool all_finite(const S* p, Index n) {
  using Bits = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  constexpr Bits kExponent = static_cast<Bits>(sizeof(S) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  Bits bad = 0;
  for (Index i = 0; i < n; ++i) {
    Bits u;
    std::memcpy(&u, p + i, sizeof u);
    bad |= static_cast<Bits>((u & kExponent) == kExponent);
  }
  return bad == 0;
}

template <class S>
void activate(Activation f, const Mat<S>& z, Mat<S>& h) {
  switch (f) {
    case Activation::kRelu: h = z.cwiseMax(S(0)); return;
    case Activation::kLeakyRelu: h = z.unaryExpr([](S v) { return v > 0 ? v : S(kLeakySlope) * v; }); return;
    case Activation::kTanh: h = z.array().tanh().matrix(); return;
    case Activation::kSigmoid:
      h = z.unaryExpr([](S v) { return S(1) / (S(1) + std::exp(-v)); });
      return;
  }
}

// delta *= f'(z), using h = f(z) where that is cheaper.
template <class S>
void multiply_derivative(Activation f, const Mat<S>& z, const Mat<S>& h, Mat<S>& delta) {
  switch (f) {
    case Activation::kRelu:
      delta = delta.cwiseProduct(z.unaryExpr([](S v) { return v > 0 ? S(1) : S(0); }));
      return;
    case Activation::kLeakyRelu:
      delta = delta.cwiseProduct(z.unaryExpr([](S v) { return v > 0 ? S(1) : S(kLeakySlope); }));
      return;
    case Activation::kTanh:
      delta = delta.cwiseProduct((S(1) - h.array().square()).matrix());
      return;
    case Activation::kSigmoid:
      delta = delta.cwiseProduct((h.array() * (S(1) - h.array())).matrix());
      return;
  }
}

// The three products of a layer. float32 runs them on the CPU's vector
// kernel (dense_kernels.hpp) when there is one, float64 and the rest on
// Eigen.

// z = a W^T + b, then z = f(z) when f is given. On the vector kernels the
// bias starts each multiply-add chain and the rectifiers are applied as z is
// stored.
template <class S>
void layer_product(const Mat<S>& a, const Network<S>& nw, Index l, Mat<S>& z, const Activation* f) {
  const auto& w = nw.W[static_cast<std::size_t>(l)];
  const auto& b = nw.b[static_cast<std::size_t>(l)];
  if constexpr (std::is_same_v<S, float>) {
    if (const DenseGemm gemm = best_dense_gemm()) {
      DenseEpilogue out;
      out.bias = b.data();
      out.rectify = f && (*f == Activation::kRelu || *f == Activation::kLeakyRelu);
      out.negative_slope = f && *f == Activation::kLeakyRelu ? static_cast<float>(kLeakySlope) : 0.0f;
      z.resize(a.rows(), w.rows());
      gemm(a.rows(), w.rows(), w.cols(), a.data(), a.cols(), 1, nw.Wt[static_cast<std::size_t>(l)].data(),
           w.rows(), z.data(), w.rows(), false, &out);
      if (f && !out.rectify) activate(*f, z, z);
      return;
    }
  }
  z.noalias() = a * w.transpose();
  z.rowwise() += b.transpose();
  if (f) activate(*f, z, z);
}

// g = delta^T a
template <class S>
void gradient_product(const Mat<S>& delta, const Mat<S>& a, Mat<S>& g) {
  if constexpr (std::is_same_v<S, float>) {
    if (const DenseGemm gemm = best_dense_gemm()) {
      g.resize(delta.cols(), a.cols());
      gemm(delta.cols(), a.cols(), delta.rows(), delta.data(), 1, delta.cols(), a.data(), a.cols(),
           g.data(), a.cols(), false, nullptr);
      return;
    }
  }
  g.noalias() = delta.transpose() * a;
}

// out = delta W
template <class S>
void product(const Mat<S>& delta, const Mat<S>& w, Mat<S>& out) {
  if constexpr (std::is_same_v<S, float>) {
    if (const DenseGemm gemm = best_dense_gemm()) {
      out.resize(delta.rows(), w.cols());
      gemm(delta.rows(), w.cols(), w.rows(), delta.data(), delta.cols(), 1, w.data(), w.cols(),
           out.data(), w.cols(), false, nullptr);
      return;
    }
  }
  out.noalias() = delta * w;
}

template <class S>
void refresh_transposes(Network<S>& nw) {
  nw.Wt.resize(nw.W.size());
  for (std::size_t l = 0; l < nw.W.size(); ++l) nw.Wt[l] = nw.W[l].transpose();
}

}  // namespace

struct AutoEncoder::Impl {
  AutoEncoderParams params;
  std::vector<double> mean, scale;  // standardisation: (x - mean) / scale
  int epochs = 0;
  Network<float> f32;
  Network<double> f64;

  Index d() const { return params.layers.front(); }
  Index n_layers() const { return static_cast<Index>(params.layers.size()) - 1; }

  template <class S>
  Network<S>& net() {
    if constexpr (std::is_same_v<S, float>) {
      return f32;
    } else {
      return f64;
    }
  }
  template <class S>
  const Network<S>& net() const {
    return const_cast<Impl&>(*this).net<S>();
  }

  // Copy rows row_of(0..count) of X, standardised, into the first `count`
  // rows of `out` (padded x d); the rows after them are zero.
  template <class S, class T, class RowOf>
  void load_rows(const ConstMatrixView<T>& X, Index count, Index padded, RowOf row_of, Mat<S>& out) const {
    const Index width = d();
    out.resize(padded, width);
    const double* mu = mean.data();
    const double* sd = scale.data();
    for (Index i = 0; i < count; ++i) {
      const Index r = row_of(i);
      S* o = out.data() + i * width;
      if (X.innerStride() == 1) {
        const T* x = X.data() + r * X.outerStride();
        for (Index j = 0; j < width; ++j) o[j] = static_cast<S>((static_cast<double>(x[j]) - mu[j]) / sd[j]);
      } else {
        for (Index j = 0; j < width; ++j) o[j] = static_cast<S>((static_cast<double>(X(r, j)) - mu[j]) / sd[j]);
      }
    }
    out.bottomRows(padded - count).setZero();
    if (!all_finite(out.data(), count * width)) report_non_finite(X, count, row_of, out);
  }

  // Names the first value of load_rows' input that is not finite, or that
  // overflows S once standardised.
  template <class S, class T, class RowOf>
  [[noreturn]] void report_non_finite(const ConstMatrixView<T>& X, Index count, RowOf row_of, const Mat<S>& out) const {
    for (Index i = 0; i < count; ++i) {
      for (Index j = 0; j < d(); ++j) {
        const double v = static_cast<double>(X(row_of(i), j));
        FRAUDCORE_CHECK(std::isfinite(v), "X contains NaN or infinity (row " << row_of(i) << ", column " << j << ")");
        FRAUDCORE_CHECK(std::isfinite(out(i, j)), "X[" << row_of(i) << ", " << j << "] = " << v
                                                       << " is out of range once standardised (|(x - mean) / scale| "
                                                          "above the largest float32); scale the column down or use "
                                                          "dtype float64");
      }
    }
    throw std::logic_error("a non-finite standardised value was not found");
  }

  // Forward pass of ws.A[0]; dropout drawn from rng when given.
  template <class S>
  void forward(Workspace<S>& ws, Rng* dropout_rng) const {
    const Network<S>& nw = net<S>();
    const Index L = n_layers();
    ws.A.resize(static_cast<std::size_t>(L + 1));
    ws.H.resize(static_cast<std::size_t>(L));
    ws.Z.resize(static_cast<std::size_t>(L));
    ws.mask.resize(static_cast<std::size_t>(L));
    const S keep = S(1) - static_cast<S>(params.dropout);
    for (Index l = 0; l < L; ++l) {
      if (!dropout_rng) {  // scoring: no derivative needed, so activate in place
        layer_product(ws.A[static_cast<std::size_t>(l)], nw, l, ws.A[static_cast<std::size_t>(l + 1)],
                      l < L - 1 ? &params.activation : nullptr);
        continue;
      }
      auto& z = ws.Z[static_cast<std::size_t>(l)];
      layer_product(ws.A[static_cast<std::size_t>(l)], nw, l, z, nullptr);
      if (l == L - 1) {
        ws.A[static_cast<std::size_t>(l + 1)] = z;
        break;
      }
      auto& h = ws.H[static_cast<std::size_t>(l)];
      activate(params.activation, z, h);
      if (params.dropout > 0.0) {
        auto& m = ws.mask[static_cast<std::size_t>(l)];
        m.resize(h.rows(), h.cols());
        for (Index i = 0; i < m.size(); ++i) {
          m.data()[i] = dropout_rng->uniform() < params.dropout ? S(0) : S(1) / keep;
        }
        ws.A[static_cast<std::size_t>(l + 1)] = h.cwiseProduct(m);
      } else {
        ws.A[static_cast<std::size_t>(l + 1)] = h;
      }
    }
  }

  // Backward pass for a chunk of a batch of `batch_rows` rows: gradients of
  // the batch's mean squared error into ws.gW / ws.gb (overwritten).
  template <class S>
  void backward(Workspace<S>& ws, Index batch_rows, bool dropout) const {
    const Network<S>& nw = net<S>();
    const Index L = n_layers();
    ws.gW.resize(static_cast<std::size_t>(L));
    ws.gb.resize(static_cast<std::size_t>(L));
    const Mat<S>& out = ws.A[static_cast<std::size_t>(L)];
    ws.delta = (out - ws.A[0]) * static_cast<S>(2.0 / (static_cast<double>(batch_rows) * static_cast<double>(d())));
    for (Index l = L - 1; l >= 0; --l) {
      gradient_product(ws.delta, ws.A[static_cast<std::size_t>(l)], ws.gW[static_cast<std::size_t>(l)]);
      ws.gb[static_cast<std::size_t>(l)] = ws.delta.colwise().sum().transpose();
      if (l == 0) break;
      product(ws.delta, nw.W[static_cast<std::size_t>(l)], ws.back);
      if (dropout && params.dropout > 0.0) ws.back = ws.back.cwiseProduct(ws.mask[static_cast<std::size_t>(l - 1)]);
      multiply_derivative(params.activation, ws.Z[static_cast<std::size_t>(l - 1)],
                          ws.H[static_cast<std::size_t>(l - 1)], ws.back);
      std::swap(ws.delta, ws.back);
    }
  }

  template <class S>
  void adam_step(const std::vector<Mat<S>>& gW, const std::vector<Vec<S>>& gb) {
    Network<S>& nw = net<S>();
    ++nw.step;
    const double c1 = 1.0 - std::pow(kBeta1, static_cast<double>(nw.step));
    const double c2 = 1.0 - std::pow(kBeta2, static_cast<double>(nw.step));
    const S lr = static_cast<S>(params.learning_rate / c1);
    const S l2 = static_cast<S>(params.l2);
    const auto update = [&](auto& w, const auto& g, auto& m, auto& v) {
      auto grad = (g.array() + l2 * w.array()).eval();
      m.array() = S(kBeta1) * m.array() + S(1 - kBeta1) * grad;
      v.array() = S(kBeta2) * v.array() + S(1 - kBeta2) * grad.square();
      w.array() -= lr * m.array() / ((v.array() / S(c2)).sqrt() + S(kAdamEps));
    };
    for (std::size_t l = 0; l < nw.W.size(); ++l) {
      update(nw.W[l], gW[l], nw.mW[l], nw.vW[l]);
      update(nw.b[l], gb[l], nw.mb[l], nw.vb[l]);
    }
    refresh_transposes(nw);
  }

  template <class S>
  void init_weights() {
    Network<S>& nw = net<S>();
    const Index L = n_layers();
    Rng rng(params.seed, kInitStream);
    nw = Network<S>{};
    for (Index l = 0; l < L; ++l) {
      const Index in = params.layers[static_cast<std::size_t>(l)];
      const Index out = params.layers[static_cast<std::size_t>(l + 1)];
      Mat<S> w(out, in);
      const bool he = l < L - 1 && (params.activation == Activation::kRelu ||
                                    params.activation == Activation::kLeakyRelu);
      const double he_std = std::sqrt(2.0 / static_cast<double>(in));
      const double glorot = std::sqrt(6.0 / static_cast<double>(in + out));
      for (Index i = 0; i < w.size(); ++i) {
        w.data()[i] = static_cast<S>(he ? he_std * rng.normal() : glorot * (2.0 * rng.uniform() - 1.0));
      }
      nw.W.push_back(w);
      nw.b.push_back(Vec<S>::Zero(out));
      nw.mW.push_back(Mat<S>::Zero(out, in));
      nw.vW.push_back(Mat<S>::Zero(out, in));
      nw.mb.push_back(Vec<S>::Zero(out));
      nw.vb.push_back(Vec<S>::Zero(out));
    }
    refresh_transposes(nw);
  }

  template <class S, class T>
  double train_epoch(const ConstMatrixView<T>& X, int n_threads) {
    const Index n = X.rows();
    const Index batch = std::min(params.batch_size, n);
    std::vector<Index> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), Index{0});
    Rng shuffle(params.seed, epoch_stream(epochs));
    for (Index i = n - 1; i > 0; --i) {
      std::swap(order[static_cast<std::size_t>(i)],
                order[static_cast<std::size_t>(shuffle.below(static_cast<std::uint64_t>(i + 1)))]);
    }
    const Index chunks_per_batch = (batch + kChunk - 1) / kChunk;
    std::vector<Workspace<S>> ws(static_cast<std::size_t>(chunks_per_batch));
    double sq_error = 0.0;
    Index chunk_counter = 0;
    for (Index start = 0; start < n; start += batch) {
      const Index rows = std::min(batch, n - start);
      const Index chunks = (rows + kChunk - 1) / kChunk;
      parallel_for(chunks, n_threads, [&](Index c) {
        Workspace<S>& w = ws[static_cast<std::size_t>(c)];
        const Index first = start + c * kChunk;
        const Index count = std::min(kChunk, start + rows - first);
        if (w.A.empty()) w.A.resize(1);
        const Index* rows_of_chunk = &order[static_cast<std::size_t>(first)];
        load_rows(X, count, count, [rows_of_chunk](Index i) { return rows_of_chunk[i]; }, w.A[0]);
        Rng dropout(params.seed, epoch_stream(epochs) + 1 + static_cast<std::uint64_t>(chunk_counter + c));
        forward(w, &dropout);
        w.sq_error = squared_error(w.A.back(), w.A[0], count);
        backward(w, rows, true);
      });
      chunk_counter += chunks;
      // Sum the chunks' gradients in chunk order (the same for any thread count).
      for (Index c = 1; c < chunks; ++c) {
        for (std::size_t l = 0; l < ws[0].gW.size(); ++l) {
          ws[0].gW[l] += ws[static_cast<std::size_t>(c)].gW[l];
          ws[0].gb[l] += ws[static_cast<std::size_t>(c)].gb[l];
        }
      }
      double batch_error = 0.0;
      for (Index c = 0; c < chunks; ++c) batch_error += ws[static_cast<std::size_t>(c)].sq_error;
      if (!std::isfinite(batch_error)) diverged("the training loss is not finite");
      sq_error += batch_error;
      adam_step<S>(ws[0].gW, ws[0].gb);
      if (!weights_finite<S>()) diverged("a weight became NaN or infinite");
    }
    if (const std::string problem = violation<S>(); !problem.empty()) diverged(problem);
    ++epochs;
    return sq_error / (static_cast<double>(n) * static_cast<double>(d()));
  }

  // Squared error of the first `count` rows, the difference taken in S (as
  // when scoring) and squared in float64 (a float32 square overflows early).
  template <class S>
  static double squared_error(const Mat<S>& out, const Mat<S>& in, Index count) {
    double sum = 0.0;
    for (Index i = 0; i < count * in.cols(); ++i) {
      const double e = static_cast<double>(out.data()[i] - in.data()[i]);
      sum += e * e;
    }
    return sum;
  }

  template <class S>
  bool weights_finite() const {
    const Network<S>& nw = net<S>();
    for (std::size_t l = 0; l < nw.W.size(); ++l) {
      if (!all_finite(nw.W[l].data(), nw.W[l].size()) || !all_finite(nw.b[l].data(), nw.b[l].size())) return false;
    }
    return true;
  }

  [[noreturn]] void diverged(const std::string& what) const {
    std::ostringstream msg;
    msg << "AutoEncoder training diverged in epoch " << epochs + 1 << ": " << what << "; lower learning_rate (now "
        << params.learning_rate << ") or bring the inputs to a moderate scale (keep standardize on)";
    throw std::invalid_argument(msg.str());
  }

  std::string violation() const { return params.float64 ? violation<double>() : violation<float>(); }

  // What breaks the header's invariant ("" when it holds): a non-finite
  // parameter, or weights with which an input within kSafeInputRadius could
  // overflow S. The bound propagated is the header's; it is computed in
  // float64 and stops at the first layer past the limit (so no inf * 0).
  template <class S>
  std::string violation() const {
    std::ostringstream why;
    for (std::size_t j = 0; j < mean.size(); ++j) {
      if (!std::isfinite(mean[j]) || !std::isfinite(scale[j]) || !(scale[j] > 0.0)) {
        why << "feature " << j << " has an invalid standardisation (mean " << mean[j] << ", scale " << scale[j] << ")";
        return why.str();
      }
    }
    const Network<S>& nw = net<S>();
    const char* type = std::is_same_v<S, float> ? "float32" : "float64";
    constexpr double kLimit = static_cast<double>(std::numeric_limits<S>::max());
    const double roundoff = static_cast<double>(std::numeric_limits<S>::epsilon()) / 2.0;
    double u = kSafeInputRadius;  // bound on the magnitude of the layer's input
    for (Index l = 0; l < n_layers(); ++l) {
      const Mat<S>& W = nw.W[static_cast<std::size_t>(l)];
      const Vec<S>& b = nw.b[static_cast<std::size_t>(l)];
      if (!all_finite(W.data(), W.size()) || !all_finite(b.data(), b.size())) {
        why << "layer " << l << " holds a weight or bias that is NaN or infinite in " << type;
        return why.str();
      }
      double p = 0.0;
      for (Index i = 0; i < W.rows(); ++i) {
        double row = 0.0;
        for (Index j = 0; j < W.cols(); ++j) row += std::abs(static_cast<double>(W(i, j)));
        p = std::max(p, row * u + std::abs(static_cast<double>(b(i))));
      }
      p *= std::exp(static_cast<double>(W.cols() + 1) * std::log1p(roundoff));
      if (!(p <= kLimit)) {
        why << "the weights of layer " << l << " are too large: an input within " << kSafeInputRadius
            << " standard deviations of the training mean could overflow " << type << " there (bound " << p
            << ")";
        return why.str();
      }
      const bool saturating = params.activation == Activation::kTanh || params.activation == Activation::kSigmoid;
      u = l < n_layers() - 1 && saturating ? 1.0 : p;
    }
    const double e = (u + kSafeInputRadius) * (1.0 + roundoff);  // |output - input|
    if (!(e <= kLimit) || !std::isfinite(2.0 * e * e * static_cast<double>(d()))) {
      why << "the weights are too large: the reconstruction error of an input within " << kSafeInputRadius
          << " standard deviations of the training mean could overflow (bound " << e << ")";
      return why.str();
    }
    return {};
  }

  // Squared errors of every value of X, handed to sink(row, errors) per row.
  template <class S, class T, class Sink>
  void errors(const ConstMatrixView<T>& X, int n_threads, Sink&& sink) const {
    FRAUDCORE_CHECK(X.cols() == d(), "X has " << X.cols() << " features, but the autoencoder was fitted with "
                                              << d() << " features");
    const Index n = X.rows();
    parallel_for((n + kChunk - 1) / kChunk, n_threads, [&](Index c) {
      thread_local Workspace<S> w;  // reused: no allocation per chunk
      const Index first = c * kChunk, count = std::min(kChunk, n - first);
      w.A.resize(1);
      // Always a full chunk (zero rows after the data): the matrix products
      // then take the same path for every chunk, so a row's score does not
      // depend on which rows are scored with it.
      load_rows(X, count, kChunk, [first](Index i) { return first + i; }, w.A[0]);
      forward<S>(w, nullptr);
      Mat<S>& e = w.A.back();
      e -= w.A[0];
      for (Index i = 0; i < count; ++i) sink(first + i, e.row(i));
    });
  }
};

AutoEncoder::AutoEncoder() = default;
AutoEncoder::~AutoEncoder() = default;
AutoEncoder::AutoEncoder(AutoEncoder&&) noexcept = default;
AutoEncoder& AutoEncoder::operator=(AutoEncoder&&) noexcept = default;

bool AutoEncoder::initialized() const { return impl_ != nullptr; }
Index AutoEncoder::n_features() const { return impl_ ? impl_->d() : 0; }
int AutoEncoder::epochs_trained() const { return impl_ ? impl_->epochs : 0; }
const AutoEncoderParams& AutoEncoder::params() const {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  return impl_->params;
}

namespace {
template <class M>
std::vector<double> as_doubles(const M& m) {
  std::vector<double> out(static_cast<std::size_t>(m.size()));
  for (Index i = 0; i < m.size(); ++i) out[static_cast<std::size_t>(i)] = static_cast<double>(m.data()[i]);
  return out;
}
}  // namespace

std::vector<double> AutoEncoder::weights(Index layer) const {
  FRAUDCORE_CHECK(impl_ && layer >= 0 && layer < impl_->n_layers(), "no layer " << layer);
  const auto l = static_cast<std::size_t>(layer);
  return impl_->params.float64 ? as_doubles(impl_->f64.W[l]) : as_doubles(impl_->f32.W[l]);
}

std::vector<double> AutoEncoder::biases(Index layer) const {
  FRAUDCORE_CHECK(impl_ && layer >= 0 && layer < impl_->n_layers(), "no layer " << layer);
  const auto l = static_cast<std::size_t>(layer);
  return impl_->params.float64 ? as_doubles(impl_->f64.b[l]) : as_doubles(impl_->f32.b[l]);
}

const std::vector<double>& AutoEncoder::input_mean() const {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  return impl_->mean;
}

const std::vector<double>& AutoEncoder::input_scale() const {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  return impl_->scale;
}

namespace {
void check_params(const AutoEncoderParams& p) {
  FRAUDCORE_CHECK(p.layers.size() >= 3, "an autoencoder needs at least one hidden layer");
  FRAUDCORE_CHECK(p.layers.front() == p.layers.back(), "the output layer must match the input width");
  for (Index s : p.layers) FRAUDCORE_CHECK(s >= 1, "every layer needs at least 1 unit, got " << s);
  FRAUDCORE_CHECK(p.dropout >= 0.0 && p.dropout < 1.0, "dropout must be in [0, 1), got " << p.dropout);
  FRAUDCORE_CHECK(p.l2 >= 0.0 && std::isfinite(p.l2), "l2 must be >= 0, got " << p.l2);
  FRAUDCORE_CHECK(p.learning_rate > 0.0 && std::isfinite(p.learning_rate),
                  "learning_rate must be > 0, got " << p.learning_rate);
  FRAUDCORE_CHECK(p.batch_size >= 1, "batch_size must be >= 1, got " << p.batch_size);
  const int a = static_cast<int>(p.activation);
  FRAUDCORE_CHECK(a >= 0 && a <= 3, "unknown activation code " << a);
}
}  // namespace

template <class T>
void AutoEncoder::initialize(const ConstMatrixView<T>& X, const AutoEncoderParams& params,
                             bool standardize) {
  check_params(params);
  FRAUDCORE_CHECK(X.rows() >= 1, "X has no rows");
  FRAUDCORE_CHECK(X.cols() == params.layers.front(),
                  "X has " << X.cols() << " features but the network's input layer has "
                           << params.layers.front());
  auto impl = std::make_unique<Impl>();
  impl->params = params;
  const Index n = X.rows(), d = X.cols();
  impl->mean.assign(static_cast<std::size_t>(d), 0.0);
  impl->scale.assign(static_cast<std::size_t>(d), 1.0);
  if (standardize) {
    for (Index j = 0; j < d; ++j) {
      double sum = 0.0;
      for (Index i = 0; i < n; ++i) {
        const double v = static_cast<double>(X(i, j));
        FRAUDCORE_CHECK(std::isfinite(v), "X contains NaN or infinity (row " << i << ", column " << j << ")");
        sum += v;
      }
      const double mean = sum / static_cast<double>(n);
      double ss = 0.0;
      for (Index i = 0; i < n; ++i) ss += (static_cast<double>(X(i, j)) - mean) * (static_cast<double>(X(i, j)) - mean);
      const double sd = std::sqrt(ss / static_cast<double>(n));
      impl->mean[static_cast<std::size_t>(j)] = mean;
      impl->scale[static_cast<std::size_t>(j)] = sd > 0.0 && std::isfinite(sd) ? sd : 1.0;
    }
  }
  if (params.float64) {
    impl->init_weights<double>();
  } else {
    impl->init_weights<float>();
  }
  const std::string problem = impl->violation();
  FRAUDCORE_CHECK(problem.empty(), "the network's initial weights break the finite-score bound: " << problem
                                       << "; use fewer or narrower layers, or standardize the inputs");
  impl_ = std::move(impl);
}

template <class T>
double AutoEncoder::train_epoch(const ConstMatrixView<T>& X, int n_threads) {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  FRAUDCORE_CHECK(X.cols() == impl_->d(), "X has " << X.cols() << " features, expected " << impl_->d());
  FRAUDCORE_CHECK(X.rows() >= 1, "X has no rows");
  try {
    return impl_->params.float64 ? impl_->train_epoch<double>(X, n_threads)
                                 : impl_->train_epoch<float>(X, n_threads);
  } catch (...) {
    impl_.reset();  // half-updated weights: never scored or saved (see the header)
    throw;
  }
}

template <class T>
void AutoEncoder::row_errors(const ConstMatrixView<T>& X, double* out, int n_threads) const {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  const double d = static_cast<double>(impl_->d());
  const auto sink = [&](Index row, const auto& e) {
    double sum = 0.0;  // squared in float64, as value_errors
    for (Index j = 0; j < e.size(); ++j) sum += static_cast<double>(e(j)) * static_cast<double>(e(j));
    out[row] = std::isnan(sum) ? std::numeric_limits<double>::infinity() : sum / d;  // NaN only from overflow
  };
  if (impl_->params.float64) {
    impl_->errors<double>(X, n_threads, sink);
  } else {
    impl_->errors<float>(X, n_threads, sink);
  }
}

template <class T>
void AutoEncoder::value_errors(const ConstMatrixView<T>& X, double* out, int n_threads) const {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  const Index d = impl_->d();
  const auto sink = [&](Index row, const auto& e) {
    for (Index j = 0; j < d; ++j) {
      const double sq = static_cast<double>(e(j)) * static_cast<double>(e(j));
      out[row * d + j] = std::isnan(sq) ? std::numeric_limits<double>::infinity() : sq;
    }
  };
  if (impl_->params.float64) {
    impl_->errors<double>(X, n_threads, sink);
  } else {
    impl_->errors<float>(X, n_threads, sink);
  }
}

namespace {
template <class S>
void write_network(ByteWriter& w, const Network<S>& nw) {
  w.put<std::int64_t>(nw.step);
  for (std::size_t l = 0; l < nw.W.size(); ++l) {
    for (Index i = 0; i < nw.W[l].size(); ++i) w.put<double>(static_cast<double>(nw.W[l].data()[i]));
    for (Index i = 0; i < nw.b[l].size(); ++i) w.put<double>(static_cast<double>(nw.b[l].data()[i]));
  }
}

template <class S>
void read_network(ByteReader& r, Network<S>& nw) {
  nw.step = r.get<std::int64_t>();
  const auto read_into = [&](auto& m) {
    for (Index i = 0; i < m.size(); ++i) {
      const double v = r.get<double>();
      if (!std::isfinite(v)) throw FormatError("autoencoder data holds a non-finite weight");
      m.data()[i] = static_cast<S>(v);
    }
  };
  for (std::size_t l = 0; l < nw.W.size(); ++l) {
    read_into(nw.W[l]);
    read_into(nw.b[l]);
  }
  refresh_transposes(nw);
}
}  // namespace

std::string AutoEncoder::serialize() const {
  FRAUDCORE_CHECK(impl_, "the autoencoder is not initialised");
  const std::string problem = impl_->violation();
  FRAUDCORE_CHECK(problem.empty(), "the autoencoder cannot be saved, it could not be loaded: " << problem);
  const AutoEncoderParams& p = impl_->params;
  ByteWriter w;
  w.put<std::uint64_t>(p.layers.size());
  for (Index s : p.layers) w.put<std::int64_t>(s);
  w.put<std::int32_t>(static_cast<std::int32_t>(p.activation));
  w.put<double>(p.dropout);
  w.put<double>(p.l2);
  w.put<double>(p.learning_rate);
  w.put<std::int64_t>(p.batch_size);
  w.put<std::uint8_t>(p.float64 ? 1 : 0);
  w.put<std::uint64_t>(p.seed);
  w.put<std::int32_t>(impl_->epochs);
  w.put_vector(impl_->mean);
  w.put_vector(impl_->scale);
  if (p.float64) {
    write_network(w, impl_->f64);
  } else {
    write_network(w, impl_->f32);
  }
  return std::move(w.bytes());
}

AutoEncoder AutoEncoder::deserialize(std::string_view bytes) {
  ByteReader r(bytes, "AutoEncoder data");
  AutoEncoderParams p;
  const auto n_layers = r.get<std::uint64_t>();
  if (n_layers < 3 || n_layers > 1024) throw FormatError("autoencoder data has an invalid layer count");
  std::uint64_t weights = 0;
  for (std::uint64_t l = 0; l < n_layers; ++l) {
    const auto s = r.get<std::int64_t>();
    if (s < 1 || s > (std::int64_t{1} << 24)) throw FormatError("autoencoder data has an invalid layer size");
    if (!p.layers.empty()) weights += static_cast<std::uint64_t>(s) * static_cast<std::uint64_t>(p.layers.back() + 1);
    p.layers.push_back(s);
  }
  if (weights > r.remaining() / sizeof(double)) throw FormatError("AutoEncoder data is truncated");
  p.activation = static_cast<Activation>(r.get<std::int32_t>());
  p.dropout = r.get<double>();
  p.l2 = r.get<double>();
  p.learning_rate = r.get<double>();
  p.batch_size = r.get<std::int64_t>();
  p.float64 = r.get<std::uint8_t>() != 0;
  p.seed = r.get<std::uint64_t>();
  try {
    check_params(p);
  } catch (const std::invalid_argument& e) {
    throw FormatError(std::string("autoencoder data is inconsistent: ") + e.what());
  }
  auto impl = std::make_unique<Impl>();
  impl->params = p;
  impl->epochs = r.get<std::int32_t>();
  impl->mean = r.get_vector<double>();
  impl->scale = r.get_vector<double>();
  const auto d = static_cast<std::size_t>(p.layers.front());
  if (impl->epochs < 0 || impl->mean.size() != d || impl->scale.size() != d) {
    throw FormatError("autoencoder data is inconsistent (epochs or standardisation)");
  }
  for (std::size_t j = 0; j < d; ++j) {
    if (!std::isfinite(impl->mean[j]) || !(impl->scale[j] > 0.0) || !std::isfinite(impl->scale[j])) {
      throw FormatError("autoencoder data holds an invalid standardisation");
    }
  }
  if (p.float64) {
    impl->init_weights<double>();
    read_network(r, impl->f64);
  } else {
    impl->init_weights<float>();
    read_network(r, impl->f32);
  }
  r.expect_end();
  if (const std::string problem = impl->violation(); !problem.empty()) {
    throw FormatError("autoencoder data is unusable: " + problem);
  }
  AutoEncoder model;
  model.impl_ = std::move(impl);
  return model;
}

template void AutoEncoder::initialize<float>(const ConstMatrixView<float>&, const AutoEncoderParams&, bool);
template void AutoEncoder::initialize<double>(const ConstMatrixView<double>&, const AutoEncoderParams&, bool);
template double AutoEncoder::train_epoch<float>(const ConstMatrixView<float>&, int);
template double AutoEncoder::train_epoch<double>(const ConstMatrixView<double>&, int);
template void AutoEncoder::row_errors<float>(const ConstMatrixView<float>&, double*, int) const;
template void AutoEncoder::row_errors<double>(const ConstMatrixView<double>&, double*, int) const;
template void AutoEncoder::value_errors<float>(const ConstMatrixView<float>&, double*, int) const;
template void AutoEncoder::value_errors<double>(const ConstMatrixView<double>&, double*, int) const;

}  // namespace fraudcore
