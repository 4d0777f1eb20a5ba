// ReLU kernels (eltwise_impl.h), portable (baseline x86-64: SSE2, 16-byte vectors).
#define FASTCONV_ISA ref
#include "kernels/eltwise/eltwise_impl.h"
