// FMA-throughput probe, AVX2+FMA: 12 independent ymm accumulation chains (of 16 registers,
// two hold the constants). Semantics: KernelTable::fma_probe (kernel_table.h).
#include <immintrin.h>

#include <cstdint>

namespace fastconv {
namespace avx2 {

double fma_probe(int64_t iterations, double* flops) {
    constexpr int kChains = 12;
    __m256 acc[kChains];
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
    // acc = acc * a + b converges to b / (1 - a): no overflow, no denormals.
    const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 sum = acc[0];
    for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, sum);
    *flops = 2.0 * 8 * kChains * static_cast<double>(iterations);
    double total = 0.0;
    for (float v : lanes) total += v;
    return total;  // the result is used, so the loop cannot be removed
}

}  // namespace avx2
}  // namespace fastconv
