// Elementwise activations: ReLU forward and backward over flat C-contiguous buffers.
//
// Memory-bound one-pass loops (one read stream and one write stream forward, two reads and
// one write backward), written so that GCC vectorises them for the baseline ISA: the work
// is the memory traffic, so wider vectors change nothing once the data is out of L1
// (measured against a copy of the same size). What matters is one pass and no
// temporaries: NumPy's `maximum(x, 0)` and `g * (y > 0)` take 2-4x a copy's time here
// (a broadcast scalar loop, a boolean mask array and a second pass).
// Threaded over fixed blocks; each element is written by exactly one thread, so results do
// not depend on the thread count.
#include <cstdint>

#include "common/parallel.h"
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
    for_blocks(n, [&](int64_t i0, int64_t i1) {
        // `x < 0 ? 0 : x`, not max(x, 0): NaN fails the compare and passes through, as in
        // torch.relu and numpy.maximum.
        for (int64_t i = i0; i < i1; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
    });
}

template <typename T>
void relu_backward(int64_t n, const T* dy, const T* y, T* dx) {
    for_blocks(n, [&](int64_t i0, int64_t i1) {
        // torch's threshold_backward: the gradient is 0 where the output is <= 0 and passes
        // elsewhere, NaN outputs included (their compare is false). dy is loaded
        // unconditionally so the select vectorises (a conditional load compiles to a branch
        // per element: 10x slower on random signs).
        for (int64_t i = i0; i < i1; ++i) {
            const T g = dy[i];
            dx[i] = y[i] <= T(0) ? T(0) : g;
        }
    });
}

#define FASTCONV_INSTANTIATE_ELTWISE(T)                                   \
    template void relu_forward<T>(int64_t, const T*, T*);                 \
    template void relu_backward<T>(int64_t, const T*, const T*, T*);
FASTCONV_INSTANTIATE_ELTWISE(float)
FASTCONV_INSTANTIATE_ELTWISE(double)
#undef FASTCONV_INSTANTIATE_ELTWISE

}  // namespace fastconv
