// Vectorisable depthwise plane kernels, compiled once per ISA: the including .cpp defines
// FASTCONV_ISA (avx2 / avx512) and is built with that ISA's flags. Loops run tap by tap
// over whole output rows restricted to the in-bounds range, so the innermost loop has no
// branches and unit stride when stride_w == 1 (the common depthwise 3x3/s1 case).
// Semantics: KernelSet depthwise slots (fastconv/kernel_table.h).
// No std:: function templates here: their instantiations would be COMDAT-merged with
// baseline copies, and the linker could hand a baseline caller this file's AVX code.
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including depthwise_impl.h"
#endif

#include <cstdint>

#include "fastconv/plane_kernels.h"
#include "kernels/conv2d/im2col.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_DEPTHWISE_KERNELS

template <typename T>
void depthwise_forward_plane(const Conv2dParams& p, const T* __restrict x, const T* __restrict w,
                             T bias, T* __restrict y) {
    const int64_t sw = p.stride_w;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        T* __restrict yr = y + oh * p.OW;
        for (int64_t ow = 0; ow < p.OW; ++ow) yr[ow] = bias;
        for (int64_t kh = 0; kh < p.KH; ++kh) {
            const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
            if (ih < 0 || ih >= p.H) continue;
            for (int64_t kw = 0; kw < p.KW; ++kw) {
                const int64_t off = kw * p.dil_w - p.pad_left;
                int64_t lo, hi;
                valid_output_range(p.OW, sw, off, p.W, &lo, &hi);
                const T wv = w[kh * p.KW + kw];
                const T* __restrict xr = x + ih * p.W + off;
                if (sw == 1) {
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xr[ow];
                } else {
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xr[ow * sw];
                }
            }
        }
    }
}

template <typename T>
void depthwise_backward_data_plane(const Conv2dParams& p, T* __restrict dx, const T* __restrict dy,
                                   const T* __restrict w) {
    const int64_t sw = p.stride_w;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const T* __restrict gr = dy + oh * p.OW;
        for (int64_t kh = 0; kh < p.KH; ++kh) {
            const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
            if (ih < 0 || ih >= p.H) continue;
            for (int64_t kw = 0; kw < p.KW; ++kw) {
                const int64_t off = kw * p.dil_w - p.pad_left;
                int64_t lo, hi;
                valid_output_range(p.OW, sw, off, p.W, &lo, &hi);
                const T wv = w[kh * p.KW + kw];
                T* __restrict xr = dx + ih * p.W + off;
                // distinct ow hit distinct iw (sw >= 1), so the row update has no conflicts
                if (sw == 1) {
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ++ow) xr[ow] += wv * gr[ow];
                } else {
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ++ow) xr[ow * sw] += wv * gr[ow];
                }
            }
        }
    }
}

// Each tap's sum runs over all output rows in per-lane partial sums (acc[ow]) and is reduced
// to a scalar once per tap, not once per row: rows are short (10..56) and a horizontal sum
// per row would cost as much as the row's FMAs.
template <typename T>
void depthwise_backward_weight_plane(const Conv2dParams& p, T* __restrict dw,
                                     const T* __restrict dy, const T* __restrict x) {
    constexpr int64_t kChunk = 256;  // output columns per pass: acc stays in L1
    T acc[kChunk];
    const int64_t sw = p.stride_w;
    for (int64_t kh = 0; kh < p.KH; ++kh)
        for (int64_t kw = 0; kw < p.KW; ++kw) {
            const int64_t off = kw * p.dil_w - p.pad_left;
            int64_t lo, hi;
            valid_output_range(p.OW, sw, off, p.W, &lo, &hi);
            T total = T(0);
            for (int64_t c0 = lo; c0 < hi; c0 += kChunk) {
                const int64_t n = hi - c0 < kChunk ? hi - c0 : kChunk;
                for (int64_t i = 0; i < n; ++i) acc[i] = T(0);
                for (int64_t oh = 0; oh < p.OH; ++oh) {
                    const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                    if (ih < 0 || ih >= p.H) continue;
                    const T* __restrict gr = dy + oh * p.OW + c0;
                    const T* __restrict xr = x + ih * p.W + off + c0 * sw;
                    if (sw == 1) {
#pragma omp simd
                        for (int64_t i = 0; i < n; ++i) acc[i] += gr[i] * xr[i];
                    } else {
#pragma omp simd
                        for (int64_t i = 0; i < n; ++i) acc[i] += gr[i] * xr[i * sw];
                    }
                }
                T s = T(0);
#pragma omp simd reduction(+ : s)
                for (int64_t i = 0; i < n; ++i) s += acc[i];
                total += s;
            }
            dw[kh * p.KW + kw] += total;
        }
}

FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(float)
FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
