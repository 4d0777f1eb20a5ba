// Lane helpers shared by the AVX2 kernel files: lane-range masks (for vmaskmovps loads),
// even / odd / interleaved lanes of two vectors, 4x4 transposes within 128-bit lanes and
// 8x8 ones, stores of a vector's first n lanes by 16-, 8- and 4-byte pieces, and all of
// them as traits of float and double (Lanes256): AVX2's
// masked stores (vmaskmovps/pd) are microcoded on AMD (Zen 3: 60 % of the F(2x2) input transform
// with rows of 7 tiles). Include only from files compiled with AVX2 and without AVX-512; the
// anonymous namespace gives each file its own copy, never merged with another ISA's build of it.
#pragma once

#if !defined(__AVX2__) || defined(__AVX512F__)
#error "kernels/avx2_lanes.h is for the AVX2 kernel files"
#endif

#include <immintrin.h>

#include <cstdint>

namespace fastconv {
namespace {

// All-ones in the 32-bit lanes q in [a, b) (float), the 64-bit lanes (double); a and b
// are clamped to the lanes.
inline __m256i lanes32(int64_t a, int64_t b) {
    const __m256i q = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    a = a < 0 ? 0 : a > 8 ? 8 : a;
    b = b < 0 ? 0 : b > 8 ? 8 : b;
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(a)), q),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(b)), q));
}
inline __m256i lanes64(int64_t a, int64_t b) {
    const __m256i q = _mm256_setr_epi64x(0, 1, 2, 3);
    a = a < 0 ? 0 : a > 4 ? 4 : a;
    b = b < 0 ? 0 : b > 4 ? 4 : b;
    return _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(a), q),
                               _mm256_cmpgt_epi64(_mm256_set1_epi64x(b), q));
}

// Elements 0, 2, 4, .. and 1, 3, 5, .. of the 16 floats lo:hi within 128-bit lanes, one
// shufps each: lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6 (the lane order (0 1 4 5 2 3 6 7) of the
// result); in_pair_order puts the 64-bit pairs, and so the lanes, in order.
inline __m256 evens_in_lanes(__m256 lo, __m256 hi) {
    return _mm256_shuffle_ps(lo, hi, 0x88);
}
inline __m256 odds_in_lanes(__m256 lo, __m256 hi) {
    return _mm256_shuffle_ps(lo, hi, 0xDD);
}
inline __m256 in_pair_order(__m256 v) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}
// The same for the 8 doubles lo:hi (unpacklo: lo0 hi0 | lo2 hi2, lane order (0 2 1 3)).
inline __m256d evens_in_lanes(__m256d lo, __m256d hi) {
    return _mm256_unpacklo_pd(lo, hi);
}
inline __m256d odds_in_lanes(__m256d lo, __m256d hi) {
    return _mm256_unpackhi_pd(lo, hi);
}
inline __m256d in_pair_order(__m256d v) {
    return _mm256_permute4x64_pd(v, 0xD8);
}
// Elements 0, 2, 4, .. (evens) and 1, 3, 5, .. (odds) of lo:hi, in order.
template <typename V>
inline V evens(V lo, V hi) {
    return in_pair_order(evens_in_lanes(lo, hi));
}
template <typename V>
inline V odds(V lo, V hi) {
    return in_pair_order(odds_in_lanes(lo, hi));
}
// The first halves of a and b interleaved: a0 b0 a1 b1 ...
inline __m256 zip(__m256 a, __m256 b) {
    return _mm256_permute2f128_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b), 0x20);
}
inline __m256d zip(__m256d a, __m256d b) {
    return _mm256_permute2f128_pd(_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b), 0x20);
}
// All of a and b interleaved, as two vectors: lo = zip(a, b), hi the second halves'.
inline void zip2(__m256 a, __m256 b, __m256* lo, __m256* hi) {
    const __m256 u = _mm256_unpacklo_ps(a, b), v = _mm256_unpackhi_ps(a, b);
    *lo = _mm256_permute2f128_ps(u, v, 0x20);
    *hi = _mm256_permute2f128_ps(u, v, 0x31);
}
inline void zip2(__m256d a, __m256d b, __m256d* lo, __m256d* hi) {
    const __m256d u = _mm256_unpacklo_pd(a, b), v = _mm256_unpackhi_pd(a, b);
    *lo = _mm256_permute2f128_pd(u, v, 0x20);
    *hi = _mm256_permute2f128_pd(u, v, 0x31);
}

// The 4x4 transpose within each 128-bit lane: a[i] lane g element e <- a[e] lane g element i.
inline void transpose_in_lanes(__m256 (&a)[4]) {
    auto lo = [](__m256 x, __m256 y) {
        return _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)));
    };
    auto hi = [](__m256 x, __m256 y) {
        return _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)));
    };
    const __m256 u0 = _mm256_unpacklo_ps(a[0], a[1]), u1 = _mm256_unpackhi_ps(a[0], a[1]);
    const __m256 u2 = _mm256_unpacklo_ps(a[2], a[3]), u3 = _mm256_unpackhi_ps(a[2], a[3]);
    a[0] = lo(u0, u2);
    a[1] = hi(u0, u2);
    a[2] = lo(u1, u3);
    a[3] = hi(u1, u3);
}

