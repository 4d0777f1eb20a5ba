// Depthwise plane kernels for AVX-512 (compiled with -mavx512f/bw/dq/vl).
#define FASTCONV_ISA avx512
#include "kernels/conv2d/depthwise_impl.h"
