// Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms for one ISA (winograd.cpp has the
// algorithm and the layout): the including .cpp defines FASTCONV_ISA and is compiled with
// that ISA's flags.
// With AVX-512 the input and output-gradient transforms take a vector of tiles at a time
// in registers; elsewhere their loops over a run's tiles vectorise at the ISA's width.
// Semantics:
// KernelSet::winograd_input_run / winograd_output_run / winograd_grad_output_run
// (fastconv/kernel_table.h).
// No std:: function templates here: their instantiations would be COMDAT-merged with
// baseline copies, and the linker could hand a baseline caller this file's AVX code.
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including winograd_impl.h"
#endif

#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
#include "kernels/avx2_lanes.h"
#endif

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_WINOGRAD_KERNELS

namespace {
constexpr int kLanes = ::fastconv::kWinogradMaxLanes;

// The 2x2 window (y00 y01; y10 y11) max pooled as max_pool2d_forward pools it: each row's two
// columns first, then the two rows, taking v where v > max or v is NaN; with relu the
// maximum as relu_forward stores it (NaN and -0 stay). *at: the winner's offset in the
// window, row * OW + column. The loops' output pooling, F(2x2) and F(4x4).
template <typename T>
inline T pool_window(T y00, T y01, T y10, T y11, bool relu, int64_t OW, int64_t* at) {
    auto take = [](T v, T mx) { return v > mx || v != v; };
    const bool right0 = take(y01, y00), right1 = take(y11, y10);
    const T h0 = right0 ? y01 : y00, h1 = right1 ? y11 : y10;
    const bool down = take(h1, h0);
    const T v = down ? h1 : h0;
    *at = down ? OW + right1 : right0;
    return relu && v < T(0) ? T(0) : v;
}

// An address computed as an integer: masked-off lanes may lie outside the row, and forming
// such a pointer by pointer arithmetic would be undefined.
template <typename T>
inline const T* at(const T* row, int64_t i) {
    return reinterpret_cast<const T*>(reinterpret_cast<uintptr_t>(row) +
                                      static_cast<uintptr_t>(i * static_cast<int64_t>(sizeof(T))));
}

#if defined(__AVX512F__)
// AVX-512: each vector of 16 (float) or 8 (double) tiles is loaded, transformed and stored
// in registers. Tiles i of one tile row j sit at lanes j * len + i; a row of at most half
// a vector shares its vector with the next row (CifarNet's 16x16 maps: 8 tiles a row).
// Loads and stores are masked to the plane's columns and the run's lanes.

// Bits [a, b) of a vector's lanes, clamped to [0, width).
inline unsigned lane_mask(int64_t a, int64_t b, int width) {
    a = a < 0 ? 0 : a;
    b = b > width ? width : b;
    return b <= a ? 0u : ((1u << b) - 1u) & ~((1u << a) - 1u);
}

template <typename T>
struct Zmm;
template <>
struct Zmm<float> {
    using V = __m512;
    static constexpr int n = 16;
    static constexpr unsigned full = 0xFFFFu;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static V maskz_load(unsigned m, const float* p) {
        return _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), p);
    }
    static void store(float* p, unsigned m, V v) {
        _mm512_mask_storeu_ps(p, static_cast<__mmask16>(m), v);
    }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V neg(V a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
    using Index = int32_t;  // lanes of perm's index vector
    static V perm(V a, __m512i ix, V b) { return _mm512_permutex2var_ps(a, ix, b); }
    static V set1(float v) { return _mm512_set1_ps(v); }
    // Lanes where v replaces the running maximum m under max_pool2d's rule (v > m or NaN).
    static unsigned take(V v, V m) {
        return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    static V blend(unsigned k, V a, V b) {
        return _mm512_mask_blend_ps(static_cast<__mmask16>(k), a, b);
    }
    static unsigned negative(V v) { return _mm512_cmp_ps_mask(v, zero(), _CMP_LT_OQ); }
    // Lanes of the set bits of m at base[idx[lane]] (int32 element offsets), zero elsewhere.
    static V gather(unsigned m, __m512i idx, const float* base) {
        return _mm512_mask_i32gather_ps(zero(), static_cast<__mmask16>(m), idx, base, 4);
    }
    static void scatter(float* base, unsigned m, __m512i idx, V v) {
        _mm512_mask_i32scatter_ps(base, static_cast<__mmask16>(m), idx, v, 4);
    }
};
template <>
struct Zmm<double> {
    using V = __m512d;
    static constexpr int n = 8;
    static constexpr unsigned full = 0xFFu;
    static V zero() { return _mm512_setzero_pd(); }
    static V load(const double* p) { return _mm512_loadu_pd(p); }
    static V maskz_load(unsigned m, const double* p) {
        return _mm512_maskz_loadu_pd(static_cast<__mmask8>(m), p);
    }
    static void store(double* p, unsigned m, V v) {
        _mm512_mask_storeu_pd(p, static_cast<__mmask8>(m), v);
    }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
    static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
    static V neg(V a) { return _mm512_xor_pd(a, _mm512_set1_pd(-0.0)); }
    using Index = int64_t;
    static V perm(V a, __m512i ix, V b) { return _mm512_permutex2var_pd(a, ix, b); }
    static V set1(double v) { return _mm512_set1_pd(v); }
    static unsigned take(V v, V m) {
        return _mm512_cmp_pd_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
    }
    static V blend(unsigned k, V a, V b) {
        return _mm512_mask_blend_pd(static_cast<__mmask8>(k), a, b);
    }
    static unsigned negative(V v) { return _mm512_cmp_pd_mask(v, zero(), _CMP_LT_OQ); }
    static V gather(unsigned m, __m512i idx, const double* base) {
        return _mm512_mask_i32gather_pd(zero(), static_cast<__mmask8>(m),
                                        _mm512_castsi512_si256(idx), base, 8);
    }
    static void scatter(double* base, unsigned m, __m512i idx, V v) {
        _mm512_mask_i32scatter_pd(base, static_cast<__mmask8>(m), _mm512_castsi512_si256(idx), v,
                                  8);
    }
};

// Index vectors of Zmm<T>::perm (a's lanes 0 .. n - 1, b's n .. 2n - 1), lane l = f(l).
template <typename T, typename F>
inline __m512i perm_index(F f) {
    constexpr int n = Zmm<T>::n;
    alignas(64) typename Zmm<T>::Index ix[n];
    for (int l = 0; l < n; ++l) ix[l] = f(l);
    return _mm512_load_si512(ix);
}
// Lane l takes a[off + 2l] for l < split, else b[off + 2(l - split)]: even (off 0) or odd
// (off 1) columns of two loads.
template <typename T>
inline __m512i split_index(int split, int off) {
    constexpr int n = Zmm<T>::n;
    return perm_index<T>(
        [&](int l) { return l < split ? off + 2 * l : n + off + 2 * (l - split); });
}
// Lane k takes a[from + k / 2] for even k, b[from + k / 2] for odd: even and odd columns
// interleaved.
template <typename T>
inline __m512i interleave_index(int from) {
    constexpr int n = Zmm<T>::n;
    return perm_index<T>([&](int k) { return (k % 2) * n + from + k / 2; });
}

// Columns c .. c + n - 1 of a row of W (nullptr: a row outside the plane), zero outside
// [0, W). Plain loads where every lane is inside, none where no lane is.
template <typename T>
inline typename Zmm<T>::V load_cols(const T* row, int64_t c, int64_t W) {
    using Z = Zmm<T>;
    if (!row) return Z::zero();
    const unsigned m = lane_mask(-c, W - c, Z::n);
    if (m == Z::full) return Z::load(row + c);
    return m ? Z::maskz_load(m, at(row, c)) : Z::zero();
}

// How a run's tiles fill vectors: rows of at most half a vector go two to a vector (lanes
// [0, len) from row j, [len, 2 len) from row j + 1), longer rows a vector of n tiles at a
// time (its even/odd columns from two loads of n columns of the same row).
struct VecPlan {
    bool pairs;
    int split;  // lanes taken from the first load
};
template <typename T>
inline VecPlan vec_plan(int len) {
    const bool pairs = 2 * len <= Zmm<T>::n;
    return {pairs, pairs ? len : Zmm<T>::n};
}

// Calls f(ja, ca, jb, cb, lane, mask) per vector of a run: its lanes [0, split) are tiles of
// row ja from plane column ca (2 columns a tile), the rest tiles of row jb from column cb;
// the vector goes to lanes lane .. lane + n - 1 of the run, the set bits of mask.
template <typename T, typename F>
inline void for_each_vector(const VecPlan& vp, int64_t c0, int len, int rows, F&& f) {
    constexpr int n = Zmm<T>::n;
    if (vp.pairs) {
        for (int j = 0; j < rows; j += 2)
            f(j, c0, j + 1, c0, j * len, lane_mask(0, (j + 1 < rows ? 2 : 1) * len, n));
    } else {
        for (int j = 0; j < rows; ++j)
            for (int i = 0; i < len; i += n)
                f(j, c0 + 2 * i, j, c0 + 2 * i + n, j * len + i, lane_mask(0, len - i, n));
    }
}
#else
// Elsewhere the transforms run over local rows of the run's lanes, in loops the compiler
// vectorises at the ISA's width.

// even[i] = row[c0 + 2i], odd[i] = row[c0 + 2i + 1] for i < count, zero where the column
// is outside [0, W).
template <typename T>
inline void load_even_odd(const T* row, int64_t c0, int64_t W, int count, T* even, T* odd) {
    // Lanes i with column c0 + 2i (even) or c0 + 2i + 1 (odd) inside [0, W) and i < count.
    auto first = [](int64_t a) { return a <= 0 ? int64_t{0} : (a + 1) / 2; };  // ceil(a/2)
    auto clampn = [count](int64_t v) { return v < 0 ? int64_t{0} : (v > count ? count : v); };
    const int64_t elo = clampn(first(-c0)), ehi = clampn(first(W - c0));
    const int64_t olo = clampn(first(-c0 - 1)), ohi = clampn(first(W - c0 - 1));
    for (int64_t i = 0; i < elo; ++i) even[i] = T(0);
    for (int64_t i = elo; i < ehi; ++i) even[i] = row[c0 + 2 * i];  // only inside [0, W)
    for (int64_t i = ehi; i < count; ++i) even[i] = T(0);
    for (int64_t i = 0; i < olo; ++i) odd[i] = T(0);
    for (int64_t i = olo; i < ohi; ++i) odd[i] = row[c0 + 2 * i + 1];
    for (int64_t i = ohi; i < count; ++i) odd[i] = T(0);
}
#endif
}  // namespace

