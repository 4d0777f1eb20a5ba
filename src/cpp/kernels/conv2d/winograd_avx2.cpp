// Winograd F(2x2, 3x3) transforms, AVX2 + FMA (compiled with -mavx2 -mfma).
#define FASTCONV_ISA avx2
#include "kernels/conv2d/winograd_impl.h"
