// AVX-512 GEMM register tiles: sgemm 8x32 (16 zmm accumulators, two B vectors per k,
// one broadcast A element per row) and dgemm 8x16, their half-width twins, and the edge
// tiles (fewer rows or columns). Compiled with -mavx512f/bw/dq/vl only.
// Semantics: KernelSet::gemm_ukernel / gemm_ukernel_edge (kernel_table.h). Panels are
// 64-byte aligned.
#include <immintrin.h>

#include <cstdint>

#include "kernels/gemm/gemm_edge_impl.h"

namespace fastconv {
namespace avx512 {

void sgemm_ukernel_8x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                        float alpha, float beta) {
    // The C tile is read (beta != 0) or written only after the k loop; fetching its lines
    // now hides their miss (rows ldc apart, in 8 pages, usually out of cache) behind it.
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
    }
    __m512 acc[8][2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; ++p, a += 8, b += 32) {
        // B panel row is reused by all 8 rows of A: load once, FMA 16 times.
        const __m512 b0 = _mm512_load_ps(b);
        const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            float* ci = c + i * ldc;
            _mm512_storeu_ps(
                ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, acc[i][0])));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16),
                                                      _mm512_mul_ps(va, acc[i][1])));
        }
    }
}

void dgemm_ukernel_8x16(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                        double alpha, double beta) {
    __m512d acc[8][2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    for (int64_t p = 0; p < kc; ++p, a += 8, b += 16) {
        const __m512d b0 = _mm512_load_pd(b);
        const __m512d b1 = _mm512_load_pd(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            const __m512d ai = _mm512_set1_pd(a[i]);
            acc[i][0] = _mm512_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(ai, b1, acc[i][1]);
        }
    }
    const __m512d va = _mm512_set1_pd(alpha);
    if (beta == 0.0) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, acc[i][0]));
            _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, acc[i][1]));
        }
    } else {
        const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            double* ci = c + i * ldc;
            _mm512_storeu_pd(
                ci, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci), _mm512_mul_pd(va, acc[i][0])));
            _mm512_storeu_pd(
                ci + 8, _mm512_fmadd_pd(vb, _mm512_loadu_pd(ci + 8), _mm512_mul_pd(va, acc[i][1])));
        }
    }
}

// Half-width tiles for N remainders of at most NR/2 columns: one vector per row, reading
// the first half of each packed B row (B panels stay NR wide, so the row stride is NR).
void sgemm_ukernel_8x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                        float alpha, float beta) {
    __m512 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; ++p, a += 8, b += 32) {
        const __m512 b0 = _mm512_load_ps(b);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i]);
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        const __m512 v = _mm512_mul_ps(va, acc[i]);
        _mm512_storeu_ps(c + i * ldc,
                         beta == 0.0f ? v : _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + i * ldc), v));
    }
}

void dgemm_ukernel_8x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       double alpha, double beta) {
    __m512d acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_pd();
    for (int64_t p = 0; p < kc; ++p, a += 8, b += 16) {
        const __m512d b0 = _mm512_load_pd(b);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) acc[i] = _mm512_fmadd_pd(_mm512_set1_pd(a[i]), b0, acc[i]);
    }
    const __m512d va = _mm512_set1_pd(alpha), vb = _mm512_set1_pd(beta);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        const __m512d v = _mm512_mul_pd(va, acc[i]);
        _mm512_storeu_pd(c + i * ldc,
                         beta == 0.0 ? v : _mm512_fmadd_pd(vb, _mm512_loadu_pd(c + i * ldc), v));
    }
}

namespace {

// Vector traits of the edge tiles (gemm_edge_impl.h): masks are AVX-512 mask registers.
template <typename T_>
struct Vec;
template <>
struct Vec<float> {
    using T = float;
    using V = __m512;
    using Mask = __mmask16;
    static constexpr int kLanes = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V load(const float* p) { return _mm512_load_ps(p); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static Mask mask(int n) { return static_cast<Mask>((1u << n) - 1u); }
    static V maskload(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static void store_part(float* p, Mask m, int, V v) { _mm512_mask_storeu_ps(p, m, v); }
    static V loadu(const float* p) { return _mm512_loadu_ps(p); }
    static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
};
template <>
struct Vec<double> {
    using T = double;
    using V = __m512d;
    using Mask = __mmask8;
    static constexpr int kLanes = 8;
    static V zero() { return _mm512_setzero_pd(); }
    static V broadcast(const double* p) { return _mm512_set1_pd(*p); }
    static V set1(double x) { return _mm512_set1_pd(x); }
    static V load(const double* p) { return _mm512_load_pd(p); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
    static Mask mask(int n) { return static_cast<Mask>((1u << n) - 1u); }
    static V maskload(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
    static void store_part(double* p, Mask m, int, V v) { _mm512_mask_storeu_pd(p, m, v); }
    static V loadu(const double* p) { return _mm512_loadu_pd(p); }
    static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
};

}  // namespace

void sgemm_ukernel_8x32_edge(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             float alpha, float beta, int rows, int cols) {
    gemm_edge::edge<Vec<float>, 8>(kc, a, 0, b, c, ldc, alpha, beta, rows, cols);
}

void dgemm_ukernel_8x16_edge(int64_t kc, const double* a, const double* b, double* c,
                             int64_t ldc, double alpha, double beta, int rows, int cols) {
    gemm_edge::edge<Vec<double>, 8>(kc, a, 0, b, c, ldc, alpha, beta, rows, cols);
}

void sgemm_ukernel_8x32_a_in_place(int64_t kc, const float* a, int64_t lda, bool a_rows,
                                   const float* b, float* c, int64_t ldc, float alpha, float beta,
                                   int rows, int cols) {
    gemm_edge::a_in_place<Vec<float>, 8>(kc, a, lda, a_rows, b, c, ldc, alpha, beta, rows, cols);
}

void dgemm_ukernel_8x16_a_in_place(int64_t kc, const double* a, int64_t lda, bool a_rows,
                                   const double* b, double* c, int64_t ldc, double alpha,
                                   double beta, int rows, int cols) {
    gemm_edge::a_in_place<Vec<double>, 8>(kc, a, lda, a_rows, b, c, ldc, alpha, beta, rows, cols);
}

}  // namespace avx512
}  // namespace fastconv