#if defined(__AVX2__) && !defined(__AVX512F__)
// AVX2, float: a tile row's tiles 8 to a vector, per row of the run (tile (j, i0 + q) in lane
// q; the last vector of a row partial). The arithmetic is the loops', so are the results.
namespace {
// max_pool2d's take (v > m or v is NaN) as a lane mask.
inline __m256 take_ymm(__m256 v, __m256 m) {
    return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

// pool_window on each lane: max_pool2d's 2x2 window, each row's two columns first, then the
// two rows; with relu the maximum as relu_forward stores it. *off: the winner's offset in the
// window, (down ? OW : 0) + (right ? 1 : 0), as int32 lanes.
inline __m256 pool_window_ymm(__m256 y00, __m256 y01, __m256 y10, __m256 y11, bool relu,
                              __m256i vOW, __m256i* off) {
    const __m256 right0 = take_ymm(y01, y00), right1 = take_ymm(y11, y10);
    const __m256 h0 = _mm256_blendv_ps(y00, y01, right0);
    const __m256 h1 = _mm256_blendv_ps(y10, y11, right1);
    const __m256 down = take_ymm(h1, h0);
    const __m256 right = _mm256_blendv_ps(right0, right1, down);
    *off = _mm256_add_epi32(_mm256_and_si256(_mm256_castps_si256(right), _mm256_set1_epi32(1)),
                            _mm256_and_si256(_mm256_castps_si256(down), vOW));
    const __m256 w = _mm256_blendv_ps(h0, h1, down);
    const __m256 zero = _mm256_setzero_ps();
    return relu ? _mm256_blendv_ps(w, zero, _mm256_cmp_ps(w, zero, _CMP_LT_OQ)) : w;
}

// Columns c .. c + 7 of row (null: outside the plane), zero outside [0, W); masked loads
// touch no column outside it.
inline __m256 load8(const float* row, int64_t c, int64_t W) {
    if (!row) return _mm256_setzero_ps();
    if (c >= 0 && c + 8 <= W) return _mm256_loadu_ps(row + c);
    return _mm256_maskload_ps(at(row, c), lanes32(-c, W - c));
}
// The even and odd columns of the 16 in (lo, hi): lane i gets column 2i, 2i + 1.
inline void deinterleave(__m256 lo, __m256 hi, __m256* even, __m256* odd) {
    *even = evens(lo, hi);
    *odd = odds(lo, hi);
}
inline __m256 load_n(const float* src, int64_t n) {
    return n >= 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, lanes32(0, n));
}

void input_ymm(const float* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len, int rows,
               float* out, int64_t xi_stride) {
    for (int j = 0; j < rows; ++j)
        for (int i0 = 0; i0 < len; i0 += 8) {
            const int64_t c = iw0 + 2 * i0, n = len - i0;
            __m256 e[4], od[4], e1[4], od1[4];  // columns E[i], O[i], E[i+1], O[i+1]
            for (int r = 0; r < 4; ++r) {
                const int64_t ih = ih0 + 2 * j + r;
                const float* row = ih >= 0 && ih < H ? xc + ih * W : nullptr;
                deinterleave(load8(row, c, W), load8(row, c + 8, W), &e[r], &od[r]);
                deinterleave(load8(row, c + 2, W), load8(row, c + 10, W), &e1[r], &od1[r]);
            }
            auto bt = [](__m256(&d)[4]) {  // B^T d, in place
                const __m256 t0 = _mm256_sub_ps(d[0], d[2]), t1 = _mm256_add_ps(d[1], d[2]);
                const __m256 t2 = _mm256_sub_ps(d[2], d[1]), t3 = _mm256_sub_ps(d[1], d[3]);
                d[0] = t0, d[1] = t1, d[2] = t2, d[3] = t3;
            };
            bt(e), bt(od), bt(e1), bt(od1);
            float* o = out + j * len + i0;
            for (int r = 0; r < 4; ++r) {  // (B^T d) B
                store_first(o + (r * 4 + 0) * xi_stride, _mm256_sub_ps(e[r], e1[r]), n);
                store_first(o + (r * 4 + 1) * xi_stride, _mm256_add_ps(od[r], e1[r]), n);
                store_first(o + (r * 4 + 2) * xi_stride, _mm256_sub_ps(e1[r], od[r]), n);
                store_first(o + (r * 4 + 3) * xi_stride, _mm256_sub_ps(od[r], od1[r]), n);
            }
        }
}

// dZ = A dY A^T (winograd_grad_output_run) of each tile: the 2x2 dY of tile i at columns
// 2i, 2i + 1 of two rows, split into even and odd columns.
void grad_output_ymm(const float* dyk, int64_t OH, int64_t OW, int64_t oh0, int64_t ow0, int len,
                     int rows, float* out, int64_t xi_stride) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int j = 0; j < rows; ++j)
        for (int i0 = 0; i0 < len; i0 += 8) {
            const int64_t c = ow0 + 2 * i0, n = len - i0;
            __m256 s[2][4];  // dY A^T per row: (y0, y0 + y1, y0 - y1, -y1)
            for (int r = 0; r < 2; ++r) {
                const int64_t oh = oh0 + 2 * j + r;
                const float* row = oh < OH ? dyk + oh * OW : nullptr;
                __m256 e, od;
                deinterleave(load8(row, c, OW), load8(row, c + 8, OW), &e, &od);
                s[r][0] = e;
                s[r][1] = _mm256_add_ps(e, od);
                s[r][2] = _mm256_sub_ps(e, od);
                s[r][3] = _mm256_xor_ps(od, sign);
            }
            float* o = out + j * len + i0;
            for (int q = 0; q < 4; ++q) {  // A (dY A^T): rows r0, r0 + r1, r0 - r1, -r1
                store_first(o + (0 * 4 + q) * xi_stride, s[0][q], n);
                store_first(o + (1 * 4 + q) * xi_stride, _mm256_add_ps(s[0][q], s[1][q]), n);
                store_first(o + (2 * 4 + q) * xi_stride, _mm256_sub_ps(s[0][q], s[1][q]), n);
                store_first(o + (3 * 4 + q) * xi_stride, _mm256_xor_ps(s[1][q], sign), n);
            }
        }
}

// y[r][b] = (A^T m A)[r][b] + bias of the n tiles at m.
inline void outputs_ymm(const float* m, int64_t xi_stride, int64_t n, float bias,
                        __m256 (&y)[2][2]) {
    __m256 s[8];  // A^T m: rows 0 and 1, 4 columns each
    for (int q = 0; q < 4; ++q) {
        const __m256 m0 = load_n(m + q * xi_stride, n), m1 = load_n(m + (4 + q) * xi_stride, n);
        const __m256 m2 = load_n(m + (8 + q) * xi_stride, n);
        const __m256 m3 = load_n(m + (12 + q) * xi_stride, n);
        s[q] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        s[4 + q] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
    }
    const __m256 vb = _mm256_set1_ps(bias);
    for (int r = 0; r < 2; ++r) {
        const __m256 s0 = s[r * 4], s1 = s[r * 4 + 1], s2 = s[r * 4 + 2], s3 = s[r * 4 + 3];
        y[r][0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), s2), vb);
        y[r][1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s1, s2), s3), vb);
    }
}

void output_ymm(const float* m, int64_t xi_stride, int len, int rows, float bias, float* yk,
                int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) {
    for (int j = 0; j < rows; ++j)
        for (int i0 = 0; i0 < len; i0 += 8) {
            const int64_t n = len - i0 < 8 ? len - i0 : 8;
            const int64_t ow = ow0 + 2 * i0, cols = OW - ow < 2 * n ? OW - ow : 2 * n;
            if (cols <= 0) break;
            __m256 y[2][2];
            outputs_ymm(m + j * len + i0, xi_stride, n, bias, y);
            for (int r = 0; r < 2 && oh0 + 2 * j + r < OH; ++r) {
                // Columns 2i, 2i + 1 of tile i: y[r][0], y[r][1] interleaved.
                const __m256 lo = _mm256_unpacklo_ps(y[r][0], y[r][1]);
                const __m256 hi = _mm256_unpackhi_ps(y[r][0], y[r][1]);
                float* dst = yk + (oh0 + 2 * j + r) * OW + ow;
                store_first(dst, _mm256_permute2f128_ps(lo, hi, 0x20), cols);
                if (cols > 8) store_first(dst + 8, _mm256_permute2f128_ps(lo, hi, 0x31), cols - 8);
            }
        }
}

void output_pool_ymm(const float* m, int64_t xi_stride, int len, int rows, float bias, float* yk,
                     int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW, int64_t th0,
                     int64_t tw0) {
    // Tiles whose window lies inside the PH x PW map.
    const int full = static_cast<int>(PW - tw0 < len ? (PW > tw0 ? PW - tw0 : 0) : len);
    const __m256i vOW = _mm256_set1_epi32(static_cast<int32_t>(OW));
    const __m256i two_q = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (int j = 0; j < rows && th0 + j < PH; ++j)
        for (int i0 = 0; i0 < full; i0 += 8) {
            const int64_t n = full - i0 < 8 ? full - i0 : 8;
            __m256 y[2][2];
            outputs_ymm(m + j * len + i0, xi_stride, n, bias, y);
            __m256i off;  // the winner's offset in its window
            const __m256 v = pool_window_ymm(y[0][0], y[0][1], y[1][0], y[1][1], relu, vOW, &off);
            const int64_t at0 = (th0 + j) * PW + tw0 + i0;
            store_first(yk + at0, v, n);
            // corner 2 (th0 + j) * OW + 2 (tw0 + i0), plus 2i, plus the offset in the window
            if (ik)
                store_indices(ik + at0, _mm256_add_epi32(two_q, off),
                              2 * (th0 + j) * OW + 2 * (tw0 + i0), n);
        }
}
}  // namespace
#endif

// B^T d B is separable: the column transform B^T runs down each tile's 4 rows, then the
// row transform B across its columns. Tile i's patch columns are E[i], O[i], E[i+1],
// O[i+1] (even and odd columns from iw0): each input row is split into even and odd
// columns twice, from iw0 and from iw0 + 2.
#if defined(__AVX512F__)
template <typename T>
void winograd_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                        int rows, T* out, int64_t xi_stride) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    const VecPlan vp = vec_plan<T>(len);
    const __m512i ie = split_index<T>(vp.split, 0), io = split_index<T>(vp.split, 1);
    auto row = [&](int64_t ih) { return ih >= 0 && ih < H ? xc + ih * W : nullptr; };
    // Inlined, with its loops unrolled, so that d and t stay in registers (rolled, GCC kept
    // them on the stack).
    for_each_vector<T>(
        vp, iw0, len, rows,
        [&](int ja, int64_t ca, int jb, int64_t cb, int lane, unsigned mask)
            __attribute__((always_inline)) {
                V t[4][4];  // B^T d on column sets E, O, E1, O1: t[set][row]
                V d[4][4];  // d[set][r]
#pragma GCC unroll 4
                for (int r = 0; r < 4; ++r) {
                    const T* pa = row(ih0 + 2 * ja + r);
                    const T* pb = row(ih0 + 2 * jb + r);
                    const V a = load_cols(pa, ca, W), b = load_cols(pb, cb, W);
                    const V a2 = load_cols(pa, ca + 2, W), b2 = load_cols(pb, cb + 2, W);
                    d[0][r] = Z::perm(a, ie, b);
                    d[1][r] = Z::perm(a, io, b);
                    d[2][r] = Z::perm(a2, ie, b2);
                    d[3][r] = Z::perm(a2, io, b2);
                }
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s) {
                    t[s][0] = Z::sub(d[s][0], d[s][2]);
                    t[s][1] = Z::add(d[s][1], d[s][2]);
                    t[s][2] = Z::sub(d[s][2], d[s][1]);
                    t[s][3] = Z::sub(d[s][1], d[s][3]);
                }
                T* o = out + lane;
#pragma GCC unroll 4
                for (int r = 0; r < 4; ++r) {  // (B^T d) B on columns E[i], O[i], E[i+1], O[i+1]
                    Z::store(o + (r * 4 + 0) * xi_stride, mask, Z::sub(t[0][r], t[2][r]));
                    Z::store(o + (r * 4 + 1) * xi_stride, mask, Z::add(t[1][r], t[2][r]));
                    Z::store(o + (r * 4 + 2) * xi_stride, mask, Z::sub(t[2][r], t[1][r]));
                    Z::store(o + (r * 4 + 3) * xi_stride, mask, Z::sub(t[1][r], t[3][r]));
                }
            });
}

