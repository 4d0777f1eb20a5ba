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
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
#include "kernels/avx2_lanes.h"
#endif

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_DIRECT_KERNELS

namespace {

#if FASTCONV_VEC_BYTES == 64
constexpr int kGemmMR = 8, kGemmNV = 2;  // 16 accumulators, 2 B vectors, 1 broadcast
constexpr int kCorrKB = 4, kCorrTB = 6;  // 24 accumulators, 6 x vectors, 1 dy vector
constexpr int kCorrKB2 = 6, kCorrTB2 = 4;  // the same 24 the other way (6 output channels)
constexpr int kRowKB = 12;               // 24 accumulators, 2 x vectors, 1 broadcast
// direct_oc not offered (0): its tile would store 32 channels x 12 positions transposed
// through memory, a scalar copy as long as a fifth of the tile's multiplies (unmeasured).
constexpr int kOcMJ = 0;
#else
constexpr int kGemmMR = 6, kGemmNV = 2;  // 12 accumulators of 16 registers
constexpr int kCorrKB = 3, kCorrTB = 4;  // 12 accumulators
constexpr int kCorrKB2 = 4, kCorrTB2 = 3;
constexpr int kRowKB = 6;                // 12 accumulators
constexpr int kOcMJ = 6;                 // 12 accumulators
#endif
constexpr int kRowNV = 2;  // x vectors per output-row tile
constexpr int kOcNV = 2;   // output-channel vectors per direct_oc tile

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

// Unaligned loads and stores through the may_alias, element-aligned vector type: one
// vmovups. Not __builtin_memcpy: GCC expands a 32-byte memcpy as two 16-byte moves through
// a stack temporary under AVX2, and the 32-byte reload of it stalls on store forwarding
// (measured: the AVX2 direct kernels at 7 % of peak on a Zen 3).
template <typename T>
inline typename Vec<T>::type loadu(const T* p) {
    return *reinterpret_cast<const typename Vec<T>::type*>(p);
}
template <typename T>
inline void storeu(T* p, typename Vec<T>::type v) {
    *reinterpret_cast<typename Vec<T>::type*>(p) = v;
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

// Remainder tiles: one instantiation per (kb, tb) within either full tile's shape.
template <typename T, int KB, int TB>
void corr_dispatch_tb(int tb, int64_t n, const T* d, int64_t ldd, const T* const* rows, T* out,
                      int64_t ldo) {
    if constexpr (TB >= 1) {
        if constexpr (KB * TB <= kCorrKB * kCorrTB)
            if (tb == TB) return corr_tile<T, KB, TB>(n, d, ldd, rows, out, ldo);
        corr_dispatch_tb<T, KB, TB - 1>(tb, n, d, ldd, rows, out, ldo);
    }
}
template <typename T, int KB>
void corr_dispatch(int kb, int tb, int64_t n, const T* d, int64_t ldd, const T* const* rows,
                   T* out, int64_t ldo) {
    if constexpr (KB >= 1) {
        if (kb == KB)
            return corr_dispatch_tb<T, KB, (kCorrTB > kCorrTB2 ? kCorrTB : kCorrTB2)>(
                tb, n, d, ldd, rows, out, ldo);
        corr_dispatch<T, KB - 1>(kb, tb, n, d, ldd, rows, out, ldo);
    }
}

// The first n <= width lanes of v to dst (masked on AVX-512, pieces on AVX2: a row's last
// vector is often partial, 28 of 32 columns on LeNet-5's conv1).
template <typename T>
inline void store_part(T* dst, typename Vec<T>::type v, int64_t n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4)
        _mm512_mask_storeu_ps(dst, static_cast<__mmask16>((1u << n) - 1u), (__m512)v);
    else
        _mm512_mask_storeu_pd(dst, static_cast<__mmask8>((1u << n) - 1u), (__m512d)v);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        store_first(reinterpret_cast<float*>(dst), (__m256)v, n);
    else
        store_first(reinterpret_cast<double*>(dst), (__m256d)v, n);
#else
    T tmp[Vec<T>::width];
    storeu(tmp, v);
    for (int64_t l = 0; l < n; ++l) dst[l] = tmp[l];
#endif
}

// One output-row tile of KB channels x kRowNV vectors of columns (direct_row's contract).
template <typename T, int KB>
void row_tile(int64_t ntaps, const T* __restrict base, const int64_t* __restrict offs,
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
    for (int64_t t = 0; t < ntaps; ++t, wp += KB) {
        const T* x = base + offs[t];
        V xv[kRowNV];
#pragma GCC unroll 4
        for (int j = 0; j < kRowNV; ++j) xv[j] = loadu(x + j * W);
#pragma GCC unroll 16
        for (int k = 0; k < KB; ++k) {
            const V wk = splat(wp[k]);
#pragma GCC unroll 4
            for (int j = 0; j < kRowNV; ++j) acc[k][j] += wk * xv[j];
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
void row_dispatch(int kb, int64_t ntaps, const T* base, const int64_t* offs, const T* wp,
                  const T* bias, int64_t n, T* y, int64_t ystride) {
    if constexpr (KB >= 1) {
        if (kb == KB) return row_tile<T, KB>(ntaps, base, offs, wp, bias, n, y, ystride);
        row_dispatch<T, KB - 1>(kb, ntaps, base, offs, wp, bias, n, y, ystride);
    }
}

// nj = MJ positions x kOcNV vectors of output channels (direct_oc's contract).
template <typename T, int MJ>
void oc_tile(int64_t ntaps, const T* __restrict base, const int64_t* __restrict offs,
             const T* __restrict wp, const T* __restrict bias, T* __restrict out, int64_t ldo) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[MJ][kOcNV];
#pragma GCC unroll 4
    for (int v = 0; v < kOcNV; ++v) {
        const V b = bias ? loadu(bias + v * W) : splat(T(0));
#pragma GCC unroll 16
        for (int j = 0; j < MJ; ++j) acc[j][v] = b;
    }
    for (int64_t t = 0; t < ntaps; ++t, wp += kOcNV * W) {
        const T* x = base + offs[t];
        V wv[kOcNV];
#pragma GCC unroll 4
        for (int v = 0; v < kOcNV; ++v) wv[v] = loadu(wp + v * W);
#pragma GCC unroll 16
        for (int j = 0; j < MJ; ++j) {
            const V xj = splat(x[j]);
#pragma GCC unroll 4
            for (int v = 0; v < kOcNV; ++v) acc[j][v] += xj * wv[v];
        }
    }
    // Stored transposed, each channel's MJ positions contiguous in its output plane.
#if FASTCONV_VEC_BYTES == 32 && defined(__AVX2__) && !defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
#pragma GCC unroll 4
        for (int v = 0; v < kOcNV; ++v) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) r[j] = j < MJ ? (__m256)acc[j][v] : _mm256_setzero_ps();
            transpose8x8(r);
#pragma GCC unroll 8
            for (int c = 0; c < 8; ++c) store_first(out + (v * 8 + c) * ldo, r[c], MJ);
        }
        return;
    }
#endif
    alignas(64) T tile[MJ][kOcNV * W];
#pragma GCC unroll 16
    for (int j = 0; j < MJ; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < kOcNV; ++v) storeu(&tile[j][v * W], acc[j][v]);
    for (int k = 0; k < kOcNV * W; ++k)
        for (int j = 0; j < MJ; ++j) out[k * ldo + j] = tile[j][k];
}

