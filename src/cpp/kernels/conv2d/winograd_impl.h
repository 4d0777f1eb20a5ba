// Winograd F(2x2, 3x3) transforms for one ISA (winograd.cpp has the algorithm and the
// layout): the including .cpp defines FASTCONV_ISA and is compiled with that ISA's flags,
// so the loops over a run's tiles vectorise at its width. Semantics:
// KernelSet::winograd_input_run / winograd_output (fastconv/kernel_table.h).
// No std:: function templates here: their instantiations would be COMDAT-merged with
// baseline copies, and the linker could hand a baseline caller this file's AVX code.
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including winograd_impl.h"
#endif

#include <cstdint>

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_WINOGRAD_KERNELS

namespace {
constexpr int kLanes = ::fastconv::kWinogradMaxLanes;
}  // namespace

// B^T d B is separable: the column transform B^T runs over whole input rows, then the row
// transform B per tile. With the rows split into even and odd columns (tile i's patch
// columns are E[i], O[i], E[i+1], O[i+1]), every step is a contiguous loop over the run.
template <typename T>
void winograd_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,
                        T* out, int64_t xi_stride) {
    T e[4][kLanes + 1], od[4][kLanes + 1];
    // Columns iw0 + 2i (even) and iw0 + 2i + 1 (odd) inside [0, W): i in [lo, hi).
    auto first = [](int64_t a) { return a <= 0 ? int64_t{0} : (a + 1) / 2; };  // ceil(a/2)
    const int64_t n = len + 1;
    auto clampn = [n](int64_t v) { return v < 0 ? int64_t{0} : (v > n ? n : v); };
    const int64_t elo = clampn(first(-iw0)), ehi = clampn(first(W - iw0));
    const int64_t olo = clampn(first(-iw0 - 1)), ohi = clampn(first(W - iw0 - 1));
    for (int r = 0; r < 4; ++r) {
        const int64_t ih = ih0 + r;
        T* er = e[r];
        T* orow = od[r];
        if (ih < 0 || ih >= H) {
            for (int64_t i = 0; i < n; ++i) er[i] = orow[i] = T(0);
            continue;
        }
        const T* row = xc + ih * W;  // indexed only at columns inside [0, W)
        for (int64_t i = 0; i < elo; ++i) er[i] = T(0);
        for (int64_t i = elo; i < ehi; ++i) er[i] = row[iw0 + 2 * i];
        for (int64_t i = ehi; i < n; ++i) er[i] = T(0);
        for (int64_t i = 0; i < olo; ++i) orow[i] = T(0);
        for (int64_t i = olo; i < ohi; ++i) orow[i] = row[iw0 + 2 * i + 1];
        for (int64_t i = ohi; i < n; ++i) orow[i] = T(0);
    }
    T te[4][kLanes + 1], to[4][kLanes + 1];  // B^T d, even and odd columns
    for (int64_t i = 0; i < n; ++i) {
        te[0][i] = e[0][i] - e[2][i];
        te[1][i] = e[1][i] + e[2][i];
        te[2][i] = e[2][i] - e[1][i];
        te[3][i] = e[1][i] - e[3][i];
        to[0][i] = od[0][i] - od[2][i];
        to[1][i] = od[1][i] + od[2][i];
        to[2][i] = od[2][i] - od[1][i];
        to[3][i] = od[1][i] - od[3][i];
    }
    for (int r = 0; r < 4; ++r) {  // (B^T d) B on columns E[i], O[i], E[i+1], O[i+1]
        T* o0 = out + (r * 4 + 0) * xi_stride;
        T* o1 = out + (r * 4 + 1) * xi_stride;
        T* o2 = out + (r * 4 + 2) * xi_stride;
        T* o3 = out + (r * 4 + 3) * xi_stride;
        const T* ce = te[r];
        const T* co = to[r];
        for (int i = 0; i < len; ++i) {
            o0[i] = ce[i] - ce[i + 1];
            o1[i] = co[i] + ce[i + 1];
            o2[i] = ce[i + 1] - co[i];
            o3[i] = co[i] - co[i + 1];
        }
    }
}

template <typename T>
void winograd_output(const T* m, int64_t xi_stride, int lanes, T bias, T* o) {
    T s[8][kLanes];  // A^T m: rows 0 and 1, 4 columns each
    for (int q = 0; q < 4; ++q) {
        const T* m0 = m + q * xi_stride;
        const T* m1 = m + (4 + q) * xi_stride;
        const T* m2 = m + (8 + q) * xi_stride;
        const T* m3 = m + (12 + q) * xi_stride;
        for (int j = 0; j < lanes; ++j) {
            s[q][j] = m0[j] + m1[j] + m2[j];
            s[4 + q][j] = m1[j] - m2[j] - m3[j];
        }
    }
    for (int r = 0; r < 2; ++r) {  // (A^T m) A
        T* y0 = o + (r * 2) * kLanes;
        T* y1 = o + (r * 2 + 1) * kLanes;
        for (int j = 0; j < lanes; ++j) {
            const T s0 = s[r * 4][j], s1 = s[r * 4 + 1][j], s2 = s[r * 4 + 2][j],
                    s3 = s[r * 4 + 3][j];
            y0[j] = s0 + s1 + s2 + bias;
            y1[j] = s1 - s2 - s3 + bias;
        }
    }
}

FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(float)
FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
