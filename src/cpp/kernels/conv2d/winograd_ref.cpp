// Winograd F(2x2, 3x3) transforms, Portable (baseline x86-64).
#define FASTCONV_ISA ref
#include "kernels/conv2d/winograd_impl.h"
