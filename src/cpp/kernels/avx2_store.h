// The first n lanes of an AVX2 vector to memory by 16-, 8- and 4-byte stores, for the
// partial vectors of the AVX2 kernels: AVX2's masked stores (vmaskmovps/pd) are microcoded
// on AMD (Zen 3: 60 % of the F(2x2) input transform with rows of 7 tiles). Include only from
// files compiled with AVX2 and without AVX-512; the anonymous namespace gives each file its
// own copy, never merged with another ISA's build of it.
#pragma once

#if !defined(__AVX2__) || defined(__AVX512F__)
#error "kernels/avx2_store.h is for the AVX2 kernel files"
#endif

#include <immintrin.h>

#include <cstdint>

namespace fastconv {
namespace {

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

}  // namespace
}  // namespace fastconv
