#include "common/parallel.h"

#include <atomic>

namespace fastconv {

namespace {
int default_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
std::atomic<int> g_threads{default_threads()};
}  // namespace

int num_threads() {
    return g_threads.load(std::memory_order_relaxed);
}
void set_num_threads(int n) {
    g_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed);
}

}  // namespace fastconv
