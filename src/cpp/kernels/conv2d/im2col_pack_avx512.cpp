// im2col panel packing, AVX-512 (compiled with -mavx512f/bw/dq/vl).
#define FASTCONV_ISA avx512
#include "kernels/conv2d/im2col_pack_impl.h"
