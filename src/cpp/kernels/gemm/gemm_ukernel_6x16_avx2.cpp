// AVX2+FMA GEMM register tiles: sgemm 6x16 and dgemm 6x8 (12 ymm accumulators + 2 B
// vectors + 1 broadcast = 15 of 16 registers; the BLIS Haswell shape).
// Semantics: KernelSet::gemm_ukernel (kernel_table.h). Panels are 64-byte aligned.
#include <immintrin.h>

#include <cstdint>

namespace fastconv {
namespace avx2 {

void sgemm_ukernel_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                        float alpha, float beta) {
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 16) {
        const __m256 b0 = _mm256_load_ps(b);
        const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
        }
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            float* ci = c + i * ldc;
            _mm256_storeu_ps(
                ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), _mm256_mul_ps(va, acc[i][0])));
            _mm256_storeu_ps(
                ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), _mm256_mul_ps(va, acc[i][1])));
        }
    }
}

void dgemm_ukernel_6x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       double alpha, double beta) {
    __m256d acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 8) {
        const __m256d b0 = _mm256_load_pd(b);
        const __m256d b1 = _mm256_load_pd(b + 4);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            const __m256d ai = _mm256_broadcast_sd(a + i);
            acc[i][0] = _mm256_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_pd(ai, b1, acc[i][1]);
        }
    }
    const __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0.0) {
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            _mm256_storeu_pd(c + i * ldc, _mm256_mul_pd(va, acc[i][0]));
            _mm256_storeu_pd(c + i * ldc + 4, _mm256_mul_pd(va, acc[i][1]));
        }
    } else {
        const __m256d vb = _mm256_set1_pd(beta);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            double* ci = c + i * ldc;
            _mm256_storeu_pd(
                ci, _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci), _mm256_mul_pd(va, acc[i][0])));
            _mm256_storeu_pd(
                ci + 4, _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4), _mm256_mul_pd(va, acc[i][1])));
        }
    }
}

// Half-width tiles for N remainders of at most NR/2 columns (B row stride stays NR).
void sgemm_ukernel_6x8(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       float alpha, float beta) {
    __m256 acc[6];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 16) {
        const __m256 b0 = _mm256_load_ps(b);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i)
            acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + i), b0, acc[i]);
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
        const __m256 v = _mm256_mul_ps(va, acc[i]);
        _mm256_storeu_ps(c + i * ldc,
                         beta == 0.0f ? v : _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + i * ldc), v));
    }
}

void dgemm_ukernel_6x4(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       double alpha, double beta) {
    __m256d acc[6];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) acc[i] = _mm256_setzero_pd();
    for (int64_t p = 0; p < kc; ++p, a += 6, b += 8) {
        const __m256d b0 = _mm256_load_pd(b);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i)
            acc[i] = _mm256_fmadd_pd(_mm256_broadcast_sd(a + i), b0, acc[i]);
    }
    const __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
        const __m256d v = _mm256_mul_pd(va, acc[i]);
        _mm256_storeu_pd(c + i * ldc,
                         beta == 0.0 ? v : _mm256_fmadd_pd(vb, _mm256_loadu_pd(c + i * ldc), v));
    }
}

}  // namespace avx2
}  // namespace fastconv
