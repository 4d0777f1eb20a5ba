// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution, forward and weight gradient
// (winograd.cpp).
#pragma once

#include "fastconv/params.h"

namespace fastconv {

// 3x3 kernel, stride 1, and dilation 1 (any padding, groups, sizes) or a dilation d that
// divides H, W, OH, OW and the top and left padding (run as d_h*d_w undilated layers, one
// per phase; winograd.cpp).
bool winograd_applies(const Conv2dParams& p);
// Whether the automatic choice takes Winograd for this forward convolution (winograd.cpp
// gives the measurements behind the rule).
bool winograd_preferred(const Conv2dParams& p);
// Whether a forward convolution the automatic choice runs by Winograd (winograd_preferred(p)
// holds: not checked again) runs by F(4x4, 3x3) rather than F(2x2, 3x3) (winograd.cpp gives
// the measurements behind the rule).
bool winograd4_preferred(const Conv2dParams& p);
// The same for the weight gradient.
bool winograd_grad_preferred(const Conv2dParams& p);
// Whether a forward convolution that winograd_preferred turns down still runs by F(4x4, 3x3)
// (AVX2 only; winograd.cpp gives the measurements behind the rule).
bool winograd4_alone_preferred(const Conv2dParams& p);

// Where winograd_forward reads the 3x3 kernel of output channel k and input channel c of
// group g: w + g * Kg * Cg * 9 + k * k_stride + c * c_stride, rotated 180 degrees when
// flipped. The forward's own weights are {Cg * 9, 9, false}; backward_data runs as the
// forward of dy with the original weights read as {9, Cg * 9, true} (Cg of the original).
struct WinogradWeights {
    int64_t k_stride, c_stride;
    bool flipped;
};

// Where winograd_forward max pools its output in the output transform instead of writing
// it: 2x2 windows at stride 2 (no padding, no dilation) tile y's PH x PW map, each window
// one 2x2 output tile (F(4x4, 3x3): a quarter of one); PH <= OH / 2, PW <= OW / 2 (floor
// mode), OH * OW < 2^31 (flat indices formed in int32). pooled is [N][K][PH][PW], indices the same
// or null; relu: each pooled value stored as relu_forward stores it.
template <typename T>
struct WinogradPool {
    T* pooled;
    int64_t* indices;
    int64_t PH, PW;
    bool relu;
};

// y = conv2d(x, w) + bias (bias may be null) for winograd_applies(p); overwrites y. With
// pool (undilated p only), y is not written but max pooled into pool->pooled (and its argmax
// into pool->indices): bitwise max_pool2d_forward of the y this call would write. tile: the
// output tile's side, 2 for F(2x2, 3x3) or 4 for F(4x4, 3x3).
template <typename T>
void winograd_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                      const WinogradPool<T>* pool = nullptr, int tile = 2);
template <typename T>
void winograd_forward(const Conv2dParams& p, const T* x, const T* w, WinogradWeights wv,
                      const T* bias, T* y, const WinogradPool<T>* pool = nullptr, int tile = 2);

// dw = the weight gradient of conv2d(x, w) for the output gradient dy, for
// winograd_applies(p); overwrites dw. Bitwise reproducible for a given thread count.
template <typename T>
void winograd_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x);

}  // namespace fastconv
