// Winograd F(2x2, 3x3) forward convolution (winograd.cpp).
#pragma once

#include "fastconv/params.h"

namespace fastconv {

// 3x3 kernel, stride 1, dilation 1 (any padding, groups, sizes).
bool winograd_applies(const Conv2dParams& p);
// Whether the automatic choice takes Winograd for this forward convolution (winograd.cpp
// gives the measurements behind the rule).
bool winograd_preferred(const Conv2dParams& p);

// y = conv2d(x, w) + bias (bias may be null) for winograd_applies(p); overwrites y.
template <typename T>
void winograd_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y);

}  // namespace fastconv
