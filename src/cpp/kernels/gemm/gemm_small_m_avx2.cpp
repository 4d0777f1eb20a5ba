// AVX2+FMA build of the small-M GEMM kernel (gemm_small_m_impl.h); CMake gives this file
// its ISA flags, and everything in it lives in namespace fastconv::avx2.
#define FASTCONV_ISA avx2
#include "kernels/gemm/gemm_small_m_impl.h"
