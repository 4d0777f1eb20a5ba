// AVX-512 build of the small-M GEMM kernel (gemm_small_m_impl.h); CMake gives this file
// its ISA flags, and everything in it lives in namespace fastconv::avx512.
#define FASTCONV_ISA avx512
#include "kernels/gemm/gemm_small_m_impl.h"