// dZ = A dY A^T (A = [1 0; 1 1; 1 -1; 0 -1]) of the 2x2 output-gradient blocks at rows
// oh0 + 2j, oh0 + 2j + 1 (tile row j < rows) and columns ow0 + 2i, ow0 + 2i + 1 of the
// OH x OW plane dyk (zeros outside it: the outputs a tile covers beyond an odd OH/OW get no
// gradient). Separable like the input transform: A^T across each row's even/odd columns,
// then A down the two rows.
template <typename T>
void winograd_grad_output_run(const T* dyk, int64_t OH, int64_t OW, int64_t oh0, int64_t ow0,
                              int len, int rows, T* out, int64_t xi_stride) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    const VecPlan vp = vec_plan<T>(len);
    const __m512i ie = split_index<T>(vp.split, 0), io = split_index<T>(vp.split, 1);
    auto row = [&](int64_t oh) { return oh < OH ? dyk + oh * OW : nullptr; };
    for_each_vector<T>(
        vp, ow0, len, rows,
        [&](int ja, int64_t ca, int jb, int64_t cb, int lane, unsigned mask)
            __attribute__((always_inline)) {
                V s[2][4];  // dY A^T per row: (y0, y0 + y1, y0 - y1, -y1)
#pragma GCC unroll 4
                for (int r = 0; r < 2; ++r) {
                    const T* pa = row(oh0 + 2 * ja + r);
                    const T* pb = row(oh0 + 2 * jb + r);
                    const V a = load_cols(pa, ca, OW), b = load_cols(pb, cb, OW);
                    const V e = Z::perm(a, ie, b), od = Z::perm(a, io, b);
                    s[r][0] = e;
                    s[r][1] = Z::add(e, od);
                    s[r][2] = Z::sub(e, od);
                    s[r][3] = Z::neg(od);
                }
                T* o = out + lane;
#pragma GCC unroll 4
                for (int q = 0; q < 4; ++q) {  // A (dY A^T): rows r0, r0 + r1, r0 - r1, -r1
                    Z::store(o + (0 * 4 + q) * xi_stride, mask, s[0][q]);
                    Z::store(o + (1 * 4 + q) * xi_stride, mask, Z::add(s[0][q], s[1][q]));
                    Z::store(o + (2 * 4 + q) * xi_stride, mask, Z::sub(s[0][q], s[1][q]));
                    Z::store(o + (3 * 4 + q) * xi_stride, mask, Z::neg(s[1][q]));
                }
            });
}
#else
template <typename T>
void winograd_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                        int rows, T* out, int64_t xi_stride) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return input_ymm(xc, H, W, ih0, iw0, len, rows, out, xi_stride);
#endif
    const int n = rows * len;
    // Columns E[i], O[i] (e, od) and E[i+1], O[i+1] (e1, od1) of the 4 rows of each tile row.
    T e[4][kLanes], od[4][kLanes], e1[4][kLanes], od1[4][kLanes];
    for (int j = 0; j < rows; ++j)
        for (int r = 0; r < 4; ++r) {
            const int64_t ih = ih0 + 2 * j + r;
            const int at = j * len;
            if (ih < 0 || ih >= H) {
                for (int i = at; i < at + len; ++i)
                    e[r][i] = od[r][i] = e1[r][i] = od1[r][i] = T(0);
                continue;
            }
            load_even_odd(xc + ih * W, iw0, W, len, e[r] + at, od[r] + at);
            load_even_odd(xc + ih * W, iw0 + 2, W, len, e1[r] + at, od1[r] + at);
        }
    T te[4][kLanes], to[4][kLanes], te1[4][kLanes], to1[4][kLanes];  // B^T d on each set
    auto bt = [n](const T(&d)[4][kLanes], T(&t)[4][kLanes]) {
        for (int i = 0; i < n; ++i) {
            t[0][i] = d[0][i] - d[2][i];
            t[1][i] = d[1][i] + d[2][i];
            t[2][i] = d[2][i] - d[1][i];
            t[3][i] = d[1][i] - d[3][i];
        }
    };
    bt(e, te);
    bt(od, to);
    bt(e1, te1);
    bt(od1, to1);
    for (int r = 0; r < 4; ++r) {  // (B^T d) B on columns E[i], O[i], E[i+1], O[i+1]
        T* v0 = out + (r * 4 + 0) * xi_stride;
        T* v1 = out + (r * 4 + 1) * xi_stride;
        T* v2 = out + (r * 4 + 2) * xi_stride;
        T* v3 = out + (r * 4 + 3) * xi_stride;
        for (int i = 0; i < n; ++i) {
            v0[i] = te[r][i] - te1[r][i];
            v1[i] = to[r][i] + te1[r][i];
            v2[i] = te1[r][i] - to[r][i];
            v3[i] = to[r][i] - to1[r][i];
        }
    }
}

// dZ = A dY A^T, as above.
template <typename T>
void winograd_grad_output_run(const T* dyk, int64_t OH, int64_t OW, int64_t oh0, int64_t ow0,
                              int len, int rows, T* out, int64_t xi_stride) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        return grad_output_ymm(dyk, OH, OW, oh0, ow0, len, rows, out, xi_stride);
#endif
    const int n = rows * len;
    T e[2][kLanes], od[2][kLanes];
    for (int j = 0; j < rows; ++j)
        for (int r = 0; r < 2; ++r) {
            const int at = j * len;
            if (oh0 + 2 * j + r >= OH) {
                for (int i = at; i < at + len; ++i) e[r][i] = od[r][i] = T(0);
                continue;
            }
            load_even_odd(dyk + (oh0 + 2 * j + r) * OW, ow0, OW, len, e[r] + at, od[r] + at);
        }
    T s[2][4][kLanes];  // dY A^T per row: (y0, y0 + y1, y0 - y1, -y1)
    for (int r = 0; r < 2; ++r)
        for (int i = 0; i < n; ++i) {
            s[r][0][i] = e[r][i];
            s[r][1][i] = e[r][i] + od[r][i];
            s[r][2][i] = e[r][i] - od[r][i];
            s[r][3][i] = -od[r][i];
        }
    for (int q = 0; q < 4; ++q) {  // A (dY A^T): rows r0, r0 + r1, r0 - r1, -r1
        const T* r0 = s[0][q];
        const T* r1 = s[1][q];
        T* z0 = out + (0 * 4 + q) * xi_stride;
        T* z1 = out + (1 * 4 + q) * xi_stride;
        T* z2 = out + (2 * 4 + q) * xi_stride;
        T* z3 = out + (3 * 4 + q) * xi_stride;
        for (int i = 0; i < n; ++i) {
            z0[i] = r0[i];
            z1[i] = r0[i] + r1[i];
            z2[i] = r0[i] - r1[i];
            z3[i] = -r1[i];
        }
    }
}
#endif

// U = G g G^T (G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]) of one MR block's kernels,
// written as its packed-A panel for each xi (KernelSet::winograd_weight_panel).
namespace {
template <typename T>
void weight_panel_scalar(const T* w, int64_t k_stride, int64_t c_stride, bool flipped, int rows,
                         int64_t cg, int mr, T* dst, int64_t xi_stride) {
    const T h = T(0.5);
    T u[kLanes][16];  // per row of the MR block (MR <= kLanes)
    for (int64_t c = 0; c < cg; ++c) {
        for (int i = 0; i < rows; ++i) {
            const T* src = w + i * k_stride + c * c_stride;
            T g[9];
            for (int t = 0; t < 9; ++t) g[t] = src[flipped ? 8 - t : t];
            T t[4][3];  // G g
            for (int j = 0; j < 3; ++j) {
                t[0][j] = g[j];
                t[1][j] = h * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = h * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int a = 0; a < 4; ++a) {  // (G g) G^T
                u[i][a * 4 + 0] = t[a][0];
                u[i][a * 4 + 1] = h * (t[a][0] + t[a][1] + t[a][2]);
                u[i][a * 4 + 2] = h * (t[a][0] - t[a][1] + t[a][2]);
                u[i][a * 4 + 3] = t[a][2];
            }
        }
        for (int xi = 0; xi < 16; ++xi) {
            T* d = dst + xi * xi_stride + c * mr;
            for (int i = 0; i < mr; ++i) d[i] = i < rows ? u[i][xi] : T(0);
        }
    }
}

#if defined(__AVX512F__)
// Rows r[0..15] (lanes = columns) to columns: r[j] lane i = old r[i] lane j.
inline void transpose16(__m512 (&r)[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    auto lo = [](__m512 a, __m512 b) {
        return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    };
    auto hi = [](__m512 a, __m512 b) {
        return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    };
    __m512 s[16];  // s[4q + m], 128-bit lane L: column 4L + m of rows 4q .. 4q + 3
    for (int q = 0; q < 16; q += 4) {
        s[q] = lo(t[q], t[q + 2]);
        s[q + 1] = hi(t[q], t[q + 2]);
        s[q + 2] = lo(t[q + 1], t[q + 3]);
        s[q + 3] = hi(t[q + 1], t[q + 3]);
    }
    for (int m = 0; m < 4; ++m) {
        const __m512 u0 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0x88);  // lanes 0, 2
        const __m512 u1 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0xDD);  // lanes 1, 3
        const __m512 u2 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0x88);
        const __m512 u3 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0xDD);
        r[m] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        r[12 + m] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
}

// MR = 8, float: U of a kernel as one vector over xi, sum over taps t of g[t] times column t
// of the 16 x 9 matrix G (x) G (FMAs: they round differently from the scalar path's adds
// and halvings; the measured output error moved < 5 %, docs/performance.md). Two input
// channels of the block's 8 rows fill 16 vectors; transposed, each is the 16 floats, one
// cache line, of one xi.
void weight_panel_8(const float* w, int64_t k_stride, int64_t c_stride, bool flipped, int rows,
                    int64_t cg, float* dst, int64_t xi_stride) {
    static constexpr float G[4][3] = {
        {1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
    __m512 col[9];
    for (int t = 0; t < 9; ++t) {
        alignas(64) float c[16];
        for (int xi = 0; xi < 16; ++xi) c[xi] = G[xi / 4][t / 3] * G[xi % 4][t % 3];
        col[t] = _mm512_load_ps(c);
    }
    static constexpr float kZero[9] = {};  // the kernel of a row or channel past the block
    for (int64_t c = 0; c < cg; c += 2) {
        const int nc = cg - c < 2 ? 1 : 2;
        const float* g[16];  // g[cc * 8 + i]: the kernel of row i, channel c + cc
        for (int q = 0; q < 16; ++q)
            g[q] = q % 8 < rows && q / 8 < nc ? w + (q % 8) * k_stride + (c + q / 8) * c_stride
                                              : kZero;
        // r[q]: U of g[q] over xi. Taps outermost: 16 independent FMA chains, not one chain
        // of 9 per kernel (latency-bound, and its r[] went through the stack).
        __m512 r[16];
        const int t0 = flipped ? 8 : 0, dt = flipped ? -1 : 1;  // tap t at g[q][t0 + t * dt]
#pragma GCC unroll 16
        for (int q = 0; q < 16; ++q) r[q] = _mm512_mul_ps(_mm512_set1_ps(g[q][t0]), col[0]);
#pragma GCC unroll 8
        for (int t = 1; t < 9; ++t)
#pragma GCC unroll 16
            for (int q = 0; q < 16; ++q)
                r[q] = _mm512_fmadd_ps(_mm512_set1_ps(g[q][t0 + t * dt]), col[t], r[q]);
        transpose16(r);
        const __mmask16 m = nc == 2 ? 0xFFFF : 0x00FF;
        for (int xi = 0; xi < 16; ++xi)
            _mm512_mask_storeu_ps(dst + xi * xi_stride + c * 8, m, r[xi]);
    }
}
#elif defined(__AVX2__)
// g[t] lane i: tap t of the 3x3 kernel at w + i * k_stride + c * c_stride (rotated 180
// degrees when flipped) for rows i < min(rows, 6), zero in the other lanes. Each kernel's
// taps 0-7 are one load (reversed when flipped); an 8x8 transpose (transpose8x8) turns
// them into one vector per tap.
[[gnu::always_inline]] inline void taps_6(const float* w, int64_t k_stride, int64_t c_stride,
                                          bool flipped, int rows, int64_t c, __m256 (&g)[9]) {
    const __m256i reverse = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    __m256 r[8];
    float tap8[6] = {};  // set into g[8] lane by lane: a vector load of scalar stores stalls
    for (int i = 0; i < 8; ++i) {
        if (i >= rows || i >= 6) {
            r[i] = _mm256_setzero_ps();
            continue;
        }
        const float* src = w + i * k_stride + c * c_stride;
        // Tap t is src[t], or src[8 - t] flipped: taps 0-7 are src[1..8] reversed.
        r[i] = flipped ? _mm256_permutevar8x32_ps(_mm256_loadu_ps(src + 1), reverse)
                       : _mm256_loadu_ps(src);
        tap8[i] = src[flipped ? 0 : 8];
    }
    transpose8x8(r);  // r[t] lane i: tap t of row i
    for (int t = 0; t < 8; ++t) g[t] = r[t];
    g[8] = _mm256_setr_ps(tap8[0], tap8[1], tap8[2], tap8[3], tap8[4], tap8[5], 0.f, 0.f);
}

// MR = 6, float: weight_panel_scalar's arithmetic with the block's rows as lanes (taps_6);
// G g G^T runs as vector adds and halvings in the scalar order (U is bitwise the scalar
// path's), and each xi's 6 rows are stored by pieces. The scalar path took 22 % of
// ResNet-18 14x14x256 b1's backward_data, whose 4 MB of U was transformed anew every call.
// (Gathers and masked stores were slower than the scalar path on Zen 3.)
void weight_panel_6(const float* w, int64_t k_stride, int64_t c_stride, bool flipped, int rows,
                    int64_t cg, float* dst, int64_t xi_stride) {
    const __m256 h = _mm256_set1_ps(0.5f);
    for (int64_t c = 0; c < cg; ++c) {
        __m256 g[9];  // g[t] lane i: tap t of row i
        taps_6(w, k_stride, c_stride, flipped, rows, c, g);
        __m256 gg[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
            gg[0][j] = g[j];
            gg[1][j] = _mm256_mul_ps(h, _mm256_add_ps(_mm256_add_ps(g[j], g[3 + j]), g[6 + j]));
            gg[2][j] = _mm256_mul_ps(h, _mm256_add_ps(_mm256_sub_ps(g[j], g[3 + j]), g[6 + j]));
            gg[3][j] = g[6 + j];
        }
        float* d = dst + c * 6;
        for (int a = 0; a < 4; ++a) {  // (G g) G^T
            const __m256 s = _mm256_add_ps(_mm256_add_ps(gg[a][0], gg[a][1]), gg[a][2]);
            const __m256 f = _mm256_add_ps(_mm256_sub_ps(gg[a][0], gg[a][1]), gg[a][2]);
            store_first(d + (a * 4 + 0) * xi_stride, gg[a][0], 6);
            store_first(d + (a * 4 + 1) * xi_stride, _mm256_mul_ps(h, s), 6);
            store_first(d + (a * 4 + 2) * xi_stride, _mm256_mul_ps(h, f), 6);
            store_first(d + (a * 4 + 3) * xi_stride, gg[a][2], 6);
        }
    }
}
#endif
}  // namespace

template <typename T>
void winograd_weight_panel(const T* w, int64_t k_stride, int64_t c_stride, bool flipped, int rows,
                           int64_t cg, int mr, T* dst, int64_t xi_stride) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) {
        if (mr == 8)
            return weight_panel_8(w, k_stride, c_stride, flipped, rows, cg, dst, xi_stride);
    }
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
        if (mr == 6)
            return weight_panel_6(w, k_stride, c_stride, flipped, rows, cg, dst, xi_stride);
    }
