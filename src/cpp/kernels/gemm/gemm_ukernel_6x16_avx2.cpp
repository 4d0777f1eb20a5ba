// AVX2+FMA GEMM register tiles: sgemm 6x16 and dgemm 6x8 (12 ymm accumulators + 2 B
// vectors + 1 broadcast = 15 of 16 registers; the BLIS Haswell shape), their half-width
// twins and their edge tiles (fewer rows or columns).
// Semantics: KernelSet::gemm_ukernel / gemm_ukernel_edge (kernel_table.h). Panels are
// 64-byte aligned.
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

namespace {

// Vector traits: the float and double instantiations of the edge tile differ only here.
// A lane mask is a vector whose lanes are all-ones (active) or zero; masked-off lanes are
// neither read nor written.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
    using V = __m256;
    static constexpr int kLanes = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V load(const float* p) { return _mm256_load_ps(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static __m256i mask(int n) {  // lanes [0, n)
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static V maskload(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
    static void maskstore(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
};
template <>
struct Vec<double> {
    using V = __m256d;
    static constexpr int kLanes = 4;
    static V zero() { return _mm256_setzero_pd(); }
    static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
    static V set1(double x) { return _mm256_set1_pd(x); }
    static V load(const double* p) { return _mm256_load_pd(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
    static __m256i mask(int n) {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static V maskload(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
    static void maskstore(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
};

// R rows by NV vectors of the 6 x (2 vectors) tile: only those rows' FMAs run, and C is
// written through lane masks (the last vector holds `tail` columns): no scratch tile, no
// element-by-element merge. As the AVX-512 edge tiles (gemm_ukernel_8x32_avx512.cpp).
template <typename T, int R, int NV>
void edge_tile(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta,
               int tail) {
    using W = Vec<T>;
    constexpr int kMR = 6, kNR = 2 * W::kLanes;
    typename W::V acc[R][NV];
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = W::zero();
    for (int64_t p = 0; p < kc; ++p, a += kMR, b += kNR) {
        typename W::V bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) bv[v] = W::load(b + v * W::kLanes);
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) {
            const typename W::V ai = W::broadcast(a + i);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) acc[i][v] = W::fmadd(ai, bv[v], acc[i][v]);
        }
    }
    const typename W::V va = W::set1(alpha), vb = W::set1(beta);
    const __m256i full = W::mask(W::kLanes), last = W::mask(tail);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            const __m256i m = v == NV - 1 ? last : full;
            T* cv = c + i * ldc + v * W::kLanes;
            const typename W::V r = W::mul(va, acc[i][v]);
            // beta == 0 never reads C (NaN or Inf there is ignored, as BLAS)
            W::maskstore(cv, m, beta == T(0) ? r : W::fmadd(vb, W::maskload(cv, m), r));
        }
}

template <typename T, int R>
void edge_rows(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta,
               int cols) {
    constexpr int kLanes = Vec<T>::kLanes;
    if (cols > kLanes)
        edge_tile<T, R, 2>(kc, a, b, c, ldc, alpha, beta, cols - kLanes);
    else
        edge_tile<T, R, 1>(kc, a, b, c, ldc, alpha, beta, cols);
}

template <typename T>
void edge(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta, int rows,
          int cols) {
    switch (rows) {
        case 1: return edge_rows<T, 1>(kc, a, b, c, ldc, alpha, beta, cols);
        case 2: return edge_rows<T, 2>(kc, a, b, c, ldc, alpha, beta, cols);
        case 3: return edge_rows<T, 3>(kc, a, b, c, ldc, alpha, beta, cols);
        case 4: return edge_rows<T, 4>(kc, a, b, c, ldc, alpha, beta, cols);
        case 5: return edge_rows<T, 5>(kc, a, b, c, ldc, alpha, beta, cols);
        default: return edge_rows<T, 6>(kc, a, b, c, ldc, alpha, beta, cols);
    }
}

}  // namespace

void sgemm_ukernel_6x16_edge(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             float alpha, float beta, int rows, int cols) {
    edge<float>(kc, a, b, c, ldc, alpha, beta, rows, cols);
}

void dgemm_ukernel_6x8_edge(int64_t kc, const double* a, const double* b, double* c,
                            int64_t ldc, double alpha, double beta, int rows, int cols) {
    edge<double>(kc, a, b, c, ldc, alpha, beta, rows, cols);
}

}  // namespace avx2
}  // namespace fastconv
