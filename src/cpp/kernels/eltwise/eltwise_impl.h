// ReLU forward and backward over flat ranges, compiled per ISA: the including .cpp defines
// FASTCONV_ISA and gets that ISA's flags, under which GCC vectorises these loops at the
// ISA's width. Semantics: KernelSet::relu_forward / relu_backward (kernel_table.h).
// No std:: function templates here (see direct_impl.h).
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including eltwise_impl.h"
#endif

#include <cstdint>

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_ELTWISE_KERNELS

template <typename T>
void relu_forward(int64_t n, const T* __restrict x, T* __restrict y) {
    // `x < 0 ? 0 : x`, not max(x, 0): NaN fails the compare and passes through, as in
    // torch.relu and numpy.maximum.
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

template <typename T>
void relu_backward(int64_t n, const T* __restrict dy, const T* __restrict y, T* __restrict dx) {
    // torch's threshold_backward: the gradient is 0 where the output is <= 0 and passes
    // elsewhere, NaN outputs included (their compare is false). dy is loaded
    // unconditionally so the select vectorises (a conditional load compiles to a branch per
    // element: 10x slower on random signs).
    for (int64_t i = 0; i < n; ++i) {
        const T g = dy[i];
        dx[i] = y[i] <= T(0) ? T(0) : g;
    }
}

FASTCONV_INSTANTIATE_ELTWISE_KERNELS(float)
FASTCONV_INSTANTIATE_ELTWISE_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