#endif
    weight_panel_scalar(w, k_stride, c_stride, flipped, rows, cg, mr, dst, xi_stride);
}

// A^T m (A^T = [1 1 1 0; 0 1 -1 -1]) of tiles side by side: m[xi] of lane l at
// m[xi * xi_stride + l]; s[r * 4 + q] = row r of A^T m in column q. The first half of the
// output transforms (winograd_output_run, winograd_output_pool_run).
namespace {
#if defined(__AVX512F__)
template <typename T>
__attribute__((always_inline)) inline void at_m(const T* m, int64_t xi_stride, unsigned mask,
                                                typename Zmm<T>::V (&s)[8]) {
    using Z = Zmm<T>;
    using V = typename Z::V;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
        const V m0 = Z::maskz_load(mask, m + q * xi_stride);
        const V m1 = Z::maskz_load(mask, m + (4 + q) * xi_stride);
        const V m2 = Z::maskz_load(mask, m + (8 + q) * xi_stride);
        const V m3 = Z::maskz_load(mask, m + (12 + q) * xi_stride);
        s[q] = Z::add(Z::add(m0, m1), m2);
        s[4 + q] = Z::sub(Z::sub(m1, m2), m3);
    }
}
#else
template <typename T>
inline void at_m(const T* m, int64_t xi_stride, int len, T (&s)[8][kLanes]) {
    for (int q = 0; q < 4; ++q) {
        const T* m0 = m + q * xi_stride;
        const T* m1 = m + (4 + q) * xi_stride;
        const T* m2 = m + (8 + q) * xi_stride;
        const T* m3 = m + (12 + q) * xi_stride;
        for (int i = 0; i < len; ++i) {
            s[q][i] = m0[i] + m1[i] + m2[i];
            s[4 + q][i] = m1[i] - m2[i] - m3[i];
        }
    }
}
#endif
}  // namespace

// Y = A^T m A + bias (A^T = [1 1 1 0; 0 1 -1 -1]) of each tile of a run, written to the
// OH x OW plane yk: tile (j, i) (lane j * len + i of m) at rows oh0 + 2j, oh0 + 2j + 1 and
// columns ow0 + 2i, ow0 + 2i + 1, dropping the outputs past an odd OH/OW.
#if defined(__AVX512F__)
template <typename T>
void winograd_output_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                         int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int n = Z::n;
    const VecPlan vp = vec_plan<T>(len);
    // A vector's outputs go out as two halves of interleaved even/odd columns: tiles
    // [0, lo) (row ja, from column ca) and the rest (row jb, from column cb).
    const int lo = vp.pairs ? len : n / 2;
    const __m512i ilo = interleave_index<T>(0), ihi = interleave_index<T>(lo);
    const V vb = Z::set1(bias);
    for_each_vector<T>(
        vp, ow0, len, rows,
        [&](int ja, int64_t ca, int jb, int64_t cb, int lane,
            unsigned mask) __attribute__((always_inline)) {
            V s[8];  // A^T m: rows 0 and 1, 4 columns each
            at_m<T>(m + lane, xi_stride, mask, s);
            const int tiles = __builtin_popcount(mask);
            const int ta = tiles < lo ? tiles : lo, tb = tiles - ta;
            const unsigned ma = lane_mask(0, OW - ca < 2 * ta ? OW - ca : 2 * ta, n);
            const unsigned mb = tb ? lane_mask(0, OW - cb < 2 * tb ? OW - cb : 2 * tb, n) : 0u;
#pragma GCC unroll 2
            for (int r = 0; r < 2; ++r) {  // (A^T m) A, then the rows of outputs
                const V y0 = Z::add(Z::add(Z::add(s[r * 4], s[r * 4 + 1]), s[r * 4 + 2]), vb);
                const V y1 = Z::add(Z::sub(Z::sub(s[r * 4 + 1], s[r * 4 + 2]), s[r * 4 + 3]), vb);
                const int64_t oa = oh0 + 2 * ja + r, ob = oh0 + 2 * jb + r;
                if (ma && oa < OH) Z::store(yk + oa * OW + ca, ma, Z::perm(y0, ilo, y1));
                if (mb && ob < OH) Z::store(yk + ob * OW + cb, mb, Z::perm(y0, ihi, y1));
            }
        });
}

// The int32 flat indices of the set lanes of `lanes` to dst[lane] as int64 (dst formed as
// an integer: it may point before the row for lanes that start past 0).
template <typename T>
inline void store_indices(uintptr_t dst, unsigned lanes, __m512i idx) {
    int64_t* d = reinterpret_cast<int64_t*>(dst);
    if (lanes & 0xFFu)
        _mm512_mask_storeu_epi64(d, static_cast<__mmask8>(lanes),
                                 _mm512_cvtepi32_epi64(_mm512_castsi512_si256(idx)));
    if (Zmm<T>::n == 16 && (lanes >> 8))
        _mm512_mask_storeu_epi64(d + 8, static_cast<__mmask8>(lanes >> 8),
                                 _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(idx, 1)));
}

// winograd_output_run's outputs, each tile max pooled as max_pool2d's 2x2 kernels pool:
// each row's two columns first, then the two rows, taking v where v > max or v is NaN.
// Tile l of a vector has its top-left output at plane column ca + 2l (row ja; with pairs,
// lanes >= len at cb + 2(l - len), row jb); flat indices are formed in int32 (the driver
// keeps OH * OW below 2^31).
template <typename T>
void winograd_output_pool_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                              int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW,
                              int64_t th0, int64_t tw0) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int n = Z::n;
    const VecPlan vp = vec_plan<T>(len);
    const int lo = vp.pairs ? len : n;  // lanes [0, lo): row ja; [lo, n): row jb
    const V vb = Z::set1(bias);
    const __m512i iota2 =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i one = _mm512_set1_epi32(1), vOW = _mm512_set1_epi32(static_cast<int32_t>(OW));
    const __mmask16 part_b = static_cast<__mmask16>(lane_mask(lo, 16, 16));
    for_each_vector<T>(
        vp, 2 * tw0, len, rows,
        [&](int ja, int64_t ca, int jb, int64_t cb, int lane,
            unsigned mask) __attribute__((always_inline)) {
            V s[8];  // A^T m: rows 0 and 1, 4 columns each
            at_m<T>(m + lane, xi_stride, mask, s);
            V h[2];             // each row's maximum over its two columns
            unsigned right[2];  // lanes where the right column won
#pragma GCC unroll 2
            for (int r = 0; r < 2; ++r) {  // (A^T m) A, as winograd_output_run
                const V y0 = Z::add(Z::add(Z::add(s[r * 4], s[r * 4 + 1]), s[r * 4 + 2]), vb);
                const V y1 = Z::add(Z::sub(Z::sub(s[r * 4 + 1], s[r * 4 + 2]), s[r * 4 + 3]), vb);
                right[r] = Z::take(y1, y0);
                h[r] = Z::blend(right[r], y0, y1);
            }
            const unsigned down = Z::take(h[1], h[0]);
            V v = Z::blend(down, h[0], h[1]);
            if (relu) v = Z::blend(Z::negative(v), v, Z::zero());  // NaN and -0 stay
            const int tiles = __builtin_popcount(mask);
            const int ta = tiles < lo ? tiles : lo, tb = tiles - ta;
            const int64_t tha = th0 + ja, thb = th0 + jb, twa = ca / 2, twb = cb / 2;
            // The lanes whose window lies inside the PH x PW map.
            const unsigned ma = tha < PH ? lane_mask(0, PW - twa < ta ? PW - twa : ta, n) : 0u;
            const unsigned mb =
                tb && thb < PH ? lane_mask(lo, lo + (PW - twb < tb ? PW - twb : tb), n) : 0u;
            // Addresses as integers: a row past the map (its lanes all masked off) or lane lo
            // of row jb's would be out-of-range pointers.
            const uintptr_t ybase = reinterpret_cast<uintptr_t>(yk);
            const uintptr_t ya = ybase + static_cast<uintptr_t>(tha * PW + twa) * sizeof(T);
            const uintptr_t yb = ybase + static_cast<uintptr_t>(thb * PW + twb - lo) * sizeof(T);
            if (ma) Z::store(reinterpret_cast<T*>(ya), ma, v);
            if (mb) Z::store(reinterpret_cast<T*>(yb), mb, v);
            if (!ik || !(ma | mb)) return;
            // The top-left output of each window, then the winner's row and column in it.
            const __m512i corner = _mm512_add_epi32(
                _mm512_mask_blend_epi32(
                    part_b, _mm512_set1_epi32(static_cast<int32_t>(2 * tha * OW + ca)),
                    _mm512_set1_epi32(static_cast<int32_t>(2 * thb * OW + cb - 2 * lo))),
                iota2);
            const unsigned col = (down & right[1]) | (~down & right[0]);
            const __m512i idx = _mm512_add_epi32(
                corner,
                _mm512_add_epi32(_mm512_maskz_mov_epi32(static_cast<__mmask16>(col), one),
                                 _mm512_maskz_mov_epi32(static_cast<__mmask16>(down), vOW)));
            const uintptr_t ibase = reinterpret_cast<uintptr_t>(ik);
            const uintptr_t ia = ibase + static_cast<uintptr_t>(tha * PW + twa) * sizeof(int64_t);
            const uintptr_t ib =
                ibase + static_cast<uintptr_t>(thb * PW + twb - lo) * sizeof(int64_t);
            if (ma) store_indices<T>(ia, ma, idx);
            if (mb) store_indices<T>(ib, mb, idx);
        });
}
#else
template <typename T>
void winograd_output_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                         int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        return output_ymm(m, xi_stride, len, rows, bias, yk, OH, OW, oh0, ow0);
#endif
    // Tiles whose right column is inside the plane; an odd OW keeps the next one's left.
    const int full = static_cast<int>((OW - ow0) / 2 < len ? (OW - ow0) / 2 : len);
    for (int j = 0; j < rows; ++j) {
        const T* mj = m + j * len;
        T s[8][kLanes];  // A^T m: rows 0 and 1, 4 columns each
        at_m(mj, xi_stride, len, s);
        for (int r = 0; r < 2 && oh0 + 2 * j + r < OH; ++r) {  // (A^T m) A
            T y0[kLanes], y1[kLanes];
            for (int i = 0; i < len; ++i) {
                const T s0 = s[r * 4][i], s1 = s[r * 4 + 1][i], s2 = s[r * 4 + 2][i],
                        s3 = s[r * 4 + 3][i];
                y0[i] = s0 + s1 + s2 + bias;
                y1[i] = s1 - s2 - s3 + bias;
            }
            T* row = yk + (oh0 + 2 * j + r) * OW + ow0;
            for (int i = 0; i < full; ++i) {
                row[2 * i] = y0[i];
                row[2 * i + 1] = y1[i];
            }
            if (full < len) row[2 * full] = y0[full];  // odd OW: the last tile's left column
        }
    }
}

