// Winograd F(2x2, 3x3) transforms, AVX-512 (compiled with -mavx512f/bw/dq/vl).
#define FASTCONV_ISA avx512
#include "kernels/conv2d/winograd_impl.h"
