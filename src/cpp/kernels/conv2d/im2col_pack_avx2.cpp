// im2col panel packing, AVX2+FMA (compiled with -mavx2 -mfma).
#define FASTCONV_ISA avx2
#include "kernels/conv2d/im2col_pack_impl.h"
