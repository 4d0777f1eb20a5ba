// Depthwise plane kernels for AVX2+FMA (compiled with -mavx2 -mfma).
#define FASTCONV_ISA avx2
#include "kernels/conv2d/depthwise_impl.h"
