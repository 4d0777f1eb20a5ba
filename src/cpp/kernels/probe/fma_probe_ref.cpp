// Multiply-add throughput probe for the portable build (baseline x86-64: SSE2, no FMA):
// 8 independent chains of 4 floats, a multiply and an add each, which the compiler
// vectorises. Semantics: KernelTable::fma_probe (kernel_table.h).
#include <cstdint>

namespace fastconv {
namespace ref {

double fma_probe(int64_t iterations, double* flops) {
    constexpr int kLanes = 32;
    float acc[kLanes];
    for (int i = 0; i < kLanes; ++i) acc[i] = static_cast<float>(i);
    const float a = 0.999f, b = 1e-3f;  // acc = acc * a + b converges: no overflow
    for (int64_t it = 0; it < iterations; ++it) {
        for (int i = 0; i < kLanes; ++i) acc[i] = acc[i] * a + b;
    }
    *flops = 2.0 * kLanes * static_cast<double>(iterations);
    double total = 0.0;
    for (float v : acc) total += v;
    return total;  // the result is used, so the loop cannot be removed
}

}  // namespace ref
}  // namespace fastconv
