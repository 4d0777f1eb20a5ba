// Direct-convolution micro-kernels (direct_impl.h), AVX-512 (64-byte vectors, 32 registers).
#define FASTCONV_ISA avx512
#define FASTCONV_VEC_BYTES 64
#include "kernels/conv2d/direct_impl.h"
