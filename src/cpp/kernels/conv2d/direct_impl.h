// Micro-kernels of the direct convolution (conv2d_direct.cpp), written once with GCC vector
// extensions and compiled per ISA: the including .cpp defines FASTCONV_ISA and
// FASTCONV_VEC_BYTES (16 baseline SSE2, 32 AVX2, 64 AVX-512) and gets that ISA's flags.
// Tile sizes follow the register file: AVX-512 has 32 vector registers, SSE2/AVX2 16.
//
// Both kernels read "rows": pointers into zero-padded, row-padded planes, where a tap of
// the convolution is a fixed shift of the flattened spatial index (conv2d_direct.cpp), so
// every read is a contiguous vector load and no im2col matrix is built.
// Semantics: KernelSet::shifted_gemm / shifted_corr (fastconv/kernel_table.h).
// No std:: function templates here: their instantiations would be COMDAT-merged with
// baseline copies, and the linker could hand a baseline caller this file's AVX code.
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including direct_impl.h"
#endif
#ifndef FASTCONV_VEC_BYTES
#error "define FASTCONV_VEC_BYTES before including direct_impl.h"
#endif

#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_DIRECT_KERNELS

namespace {

#if FASTCONV_VEC_BYTES == 64
constexpr int kGemmMR = 8, kGemmNV = 2;  // 16 accumulators, 2 B vectors, 1 broadcast
constexpr int kCorrKB = 4, kCorrTB = 6;  // 24 accumulators, 6 x vectors, 1 dy vector
constexpr int kRowKB = 12;               // 24 accumulators, 2 x vectors, 1 broadcast
#else
constexpr int kGemmMR = 6, kGemmNV = 2;  // 12 accumulators of 16 registers
constexpr int kCorrKB = 3, kCorrTB = 4;  // 12 accumulators
constexpr int kRowKB = 6;                // 12 accumulators
#endif
constexpr int kRowNV = 2;  // x vectors per output-row tile

template <typename T>
struct Vec {
    typedef T type __attribute__((vector_size(FASTCONV_VEC_BYTES), aligned(sizeof(T)), may_alias));
    static constexpr int width = FASTCONV_VEC_BYTES / static_cast<int>(sizeof(T));
};

// s in every lane. Not V{} + s: 0 + s is not s for s = -0, so GCC keeps a scalar add
// before the broadcast (two extra FP ops per FMA pair in the tiles); s - 0 is s for every
// s, and folds to a plain broadcast.
template <typename T>
inline typename Vec<T>::type splat(T s) {
    return s - typename Vec<T>::type{};
}

template <typename T>
inline typename Vec<T>::type loadu(const T* p) {
    typename Vec<T>::type v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}
template <typename T>
inline void storeu(T* p, typename Vec<T>::type v) {
    __builtin_memcpy(p, &v, sizeof(v));
}

// Tile of kGemmMR rows x kGemmNV vectors; rows >= mr are computed (zero panel lanes) but
// not stored.
template <typename T>
inline void shifted_gemm_tile(int64_t P, const T* __restrict a, const T* const* __restrict rows,
                              int64_t i, int mr, T* __restrict c, int64_t ldc, bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[kGemmMR][kGemmNV];
#pragma GCC unroll 16
    for (int m = 0; m < kGemmMR; ++m)
#pragma GCC unroll 4
        for (int j = 0; j < kGemmNV; ++j) acc[m][j] = V{};
    for (int64_t q = 0; q < P; ++q) {
        const T* r = rows[q] + i;
        V b[kGemmNV];
#pragma GCC unroll 4
        for (int j = 0; j < kGemmNV; ++j) b[j] = loadu(r + j * W);
        const T* aq = a + q * kGemmMR;
#pragma GCC unroll 16
        for (int m = 0; m < kGemmMR; ++m) {
            const V am = splat(aq[m]);
#pragma GCC unroll 4
            for (int j = 0; j < kGemmNV; ++j) acc[m][j] += am * b[j];
        }
    }
    for (int m = 0; m < mr; ++m) {
        T* cm = c + m * ldc + i;
#pragma GCC unroll 4
        for (int j = 0; j < kGemmNV; ++j)
            storeu(cm + j * W, accumulate ? loadu(cm + j * W) + acc[m][j] : acc[m][j]);
    }
}

template <typename T, int KB, int TB>
void corr_tile(int64_t n, const T* __restrict d, int64_t ldd, const T* const* __restrict rows,
               T* __restrict out, int64_t ldo) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    const T* r[TB];
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) r[t] = rows[t];
    V acc[KB][TB];