template <typename T, int MJ>
void oc_dispatch(int nj, int64_t ntaps, const T* base, const int64_t* offs, const T* wp,
                 const T* bias, T* out, int64_t ldo) {
    if constexpr (MJ >= 1) {
        if (nj == MJ) return oc_tile<T, MJ>(ntaps, base, offs, wp, bias, out, ldo);
        oc_dispatch<T, MJ - 1>(nj, ntaps, base, offs, wp, bias, out, ldo);
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
    corr_dispatch<T, (kCorrKB > kCorrKB2 ? kCorrKB : kCorrKB2)>(kb, tb, n, d, ldd, rows, out, ldo);
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

// acc[k*ldacc + j] += sum_i g[k*ldq + i] * base[idx[k*ldq + i]*ld + j] for KB channels k
// over one chunk of NV vectors, the KB*NV sums in registers. The loop runs over the
// positions i outside the channels: a max pool's argmaxes of all channels at position i
// lie in one window, so the few rows they select come from L2 once and then from L1 for
// the other channels (CifarNet conv1 b64, 128 KB of col^T per image, 1 thread, Zen 4: the
// whole call 0.83-0.87 ms, 1.06-1.38 channel by channel). Each sum takes its terms in
// order of i, one chain per accumulator (a full block has >= 8 chains, enough to hide the
// FMA latency; a last block of fewer channels may have fewer). Returns the flat position
// k*ldq + i of an index outside [0, nrows), checked before its row is read; else -1.
template <typename T, int NV, int KB>
int64_t pooled_corr_block(int64_t nq, const T* g, const int64_t* idx, int64_t ldq, int64_t nrows,
                          const T* base, int64_t ld, T* acc, int64_t ldacc) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V a[KB][NV];
#pragma GCC unroll 24
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 24
        for (int v = 0; v < NV; ++v) a[k][v] = loadu(acc + k * ldacc + v * W);
    for (int64_t i = 0; i < nq; ++i) {
#pragma GCC unroll 24
        for (int k = 0; k < KB; ++k) {
            const int64_t row = idx[k * ldq + i];
            if (static_cast<uint64_t>(row) >= static_cast<uint64_t>(nrows)) return k * ldq + i;
            const V gi = splat(g[k * ldq + i]);
            const T* r = base + row * ld;
#pragma GCC unroll 24
            for (int v = 0; v < NV; ++v) a[k][v] += gi * loadu(r + v * W);
        }
    }
#pragma GCC unroll 24
    for (int k = 0; k < KB; ++k)
#pragma GCC unroll 24
        for (int v = 0; v < NV; ++v) storeu(acc + k * ldacc + v * W, a[k][v]);
    return -1;
}

// At most this many accumulator vectors per block: 24 of AVX-512's 32 registers, 12 of 16.
constexpr int kPooledMaxNV = FASTCONV_VEC_BYTES == 64 ? 24 : 12;
// Channels per block for NV vectors: as many as the accumulators allow, at most 8.
constexpr int pooled_corr_max_kb(int nv) {
    return kPooledMaxNV / nv < 1 ? 1 : kPooledMaxNV / nv > 8 ? 8 : kPooledMaxNV / nv;
}

// A block of kb channels (1 <= kb <= pooled_corr_max_kb(NV)), by recursion over KB.
template <typename T, int NV, int KB = 1>
int64_t pooled_corr_kb(int kb, int64_t nq, const T* g, const int64_t* idx, int64_t ldq,
                       int64_t nrows, const T* base, int64_t ld, T* acc, int64_t ldacc) {
    if constexpr (KB < pooled_corr_max_kb(NV)) {
        if (kb != KB)
            return pooled_corr_kb<T, NV, KB + 1>(kb, nq, g, idx, ldq, nrows, base, ld, acc, ldacc);
    }
    return pooled_corr_block<T, NV, KB>(nq, g, idx, ldq, nrows, base, ld, acc, ldacc);
}

// nk channels over a chunk of nv vectors (1 <= nv <= kPooledMaxNV), by recursion over NV:
// blocks of the most channels the registers take, the last one smaller.
template <typename T, int NV = 1>
int64_t pooled_corr_nv(int nv, int64_t nk, int64_t nq, const T* g, const int64_t* idx, int64_t ldq,
                       int64_t nrows, const T* base, int64_t ld, T* acc, int64_t ldacc) {
    if constexpr (NV < kPooledMaxNV) {
        if (nv != NV)
            return pooled_corr_nv<T, NV + 1>(nv, nk, nq, g, idx, ldq, nrows, base, ld, acc, ldacc);
    }
    constexpr int64_t kMaxKb = pooled_corr_max_kb(NV);
    for (int64_t k0 = 0; k0 < nk; k0 += kMaxKb) {
        const int kb = static_cast<int>(nk - k0 < kMaxKb ? nk - k0 : kMaxKb);
        const int64_t bad = pooled_corr_kb<T, NV>(kb, nq, g + k0 * ldq, idx + k0 * ldq, ldq, nrows,
                                                  base, ld, acc + k0 * ldacc, ldacc);
        if (bad >= 0) return k0 * ldq + bad;
    }
    return -1;
}

template <typename T>
int64_t pooled_corr(int64_t nk, int64_t nq, const T* g, const int64_t* idx, int64_t ldq,
                    int64_t nrows, const T* base, int64_t ld, int64_t n, T* acc, int64_t ldacc) {
    constexpr int W = Vec<T>::width;
    const int64_t nv = n / W;
    const int64_t chunks = (nv + kPooledMaxNV - 1) / kPooledMaxNV;  // equal chunks, +-1
    for (int64_t c = 0, v0 = 0; c < chunks; ++c) {
        const int64_t v1 = nv * (c + 1) / chunks;
        const int64_t bad = pooled_corr_nv<T>(static_cast<int>(v1 - v0), nk, nq, g, idx, ldq, nrows,
                                              base + v0 * W, ld, acc + v0 * W, ldacc);
        if (bad >= 0) return bad;
        v0 = v1;
    }
    return -1;
}

// At most this many vectors per kernel row in one pooled_rows_chunk: with R rows, R*NV
// accumulators (+ the sum of g) fit the register file (24 of AVX-512's 32, 12 of 16).
constexpr int pooled_rows_max_nv(int R) {
    const int budget = FASTCONV_VEC_BYTES == 64 ? 24 : 12;
    return budget / R < 1 ? 1 : budget / R > 8 ? 8 : budget / R;
}

// The same sums read straight from a padded NHWC copy of the input. There col^T's row for
// an output position is, per kernel row r < R, one contiguous segment (the window's span
// of columns x the group's channels) at roff[r] + poff[q]:
//   acc[r*ldacc + j] += sum_i g[i] * base[roff[r] + poff[idx[i]] + j]   (NV vectors of VL)
//   *dbacc += sum_i g[i]   (the bias gradient, when dbacc; a vector chain like the rest)
// The segment stays in L1 (CifarNet conv2: an 18x18x32 image, 41 KB, where col^T has
// 300 KB) and nothing is packed. S accumulator sets as in pooled_corr_chunk.
template <typename T, int R, int NV, int VL>
int64_t pooled_rows_chunk(int64_t nq, const T* g, const int64_t* idx, int64_t npos,
                          const int64_t* poff, const T* base, const int64_t* roff, int64_t ldacc,
                          T* acc, T* dbacc) {
    typedef T V __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T)), may_alias));
    constexpr int NA = R * NV;
    constexpr int S = NA <= 2 ? 4 : NA <= 5 ? 2 : 1;  // dependent FMA chains >= 4
    V a[S][NA + 1];
    const T* rb[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) rb[r] = base + roff[r];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s)
#pragma GCC unroll 25
        for (int v = 0; v <= NA; ++v) a[s][v] = V{};
    auto term = [&](int s, int64_t i) {
        const int64_t o = poff[idx[i]];
        const V gi = g[i] - V{};
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v)
                a[s][r * NV + v] += gi * *reinterpret_cast<const V*>(rb[r] + o + v * VL);
        a[s][NA] += gi;
    };
    int64_t i = 0;
    for (; i + S <= nq; i += S) {
#pragma GCC unroll 4
        for (int s = 0; s < S; ++s) {
            if (static_cast<uint64_t>(idx[i + s]) >= static_cast<uint64_t>(npos)) return i + s;
            term(s, i + s);
        }
    }
    for (; i < nq; ++i) {
        if (static_cast<uint64_t>(idx[i]) >= static_cast<uint64_t>(npos)) return i;
        term(0, i);
    }
#pragma GCC unroll 25
    for (int v = 0; v <= NA; ++v)
#pragma GCC unroll 4
        for (int s = 1; s < S; ++s) a[0][v] += a[s][v];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            V* out = reinterpret_cast<V*>(acc + r * ldacc + v * VL);
            *out = *out + a[0][r * NV + v];
        }
    if (dbacc) *dbacc += a[0][NA][0];
    return -1;
}

// nv vectors per row (1 <= nv <= min(MaxNV, pooled_rows_max_nv(R))), by recursion over NV.
template <typename T, int VL, int MaxNV, int R, int NV = 1>
int64_t pooled_rows_nv(int nv, int64_t nq, const T* g, const int64_t* idx, int64_t npos,
                       const int64_t* poff, const T* base, const int64_t* roff, int64_t ldacc,
                       T* acc, T* dbacc) {
    if constexpr (NV < MaxNV && NV < pooled_rows_max_nv(R)) {
        if (nv != NV)
            return pooled_rows_nv<T, VL, MaxNV, R, NV + 1>(nv, nq, g, idx, npos, poff, base, roff,
                                                           ldacc, acc, dbacc);
    }
    return pooled_rows_chunk<T, R, NV, VL>(nq, g, idx, npos, poff, base, roff, ldacc, acc, dbacc);
}

// nr rows (1 <= nr <= kPooledMaxRows), by recursion over R.
template <typename T, int VL, int MaxNV, int R = 1>
int64_t pooled_rows_nr(int nr, int nv, int64_t nq, const T* g, const int64_t* idx, int64_t npos,
                       const int64_t* poff, const T* base, const int64_t* roff, int64_t ldacc,
                       T* acc, T* dbacc) {
    if constexpr (R < kPooledMaxRows) {
        if (nr != R)
            return pooled_rows_nr<T, VL, MaxNV, R + 1>(nr, nv, nq, g, idx, npos, poff, base, roff,
                                                       ldacc, acc, dbacc);
    }
    return pooled_rows_nv<T, VL, MaxNV, R>(nv, nq, g, idx, npos, poff, base, roff, ldacc, acc,
                                           dbacc);
}

template <typename T>
int64_t pooled_corr_rows(int64_t nq, const T* g, const int64_t* idx, int64_t npos,
                         const int64_t* poff, const T* base, const int64_t* roff, int nr,
                         int64_t len, int64_t ldacc, T* acc) {
    constexpr int W = Vec<T>::width;
    T* dbacc = acc + nr * ldacc;
    if constexpr (W >= 4) {  // half-width vectors where the segment fits: fewer split loads
        if (len <= W / 2)
            return pooled_rows_nr<T, W / 2, 1>(nr, 1, nq, g, idx, npos, poff, base, roff, ldacc,
                                               acc, dbacc);
    }
    // Column chunks of the segments, equal +-1, each within the register budget.
    const int64_t nv = (len + W - 1) / W, max_nv = pooled_rows_max_nv(nr);
    const int64_t chunks = (nv + max_nv - 1) / max_nv;
    for (int64_t c = 0, v0 = 0; c < chunks; ++c) {
        const int64_t v1 = nv * (c + 1) / chunks;
        const int64_t bad = pooled_rows_nr<T, W, 8>(nr, static_cast<int>(v1 - v0), nq, g, idx, npos,
                                                    poff, base + v0 * W, roff, ldacc, acc + v0 * W,
                                                    c == 0 ? dbacc : nullptr);
        if (bad >= 0) return bad;
        v0 = v1;
    }
    return -1;
}

template <typename T>
void direct_row(int64_t ntaps, const T* base, const int64_t* offs, const T* wp, int kb,
                const T* bias, int64_t n, T* y, int64_t ystride) {
    row_dispatch<T, kRowKB>(kb, ntaps, base, offs, wp, bias, n, y, ystride);
}

template <typename T>
void direct_oc(int64_t ntaps, const T* base, const int64_t* offs, const T* wp, const T* bias,
               int nj, T* out, int64_t ldo) {
    oc_dispatch<T, kOcMJ>(nj, ntaps, base, offs, wp, bias, out, ldo);
}

#if (FASTCONV_VEC_BYTES == 64 && defined(__AVX512F__)) || \
    (FASTCONV_VEC_BYTES == 32 && defined(__AVX2__) && !defined(__AVX512F__))
