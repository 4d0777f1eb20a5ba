// AVX-512 (F+BW+DQ+VL) build of the pooling plane kernels (pool2d_impl.h): CMake compiles
// this file alone with the AVX-512 flags; everything in it lives in namespace
// fastconv::avx512.
//
// The auto-vectorised loops run on short rows (tens of outputs) with int64/int32 index
// lanes beside the values; measured on an AMD EPYC (Zen 4), 512-bit vectors made them
// 1.2-2.5x slower than 256-bit ones (longer remainders, mask juggling), so this file asks
// GCC for 256-bit vectors and keeps AVX-512VL's masked tails and compares. GCC's own
// tuning for Intel AVX-512 CPUs makes the same choice. Before any include, so the STL
// inlines under the same target options.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("prefer-vector-width=256")
#endif

#define FASTCONV_VEC_BYTES 64
#define FASTCONV_ISA avx512
#include "kernels/pool2d/pool2d_impl.h"

namespace fastconv {
namespace avx512 {

FASTCONV_INSTANTIATE_POOL2D_KERNELS(float)
FASTCONV_INSTANTIATE_POOL2D_KERNELS(double)

}  // namespace avx512
}  // namespace fastconv
