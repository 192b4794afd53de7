// Small dense matrix products for the autoencoder's float32 layers, with
// AVX-512 or AVX2+FMA kernels picked at run time (GCC, x86-64), so portable
// wheels train at the CPU's width.
//
//   C (M x N, row-major, leading dimension ldc) = out(start(i, j) + sum over
//       k < K of A(i, k) * B(k, j)),  A(i, k) = a[i * a_row + k * a_col],
//       B row-major (K x N, leading dimension ldb),
//       start(i, j) = C(i, j) if accumulate, else epilogue->bias[j] if given,
//       else 0; out(v) = max(v, negative_slope * v) if epilogue->rectify
//       (ReLU for slope 0, leaky ReLU for a slope in (0, 1)), else v.
//
// Each C(i, j) is one fused multiply-add chain from start over k in order, so a row's
// result does not depend on the other rows or on how the work is split.
// best_dense_gemm() returns null when no vector kernel applies; callers then
// use Eigen's product.
#pragma once

#include "fraudcore/types.hpp"

namespace fraudcore {

/// What a layer adds to its product before storing it (null: nothing).
struct DenseEpilogue {
  const float* bias = nullptr;  // N values, or null
  bool rectify = false;
  float negative_slope = 0.0f;  // in [0, 1)
};

using DenseGemm = void (*)(Index M, Index N, Index K, const float* a, Index a_row, Index a_col,
                           const float* b, Index ldb, float* c, Index ldc, bool accumulate,
                           const DenseEpilogue* epilogue);

DenseGemm best_dense_gemm();

/// "avx512", "avx2" or "none".
const char* dense_gemm_isa();

/// The kernel for one instruction set ("avx512", "avx2"), or null when this
/// CPU or build lacks it (for tests).
DenseGemm dense_gemm_for(const char* isa);

}  // namespace fraudcore
