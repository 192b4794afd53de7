#include "fraudcore/dense_kernels.hpp"

#include <string>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRAUDCORE_DENSE_X86 1
#include <immintrin.h>
#endif

namespace fraudcore {

#ifdef FRAUDCORE_DENSE_X86
namespace {

// Fixed-count loops over a tile's registers are unrolled so the accumulators
// stay in registers instead of round-tripping through the stack each step.
#define FRAUDCORE_UNROLL _Pragma("GCC unroll 16")

// Register tile: R rows of C by NV vectors of columns, accumulated in
// registers over k; n_last is the number of columns in the final vector.
// Instantiated inside each instruction set's target region below.
#define FRAUDCORE_DENSE_TILE(VEC, WIDTH, ACC, ZERO, LOAD, STORE, BCAST, FMA, MUL, MAX)              \
  template <int R, int NV>                                                                         \
  inline void tile(Index K, const float* a, Index a_row, Index a_col, const float* b, Index ldb,   \
                   float* c, Index ldc, bool accumulate, const float* bias, bool rectify,          \
                   float slope, Index n_last) {                                                    \
    VEC acc[R][NV];                                                                                \
    FRAUDCORE_UNROLL for (int v = 0; v < NV; ++v) {                                                \
      const Index cols = v == NV - 1 ? n_last : WIDTH;                                             \
      const VEC start = bias ? LOAD(bias + v * WIDTH, cols) : ZERO;                                \
      FRAUDCORE_UNROLL for (int r = 0; r < R; ++r) {                                               \
        acc[r][v] = accumulate ? LOAD(c + r * ldc + v * WIDTH, cols) : start;                      \
      }                                                                                            \
    }                                                                                              \
    for (Index k = 0; k < K; ++k) {                                                                \
      VEC bv[NV];                                                                                  \
      FRAUDCORE_UNROLL for (int v = 0; v < NV; ++v) {                                              \
        bv[v] = LOAD(b + k * ldb + v * WIDTH, v == NV - 1 ? n_last : WIDTH);                       \
      }                                                                                            \
      FRAUDCORE_UNROLL for (int r = 0; r < R; ++r) {                                               \
        const VEC av = BCAST(a[r * a_row + k * a_col]);                                            \
        FRAUDCORE_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = FMA(av, bv[v], acc[r][v]);       \
      }                                                                                            \
    }                                                                                              \
    const VEC slopes = BCAST(slope);                                                               \
    FRAUDCORE_UNROLL for (int r = 0; r < R; ++r) {                                                 \
      FRAUDCORE_UNROLL for (int v = 0; v < NV; ++v) {                                              \
        const VEC out = rectify ? MAX(acc[r][v], MUL(slopes, acc[r][v])) : acc[r][v];              \
        STORE(c + r * ldc + v * WIDTH, out, v == NV - 1 ? n_last : WIDTH);                         \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  /* Rows per tile: as many as keep ACC accumulators in registers. */                              \
  template <int NV>                                                                                \
  inline void column_block(Index M, Index K, const float* a, Index a_row, Index a_col,             \
                           const float* b, Index ldb, float* c, Index ldc, bool accumulate,        \
                           const float* bias, bool rectify, float slope, Index n_last) {           \
    constexpr int R = ACC / NV > 0 ? ACC / NV : 1;                                                 \
    Index i = 0;                                                                                   \
    for (; i + R <= M; i += R) {                                                                   \
      tile<R, NV>(K, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, accumulate, bias,      \
                  rectify, slope, n_last);                                                         \
    }                                                                                              \
    for (; i < M; ++i) {                                                                           \
      tile<1, NV>(K, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, accumulate, bias,      \
                  rectify, slope, n_last);                                                         \
    }                                                                                              \
  }                                                                                                \
  void gemm(Index M, Index N, Index K, const float* a, Index a_row, Index a_col, const float* b,   \
            Index ldb, float* c, Index ldc, bool accumulate, const DenseEpilogue* epilogue) {      \
    const bool rectify = epilogue && epilogue->rectify;                                            \
    const float slope = epilogue ? epilogue->negative_slope : 0.0f;                                \
    for (Index j = 0; j < N; j += 4 * WIDTH) {                                                     \
      const Index left = N - j;                                                                    \
      const int nv = static_cast<int>(left >= 4 * WIDTH ? 4 : (left + WIDTH - 1) / WIDTH);         \
      const Index n_last = left >= 4 * WIDTH ? WIDTH : left - (nv - 1) * WIDTH;                    \
      const float* bias = epilogue && epilogue->bias ? epilogue->bias + j : nullptr;               \
      switch (nv) {                                                                                \
        case 4:                                                                                    \
          column_block<4>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, bias,         \
                          rectify, slope, n_last);                                                 \
          break;                                                                                   \
        case 3:                                                                                    \
          column_block<3>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, bias,         \
                          rectify, slope, n_last);                                                 \
          break;                                                                                   \
        case 2:                                                                                    \
          column_block<2>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, bias,         \
                          rectify, slope, n_last);                                                 \
          break;                                                                                   \
        default:                                                                                   \
          column_block<1>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, bias,         \
                          rectify, slope, n_last);                                                 \
          break;                                                                                   \
      }                                                                                            \
    }                                                                                              \
  }

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
// Masked only for a partial vector: masked stores defeat store forwarding.
inline __m512 load(const float* p, Index cols) {
  if (cols == 16) return _mm512_loadu_ps(p);
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << cols) - 1u), p);
}
inline void store(float* p, __m512 v, Index cols) {
  if (cols == 16) return _mm512_storeu_ps(p, v);
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << cols) - 1u), v);
}
FRAUDCORE_DENSE_TILE(__m512, 16, 16, _mm512_setzero_ps(), load, store, _mm512_set1_ps, _mm512_fmadd_ps,
                     _mm512_mul_ps, _mm512_max_ps)
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
inline __m256i lanes(Index cols) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 load(const float* p, Index cols) {
  if (cols == 8) return _mm256_loadu_ps(p);
  return _mm256_maskload_ps(p, lanes(cols));
}
inline void store(float* p, __m256 v, Index cols) {
  if (cols == 8) return _mm256_storeu_ps(p, v);
  _mm256_maskstore_ps(p, lanes(cols), v);
}
FRAUDCORE_DENSE_TILE(__m256, 8, 8, _mm256_setzero_ps(), load, store, _mm256_set1_ps, _mm256_fmadd_ps,
                     _mm256_mul_ps, _mm256_max_ps)
}  // namespace avx2
#pragma GCC pop_options

#undef FRAUDCORE_DENSE_TILE
#undef FRAUDCORE_UNROLL

struct Choice {
  DenseGemm gemm;
  const char* isa;
};

Choice pick() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {avx512::gemm, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {avx2::gemm, "avx2"};
  return {nullptr, "none"};
}

const Choice& choice() {
  static const Choice c = pick();
  return c;
}

}  // namespace

DenseGemm best_dense_gemm() { return choice().gemm; }
const char* dense_gemm_isa() { return choice().isa; }

DenseGemm dense_gemm_for(const char* isa) {
  const std::string name(isa);
  __builtin_cpu_init();
  if (name == "avx512" && __builtin_cpu_supports("avx512f")) return avx512::gemm;
  if (name == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2::gemm;
  return nullptr;
}

#else

DenseGemm dense_gemm_for(const char*) { return nullptr; }

DenseGemm best_dense_gemm() { return nullptr; }
const char* dense_gemm_isa() { return "none"; }

#endif

}  // namespace fraudcore