#pragma GCC unroll 8
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 8
        for (int t = 0; t < TB; ++t) acc[k][t] = V{};
    for (int64_t i = 0; i < n; i += W) {
        V x[TB];
#pragma GCC unroll 8
        for (int t = 0; t < TB; ++t) x[t] = loadu(r[t] + i);
#pragma GCC unroll 8
        for (int k = 0; k < KB; ++k) {
            const V dk = loadu(d + k * ldd + i);
#pragma GCC unroll 8
            for (int t = 0; t < TB; ++t) acc[k][t] += dk * x[t];
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 8
        for (int t = 0; t < TB; ++t) {
            T s = T(0);
            for (int l = 0; l < W; ++l) s += acc[k][t][l];
            out[k * ldo + t] += s;
        }
}

// Remainder tiles: one instantiation per (kb, tb) up to the full tile.
template <typename T, int KB, int TB>
void corr_dispatch_tb(int tb, int64_t n, const T* d, int64_t ldd, const T* const* rows, T* out,
                      int64_t ldo) {
    if constexpr (TB >= 1) {
        if (tb == TB) return corr_tile<T, KB, TB>(n, d, ldd, rows, out, ldo);
        corr_dispatch_tb<T, KB, TB - 1>(tb, n, d, ldd, rows, out, ldo);
    }
}
template <typename T, int KB>
void corr_dispatch(int kb, int tb, int64_t n, const T* d, int64_t ldd, const T* const* rows,
                   T* out, int64_t ldo) {
    if constexpr (KB >= 1) {
        if (kb == KB) return corr_dispatch_tb<T, KB, kCorrTB>(tb, n, d, ldd, rows, out, ldo);
        corr_dispatch<T, KB - 1>(kb, tb, n, d, ldd, rows, out, ldo);
    }
}

// The first n <= width lanes of v to dst (masked on AVX-512 and AVX2: a row's last vector
// is often partial, 28 of 32 columns on LeNet-5's conv1).
template <typename T>
inline void store_part(T* dst, typename Vec<T>::type v, int64_t n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4)
        _mm512_mask_storeu_ps(dst, static_cast<__mmask16>((1u << n) - 1u), (__m512)v);
    else
        _mm512_mask_storeu_pd(dst, static_cast<__mmask8>((1u << n) - 1u), (__m512d)v);
#elif defined(__AVX2__)
    const __m256i lanes = sizeof(T) == 4 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
                                         : _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lanes);
    if constexpr (sizeof(T) == 4)
        _mm256_maskstore_ps(reinterpret_cast<float*>(dst), mask, (__m256)v);
    else
        _mm256_maskstore_pd(reinterpret_cast<double*>(dst), mask, (__m256d)v);
#else
    T tmp[Vec<T>::width];
    storeu(tmp, v);
    for (int64_t l = 0; l < n; ++l) dst[l] = tmp[l];
#endif
}

// One output-row tile of KB channels x kRowNV vectors of columns (direct_row's contract).
template <typename T, int KB>
void row_tile(int64_t nrows, int64_t KW, int64_t dil, const T* const* __restrict rows,
              const T* __restrict wp, const T* __restrict bias, int64_t n, T* __restrict y,
              int64_t ystride) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[KB][kRowNV];
