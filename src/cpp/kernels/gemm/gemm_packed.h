// GEMM on operands packed once up front, for drivers that reuse an operand across many
// products (conv weights across images) or build it already packed (im2col into packB
// layout). Layouts cover the whole K extent, split into KC blocks:
//   packed A (M x K): for each KC block pc: ceil(M/MR) panels of kc_b x MR at pc*Mpad + ip*kc_b*MR
//   packed B (K x N): for each KC block pc: ceil(N/NR) panels of kc_b x NR at pc*Npad + jp*kc_b*NR
// with Mpad/Npad = M/N rounded up to MR/NR, kc_b = min(KC, K - pc), and pad rows/columns 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fastconv/kernel_table.h"

namespace fastconv {

// The kernel set a whole driver call runs with (one snapshot of the table, so switching
// the ISA from another thread can never mix tile sizes within a call) and its tiling.
template <typename T>
struct GemmPacking {
    const KernelSet<T>* ks;
    int mr, nr;  // micro-kernel tile
    int64_t kc;  // K block
    int64_t padded_m(int64_t m) const { return (m + mr - 1) / mr * mr; }
    int64_t padded_n(int64_t n) const { return (n + nr - 1) / nr * nr; }
};

template <typename T>
GemmPacking<T> gemm_packing();

// Pack op(A) (M x K; A stored M x K with lda, or K x M if trans) into the layout above.
template <typename T>
void gemm_pack_a(const GemmPacking<T>& pk, bool trans, int64_t M, int64_t K, const T* A,
                 int64_t lda, T* out);
// Pack op(B) (K x N; B stored K x N with ldb, or N x K if trans).
template <typename T>
void gemm_pack_b(const GemmPacking<T>& pk, bool trans, int64_t K, int64_t N, const T* B,
                 int64_t ldb, T* out);

// C[M][N] = alpha * A * B + beta * C from packed operands (beta == 0: C not read). Threads
// split the NR panels; no synchronisation inside, so nthreads = 1 is safe in a parallel region.
template <typename T>
void gemm_packed(const GemmPacking<T>& pk, int64_t M, int64_t N, int64_t K, T alpha, const T* pa,
                 const T* pb, T beta, T* C, int64_t ldc, int nthreads);

// packA copies each MC x KC block of A once for all the NR panels of B that it meets. With
// few panels the copy costs more than its contiguous reads save, and the tiles read A in
// place (KernelSet::gemm_ukernel_a_in_place). Zen 4, 1 thread, alternated: 64x84 by 84x10
// 2.9 -> 2.4 us; 256x256 by 256x64 82 -> 75 us; ResNet-18 7x7x512 b1 forward (its
// weights against 2 panels) 4.3 -> 2.9 ms. No loss was measured up to 25 panels; the
// limit stays below that, where packing costs a few per cent at most anyway.
constexpr int64_t kAInPlaceMaxPanels = 16;

// Whether A, met by `panels` NR panels of B in all, is better read in place.
template <typename T>
bool a_in_place_pays(const GemmPacking<T>& pk, int64_t panels) {
    return pk.ks->gemm_ukernel_a_in_place != nullptr && panels <= kAInPlaceMaxPanels;
}

// The same product with A (M x K, row-major with lda) read in place, not packed (when
// a_in_place_pays).
template <typename T>
void gemm_packed_a_in_place(const GemmPacking<T>& pk, int64_t M, int64_t N, int64_t K, T alpha,
                            const T* A, int64_t lda, const T* pb, T beta, T* C, int64_t ldc,
                            int nthreads);

}  // namespace fastconv
