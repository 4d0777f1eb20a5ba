// avx512 build of the pooling plane kernels (pool2d_impl.h); CMake compiles this file with
// the avx512 flags only, and everything in it lives in namespace fastconv::avx512.
#define FASTCONV_ISA avx512
#include "kernels/pool2d/pool2d_impl.h"

namespace fastconv {
namespace avx512 {

FASTCONV_INSTANTIATE_POOL2D_KERNELS(float)
FASTCONV_INSTANTIATE_POOL2D_KERNELS(double)

}  // namespace avx512
}  // namespace fastconv
