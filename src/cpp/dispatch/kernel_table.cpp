// Fills one KernelTable per compiled ISA from kernels.def and selects the active one once:
// FASTCONV_ISA if set (an error if the CPU lacks it), else the best supported variant.
#include "fastconv/kernel_table.h"

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "dispatch/cpu_features.h"
#include "fastconv/plane_kernels.h"

// Declarations of every kernel listed in kernels.def.
#define FASTCONV_GEMM_UKERNEL(isa, T, fn, MR, NR, half_fn) \
    namespace fastconv {                                   \
    namespace isa {                                        \
    FASTCONV_DECLARE_GEMM_UKERNEL(fn, T)                   \
    FASTCONV_DECLARE_GEMM_UKERNEL(half_fn, T)              \
    }                                                      \
    }
#define FASTCONV_GEMM_UKERNEL_EDGE(isa, T, fn, in_place_fn) \
    namespace fastconv {                                     \
    namespace isa {                                          \
    FASTCONV_DECLARE_GEMM_UKERNEL_EDGE(fn, T)                \
    FASTCONV_DECLARE_GEMM_UKERNEL_A_IN_PLACE(in_place_fn, T) \
    }                                                        \
    }
#define FASTCONV_GEMM_UKERNEL_NARROW(isa, T, fn) \
    namespace fastconv {                         \
    namespace isa {                              \
    FASTCONV_DECLARE_GEMM_UKERNEL_NARROW(fn, T)  \
    }                                            \
    }
#define FASTCONV_KERNEL(isa, slot, fn)
#define FASTCONV_PROBE(isa, fn)                  \
    namespace fastconv {                         \
    namespace isa {                              \
    double fn(int64_t iterations, double* flops); \
    }                                            \
    }
#include "dispatch/kernels.def"
#undef FASTCONV_GEMM_UKERNEL
#undef FASTCONV_GEMM_UKERNEL_EDGE
#undef FASTCONV_GEMM_UKERNEL_NARROW
#undef FASTCONV_KERNEL
#undef FASTCONV_PROBE

FASTCONV_DECLARE_ISA_KERNELS(ref)
#ifdef FASTCONV_HAVE_AVX2
FASTCONV_DECLARE_ISA_KERNELS(avx2)
#endif
#ifdef FASTCONV_HAVE_AVX512
FASTCONV_DECLARE_ISA_KERNELS(avx512)
#endif

namespace fastconv {

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::ref:
            return "ref";
        case Isa::avx2:
            return "avx2";
        case Isa::avx512:
            return "avx512";
    }
    return "?";
}

namespace {

KernelTable make_table(Isa want) {
    KernelTable t;
    t.isa = want;
#define FASTCONV_GEMM_UKERNEL(isa_, T, fn, MR, NR, half_fn) \
    if (want == Isa::isa_) {                                \
        KernelSet<T>& s = t.get<T>();                       \
        s.gemm_ukernel = &isa_::fn;                         \
        s.gemm_ukernel_half = &isa_::half_fn;               \
        s.gemm_mr = MR;                                     \
        s.gemm_nr = NR;                                     \
    }
#define FASTCONV_GEMM_UKERNEL_EDGE(isa_, T, fn, in_place_fn)      \
    if (want == Isa::isa_) {                                     \
        t.get<T>().gemm_ukernel_edge = &isa_::fn;                \
        t.get<T>().gemm_ukernel_a_in_place = &isa_::in_place_fn; \
    }
#define FASTCONV_GEMM_UKERNEL_NARROW(isa_, T, fn) \
    if (want == Isa::isa_) t.get<T>().gemm_ukernel_narrow = &isa_::fn;
#define FASTCONV_KERNEL(isa_, slot, fn) \
    if (want == Isa::isa_) {            \
        t.f32.slot = &isa_::fn<float>;  \
        t.f64.slot = &isa_::fn<double>; \
    }
#define FASTCONV_PROBE(isa_, fn) \
    if (want == Isa::isa_) t.fma_probe = &isa_::fn;
#include "dispatch/kernels.def"
#undef FASTCONV_GEMM_UKERNEL
#undef FASTCONV_GEMM_UKERNEL_EDGE
#undef FASTCONV_GEMM_UKERNEL_NARROW
#undef FASTCONV_KERNEL
#undef FASTCONV_PROBE
    return t;
}

bool cpu_supports(Isa isa) {
    switch (isa) {
        case Isa::ref:
            return true;
        case Isa::avx2:
            return cpu_features().avx2_fma;
        case Isa::avx512:
            return cpu_features().avx512;
    }
    return false;
}

bool is_compiled(Isa isa) {
    for (Isa c : compiled_isas())
        if (c == isa) return true;
    return false;
}

std::mutex g_mutex;
KernelTable g_tables[3];
const KernelTable* g_active = nullptr;

void init_tables_locked() {
    if (g_active) return;
    for (Isa isa : compiled_isas()) g_tables[static_cast<int>(isa)] = make_table(isa);
    Isa chosen = best_supported_isa();
    if (const char* env = std::getenv("FASTCONV_ISA"); env && *env) {
        try {
            chosen = parse_isa(env);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(std::string("FASTCONV_ISA=") + env + ": " + e.what());
        }
        if (!is_compiled(chosen) || !cpu_supports(chosen))
            throw std::invalid_argument(std::string("FASTCONV_ISA=") + env +
                                        ": this CPU/OS or build does not support that ISA");
    }
    g_active = &g_tables[static_cast<int>(chosen)];
}

}  // namespace

std::vector<Isa> compiled_isas() {
    std::vector<Isa> v{Isa::ref};
#ifdef FASTCONV_HAVE_AVX2
    v.push_back(Isa::avx2);
#endif
#ifdef FASTCONV_HAVE_AVX512
    v.push_back(Isa::avx512);
#endif
    return v;
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> v;
    for (Isa isa : compiled_isas())
        if (cpu_supports(isa)) v.push_back(isa);
    return v;
}

Isa best_supported_isa() {
    return supported_isas().back();
}

Isa parse_isa(const std::string& name) {
    if (name == "ref") return Isa::ref;
    if (name == "avx2") return Isa::avx2;
    if (name == "avx512") return Isa::avx512;
    throw std::invalid_argument("unknown ISA '" + name + "': expected ref, avx2 or avx512");
}

const KernelTable& kernels() {
    // Fast path after initialisation; the table pointer only changes under set_isa.
    if (const KernelTable* t = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE)) return *t;
    std::lock_guard<std::mutex> lock(g_mutex);
    init_tables_locked();
    return *g_active;
}

void set_isa(const std::string& name) {
    const Isa isa = parse_isa(name);
    std::lock_guard<std::mutex> lock(g_mutex);
    init_tables_locked();
    if (!is_compiled(isa))
        throw std::invalid_argument("ISA '" + name + "' was not compiled into this build");
    if (!cpu_supports(isa))
        throw std::invalid_argument("ISA '" + name + "' is not supported by this CPU/OS");
    __atomic_store_n(&g_active, &g_tables[static_cast<int>(isa)], __ATOMIC_RELEASE);
}

}  // namespace fastconv
