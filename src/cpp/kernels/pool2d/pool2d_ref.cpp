// Reference 2-D pooling kernels: plain loops that transcribe PyTorch's CPU kernels
// (aten/src/ATen/native/cpu/MaxPoolKernel.cpp cpu_max_pool, AvgPoolKernel.cpp
// cpu_avg_pool / cpu_avg_pool_backward, AdaptiveAvgPoolKernel.cpp, AdaptiveMaxPoolKernel.cpp)
// for one (image, channel) plane. They are the fallback on CPUs without AVX2 and the in-repo
// oracle for the ISA variants; clarity over speed. Averages accumulate in double.
//
// Layout: x/dx [H][W], y/dy/indices [OH][OW], row-major. Indices are flat h*W + w.
// Forward kernels overwrite y (and indices); backward kernels zero dx, then scatter-add dy.
// Single-threaded: the driver (pool2d_driver.cpp) parallelises over planes.

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

#include "fastconv/params.h"
#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace ref {

FASTCONV_DECLARE_POOL2D_KERNELS

// y[oh][ow] = max over the dilated window, indices (unless null) = flat position of that max.
// First max in scan order wins (strict >); NaN always replaces, so the last NaN wins.
// A window with no tap inside the input (possible with dilation) keeps -inf and the index
// of its first tap after skipping the padding, exactly as PyTorch does.
template <typename T>
void max_pool2d_forward_plane(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            int64_t ih0 = oh * p.stride_h - p.pad_h;
            int64_t iw0 = ow * p.stride_w - p.pad_w;
            const int64_t ih1 = std::min(ih0 + (p.KH - 1) * p.dil_h + 1, p.H);
            const int64_t iw1 = std::min(iw0 + (p.KW - 1) * p.dil_w + 1, p.W);
            if (ih0 < 0) ih0 += (-ih0 + p.dil_h - 1) / p.dil_h * p.dil_h;  // first tap >= 0
            if (iw0 < 0) iw0 += (-iw0 + p.dil_w - 1) / p.dil_w * p.dil_w;
            int64_t maxindex = ih0 * p.W + iw0;
            T maxval = -std::numeric_limits<T>::infinity();
            for (int64_t ih = ih0; ih < ih1; ih += p.dil_h) {
                for (int64_t iw = iw0; iw < iw1; iw += p.dil_w) {
                    const int64_t index = ih * p.W + iw;
                    const T val = x[index];
                    if (val > maxval || std::isnan(val)) {
                        maxval = val;
                        maxindex = index;
                    }
                }
            }
            y[oh * p.OW + ow] = maxval;
            if (indices) indices[oh * p.OW + ow] = maxindex;  // null: values only
        }
    }
}

template <typename T>
void max_pool2d_forward_planes(const Pool2dParams& p, int64_t nplanes, const T* x, T* y,
                               int64_t* indices) {
    assert(p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1);
    assert(p.dil_h >= 1 && p.dil_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0);
    const int64_t in = p.H * p.W, out = p.OH * p.OW;
    for (int64_t i = 0; i < nplanes; ++i)
        max_pool2d_forward_plane(p, x + i * in, y + i * out, indices ? indices + i * out : nullptr);
}

// dx = 0, then dx[indices[o]] += dy[o] for every output o; stops at the first index
// outside [0, H*W) and returns its o (-1 when all are valid). Serves adaptive max pooling.
template <typename T>
int64_t max_pool2d_backward_plane(const Pool2dParams& p, T* dx, const T* dy,
                                  const int64_t* indices) {
    const int64_t in_size = p.H * p.W, out_size = p.OH * p.OW;
    for (int64_t i = 0; i < in_size; ++i) dx[i] = T(0);
    for (int64_t o = 0; o < out_size; ++o) {
        const int64_t i = indices[o];
        if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(in_size)) return o;
        dx[i] += dy[o];
    }
    return -1;
}

// Window of output (oh, ow) and its divisor, PyTorch's cpu_avg_pool: the unclipped window
// (bounded by the padded input) sets pool_size, the clipped one the summed taps.
// Returns false for a window with no tap inside the input (output 0, no gradient).
static bool avg_window(const Pool2dParams& p, int64_t oh, int64_t ow, int64_t* ih0, int64_t* ih1,
                       int64_t* iw0, int64_t* iw1, int64_t* divide_factor) {
    int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    int64_t h1 = std::min(h0 + p.KH, p.H + p.pad_h), w1 = std::min(w0 + p.KW, p.W + p.pad_w);
    const int64_t pool_size = (h1 - h0) * (w1 - w0);
    h0 = std::max<int64_t>(h0, 0);
    w0 = std::max<int64_t>(w0, 0);
    h1 = std::min(h1, p.H);
    w1 = std::min(w1, p.W);
    if (h0 >= h1 || w0 >= w1) return false;
    *ih0 = h0, *ih1 = h1, *iw0 = w0, *iw1 = w1;
    if (p.divisor_override != 0)
        *divide_factor = p.divisor_override;
    else
        *divide_factor = p.count_include_pad ? pool_size : (h1 - h0) * (w1 - w0);
    return true;
}