namespace {
#if FASTCONV_VEC_BYTES == 64
// 16 float / 8 double lanes of the phase and depthwise kernels: masked loads and stores
// (masked-off lanes touch no memory), the even / odd lanes of two vectors and the
// interleave of two half vectors (two-source permutes), FMA.
// Lanes [lo, hi) of an L-lane mask M, the bounds clamped to [0, L).
template <typename M, int64_t L>
M lane_range(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo;
    hi = hi > L ? L : hi;
    return lo < hi ? static_cast<M>(((1u << hi) - 1u) & ~((1u << lo) - 1u)) : M(0);
}

template <typename T>
struct PhaseLanes;
template <>
struct PhaseLanes<float> {
    static constexpr int64_t L = 16;
    using V = __m512;
    using M = __mmask16;
    static M range(int64_t lo, int64_t hi) { return lane_range<M, L>(lo, hi); }
    static V load(M m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static V keep(M m, V v) { return _mm512_maskz_mov_ps(m, v); }  // lanes outside m zero
    static V loadu(const float* p) { return _mm512_loadu_ps(p); }
    static V loadh(const float* p) { return _mm512_castps256_ps512(_mm256_loadu_ps(p)); }
    static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
    static void store(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
    static V perm(V a, __m512i idx, V b) { return _mm512_permutex2var_ps(a, idx, b); }
    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float s) { return _mm512_set1_ps(s); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static float sum(V v) { return _mm512_reduce_add_ps(v); }
    static __m512i even() {
        return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    }
    static __m512i odd() {
        return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    }
    static __m512i interleave() {  // a[0], b[0], a[1], b[1], ..., a[7], b[7]
        return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    }
    static __m512i interleave_hi() {  // a[8], b[8], ..., a[15], b[15]
        return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    }
    static V evens(V a, V b) { return perm(a, even(), b); }  // a[0], a[2], .., b[0], b[2], ..
    static V odds(V a, V b) { return perm(a, odd(), b); }
    static V zip(V a, V b) { return perm(a, interleave(), b); }
    static void zip2(V a, V b, V* lo, V* hi) {  // all of a and b interleaved, in two vectors
        *lo = zip(a, b);
        *hi = perm(a, interleave_hi(), b);
    }
    // evens / odds with their lanes in one fixed order for both, and ordered(v), which puts
    // lanes in that order back in order, unordered(v) the other way: here the order itself
    // (one permute either way).
    static V evens_unordered(V a, V b) { return evens(a, b); }
    static V odds_unordered(V a, V b) { return odds(a, b); }
    static V ordered(V v) { return v; }
    static V unordered(V v) { return v; }
};
template <>
struct PhaseLanes<double> {
    static constexpr int64_t L = 8;
    using V = __m512d;
    using M = __mmask8;
    static M range(int64_t lo, int64_t hi) { return lane_range<M, L>(lo, hi); }
    static V load(M m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
    static V keep(M m, V v) { return _mm512_maskz_mov_pd(m, v); }
    static V loadu(const double* p) { return _mm512_loadu_pd(p); }
    static V loadh(const double* p) { return _mm512_castpd256_pd512(_mm256_loadu_pd(p)); }
    static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
    static void store(double* p, M m, V v) { _mm512_mask_storeu_pd(p, m, v); }
    static V perm(V a, __m512i idx, V b) { return _mm512_permutex2var_pd(a, idx, b); }
    static V zero() { return _mm512_setzero_pd(); }
    static V set1(double s) { return _mm512_set1_pd(s); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
    static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
    static double sum(V v) { return _mm512_reduce_add_pd(v); }
    static __m512i even() { return _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14); }
    static __m512i odd() { return _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15); }
    static __m512i interleave() { return _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11); }
    static __m512i interleave_hi() { return _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15); }
    static V evens(V a, V b) { return perm(a, even(), b); }
    static V odds(V a, V b) { return perm(a, odd(), b); }
    static V zip(V a, V b) { return perm(a, interleave(), b); }
    static void zip2(V a, V b, V* lo, V* hi) {  // all of a and b interleaved, in two vectors
        *lo = zip(a, b);
        *hi = perm(a, interleave_hi(), b);
    }
    static V evens_unordered(V a, V b) { return evens(a, b); }
    static V odds_unordered(V a, V b) { return odds(a, b); }
    static V ordered(V v) { return v; }
    static V unordered(V v) { return v; }
};
#else
}  // namespace

// 8 float / 4 double lanes of the same kernels on AVX2. A mask is a vector of all-ones /
// zero lanes (vmaskmovps loads: masked-off lanes touch no memory). AVX2's masked stores
// are microcoded on AMD (see avx2_lanes.h), and every store mask of these kernels is a
// prefix [0, n): a store writes its mask's lane count with store_first. (LaneMask is
// outside the anonymous namespace: the kernels' lambdas capture arrays of it.)
struct LaneMask {
    __m256i m;
    LaneMask() = default;
    LaneMask(int) : m(_mm256_setzero_si256()) {}  // from the literal 0: no lane
    explicit LaneMask(__m256i v) : m(v) {}
    LaneMask operator&(LaneMask o) const { return LaneMask(_mm256_and_si256(m, o.m)); }
};

namespace {

template <typename T>
struct PhaseLanes : Lanes256<T> {
    using B = Lanes256<T>;
    using V = typename B::V;
    using M = LaneMask;
    static M range(int64_t lo, int64_t hi) { return LaneMask(B::lanes(lo, hi)); }  // any bounds
    static V load(M m, const T* p) { return B::maskload(m.m, p); }
    static V keep(M m, V v) { return B::keep(m.m, v); }  // lanes outside m zero
    static V loadh(const T* p) {  // the first L/2 lanes; the others undefined
        if constexpr (std::is_same_v<T, float>)
            return _mm256_castps128_ps256(_mm_loadu_ps(p));
        else
            return _mm256_castpd128_pd256(_mm_loadu_pd(p));
    }
    static void store(T* p, M m, V v) { store_first(p, v, B::count(m.m)); }  // m: a prefix
    static V evens(V a, V b) { return ::fastconv::evens(a, b); }             // a0 a2 .. b0 b2 ..
    static V odds(V a, V b) { return ::fastconv::odds(a, b); }
    static V zip(V a, V b) { return ::fastconv::zip(a, b); }  // a0 b0 a1 b1 ..
    static void zip2(V a, V b, V* lo, V* hi) { ::fastconv::zip2(a, b, lo, hi); }
    // One shuffle each, lanes in the order of evens_in_lanes (the same for both); ordered
    // puts them in order (a permute: evens = ordered(evens_unordered)).
    static V evens_unordered(V a, V b) { return evens_in_lanes(a, b); }
    static V odds_unordered(V a, V b) { return odds_in_lanes(a, b); }
    static V ordered(V v) { return in_pair_order(v); }
    static V unordered(V v) { return in_pair_order(v); }  // its own inverse
};
#endif
}  // namespace

// One vector of each phase per 2L elements of the padded row: two masked loads (lanes
// outside [0, W) of the source read nothing and are zero) and one permute per phase. The
// scalar loop it replaces (`dst[q] = src[2q]`, baseline SSE2 shuffles, one phase at a
// time, each row read twice) was 60 % of a depthwise stride-2 layer.
template <typename T>
void phase_split_s2(const T* src, int64_t src_stride, int64_t W, int64_t pad, int64_t nrows,
                    int64_t Wq, T* even, T* odd, int64_t dst_stride) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L, kMaxVecs = 64;
    // The masks depend on the column only: computed once for all rows (per vector they
    // were as many instructions as the loads and permutes).
    const int64_t nv = (Wq + L - 1) / L;
    typename P::M ma[kMaxVecs], mb[kMaxVecs], ms[kMaxVecs];
    auto masks = [&](int64_t v, typename P::M* a, typename P::M* b, typename P::M* st) {
        const int64_t s0 = 2 * v * L - pad;  // source index of padded element 2*v*L
        *a = P::range(-s0, W - s0);
        *b = P::range(-s0 - L, W - s0 - L);
        *st = P::range(0, Wq - v * L);
    };
    for (int64_t v = 0; v < nv && v < kMaxVecs; ++v) masks(v, &ma[v], &mb[v], &ms[v]);
    // Vectors [v0, v1) lie inside the source row and the destination: plain loads and
    // stores (AVX2's masked loads and piecewise stores were most of the split's time).
    const int64_t v0 = (pad + 2 * L - 1) / (2 * L);
    const int64_t v1 = Wq / L < (W + pad) / (2 * L) ? Wq / L : (W + pad) / (2 * L);
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = src + r * src_stride - pad;
        T* e = even ? even + r * dst_stride : nullptr;
        T* o = odd ? odd + r * dst_stride : nullptr;
        for (int64_t v = 0; v < nv; ++v) {
            const int64_t q0 = v * L;
            if (v >= v0 && v < v1) {
                const typename P::V a = P::loadu(s + 2 * q0);
                const typename P::V b = P::loadu(s + 2 * q0 + L);
                if (e) P::storeu(e + q0, P::evens(a, b));
                if (o) P::storeu(o + q0, P::odds(a, b));
                continue;
            }
            typename P::M m1, m2, m;
            if (v < kMaxVecs) {
                m1 = ma[v], m2 = mb[v], m = ms[v];
            } else {
                masks(v, &m1, &m2, &m);
            }
            const typename P::V a = P::load(m1, s + 2 * q0);
            const typename P::V b = P::load(m2, s + 2 * q0 + L);
            if (e) P::store(e + q0, m, P::evens(a, b));
            if (o) P::store(o + q0, m, P::odds(a, b));
        }
    }
}

// L outputs at a time from L/2 elements of each phase, interleaved by one permute; the
// phase that supplies an odd start goes first.
template <typename T>
void phase_merge_s2(const T* even, const T* odd, int64_t src_stride, int64_t Wq, int64_t nrows,
                    int64_t pad, int64_t W, T* dst, int64_t dst_stride) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L, H = L / 2, kMaxVecs = 64;
    // Output lane 2j of vector v reads phase `first` at q = qa + j, lane 2j + 1 phase
    // `second` at q = qb + j (u0 = v*L + pad: its parity is pad's for every v); q >= Wq
    // reads nothing (0). Masks computed once for all rows.
    const bool u_even = (pad & 1) == 0;
    const T* first = u_even ? even : odd;
    const T* second = u_even ? odd : even;
    const int64_t nv = (W + L - 1) / L;
    typename P::M ma[kMaxVecs], mb[kMaxVecs], ms[kMaxVecs];
    // Vectors whose half loads lie inside both phases' rows and whose store inside dst's:
    // plain moves (AVX2's masked loads and piecewise stores were most of the merge's time).
    bool plain[kMaxVecs];
    auto masks = [&](int64_t v, typename P::M* a, typename P::M* b, typename P::M* st) {
        const int64_t u0 = v * L + pad, qa = u0 >> 1, qb = (u0 + 1) >> 1;
        if (v < kMaxVecs)
            plain[v] = first && second && qa + H <= Wq && qb + H <= Wq && v * L + L <= W;
        *a = first ? P::range(0, Wq - qa) & P::range(0, H) : 0;
        *b = second ? P::range(0, Wq - qb) & P::range(0, H) : 0;
        *st = P::range(0, W - v * L);
    };
    for (int64_t v = 0; v < nv && v < kMaxVecs; ++v) masks(v, &ma[v], &mb[v], &ms[v]);
    const int64_t qa0 = pad >> 1, qb0 = (pad + 1) >> 1;
    for (int64_t r = 0; r < nrows; ++r) {
        // A null phase's loads are all masked off: any address serves.
        const T* a_row = (first ? first : dst) + r * src_stride + qa0;
        const T* b_row = (second ? second : dst) + r * src_stride + qb0;
        T* d = dst + r * dst_stride;
        for (int64_t v = 0; v < nv; ++v) {
            if (v < kMaxVecs && plain[v]) {
                P::storeu(d + v * L, P::zip(P::loadh(a_row + v * H), P::loadh(b_row + v * H)));
                continue;
            }
            typename P::M m1, m2, m3;
            if (v < kMaxVecs) {
                m1 = ma[v], m2 = mb[v], m3 = ms[v];
            } else {
                masks(v, &m1, &m2, &m3);
            }
            const typename P::V a = P::load(m1, a_row + v * H);
            const typename P::V b = P::load(m2, b_row + v * H);
            P::store(d + v * L, m3, P::zip(a, b));
        }
    }
}

