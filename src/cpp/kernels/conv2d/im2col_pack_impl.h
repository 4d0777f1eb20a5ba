// im2col_pack_panel for one ISA: the including .cpp defines FASTCONV_ISA (ref / avx2 /
// avx512) and is compiled with that ISA's flags. Runs are short (an output row, at most NR
// lanes), so unit-stride runs are copied with masked vector loads/stores rather than
// memcpy calls, whose per-call cost would dominate. Semantics: KernelSet::im2col_pack_panel.
// No std:: function templates here (see depthwise_impl.h).
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including im2col_pack_impl.h"
#endif

#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_IM2COL_KERNELS

namespace {

template <typename T>
inline void copy_run(T* __restrict d, const T* __restrict s, int64_t len) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        for (; len >= 16; len -= 16, d += 16, s += 16) _mm512_storeu_ps(d, _mm512_loadu_ps(s));
        if (len > 0) {
            const __mmask16 m = static_cast<__mmask16>((1u << len) - 1u);
            _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
        }
    } else {
        for (; len >= 8; len -= 8, d += 8, s += 8) _mm512_storeu_pd(d, _mm512_loadu_pd(s));
        if (len > 0) {
            const __mmask8 m = static_cast<__mmask8>((1u << len) - 1u);
            _mm512_mask_storeu_pd(d, m, _mm512_maskz_loadu_pd(m, s));
        }
    }
#elif defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
        for (; len >= 8; len -= 8, d += 8, s += 8) _mm256_storeu_ps(d, _mm256_loadu_ps(s));
        if (len > 0) {
            // lane i active iff i < len: compare the lane index against len
            const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(len)),
                                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            _mm256_maskstore_ps(d, m, _mm256_maskload_ps(s, m));
        }
    } else {
        for (; len >= 4; len -= 4, d += 4, s += 4) _mm256_storeu_pd(d, _mm256_loadu_pd(s));
        if (len > 0) {
            const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(len),
                                                 _mm256_setr_epi64x(0, 1, 2, 3));
            _mm256_maskstore_pd(d, m, _mm256_maskload_pd(s, m));
        }
    }
#else
    for (int64_t i = 0; i < len; ++i) d[i] = s[i];
#endif
}

}  // namespace

template <typename T>
void im2col_pack_panel(const T* xp, const int64_t* row_off, int64_t nrows, const Im2colRun* runs,
                       int64_t nruns, int64_t stride_w, int64_t ncols, int64_t nr, T* out) {
    for (int64_t r = 0; r < nrows; ++r, out += nr) {
        const T* base = xp + row_off[r];
        if (stride_w == 1) {
            for (int64_t q = 0; q < nruns; ++q) copy_run(out + runs[q].dst, base + runs[q].src, runs[q].len);
        } else {
            for (int64_t q = 0; q < nruns; ++q) {
                const T* s = base + runs[q].src;
                T* d = out + runs[q].dst;
                for (int64_t i = 0; i < runs[q].len; ++i) d[i] = s[i * stride_w];
            }
        }
        for (int64_t j = ncols; j < nr; ++j) out[j] = T(0);
    }
}

FASTCONV_INSTANTIATE_IM2COL_KERNELS(float)
FASTCONV_INSTANTIATE_IM2COL_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
