// Depthwise plane kernels for AVX-512 (compiled with -mavx512f/bw/dq/vl). Rows are short
// (10..56 outputs), and on Zen 4 the auto-vectorised 512-bit loops lose to 256-bit ones on
// remainder handling (as in pool2d_avx512.cpp): GCC is asked for 256-bit vectors, keeping
// AVX-512VL's masked tails. Before any include, so everything here gets the same target.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("prefer-vector-width=256")
#endif

#define FASTCONV_ISA avx512
#include "kernels/conv2d/depthwise_impl.h"
