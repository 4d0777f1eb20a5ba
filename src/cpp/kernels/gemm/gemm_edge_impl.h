// GEMM edge tiles, written once over a vector-traits type and compiled per ISA: the
// micro-kernel files (gemm_ukernel_*_{avx2,avx512}.cpp) include this file, define the
// traits of their vectors and instantiate gemm_edge::edge with them.
//
// An edge tile is R <= MR rows by NV <= 2 vectors of an MR x (2 vectors) register tile:
// only those rows' FMAs run (a Linear backward_weight with M = 10 has a 2-row edge, which
// the full 8-row tile computed at four times the cost), and C is written through lane
// masks, the last vector holding `tail` columns: no scratch tile, no element-by-element
// merge. Semantics: KernelSet::gemm_ukernel_edge (kernel_table.h).
//
// The same tiles also read op(A) in place, unpacked (KernelSet::gemm_ukernel_a_in_place):
// element (i, p) at a[i*lda + p] (AMode::rows, a row-major A) or a[p*lda + i] (AMode::cols,
// a column-major one), for any tile, full or edge.
//
// The traits W provide: T, V, Mask, kLanes; zero(), broadcast(const T*), set1(T),
// load(const T*) (aligned), loadu(const T*), storeu(T*, V), fmadd(a, b, c), mul(a, b);
// mask(n) (lanes [0, n) active), maskload(const T*, Mask) and store_part(T*, Mask, n, V)
// (m == mask(n)), which neither read nor write masked-off lanes. Define the traits in an anonymous
// namespace: each ISA's instantiations then stay local to the file compiled with that ISA's flags.
#pragma once

#include <cstdint>

namespace fastconv {
namespace gemm_edge {

// Where element (i, p) of the tile's A lies: a packed kc x MR panel, a[p*MR + i]; or op(A)
// in place, a[i*lda + p] (rows) or a[p*lda + i] (cols).
enum class AMode { packed, rows, cols };

template <typename W, int MR, int R, int NV, AMode kA = AMode::packed>
void edge_tile(int64_t kc, const typename W::T* a, int64_t lda, const typename W::T* b,
               typename W::T* c, int64_t ldc, typename W::T alpha, typename W::T beta, int tail) {
    using T = typename W::T;
    using V = typename W::V;
    constexpr int kNR = 2 * W::kLanes;
    V acc[R][NV];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = W::zero();
    const T* ar[R];  // AMode::rows: one pointer per row, indexed by p
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) ar[i] = a + i * lda;
    const int64_t a_step = kA == AMode::packed ? MR : kA == AMode::cols ? lda : 0;
    // alpha and beta wait in memory during the loop (the empty asm may have changed them,
    // so they are read after it): held in registers they leave AVX2's full 6 x 2 tile (12
    // accumulators + 2 B vectors + 1 broadcast of 16 registers) one short, and GCC spilled
    // an accumulator, a store-forwarding round trip per iteration: sgemm 256 at 40 % of
    // peak on a Zen 3.
    T scale[2] = {alpha, beta};
    __asm__("" : "+m"(scale));
    for (int64_t p = 0; p < kc; ++p, a += a_step, b += kNR) {
        V bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) bv[v] = W::load(b + v * W::kLanes);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            const V ai = W::broadcast(kA == AMode::rows ? ar[i] + p : a + i);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) acc[i][v] = W::fmadd(ai, bv[v], acc[i][v]);
        }
    }
    alpha = scale[0];
    beta = scale[1];
    const V va = W::set1(alpha), vb = W::set1(beta);
    const typename W::Mask last = W::mask(tail);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            T* cv = c + i * ldc + v * W::kLanes;
            const V r = W::mul(va, acc[i][v]);
            // beta == 0 never reads C (NaN or Inf there is ignored, as BLAS). Whole vectors
            // take plain moves: AVX2's masked store is microcoded on AMD (Zen 2/3).
            if (v < NV - 1 || tail == W::kLanes)
                W::storeu(cv, beta == T(0) ? r : W::fmadd(vb, W::loadu(cv), r));
            else
                W::store_part(cv, last, tail,
                              beta == T(0) ? r : W::fmadd(vb, W::maskload(cv, last), r));
        }
}

// rows x cols of the tile (1 <= rows <= MR, 1 <= cols <= 2 * kLanes): the instantiation
// for R = rows, found by recursion over R.
template <typename W, int MR, AMode kA = AMode::packed, int R = 1>
void edge(int64_t kc, const typename W::T* a, int64_t lda, const typename W::T* b, typename W::T* c,
          int64_t ldc, typename W::T alpha, typename W::T beta, int rows, int cols) {
    if constexpr (R < MR) {
        if (rows != R)
            return edge<W, MR, kA, R + 1>(kc, a, lda, b, c, ldc, alpha, beta, rows, cols);
    }
    if (cols > W::kLanes)
        edge_tile<W, MR, R, 2, kA>(kc, a, lda, b, c, ldc, alpha, beta, cols - W::kLanes);
    else
        edge_tile<W, MR, R, 1, kA>(kc, a, lda, b, c, ldc, alpha, beta, cols);
}

// KernelSet::gemm_ukernel_a_in_place over these tiles.
template <typename W, int MR>
void a_in_place(int64_t kc, const typename W::T* a, int64_t lda, bool a_rows,
                const typename W::T* b, typename W::T* c, int64_t ldc, typename W::T alpha,
                typename W::T beta, int rows, int cols) {
    if (a_rows)
        edge<W, MR, AMode::rows>(kc, a, lda, b, c, ldc, alpha, beta, rows, cols);
    else
        edge<W, MR, AMode::cols>(kc, a, lda, b, c, ldc, alpha, beta, rows, cols);
}

}  // namespace gemm_edge
}  // namespace fastconv
