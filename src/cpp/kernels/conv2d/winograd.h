// Winograd F(2x2, 3x3) convolution, forward and weight gradient (winograd.cpp).
#pragma once

#include "fastconv/params.h"

namespace fastconv {

// 3x3 kernel, stride 1, dilation 1 (any padding, groups, sizes).
bool winograd_applies(const Conv2dParams& p);
// Whether the automatic choice takes Winograd for this forward convolution (winograd.cpp
// gives the measurements behind the rule).
bool winograd_preferred(const Conv2dParams& p);
// The same for the weight gradient.
bool winograd_grad_preferred(const Conv2dParams& p);

// y = conv2d(x, w) + bias (bias may be null) for winograd_applies(p); overwrites y.
template <typename T>
void winograd_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y);

// dw = the weight gradient of conv2d(x, w) for the output gradient dy, for
// winograd_applies(p); overwrites dw. Bitwise reproducible for a given thread count.
template <typename T>
void winograd_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x);

}  // namespace fastconv
