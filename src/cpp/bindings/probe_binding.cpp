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
void check_threads(const char* op, int threads) {
    if (threads < 1 || threads > kMaxThreads)
        throw py::value_error(std::string(op) + ": threads must be in [1, " +
                              std::to_string(kMaxThreads) + "], got " + std::to_string(threads));
}

py::dict to_dict(const ProbeResult& r, const char* rate_key, double rate_unit) {
    py::dict d;
    d["seconds"] = r.seconds;
    d["threads"] = r.threads;
    d[rate_key] = r.seconds > 0.0 ? r.work / r.seconds / rate_unit : 0.0;
    d["isa"] = isa_name(kernels().isa);
    return d;
}
}  // namespace

void register_probe(py::module_& m) {
    m.def(
        "probe_fma_peak",
        [](int threads, int64_t iterations) {
            check_threads("probe_fma_peak", threads);
            if (iterations < 1 || iterations > (int64_t{1} << 40))
                throw py::value_error("probe_fma_peak: iterations must be in [1, 2^40], got " +
                                      std::to_string(iterations));
            ProbeResult r;
            {
                py::gil_scoped_release release;
                r = fma_peak(threads, iterations);
            }
            py::dict d = to_dict(r, "gflops", 1e9);
            d["flops"] = r.work;
            return d;
        },
        py::arg("threads") = 1, py::arg("iterations") = 1 << 20,
        "float32 FMA throughput of the active ISA: `threads` threads each run `iterations`\n"
        "rounds of independent FMA chains (no memory traffic). Returns {'gflops', 'flops',\n"
        "'seconds', 'threads', 'isa'}; take the best of a few calls as the machine's peak.");
    m.def(
        "probe_copy_bandwidth",
        [](int threads, int64_t nbytes) {
            check_threads("probe_copy_bandwidth", threads);
            if (nbytes < 4096 || nbytes > (int64_t{1} << 34))
                throw py::value_error(
                    "probe_copy_bandwidth: nbytes must be in [4096, 2^34], got " +
                    std::to_string(nbytes));
            ProbeResult r;
            {
                py::gil_scoped_release release;
                r = copy_bandwidth(threads, nbytes);
            }
            py::dict d = to_dict(r, "gbps", 1e9);
            d["bytes"] = r.work;
            return d;
        },
        py::arg("threads") = 1, py::arg("nbytes") = int64_t{64} << 20,
        "Memory bandwidth of one memcpy of `nbytes` (split over `threads` threads), in GB/s\n"
        "counting bytes read + written (STREAM 'Copy'). Use nbytes well above the last-level\n"
        "cache. Returns {'gbps', 'bytes', 'seconds', 'threads', 'isa'}.");
}

}  // namespace fastconv
