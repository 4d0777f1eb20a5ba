// Thread-count knob shared by every driver. OpenMP pragmas appear in drivers only.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv {

// Threads a driver may use (fc.set_num_threads). Defaults to OpenMP's max threads.
int num_threads();
void set_num_threads(int n);  // n >= 1, validated by the binding

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// [begin, end) of chunk `i` when `total` items are split into `parts` near-equal chunks.
inline void split_range(int64_t total, int64_t parts, int64_t i, int64_t* begin, int64_t* end) {
    const int64_t base = total / parts, rem = total % parts;
    *begin = i * base + (i < rem ? i : rem);
    *end = *begin + base + (i < rem ? 1 : 0);
}

}  // namespace fastconv
