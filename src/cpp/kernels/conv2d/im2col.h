// im2col / col2im for one image and group (Chellapilla, Puri & Simard 2006).
//   col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][oh*sh - pad_top + kh*dh][ow*sw - pad_left + kw*dw]
// (0 where the tap falls in padding); col is (C/g*KH*KW) x (OH*OW), x is [C/g][H][W].
// col2im is the adjoint: it OVERWRITES dx (zeroes it, then scatter-adds every col entry).
#pragma once

#include <cstdint>
#include <vector>

#include "fastconv/params.h"
#include "kernels/gemm/gemm_packed.h"

namespace fastconv {

// nthreads > 1 splits the channels over a team (call with 1 inside a parallel region).
template <typename T>
void im2col(const Conv2dParams& p, const T* x, T* col, int nthreads = 1);
// Plan for im2col into packed-B panels of NR columns, built once per call (it depends only
// on shapes): the padded input extent, the copy runs of each panel and each column-matrix
// row's offset in the padded input.
struct Im2colPlan {
    int64_t Hp = 0, Wp = 0;  // padded input extent the taps reach
    bool need_pad = false;   // if false the input is used in place (Hp = H, Wp = W)
    std::vector<Im2colRun> runs;
    std::vector<int64_t> first;    // runs of panel jp: [first[jp], first[jp+1])
    std::vector<int64_t> row_off;  // per column-matrix row r = (c, kh, kw)
    int64_t padded_size(int64_t c_per_group) const { return need_pad ? c_per_group * Hp * Wp : 0; }
};
Im2colPlan make_im2col_plan(const Conv2dParams& p, int64_t nr);

// The input group zero-padded to the plan's Hp x Wp in `padded` (plan.padded_size(C/g)
// elements), or x itself when the plan needs no padding. Returns the array to pack from.
template <typename T>
const T* im2col_pad(const Conv2dParams& p, const Im2colPlan& plan, const T* x, T* padded);
// im2col written straight into the packed-B layout of gemm_packed.h (B = col, K = C/g*KH*KW,
// N = OH*OW) for the NR panels [jp0, jp1) only, as if N were (jp1 - jp0)*NR wide: the
// separate packB pass is skipped, and a driver can pack and consume one panel at a time.
template <typename T>
void im2col_pack_panels(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                        const GemmPacking<T>& pk, int64_t jp0, int64_t jp1, T* out);
template <typename T>
void col2im(const Conv2dParams& p, const T* col, T* dx, int nthreads = 1);

// Output positions o in [*lo, *hi) whose tap o*stride + offset lies in [0, size).
static inline void valid_output_range(int64_t n_out, int64_t stride, int64_t offset, int64_t size,
                                      int64_t* lo, int64_t* hi) {
    *lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    *hi = offset > size - 1 ? 0 : (size - 1 - offset) / stride + 1;
    if (*hi > n_out) *hi = n_out;
    if (*lo > *hi) *lo = *hi;
}

}  // namespace fastconv
