// AVX2+FMA GEMM register tiles: sgemm 6x16 and dgemm 6x8 (12 ymm accumulators + 2 B
// vectors + 1 broadcast = 15 of 16 registers; the BLIS Haswell shape), their half-width
// twins and their edge tiles (fewer rows or columns).
// Semantics: KernelSet::gemm_ukernel / gemm_ukernel_edge (kernel_table.h). Panels are
// 64-byte aligned.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/avx2_lanes.h"
#include "kernels/gemm/gemm_edge_impl.h"

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

// Vector traits of the edge tiles (gemm_edge_impl.h): a mask is a vector whose lanes are
// all-ones (active) or zero.
template <typename T_>
struct Vec;
template <>
struct Vec<float> {
    using T = float;
    using V = __m256;
    using Mask = __m256i;
    static constexpr int kLanes = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V load(const float* p) { return _mm256_load_ps(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static Mask mask(int n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static V maskload(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
    static void store_part(float* p, Mask, int n, V v) { store_first(p, v, n); }
    static V loadu(const float* p) { return _mm256_loadu_ps(p); }
    static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
};
template <>
struct Vec<double> {
    using T = double;
    using V = __m256d;
    using Mask = __m256i;
    static constexpr int kLanes = 4;
    static V zero() { return _mm256_setzero_pd(); }
    static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
    static V set1(double x) { return _mm256_set1_pd(x); }
    static V load(const double* p) { return _mm256_load_pd(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
    static Mask mask(int n) {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static V maskload(const double* p, Mask m) { return _mm256_maskload_pd(p, m); }
    static void store_part(double* p, Mask, int n, V v) { store_first(p, v, n); }
    static V loadu(const double* p) { return _mm256_loadu_pd(p); }
    static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
};

// NC <= 4 columns of P tiles (6-row A panels) at once, with the packed A panel as the
// vector operand: step p loads a[6p .. 6p + 7] of each panel (rows 0-5 in lanes 0-5; lanes
// 6-7 are the next step's and are dropped) and multiplies it by column j's b[p*16 + j].
// Each element is still one FMA chain over p in order, as in the edge tile, which instead
// spends one FMA per row on one tile (6 broadcasts, 6 one-vector FMAs per step, lanes past
// NC idle) and waits on the FMA latency with 6 chains: a 1-column tile cost 0.7 of a full
// 16-column one (ResNet-18 7x7x512 at batch 1, N = 49 = 3 x 16 + 1: 14 % of
// backward_data). P tiles x NC columns are the independent chains (8: 4-cycle FMA, 2 per
// cycle). rows: rows of the last of the P tiles.
template <int NC, int P>
void narrow_tiles(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                  float beta, int rows) {
    __m256 acc[P][NC];
#pragma GCC unroll 8
    for (int q = 0; q < P; ++q)
#pragma GCC unroll 4
        for (int j = 0; j < NC; ++j) acc[q][j] = _mm256_setzero_ps();
    const int64_t panel = kc * 6;
    // The last step's load would read 2 floats past the last panel: it goes masked.
    for (int64_t p = 0; p + 1 < kc; ++p) {
        __m256 bj[NC];
#pragma GCC unroll 4
        for (int j = 0; j < NC; ++j) bj[j] = _mm256_broadcast_ss(b + p * 16 + j);
#pragma GCC unroll 8
        for (int q = 0; q < P; ++q) {
            const __m256 av = _mm256_loadu_ps(a + q * panel + p * 6);
#pragma GCC unroll 4
            for (int j = 0; j < NC; ++j) acc[q][j] = _mm256_fmadd_ps(av, bj[j], acc[q][j]);
        }
    }
    const __m256i six = Vec<float>::mask(6);
#pragma GCC unroll 8
    for (int q = 0; q < P; ++q) {
        const __m256 av = _mm256_maskload_ps(a + q * panel + (kc - 1) * 6, six);
#pragma GCC unroll 4
        for (int j = 0; j < NC; ++j)
            acc[q][j] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(b + (kc - 1) * 16 + j), acc[q][j]);
    }
    // The full tile's epilogue per element: alpha * acc, then fma(beta, c, that); beta == 0
    // never reads C (as BLAS).
#pragma GCC unroll 8
    for (int q = 0; q < P; ++q)
#pragma GCC unroll 4
        for (int j = 0; j < NC; ++j) {
            alignas(32) float col[8];
            _mm256_store_ps(col, _mm256_mul_ps(_mm256_set1_ps(alpha), acc[q][j]));
            const int n = q == P - 1 ? rows : 6;
            for (int i = 0; i < n; ++i) {
                float& out = c[(q * 6 + i) * ldc + j];
                out = beta == 0.0f ? col[i] : std::fma(beta, out, col[i]);
            }
        }
}

// The last n <= P tiles of narrow_cols: narrow_tiles<NC, n>, found by recursion over n.
template <int NC, int P>
void narrow_last(int n, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                 float alpha, float beta, int rows) {
    if constexpr (P > 1) {
        if (n < P) return narrow_last<NC, P - 1>(n, kc, a, b, c, ldc, alpha, beta, rows);
    }
    narrow_tiles<NC, P>(kc, a, b, c, ldc, alpha, beta, rows);
}

template <int NC>
void narrow_cols(int64_t kc, const float* a, int64_t npanels, const float* b, float* c, int64_t ldc,
                 float alpha, float beta, int rows) {
    constexpr int P = (8 + NC - 1) / NC;
    const int64_t step = kc * 6;
    int64_t q = 0;
    for (; q + P < npanels; q += P)
        narrow_tiles<NC, P>(kc, a + q * step, b, c + q * 6 * ldc, ldc, alpha, beta, 6);
    narrow_last<NC, P>(static_cast<int>(npanels - q), kc, a + q * step, b, c + q * 6 * ldc, ldc,
                       alpha, beta, rows);
}

}  // namespace

void sgemm_ukernel_6x16_edge(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             float alpha, float beta, int rows, int cols) {
    gemm_edge::edge<Vec<float>, 6>(kc, a, 0, b, c, ldc, alpha, beta, rows, cols);
}

void sgemm_ukernel_6x16_narrow(int64_t kc, const float* a, int64_t npanels, const float* b,
                               float* c, int64_t ldc, float alpha, float beta, int rows, int cols) {
    switch (cols) {
        case 1:
            return narrow_cols<1>(kc, a, npanels, b, c, ldc, alpha, beta, rows);
        case 2:
            return narrow_cols<2>(kc, a, npanels, b, c, ldc, alpha, beta, rows);
        case 3:
            return narrow_cols<3>(kc, a, npanels, b, c, ldc, alpha, beta, rows);
        default:
            return narrow_cols<4>(kc, a, npanels, b, c, ldc, alpha, beta, rows);
    }
}

void dgemm_ukernel_6x8_edge(int64_t kc, const double* a, const double* b, double* c,
                            int64_t ldc, double alpha, double beta, int rows, int cols) {
    gemm_edge::edge<Vec<double>, 6>(kc, a, 0, b, c, ldc, alpha, beta, rows, cols);
}

void sgemm_ukernel_6x16_a_in_place(int64_t kc, const float* a, int64_t lda, bool a_rows,
                                   const float* b, float* c, int64_t ldc, float alpha, float beta,
                                   int rows, int cols) {
    gemm_edge::a_in_place<Vec<float>, 6>(kc, a, lda, a_rows, b, c, ldc, alpha, beta, rows, cols);
}

void dgemm_ukernel_6x8_a_in_place(int64_t kc, const double* a, int64_t lda, bool a_rows,
                                  const double* b, double* c, int64_t ldc, double alpha,
                                  double beta, int rows, int cols) {
    gemm_edge::a_in_place<Vec<double>, 6>(kc, a, lda, a_rows, b, c, ldc, alpha, beta, rows, cols);
}

}  // namespace avx2
}  // namespace fastconv
