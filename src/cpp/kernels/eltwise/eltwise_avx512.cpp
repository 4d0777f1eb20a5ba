// ReLU kernels (eltwise_impl.h), AVX-512 F+BW+DQ+VL (64-byte vectors).
#define FASTCONV_ISA avx512
#include "kernels/eltwise/eltwise_impl.h"
