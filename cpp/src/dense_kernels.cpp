#include "fraudcore/dense_kernels.hpp"

#include <string>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRAUDCORE_DENSE_X86 1
#include <immintrin.h>
#endif

namespace fraudcore {

#ifdef FRAUDCORE_DENSE_X86
namespace {

// Register tile: R rows of C by NV vectors of columns, accumulated in
// registers over k; n_last is the number of columns in the final vector.
// Instantiated inside each instruction set's target region below.
#define FRAUDCORE_DENSE_TILE(VEC, WIDTH, ACC, ZERO, LOAD, STORE, BCAST, FMA)                 \
  template <int R, int NV>                                                                  \
  inline void tile(Index K, const float* a, Index a_row, Index a_col, const float* b,       \
                   Index ldb, float* c, Index ldc, bool accumulate, Index n_last) {        \
    VEC acc[R][NV];                                                                         \
    for (int r = 0; r < R; ++r)                                                             \
      for (int v = 0; v < NV; ++v) {                                                        \
        const Index cols = v == NV - 1 ? n_last : WIDTH;                                    \
        acc[r][v] = accumulate ? LOAD(c + r * ldc + v * WIDTH, cols) : ZERO;                \
      }                                                                                     \
    for (Index k = 0; k < K; ++k) {                                                         \
      VEC bv[NV];                                                                           \
      for (int v = 0; v < NV; ++v) {                                                        \
        const Index cols = v == NV - 1 ? n_last : WIDTH;                                    \
        bv[v] = LOAD(b + k * ldb + v * WIDTH, cols);                                        \
      }                                                                                     \
      for (int r = 0; r < R; ++r) {                                                         \
        const VEC av = BCAST(a[r * a_row + k * a_col]);                                     \
        for (int v = 0; v < NV; ++v) acc[r][v] = FMA(av, bv[v], acc[r][v]);                 \
      }                                                                                     \
    }                                                                                       \
    for (int r = 0; r < R; ++r)                                                             \
      for (int v = 0; v < NV; ++v) {                                                        \
        const Index cols = v == NV - 1 ? n_last : WIDTH;                                    \
        STORE(c + r * ldc + v * WIDTH, acc[r][v], cols);                                    \
      }                                                                                     \
  }                                                                                         \
  /* Rows per tile: as many as keep ACC accumulators in registers. */         \
  template <int NV>                                                                         \
  inline void column_block(Index M, Index K, const float* a, Index a_row, Index a_col,      \
                           const float* b, Index ldb, float* c, Index ldc, bool accumulate, \
                           Index n_last) {                                                  \
    constexpr int R = ACC / NV > 0 ? ACC / NV : 1;                                          \
    Index i = 0;                                                                            \
    for (; i + R <= M; i += R)                                                              \
      tile<R, NV>(K, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, accumulate, n_last); \
    for (; i < M; ++i)                                                                      \
      tile<1, NV>(K, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, accumulate, n_last); \
  }                                                                                         \
  void gemm(Index M, Index N, Index K, const float* a, Index a_row, Index a_col,            \
            const float* b, Index ldb, float* c, Index ldc, bool accumulate) {              \
    for (Index j = 0; j < N; j += 4 * WIDTH) {                                              \
      const Index left = N - j;                                                             \
      const int nv = static_cast<int>(left >= 4 * WIDTH ? 4 : (left + WIDTH - 1) / WIDTH);  \
      const Index n_last = left >= 4 * WIDTH ? WIDTH : left - (nv - 1) * WIDTH;             \
      switch (nv) {                                                                         \
        case 4: column_block<4>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, n_last); break; \
        case 3: column_block<3>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, n_last); break; \
        case 2: column_block<2>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, n_last); break; \
        default: column_block<1>(M, K, a, a_row, a_col, b + j, ldb, c + j, ldc, accumulate, n_last); break; \
      }                                                                                     \
    }                                                                                       \
  }

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
inline __m512 load(const float* p, Index cols) {
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << cols) - 1u), p);
}
inline void store(float* p, __m512 v, Index cols) {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << cols) - 1u), v);
}
FRAUDCORE_DENSE_TILE(__m512, 16, 16, _mm512_setzero_ps(), load, store, _mm512_set1_ps, _mm512_fmadd_ps)
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
inline __m256i lanes(Index cols) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256 load(const float* p, Index cols) { return _mm256_maskload_ps(p, lanes(cols)); }
inline void store(float* p, __m256 v, Index cols) { _mm256_maskstore_ps(p, lanes(cols), v); }
FRAUDCORE_DENSE_TILE(__m256, 8, 8, _mm256_setzero_ps(), load, store, _mm256_set1_ps, _mm256_fmadd_ps)
}  // namespace avx2
#pragma GCC pop_options

#undef FRAUDCORE_DENSE_TILE

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
