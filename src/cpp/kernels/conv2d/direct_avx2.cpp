// Direct-convolution micro-kernels (direct_impl.h), AVX2 + FMA (32-byte vectors).
#define FASTCONV_ISA avx2
#define FASTCONV_VEC_BYTES 32
#include "kernels/conv2d/direct_impl.h"
