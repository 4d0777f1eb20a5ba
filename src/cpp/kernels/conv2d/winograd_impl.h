// Winograd F(2x2, 3x3) transforms for one ISA (winograd.cpp has the algorithm and the
// layout): the including .cpp defines FASTCONV_ISA and is compiled with that ISA's flags,
// so the loops over a run's tiles vectorise at its width. Semantics:
// KernelSet::winograd_input_run / winograd_output / winograd_grad_output_run
// (fastconv/kernel_table.h).
// No std:: function templates here: their instantiations would be COMDAT-merged with
// baseline copies, and the linker could hand a baseline caller this file's AVX code.
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including winograd_impl.h"
#endif

#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_WINOGRAD_KERNELS

namespace {
constexpr int kLanes = ::fastconv::kWinogradMaxLanes;
// Lanes of the local rows: kLanes, plus the last tile row's load rounded up to a whole
// 64-byte vector.
constexpr int kBuf = kLanes + 16;

// Runs are often shorter than a vector (CifarNet's 16x16 maps: 8 tiles), and GCC's loops
// over a variable count run those scalar. With AVX-512 the loads and stores of a run are
// masked and the arithmetic runs over whole vectors of local lanes; elsewhere lanes are
// exact and the loops plain.
#if defined(__AVX512F__)
template <typename T>
constexpr int kVec = 64 / static_cast<int>(sizeof(T));

// Bits [a, b) of a vector's lanes, clamped to [0, width).
inline unsigned lane_mask(int64_t a, int64_t b, int width) {
    a = a < 0 ? 0 : a;
    b = b > width ? width : b;
    return b <= a ? 0u : ((1u << b) - 1u) & ~((1u << a) - 1u);
}

// An address computed as an integer: masked-off lanes may lie outside the row, and forming
// such a pointer by pointer arithmetic would be undefined.
template <typename T>
inline const T* at(const T* row, int64_t i) {
    return reinterpret_cast<const T*>(reinterpret_cast<uintptr_t>(row) +
                                      static_cast<uintptr_t>(i * static_cast<int64_t>(sizeof(T))));
}

// A masked load only where some lanes are masked off: plain loads of whole vectors are
// cheaper, and none at all where every lane is.
inline __m512 load16(const float* row, int64_t i, unsigned mask) {
    if (mask == 0xFFFFu) return _mm512_loadu_ps(row + i);
    return mask ? _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), at(row, i))
                : _mm512_setzero_ps();
}
inline __m512d load8(const double* row, int64_t i, unsigned mask) {
    if (mask == 0xFFu) return _mm512_loadu_pd(row + i);
    return mask ? _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), at(row, i))
                : _mm512_setzero_pd();
}

// even[i] = row[c0 + 2i], odd[i] = row[c0 + 2i + 1] for i < count, zero where the column
// is outside [0, W). Writes count rounded up to whole vectors (vec_lanes), zeros past count.
inline void load_even_odd(const float* row, int64_t c0, int64_t W, int count,
                          float* even, float* odd) {
    const int64_t lo = -c0, hi = (W - c0 < 2 * count) ? W - c0 : 2 * count;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int m = 0; m < 2 * count; m += 32) {
        const __m512 a = load16(row, c0 + m, lane_mask(lo - m, hi - m, 16));
        const __m512 b = load16(row, c0 + m + 16, lane_mask(lo - m - 16, hi - m - 16, 16));
        _mm512_storeu_ps(even + m / 2, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(odd + m / 2, _mm512_permutex2var_ps(a, io, b));
    }
}

inline void load_even_odd(const double* row, int64_t c0, int64_t W, int count,
                          double* even, double* odd) {
    const int64_t lo = -c0, hi = (W - c0 < 2 * count) ? W - c0 : 2 * count;
    const __m512i ie = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i io = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    for (int m = 0; m < 2 * count; m += 16) {
        const __m512d a = load8(row, c0 + m, lane_mask(lo - m, hi - m, 8));
        const __m512d b = load8(row, c0 + m + 8, lane_mask(lo - m - 8, hi - m - 8, 8));
        _mm512_storeu_pd(even + m / 2, _mm512_permutex2var_pd(a, ie, b));
        _mm512_storeu_pd(odd + m / 2, _mm512_permutex2var_pd(a, io, b));
    }
}

inline void store_lanes(float* dst, const float* src, int n) {
    for (int i = 0; i < n; i += 16)
        _mm512_mask_storeu_ps(dst + i, lane_mask(0, n - i, 16), _mm512_loadu_ps(src + i));
}
inline void store_lanes(double* dst, const double* src, int n) {
    for (int i = 0; i < n; i += 8)
        _mm512_mask_storeu_pd(dst + i, static_cast<__mmask8>(lane_mask(0, n - i, 8)),
                              _mm512_loadu_pd(src + i));
}
#else
template <typename T>
constexpr int kVec = 1;

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

template <typename T>
inline void store_lanes(T* dst, const T* src, int n) {
    for (int i = 0; i < n; ++i) dst[i] = src[i];
}
#endif

// n rounded up to whole vectors: the lanes the local loops run over.
template <typename T>
inline int vec_lanes(int n) {
    return (n + kVec<T> - 1) / kVec<T> * kVec<T>;
}
}  // namespace

