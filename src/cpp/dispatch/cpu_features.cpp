// CPUID + XGETBV detection (Intel SDM vol. 1 §13.3 / §15.2: an ISA extension is usable only
// if CPUID reports it AND XCR0 shows the OS saves the matching register state).
#include "dispatch/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define FASTCONV_X86 1
#include <cpuid.h>
#endif

namespace fastconv {

namespace {

#ifdef FASTCONV_X86
void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
    __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
}

uint64_t xgetbv0() {
    uint32_t eax, edx;
    // xgetbv with ecx = 0 reads XCR0; encoded as bytes so no -mxsave flag is needed.
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
    CpuFeatures f;
#ifdef FASTCONV_X86
    uint32_t r[4];
    cpuid(0, 0, r);
    const uint32_t max_leaf = r[0];
    if (max_leaf < 7) return f;
    cpuid(1, 0, r);
    const bool fma = r[2] & (1u << 12);
    const bool osxsave = r[2] & (1u << 27);
    const bool avx = r[2] & (1u << 28);
    cpuid(7, 0, r);
    const bool avx2 = r[1] & (1u << 5);
    const bool avx512f = r[1] & (1u << 16);
    const bool avx512dq = r[1] & (1u << 17);
    const bool avx512bw = r[1] & (1u << 30);
    const bool avx512vl = r[1] & (1u << 31);
    if (osxsave) {
        const uint64_t xcr0 = xgetbv0();
        const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
        const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
        f.avx2_fma = avx && avx2 && fma && ymm_state;
        f.avx512 = f.avx2_fma && avx512f && avx512dq && avx512bw && avx512vl && zmm_state;
    }
    cpuid(0x80000000u, 0, r);
    const uint32_t max_ext = r[0];
    if (max_ext >= 0x80000006u) {
        uint32_t c[4];
        cpuid(0x80000006u, 0, c);
        const uint32_t kib = c[2] >> 16;  // ECX[31:16]: L2 size in KiB
        if (kib >= 64) f.l2_bytes = static_cast<long>(kib) * 1024;
    }
    if (max_ext >= 0x80000004u) {
        char brand[49] = {0};
        for (uint32_t i = 0; i < 3; ++i) {
            cpuid(0x80000002u + i, 0, r);
            std::memcpy(brand + 16 * i, r, 16);
        }
        f.brand = brand;
        const auto b = f.brand.find_first_not_of(' ');
        f.brand = b == std::string::npos ? "" : f.brand.substr(b);
        while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    }
#endif
    return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

}  // namespace fastconv
