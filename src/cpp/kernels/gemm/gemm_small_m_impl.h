// Small-M GEMM without packing, written once as a template and compiled per ISA:
// gemm_small_m_{ref,avx2,avx512}.cpp define FASTCONV_ISA, include this file and instantiate
// it for float and double; the loops are shaped for GCC's auto-vectoriser (-O3).
//
// For M <= kGemmSmallM (a Linear layer at batch 1-4: y = x W^T, dx = dy W) packing B costs
// as much as the whole product: B is read once either way, so the kernel streams op(B) in
// its own layout instead. Two shapes of op(B) (element (p, j) at B[p*rs + j*cs]):
//   cs == 1  rows of op(B) contiguous along N: C rows accumulate alpha·a[i][p]·B[p][:]
//            (axpy form) block by block;
//   rs == 1  columns contiguous along K (Linear forward, B = W^T): each C[i][j] is a dot
//            product of two contiguous K-vectors, four columns j and all M rows at a time.
// Semantics: KernelSet::gemm_small_m (kernel_table.h).
#pragma once

#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA (the ISA namespace, e.g. avx2) before including gemm_small_m_impl.h"
#endif

#include <algorithm>
#include <cstdint>

#include "fastconv/kernel_table.h"

namespace fastconv {
namespace FASTCONV_ISA {

namespace {

template <typename T>
inline void store(T* c, T value, T beta) {
    *c = beta == T(0) ? value : value + beta * *c;  // beta == 0: C's old NaN/Inf ignored
}

// cs == 1: C[i][j0:j1] in blocks of 4 KiB per row, accumulated in place: for each p, the
// contiguous segment B[p][block] (a stream the hardware prefetcher follows) is added to the
// M rows of C, which stay in L1. Register-blocking over p instead (64 columns at a time)
// read B as 64-float pieces 4·N bytes apart and ran at half the speed. One row of C takes
// 16 KiB blocks: B's segments are then 4 pages long, where 4 KiB ones restart the
// prefetcher every page (CifarNet fc1 b1 backward_data, 1 x 128 by 128 x 4096 on Zen 3:
// 55 -> 44 us, NumPy 45; two rows in 8 KiB blocks did not gain).
template <typename T, int M>
void small_m_rows(int64_t j0, int64_t j1, int64_t K, T alpha, const T* a, const T* B,
                  int64_t rs, T beta, T* C, int64_t ldc) {
    constexpr int64_t kBlock = (M == 1 ? 16384 : 4096) / static_cast<int64_t>(sizeof(T));
    for (int64_t j = j0; j < j1; j += kBlock) {
        const int64_t w = std::min<int64_t>(kBlock, j1 - j);
        for (int i = 0; i < M; ++i) {
            T* c = C + i * ldc + j;
            for (int64_t jj = 0; jj < w; ++jj) c[jj] = beta == T(0) ? T(0) : beta * c[jj];
        }
        // Four rows of B per pass over the C block: a quarter of the C loads and stores,
        // and four streams in flight.
        int64_t p = 0;
        for (; p + 4 <= K; p += 4) {
            const T* b0 = B + p * rs + j;
            const T* b1 = b0 + rs;
            const T* b2 = b1 + rs;
            const T* b3 = b2 + rs;
#pragma GCC unroll 4
            for (int i = 0; i < M; ++i) {
                const T* ap = a + i * K + p;
                const T a0 = alpha * ap[0], a1 = alpha * ap[1], a2 = alpha * ap[2],
                        a3 = alpha * ap[3];
                T* c = C + i * ldc + j;
#pragma omp simd
                for (int64_t jj = 0; jj < w; ++jj)
                    c[jj] += a0 * b0[jj] + a1 * b1[jj] + a2 * b2[jj] + a3 * b3[jj];
            }
        }
        for (; p < K; ++p) {
            const T* b = B + p * rs + j;
#pragma GCC unroll 4
            for (int i = 0; i < M; ++i) {
                const T ai = alpha * a[i * K + p];
                T* c = C + i * ldc + j;
#pragma omp simd
                for (int64_t jj = 0; jj < w; ++jj) c[jj] += ai * b[jj];
            }
        }
    }
}

// rs == 1: C[i][j] = dot(a_i, B[j*cs : j*cs + K]) for j in [j0, j1), four columns at a
// time and all M rows in the same pass over K: each column of B is read once, not M times,
// for the M x 4 accumulators (named scalars: GCC vectorises a simd reduction over scalars,
// not over an array).
template <typename T, int M>
void small_m_dots(int64_t j0, int64_t j1, int64_t K, T alpha, const T* a, const T* B,
                  int64_t cs, T beta, T* C, int64_t ldc) {
    static_assert(M >= 1 && M <= 4, "small_m_dots: 1 <= M <= 4");
    const T* a0 = a;
    const T* a1 = a + (M > 1 ? K : 0);  // rows >= M are never read (if constexpr below)
    const T* a2 = a + (M > 2 ? 2 * K : 0);
    const T* a3 = a + (M > 3 ? 3 * K : 0);
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4) {
        const T* b0 = B + j * cs;
        const T* b1 = b0 + cs;
        const T* b2 = b1 + cs;
        const T* b3 = b2 + cs;
        T s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
        T s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, \
                               s30, s31, s32, s33)
        for (int64_t p = 0; p < K; ++p) {
            const T x0 = b0[p], x1 = b1[p], x2 = b2[p], x3 = b3[p];
            {
                const T ai = a0[p];
                s00 += ai * x0, s01 += ai * x1, s02 += ai * x2, s03 += ai * x3;
            }
            if constexpr (M > 1) {
                const T ai = a1[p];
                s10 += ai * x0, s11 += ai * x1, s12 += ai * x2, s13 += ai * x3;
            }
            if constexpr (M > 2) {
                const T ai = a2[p];
                s20 += ai * x0, s21 += ai * x1, s22 += ai * x2, s23 += ai * x3;
            }
            if constexpr (M > 3) {
                const T ai = a3[p];
                s30 += ai * x0, s31 += ai * x1, s32 += ai * x2, s33 += ai * x3;
            }
        }
        const T sums[4][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13},
                              {s20, s21, s22, s23}, {s30, s31, s32, s33}};
        for (int i = 0; i < M; ++i)
            for (int c = 0; c < 4; ++c) store(C + i * ldc + j + c, alpha * sums[i][c], beta);
    }
    for (; j < j1; ++j) {
        const T* b = B + j * cs;
        for (int i = 0; i < M; ++i) {
            const T* ai = a + i * K;
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t p = 0; p < K; ++p) s += ai[p] * b[p];
            store(C + i * ldc + j, alpha * s, beta);
        }
    }
}