// The vectors [*va, *vb) of an output row (nvec of L lanes, out_w outputs) whose every lane
// reads, for every tap kw, a source column in [0, src_w): lane i of vector v reads column
// v*L + i + col_off + kw*col_step. The lanes a tap reaches are a range that moves with the
// vector, so these vectors are one run (empty: *va = *vb).
template <int64_t L>
void inside_run(int64_t nvec, int64_t out_w, int64_t src_w, int64_t KW, int64_t col_off,
                int64_t col_step, int64_t* va, int64_t* vb) {
    auto inside = [&](int64_t v) {
        const int64_t i0 = v * L;
        if (i0 + L > out_w) return false;
        for (int64_t kw = 0; kw < KW; ++kw) {
            const int64_t c0 = i0 + col_off + kw * col_step;  // source column of lane 0
            if (c0 < 0 || c0 + L > src_w) return false;
        }
        return true;
    };
    int64_t a = 0;
    while (a < nvec && !inside(a)) ++a;
    int64_t b = a;
    while (b < nvec && inside(b)) ++b;
    *va = a, *vb = b;
}

// Vectors of depthwise_plane held per pass, and its largest KW.
constexpr int kDwPass = 8, kDwMaxKW = 16;

// NV vectors (lanes [i0, i0 + NV*L) of every output row) of depthwise_plane, in registers
// while every tap's source row is added. The first MF and the last ML of them (all with
// MF = NV) load through m[v*kDwMaxKW + kw] (the lanes tap kw reaches) and store through
// mo[v]; every lane of every tap of the others lies inside the plane's rows, and they
// load and store plainly. scol = src + i0 + col_off.
template <typename T, int NV, int MF, int ML>
void depthwise_vectors(const T* scol, int64_t src_h, int64_t src_w, const T* w, int64_t KH,
                       int64_t KW, int64_t row_off, int64_t row_step, int64_t col_step,
                       const typename PhaseLanes<T>::M* m, const typename PhaseLanes<T>::M* mo,
                       int64_t out_h, int64_t out_w, T* out, bool accumulate, T bias) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    constexpr int64_t L = P::L;
    auto masked = [](int v) { return v < MF || v >= NV - ML; };
    const V b = P::set1(bias);
    for (int64_t o = 0; o < out_h; ++o) {
        T* orow = out + o * out_w;
        V acc[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
            acc[v] = !accumulate ? P::zero()
                     : masked(v) ? P::load(mo[v], orow + v * L)
                                 : P::loadu(orow + v * L);
        for (int64_t kh = 0; kh < KH; ++kh) {
            const int64_t r = o + row_off + kh * row_step;
            if (r < 0 || r >= src_h) continue;
            const T* srow = scol + r * src_w;
            for (int64_t kw = 0; kw < KW; ++kw) {
                const V wv = P::set1(w[kh * KW + kw]);
                const T* s = srow + kw * col_step;
#pragma GCC unroll 8
                for (int v = 0; v < NV; ++v)
                    acc[v] = P::fmadd(
                        wv,
                        masked(v) ? P::load(m[v * kDwMaxKW + kw], s + v * L) : P::loadu(s + v * L),
                        acc[v]);
            }
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            if (masked(v))
                P::store(orow + v * L, mo[v], P::add(acc[v], b));
            else
                P::storeu(orow + v * L, P::add(acc[v], b));
        }
    }
}

// depthwise_vectors for nv (1 <= nv <= kDwPass) vectors, by recursion over NV; edges:
// 0..3 = (first masked) + 2*(last masked), or 4: all masked.
template <typename T, int NV = 1>
void depthwise_vectors_nv(int nv, int edges, const T* scol, int64_t src_h, int64_t src_w,
                          const T* w, int64_t KH, int64_t KW, int64_t row_off, int64_t row_step,
                          int64_t col_step, const typename PhaseLanes<T>::M* m,
                          const typename PhaseLanes<T>::M* mo, int64_t out_h, int64_t out_w, T* out,
                          bool accumulate, T bias) {
    if constexpr (NV < kDwPass) {
        if (nv != NV)
            return depthwise_vectors_nv<T, NV + 1>(nv, edges, scol, src_h, src_w, w, KH, KW,
                                                   row_off, row_step, col_step, m, mo, out_h, out_w,
                                                   out, accumulate, bias);
    }
#define FASTCONV_DW_VECTORS(MF, ML)                                                           \
    return depthwise_vectors<T, NV, MF, ML>(scol, src_h, src_w, w, KH, KW, row_off, row_step, \
                                            col_step, m, mo, out_h, out_w, out, accumulate, bias)
    switch (edges) {
        case 0:
            FASTCONV_DW_VECTORS(0, 0);
        case 1:
            FASTCONV_DW_VECTORS(1, 0);
        case 2:
            FASTCONV_DW_VECTORS(0, 1);
        case 3:
            if constexpr (NV > 1) FASTCONV_DW_VECTORS(1, 1);
            [[fallthrough]];
        default:
            FASTCONV_DW_VECTORS(NV, 0);
    }
#undef FASTCONV_DW_VECTORS
}

// One vector column (L lanes of every output row) of a 3x3 depthwise_plane whose taps step
// one row at a time (row_step +1 or -1), streamed down the source rows in ascending order:
// step t loads source row r0 + t once per tap column and adds it to the three outputs it
// feeds: t (started: the row is its first, kh = 0, or kh = 2 at row_step -1), t - 1 (its
// middle row) and t - 2 (its last; stored). 3 loads per 9 FMAs; the three accumulators
// rotate and the 9 weights stay in registers. Measured on a Zen 3 (dw3x3 28x28 planes):
// tap by tap, every output row loaded 9 source vectors for 9 FMAs (1.5 cycles per FMA,
// line-split loads filling the load queue); three output rows per step kept a pointer per
// row, which GCC spilled (2.8 instructions per FMA); one chain of 9 FMAs per output (36
// cycles of latency) left too few chains in flight. Here each output adds three chains of
// 3, one per source row, taps kw = 0, 1, 2 in order:
//     y = ((b [+ y]) + first row's taps) + (middle row's taps) + (last row's taps)
// (a row outside the plane adds nothing): the same for every output and thread count.
// KM: bit kw set where tap column kw's lanes leave the row (mask mk[kw]); kAllMasked also
// masks the output row's loads and stores (a column past the row's end). Source rows in
// [rlo, rhi] load every tap plainly without leaving the plane, masked after the load;
// the others, where a masked lane may lie outside the plane, load through the mask.
constexpr int kAllMasked = 7;

// Source row s of depthwise_column3 into the outputs started (n: an), in the middle (m: am)
// and finishing (e: ao). Plain: the masked taps load plainly and mask after the load.
template <typename T, int KM, bool Plain>
[[gnu::always_inline]] inline void depthwise_row3(const T* s, int64_t col_step,
                                                  const typename PhaseLanes<T>::V (&w)[9],
                                                  const typename PhaseLanes<T>::M* mk, bool n,
                                                  bool m, bool e, typename PhaseLanes<T>::V& an,
                                                  typename PhaseLanes<T>::V& am,
                                                  typename PhaseLanes<T>::V& ao) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    auto load = [&](int kw) __attribute__((always_inline)) {
        const T* sk = s + kw * col_step;
        V d = !((KM >> kw) & 1) ? P::loadu(sk)
              : !Plain          ? P::load(mk[kw], sk)
                                : P::keep(mk[kw], P::loadu(sk));
        // In a register: GCC folded it into each FMA as a memory operand, a load per use.
        __asm__("" : "+v"(d));
        return d;
    };
    if constexpr (Plain) {
        // Source vector by source vector: fewer registers live (the steady steps).
        V t1, t2;  // the kh = 1 and kh = 2 sums
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) {
            const V d = load(kw);
            an = P::fmadd(w[kw], d, an);
            t1 = kw == 0 ? P::mul(w[3], d) : P::fmadd(w[3 + kw], d, t1);
            t2 = kw == 0 ? P::mul(w[6], d) : P::fmadd(w[6 + kw], d, t2);
        }
        am = P::add(am, t1);
        ao = P::add(ao, t2);
    } else {
        // The same sums, one test per output.
        const V d0 = load(0), d1 = load(1), d2 = load(2);
        if (n) an = P::fmadd(w[2], d2, P::fmadd(w[1], d1, P::fmadd(w[0], d0, an)));
        if (m) am = P::add(am, P::fmadd(w[5], d2, P::fmadd(w[4], d1, P::mul(w[3], d0))));
        if (e) ao = P::add(ao, P::fmadd(w[8], d2, P::fmadd(w[7], d1, P::mul(w[6], d0))));
    }
}

// The steps [*ta, *tb) of a 3x3 column streamed over n outputs (steps 0 .. n + 1, step t
// reading source row r0 + t and meeting outputs t, t - 1, t - 2) with three outputs in
// flight and the source row in [rlo, rhi]; none (n + 2) for a masked column.
inline void steady3_steps(bool masked, int64_t r0, int64_t rlo, int64_t rhi, int64_t n, int64_t* ta,
                          int64_t* tb) {
    *ta = rlo - r0 > 2 ? rlo - r0 : 2;
    *tb = rhi - r0 + 1 < n ? rhi - r0 + 1 : n;
    if (masked || *tb < *ta) *ta = *tb = n + 2;
}