// The 8x8 transpose: a[i] element e <- a[e] element i (4x4 blocks within the 128-bit
// lanes, then the lanes exchanged).
inline void transpose8x8(__m256 (&a)[8]) {
    __m256 lo[4] = {a[0], a[1], a[2], a[3]}, hi[4] = {a[4], a[5], a[6], a[7]};
    transpose_in_lanes(lo);
    transpose_in_lanes(hi);
    for (int i = 0; i < 4; ++i) {
        a[i] = _mm256_permute2f128_ps(lo[i], hi[i], 0x20);
        a[i + 4] = _mm256_permute2f128_ps(lo[i], hi[i], 0x31);
    }
}

// Lanes [0, n) of v to p: all 8 for n >= 8.
inline void store_first(float* p, __m256 v, int64_t n) {
    if (n >= 8) return _mm256_storeu_ps(p, v);
    __m128 part = _mm256_castps256_ps128(v);
    if (n & 4) {
        _mm_storeu_ps(p, part);
        p += 4;
        part = _mm256_extractf128_ps(v, 1);
    }
    if (n & 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
        p += 2;
        part = _mm_movehl_ps(part, part);
    }
    if (n & 1) _mm_store_ss(p, part);
}

// Lanes [0, n) of v to p: all 4 for n >= 4.
inline void store_first(double* p, __m256d v, int64_t n) {
    if (n >= 4) return _mm256_storeu_pd(p, v);
    __m128d part = _mm256_castpd256_pd128(v);
    if (n & 2) {
        _mm_storeu_pd(p, part);
        p += 2;
        part = _mm256_extractf128_pd(v, 1);
    }
    if (n & 1) _mm_store_sd(p, part);
}

// Lanes [0, n) of base + off (8 int32 offsets) to dst as int64 (pooling indices).
inline void store_indices(int64_t* dst, __m256i off, int64_t base, int64_t n) {
    const __m256i b = _mm256_set1_epi64x(base);
    const __m256i lo = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(off)), b);
    const __m256i hi = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(off, 1)), b);
    // int64 lanes stored as doubles' bits: store_first only moves them.
    double* d = reinterpret_cast<double*>(dst);
    store_first(d, _mm256_castsi256_pd(lo), n);
    if (n > 4) store_first(d + 4, _mm256_castsi256_pd(hi), n - 4);
}

// The operations above and the usual ones as traits of one element type, for kernels
// written once for float and double: L lanes of T in V; masks are vectors of all-ones /
// zero lanes.
template <typename T>
struct Lanes256;
template <>
struct Lanes256<float> {
    static constexpr int64_t L = 8;
    using V = __m256;
    static __m256i lanes(int64_t a, int64_t b) { return lanes32(a, b); }
    static __m256i even_mask() { return _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0); }
    static __m256i from_bits(uint32_t m) {  // lane q set where bit q of m is
        const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(m)), bit),
                                  bit);
    }
    static int count(__m256i m) {  // set lanes
        return __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(m)));
    }
    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float s) { return _mm256_set1_ps(s); }
    static V loadu(const float* p) { return _mm256_loadu_ps(p); }
    static V maskload(__m256i m, const float* p) { return _mm256_maskload_ps(p, m); }
    static V keep(__m256i m, V v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }
    static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V bit_or(V a, V b) { return _mm256_or_ps(a, b); }
    static float sum(V v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    }
};
template <>
struct Lanes256<double> {
    static constexpr int64_t L = 4;
    using V = __m256d;
    static __m256i lanes(int64_t a, int64_t b) { return lanes64(a, b); }
    static __m256i even_mask() { return _mm256_setr_epi64x(-1, 0, -1, 0); }
    static __m256i from_bits(uint32_t m) {
        const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
        return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(m), bit), bit);
    }
    static int count(__m256i m) {
        return __builtin_popcount(_mm256_movemask_pd(_mm256_castsi256_pd(m)));
    }
    static V zero() { return _mm256_setzero_pd(); }
    static V set1(double s) { return _mm256_set1_pd(s); }
    static V loadu(const double* p) { return _mm256_loadu_pd(p); }
    static V maskload(__m256i m, const double* p) { return _mm256_maskload_pd(p, m); }
    static V keep(__m256i m, V v) { return _mm256_and_pd(_mm256_castsi256_pd(m), v); }
    static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
    static V add(V a, V b) { return _mm256_add_pd(a, b); }
    static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V bit_or(V a, V b) { return _mm256_or_pd(a, b); }
    static double sum(V v) {
        const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};

}  // namespace
}  // namespace fastconv