template <typename T, int M>
void small_m_fixed(int64_t j0, int64_t j1, int64_t K, T alpha, const T* a, const T* B,
                   int64_t rs, int64_t cs, T beta, T* C, int64_t ldc) {
    if (cs == 1)
        small_m_rows<T, M>(j0, j1, K, alpha, a, B, rs, beta, C, ldc);
    else
        small_m_dots<T, M>(j0, j1, K, alpha, a, B, cs, beta, C, ldc);
}

}  // namespace

template <typename T>
void gemm_small_m(int64_t M, int64_t j0, int64_t j1, int64_t K, T alpha, const T* a,
                  const T* B, int64_t rs, int64_t cs, T beta, T* C, int64_t ldc) {
    switch (M) {
        case 1:
            return small_m_fixed<T, 1>(j0, j1, K, alpha, a, B, rs, cs, beta, C, ldc);
        case 2:
            return small_m_fixed<T, 2>(j0, j1, K, alpha, a, B, rs, cs, beta, C, ldc);
        case 3:
            return small_m_fixed<T, 3>(j0, j1, K, alpha, a, B, rs, cs, beta, C, ldc);
        default:
            return small_m_fixed<T, 4>(j0, j1, K, alpha, a, B, rs, cs, beta, C, ldc);
    }
}

template void gemm_small_m<float>(int64_t, int64_t, int64_t, int64_t, float, const float*,
                                  const float*, int64_t, int64_t, float, float*, int64_t);
template void gemm_small_m<double>(int64_t, int64_t, int64_t, int64_t, double, const double*,
                                   const double*, int64_t, int64_t, double, double*, int64_t);

}  // namespace FASTCONV_ISA
}  // namespace fastconv