// step(a, b, c) nsteps times, the three registers rotating (a <- c, b <- a, c <- b after
// each step), unrolled three times so that each value keeps its register.
template <typename V, typename F>
[[gnu::always_inline]] inline void rotate3_steps(int64_t nsteps, F&& step, V& a, V& b, V& c) {
    int64_t i = 0;
    for (; i + 3 <= nsteps; i += 3) {
        step(a, b, c);
        step(c, a, b);
        step(b, c, a);
    }
    for (; i < nsteps; ++i) {
        step(a, b, c);
        const V f = c;
        c = b, b = a, a = f;
    }
}

// nsteps steps of depthwise_column3 with three outputs in flight and every source row's
// taps inside the plane: no tests. s: the first step's source row, o: the output it
// finishes; an, am, ao: the accumulators started, in the middle and finishing.
template <typename T, int KM, bool Acc>
[[gnu::always_inline]] inline void depthwise_steps3(
    const T* s, int64_t ds, int64_t col_step, T* o, int64_t dout, int64_t nsteps,
    const typename PhaseLanes<T>::V (&w)[9], const typename PhaseLanes<T>::M* mk,
    typename PhaseLanes<T>::V b, typename PhaseLanes<T>::V& an, typename PhaseLanes<T>::V& am,
    typename PhaseLanes<T>::V& ao) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    auto step = [&](V& n, V& m, V& e) __attribute__((always_inline)) {
        n = Acc ? P::add(P::loadu(o + 2 * dout), b) : b;
        depthwise_row3<T, KM, true>(s, col_step, w, mk, true, true, true, n, m, e);
        P::storeu(o, e);
        s += ds, o += dout;
    };
    rotate3_steps(nsteps, step, an, am, ao);
}

template <typename T, int KM>
void depthwise_column3(const T* scol, int64_t src_h, int64_t src_w,
                       const typename PhaseLanes<T>::V* wv, int64_t row_off, int64_t row_step,
                       int64_t col_step, const typename PhaseLanes<T>::M* mkp,
                       typename PhaseLanes<T>::M mo, int64_t rlo, int64_t rhi, int64_t out_h,
                       int64_t out_w, T* out, bool accumulate, typename PhaseLanes<T>::V b) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    // Everything in locals, passed to always-inline functions: through wv (a vector type,
    // which may alias anything) or captured by reference in lambdas, the weights and
    // strides were reloaded after every store. w[0..2]: the taps of an output's first
    // source row, w[6..8]: its last. (Rows in ascending order at row_step -1 too: walked
    // downwards, the first column of a backward_data plane, which brings the plane into L1,
    // ran at half the speed of the others.)
    V w[9];
#pragma GCC unroll 3
    for (int kh = 0; kh < 3; ++kh)
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) w[kh * 3 + kw] = wv[(row_step > 0 ? kh : 2 - kh) * 3 + kw];
    typename P::M mk[3];
#pragma GCC unroll 3
    for (int kw = 0; kw < 3; ++kw) mk[kw] = mkp[kw];
    // Step t reads source row r0 + t and starts output t.
    const int64_t r0 = row_off - (row_step > 0 ? 0 : 2);
    V an = b, am = b, ao = b;  // started, middle, finishing
    int64_t ta, tb;
    steady3_steps(KM == kAllMasked, r0, rlo, rhi, out_h, &ta, &tb);
    for (int64_t t = 0; t < out_h + 2; ++t) {
        if (t == ta && ta < tb) {
            const T* s = scol + (r0 + t) * src_w;
            T* o = out + (t - 2) * out_w;
            if (accumulate)
                depthwise_steps3<T, KM, true>(s, src_w, col_step, o, out_w, tb - ta, w, mk, b, an,
                                              am, ao);
            else
                depthwise_steps3<T, KM, false>(s, src_w, col_step, o, out_w, tb - ta, w, mk, b, an,
                                               am, ao);
            t = tb - 1;
            continue;
        }
        // Step t with every test: rows outside the plane, the first and last outputs.
        const bool n = t < out_h, m = t >= 1 && t <= out_h, e = t >= 2;
        if (n) {
            const T* orow = out + t * out_w;
            an = !accumulate ? b : P::add(KM == kAllMasked ? P::load(mo, orow) : P::loadu(orow), b);
        }
        const int64_t r = r0 + t;
        if (r >= 0 && r < src_h)
            depthwise_row3<T, KM, false>(scol + r * src_w, col_step, w, mk, n, m, e, an, am, ao);
        if (e) {
            T* orow = out + (t - 2) * out_w;
            if (KM == kAllMasked)
                P::store(orow, mo, ao);
            else
                P::storeu(orow, ao);
        }
        const V f = ao;  // the finished accumulator starts the next output
        ao = am, am = an, an = f;
    }
}

// A 3x3 vector column at lanes [i0, i0 + L) of rows out_w wide, over source rows src_w
// wide (tap kw at column offset col_off + kw * col_step): *mo the lanes inside the row,
// mk[kw] the lanes tap kw reaches; returns KM (depthwise_column3: bit kw where tap kw
// leaves the row, kAllMasked for a partial column). [*rlo, *rhi]: the source rows whose
// every tap loads plainly without leaving the plane (no division: this runs per column).
template <typename T>
int column3_taps(int64_t i0, int64_t out_w, int64_t src_h, int64_t src_w, int64_t col_off,
                 int64_t col_step, typename PhaseLanes<T>::M* mo, typename PhaseLanes<T>::M* mk,
                 int64_t* rlo, int64_t* rhi) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    *mo = P::range(0, out_w - i0);
    int km = i0 + L > out_w ? kAllMasked : 0;
    for (int kw = 0; kw < 3; ++kw) {
        const int64_t c0 = i0 + col_off + kw * col_step;
        mk[kw] = *mo & P::range(-c0, src_w - c0);
        if (c0 < 0 || c0 + L > src_w) km |= 1 << kw;
    }
    const int64_t lead = i0 + col_off + (col_step < 0 ? 2 * col_step : 0);
    const int64_t tail = i0 + col_off + (col_step > 0 ? 2 * col_step : 0) + L - src_w;
    *rlo = 0, *rhi = src_h - 1;
    while (*rlo * src_w + lead < 0) ++*rlo;
    for (int64_t over = tail; over > 0; over -= src_w) --*rhi;
    return km;
}

// f(std::integral_constant<int, KM>) for the KMs of column3_taps.
template <typename F>
void with_column3_km(int km, F&& f) {
    switch (km) {
        case 0:
            return f(std::integral_constant<int, 0>{});
        case 1:
            return f(std::integral_constant<int, 1>{});
        case 4:
            return f(std::integral_constant<int, 4>{});
        default:
            return f(std::integral_constant<int, kAllMasked>{});
    }
}

// The depthwise plane straight from the source plane, up to kDwPass vectors of every output
// row at a time (depthwise_vectors). The phase-plane path copied the input into a
// zero-padded plane and the result out of a Wq-wide one: 40 % of a stride-1 depthwise
// layer in every direction. Only the vectors at a row's edges, where a tap leaves the
// plane or the row ends, take masked loads and stores (masks computed once per pass); the
// interior takes plain ones (AVX2: a mask register load per masked load, 1.7 cycles per
// FMA with every vector masked on 112x112 planes).
template <typename T>
void depthwise_plane(const T* src, int64_t src_h, int64_t src_w, const T* w, int64_t KH, int64_t KW,
                     int64_t row_off, int64_t row_step, int64_t col_off, int64_t col_step,
                     int64_t out_h, int64_t out_w, T* out, bool accumulate, T bias) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    const int64_t nvec = (out_w + L - 1) / L;
    if (KH == 3 && KW == 3 && (row_step == 1 || row_step == -1)) {
        typename P::V wv[9];
        for (int t = 0; t < 9; ++t) wv[t] = P::set1(w[t]);
        const typename P::V b = P::set1(bias);
        typename P::M mk[3];
        for (int64_t v = 0; v < nvec; ++v) {
            int64_t i0 = v * L;
            // A last vector past the row's end moves back to end with the row: its lanes
            // overlap the vector before, which writes the same values (the same sums in the
            // same order), and its store and inner taps go plain. Not when accumulating,
            // where the overlap would be added twice.
            if (!accumulate && i0 + L > out_w && out_w >= L) i0 = out_w - L;
            typename P::M mo;
            int64_t rlo, rhi;
            const int km =
                column3_taps<T>(i0, out_w, src_h, src_w, col_off, col_step, &mo, mk, &rlo, &rhi);
            with_column3_km(km, [&](auto c) {
                depthwise_column3<T, decltype(c)::value>(
                    src + i0 + col_off, src_h, src_w, wv, row_off, row_step, col_step, mk, mo, rlo,
                    rhi, out_h, out_w, out + i0, accumulate, b);
            });
        }
        return;
    }
    // With at most one edge vector on each side of the inside run, passes mask just those;
    // otherwise (narrow planes, wide kernels) every vector.
    int64_t va, vb;
    inside_run<L>(nvec, out_w, src_w, KW, col_off, col_step, &va, &vb);
    const bool edges_only = va <= 1 && nvec - vb <= 1 && vb > va;
    typename P::M m[kDwPass * kDwMaxKW], mo[kDwPass];
    for (int64_t v0 = 0; v0 < nvec; v0 += kDwPass) {
        const int nv = static_cast<int>(nvec - v0 < kDwPass ? nvec - v0 : kDwPass);
        const bool first = va > v0, last = vb < v0 + nv;  // the pass holds an edge vector
        const int edges = edges_only ? int(first) + 2 * int(last) : 4;
        for (int v = 0; v < nv; ++v) {
            if (edges != 4 && !(v == 0 && first) && !(v == nv - 1 && last)) continue;
            const int64_t i0 = (v0 + v) * L;
            mo[v] = P::range(0, out_w - i0);
            for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t c0 = i0 + col_off + kw * col_step;
                m[v * kDwMaxKW + kw] = mo[v] & P::range(-c0, src_w - c0);
            }
        }
        depthwise_vectors_nv<T>(nv, edges, src + v0 * L + col_off, src_h, src_w, w, KH, KW, row_off,
                                row_step, col_step, m, mo, out_h, out_w, out + v0 * L, accumulate,
                                bias);
    }
}

