// A dense autoencoder trained to reconstruct its input; its reconstruction
// error is an anomaly score.
//
// Network: layer sizes n_features = s_0, s_1, ..., s_L = n_features. Every
// hidden layer is affine then `activation`, then (training only) inverted
// dropout; the output layer is affine. Inputs are standardised with the
// training mean and standard deviation (when asked), stored with the model,
// and errors are measured in that standardised space.
//
// Training: Adam (beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected) on the
// mean squared error over a mini-batch, with L2 added to every gradient as
// PyTorch's weight_decay does; rows reshuffled every epoch. Weights start
// He-normal for relu / leaky_relu, Glorot-uniform for tanh / sigmoid and the
// output layer; biases at 0. Compute in float32 or float64.
//
// Determinism: a batch is cut into fixed chunks of 64 rows, processed in
// parallel (OpenMP) and their gradients summed in chunk order; shuffling and
// dropout draw from Rng(seed, epoch / chunk) streams. A given seed gives the
// same model for every thread count.
//
// Training runs one epoch per call, so the caller can report progress,
// validate, stop early or be interrupted between epochs. A model is
// immutable while scoring: concurrent scoring calls are safe.
//
// Finite scores (the model invariant). Write z for a standardised input,
// (x - mean) / scale. Every model that exists -- after initialize, after a
// train_epoch that returned, after deserialize -- satisfies:
//   * mean, scale, weights and biases are finite (in the compute type), and
//     scale > 0;
//   * for every z with |z_j| <= kSafeInputRadius for all j, no value of the
//     forward pass nor the reconstruction error overflows: scores are finite.
// The second is checked with a bound, not by sampling: each layer's output
// is at most max_i (sum_j |W_ij| u + |b_i|) in magnitude when its input is at
// most u (relu / leaky_relu keep the bound, tanh / sigmoid cut it to 1),
// widened by (1 + unit roundoff)^(fan_in + 1) for rounding in any summation
// order; the output's error is then at most that plus the radius. The
// radius, 1e6 standard deviations (raw units without standardisation),
// holds every standardised training row (no z-score of n values exceeds
// sqrt(n - 1)) and leaves trained networks far from the limit: a float32
// network is refused only when the product of its layers' row sums of |W|
// exceeds ~1e32. Inputs beyond the radius can overflow; such a row then
// scores +infinity (never NaN), so it is flagged, not passed as normal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fraudcore/types.hpp"

namespace fraudcore {

enum class Activation : int { kRelu = 0, kTanh = 1, kSigmoid = 2, kLeakyRelu = 3 };

/// Standardised inputs up to this magnitude score finitely (see above).
inline constexpr double kSafeInputRadius = 1e6;

struct AutoEncoderParams {
  /// Layer sizes from input to output: at least 3, first == last, all >= 1.
  std::vector<Index> layers;
  Activation activation = Activation::kRelu;
  double dropout = 0.0;  ///< [0, 1)
  double l2 = 0.0;       ///< >= 0
  double learning_rate = 1e-3;
  Index batch_size = 32;
  bool float64 = false;
  std::uint64_t seed = 0;
};

class AutoEncoder {
 public:
  AutoEncoder();
  ~AutoEncoder();
  AutoEncoder(AutoEncoder&&) noexcept;
  AutoEncoder& operator=(AutoEncoder&&) noexcept;

  /// Fresh weights for data X (its mean / std when `standardize`).
  /// Throws std::invalid_argument for bad parameters or non-finite X.
  template <class T>
  void initialize(const ConstMatrixView<T>& X, const AutoEncoderParams& params, bool standardize);

  /// One pass over X in shuffled mini-batches; returns the mean squared
  /// error over every value seen (dropout active), before each step.
  /// Throws std::invalid_argument for non-finite X and when training
  /// diverges: a non-finite loss or weights, or weights grown past the
  /// finite-score bound above. The message names the epoch (1-based) and
  /// the remedies (a lower learning_rate; standardised, moderate inputs).
  /// After any throw the model is uninitialised: its weights were partly
  /// updated, so they are dropped rather than left to be scored or saved.
  template <class T>
  double train_epoch(const ConstMatrixView<T>& X, int n_threads);

  /// Mean squared reconstruction error of each row (no dropout); +infinity
  /// for a row whose forward pass overflows (only beyond kSafeInputRadius).
  template <class T>
  void row_errors(const ConstMatrixView<T>& X, double* out, int n_threads) const;

  /// Squared reconstruction error of each value, n x n_features row-major;
  /// +infinity where the forward pass overflows, as row_errors.
  template <class T>
  void value_errors(const ConstMatrixView<T>& X, double* out, int n_threads) const;

  bool initialized() const;
  Index n_features() const;
  int epochs_trained() const;
  const AutoEncoderParams& params() const;

  /// Layer l's weights (layers[l+1] x layers[l], row-major) and biases, as
  /// float64 (for inspection and tests), and the standardisation.
  std::vector<double> weights(Index layer) const;
  std::vector<double> biases(Index layer) const;
  const std::vector<double>& input_mean() const;
  const std::vector<double>& input_scale() const;

  /// Throws std::invalid_argument (and writes nothing) if the model breaks
  /// the invariant above, i.e. if deserialize would refuse the bytes.
  std::string serialize() const;
  /// Throws FormatError for data that is not a consistent model, including
  /// one that breaks the invariant above (non-finite or overflowing
  /// weights); the message says which layer or value.
  static AutoEncoder deserialize(std::string_view bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fraudcore
