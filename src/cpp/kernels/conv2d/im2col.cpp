#include "kernels/conv2d/im2col.h"

#include "fastconv/kernel_table.h"

#include <algorithm>
#include <cstring>

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
void im2col(const Conv2dParams& p, const T* x, T* col) {
    const int64_t Cg = p.c_per_group(), OHW = p.OH * p.OW;
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw)
                im2col_row(p, x + c * p.H * p.W, kh, kw, col + ((c * p.KH + kh) * p.KW + kw) * OHW);
}

// With the input zero-padded to exactly the extent the taps reach (Hp x Wp), element
// (r = (c, kh, kw), j = (oh, ow)) of the column matrix is xp[row_off[r] + oh*sh*Wp + ow*sw]
// with row_off[r] = c*Hp*Wp + kh*dh*Wp + kw*dw: a row-dependent base plus a column-dependent
// offset. So every NR panel is one fixed list of runs (one per output row it touches),
// copied for each row by the ISA's im2col_pack_panel, panel by panel so writes are sequential.
namespace {
struct PackGeometry {
    int64_t Hp, Wp;
    bool need_pad;
};
PackGeometry pack_geometry(const Conv2dParams& p) {
    PackGeometry g;
    g.Hp = (p.OH - 1) * p.stride_h + (p.KH - 1) * p.dil_h + 1;
    g.Wp = (p.OW - 1) * p.stride_w + (p.KW - 1) * p.dil_w + 1;
    g.need_pad = p.pad_top > 0 || p.pad_left > 0 || g.Hp > p.H || g.Wp > p.W;
    if (!g.need_pad) g.Hp = p.H, g.Wp = p.W;
    return g;
}
int64_t round8(int64_t n) { return (n + 7) / 8 * 8; }
}  // namespace

template <typename T>
int64_t im2col_packed_scratch(const Conv2dParams& p, const GemmPacking& pk) {
    const PackGeometry g = pack_geometry(p);
    const int64_t npanels = pk.padded_n(p.OH * p.OW) / pk.nr;
    const int64_t table_bytes = (npanels + p.OH) * static_cast<int64_t>(sizeof(Im2colRun)) +
                                (npanels + 1 + p.col_rows()) * 8;
    return (g.need_pad ? round8(p.c_per_group() * g.Hp * g.Wp) : 0) +
           round8((table_bytes + sizeof(T) - 1) / sizeof(T));
}

template <typename T>
void im2col_packed(const Conv2dParams& p, const T* x, const GemmPacking& pk, T* out,
                   T* scratch) {
    const int64_t Cg = p.c_per_group(), OHW = p.OH * p.OW, CKK = p.col_rows(), nr = pk.nr;
    const int64_t Npad = pk.padded_n(OHW), npanels = Npad / nr;
    const PackGeometry g = pack_geometry(p);
    const T* xp = x;
    T* tables = scratch;
    if (g.need_pad) {
        T* buf = scratch;
        for (int64_t c = 0; c < Cg; ++c)
            for (int64_t h = 0; h < g.Hp; ++h) {
                T* dst = buf + (c * g.Hp + h) * g.Wp;
                const int64_t ih = h - p.pad_top;
                if (ih < 0 || ih >= p.H) {
                    std::fill(dst, dst + g.Wp, T(0));
                    continue;
                }
                const int64_t w0 = std::min<int64_t>(p.pad_left, g.Wp);
                const int64_t w1 = std::min<int64_t>(p.pad_left + p.W, g.Wp);
                std::fill(dst, dst + w0, T(0));
                std::memcpy(dst + w0, x + (c * p.H + ih) * p.W, sizeof(T) * (w1 - w0));
                std::fill(dst + w1, dst + g.Wp, T(0));
            }
        xp = buf;
        tables = scratch + round8(Cg * g.Hp * g.Wp);
    }
    Im2colRun* runs = reinterpret_cast<Im2colRun*>(tables);
    int64_t* first = reinterpret_cast<int64_t*>(runs + npanels + p.OH);  // npanels + 1
    int64_t* row_off = first + npanels + 1;                               // CKK
    int64_t nruns = 0;
    for (int64_t jp = 0; jp < npanels; ++jp) {
        first[jp] = nruns;
        const int64_t j_end = std::min<int64_t>(OHW, (jp + 1) * nr);
        for (int64_t j = jp * nr; j < j_end;) {
            const int64_t oh = j / p.OW, ow = j % p.OW;
            const int64_t len = std::min<int64_t>(p.OW - ow, j_end - j);
            runs[nruns++] = {oh * p.stride_h * g.Wp + ow * p.stride_w, j - jp * nr, len};
            j += len;
        }
    }
    first[npanels] = nruns;
    for (int64_t r = 0; r < CKK; ++r) {
        const int64_t c = r / (p.KH * p.KW), kh = (r / p.KW) % p.KH, kw = r % p.KW;
        row_off[r] = c * g.Hp * g.Wp + kh * p.dil_h * g.Wp + kw * p.dil_w;
    }
    const auto pack = kernel_set<T>().im2col_pack_panel;
    for (int64_t pc = 0; pc < CKK; pc += pk.kc) {
        const int64_t kc = std::min<int64_t>(pk.kc, CKK - pc);
        for (int64_t jp = 0; jp < npanels; ++jp)
            pack(xp, row_off + pc, kc, runs + first[jp], first[jp + 1] - first[jp], p.stride_w,
                 std::min<int64_t>(nr, OHW - jp * nr), nr, out + pc * Npad + jp * kc * nr);
    }
}

template <typename T>
void col2im(const Conv2dParams& p, const T* col, T* dx) {
    const int64_t Cg = p.c_per_group(), OHW = p.OH * p.OW;
    std::fill(dx, dx + Cg * p.H * p.W, T(0));
    for (int64_t c = 0; c < Cg; ++c)
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

template void im2col<float>(const Conv2dParams&, const float*, float*);
template void im2col<double>(const Conv2dParams&, const double*, double*);
template int64_t im2col_packed_scratch<float>(const Conv2dParams&, const GemmPacking&);
template int64_t im2col_packed_scratch<double>(const Conv2dParams&, const GemmPacking&);
template void im2col_packed<float>(const Conv2dParams&, const float*, const GemmPacking&, float*,
                                   float*);
template void im2col_packed<double>(const Conv2dParams&, const double*, const GemmPacking&,
                                    double*, double*);
template void col2im<float>(const Conv2dParams&, const float*, float*);
template void col2im<double>(const Conv2dParams&, const double*, double*);

}  // namespace fastconv