// ---- 3x3 at stride 2, read in place ----------------------------------------------------
// Lane j of a stride-2 vector column reads source column c0 + 2j + kw for tap kw (c0 =
// 2*i0 + col_off): tap 0 is the even lanes of the 2L elements at c0, tap 1 their odd lanes,
// tap 2 the odd lanes of the 2L at c0 + 1. Four loads and three shuffles per source row
// replace the phase planes (phase_split_s2 copied every input plane once more: 36 % of the
// samples of a MobileNet-V2 dw3x3/2 layer, 56x56x144, against 11 % in shifted_taps). The
// lanes come out in the shuffles' order (PhaseLanes::evens_unordered), the same for every
// tap and row, and an output vector is put in order once, at its store.
// Masked: some lane of the four loads lies outside the row [0, src_w) (mk[4] the lanes
// inside); those rows in [rlo, rhi] load plainly without leaving the plane and mask after
// the load, the others load through the masks.
template <typename T, bool Masked, bool Plain>
[[gnu::always_inline]] inline void s2_row_taps(const T* s, const typename PhaseLanes<T>::M* mk,
                                               typename PhaseLanes<T>::V (&d)[3]) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    constexpr int64_t L = P::L;
    auto load = [&](int i, const T* p) __attribute__((always_inline)) {
        return !Masked ? P::loadu(p) : !Plain ? P::load(mk[i], p) : P::keep(mk[i], P::loadu(p));
    };
    const V a = load(0, s), b = load(1, s + L);
    d[0] = P::evens_unordered(a, b);
    d[1] = P::odds_unordered(a, b);
    d[2] = P::odds_unordered(load(2, s + 1), load(3, s + 1 + L));
}

// The taps of kernel row kh on one source row's tap vectors d, in order kw = 0, 1, 2:
// chained onto acc (an output's first row) or summed apart (its middle and last rows; see
// depthwise_column3 for the order).
template <typename V, typename P>
[[gnu::always_inline]] inline V s2_chain(const V (&w)[9], int kh, const V (&d)[3], V acc) {
    return P::fmadd(w[kh * 3 + 2], d[2],
                    P::fmadd(w[kh * 3 + 1], d[1], P::fmadd(w[kh * 3], d[0], acc)));
}
template <typename V, typename P>
[[gnu::always_inline]] inline V s2_sum(const V (&w)[9], int kh, const V (&d)[3]) {
    return P::fmadd(w[kh * 3 + 2], d[2], P::fmadd(w[kh * 3 + 1], d[1], P::mul(w[kh * 3], d[0])));
}

// Outputs [*ya, *yb) of [0, n) of a stride-2 column whose last two source rows,
// row_off + 2y + 1 and + 2, lie in [rlo, rhi] (no division: this runs per column).
inline void s2_steady_outputs(int64_t row_off, int64_t rlo, int64_t rhi, int64_t n, int64_t* ya,
                              int64_t* yb) {
    *ya = 0, *yb = n;
    while (*ya < *yb && row_off + 2 * *ya + 1 < rlo) ++*ya;
    while (*yb > *ya && row_off + 2 * *yb > rhi) --*yb;
}

// One vector column of depthwise3x3_s2_plane, streamed down the source rows: output y adds
// rows row_off + 2y + {0, 1, 2}; the last of them is also the next output's first, so each
// row is loaded once (rows 2y + 2 feed two outputs) and two accumulators are live.
//     y = ((b + first row's taps) + middle row's taps) + last row's taps
// (a row outside the plane adds nothing), the order of depthwise_column3. partial: the
// column runs past the output row (stores through mo).
template <typename T, bool Masked>
void depthwise_column3_s2(const T* scol, int64_t src_h, int64_t src_w,
                          const typename PhaseLanes<T>::V* wv, int64_t row_off,
                          const typename PhaseLanes<T>::M* mkp, typename PhaseLanes<T>::M mo,
                          bool partial, int64_t rlo, int64_t rhi, int64_t out_h, int64_t out_w,
                          T* out, typename PhaseLanes<T>::V b) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    V w[9];  // in locals (see depthwise_column3)
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) w[t] = wv[t];
    typename P::M mk[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) mk[i] = mkp[i];
    auto in_plane = [&](int64_t r) { return r >= 0 && r < src_h; };
    V d[3], acc = b;
    if (in_plane(row_off)) {
        s2_row_taps<T, Masked, false>(scol + row_off * src_w, mk, d);
        acc = s2_chain<V, P>(w, 0, d, b);
    }
    int64_t ya, yb;  // outputs with both rows they load plain
    s2_steady_outputs(row_off, rlo, rhi, out_h, &ya, &yb);
    auto store = [&](T* o, V v) __attribute__((always_inline)) {
        if (partial)
            P::store(o, mo, P::ordered(v));
        else
            P::storeu(o, P::ordered(v));
    };
    for (int64_t y = 0; y < out_h; ++y) {
        if (y == ya && ya < yb) {
            const T* s = scol + (row_off + 2 * ya + 1) * src_w;
            T* o = out + ya * out_w;
            for (; y < yb; ++y, s += 2 * src_w, o += out_w) {
                s2_row_taps<T, Masked, true>(s, mk, d);
                acc = P::add(acc, s2_sum<V, P>(w, 1, d));
                s2_row_taps<T, Masked, true>(s + src_w, mk, d);
                const V next = s2_chain<V, P>(w, 0, d, b);
                store(o, P::add(acc, s2_sum<V, P>(w, 2, d)));
                acc = next;
            }
            --y;
            continue;
        }
        // With every test: rows outside the plane, the last output, a partial column.
        const int64_t r1 = row_off + 2 * y + 1, r2 = r1 + 1;
        if (in_plane(r1)) {
            s2_row_taps<T, Masked, false>(scol + r1 * src_w, mk, d);
            acc = P::add(acc, s2_sum<V, P>(w, 1, d));
        }
        V next = b;
        if (in_plane(r2)) {
            s2_row_taps<T, Masked, false>(scol + r2 * src_w, mk, d);
            acc = P::add(acc, s2_sum<V, P>(w, 2, d));
            if (y + 1 < out_h) next = s2_chain<V, P>(w, 0, d, b);
        }
        store(out + y * out_w, acc);
        acc = next;
    }
}

// A stride-2 vector column at lanes [i0, i0 + L) of rows out_w wide (depthwise_column3_s2's
// masks): *mo the lanes inside the row, mk[4] the lanes of its four loads inside the source
// row, [*rlo, *rhi] the source rows whose loads all stay inside the plane. Returns whether
// any load leaves the row.
template <typename T>
bool column3_s2_taps(int64_t i0, int64_t out_w, int64_t src_h, int64_t src_w, int64_t col_off,
                     typename PhaseLanes<T>::M* mo, typename PhaseLanes<T>::M* mk, int64_t* rlo,
                     int64_t* rhi) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    const int64_t c0 = 2 * i0 + col_off;  // the loads read columns [c0, c0 + 2L]
    *mo = P::range(0, out_w - i0);
    for (int i = 0; i < 4; ++i) {
        const int64_t c = c0 + (i & 1) * L + (i >> 1);
        mk[i] = P::range(-c, src_w - c);
    }
    *rlo = 0, *rhi = src_h - 1;
    while (*rlo * src_w + c0 < 0) ++*rlo;
    for (int64_t over = c0 + 2 * L + 1 - src_w; over > 0; over -= src_w) --*rhi;
    return c0 < 0 || c0 + 2 * L + 1 > src_w;
}

// The 3x3 depthwise plane at stride 2 straight from the source plane, one vector column
// of output lanes at a time (depthwise_column3_s2); a last column past the row's end moves
// back to end with it, as in depthwise_plane.
template <typename T>
void depthwise3x3_s2_plane(const T* src, int64_t src_h, int64_t src_w, const T* w, int64_t row_off,
                           int64_t col_off, int64_t out_h, int64_t out_w, T* out, T bias) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    typename P::V wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = P::set1(w[t]);
    const typename P::V b = P::set1(bias);
    for (int64_t i0 = 0; i0 < out_w; i0 += L) {
        const int64_t c = i0 + L > out_w && out_w >= L ? out_w - L : i0;
        typename P::M mo, mk[4];
        int64_t rlo, rhi;
        const bool masked =
            column3_s2_taps<T>(c, out_w, src_h, src_w, col_off, &mo, mk, &rlo, &rhi);
        const T* scol = src + 2 * c + col_off;
        if (masked)
            depthwise_column3_s2<T, true>(scol, src_h, src_w, wv, row_off, mk, mo, c + L > out_w,
                                          rlo, rhi, out_h, out_w, out + c, b);
        else
            depthwise_column3_s2<T, false>(scol, src_h, src_w, wv, row_off, mk, mo, c + L > out_w,
                                           rlo, rhi, out_h, out_w, out + c, b);
    }
}

