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
// row's offset in the padded input. With nb > 1 the column matrix holds nb images side by
// side (N = nb*OH*OW), so small feature maps still fill whole NR panels.
struct Im2colPlan {
    int64_t Hp = 0, Wp = 0;  // padded input extent the taps reach
    bool need_pad = false;   // if false the input is used in place (Hp = H, Wp = W)
    int64_t nb = 1;          // images side by side
    int64_t img_stride = 0;  // elements between images in the array packed from
    int64_t ncols = 0;       // nb * OH * OW
    std::vector<Im2colRun> runs;
    std::vector<int64_t> first;    // runs of panel jp: [first[jp], first[jp+1])
    std::vector<int64_t> row_off;  // per column-matrix row r = (c, kh, kw)
    int64_t padded_size(int64_t c_per_group) const {
        return need_pad ? nb * c_per_group * Hp * Wp : 0;
    }
};
// x_img_stride: elements between images of the input (C*H*W), used when it needs no padding.
Im2colPlan make_im2col_plan(const Conv2dParams& p, int64_t nr, int64_t nb = 1,
                            int64_t x_img_stride = 0);

// The plan's nb images of one input group (x: the first image's group, x_img_stride
// elements to the next) zero-padded to Hp x Wp in `padded` (plan.padded_size(C/g)
// elements), or x itself when the plan needs no padding. Returns the array to pack from.
template <typename T>
const T* im2col_pad(const Conv2dParams& p, const Im2colPlan& plan, const T* x,
                    int64_t x_img_stride, T* padded);
// im2col written straight into the packed-B layout of gemm_packed.h (B = col, K = C/g*KH*KW,
// N = plan.ncols) for the NR panels [jp0, jp1) only, as if N were (jp1 - jp0)*NR wide: the
// separate packB pass is skipped, and a driver can pack and consume one panel at a time.
template <typename T>
void im2col_pack_panels(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                        const GemmPacking<T>& pk, int64_t jp0, int64_t jp1, T* out);
// Rows [pc, pc + kc) (one KC block, kc <= KC) of the packed im2col matrix, every panel:
// the packed-B layout of a K = kc matrix. Panels are split over nthreads.
template <typename T>
void im2col_pack_block(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                       const GemmPacking<T>& pk, int64_t pc, int64_t kc, T* out, int nthreads);
// The transposed column matrix col^T (K = OH*OW rows, N = C/g*KH*KW columns) of one image
// (a plan with nb = 1) in the packed-B layout of gemm_packed.h, for backward_weight's
// dW_g = dy_g * col^T: no column matrix is written first, and with stride 1 each run of
// an output row is copied by register transposes. Panels are split over nthreads.
template <typename T>
void im2col_pack_transposed(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                            const GemmPacking<T>& pk, T* out, int nthreads);
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
