// Machine probes (probe_driver.cpp): measured peaks that `fastconv bench` divides by.
#pragma once

#include <cstdint>

namespace fastconv {

struct ProbeResult {
    double seconds = 0.0;  // wall time of the whole parallel region
    double work = 0.0;     // FLOPs (fma_peak) or bytes moved (copy_bandwidth)
    int threads = 1;       // threads that actually ran
};

// Every thread of a `threads`-strong team runs `iterations` rounds of the active ISA's
// fma_probe at the same time. FLOP/s = work / seconds.
ProbeResult fma_peak(int threads, int64_t iterations);

// One memcpy of `bytes` split across `threads` threads; work counts bytes read + written
// (2·bytes, STREAM's convention). Use a size well above the last-level cache.
ProbeResult copy_bandwidth(int threads, int64_t bytes);

}  // namespace fastconv