#pragma GCC unroll 16
    for (int k = 0; k < KB; ++k) {
        const V b = splat(bias ? bias[k] : T(0));
#pragma GCC unroll 4
        for (int j = 0; j < kRowNV; ++j) acc[k][j] = b;
    }
    for (int64_t r = 0; r < nrows; ++r) {
        const T* row = rows[r];
        for (int64_t kw = 0; kw < KW; ++kw, wp += KB) {
            V xv[kRowNV];
#pragma GCC unroll 4
            for (int j = 0; j < kRowNV; ++j) xv[j] = loadu(row + kw * dil + j * W);
#pragma GCC unroll 16
            for (int k = 0; k < KB; ++k) {
                const V wk = splat(wp[k]);
#pragma GCC unroll 4
                for (int j = 0; j < kRowNV; ++j) acc[k][j] += wk * xv[j];
            }
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 4
        for (int j = 0; j < kRowNV; ++j) {
            T* dst = y + k * ystride + j * W;
            if (n >= (j + 1) * W)
                storeu(dst, acc[k][j]);
            else if (n > j * W)
                store_part(dst, acc[k][j], n - j * W);
        }
}

template <typename T, int KB>
void row_dispatch(int kb, int64_t nrows, int64_t KW, int64_t dil, const T* const* rows,
                  const T* wp, const T* bias, int64_t n, T* y, int64_t ystride) {
    if constexpr (KB >= 1) {
        if (kb == KB) return row_tile<T, KB>(nrows, KW, dil, rows, wp, bias, n, y, ystride);
        row_dispatch<T, KB - 1>(kb, nrows, KW, dil, rows, wp, bias, n, y, ystride);
    }
}

}  // namespace

template <typename T>
void shifted_gemm(int64_t P, const T* a, const T* const* rows, int64_t i0, int64_t n, int mr,
                  T* c, int64_t ldc, bool accumulate) {
    constexpr int64_t cols = kGemmNV * Vec<T>::width;
    for (int64_t i = i0; i < i0 + n; i += cols)
        shifted_gemm_tile(P, a, rows, i, mr, c, ldc, accumulate);
}

template <typename T>
void shifted_corr(int64_t n, const T* d, int64_t ldd, int kb, const T* const* rows, int tb,
                  T* out, int64_t ldo) {
    corr_dispatch<T, kCorrKB>(kb, tb, n, d, ldd, rows, out, ldo);
}

// out[i] = sum_t w[t] * rows[t][i]: four vectors of positions per pass, taps inner.
template <typename T>
void shifted_taps(int64_t n, const T* w, int64_t ntaps, const T* const* rows, T* out) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        V acc[4] = {};
        for (int64_t t = 0; t < ntaps; ++t) {
            const V wt = splat(w[t]);
            const T* r = rows[t] + i;
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) acc[j] += wt * loadu(r + j * W);
        }
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) storeu(out + i + j * W, acc[j]);
    }
    for (; i < n; i += W) {
        V acc = {};
        for (int64_t t = 0; t < ntaps; ++t) acc += splat(w[t]) * loadu(rows[t] + i);
        storeu(out + i, acc);
    }
}

template <typename T>
void direct_row(int64_t nrows, int64_t KW, int64_t dil, const T* const* rows, const T* wp, int kb,
                const T* bias, int64_t n, T* y, int64_t ystride) {
    row_dispatch<T, kRowKB>(kb, nrows, KW, dil, rows, wp, bias, n, y, ystride);
}

template <typename T>
DirectTiles direct_tiles() {
    return {kGemmMR, kGemmNV * Vec<T>::width, kCorrKB, kCorrTB, Vec<T>::width, kRowKB,
            kRowNV * Vec<T>::width};
}

FASTCONV_INSTANTIATE_DIRECT_KERNELS(float)
FASTCONV_INSTANTIATE_DIRECT_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
