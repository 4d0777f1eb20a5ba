// im2col_pack_panel for one ISA: the including .cpp defines FASTCONV_ISA (ref / avx2 /
// avx512) and is compiled with that ISA's flags. Runs are short (an output row, at most NR
// lanes), so unit-stride runs are copied with (masked) vector loads/stores rather than
// memcpy calls, whose per-call cost would dominate. Semantics: KernelSet::im2col_pack_panel.
// No std:: function templates here (see direct_impl.h).
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

// Copies one run (same lanes, same source offset) for every row r < nrows of a panel:
//   out[r*nr + i] = base[row_off[r] + i], i < len.
// Run-major order: the run's lane mask is built once, and the inner loop is one (masked)
// vector load and store per row, instead of re-reading the run table for every row.
template <typename T>
inline void copy_run_all_rows(T* __restrict out, int64_t nr, const T* __restrict base,
                              const int64_t* __restrict row_off, int64_t nrows, int64_t len) {
#if defined(__AVX512F__)
    constexpr int64_t W = 64 / sizeof(T);
    const int64_t full = len / W, rem = len % W;
    const uint32_t bits = (1u << rem) - 1u;
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = base + row_off[r];
        T* d = out + r * nr;
        if constexpr (std::is_same_v<T, float>) {
            for (int64_t c = 0; c < full; ++c)
                _mm512_storeu_ps(d + c * W, _mm512_loadu_ps(s + c * W));
            if (rem) {
                const __mmask16 m = static_cast<__mmask16>(bits);
                _mm512_mask_storeu_ps(d + full * W, m, _mm512_maskz_loadu_ps(m, s + full * W));
            }
        } else {
            for (int64_t c = 0; c < full; ++c)
                _mm512_storeu_pd(d + c * W, _mm512_loadu_pd(s + c * W));
            if (rem) {
                const __mmask8 m = static_cast<__mmask8>(bits);
                _mm512_mask_storeu_pd(d + full * W, m, _mm512_maskz_loadu_pd(m, s + full * W));
            }
        }
    }
#elif defined(__AVX2__)
    // Full 256-bit chunks, then scalar: AVX2 masked stores are slow on several AMD cores.
    constexpr int64_t W = 32 / sizeof(T);
    const int64_t full = len / W;
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = base + row_off[r];
        T* d = out + r * nr;
        for (int64_t c = 0; c < full; ++c) {
            if constexpr (std::is_same_v<T, float>)
                _mm256_storeu_ps(d + c * W, _mm256_loadu_ps(s + c * W));
            else
                _mm256_storeu_pd(d + c * W, _mm256_loadu_pd(s + c * W));
        }
        for (int64_t i = full * W; i < len; ++i) d[i] = s[i];
    }
#else
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = base + row_off[r];
        T* d = out + r * nr;
        for (int64_t i = 0; i < len; ++i) d[i] = s[i];
    }
#endif
}

}  // namespace

template <typename T>
void im2col_pack_panel(const T* xp, const int64_t* row_off, int64_t nrows, const Im2colRun* runs,
                       int64_t nruns, int64_t stride_w, int64_t ncols, int64_t nr, T* out) {
    if (stride_w == 1) {
        for (int64_t q = 0; q < nruns; ++q)
            copy_run_all_rows(out + runs[q].dst, nr, xp + runs[q].src, row_off, nrows, runs[q].len);
    } else {
        for (int64_t r = 0; r < nrows; ++r) {
            const T* base = xp + row_off[r];
            for (int64_t q = 0; q < nruns; ++q) {
                const T* s = base + runs[q].src;
                T* d = out + r * nr + runs[q].dst;
                for (int64_t i = 0; i < runs[q].len; ++i) d[i] = s[i * stride_w];
            }
        }
    }
    if (ncols < nr)
        for (int64_t r = 0; r < nrows; ++r)
            for (int64_t j = ncols; j < nr; ++j) out[r * nr + j] = T(0);
}

FASTCONV_INSTANTIATE_IM2COL_KERNELS(float)
FASTCONV_INSTANTIATE_IM2COL_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
