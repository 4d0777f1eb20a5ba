#include "kernels/conv2d/im2col.h"

#include <algorithm>
#include <cstring>

#include "common/parallel.h"
#include "common/row_copy.h"
#include "fastconv/kernel_table.h"
#include "fastconv/plane_kernels.h"
#include "kernels/gemm/pack_transpose.h"

namespace fastconv {

namespace {

// One im2col row (channel c's plane xc, tap kh, kw) into dst[OH*OW]. Plain loops rather
// than memcpy: rows are short (OW is 10..56 in the target nets) and calls would dominate.
template <typename T>
void im2col_row(const Conv2dParams& p, const T* xc, int64_t kh, int64_t kw, T* dst) {
    const int64_t w_off = kw * p.dil_w - p.pad_left, sw = p.stride_w;
    int64_t lo, hi;
    valid_output_range(p.OW, sw, w_off, p.W, &lo, &hi);
    for (int64_t oh = 0; oh < p.OH; ++oh, dst += p.OW) {
        const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
        if (ih < 0 || ih >= p.H) {
            for (int64_t ow = 0; ow < p.OW; ++ow) dst[ow] = T(0);
            continue;
        }
        const T* src = xc + ih * p.W + w_off;
        for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
        if (sw == 1)
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow];
        else
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * sw];
        for (int64_t ow = hi; ow < p.OW; ++ow) dst[ow] = T(0);
    }
}

}  // namespace

template <typename T>
void im2col(const Conv2dParams& p, const T* x, T* col, int nthreads) {
    const int64_t Cg = p.c_per_group(), OHW = p.OH * p.OW;
#pragma omp parallel for schedule(dynamic) \
    num_threads(team_for(nthreads)) if (nthreads > 1 && Cg > 1)
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw)
                im2col_row(p, x + c * p.H * p.W, kh, kw, col + ((c * p.KH + kh) * p.KW + kw) * OHW);
}

// With the input zero-padded to exactly the extent the taps reach (Hp x Wp), element
// (r = (c, kh, kw), j = (oh, ow)) of the column matrix is xp[row_off[r] + oh*sh*Wp + ow*sw]
// with row_off[r] = c*Hp*Wp + kh*dh*Wp + kw*dw: a row-dependent base plus a column-dependent
// offset. So every NR panel is one fixed list of runs (one per output row it touches),
// copied for all rows by the ISA's im2col_pack_panel, panel by panel so writes are sequential.
Im2colPlan make_im2col_plan(const Conv2dParams& p, int64_t nr, int64_t nb,
                            int64_t x_img_stride) {
    Im2colPlan plan;
    plan.Hp = (p.OH - 1) * p.stride_h + (p.KH - 1) * p.dil_h + 1;
    plan.Wp = (p.OW - 1) * p.stride_w + (p.KW - 1) * p.dil_w + 1;
    plan.need_pad = p.pad_top > 0 || p.pad_left > 0 || plan.Hp > p.H || plan.Wp > p.W;
    if (!plan.need_pad) plan.Hp = p.H, plan.Wp = p.W;
    const int64_t OHW = p.OH * p.OW;
    plan.nb = nb;
    plan.img_stride = plan.need_pad ? p.c_per_group() * plan.Hp * plan.Wp : x_img_stride;
    plan.ncols = nb * OHW;
    const int64_t npanels = (plan.ncols + nr - 1) / nr;
    plan.first.reserve(npanels + 1);
    plan.runs.reserve(npanels + nb * p.OH);
    for (int64_t jp = 0; jp < npanels; ++jp) {
        plan.first.push_back(static_cast<int64_t>(plan.runs.size()));
        const int64_t j_end = std::min<int64_t>(plan.ncols, (jp + 1) * nr);
        for (int64_t j = jp * nr; j < j_end;) {  // one run per output row (and image) touched
            const int64_t n = j / OHW, oh = j % OHW / p.OW, ow = j % p.OW;
            const int64_t len = std::min<int64_t>(p.OW - ow, j_end - j);
            plan.runs.push_back({n * plan.img_stride + oh * p.stride_h * plan.Wp + ow * p.stride_w,
                                 j - jp * nr, len});
            j += len;
        }
    }
    plan.first.push_back(static_cast<int64_t>(plan.runs.size()));
    plan.row_off.resize(p.col_rows());
    int64_t* off = plan.row_off.data();  // row r = (c, kh, kw); nested loops, no divisions
    for (int64_t c = 0; c < p.col_rows() / (p.KH * p.KW); ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw)
                *off++ = c * plan.Hp * plan.Wp + kh * p.dil_h * plan.Wp + kw * p.dil_w;
    return plan;
}

