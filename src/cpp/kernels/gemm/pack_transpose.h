// Transposing copies for packing: kTransposeRows<T> source rows (each contiguous) into
// interleaved destination rows, out[p*ld + i] = row_i[p]. Element by element, every store
// lands ld elements from the last and the copy runs at ~1 element per cycle; a 4x4 (float)
// or 2x2 (double) register transpose moves 16 bytes per load and per store. SSE2 is in the
// x86-64 baseline, so the portable drivers use it; other CPUs get the element loop.
// Users: packA of a row-major A, packB of a transposed B (gemm_driver.cpp), and the
// transposed im2col packing of backward_weight (im2col.cpp). Include it from portable
// (baseline) sources only: these inline functions must not be merged with a copy built
// with an ISA's flags (see params.h).
#pragma once

#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fastconv {

template <typename T>
constexpr int kTransposeRows = 16 / sizeof(T);

// out[p*ld + i] = rows[i][p] for i < kTransposeRows<T>, p < len.
inline void transpose_rows(const float* const* rows, int64_t len, int64_t ld, float* out) {
    const float *s0 = rows[0], *s1 = rows[1], *s2 = rows[2], *s3 = rows[3];
    int64_t p = 0;
#if defined(__SSE2__)
    for (; p + 4 <= len; p += 4) {
        __m128 r0 = _mm_loadu_ps(s0 + p), r1 = _mm_loadu_ps(s1 + p);
        __m128 r2 = _mm_loadu_ps(s2 + p), r3 = _mm_loadu_ps(s3 + p);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(out + p * ld, r0);
        _mm_storeu_ps(out + (p + 1) * ld, r1);
        _mm_storeu_ps(out + (p + 2) * ld, r2);
        _mm_storeu_ps(out + (p + 3) * ld, r3);
    }
#endif
    for (; p < len; ++p) {
        float* dst = out + p * ld;
        dst[0] = s0[p];
        dst[1] = s1[p];
        dst[2] = s2[p];
        dst[3] = s3[p];
    }
}

inline void transpose_rows(const double* const* rows, int64_t len, int64_t ld, double* out) {
    const double *s0 = rows[0], *s1 = rows[1];
    int64_t p = 0;
#if defined(__SSE2__)
    for (; p + 2 <= len; p += 2) {
        const __m128d r0 = _mm_loadu_pd(s0 + p), r1 = _mm_loadu_pd(s1 + p);
        _mm_storeu_pd(out + p * ld, _mm_unpacklo_pd(r0, r1));
        _mm_storeu_pd(out + (p + 1) * ld, _mm_unpackhi_pd(r0, r1));
    }
#endif
    for (; p < len; ++p) {
        out[p * ld] = s0[p];
        out[p * ld + 1] = s1[p];
    }
}

// transpose_rows over rows src, src + rs, src + 2*rs, ...
template <typename T>
inline void transpose_strided_rows(const T* src, int64_t rs, int64_t len, int64_t ld, T* out) {
    const T* rows[kTransposeRows<T>];
    for (int i = 0; i < kTransposeRows<T>; ++i) rows[i] = src + i * rs;
    transpose_rows(rows, len, ld, out);
}

}  // namespace fastconv
