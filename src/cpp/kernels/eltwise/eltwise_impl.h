// ReLU forward and backward, and the SGD step, over flat ranges, compiled per ISA: the
// including .cpp defines FASTCONV_ISA and gets that ISA's flags, under which GCC vectorises
// these loops at the ISA's width. Semantics: KernelSet::relu_forward / relu_backward / sgd_step
// (kernel_table.h).
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

// One loop per rule (weight decay, momentum, Nesterov), so each vectorises without
// per-element branches; the arithmetic is torch.optim.SGD's, operation for operation
// (the ISA builds may fuse a multiply and an add, as torch's vectorised kernels do).
template <typename T, bool kDecay, bool kMomentum, bool kNesterov>
void sgd_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict buf,
              const ::fastconv::SgdStep<T>& s) {
    const T sign = s.maximize ? T(-1) : T(1), wd = s.weight_decay, lr = s.lr;
    const T mu = s.momentum, keep = T(1) - s.dampening;
    const bool first = s.first;
    for (int64_t i = 0; i < n; ++i) {
        T d = sign * g[i];
        if (kDecay) d = d + wd * p[i];
        if (kMomentum) {
            const T b = first ? d : mu * buf[i] + keep * d;
            buf[i] = b;
            d = kNesterov ? d + mu * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

template <typename T>
void sgd_step(int64_t n, T* p, const T* g, T* buf, const ::fastconv::SgdStep<T>& s) {
    const bool decay = s.weight_decay != T(0);
    if (buf == nullptr) {
        (decay ? sgd_loop<T, true, false, false> : sgd_loop<T, false, false, false>)(n, p, g, buf,
                                                                                     s);
    } else if (s.nesterov) {
        (decay ? sgd_loop<T, true, true, true> : sgd_loop<T, false, true, true>)(n, p, g, buf, s);
    } else {
        (decay ? sgd_loop<T, true, true, false> : sgd_loop<T, false, true, false>)(n, p, g, buf, s);
    }
}

FASTCONV_INSTANTIATE_ELTWISE_KERNELS(float)
FASTCONV_INSTANTIATE_ELTWISE_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