// backward_data of a 3x3 plane at stride 2 (the transposed convolution), 2L columns of dx
// (from L of dy) at a time, streamed down the dy rows: dx[ih][iw] takes the taps
// 2*oh + kh = ih + pad_top, 2*ow + kw = iw + pad_left. Along a row, the dx columns of one
// parity of iw + pad_left take taps kw = 0 and 2 (dy columns ow and ow - 1), the others
// tap 1: with P0 = dy lanes [b, b + L) and P1 = [b + 1, b + 1 + L) of a dy row (b =
// floor((iw0 + pad_left - 1) / 2)), they are X = w[kh][0]*P1 + w[kh][2]*P0 and
// Y = w[kh][1]*(Odd ? P0 : P1), interleaved (Y first when iw0 + pad_left is odd). Down
// the plane, dy row oh is loaded once and feeds dx rows u = 2oh (kh = 0; finished),
// 2oh + 1 (kh = 1; whole) and 2oh + 2 (kh = 2; started), u = ih + pad_top:
//     dx = [dx +] (kh = 2 taps of dy row oh - 1) + (kh = 0 taps of dy row oh)
// per dx row u even, each sum in kw order 0, 2 (X) or alone (Y). The phase-plane path
// padded dy, ran one shifted_taps pass per phase and merged the phases into dx.
// Masked: a lane of P0 or P1 leaves the dy row (masks mk[2]); dy rows in [rlo, rhi] load
// plainly inside the plane and mask after the load. Columns past the dx row store their
// first n lanes; accumulate adds to dx (a channel multiplier > 1).
template <typename T, bool Odd, bool Masked>
void depthwise_column3_s2_transposed(const T* dcol, int64_t OH, int64_t OW,
                                     const typename PhaseLanes<T>::V* wv, int64_t pad_top,
                                     const typename PhaseLanes<T>::M* mkp, int64_t rlo, int64_t rhi,
                                     int64_t H, int64_t W, int64_t n, T* out, bool accumulate) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    constexpr int64_t L = P::L;
    V w[9];  // in locals (see depthwise_column3)
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) w[t] = wv[t];
    typename P::M mk[2];
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i) mk[i] = mkp[i];
    // dx row u = ih + pad_top from its two phases x (X), y (Y).
    auto store = [&](int64_t u, V x, V y) __attribute__((always_inline)) {
        const int64_t ih = u - pad_top;
        if (ih < 0 || ih >= H) return;
        T* o = out + ih * W;
        V lo, hi;
        if (Odd)
            P::zip2(y, x, &lo, &hi);
        else
            P::zip2(x, y, &lo, &hi);
        if (n >= 2 * L) {
            if (accumulate) lo = P::add(P::loadu(o), lo), hi = P::add(P::loadu(o + L), hi);
            P::storeu(o, lo);
            P::storeu(o + L, hi);
            return;
        }
        const typename P::M m0 = P::range(0, n), m1 = P::range(0, n - L);
        if (accumulate) lo = P::add(P::load(m0, o), lo);
        P::store(o, m0, lo);
        if (n > L) {
            if (accumulate) hi = P::add(P::load(m1, o + L), hi);
            P::store(o + L, m1, hi);
        }
    };
    auto row = [&](int64_t oh, V* p0, V* p1, auto plain) __attribute__((always_inline)) {
        const T* s = dcol + oh * OW;
        if (!Masked) {
            *p0 = P::loadu(s), *p1 = P::loadu(s + 1);
        } else if (decltype(plain)::value) {
            *p0 = P::keep(mk[0], P::loadu(s)), *p1 = P::keep(mk[1], P::loadu(s + 1));
        } else {
            *p0 = P::load(mk[0], s), *p1 = P::load(mk[1], s + 1);
        }
    };
    auto x_of = [&](int kh, V p0, V p1) __attribute__((always_inline)) {
        return P::fmadd(w[kh * 3 + 2], p0, P::mul(w[kh * 3], p1));
    };
    auto y_of = [&](int kh, V p0, V p1)
                    __attribute__((always_inline)) { return P::mul(w[kh * 3 + 1], Odd ? p0 : p1); };
    const V z = P::zero();
    V xe = z, ye = z;  // dx row u = 2oh: the kh = 2 taps of dy row oh - 1
    auto step = [&](int64_t oh, auto plain) __attribute__((always_inline)) {
        V p0, p1;
        row(oh, &p0, &p1, plain);
        store(2 * oh, P::add(xe, x_of(0, p0, p1)), P::add(ye, y_of(0, p0, p1)));
        store(2 * oh + 1, x_of(1, p0, p1), y_of(1, p0, p1));
        xe = x_of(2, p0, p1), ye = y_of(2, p0, p1);
    };
    // dy rows [rlo, rhi] load plainly (store tests its dx row either way).
    const int64_t ya = rlo < OH ? rlo : OH, yb = rhi + 1 > ya ? rhi + 1 : ya;
    int64_t oh = 0;
    for (; oh < ya; ++oh) step(oh, std::false_type{});
    for (; oh < yb; ++oh) step(oh, std::true_type{});
    for (; oh < OH; ++oh) step(oh, std::false_type{});
    store(2 * OH, xe, ye);
    // dx rows below every tap's reach: 0 (or left as they are).
    if (!accumulate)
        for (int64_t u = 2 * OH + 1; u < H + pad_top; ++u) store(u, z, z);
}

// dx of one (image, channel) plane from one dy plane at stride 2, 3x3, dilation 1
// (depthwise_column3_s2_transposed, 2L dx columns at a time); accumulate adds to dx. A last
// column past the row's end moves back to end with it unless accumulating.
template <typename T>
void depthwise3x3_s2_transposed_plane(const T* dy, int64_t OH, int64_t OW, const T* w,
                                      int64_t pad_top, int64_t pad_left, int64_t H, int64_t W,
                                      T* dx, bool accumulate) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    typename P::V wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = P::set1(w[t]);
    for (int64_t i0 = 0; i0 < W; i0 += 2 * L) {
        const int64_t c = !accumulate && i0 + 2 * L > W && W >= 2 * L ? W - 2 * L : i0;
        const int64_t v = c + pad_left, b = (v - 1) >> 1;  // floor((v - 1) / 2)
        typename P::M mk[2];
        mk[0] = P::range(-b, OW - b);
        mk[1] = P::range(-b - 1, OW - b - 1);
        const bool masked = b < 0 || b + 1 + L > OW;
        // dy rows whose loads [b, b + L] stay inside the dy plane.
        int64_t rlo = 0, rhi = OH - 1;
        while (rlo * OW + b < 0) ++rlo;
        for (int64_t over = b + L + 1 - OW; over > 0; over -= OW) --rhi;
        auto go = [&](auto odd, auto msk) {
            depthwise_column3_s2_transposed<T, decltype(odd)::value, decltype(msk)::value>(
                dy + b, OH, OW, wv, pad_top, mk, rlo, rhi, H, W, W - c, dx + c, accumulate);
        };
        const bool odd = v & 1;
        if (odd && masked)
            go(std::true_type{}, std::true_type{});
        else if (odd)
            go(std::true_type{}, std::false_type{});
        else if (masked)
            go(std::false_type{}, std::true_type{});
        else
            go(std::false_type{}, std::false_type{});
    }
}

// backward_weight of a 3x3 plane pair at stride 2, one vector column (lanes [i0, i0 + L)
// of the dy rows) at a time, streamed down the x rows like depthwise_column3_s2: x row
// row_off + t meets dy row t/2 (tap kh = 0) and t/2 - 1 (kh = 2) for even t, (t - 1)/2
// (kh = 1) for odd t. Its tap vectors are loaded once, each dy vector once and put in their
// lane order (P::unordered); one accumulator per tap, summed over a column's rows, then
// column after column. Partial: the column runs past the dy row; dy loads through md, and
// the masks mk keep only the x lanes of outputs inside the row (0 times an Inf past the
// row would be a NaN).
template <typename T, bool Masked, bool Partial>
void depthwise_corr_column3_s2(const T* xcol, int64_t H, int64_t W, const T* dcol, int64_t OH,
                               int64_t OW, int64_t row_off, const typename PhaseLanes<T>::M* mkp,
                               typename PhaseLanes<T>::M md, int64_t rlo, int64_t rhi,
                               typename PhaseLanes<T>::V (&accp)[9]) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    V acc[9];  // in locals (see depthwise_column3)
#pragma GCC unroll 9
    for (int i = 0; i < 9; ++i) acc[i] = accp[i];
    typename P::M mk[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) mk[i] = mkp[i];
    auto dy_row = [&](int64_t o) __attribute__((always_inline)) {
        const T* p = dcol + o * OW;
        return P::unordered(Partial ? P::load(md, p) : P::loadu(p));
    };
    auto add = [&](int kh, const V(&d)[3], V dv) __attribute__((always_inline)) {
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) acc[kh * 3 + kw] = P::fmadd(dv, d[kw], acc[kh * 3 + kw]);
    };
    auto in_plane = [&](int64_t r) { return r >= 0 && r < H; };
    V d[3], dcur = dy_row(0);  // dy row o
    if (in_plane(row_off)) {
        s2_row_taps<T, Masked, false>(xcol + row_off * W, mk, d);
        add(0, d, dcur);
    }
    int64_t ya, yb;  // dy rows with both x rows they meet last plain, and a next dy row
    s2_steady_outputs(row_off, rlo, rhi, OH - 1, &ya, &yb);
    for (int64_t o = 0; o < OH; ++o) {
        if (o == ya && ya < yb) {
            const T* s = xcol + (row_off + 2 * ya + 1) * W;
            for (; o < yb; ++o, s += 2 * W) {
                s2_row_taps<T, Masked, true>(s, mk, d);
                add(1, d, dcur);
                s2_row_taps<T, Masked, true>(s + W, mk, d);
                add(2, d, dcur);
                dcur = dy_row(o + 1);
                add(0, d, dcur);
            }
            --o;
            continue;
        }
        // With every test: x rows outside the plane, the last dy row.
        const int64_t r1 = row_off + 2 * o + 1, r2 = r1 + 1;
        if (in_plane(r1)) {
            s2_row_taps<T, Masked, false>(xcol + r1 * W, mk, d);
            add(1, d, dcur);
        }
        const bool next = o + 1 < OH;
        if (in_plane(r2)) {
            s2_row_taps<T, Masked, false>(xcol + r2 * W, mk, d);
            add(2, d, dcur);
            if (next) add(0, d, dy_row(o + 1));
        }
        if (next) dcur = dy_row(o + 1);
    }
#pragma GCC unroll 9
    for (int i = 0; i < 9; ++i) accp[i] = acc[i];
}

template <typename T>
void depthwise3x3_s2_corr_plane(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH,
                                int64_t OW, int64_t row_off, int64_t col_off, T* dw) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    typename P::V acc[9];
    // Unrolled: GCC made the loop a rep stos (a memset of the 9 vectors), ~11 % of a
    // 14x14 plane's backward_weight.
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) acc[t] = P::zero();
    for (int64_t i0 = 0; i0 < OW; i0 += L) {
        typename P::M md, mk[4];
        int64_t rlo, rhi;
        bool masked = column3_s2_taps<T>(i0, OW, H, W, col_off, &md, mk, &rlo, &rhi);
        const T* xcol = x + 2 * i0 + col_off;
        if (i0 + L > OW) {
            // Load i reads lanes q of outputs (q + (i & 1) * L) / 2: keep those < OW - i0.
            for (int i = 0; i < 4; ++i)
                mk[i] = mk[i] & P::range(-(i & 1) * L, 2 * (OW - i0) - (i & 1) * L);
            depthwise_corr_column3_s2<T, true, true>(xcol, H, W, dy + i0, OH, OW, row_off, mk, md,
                                                     rlo, rhi, acc);
        } else if (masked)
            depthwise_corr_column3_s2<T, true, false>(xcol, H, W, dy + i0, OH, OW, row_off, mk, md,
                                                      rlo, rhi, acc);
        else
            depthwise_corr_column3_s2<T, false, false>(xcol, H, W, dy + i0, OH, OW, row_off, mk, md,
                                                       rlo, rhi, acc);
    }
    for (int t = 0; t < 9; ++t) dw[t] += P::sum(acc[t]);
}

