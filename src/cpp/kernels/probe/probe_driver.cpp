// Machine probes for the benchmark harness: the float32 FMA peak (every thread of a team runs
// the active ISA's fma_probe at once) and the copy bandwidth (STREAM "Copy").
// Their figures are the denominators of the "% of peak" columns of `fastconv bench`.
#include "kernels/probe/probe.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/parallel.h"
#include "fastconv/kernel_table.h"

namespace fastconv {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

ProbeResult fma_peak(int threads, int64_t iterations) {
    threads = explicit_threads(threads);
    auto probe = kernels().fma_probe;
    std::vector<double> flops(static_cast<size_t>(threads), 0.0);
    std::vector<double> checksums(static_cast<size_t>(threads), 0.0);
    int team = 1;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
        // fma_probe touches no memory and cannot throw; a smaller team (OMP_DYNAMIC) just
        // counts fewer FLOPs.
        const int id = thread_id();
        double f = 0.0;
        checksums[static_cast<size_t>(id)] = probe(iterations, &f);
        flops[static_cast<size_t>(id)] = f;
#pragma omp master
        team = team_size();
    }
    ProbeResult r;
    r.seconds = seconds_since(t0);
    for (double f : flops) r.work += f;
    volatile double sink = 0.0;  // keep the checksums (and so the FMA loops) alive
    for (double c : checksums) sink = sink + c;
    r.threads = team;
    return r;
}

ProbeResult copy_bandwidth(int threads, int64_t bytes) {
    threads = explicit_threads(threads);
    // Both buffers are written once before timing so page faults are not measured.
    const auto n = static_cast<size_t>(bytes);
    auto src = std::unique_ptr<unsigned char[]>(new unsigned char[n]);
    auto dst = std::unique_ptr<unsigned char[]>(new unsigned char[n]);
    std::memset(src.get(), 1, n);
    std::memset(dst.get(), 0, n);
    int team = 1;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
        int64_t begin, end;
        split_range(bytes, team_size(), thread_id(), &begin, &end);
        std::memcpy(dst.get() + begin, src.get() + begin, static_cast<size_t>(end - begin));
#pragma omp master
        team = team_size();
    }
    ProbeResult r;
    r.seconds = seconds_since(t0);
    r.work = 2.0 * static_cast<double>(bytes);  // STREAM convention: bytes read + written
    r.threads = team;
    return r;
}

}  // namespace fastconv