// winograd_output_run's outputs, each tile max pooled as max_pool2d's 2x2 kernels pool:
// each row's two columns first, then the two rows, taking v where v > max or v is NaN.
template <typename T>
void winograd_output_pool_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                              int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW,
                              int64_t th0, int64_t tw0) {
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        return output_pool_ymm(m, xi_stride, len, rows, bias, yk, ik, relu, PH, PW, OW, th0, tw0);
#endif
    // Tiles whose window lies inside the PH x PW map.
    const int full = static_cast<int>(PW - tw0 < len ? (PW > tw0 ? PW - tw0 : 0) : len);
    if (full == 0) return;
    for (int j = 0; j < rows && th0 + j < PH; ++j) {
        const T* mj = m + j * len;
        T s[8][kLanes];  // A^T m: rows 0 and 1, 4 columns each
        at_m(mj, xi_stride, len, s);
        T* yr = yk + (th0 + j) * PW + tw0;
        int64_t* ir = ik ? ik + (th0 + j) * PW + tw0 : nullptr;
        const int64_t corner = 2 * (th0 + j) * OW + 2 * tw0;
        for (int i = 0; i < full; ++i) {
            T y[2][2];
            for (int r = 0; r < 2; ++r) {  // (A^T m) A, as winograd_output_run
                const T s0 = s[r * 4][i], s1 = s[r * 4 + 1][i], s2 = s[r * 4 + 2][i],
                        s3 = s[r * 4 + 3][i];
                y[r][0] = s0 + s1 + s2 + bias;
                y[r][1] = s1 - s2 - s3 + bias;
            }
            int64_t at;
            yr[i] = pool_window(y[0][0], y[0][1], y[1][0], y[1][1], relu, OW, &at);
            if (ir) ir[i] = corner + 2 * i + at;
        }
    }
}
#endif

// Winograd F(4x4, 3x3) (winograd.cpp): 6x6 input patches at a stride of 4, 36 planes xi,
// Lavin & Gray's interpolation points 0, +-1, +-2 (arXiv:1509.09308, section 4.2):
//     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//            0 4 0 -5 0 1]
//     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// Loops over a run's lanes, which the compiler vectorises at the ISA's width; the patches
// are gathered through a zero-extended copy of each input row.
namespace {
// B^T of one column of 6 (or, applied to rows, B): the common terms shared by rows 1-4. E is
// the element type, U it or a vector of it (GCC's vector arithmetic with scalars).
template <typename E, typename U>
inline void bt6(U d0, U d1, U d2, U d3, U d4, U d5, U (&r)[6]) {
    const E k2 = 2, k4 = 4, k5 = 5;
    const U a = d4 - k4 * d2, b = d3 - k4 * d1;  // rows 1, 2: a +- b
    const U c = d4 - d2, e = k2 * (d3 - d1);     // rows 3, 4: c +- e
    r[0] = k4 * d0 - k5 * d2 + d4;
    r[1] = a + b;
    r[2] = a - b;
    r[3] = c + e;
    r[4] = c - e;
    r[5] = k4 * d1 - k5 * d3 + d5;
}
// A^T of one column of 6 (or, applied to rows, A).
template <typename E, typename U>
inline void at6(U m0, U m1, U m2, U m3, U m4, U m5, U (&y)[4]) {
    const E k2 = 2, k4 = 4, k8 = 8;
    const U s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    y[0] = m0 + s12 + s34;
    y[1] = d12 + k2 * d34;
    y[2] = s12 + k4 * s34;
    y[3] = d12 + k8 * d34 + m5;
}
}  // namespace

// v = B^T d B of the 6x6 patches at rows ih0 + 4j.., columns iw0 + 4i.. (KernelSet::
// winograd4_input_run), in loops over the lanes.
namespace {
template <typename T>
void input4_loops(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len, int rows,
                  T* out, int64_t xi_stride) {
    const int n = rows * len;
    T d[6][6][kLanes];  // d[r][c][lane]: row r, column c of each tile's patch
    const int64_t cols = 4 * static_cast<int64_t>(len) + 2;  // a tile row's patch columns
    // Columns [lo, hi) of the row segment lie inside the plane.
    const int64_t lo = iw0 < 0 ? -iw0 : 0;
    const int64_t hi = W - iw0 < cols ? (W - iw0 > lo ? W - iw0 : lo) : cols;
    for (int j = 0; j < rows; ++j)
        for (int r = 0; r < 6; ++r) {
            const int64_t ih = ih0 + 4 * j + r;
            const int at = j * len;
            if (ih < 0 || ih >= H) {
                for (int c = 0; c < 6; ++c)
                    for (int i = 0; i < len; ++i) d[r][c][at + i] = T(0);
                continue;
            }
            T seg[4 * kLanes + 2];
            const T* row = xc + ih * W + iw0;  // only read at columns [lo, hi)
            for (int64_t q = 0; q < lo; ++q) seg[q] = T(0);
            for (int64_t q = lo; q < hi; ++q) seg[q] = row[q];
            for (int64_t q = hi; q < cols; ++q) seg[q] = T(0);
            for (int c = 0; c < 6; ++c)
                for (int i = 0; i < len; ++i) d[r][c][at + i] = seg[4 * i + c];
        }
    T t[6][6][kLanes];  // B^T d: t[k][c][lane]
    for (int c = 0; c < 6; ++c)
        for (int l = 0; l < n; ++l) {
            T r[6];
            bt6<T>(d[0][c][l], d[1][c][l], d[2][c][l], d[3][c][l], d[4][c][l], d[5][c][l], r);
            for (int k = 0; k < 6; ++k) t[k][c][l] = r[k];
        }
    for (int k = 0; k < 6; ++k) {  // (B^T d) B
        T* o = out + k * 6 * xi_stride;
        for (int l = 0; l < n; ++l) {
            T r[6];
            bt6<T>(t[k][0][l], t[k][1][l], t[k][2][l], t[k][3][l], t[k][4][l], t[k][5][l], r);
            for (int q = 0; q < 6; ++q) o[q * xi_stride + l] = r[q];
        }
    }
}
}  // namespace

// U = G g G^T, written as winograd_weight_panel writes U of F(2x2, 3x3). Computed in double
// and rounded once: the entries 1/6, 1/12, 1/24 are inexact in binary.
#if defined(__AVX2__) && !defined(__AVX512F__)
namespace {
// G v of one column v = (v0, v1, v2) of 3 values (or, transposed, one row), in double:
// G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], its
// rows 1-2 and 3-4 formed as the even part plus and minus the odd one.
[[gnu::always_inline]] inline void g6(__m256d v0, __m256d v1, __m256d v2, __m256d (&o)[6]) {
    const __m256d e = _mm256_mul_pd(_mm256_add_pd(v0, v2), _mm256_set1_pd(-1.0 / 6));
    const __m256d q = _mm256_mul_pd(v1, _mm256_set1_pd(1.0 / 6));
    const __m256d r =
        _mm256_fmadd_pd(v0, _mm256_set1_pd(1.0 / 24), _mm256_mul_pd(v2, _mm256_set1_pd(1.0 / 6)));
    const __m256d s = _mm256_mul_pd(v1, _mm256_set1_pd(1.0 / 12));
    o[0] = _mm256_mul_pd(v0, _mm256_set1_pd(0.25));
    o[1] = _mm256_sub_pd(e, q);
    o[2] = _mm256_add_pd(e, q);
    o[3] = _mm256_add_pd(r, s);
    o[4] = _mm256_sub_pd(r, s);
    o[5] = v2;
}

// MR = 6, float: U = G g G^T of F(4x4, 3x3) in double with the block's rows as lanes, rows
// 0-3 and 4-5 in two vectors (taps_6, then widened), rounded to float once. The generic
// loop took 66 % of ResNet-18 14x14x256 b1's F(4x4) forward (40 ns per kernel).
void weight4_panel_6(const float* w, int64_t k_stride, int64_t c_stride, bool flipped, int rows,
                     int64_t cg, float* dst, int64_t xi_stride) {
    for (int64_t c = 0; c < cg; ++c) {
        __m256 g[9];
        taps_6(w, k_stride, c_stride, flipped, rows, c, g);
        for (int half = 0; half < 2; ++half) {  // rows 0-3, then 4-5 (and two zero lanes)
            __m256d gd[9];
            for (int t = 0; t < 9; ++t)
                gd[t] = _mm256_cvtps_pd(half ? _mm256_extractf128_ps(g[t], 1)
                                             : _mm256_castps256_ps128(g[t]));
            __m256d t[3][6];  // t[b][a] = (G g)[a][b]: G applied to column b of the kernel
            for (int b = 0; b < 3; ++b) g6(gd[b], gd[3 + b], gd[6 + b], t[b]);
            float* d = dst + c * 6 + half * 4;
            for (int a = 0; a < 6; ++a) {  // row a of (G g) G^T = G applied to row a of G g
                __m256d u[6];
                g6(t[0][a], t[1][a], t[2][a], u);
                for (int b = 0; b < 6; ++b) {
                    const __m128 f = _mm256_cvtpd_ps(u[b]);
                    float* o = d + (a * 6 + b) * xi_stride;
                    if (half)
                        _mm_storel_pi(reinterpret_cast<__m64*>(o), f);
                    else
                        _mm_storeu_ps(o, f);
                }
            }
        }
    }
}
}  // namespace
#endif

template <typename T>
void winograd4_weight_panel(const T* w, int64_t k_stride, int64_t c_stride, bool flipped, int rows,
                            int64_t cg, int mr, T* dst, int64_t xi_stride) {
#if defined(__AVX2__) && !defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) {
        if (mr == 6)
            return weight4_panel_6(w, k_stride, c_stride, flipped, rows, cg, dst, xi_stride);
    }