template <typename T>
const T* im2col_pad(const Conv2dParams& p, const Im2colPlan& plan, const T* x,
                    int64_t x_img_stride, T* padded) {
    if (!plan.need_pad) return x;
    const int64_t Hp = plan.Hp, Wp = plan.Wp, Cg = p.c_per_group();
    const int64_t w0 = std::min<int64_t>(p.pad_left, Wp),
                  w1 = std::min<int64_t>(p.pad_left + p.W, Wp);
    for (int64_t n = 0; n < plan.nb; ++n)
        for (int64_t c = 0; c < Cg; ++c)
            for (int64_t h = 0; h < Hp; ++h) {
                T* dst = padded + ((n * Cg + c) * Hp + h) * Wp;
                const int64_t ih = h - p.pad_top;
                if (ih < 0 || ih >= p.H) {
                    zero_row(dst, Wp);
                    continue;
                }
                zero_row(dst, w0);
                copy_row(dst + w0, x + n * x_img_stride + (c * p.H + ih) * p.W, w1 - w0);
                zero_row(dst + w1, Wp - w1);
            }
    return padded;
}

namespace {

// Rows [pc, pc + kc) of panel jp of the packed im2col matrix into out (kc x NR).
template <typename T>
void pack_panel_rows(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                     const GemmPacking<T>& pk, int64_t jp, int64_t pc, int64_t kc, T* out) {
    pk.ks->im2col_pack_panel(xp, plan.row_off.data() + pc, kc, plan.runs.data() + plan.first[jp],
                             plan.first[jp + 1] - plan.first[jp], p.stride_w,
                             std::min<int64_t>(pk.nr, plan.ncols - jp * pk.nr), pk.nr, out);
}

}  // namespace

template <typename T>
void im2col_pack_panels(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                        const GemmPacking<T>& pk, int64_t jp0, int64_t jp1, T* out) {
    const int64_t CKK = p.col_rows(), width = (jp1 - jp0) * pk.nr;
    for (int64_t pc = 0; pc < CKK; pc += pk.kc) {
        const int64_t kc = std::min<int64_t>(pk.kc, CKK - pc);
        for (int64_t jp = jp0; jp < jp1; ++jp)
            pack_panel_rows(p, plan, xp, pk, jp, pc, kc, out + pc * width + (jp - jp0) * kc * pk.nr);
    }
}

template <typename T>
void im2col_pack_block(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                       const GemmPacking<T>& pk, int64_t pc, int64_t kc, T* out, int nthreads) {
    const int64_t npanels = (plan.ncols + pk.nr - 1) / pk.nr;
#pragma omp parallel for schedule(static) num_threads(team_for(nthreads)) if (nthreads > 1)
    for (int64_t jp = 0; jp < npanels; ++jp)
        pack_panel_rows(p, plan, xp, pk, jp, pc, kc, out + jp * kc * pk.nr);
}

template <typename T>
void im2col_pack_transposed(const Conv2dParams& p, const Im2colPlan& plan, const T* xp,
                            const GemmPacking<T>& pk, T* out, int nthreads) {
    // Element (q = (oh, ow), r) of col^T is xp[row_off[r] + oh*sh*Wp + ow*sw]: along one
    // output row (a run) each column r is a contiguous stream when sw == 1.
    constexpr int kRows = kTransposeRows<T>;
    const int64_t OHW = p.OH * p.OW, CKK = p.col_rows(), nr = pk.nr;
    const int64_t Npad = pk.padded_n(CKK), npanels = Npad / nr, sw = p.stride_w;
    // At stride 1 the padding columns past CKK come out of the same transposes, from a row
    // of zeros: element by element they were a memset call per panel row (20 bytes) and a
    // scalar copy of the last columns (27 taps in a panel of 32: a fifth of Keras conv1's
    // weight gradient).
    const std::vector<T> zeros(sw == 1 && nr % kRows == 0 ? static_cast<size_t>(p.OW) : 0);
#pragma omp parallel for schedule(static) num_threads(team_for(nthreads)) if (nthreads > 1)
    for (int64_t jp = 0; jp < npanels; ++jp) {
        const int64_t cols = std::min<int64_t>(nr, CKK - jp * nr);
        const int64_t* roff = plan.row_off.data() + jp * nr;
        for (int64_t pc = 0; pc < OHW; pc += pk.kc) {
            const int64_t kc = std::min<int64_t>(pk.kc, OHW - pc);
            T* panel = out + pc * Npad + jp * kc * nr;
            for (int64_t q = pc; q < pc + kc;) {
                const int64_t oh = q / p.OW, ow = q % p.OW;
                const int64_t len = std::min<int64_t>(p.OW - ow, pc + kc - q);
                const T* base = xp + oh * p.stride_h * plan.Wp + ow * sw;
                T* dst = panel + (q - pc) * nr;
                int64_t j = 0;
                if (!zeros.empty()) {
                    for (; j < nr; j += kRows) {
                        const T* rows[kRows];
                        for (int i = 0; i < kRows; ++i)
                            rows[i] = j + i < cols ? base + roff[j + i] : zeros.data();
                        transpose_rows(rows, len, nr, dst + j);
                    }
                    q += len;
                    continue;
                }
                if (sw == 1)
                    for (; j + kRows <= cols; j += kRows) {
                        const T* rows[kRows];
                        for (int i = 0; i < kRows; ++i) rows[i] = base + roff[j + i];
                        transpose_rows(rows, len, nr, dst + j);
                    }
                for (; j < cols; ++j) {
                    const T* src = base + roff[j];
                    for (int64_t t = 0; t < len; ++t) dst[t * nr + j] = src[t * sw];
                }
                for (int64_t t = 0; t < len; ++t)
                    for (int64_t jj = cols; jj < nr; ++jj) dst[t * nr + jj] = T(0);
                q += len;
            }
        }
    }
}

