// Direct-convolution micro-kernels (direct_impl.h), Portable (baseline x86-64: SSE2, 16-byte vectors).
#define FASTCONV_ISA ref
#define FASTCONV_VEC_BYTES 16
#include "kernels/conv2d/direct_impl.h"