#endif
    static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
    // The MR rows of a block side by side (mr <= kLanes), in loops the compiler vectorises.
    for (int64_t c = 0; c < cg; ++c) {
        double g[9][kLanes];  // tap t of row i, zero past `rows`
        for (int t = 0; t < 9; ++t)
            for (int i = 0; i < mr; ++i)
                g[t][i] = i < rows ? static_cast<double>(
                                         w[i * k_stride + c * c_stride + (flipped ? 8 - t : t)])
                                   : 0.0;
        double t[6][3][kLanes];  // G g
        for (int a = 0; a < 6; ++a)
            for (int b = 0; b < 3; ++b)
                for (int i = 0; i < mr; ++i)
                    t[a][b][i] = G[a][0] * g[b][i] + G[a][1] * g[3 + b][i] + G[a][2] * g[6 + b][i];
        for (int a = 0; a < 6; ++a)  // (G g) G^T
            for (int b = 0; b < 6; ++b) {
                T* d = dst + (a * 6 + b) * xi_stride + c * mr;
                for (int i = 0; i < mr; ++i)
                    d[i] = static_cast<T>(t[a][0][i] * G[b][0] + t[a][1][i] * G[b][1] +
                                          t[a][2][i] * G[b][2]);
            }
    }
}

namespace {
// y = A^T m A + bias of each lane's tile: y[a][b][lane].
template <typename T>
inline void winograd4_outputs(const T* m, int64_t xi_stride, int n, T bias, T (&y)[4][4][kLanes]) {
    T s[4][6][kLanes];  // A^T m: s[a][q][lane]
    for (int q = 0; q < 6; ++q)
        for (int l = 0; l < n; ++l) {
            T r[4];
            at6<T>(m[(0 * 6 + q) * xi_stride + l], m[(1 * 6 + q) * xi_stride + l],
                   m[(2 * 6 + q) * xi_stride + l], m[(3 * 6 + q) * xi_stride + l],
                   m[(4 * 6 + q) * xi_stride + l], m[(5 * 6 + q) * xi_stride + l], r);
            for (int a = 0; a < 4; ++a) s[a][q][l] = r[a];
        }
    for (int a = 0; a < 4; ++a)
        for (int l = 0; l < n; ++l) {
            T r[4];
            at6<T>(s[a][0][l], s[a][1][l], s[a][2][l], s[a][3][l], s[a][4][l], s[a][5][l], r);
            for (int b = 0; b < 4; ++b) y[a][b][l] = r[b] + bias;
        }
}

// The 4x4 outputs of each tile at rows oh0 + 4j.., columns ow0 + 4i.. of yk, the part
// inside OH x OW (KernelSet::winograd4_output_run).
template <typename T>
void output4_loops(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk, int64_t OH,
                   int64_t OW, int64_t oh0, int64_t ow0) {
    T y[4][4][kLanes];
    winograd4_outputs(m, xi_stride, rows * len, bias, y);
    for (int j = 0; j < rows; ++j)
        for (int a = 0; a < 4 && oh0 + 4 * j + a < OH; ++a) {
            T* row = yk + (oh0 + 4 * j + a) * OW;
            for (int i = 0; i < len; ++i) {
                const int64_t ow = ow0 + 4 * i;
                const int nb = OW - ow < 4 ? static_cast<int>(OW - ow) : 4;
                for (int b = 0; b < nb; ++b) row[ow + b] = y[a][b][j * len + i];
            }
        }
}

// The outputs of tile (th0 + j, tw0 + i) max pooled in 2x2 windows at stride 2: its 4 windows
// (2 (th0 + j) + a, 2 (tw0 + i) + b), those inside PH x PW, pooled as
// winograd_output_pool_run pools a 2x2 tile (KernelSet::winograd4_output_pool_run).
template <typename T>
void output4_pool_loops(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                        int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW, int64_t th0,
                        int64_t tw0) {
    T y[4][4][kLanes];
    winograd4_outputs(m, xi_stride, rows * len, bias, y);
    for (int j = 0; j < rows; ++j)
        for (int a = 0; a < 2; ++a) {
            const int64_t ph = 2 * (th0 + j) + a;
            if (ph >= PH) break;
            for (int i = 0; i < len; ++i)
                for (int b = 0; b < 2; ++b) {
                    const int64_t pw = 2 * (tw0 + i) + b;
                    if (pw >= PW) break;
                    const int l = j * len + i;
                    int64_t at;
                    yk[ph * PW + pw] = pool_window(y[2 * a][2 * b][l], y[2 * a][2 * b + 1][l],
                                                   y[2 * a + 1][2 * b][l],
                                                   y[2 * a + 1][2 * b + 1][l], relu, OW, &at);
                    if (ik) ik[ph * PW + pw] = 2 * ph * OW + 2 * pw + at;
                }
        }
}

// The G groups of 4 tiles of a vector (F(4x4), float, len a multiple of 4; G = 4 for
// AVX-512, 2 for AVX2): group g of the vector from lane l0 (`count` tiles from it) is lanes
// 4g .. 4g + 3, tile row l / len, first tile l % len for l = l0 + 4g; origin (r0 + 4 (l / len),
// c0 + 4 (l % len)).
template <int G>
struct Groups {
    int64_t row[G], col[G];
    bool live[G];
};
template <int G>
inline Groups<G> tile_groups(int l0, int count, int len, int64_t r0, int64_t c0) {
    Groups<G> gr{};
    for (int g = 0; g < G; ++g) {
        const int l = l0 + 4 * g;
        gr.live[g] = 4 * g < count;
        gr.row[g] = r0 + 4 * (l / len);
        gr.col[g] = c0 + 4 * (l % len);
    }
    return gr;
}

#if defined(__AVX512F__)
// AVX-512: a vector of tiles at a time in registers. In float, with rows of a multiple of 4
// tiles (the driver pads them), by loads, stores and 4x4 transposes (input4_groups,
// pool4_groups, output4_zmm's groups); otherwise the patches are gathered and the outputs
// scattered with int32 element offsets (planes below 2^31 elements; the loops above
// otherwise). Lane q of the vector from lane l0 is tile (j, i) = ((l0 + q) / len,
// (l0 + q) % len); row0/col0 get its top-left row and column, (0, 0) past `count`.
inline void tile_origins(int l0, int count, int len, int64_t r0, int64_t c0, __m512i* row0,
                         __m512i* col0) {
    alignas(64) int32_t rb[16] = {}, cb[16] = {};
    for (int q = 0; q < count; ++q) {
        rb[q] = static_cast<int32_t>(r0 + 4 * ((l0 + q) / len));
        cb[q] = static_cast<int32_t>(c0 + 4 * ((l0 + q) % len));
    }
    *row0 = _mm512_load_si512(rb);
    *col0 = _mm512_load_si512(cb);
}
// Lanes of v in [lo, hi).
inline unsigned in_range(__m512i v, int64_t lo, int64_t hi) {
    return _mm512_cmpge_epi32_mask(v, _mm512_set1_epi32(static_cast<int32_t>(lo))) &
           _mm512_cmplt_epi32_mask(v, _mm512_set1_epi32(static_cast<int32_t>(hi)));
}

// v = B^T d B of the patches d[r][c] (a vector of tiles each), stored to the lanes of `lanes`.
template <typename T>
inline void input4_transform(typename Zmm<T>::V (&d)[6][6], unsigned lanes, T* o,
                             int64_t xi_stride) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    V t[6][6];  // B^T d: t[k][c]
#pragma GCC unroll 6
    for (int c = 0; c < 6; ++c) {
        V v[6];
        bt6<T>(d[0][c], d[1][c], d[2][c], d[3][c], d[4][c], d[5][c], v);
#pragma GCC unroll 6
        for (int k = 0; k < 6; ++k) t[k][c] = v[k];
    }
#pragma GCC unroll 6
    for (int k = 0; k < 6; ++k) {  // (B^T d) B
        V v[6];
        bt6<T>(t[k][0], t[k][1], t[k][2], t[k][3], t[k][4], t[k][5], v);
#pragma GCC unroll 6
        for (int q = 0; q < 6; ++q) Z::store(o + (k * 6 + q) * xi_stride, lanes, v[q]);
    }
}

// 4x4 transposes of float vectors seen as 4 blocks of 4 (128-bit lanes): of the blocks
// (a[i] block g <- a[g] block i), and within each block (a[i] block g element e <- a[e]
// block g element i).
inline void transpose_blocks(__m512 (&a)[4]) {
    const __m512 t0 = _mm512_shuffle_f32x4(a[0], a[1], 0x44),
                 t1 = _mm512_shuffle_f32x4(a[0], a[1], 0xEE);
    const __m512 t2 = _mm512_shuffle_f32x4(a[2], a[3], 0x44),
                 t3 = _mm512_shuffle_f32x4(a[2], a[3], 0xEE);
    a[0] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    a[1] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
    a[2] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    a[3] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
}
inline void transpose_in_blocks(__m512 (&a)[4]) {
    auto lo = [](__m512 x, __m512 y) {
        return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));
    };
    auto hi = [](__m512 x, __m512 y) {
        return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));
    };
    const __m512 u0 = _mm512_unpacklo_ps(a[0], a[1]), u1 = _mm512_unpackhi_ps(a[0], a[1]);
    const __m512 u2 = _mm512_unpacklo_ps(a[2], a[3]), u3 = _mm512_unpackhi_ps(a[2], a[3]);
    a[0] = lo(u0, u2);
    a[1] = hi(u0, u2);
    a[2] = lo(u1, u3);
    a[3] = hi(u1, u3);
}

// Groups of 4 tiles: with float and len a multiple of 4, the lanes 4g .. 4g + 3 of a vector are
// 4 neighbouring tiles of one tile row, whose patch rows are 18 consecutive plane columns
// (tile_groups<4>, above).

// The patches of 4 groups without gathers: per patch row, each group's 16 columns from one
// (masked) load, transposed into d[r][0..3] (block g, element i: column 4i + c of tile i);
// columns 4 and 5 are columns 0 and 1 of the next tile, the last tile's from the group's
// columns 16 and 17.
inline void input4_groups(const float* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                          int rows, float* out, int64_t xi_stride) {
    const int total = rows * len;
    for (int l0 = 0; l0 < total; l0 += 16) {
        const int count = total - l0 < 16 ? total - l0 : 16;
        const Groups<4> gr = tile_groups<4>(l0, count, len, ih0, iw0);
        __m512 d[6][6];
        for (int r = 0; r < 6; ++r) {
            __m512 a[4];
            alignas(64) float e[2][16] = {};  // columns 16, 17 of each group (element 4g)
            for (int g = 0; g < 4; ++g) {
                const int64_t h = gr.row[g] + r, c = gr.col[g];
                const float* row = gr.live[g] && h >= 0 && h < H ? xc + h * W : nullptr;
                a[g] = load_cols(row, c, W);
                if (row && c + 16 >= 0 && c + 16 < W) e[0][4 * g] = row[c + 16];
                if (row && c + 17 >= 0 && c + 17 < W) e[1][4 * g] = row[c + 17];
            }
            transpose_blocks(a);     // a[i] block g: columns 4i .. 4i + 3 of group g
            transpose_in_blocks(a);  // a[c] block g element i: column 4i + c
            for (int c = 0; c < 4; ++c) d[r][c] = a[c];
            // Each block shifted down by one element, the next column's value shifted in.
            d[r][4] = _mm512_castsi512_ps(_mm512_alignr_epi8(
                _mm512_castps_si512(_mm512_load_ps(e[0])), _mm512_castps_si512(a[0]), 4));
            d[r][5] = _mm512_castsi512_ps(_mm512_alignr_epi8(
                _mm512_castps_si512(_mm512_load_ps(e[1])), _mm512_castps_si512(a[1]), 4));
        }
        input4_transform<float>(d, lane_mask(0, count, 16), out + l0, xi_stride);
    }
}

