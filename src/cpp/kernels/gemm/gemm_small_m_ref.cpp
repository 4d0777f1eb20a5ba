// Portable (baseline x86-64) build of the small-M GEMM kernel (gemm_small_m_impl.h); CMake gives this file
// its ISA flags, and everything in it lives in namespace fastconv::ref.
#define FASTCONV_ISA ref
#include "kernels/gemm/gemm_small_m_impl.h"
