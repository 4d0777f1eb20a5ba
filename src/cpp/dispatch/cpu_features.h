// What the CPU and OS can run: CPUID feature bits AND OS-enabled register state (XGETBV).
#pragma once

#include <string>

namespace fastconv {

struct CpuFeatures {
    bool avx2_fma = false;  // AVX2 + FMA3, with YMM state enabled by the OS
    bool avx512 = false;    // AVX-512 F+BW+DQ+VL, with opmask/ZMM state enabled by the OS
    std::string brand;      // CPUID brand string, e.g. "AMD EPYC 9R14"
    // Unified L2 per core in bytes (CPUID 0x80000006, AMD and Intel); 1 MiB when not
    // reported. Sizes the GEMM's cache blocks.
    long l2_bytes = 1L << 20;
};

const CpuFeatures& cpu_features();  // detected once

}  // namespace fastconv
