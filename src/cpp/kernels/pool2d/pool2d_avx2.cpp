// AVX2+FMA build of the pooling plane kernels (pool2d_impl.h): CMake compiles this file
// alone with -mavx2 -mfma; everything in it lives in namespace fastconv::avx2.
#define FASTCONV_VEC_BYTES 32
#define FASTCONV_ISA avx2
#include "kernels/pool2d/pool2d_impl.h"

namespace fastconv {
namespace avx2 {

FASTCONV_INSTANTIATE_POOL2D_KERNELS(float)
FASTCONV_INSTANTIATE_POOL2D_KERNELS(double)

}  // namespace avx2
}  // namespace fastconv
