// Elementwise loops over flat C-contiguous buffers: ReLU forward and backward, and the SGD
// step of one parameter (fastconv.optim.SGD: one pass instead of 3-5 NumPy ufunc calls).
//
// Memory-bound one-pass loops (one read stream and one write stream forward, two reads and
// one write backward), compiled per ISA (KernelSet::relu_forward / relu_backward,
// eltwise_impl.h). What matters is one pass and no temporaries: NumPy's `maximum(x, 0)`
// and `g * (y > 0)` take 2-4x a copy's time here (a broadcast scalar loop, a boolean mask
// array and a second pass). The width matters too, against the claim this file made
// before: the baseline build's 16-byte stores into a fresh output took 3x a copy of
// LeNet-5 conv1's 1.2 MB output (79 vs 26 us).
// Threaded over fixed blocks; each element is written by exactly one thread, so results do
// not depend on the thread count.
#include <cstdint>

#include "common/parallel.h"
#include "fastconv/kernel_table.h"
#include "fastconv/ops.h"

namespace fastconv {

namespace {

// Elements per claimed block: 64 KiB of float32, large enough that a claim costs far less
// than its work, small enough that two threads share a 300K-element map evenly.
constexpr int64_t kBlock = 16384;

// body(i0, i1) over [0, n) in whole blocks, claimed by the threads (parallel_ranges).
template <typename F>
void for_blocks(int64_t n, F&& body) {
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    parallel_ranges(blocks, num_threads(), [&](int64_t b0, int64_t b1) {
        body(b0 * kBlock, b1 * kBlock < n ? b1 * kBlock : n);
    });
}

}  // namespace

template <typename T>
void relu_forward(int64_t n, const T* x, T* y) {
    const auto relu = kernel_set<T>().relu_forward;
    for_blocks(n, [&](int64_t i0, int64_t i1) { relu(i1 - i0, x + i0, y + i0); });
}

template <typename T>
void relu_backward(int64_t n, const T* dy, const T* y, T* dx) {
    const auto relu = kernel_set<T>().relu_backward;
    for_blocks(n, [&](int64_t i0, int64_t i1) { relu(i1 - i0, dy + i0, y + i0, dx + i0); });
}

template <typename T>
void sgd_step(int64_t n, T* p, const T* g, T* buf, const SgdStep<T>& s) {
    const auto step = kernel_set<T>().sgd_step;
    for_blocks(n, [&](int64_t i0, int64_t i1) {
        step(i1 - i0, p + i0, g + i0, buf ? buf + i0 : nullptr, s);
    });
}

#define FASTCONV_INSTANTIATE_ELTWISE(T)                              \
    template void relu_forward<T>(int64_t, const T*, T*);            \
    template void relu_backward<T>(int64_t, const T*, const T*, T*); \
    template void sgd_step<T>(int64_t, T*, const T*, T*, const SgdStep<T>&);
FASTCONV_INSTANTIATE_ELTWISE(float)
FASTCONV_INSTANTIATE_ELTWISE(double)
#undef FASTCONV_INSTANTIATE_ELTWISE

}  // namespace fastconv