// B^T d B is separable: the column transform B^T runs over whole input rows, then the row
// transform B per tile. Tile i's patch columns are E[i], O[i], E[i+1], O[i+1] (even and odd
// columns from iw0): each input row is loaded split into even and odd columns twice, from
// iw0 and from iw0 + 2, so that every step is a contiguous loop over all rows * len lanes.
template <typename T>
void winograd_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                        int rows, T* out, int64_t xi_stride) {
    const int n = rows * len, lv = vec_lanes<T>(n), rv = vec_lanes<T>(len);
    // Columns E[i], O[i] (e, od) and E[i+1], O[i+1] (e1, od1) of the 4 rows of each tile row.
    T e[4][kBuf], od[4][kBuf], e1[4][kBuf], od1[4][kBuf];
    for (int j = 0; j < rows; ++j)  // each load writes rv lanes; the next row overwrites
        for (int r = 0; r < 4; ++r) {
            const int64_t ih = ih0 + 2 * j + r;
            const int at = j * len;
            if (ih < 0 || ih >= H) {
                for (int i = at; i < at + rv; ++i)
                    e[r][i] = od[r][i] = e1[r][i] = od1[r][i] = T(0);
                continue;
            }
            load_even_odd(xc + ih * W, iw0, W, len, e[r] + at, od[r] + at);
            load_even_odd(xc + ih * W, iw0 + 2, W, len, e1[r] + at, od1[r] + at);
        }
    for (int r = 0; r < 4; ++r)  // lanes the last row's rounding did not reach
        for (int i = (rows - 1) * len + rv; i < lv; ++i)
            e[r][i] = od[r][i] = e1[r][i] = od1[r][i] = T(0);
    T te[4][kBuf], to[4][kBuf], te1[4][kBuf], to1[4][kBuf];  // B^T d on each column set
    auto bt = [lv](const T (&d)[4][kBuf], T (&t)[4][kBuf]) {
        for (int i = 0; i < lv; ++i) {
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
    T v[4][kBuf];
    for (int r = 0; r < 4; ++r) {  // (B^T d) B on columns E[i], O[i], E[i+1], O[i+1]
        for (int i = 0; i < lv; ++i) {
            v[0][i] = te[r][i] - te1[r][i];
            v[1][i] = to[r][i] + te1[r][i];
            v[2][i] = te1[r][i] - to[r][i];
            v[3][i] = to[r][i] - to1[r][i];
        }
        for (int q = 0; q < 4; ++q) store_lanes(out + (r * 4 + q) * xi_stride, v[q], n);
    }
}

// dZ = A dY A^T (A = [1 0; 1 1; 1 -1; 0 -1]) of the 2x2 output-gradient blocks at rows
// oh0 + 2j, oh0 + 2j + 1 (tile row j < rows) and columns ow0 + 2i, ow0 + 2i + 1 of the
// OH x OW plane dyk (zeros outside it: the outputs a tile covers beyond an odd OH/OW get no
// gradient). Separable like the input transform: A^T across each row's even/odd columns,
// then A down the two rows.
template <typename T>
void winograd_grad_output_run(const T* dyk, int64_t OH, int64_t OW, int64_t oh0, int64_t ow0,
                              int len, int rows, T* out, int64_t xi_stride) {
    const int n = rows * len, lv = vec_lanes<T>(n), rv = vec_lanes<T>(len);
    T e[2][kBuf], od[2][kBuf];
    for (int j = 0; j < rows; ++j)
        for (int r = 0; r < 2; ++r) {
            const int at = j * len;
            if (oh0 + 2 * j + r >= OH) {
                for (int i = at; i < at + rv; ++i) e[r][i] = od[r][i] = T(0);
                continue;
            }
            load_even_odd(dyk + (oh0 + 2 * j + r) * OW, ow0, OW, len, e[r] + at, od[r] + at);
        }
    for (int r = 0; r < 2; ++r)
        for (int i = (rows - 1) * len + rv; i < lv; ++i) e[r][i] = od[r][i] = T(0);
    T s[2][4][kBuf];  // dY A^T per row: (y0, y0 + y1, y0 - y1, -y1)
    for (int r = 0; r < 2; ++r)
        for (int i = 0; i < lv; ++i) {
            s[r][0][i] = e[r][i];
            s[r][1][i] = e[r][i] + od[r][i];
            s[r][2][i] = e[r][i] - od[r][i];
            s[r][3][i] = -od[r][i];
        }
    T z[4][kBuf];
    for (int q = 0; q < 4; ++q) {  // A (dY A^T): rows r0, r0 + r1, r0 - r1, -r1
        const T* r0 = s[0][q];
        const T* r1 = s[1][q];
        for (int i = 0; i < lv; ++i) {
            z[0][i] = r0[i];
            z[1][i] = r0[i] + r1[i];
            z[2][i] = r0[i] - r1[i];
            z[3][i] = -r1[i];
        }
        for (int r = 0; r < 4; ++r) store_lanes(out + (r * 4 + q) * xi_stride, z[r], n);
    }
}

template <typename T>
void winograd_output(const T* m, int64_t xi_stride, int lanes, T bias, T* o) {
    T s[8][kLanes];  // A^T m: rows 0 and 1, 4 columns each
    for (int q = 0; q < 4; ++q) {
        const T* m0 = m + q * xi_stride;
        const T* m1 = m + (4 + q) * xi_stride;
        const T* m2 = m + (8 + q) * xi_stride;
        const T* m3 = m + (12 + q) * xi_stride;
        for (int j = 0; j < lanes; ++j) {
            s[q][j] = m0[j] + m1[j] + m2[j];
            s[4 + q][j] = m1[j] - m2[j] - m3[j];
        }
    }
    for (int r = 0; r < 2; ++r) {  // (A^T m) A
        T* y0 = o + (r * 2) * kLanes;
        T* y1 = o + (r * 2 + 1) * kLanes;
        for (int j = 0; j < lanes; ++j) {
            const T s0 = s[r * 4][j], s1 = s[r * 4 + 1][j], s2 = s[r * 4 + 2][j],
                    s3 = s[r * 4 + 3][j];
            y0[j] = s0 + s1 + s2 + bias;
            y1[j] = s1 - s2 - s3 + bias;
        }
    }
}

FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(float)
FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
