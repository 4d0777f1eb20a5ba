// ReLU kernels (eltwise_impl.h), AVX2 + FMA (32-byte vectors).
#define FASTCONV_ISA avx2
#include "kernels/eltwise/eltwise_impl.h"
