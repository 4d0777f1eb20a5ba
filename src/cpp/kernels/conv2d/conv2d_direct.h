// Direct convolution over row-padded stride-phase planes (no im2col matrix); the method and
// its workspace are described in conv2d_direct.cpp. Same semantics as conv2d_forward /
// conv2d_backward_data / conv2d_backward_weight (fastconv/ops.h) for any stride, padding,
// dilation and groups; the weight gradient is bitwise identical for any thread count.
#pragma once

#include "fastconv/ops.h"
#include "fastconv/params.h"

namespace fastconv {

// Whether `automatic` should pick the direct algorithm for this shape and direction
// (thresholds measured against im2col + GEMM; see conv2d_direct.cpp).
bool direct_preferred(const Conv2dParams& p, ConvDirection dir);

template <typename T>
void direct_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y);

// Whether direct_forward runs by output rows (ungrouped, rows wide enough or the output
// channels in the lanes; any stride, over column-phase copies), one image at a time.
bool direct_rows_forward_applies(const Conv2dParams& p);
// direct_forward by output rows for direct_rows_forward_applies(p), each image's output
// max pooled from a per-thread buffer instead of written: q is the pool over the OH x OW
// planes (its N and C unused), pooled [N][K][q.OH][q.OW], indices the same or null.
// Bitwise max_pool2d_forward of direct_forward's y (then relu_forward of it, with relu).
template <typename T>
void direct_rows_forward_pooled(const Conv2dParams& p, const Pool2dParams& q, const T* x,
                                const T* w, const T* bias, T* pooled, int64_t* indices, bool relu);
template <typename T>
void direct_backward_data(const Conv2dParams& p, T* dx, const T* dy, const T* w);
template <typename T>
void direct_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x);

// Depthwise (groups == C > 1) on the same planes, one (image, channel) plane at a time.
template <typename T>
void direct_depthwise_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void direct_depthwise_backward_data(const Conv2dParams& p, T* dx, const T* dy, const T* w);
// db, if not null: conv2d_backward_bias's db, bitwise (added plane by plane in the in-place
// kernels' loop, else by conv2d_backward_bias first).
template <typename T>
void direct_depthwise_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x, T* db);

}  // namespace fastconv
