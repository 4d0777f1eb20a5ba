// Pooling drivers (ops.h): one OpenMP loop over the N*C planes of an NCHW tensor, each
// plane handled by the active ISA's plane kernel from the kernel table. Planes are
// independent (no shared output), so the result does not depend on the thread count.
// Every driver overwrites its outputs.

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <mutex>

#include "common/parallel.h"
#include "fastconv/kernel_table.h"
#include "fastconv/ops.h"
#include "fastconv/params.h"

namespace fastconv {

namespace {

// Threads for a loop over `planes` planes touching about `work` elements in all: never more
// threads than planes, and one thread when the job is too small to pay for a fork/join.
int plane_threads(int64_t planes, int64_t work) {
    constexpr int64_t kMinWorkPerThread = 1 << 14;
    const int64_t by_work = std::max<int64_t>(1, work / kMinWorkPerThread);
    return static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>({int64_t(num_threads()), planes, by_work})));
}

void assert_pool_params(const Pool2dParams& p) {
    (void)p;
    assert(p.N >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1 && p.OH >= 1 && p.OW >= 1);
    assert(p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1);
    assert(p.dil_h >= 1 && p.dil_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0);
}

// Runs ranges(i0, i1) over the N*C (image, channel) planes on the threads plane_threads
// grants, claiming ranges of planes dynamically.
template <typename F>
void for_plane_ranges(const Pool2dParams& p, F&& ranges) {
    const int64_t planes = p.N * p.C;
    parallel_ranges(planes, plane_threads(planes, planes * (p.H * p.W + p.OH * p.OW)), ranges);
}

// Runs plane(x_off, y_off) for every plane, with the offsets of its input and output planes.
template <typename F>
void for_each_plane(const Pool2dParams& p, F&& plane) {
    const int64_t in_size = p.H * p.W, out_size = p.OH * p.OW;
    for_plane_ranges(p, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) plane(i * in_size, i * out_size);
    });
}

// Runs block(nplanes, x_off, y_off) once per claimed range of planes, with the offsets of
// its first input and output planes: for the kernels that take a range of planes and set
// up once per call, not per plane.
template <typename F>
void for_plane_blocks(const Pool2dParams& p, F&& block) {
    const int64_t in_size = p.H * p.W, out_size = p.OH * p.OW;
    for_plane_ranges(p,
                     [&](int64_t i0, int64_t i1) { block(i1 - i0, i0 * in_size, i0 * out_size); });
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    assert_pool_params(p);
    const auto kernel = kernel_set<T>().max_pool2d_forward_planes;
    for_plane_blocks(p, [&](int64_t n, int64_t xo, int64_t yo) {
        kernel(p, n, x + xo, y + yo, indices ? indices + yo : nullptr);
    });
}

template <typename T>
int64_t max_pool2d_backward(const Pool2dParams& p, T* dx, const T* dy, const int64_t* indices) {
    assert(p.N >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1 && p.OH >= 1 && p.OW >= 1);
    const auto kernel = kernel_set<T>().max_pool2d_backward_plane;
    int64_t first_bad = -1;  // smallest flat output position with a bad index
    std::mutex bad_mutex;
    for_each_plane(p, [&](int64_t xo, int64_t yo) {
        const int64_t o = kernel(p, dx + xo, dy + yo, indices + yo);
        if (o >= 0) {
            std::lock_guard<std::mutex> lock(bad_mutex);
            if (first_bad < 0 || yo + o < first_bad) first_bad = yo + o;
        }
    });
    return first_bad;
}

template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
    assert_pool_params(p);
    const auto kernel = kernel_set<T>().avg_pool2d_forward_planes;
    for_plane_blocks(p, [&](int64_t n, int64_t xo, int64_t yo) { kernel(p, n, x + xo, y + yo); });
}

template <typename T>
void avg_pool2d_backward(const Pool2dParams& p, T* dx, const T* dy) {
    assert_pool_params(p);
    const auto kernel = kernel_set<T>().avg_pool2d_backward_planes;
    for_plane_blocks(p, [&](int64_t n, int64_t xo, int64_t yo) { kernel(p, n, dx + xo, dy + yo); });
}

template <typename T>
void adaptive_avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
    assert(p.N >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1 && p.OH >= 1 && p.OW >= 1);
    const auto kernel = kernel_set<T>().adaptive_avg_pool2d_forward_plane;
    for_each_plane(p, [&](int64_t xo, int64_t yo) { kernel(p, x + xo, y + yo); });
}

template <typename T>
void adaptive_avg_pool2d_backward(const Pool2dParams& p, T* dx, const T* dy) {
    assert(p.N >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1 && p.OH >= 1 && p.OW >= 1);
    const auto kernel = kernel_set<T>().adaptive_avg_pool2d_backward_plane;
    for_each_plane(p, [&](int64_t xo, int64_t yo) { kernel(p, dx + xo, dy + yo); });
}

template <typename T>
void adaptive_max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    assert(p.N >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1 && p.OH >= 1 && p.OW >= 1);
    const auto kernel = kernel_set<T>().adaptive_max_pool2d_forward_plane;
    for_each_plane(p, [&](int64_t xo, int64_t yo) {
        kernel(p, x + xo, y + yo, indices + yo);
    });
}

#define FASTCONV_INSTANTIATE_POOL2D_DRIVERS(T)                                               \
    template void max_pool2d_forward<T>(const Pool2dParams&, const T*, T*, int64_t*);        \
    template int64_t max_pool2d_backward<T>(const Pool2dParams&, T*, const T*, const int64_t*); \
    template void avg_pool2d_forward<T>(const Pool2dParams&, const T*, T*);                  \
    template void avg_pool2d_backward<T>(const Pool2dParams&, T*, const T*);                 \
    template void adaptive_avg_pool2d_forward<T>(const Pool2dParams&, const T*, T*);         \
    template void adaptive_avg_pool2d_backward<T>(const Pool2dParams&, T*, const T*);        \
    template void adaptive_max_pool2d_forward<T>(const Pool2dParams&, const T*, T*, int64_t*);

FASTCONV_INSTANTIATE_POOL2D_DRIVERS(float)
FASTCONV_INSTANTIATE_POOL2D_DRIVERS(double)

#undef FASTCONV_INSTANTIATE_POOL2D_DRIVERS

}  // namespace fastconv
