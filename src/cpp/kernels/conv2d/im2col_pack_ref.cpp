// im2col panel packing, Portable (baseline x86-64).
#define FASTCONV_ISA ref
#include "kernels/conv2d/im2col_pack_impl.h"