template <typename T>
void input4_zmm(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len, int rows,
                T* out, int64_t xi_stride) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    constexpr int n = Z::n;
    if constexpr (sizeof(T) == 4) {
        if (len % 4 == 0) return input4_groups(xc, H, W, ih0, iw0, len, rows, out, xi_stride);
    }
    const int total = rows * len;
    const __m512i vW = _mm512_set1_epi32(static_cast<int32_t>(W));
    for (int l0 = 0; l0 < total; l0 += n) {
        const int count = total - l0 < n ? total - l0 : n;
        const unsigned lanes = lane_mask(0, count, n);
        __m512i row0, col0;
        tile_origins(l0, count, len, ih0, iw0, &row0, &col0);
        __m512i roff[6], col[6];
        unsigned rm[6], cm[6];
        for (int r = 0; r < 6; ++r) {
            const __m512i row = _mm512_add_epi32(row0, _mm512_set1_epi32(r));
            rm[r] = in_range(row, 0, H) & lanes;
            roff[r] = _mm512_mullo_epi32(row, vW);
            col[r] = _mm512_add_epi32(col0, _mm512_set1_epi32(r));
            cm[r] = in_range(col[r], 0, W);
        }
        V d[6][6];
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r)
#pragma GCC unroll 6
            for (int c = 0; c < 6; ++c)
                d[r][c] = Z::gather(rm[r] & cm[c], _mm512_add_epi32(roff[r], col[c]), xc);
        input4_transform<T>(d, lanes, out + l0, xi_stride);
    }
}

// y[a][b] = (A^T m A)[a][b] + bias of the lanes of `lanes` from lane l0.
template <typename T>
inline void outputs4_zmm(const T* m, int64_t xi_stride, unsigned lanes, T bias,
                         typename Zmm<T>::V (&y)[4][4]) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    V s[4][6];  // A^T m
#pragma GCC unroll 6
    for (int q = 0; q < 6; ++q) {
        V mk[6];
#pragma GCC unroll 6
        for (int k = 0; k < 6; ++k) mk[k] = Z::maskz_load(lanes, m + (k * 6 + q) * xi_stride);
        V r[4];
        at6<T>(mk[0], mk[1], mk[2], mk[3], mk[4], mk[5], r);
#pragma GCC unroll 4
        for (int a = 0; a < 4; ++a) s[a][q] = r[a];
    }
    const V vb = Z::set1(bias);
#pragma GCC unroll 4
    for (int a = 0; a < 4; ++a) {
        V r[4];
        at6<T>(s[a][0], s[a][1], s[a][2], s[a][3], s[a][4], s[a][5], r);
#pragma GCC unroll 4
        for (int b = 0; b < 4; ++b) y[a][b] = Z::add(r[b], vb);
    }
}

// Calls f(l0, count, lanes, y) per vector of a run's tiles from lane l0 (count tiles, the
// set bits of lanes), y = A^T m A + bias of each.
template <typename T, typename F>
inline void for_each_output4(const T* m, int64_t xi_stride, int len, int rows, T bias, F&& f) {
    constexpr int n = Zmm<T>::n;
    const int total = rows * len;
    for (int l0 = 0; l0 < total; l0 += n) {
        const int count = total - l0 < n ? total - l0 : n;
        const unsigned lanes = lane_mask(0, count, n);
        typename Zmm<T>::V y[4][4];
        outputs4_zmm<T>(m + l0, xi_stride, lanes, bias, y);
        f(l0, count, lanes, y);
    }
}

template <typename T>
void output4_zmm(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk, int64_t OH,
                 int64_t OW, int64_t oh0, int64_t ow0) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    const __m512i vOW = _mm512_set1_epi32(static_cast<int32_t>(OW));
    for_each_output4(
        m, xi_stride, len, rows,
        bias, [&](int l0, int count, unsigned lanes, V(&y)[4][4]) __attribute__((always_inline)) {
            if constexpr (sizeof(T) == 4) {
                if (len % 4 == 0) {  // groups of 4 tiles: each output row of a group from one store
                    const Groups<4> gr = tile_groups<4>(l0, count, len, oh0, ow0);
                    for (int a = 0; a < 4; ++a) {
                        __m512 q[4] = {y[a][0], y[a][1], y[a][2], y[a][3]};
                        transpose_in_blocks(q);  // q[i] block g: columns 4i + b of tile i
                        transpose_blocks(q);     // q[g]: the 16 columns of group g
                        for (int g = 0; g < 4; ++g) {
                            const int64_t oh = gr.row[g] + a, c = gr.col[g];
                            if (!gr.live[g] || oh >= OH || c >= OW) continue;
                            Z::store(yk + oh * OW + c, lane_mask(0, OW - c, 16), q[g]);
                        }
                    }
                    return;
                }
            }
            __m512i row0, col0;
            tile_origins(l0, count, len, oh0, ow0, &row0, &col0);
#pragma GCC unroll 4
            for (int a = 0; a < 4; ++a) {
                const __m512i row = _mm512_add_epi32(row0, _mm512_set1_epi32(a));
                const unsigned rm = in_range(row, 0, OH) & lanes;
                const __m512i roff = _mm512_mullo_epi32(row, vOW);
#pragma GCC unroll 4
                for (int b = 0; b < 4; ++b) {
                    const __m512i col = _mm512_add_epi32(col0, _mm512_set1_epi32(b));
                    Z::scatter(yk, rm & in_range(col, 0, OW), _mm512_add_epi32(roff, col), y[a][b]);
                }
            }
        });
}

// The int32 values of the set lanes of m to base[idx[lane]] as int64.
template <typename T>
inline void scatter_i64(int64_t* base, unsigned m, __m512i idx, __m512i v) {
    if (m & 0xFFu)
        _mm512_mask_i32scatter_epi64(base, static_cast<__mmask8>(m), _mm512_castsi512_si256(idx),
                                     _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), 8);
    if (Zmm<T>::n == 16 && (m >> 8))
        _mm512_mask_i32scatter_epi64(base, static_cast<__mmask8>(m >> 8),
                                     _mm512_extracti64x4_epi64(idx, 1),
                                     _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)), 8);
}

// Window (a, b) of each lane's 4x4 tile y, pooled as winograd_output_pool_run pools a 2x2
// tile: each row's two columns first, then the two rows, taking v where v > max or v is NaN;
// with relu the maximum as relu_forward stores it. *down / *right: the lanes whose winner is
// in the window's second row / second column.
template <typename T>
inline typename Zmm<T>::V pool_window4(const typename Zmm<T>::V (&y)[4][4], int a, int b, bool relu,
                                       unsigned* down, unsigned* right) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    const unsigned right0 = Z::take(y[2 * a][2 * b + 1], y[2 * a][2 * b]);
    const unsigned right1 = Z::take(y[2 * a + 1][2 * b + 1], y[2 * a + 1][2 * b]);
    const V h0 = Z::blend(right0, y[2 * a][2 * b], y[2 * a][2 * b + 1]);
    const V h1 = Z::blend(right1, y[2 * a + 1][2 * b], y[2 * a + 1][2 * b + 1]);
    *down = Z::take(h1, h0);
    *right = (*down & right1) | (~*down & right0);
    const V v = Z::blend(*down, h0, h1);
    return relu ? Z::blend(Z::negative(v), v, Z::zero()) : v;  // NaN and -0 stay
}

// Groups of 4 tiles (see input4_groups), pooled: window row a of a group's tiles is 8
// consecutive pooled values, its two window columns interleaved.
inline void pool4_groups(const __m512 (&y)[4][4], int l0, int count, int len, float* yk,
                         int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW, int64_t th0,
                         int64_t tw0) {
    const Groups<4> gr = tile_groups<4>(l0, count, len, 4 * th0, 4 * tw0);  // /2: the windows
    alignas(64) float vals[2][16];
    alignas(64) int32_t idx[2][16];
    const __m512i one = _mm512_set1_epi32(1), vOW = _mm512_set1_epi32(static_cast<int32_t>(OW));
    // Lane (g, i): the conv output column of window (tile i, b) less its group's first, 4i + 2b.
    const __m512i icol = _mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12);
    for (int a = 0; a < 2; ++a) {
        __m512 v[2];
        __m512i ix[2];
        for (int b = 0; b < 2; ++b) {
            unsigned down, colw;
            v[b] = pool_window4<float>(y, a, b, relu, &down, &colw);
            // The flat position of the winner less that of its group's first window's corner.
            ix[b] = _mm512_add_epi32(
                _mm512_add_epi32(icol, _mm512_set1_epi32(2 * b)),
                _mm512_add_epi32(_mm512_maskz_mov_epi32(static_cast<__mmask16>(colw), one),
                                 _mm512_maskz_mov_epi32(static_cast<__mmask16>(down), vOW)));
        }
        // Block g of vals[0]: windows 0, 1 of tiles 0, 1 of group g; of vals[1]: tiles 2, 3.
        _mm512_store_ps(vals[0], _mm512_unpacklo_ps(v[0], v[1]));
        _mm512_store_ps(vals[1], _mm512_unpackhi_ps(v[0], v[1]));
        _mm512_store_si512(idx[0], _mm512_unpacklo_epi32(ix[0], ix[1]));
        _mm512_store_si512(idx[1], _mm512_unpackhi_epi32(ix[0], ix[1]));
        for (int g = 0; g < 4; ++g) {
            const int64_t ph = gr.row[g] / 2 + a, pw = gr.col[g] / 2;
            if (!gr.live[g] || ph >= PH) continue;
            // The group's first window: its corner at flat position 2ph * OW + 2pw.
            const int64_t corner = 2 * ph * OW + 2 * pw;
            for (int h = 0; h < 2; ++h) {
                const int64_t at = ph * PW + pw + 4 * h;
                const __mmask8 mk = static_cast<__mmask8>(lane_mask(0, PW - pw - 4 * h, 4));
                if (!mk) continue;
                _mm_mask_storeu_ps(yk + at, mk, _mm_load_ps(vals[h] + 4 * g));
                if (!ik) continue;
                const __m128i i4 = _mm_load_si128(reinterpret_cast<const __m128i*>(idx[h] + 4 * g));
                _mm256_mask_storeu_epi64(
                    ik + at, mk,
                    _mm256_add_epi64(_mm256_cvtepi32_epi64(i4), _mm256_set1_epi64x(corner)));
            }
        }
    }
}

template <typename T>
void output4_pool_zmm(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk, int64_t* ik,
                      bool relu, int64_t PH, int64_t PW, int64_t OW, int64_t th0, int64_t tw0) {
    using Z = Zmm<T>;
    using V = typename Z::V;
    const __m512i vPW = _mm512_set1_epi32(static_cast<int32_t>(PW));
    const __m512i one = _mm512_set1_epi32(1), vOW = _mm512_set1_epi32(static_cast<int32_t>(OW));
    for_each_output4(
        m, xi_stride, len, rows,
        bias, [&](int l0, int count, unsigned lanes, V(&y)[4][4]) __attribute__((always_inline)) {
            if constexpr (sizeof(T) == 4) {
                if (len % 4 == 0) {
                    pool4_groups(y, l0, count, len, yk, ik, relu, PH, PW, OW, th0, tw0);
                    return;
                }
            }
            __m512i ph0, pw0;  // the tile's top-left window: (2 (th0 + j), 2 (tw0 + i))
            tile_origins(l0, count, len, 4 * th0, 4 * tw0, &ph0, &pw0);
            ph0 = _mm512_srai_epi32(ph0, 1);
            pw0 = _mm512_srai_epi32(pw0, 1);
#pragma GCC unroll 2
            for (int a = 0; a < 2; ++a)
#pragma GCC unroll 2
                for (int b = 0; b < 2; ++b) {
                    unsigned down, colw;
                    const V v = pool_window4<T>(y, a, b, relu, &down, &colw);
                    const __m512i ph = _mm512_add_epi32(ph0, _mm512_set1_epi32(a));
                    const __m512i pw = _mm512_add_epi32(pw0, _mm512_set1_epi32(b));
                    const unsigned ok = lanes & in_range(ph, 0, PH) & in_range(pw, 0, PW);
                    if (!ok) continue;
                    const __m512i at = _mm512_add_epi32(_mm512_mullo_epi32(ph, vPW), pw);
                    Z::scatter(yk, ok, at, v);
                    if (!ik) continue;
                    // 2ph * OW + 2pw, then the winner's row and column in the window.
                    const __m512i corner =
                        _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(ph, ph), vOW),
                                         _mm512_add_epi32(pw, pw));
                    const __m512i idx = _mm512_add_epi32(
                        corner, _mm512_add_epi32(
                                    _mm512_maskz_mov_epi32(static_cast<__mmask16>(colw), one),
                                    _mm512_maskz_mov_epi32(static_cast<__mmask16>(down), vOW)));
                    scatter_i64<T>(ik, ok, at, idx);
                }
        });
}
#elif defined(__AVX2__)
// AVX2, float: 8 tiles to a vector, 2 groups of 4 neighbouring tiles of one tile row (the
// driver pads rows to whole groups: winograd4_row_tiles), group g in 128-bit lane g. The
// AVX-512 group paths with ymm vectors: per patch row, each group's 16 columns from two
// loads, rearranged by lane permutes and a 4x4 transpose within the lanes; the outputs
// leave the same way. Double and other row lengths take the loops. The arithmetic is the
// loops' (bt6, at6, pool_window), so the results are theirs.

