// Portable GEMM micro-kernel (baseline x86-64 / any CPU): the fallback register tile and the
// in-repo oracle for the ISA tiles. Semantics: KernelSet::gemm_ukernel (kernel_table.h).
#include <cstdint>

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace ref {

namespace {
// NR columns of a B panel whose rows are LDB apart (LDB > NR for the half-width tile).
template <typename T, int MR, int NR, int LDB = NR>
void gemm_ukernel(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta) {
    T acc[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p, a += MR, b += LDB)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) {
            T& out = c[i * ldc + j];
            out = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * out;
        }
}
}  // namespace

void sgemm_ukernel_4x8(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       float alpha, float beta) {
    gemm_ukernel<float, 4, 8>(kc, a, b, c, ldc, alpha, beta);
}
void dgemm_ukernel_4x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       double alpha, double beta) {
    gemm_ukernel<double, 4, 8>(kc, a, b, c, ldc, alpha, beta);
}

void sgemm_ukernel_4x4(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       float alpha, float beta) {
    gemm_ukernel<float, 4, 4, 8>(kc, a, b, c, ldc, alpha, beta);
}
void dgemm_ukernel_4x4(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                       double alpha, double beta) {
    gemm_ukernel<double, 4, 4, 8>(kc, a, b, c, ldc, alpha, beta);
}

}  // namespace ref
}  // namespace fastconv
