// The per-plane step of the bias gradient db[k] = sum over N, OH, OW of dy[n][k]
// (conv2d_backward_bias), shared with the weight-gradient kernels that add it plane by
// plane while the plane is in cache: the same sums in the same order, so their db is
// bitwise conv2d_backward_bias's.
#pragma once

#include <algorithm>
#include <cstdint>

namespace fastconv {

// acc += the n elements of g: sixteen independent partial sums in T (vector lanes; one
// scalar chain is bound by the add latency), flushed to the double acc every 4096
// elements. Planes of one channel are added image after image. (Tried: 32 lanes added
// pairwise in double, the tail into the lanes: 9-11 % slower on 14x14 and 28x28 planes.)
template <typename T>
inline void add_plane_sum(const T* g, int64_t n, double& acc) {
    constexpr int64_t kLanes = 16, kFlush = 4096;
    int64_t i = 0;
    while (i + kLanes <= n) {
        T part[kLanes] = {};
        const int64_t end = std::min(n, i + kFlush) / kLanes * kLanes;
        for (; i < end; i += kLanes)
            for (int64_t j = 0; j < kLanes; ++j) part[j] += g[i + j];
        for (int64_t j = 0; j < kLanes; ++j) acc += part[j];
    }
    for (; i < n; ++i) acc += g[i];
}

}  // namespace fastconv