// Columns c .. c + 17 of plane row h (a group's patch row), zero outside the plane: columns
// 0-7 to *lo, 8-15 to *hi (load8: masked where they leave it, as every group of CifarNet's
// 16x16 maps does), 16 and 17 to e[0], e[1].
inline void patch_row(const float* xc, int64_t H, int64_t W, int64_t h, int64_t c, __m256* lo,
                      __m256* hi, float (&e)[2]) {
    if (h < 0 || h >= H) {
        *lo = *hi = _mm256_setzero_ps();
        e[0] = e[1] = 0.0f;
        return;
    }
    const float* row = xc + h * W;
    *lo = load8(row, c, W);
    *hi = load8(row, c + 8, W);
    for (int k = 0; k < 2; ++k) e[k] = c + 16 + k >= 0 && c + 16 + k < W ? row[c + 16 + k] : 0.0f;
}

inline void input4_ymm(const float* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                       int rows, float* out, int64_t xi_stride) {
    const int total = rows * len;
    for (int l0 = 0; l0 < total; l0 += 8) {
        const int count = total - l0 < 8 ? total - l0 : 8;
        const Groups<2> gr = tile_groups<2>(l0, count, len, ih0, iw0);
        __m256 d[6][6];
        for (int r = 0; r < 6; ++r) {
            __m256 lo[2], hi[2];
            float e[2][2];
            for (int g = 0; g < 2; ++g)
                patch_row(xc, H, W, gr.live[g] ? gr.row[g] + r : -1, gr.col[g], &lo[g], &hi[g],
                          e[g]);
            // a[i] lane g: columns 4i .. 4i + 3 of group g, then a[c] lane g element i: 4i + c
            __m256 a[4] = {_mm256_permute2f128_ps(lo[0], lo[1], 0x20),
                           _mm256_permute2f128_ps(lo[0], lo[1], 0x31),
                           _mm256_permute2f128_ps(hi[0], hi[1], 0x20),
                           _mm256_permute2f128_ps(hi[0], hi[1], 0x31)};
            transpose_in_lanes(a);
            for (int c = 0; c < 4; ++c) d[r][c] = a[c];
            // Columns 4, 5: columns 0, 1 of the next tile, shifted down one element per lane,
            // the group's columns 16, 17 shifted in at the top.
            const __m256 e16 = _mm256_setr_ps(e[0][0], 0, 0, 0, e[1][0], 0, 0, 0);
            const __m256 e17 = _mm256_setr_ps(e[0][1], 0, 0, 0, e[1][1], 0, 0, 0);
            d[r][4] = _mm256_castsi256_ps(
                _mm256_alignr_epi8(_mm256_castps_si256(e16), _mm256_castps_si256(a[0]), 4));
            d[r][5] = _mm256_castsi256_ps(
                _mm256_alignr_epi8(_mm256_castps_si256(e17), _mm256_castps_si256(a[1]), 4));
        }
        __m256 t[6][6];  // B^T d: t[k][c]
        for (int c = 0; c < 6; ++c) {
            __m256 v[6];
            bt6<float>(d[0][c], d[1][c], d[2][c], d[3][c], d[4][c], d[5][c], v);
            for (int k = 0; k < 6; ++k) t[k][c] = v[k];
        }
        for (int k = 0; k < 6; ++k) {  // (B^T d) B
            __m256 v[6];
            bt6<float>(t[k][0], t[k][1], t[k][2], t[k][3], t[k][4], t[k][5], v);
            for (int q = 0; q < 6; ++q)
                store_first(out + (k * 6 + q) * xi_stride + l0, v[q], count);
        }
    }
}

// y[a][b] = (A^T m A)[a][b] + bias of the `count` lanes from m (advanced to lane l0).
inline void outputs4_ymm(const float* m, int64_t xi_stride, int count, float bias,
                         __m256 (&y)[4][4]) {
    __m256 s[4][6];  // A^T m
    for (int q = 0; q < 6; ++q) {
        __m256 mk[6];
        for (int k = 0; k < 6; ++k) mk[k] = load_n(m + (k * 6 + q) * xi_stride, count);
        __m256 r[4];
        at6<float>(mk[0], mk[1], mk[2], mk[3], mk[4], mk[5], r);
        for (int a = 0; a < 4; ++a) s[a][q] = r[a];
    }
    const __m256 vb = _mm256_set1_ps(bias);
    for (int a = 0; a < 4; ++a) {
        __m256 r[4];
        at6<float>(s[a][0], s[a][1], s[a][2], s[a][3], s[a][4], s[a][5], r);
        for (int b = 0; b < 4; ++b) y[a][b] = _mm256_add_ps(r[b], vb);
    }
}

// The 128-bit halves g of a and b as one vector: (a.lo, b.lo) for g = 0, (a.hi, b.hi) for
// g = 1. The selector is spelled as an immediate on each branch: a variable one compiles
// only where inlining makes it a constant (-O3), and -O0 / -O2 builds were rejected.
inline __m256 half_pair(__m256 a, __m256 b, int g) {
    return g == 0 ? _mm256_permute2f128_ps(a, b, 0x20) : _mm256_permute2f128_ps(a, b, 0x31);
}
inline __m256i half_pair(__m256i a, __m256i b, int g) {
    return g == 0 ? _mm256_permute2x128_si256(a, b, 0x20) : _mm256_permute2x128_si256(a, b, 0x31);
}

// Each output row of a group's 4 tiles: 16 columns from two stores, cut at OW.
inline void output4_ymm(const float* m, int64_t xi_stride, int len, int rows, float bias, float* yk,
                        int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) {
    const int total = rows * len;
    for (int l0 = 0; l0 < total; l0 += 8) {
        const int count = total - l0 < 8 ? total - l0 : 8;
        __m256 y[4][4];
        outputs4_ymm(m + l0, xi_stride, count, bias, y);
        const Groups<2> gr = tile_groups<2>(l0, count, len, oh0, ow0);
        for (int a = 0; a < 4; ++a) {
            __m256 q[4] = {y[a][0], y[a][1], y[a][2], y[a][3]};
            transpose_in_lanes(q);  // q[i] lane g: columns 4i .. 4i + 3 of group g
            for (int g = 0; g < 2; ++g) {
                const int64_t oh = gr.row[g] + a, c = gr.col[g];
                if (!gr.live[g] || oh >= OH || c >= OW) continue;
                float* dst = yk + oh * OW + c;
                store_first(dst, half_pair(q[0], q[1], g), OW - c);
                if (OW - c > 8) store_first(dst + 8, half_pair(q[2], q[3], g), OW - c - 8);
            }
        }
    }
}

// The pooled groups (pool4_groups with ymm): window row a of a group's tiles is 8 consecutive
// pooled values, its two window columns interleaved.
inline void output4_pool_ymm(const float* m, int64_t xi_stride, int len, int rows, float bias,
                             float* yk, int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW,
                             int64_t th0, int64_t tw0) {
    const int total = rows * len;
    const __m256i vOW = _mm256_set1_epi32(static_cast<int32_t>(OW));
    // Lane (g, i): the conv output column of window (tile i, b) less its group's first, 4i + 2b.
    const __m256i icol = _mm256_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12);
    for (int l0 = 0; l0 < total; l0 += 8) {
        const int count = total - l0 < 8 ? total - l0 : 8;
        __m256 y[4][4];
        outputs4_ymm(m + l0, xi_stride, count, bias, y);
        const Groups<2> gr = tile_groups<2>(l0, count, len, 4 * th0, 4 * tw0);  // /2: the windows
        for (int a = 0; a < 2; ++a) {
            __m256 v[2];
            __m256i ix[2];
            for (int b = 0; b < 2; ++b) {
                __m256i off;  // the winner's offset in its window
                v[b] = pool_window_ymm(y[2 * a][2 * b], y[2 * a][2 * b + 1], y[2 * a + 1][2 * b],
                                       y[2 * a + 1][2 * b + 1], relu, vOW, &off);
                // The winner's flat position less that of its group's first window's corner.
                ix[b] = _mm256_add_epi32(_mm256_add_epi32(icol, _mm256_set1_epi32(2 * b)), off);
            }
            // Lane g of lo: windows 0, 1 of tiles 0, 1 of group g; of hi: tiles 2, 3.
            const __m256 lo = _mm256_unpacklo_ps(v[0], v[1]), hi = _mm256_unpackhi_ps(v[0], v[1]);
            const __m256i ilo = _mm256_unpacklo_epi32(ix[0], ix[1]);
            const __m256i ihi = _mm256_unpackhi_epi32(ix[0], ix[1]);
            for (int g = 0; g < 2; ++g) {
                const int64_t ph = gr.row[g] / 2 + a, pw = gr.col[g] / 2;
                if (!gr.live[g] || ph >= PH || pw >= PW) continue;
                const int64_t at = ph * PW + pw, n = PW - pw < 8 ? PW - pw : 8;
                store_first(yk + at, half_pair(lo, hi, g), n);
                if (!ik) continue;
                // The group's first window: its corner at flat position 2ph * OW + 2pw.
                store_indices(ik + at, half_pair(ilo, ihi, g), 2 * ph * OW + 2 * pw, n);
            }
        }
    }
}
#endif
}  // namespace

template <typename T>
void winograd4_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                         int rows, T* out, int64_t xi_stride) {
#if defined(__AVX512F__)
    if (H * W < (int64_t{1} << 31))
        return input4_zmm(xc, H, W, ih0, iw0, len, rows, out, xi_stride);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        if (len % 4 == 0) return input4_ymm(xc, H, W, ih0, iw0, len, rows, out, xi_stride);
#endif
    input4_loops(xc, H, W, ih0, iw0, len, rows, out, xi_stride);
}

template <typename T>
void winograd4_output_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                          int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) {
#if defined(__AVX512F__)
    if (OH * OW < (int64_t{1} << 31))
        return output4_zmm(m, xi_stride, len, rows, bias, yk, OH, OW, oh0, ow0);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        if (len % 4 == 0) return output4_ymm(m, xi_stride, len, rows, bias, yk, OH, OW, oh0, ow0);
#endif
    output4_loops(m, xi_stride, len, rows, bias, yk, OH, OW, oh0, ow0);
}

template <typename T>
void winograd4_output_pool_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                               int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW,
                               int64_t th0, int64_t tw0) {
#if defined(__AVX512F__)
    // The driver keeps OH * OW (>= PH * PW, the flat indices) below 2^31.
    return output4_pool_zmm(m, xi_stride, len, rows, bias, yk, ik, relu, PH, PW, OW, th0, tw0);
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4)
        if (len % 4 == 0)
            return output4_pool_ymm(m, xi_stride, len, rows, bias, yk, ik, relu, PH, PW, OW, th0,
                                    tw0);
#endif
    output4_pool_loops(m, xi_stride, len, rows, bias, yk, ik, relu, PH, PW, OW, th0, tw0);
}

FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(float)
FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
