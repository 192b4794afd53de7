// Data the C++ tests share.
#pragma once

#include <cstdint>

#include "fraudcore/random.hpp"
#include "fraudcore/types.hpp"

namespace fraudcore::test_data {

/// n x d standard normal values, the same for the same seed.
inline RowMajorMatrix<double> normal_rows(Index n, Index d, std::uint64_t seed) {
  Rng rng(seed);
  RowMajorMatrix<double> X(n, d);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) X(i, j) = rng.normal();
  return X;
}

/// Gaussian rows with some exact duplicates and some rows on an integer grid
/// (many exactly tied distances).
inline RowMajorMatrix<double> awkward_rows(Index n, Index d, std::uint64_t seed) {
  Rng rng(seed);
  RowMajorMatrix<double> X(n, d);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) {
      X(i, j) = i % 3 == 0 ? static_cast<double>(rng.below(3)) : rng.normal() * 3.0 + 10.0;
    }
  }
  for (Index i = 0; i < n / 20; ++i) X.row(i) = X.row(n / 2);  // duplicates
  return X;
}

}  // namespace fraudcore::test_data
