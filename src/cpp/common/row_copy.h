// Short-row copy (plain or plus a constant) and zero fill, inlined, for the feature-map row
// loops of the conv drivers (plane fills, input padding, output rows). Rows are 5-60
// elements, and the memcpy/memset call per row that std::memcpy/std::fill become cost more
// than the copy itself: a third of a first layer's direct backward_weight, and that part
// did not scale with threads.
// 32-byte blocks, the last one shifted back to end at n (rewriting a few elements).
#pragma once

#include <cstdint>

namespace fastconv {

template <typename T>
inline void copy_row(T* __restrict dst, const T* __restrict src, int64_t n) {
    constexpr int64_t B = 32 / static_cast<int64_t>(sizeof(T));
    if (n >= B) {
        for (int64_t i = 0; i < n - B; i += B) __builtin_memcpy(dst + i, src + i, 32);
        __builtin_memcpy(dst + n - B, src + n - B, 32);
        return;
    }
#pragma GCC unroll 8
    for (int64_t i = 0; i < B; ++i)
        if (i < n) dst[i] = src[i];
}

// dst[i] = src[i] + b, in the same 32-byte blocks (the shifted last block recomputes a few
// elements from src, so it is exact).
template <typename T>
inline void copy_row_add(T* __restrict dst, const T* __restrict src, int64_t n, T b) {
    constexpr int64_t B = 32 / static_cast<int64_t>(sizeof(T));
    auto block = [&](int64_t i) {
#pragma GCC unroll 8
        for (int64_t j = 0; j < B; ++j) dst[i + j] = src[i + j] + b;
    };
    if (n >= B) {
        for (int64_t i = 0; i < n - B; i += B) block(i);
        block(n - B);
        return;
    }
#pragma GCC unroll 8
    for (int64_t i = 0; i < B; ++i)
        if (i < n) dst[i] = src[i] + b;
}

template <typename T>
inline void zero_row(T* dst, int64_t n) {
    constexpr int64_t B = 32 / static_cast<int64_t>(sizeof(T));
    if (n >= B) {
        for (int64_t i = 0; i < n - B; i += B) __builtin_memset(dst + i, 0, 32);
        __builtin_memset(dst + n - B, 0, 32);
        return;
    }
#pragma GCC unroll 8
    for (int64_t i = 0; i < B; ++i)
        if (i < n) dst[i] = T(0);
}

}  // namespace fastconv
