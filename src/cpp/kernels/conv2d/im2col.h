// im2col / col2im for one image and group (Chellapilla, Puri & Simard 2006).
//   col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][oh*sh - pad_top + kh*dh][ow*sw - pad_left + kw*dw]
// (0 where the tap falls in padding); col is (C/g*KH*KW) x (OH*OW), x is [C/g][H][W].
// col2im is the adjoint: it OVERWRITES dx (zeroes it, then scatter-adds every col entry).
#pragma once

#include <cstdint>

#include "fastconv/params.h"
#include "kernels/gemm/gemm_packed.h"

namespace fastconv {

template <typename T>
void im2col(const Conv2dParams& p, const T* x, T* col);
// im2col written straight into the packed-B layout of gemm_packed.h (B = col, K = C/g*KH*KW,
// N = OH*OW), skipping the separate packB pass. scratch: im2col_packed_scratch() elements
// (a zero-padded copy of the input group when padding is needed, plus the run table).
template <typename T>
void im2col_packed(const Conv2dParams& p, const T* x, const GemmPacking& pk, T* out, T* scratch);
template <typename T>
int64_t im2col_packed_scratch(const Conv2dParams& p, const GemmPacking& pk);
template <typename T>
void col2im(const Conv2dParams& p, const T* col, T* dx);

// Output positions o in [*lo, *hi) whose tap o*stride + offset lies in [0, size).
static inline void valid_output_range(int64_t n_out, int64_t stride, int64_t offset, int64_t size,
                               int64_t* lo, int64_t* hi) {
    *lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    *hi = offset > size - 1 ? 0 : (size - 1 - offset) / stride + 1;
    if (*hi > n_out) *hi = n_out;
    if (*lo > *hi) *lo = *hi;
}

}  // namespace fastconv
