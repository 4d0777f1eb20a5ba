// FMA-throughput probe, AVX-512: 16 independent zmm accumulation chains, enough to cover
// FMA latency (4 cycles) times issue width on current cores, so the loop runs at the FMA
// units' throughput. Semantics: KernelTable::fma_probe (kernel_table.h).
#include <immintrin.h>

#include <cstdint>

namespace fastconv {
namespace avx512 {

double fma_probe(int64_t iterations, double* flops) {
    constexpr int kChains = 16;
    __m512 acc[kChains];
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
    // acc = acc * a + b converges to b / (1 - a): no overflow, no denormals.
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 sum = acc[0];
    for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
    *flops = 2.0 * 16 * kChains * static_cast<double>(iterations);
    return _mm512_reduce_add_ps(sum);  // the result is used, so the loop cannot be removed
}

}  // namespace avx512
}  // namespace fastconv
