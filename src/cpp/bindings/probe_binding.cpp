// Bindings of the machine probes (kernels/probe): _core.probe_fma_peak and
// _core.probe_copy_bandwidth, used by fastconv.bench for its "% of peak" columns.
#include <pybind11/pybind11.h>

#include <string>

#include "common/parallel.h"
#include "fastconv/kernel_table.h"
#include "kernels/probe/probe.h"

namespace py = pybind11;

namespace fastconv {

namespace {

// One probe call: validate, run without the GIL, report work/seconds in the given unit.
// `size` is the probe's second argument (iterations or bytes), valid in [lo, hi].
template <typename Probe>
py::dict run_probe(const char* op, const char* size_name, Probe probe, int threads,
                   int64_t size, int64_t lo, int64_t hi, const char* rate_key,
                   const char* work_key) {
    if (threads < 1 || threads > kMaxThreads)
        throw py::value_error(std::string(op) + ": threads must be in [1, " +
                              std::to_string(kMaxThreads) + "], got " + std::to_string(threads));
    if (size < lo || size > hi)
        throw py::value_error(std::string(op) + ": " + size_name + " must be in [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                              std::to_string(size));
    ProbeResult r;
    {
        py::gil_scoped_release release;
        r = probe(threads, size);
    }
    py::dict d;
    d["seconds"] = r.seconds;
    d["threads"] = r.threads;
    d[rate_key] = r.seconds > 0.0 ? r.work / r.seconds / 1e9 : 0.0;
    d[work_key] = r.work;
    d["isa"] = isa_name(kernels().isa);
    return d;
}

}  // namespace

void register_probe(py::module_& m) {
    m.def(
        "probe_fma_peak",
        [](int threads, int64_t iterations) {
            return run_probe("probe_fma_peak", "iterations", &fma_peak, threads, iterations, 1,
                             int64_t{1} << 40, "gflops", "flops");
        },
        py::arg("threads") = 1, py::arg("iterations") = 1 << 20,
        "float32 FMA throughput of the active ISA: `threads` threads each run `iterations`\n"
        "rounds of independent FMA chains (no memory traffic). Returns {'gflops', 'flops',\n"
        "'seconds', 'threads', 'isa'}; take the best of a few calls as the machine's peak.");
    m.def(
        "probe_copy_bandwidth",
        [](int threads, int64_t nbytes) {
            return run_probe("probe_copy_bandwidth", "nbytes", &copy_bandwidth, threads, nbytes,
                             4096, int64_t{1} << 34, "gbps", "bytes");
        },
        py::arg("threads") = 1, py::arg("nbytes") = int64_t{64} << 20,
        "Memory bandwidth of one memcpy of `nbytes` (split over `threads` threads), in GB/s\n"
        "counting bytes read + written (STREAM 'Copy'). Use nbytes well above the last-level\n"
        "cache. Returns {'gbps', 'bytes', 'seconds', 'threads', 'isa'}.");
}

}  // namespace fastconv
