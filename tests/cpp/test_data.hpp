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

}  // namespace fraudcore::test_data
