// Portable depthwise plane kernels (ISA "ref"): per-output loops from the definition,
// accumulating in double. Semantics: KernelSet depthwise slots (fastconv/kernel_table.h).
#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace ref {

FASTCONV_DECLARE_DEPTHWISE_KERNELS

template <typename T>
void depthwise_forward_plane(const Conv2dParams& p, const T* x, const T* w, T bias, T* y) {
    for (int64_t oh = 0; oh < p.OH; ++oh)
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            double acc = bias;
            for (int64_t kh = 0; kh < p.KH; ++kh) {
                const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                if (ih < 0 || ih >= p.H) continue;
                for (int64_t kw = 0; kw < p.KW; ++kw) {
                    const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
                    if (iw < 0 || iw >= p.W) continue;
                    acc += double(x[ih * p.W + iw]) * double(w[kh * p.KW + kw]);
                }
            }
            y[oh * p.OW + ow] = T(acc);
        }
}

template <typename T>
void depthwise_backward_data_plane(const Conv2dParams& p, T* dx, const T* dy, const T* w) {
    for (int64_t oh = 0; oh < p.OH; ++oh)
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const T g = dy[oh * p.OW + ow];
            for (int64_t kh = 0; kh < p.KH; ++kh) {
                const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                if (ih < 0 || ih >= p.H) continue;
                for (int64_t kw = 0; kw < p.KW; ++kw) {
                    const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
                    if (iw < 0 || iw >= p.W) continue;
                    dx[ih * p.W + iw] += g * w[kh * p.KW + kw];
                }
            }
        }
}

template <typename T>
void depthwise_backward_weight_plane(const Conv2dParams& p, T* dw, const T* dy, const T* x) {
    for (int64_t kh = 0; kh < p.KH; ++kh)
        for (int64_t kw = 0; kw < p.KW; ++kw) {
            double acc = 0.0;
            for (int64_t oh = 0; oh < p.OH; ++oh) {
                const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                if (ih < 0 || ih >= p.H) continue;
                for (int64_t ow = 0; ow < p.OW; ++ow) {
                    const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
                    if (iw < 0 || iw >= p.W) continue;
                    acc += double(dy[oh * p.OW + ow]) * double(x[ih * p.W + iw]);
                }
            }
            dw[kh * p.KW + kw] += T(acc);
        }
}

FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(float)
FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(double)

}  // namespace ref
}  // namespace fastconv
