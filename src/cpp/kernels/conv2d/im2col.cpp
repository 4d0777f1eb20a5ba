#include "kernels/conv2d/im2col.h"

#include <algorithm>
#include <cstring>

namespace fastconv {

template <typename T>
void im2col(const Conv2dParams& p, const T* x, T* col) {
    const int64_t Cg = p.c_per_group(), OHW = p.OH * p.OW;
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw) {
                T* row = col + ((c * p.KH + kh) * p.KW + kw) * OHW;
                const int64_t w_off = kw * p.dil_w - p.pad_left;
                int64_t lo, hi;
                valid_output_range(p.OW, p.stride_w, w_off, p.W, &lo, &hi);
                for (int64_t oh = 0; oh < p.OH; ++oh) {
                    T* dst = row + oh * p.OW;
                    const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                    if (ih < 0 || ih >= p.H) {
                        std::fill(dst, dst + p.OW, T(0));
                        continue;
                    }
                    const T* src = x + (c * p.H + ih) * p.W + w_off;
                    std::fill(dst, dst + lo, T(0));
                    if (p.stride_w == 1) {
                        std::memcpy(dst + lo, src + lo, sizeof(T) * (hi - lo));
                    } else {
                        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * p.stride_w];
                    }
                    std::fill(dst + hi, dst + p.OW, T(0));
                }
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
template void col2im<float>(const Conv2dParams&, const float*, float*);
template void col2im<double>(const Conv2dParams&, const double*, double*);

}  // namespace fastconv