template <typename T>
void avg_pool2d_forward_plane(const Pool2dParams& p, const T* x, T* y) {
    assert(p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1);
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            int64_t ih0, ih1, iw0, iw1, divide_factor;
            if (!avg_window(p, oh, ow, &ih0, &ih1, &iw0, &iw1, &divide_factor)) {
                y[oh * p.OW + ow] = T(0);
                continue;
            }
            double sum = 0.0;
            for (int64_t ih = ih0; ih < ih1; ++ih)
                for (int64_t iw = iw0; iw < iw1; ++iw) sum += double(x[ih * p.W + iw]);
            y[oh * p.OW + ow] = T(sum / double(divide_factor));
        }
    }
}

template <typename T>
void avg_pool2d_forward_planes(const Pool2dParams& p, int64_t nplanes, const T* x, T* y) {
    const int64_t in = p.H * p.W, out = p.OH * p.OW;
    for (int64_t i = 0; i < nplanes; ++i) avg_pool2d_forward_plane(p, x + i * in, y + i * out);
}

template <typename T>
void avg_pool2d_backward_plane(const Pool2dParams& p, T* dx, const T* dy) {
    for (int64_t i = 0; i < p.H * p.W; ++i) dx[i] = T(0);
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            int64_t ih0, ih1, iw0, iw1, divide_factor;
            if (!avg_window(p, oh, ow, &ih0, &ih1, &iw0, &iw1, &divide_factor)) continue;
            const T grad_delta = T(double(dy[oh * p.OW + ow]) / double(divide_factor));
            for (int64_t ih = ih0; ih < ih1; ++ih)
                for (int64_t iw = iw0; iw < iw1; ++iw) dx[ih * p.W + iw] += grad_delta;
        }
    }
}

template <typename T>
void avg_pool2d_backward_planes(const Pool2dParams& p, int64_t nplanes, T* dx, const T* dy) {
    const int64_t in = p.H * p.W, out = p.OH * p.OW;
    for (int64_t i = 0; i < nplanes; ++i) avg_pool2d_backward_plane(p, dx + i * in, dy + i * out);
}

// Adaptive windows [adaptive_start, adaptive_end) per axis (params.h); output may be
// larger than input (windows then overlap and repeat).
template <typename T>
void adaptive_avg_pool2d_forward_plane(const Pool2dParams& p, const T* x, T* y) {
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t iw0 = adaptive_start(ow, p.W, p.OW);
            const int64_t iw1 = adaptive_end(ow, p.W, p.OW);
            double sum = 0.0;
            for (int64_t ih = ih0; ih < ih1; ++ih)
                for (int64_t iw = iw0; iw < iw1; ++iw) sum += double(x[ih * p.W + iw]);
            y[oh * p.OW + ow] = T(sum / double((ih1 - ih0) * (iw1 - iw0)));
        }
    }
}

template <typename T>
void adaptive_avg_pool2d_backward_plane(const Pool2dParams& p, T* dx, const T* dy) {
    for (int64_t i = 0; i < p.H * p.W; ++i) dx[i] = T(0);
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t iw0 = adaptive_start(ow, p.W, p.OW);
            const int64_t iw1 = adaptive_end(ow, p.W, p.OW);
            const T grad_delta = T(double(dy[oh * p.OW + ow]) / double((ih1 - ih0) * (iw1 - iw0)));
            for (int64_t ih = ih0; ih < ih1; ++ih)
                for (int64_t iw = iw0; iw < iw1; ++iw) dx[ih * p.W + iw] += grad_delta;
        }
    }
}

template <typename T>
void adaptive_max_pool2d_forward_plane(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t iw0 = adaptive_start(ow, p.W, p.OW);
            const int64_t iw1 = adaptive_end(ow, p.W, p.OW);
            int64_t maxindex = ih0 * p.W + iw0;
            T maxval = -std::numeric_limits<T>::infinity();
            for (int64_t ih = ih0; ih < ih1; ++ih) {
                for (int64_t iw = iw0; iw < iw1; ++iw) {
                    const int64_t index = ih * p.W + iw;
                    const T val = x[index];
                    if (val > maxval || std::isnan(val)) {
                        maxval = val;
                        maxindex = index;
                    }
                }
            }
            y[oh * p.OW + ow] = maxval;
            indices[oh * p.OW + ow] = maxindex;
        }
    }
}

FASTCONV_INSTANTIATE_POOL2D_KERNELS(float)
FASTCONV_INSTANTIATE_POOL2D_KERNELS(double)

}  // namespace ref
}  // namespace fastconv
