// fastconv._core: the one extension module. PYBIND11_MODULE only; each op family registers
// itself from its own *_binding.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <string>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/aligned_buffer.h"
#include "common/parallel.h"
#include "dispatch/cpu_features.h"
#include "fastconv/kernel_table.h"

namespace py = pybind11;

namespace fastconv {
void register_gemm(py::module_& m);
void register_conv2d(py::module_& m);
void register_pool2d(py::module_& m);
void register_eltwise(py::module_& m);
void register_probe(py::module_& m);
}  // namespace fastconv

namespace {

// glibc returns freed blocks above M_MMAP_THRESHOLD to the OS and trims the heap top past
// M_TRIM_THRESHOLD, so the megabyte-sized temporaries of every training step are mapped and
// page-faulted afresh each time (LeNet-5 batch-64 step: 11.3 -> 7.5 ms with both raised).
// Raised once at import; FASTCONV_MALLOC_TUNING=0 keeps glibc's defaults.
bool tune_malloc() {
#if defined(__GLIBC__)
    const char* env = std::getenv("FASTCONV_MALLOC_TUNING");
    if (env && std::string(env) == "0") return false;
    return mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 &&
           mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024) == 1;
#else
    return false;
#endif
}

std::vector<std::string> isa_names(const std::vector<fastconv::Isa>& v) {
    std::vector<std::string> out;
    for (auto isa : v) out.emplace_back(fastconv::isa_name(isa));
    return out;
}

bool g_malloc_tuned = false;  // set once at import

py::dict backend_info() {
    using namespace fastconv;
    py::dict d;
    d["version"] = FASTCONV_VERSION;
    d["compiled_isas"] = isa_names(compiled_isas());
    d["supported_isas"] = isa_names(supported_isas());
    d["isa"] = isa_name(kernels().isa);
    d["num_threads"] = requested_threads();
    d["load_aware"] = load_status().load_aware;
#ifdef _OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["compiler"] = FASTCONV_COMPILER;
#ifdef FASTCONV_HAVE_CUDA
    d["cuda_built"] = true;
#else
    d["cuda_built"] = false;
#endif
    d["cpu"] = cpu_features().brand;
    d["malloc_tuned"] = g_malloc_tuned;
    py::dict tiles;
    tiles["float32"] = py::make_tuple(kernels().f32.gemm_mr, kernels().f32.gemm_nr);
    tiles["float64"] = py::make_tuple(kernels().f64.gemm_mr, kernels().f64.gemm_nr);
    d["gemm_tile_mr_nr"] = tiles;
    d["gemm_small_m_max"] = kGemmSmallM;  // M up to this runs the unpacked small-M kernel
    return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastconv compiled core: Conv2d, pooling and GEMM kernels (CPU)";
    fastconv::kernels();  // choose the ISA now: a bad FASTCONV_ISA fails the import
    g_malloc_tuned = tune_malloc();

    m.def(
        "backend_info", &backend_info,
        "Compiled, supported and chosen ISA, thread count, compiler, OpenMP and CUDA build flags.");
    m.def(
        "compiled_isas", [] { return isa_names(fastconv::compiled_isas()); },
        "ISA variants compiled into this build, e.g. ['ref', 'avx2', 'avx512'].");
    m.def(
        "supported_isas", [] { return isa_names(fastconv::supported_isas()); },
        "Compiled ISA variants this CPU and OS can run (CPUID + XGETBV).");
    m.def(
        "current_isa", [] { return std::string(fastconv::isa_name(fastconv::kernels().isa)); },
        "The ISA variant in use.");
    m.def(
        "workspace_stats",
        [](bool reset) {
            py::dict d;
            d["call_bytes"] = reset ? fastconv::workspace::reset()
                                    : fastconv::workspace::call_bytes.load();
            d["held_bytes"] = fastconv::workspace::held_bytes.load();
            return d;
        },
        py::arg("reset") = false,
        "Scratch memory of the kernels, in bytes: call_bytes, the workspace the calls since the "
        "last reset needed at once (each per-thread buffer's largest request, summed); "
        "held_bytes, what the reused per-thread buffers keep allocated. reset=True returns "
        "the closing window's figures and starts a new one.");
    m.def(
        "_set_isa", &fastconv::set_isa, py::arg("name"),
        "Switch the kernel table to 'ref', 'avx2' or 'avx512' (tests; ValueError if unsupported).");
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1 || n > fastconv::kMaxThreads)
                throw py::value_error("set_num_threads: n must be in [1, " +
                                      std::to_string(fastconv::kMaxThreads) + "], got " +
                                      std::to_string(n));
            fastconv::set_num_threads(n);
        },
        py::arg("n"),
        "Threads every kernel may use (OpenMP); default: OMP_NUM_THREADS or all cores.");
    m.def("get_num_threads", &fastconv::requested_threads,
          "Threads kernels may use (set_num_threads); fewer run while other processes keep "
          "cores busy, see thread_load().");
    m.def("set_load_aware", &fastconv::set_load_aware, py::arg("enabled"),
          "Load-aware threading on (the default, unless FASTCONV_LOAD_AWARE=0) or off. On, a "
          "kernel runs on no more threads than the cores other processes left free over the "
          "last ~0.1 s (/proc/stat, Linux); results do not depend on it.");
    m.def(
        "thread_load",
        [] {
            const fastconv::LoadStatus s = fastconv::load_status();
            py::dict d;
            d["load_aware"] = s.load_aware;
            d["requested"] = s.requested;
            d["threads"] = fastconv::num_threads();
            d["free_cpus"] = s.other_cpus < 0 ? py::object(py::none()) : py::int_(s.cap);
            d["other_cpus"] = s.other_cpus;
            d["cpus"] = s.cpus;
            d["capped_calls"] = s.capped;
            d["forked_single"] = fastconv::forked_single();
            return d;
        },
        "Load-aware threading's state: requested (set_num_threads), threads (what a kernel "
        "gets now), other_cpus (CPUs other processes and the hypervisor took over the last "
        "~0.1 s; -1 before a measurement), free_cpus (cpus less other_cpus, rounded, >= 1; "
        "None before a measurement), "
        "cpus (this process's affinity mask), capped_calls (thread-count decisions below "
        "the request so far) and forked_single (a child forked after kernels ran on 2+ "
        "threads: its kernels run on 1, since GNU OpenMP cannot restart its threads there).");
    m.def("_set_thread_cap", &fastconv::set_thread_cap, py::arg("cap"),
          "Tests: kernels get at most cap threads whatever the load (0: the measured cap).");

    fastconv::register_gemm(m);
    fastconv::register_conv2d(m);
    fastconv::register_pool2d(m);
    fastconv::register_eltwise(m);
    fastconv::register_probe(m);
}