template <typename T>
void col2im(const Conv2dParams& p, const T* col, T* dx, int nthreads) {
    const int64_t Cg = p.c_per_group(), OHW = p.OH * p.OW;
    // Unit stride along W: each input row gathers its taps in vector registers
    // (KernelSet::col2im_planes), with the same sums in the same order as the loop below.
    // Channel c's rows write only dx[c]: channels are independent.
    if (p.stride_w == 1 && p.KH * p.KW <= kCol2imMaxTaps) {
        const auto planes = kernel_set<T>().col2im_planes;
        const int64_t nchunks = nthreads > 1 ? std::min<int64_t>(Cg, 4 * int64_t{nthreads}) : 1;
#pragma omp parallel for schedule(dynamic) num_threads(team_for(nthreads)) if (nchunks > 1)
        for (int64_t i = 0; i < nchunks; ++i) {
            const int64_t c0 = Cg * i / nchunks, c1 = Cg * (i + 1) / nchunks;
            planes(p, col + c0 * p.KH * p.KW * OHW, c1 - c0, dx + c0 * p.H * p.W);
        }
        return;
    }
#pragma omp parallel for schedule(dynamic) \
    num_threads(team_for(nthreads)) if (nthreads > 1 && Cg > 1)
    for (int64_t c = 0; c < Cg; ++c) {
        std::fill(dx + c * p.H * p.W, dx + (c + 1) * p.H * p.W, T(0));
        for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw) {
                const T* row = col + ((c * p.KH + kh) * p.KW + kw) * OHW;
                const int64_t w_off = kw * p.dil_w - p.pad_left;
                int64_t lo, hi;
                valid_output_range(p.OW, p.stride_w, w_off, p.W, &lo, &hi);
                for (int64_t oh = 0; oh < p.OH; ++oh) {
                    const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                    if (ih < 0 || ih >= p.H) continue;
                    const T* src = row + oh * p.OW;
                    T* dst = dx + (c * p.H + ih) * p.W + w_off;
                    if (p.stride_w == 1) {
                        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ++ow) dst[ow * p.stride_w] += src[ow];
                    }
                }
            }
    }
}

template void im2col<float>(const Conv2dParams&, const float*, float*, int);
template void im2col<double>(const Conv2dParams&, const double*, double*, int);
#define FASTCONV_INSTANTIATE(T)                                                            \
    template const T* im2col_pad<T>(const Conv2dParams&, const Im2colPlan&, const T*, int64_t, \
                                    T*);                                                       \
    template void im2col_pack_panels<T>(const Conv2dParams&, const Im2colPlan&, const T*,  \
                                        const GemmPacking<T>&, int64_t, int64_t, T*);      \
    template void im2col_pack_block<T>(const Conv2dParams&, const Im2colPlan&, const T*,   \
                                       const GemmPacking<T>&, int64_t, int64_t, T*, int);  \
    template void im2col_pack_transposed<T>(const Conv2dParams&, const Im2colPlan&,        \
                                            const T*, const GemmPacking<T>&, T*, int);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE
template void col2im<float>(const Conv2dParams&, const float*, float*, int);
template void col2im<double>(const Conv2dParams&, const double*, double*, int);

}  // namespace fastconv