// dw of one (x, dy) plane pair: one vector accumulator per tap over every output row and
// vector, the dy vector loaded once for all taps; one horizontal sum per tap at the end.
// Vectors in [va, vb) (inside_run) load plainly, the others through masks. (3x3 at unit
// row step: depthwise_corr_column3.)
template <typename T, int K>
void depthwise_corr_taps(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH, int64_t OW,
                         int64_t row_off, int64_t row_step, int64_t col_off, int64_t col_step,
                         T* dw) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    // Rows of up to 512 float / 256 double outputs (depthwise_in_place's limit).
    constexpr int64_t L = P::L, kMaxVecs = 2048 / (L * static_cast<int64_t>(sizeof(T)));
    const int64_t nvec = (OW + L - 1) / L;
    int64_t va, vb;
    inside_run<L>(nvec, OW, W, K, col_off, col_step, &va, &vb);
    typename P::M m[kMaxVecs][K], mo[kMaxVecs];
    for (int64_t v = 0; v < nvec; ++v) {
        const int64_t i0 = v * L;
        mo[v] = P::range(0, OW - i0);
        for (int kw = 0; kw < K; ++kw) {
            const int64_t c0 = i0 + col_off + kw * col_step;
            m[v][kw] = mo[v] & P::range(-c0, W - c0);
        }
    }
    V acc[K * K];
#pragma GCC unroll 25
    for (int t = 0; t < K * K; ++t) acc[t] = P::zero();
    for (int64_t o = 0; o < OH; ++o) {
        const T* drow = dy + o * OW;
        const T* xr[K];
        bool ok[K];
#pragma GCC unroll 5
        for (int kh = 0; kh < K; ++kh) {
            const int64_t r = o + row_off + kh * row_step;
            ok[kh] = r >= 0 && r < H;
            xr[kh] = x + (ok[kh] ? r : 0) * W + col_off;
        }
        auto taps = [&](int64_t v, auto masked) {
            const V d = masked ? P::load(mo[v], drow + v * L) : P::loadu(drow + v * L);
#pragma GCC unroll 5
            for (int kh = 0; kh < K; ++kh) {
                if (!ok[kh]) continue;
#pragma GCC unroll 5
                for (int kw = 0; kw < K; ++kw) {
                    const T* s = xr[kh] + v * L + kw * col_step;
                    acc[kh * K + kw] =
                        P::fmadd(d, masked ? P::load(m[v][kw], s) : P::loadu(s), acc[kh * K + kw]);
                }
            }
        };
        for (int64_t v = 0; v < nvec; ++v) {
            if (v >= va && v < vb)
                taps(v, std::false_type{});
            else
                taps(v, std::true_type{});
        }
    }
#pragma GCC unroll 25
    for (int t = 0; t < K * K; ++t) dw[t] += P::sum(acc[t]);
}

// backward_weight of a 3x3 plane pair at unit row step, one vector column (lanes
// [i0, i0 + L) of the dy rows) at a time, streamed down the x rows like depthwise_column3:
// step t loads x row row_off + t once per tap column and meets dy rows t (tap kh = 0), t - 1
// and t - 2, the dy vectors rotating through three registers: 4 loads per 9 FMAs (the
// three-row step of depthwise_corr_taps: 18 per 27), one accumulator per tap. Each tap
// sums over the steps of a column, then column after column (a fixed order).
// KM: bit kw set where tap column kw's x lanes leave the row (mask mk[kw], which also
// holds md, the dy lanes inside the row); kAllMasked: a partial column, every load
// masked. x rows in [rlo, rhi] and dy rows up to dhi load plainly inside their planes
// (masked after the load); the others through their masks.
template <typename T, int KM, bool Plain>
[[gnu::always_inline]] inline void depthwise_corr_row3(const T* xs, int64_t col_step,
                                                       const typename PhaseLanes<T>::M* mk, bool a,
                                                       bool b, bool c, typename PhaseLanes<T>::V da,
                                                       typename PhaseLanes<T>::V db,
                                                       typename PhaseLanes<T>::V dc,
                                                       typename PhaseLanes<T>::V (&acc)[9]) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
#pragma GCC unroll 3
    for (int kw = 0; kw < 3; ++kw) {
        const T* sk = xs + kw * col_step;
        V xv = !((KM >> kw) & 1) ? P::loadu(sk)
               : !Plain          ? P::load(mk[kw], sk)
                                 : P::keep(mk[kw], P::loadu(sk));
        __asm__("" : "+v"(xv));  // one load for its 3 FMAs
        if (a) acc[kw] = P::fmadd(da, xv, acc[kw]);
        if (b) acc[3 + kw] = P::fmadd(db, xv, acc[3 + kw]);
        if (c) acc[6 + kw] = P::fmadd(dc, xv, acc[6 + kw]);
    }
}

template <typename T, int KM>
void depthwise_corr_column3(const T* xcol, int64_t H, int64_t W, const T* dcol, int64_t OH,
                            int64_t OW, int64_t row_off, int64_t col_step,
                            const typename PhaseLanes<T>::M* mkp, typename PhaseLanes<T>::M md,
                            int64_t rlo, int64_t rhi, int64_t dhi,
                            typename PhaseLanes<T>::V (&accp)[9]) {
    using P = PhaseLanes<T>;
    using V = typename P::V;
    // In locals (see depthwise_column3).
    V acc[9];
#pragma GCC unroll 9
    for (int i = 0; i < 9; ++i) acc[i] = accp[i];
    typename P::M mk[3];
#pragma GCC unroll 3
    for (int kw = 0; kw < 3; ++kw) mk[kw] = mkp[kw];
    V da = P::zero(), db = P::zero(), dc = P::zero();  // dy rows t, t - 1, t - 2
    // Steady steps load dy row t plainly: a partial column (past the row's end, lanes
    // masked after the load) only while the load stays inside the dy plane.
    int64_t ta, tb;
    steady3_steps(false, row_off, rlo, rhi, KM == kAllMasked ? dhi + 1 : OH, &ta, &tb);
    for (int64_t t = 0; t < OH + 2; ++t) {
        if (t == ta && ta < tb) {
            const T* xs = xcol + (row_off + t) * W;
            const T* ds = dcol + t * OW;
            auto step = [&](V& n, V& m, V& e) __attribute__((always_inline)) {
                n = KM == kAllMasked ? P::keep(md, P::loadu(ds)) : P::loadu(ds);
                depthwise_corr_row3<T, KM, true>(xs, col_step, mk, true, true, true, n, m, e, acc);
                xs += W, ds += OW;
            };
            rotate3_steps(tb - ta, step, dc, da, db);
            t = tb - 1;
            continue;
        }
        // Step t with every test: x rows outside the plane, the first and last dy rows.
        const bool a = t < OH, b = t >= 1 && t <= OH, c = t >= 2;
        dc = db, db = da;
        if (a) da = KM == kAllMasked ? P::load(md, dcol + t * OW) : P::loadu(dcol + t * OW);
        const int64_t r = row_off + t;
        if (r >= 0 && r < H)
            depthwise_corr_row3<T, KM, false>(xcol + r * W, col_step, mk, a, b, c, da, db, dc, acc);
    }
#pragma GCC unroll 9
    for (int i = 0; i < 9; ++i) accp[i] = acc[i];
}

template <typename T>
void depthwise_corr_plane(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH, int64_t OW,
                          int64_t KH, int64_t KW, int64_t row_off, int64_t row_step,
                          int64_t col_off, int64_t col_step, T* dw) {
    using P = PhaseLanes<T>;
    constexpr int64_t L = P::L;
    if (KH == 3 && KW == 3 && row_step == 1) {
        typename P::V acc[9];
        // Unrolled, not a rep stos (see depthwise3x3_s2_corr_plane).
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) acc[t] = P::zero();
        for (int64_t i0 = 0; i0 < OW; i0 += L) {
            typename P::M md, mk[3];
            int64_t rlo, rhi;
            const int km = column3_taps<T>(i0, OW, H, W, col_off, col_step, &md, mk, &rlo, &rhi);
            int64_t dhi = OH - 1;  // dy rows whose loads [i0, i0 + L) stay inside dy
            for (int64_t over = i0 + L - OW; over > 0; over -= OW) --dhi;
            with_column3_km(km, [&](auto c) {
                depthwise_corr_column3<T, decltype(c)::value>(x + i0 + col_off, H, W, dy + i0, OH,
                                                              OW, row_off, col_step, mk, md, rlo,
                                                              rhi, dhi, acc);
            });
        }
        for (int t = 0; t < 9; ++t) dw[t] += P::sum(acc[t]);
    } else if (KH == 3 && KW == 3)
        depthwise_corr_taps<T, 3>(x, H, W, dy, OH, OW, row_off, row_step, col_off, col_step, dw);
#if FASTCONV_VEC_BYTES == 64
    else  // 25 accumulators: AVX-512 only (depthwise_in_place)
        depthwise_corr_taps<T, 5>(x, H, W, dy, OH, OW, row_off, row_step, col_off, col_step, dw);
#endif
}
FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(float)
FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(double)
#else
// Scalar loops (the baseline build); GCC vectorises them where the ISA allows.
template <typename T>
void phase_split_s2(const T* src, int64_t src_stride, int64_t W, int64_t pad, int64_t nrows,
                    int64_t Wq, T* even, T* odd, int64_t dst_stride) {
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = src + r * src_stride;
        for (int64_t ph = 0; ph < 2; ++ph) {
            T* d = ph == 0 ? even : odd;
            if (!d) continue;
            d += r * dst_stride;
            for (int64_t q = 0; q < Wq; ++q) {
                const int64_t i = 2 * q + ph - pad;
                d[q] = i >= 0 && i < W ? s[i] : T(0);
            }
        }
    }
}

template <typename T>
void phase_merge_s2(const T* even, const T* odd, int64_t src_stride, int64_t Wq, int64_t nrows,
                    int64_t pad, int64_t W, T* dst, int64_t dst_stride) {
    for (int64_t r = 0; r < nrows; ++r) {
        const T* e = even ? even + r * src_stride : nullptr;
        const T* o = odd ? odd + r * src_stride : nullptr;
        T* d = dst + r * dst_stride;
        for (int64_t iw = 0; iw < W; ++iw) {
            const int64_t u = iw + pad, q = u >> 1;
            const T* s = (u & 1) ? o : e;
            d[iw] = s && q < Wq ? s[q] : T(0);
        }
    }
}
#endif

template <typename T>
DirectTiles direct_tiles() {
    return {kGemmMR,
            kGemmNV * Vec<T>::width,
            kCorrKB,
            kCorrTB,
            Vec<T>::width,
            kRowKB,
            kRowNV * Vec<T>::width,
            kCorrKB2,
            kCorrTB2,
            kOcMJ,
            kOcMJ > 0 ? kOcNV * Vec<T>::width : 0};
}

FASTCONV_INSTANTIATE_DIRECT_KERNELS(float)
FASTCONV_INSTANTIATE_DIRECT_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
