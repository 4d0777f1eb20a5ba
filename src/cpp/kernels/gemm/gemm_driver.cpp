// GEMM driver in the BLIS/Goto scheme (Goto & van de Geijn 2008; Van Zee & van de Geijn,
// "BLIS", 2015): loops jc (NC) -> pc (KC) -> packB -> ic (MC) -> packA -> jr (NR) -> ir (MR)
// -> micro-kernel from the kernel table. Row-major C = alpha*op(A)*op(B) + beta*C.
//
// Threads: one OpenMP region per call; each (jc, pc) step packs B cooperatively, then the
// threads claim chunks of the (MC block x NR panel) grid from an atomic counter, so small M
// (conv: K_out = 6..64) still uses every thread and a thread on a busy core takes less.
// No omp worksharing constructs are used, only explicit partitioning and barriers lexically
// bound to this region, so gemm(..., nthreads=1) is safe inside another driver's region.
#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstring>

#include "common/aligned_buffer.h"
#include "common/parallel.h"
#include "common/row_copy.h"
#include "dispatch/cpu_features.h"
#include "fastconv/kernel_table.h"
#include "fastconv/ops.h"
#include "kernels/gemm/gemm_packed.h"
#include "kernels/gemm/pack_transpose.h"

namespace fastconv {

namespace {

constexpr int kMaxMR = 8, kMaxNR = 32;  // largest tile in kernels.def (edge-tile buffer)

struct Blocking {
    int64_t mc, kc, nc;
};

// Cache blocking from the tile shape and this CPU's L2: the MC x KC A block fills about 3/4
// of L2; the KC x NR B micro-panel (64 KiB at KC = 512) streams from L2 alongside it.
// Measured on Zen 4 (1 MiB L2; sgemm 1024-2048, 1 thread), KC = 512 / MC = 384 runs at
// 0.98-1.0x OpenBLAS, KC = 192 (B panel inside L1) at 0.87-0.91x: the longer K loop halves
// the C tile loads/stores per FMA. On Zen 3 (512 KiB L2) MC = 192, whose block stays in L2,
// ran sgemm 2048 at 0.94x NumPy against 0.92x with MC = 384 (medians of 4 alternated runs;
// 512-1024 unchanged). NC keeps the packed B block in L3.
template <typename T>
Blocking blocking(int mr, int nr) {
    const int64_t size = static_cast<int64_t>(sizeof(T));
    Blocking b;
    b.kc = std::min<int64_t>(512, (64 * 1024) / (nr * size));
    // L2s over 1 MiB (not measured) get the 1 MiB blocks.
    const int64_t a_block = std::min<int64_t>(cpu_features().l2_bytes, 1 << 20) / 4 * 3;
    b.mc = std::max<int64_t>(mr, a_block / (b.kc * size) / mr * mr);
    b.nc = std::max<int64_t>(nr, 4096 / nr * nr);
    return b;
}

// op(A)[i][p] lives at A[i*rs + p*cs]. packA: rows [i0, i0+mc) x cols [p0, p0+kc) into
// ceil(mc/MR) panels of kc x MR (element (i, p) of a panel at p*MR + i), zero-padded rows.
template <typename T>
void pack_a(const T* A, int64_t rs, int64_t cs, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            int mr, T* out) {
    if (rs == 1) {  // op(A) = stored^T (trans_a): a panel's MR rows are adjacent for each p
        // Stored row p holds op(A)'s column p, mc elements for all panels; a panel takes MR
        // of them from each of kc rows, each row in its own page when lda is large. Rows go
        // in groups of 8, every panel served from a group before the next: their lines
        // (and pages) are read once and stay in L1 meanwhile, where panel by panel over all
        // kc rows re-read each line from L2 for every panel it feeds (ResNet-18 7x7x512 b1
        // backward_data, W^T 4608 x 512: packA 31 % of the call; 4.5 -> 3.7 ms on Zen 3).
        // Measured with AVX2's MR = 6 only: AVX-512's tiles (MR = 8) keep whole panels
        // (one group of kc rows) until it is measured there.
        const int64_t group = mr == 6 ? 8 : kc;
        for (int64_t pb = 0; pb < kc; pb += group) {
            const int64_t pe = std::min<int64_t>(kc, pb + group);
            T* panel = out;
            for (int64_t ib = 0; ib < mc; ib += mr, panel += kc * mr) {
                const int64_t rows = std::min<int64_t>(mr, mc - ib);
                const T* src = A + i0 + ib + p0 * cs;
                const auto full = [&](auto bytes) {
                    // Straight-line moves of one MR-element row per p, not a loop of
                    // elements, whose speed swung 30 % with its placement in the library.
                    for (int64_t p = pb; p < pe; ++p)
                        __builtin_memcpy(panel + p * mr, src + p * cs, decltype(bytes)::value);
                };
                const int64_t bytes = mr * static_cast<int64_t>(sizeof(T));
                if (rows == mr && bytes == 24) {  // AVX2 float (MR = 6)
                    full(std::integral_constant<int, 24>{});
                } else if (rows == mr && bytes == 32) {  // AVX-512 float (MR = 8)
                    full(std::integral_constant<int, 32>{});
                } else if (rows == mr && bytes == 48) {  // AVX2 double (MR = 6)
                    full(std::integral_constant<int, 48>{});
                } else if (rows == mr && bytes == 64) {  // AVX-512 double (MR = 8)
                    full(std::integral_constant<int, 64>{});
                } else {
                    for (int64_t p = pb; p < pe; ++p) {
                        T* dst = panel + p * mr;
                        for (int64_t i = 0; i < rows; ++i) dst[i] = src[p * cs + i];
                        for (int64_t i = rows; i < mr; ++i) dst[i] = T(0);
                    }
                }
            }
        }
        return;
    }
    for (int64_t ib = 0; ib < mc; ib += mr, out += kc * mr) {
        const int64_t rows = std::min<int64_t>(mr, mc - ib);
        int64_t i = 0;
        if (cs == 1)  // rows contiguous along p: register transposes (pack_transpose.h)
            for (; i + kTransposeRows<T> <= rows; i += kTransposeRows<T>)
                transpose_strided_rows(A + (i0 + ib + i) * rs + p0, rs, kc, mr, out + i);
        for (; i < rows; ++i) {
            const T* src = A + (i0 + ib + i) * rs + p0 * cs;
            for (int64_t p = 0; p < kc; ++p) out[p * mr + i] = src[p * cs];
        }
        for (int64_t i = rows; i < mr; ++i)
            for (int64_t p = 0; p < kc; ++p) out[p * mr + i] = T(0);
    }
}

// op(B)[p][j] lives at B[p*rs + j*cs]. packB: one NR-column panel starting at column j0,
// kc x NR (element (p, j) at p*NR + j), zero-padded columns.
template <typename T>
void pack_b_panel(const T* B, int64_t rs, int64_t cs, int64_t p0, int64_t kc, int64_t j0,
                  int64_t cols, int nr, T* out) {
    if (cs == 1) {
        // Rows of at most NR elements: inline copies (common/row_copy.h), not a memcpy call
        // per row, whose cost exceeded the copy (a tenth of a 64x10 by 10x84 product).
        for (int64_t p = 0; p < kc; ++p) {
            const T* src = B + (p0 + p) * rs + j0;
            T* dst = out + p * nr;
            copy_row(dst, src, cols);
            for (int64_t j = cols; j < nr; ++j) dst[j] = T(0);
        }
    } else {
        // A transpose: rows of 16 at a time, so the 16 panel rows being written stay in L1
        // while the panel's columns are read (all kc rows at once thrash it: kc lines).
        constexpr int64_t kRows = 16;
        constexpr int kGroup = kTransposeRows<T>;
        static constexpr T kZeros[kRows] = {};
        for (int64_t pb = 0; pb < kc; pb += kRows) {
            const int64_t pe = std::min<int64_t>(kc, pb + kRows);
            if (rs == 1) {
                // Columns of op(B) contiguous: register transposes, as in packA, over whole
                // groups of columns; those past `cols` read zeros, so the same transposes
                // write the padding (a narrow Linear's N = 10 in an NR = 16 panel: element
                // by element, its padding and remainder took a sixth of the GEMM).
                assert(nr % kGroup == 0);
                for (int64_t j = 0; j < nr; j += kGroup) {
                    const T* rows[kGroup];
                    for (int i = 0; i < kGroup; ++i)
                        rows[i] = j + i < cols ? B + (j0 + j + i) * cs + p0 + pb : kZeros;
                    transpose_rows(rows, pe - pb, nr, out + pb * nr + j);
                }
                continue;
            }
            for (int64_t j = 0; j < cols; ++j) {
                const T* src = B + (j0 + j) * cs + p0 * rs;
                for (int64_t p = pb; p < pe; ++p) out[p * nr + j] = src[p * rs];
            }
        }
        if (rs != 1)
            for (int64_t j = cols; j < nr; ++j)
                for (int64_t p = 0; p < kc; ++p) out[p * nr + j] = T(0);
    }
}

template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i) {
        T* c = C + i * ldc;
        if (beta == T(0))
            std::fill(c, c + N, T(0));  // BLAS: beta == 0 ignores NaN/Inf already in C
        else
            for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
}

// Macro-kernel over one packed A block (mc rows) and columns [jp0, jp1) of NR panels of the
// packed B block. Edge tiles run the ISA's edge kernel where it has one, else the full
// micro-kernel into a scratch tile, then merge.
template <typename T>
void macro_kernel(const KernelSet<T>& ks, int64_t mc, int64_t nc, int64_t kc, const T* pa,
                  const T* pb, int64_t jp0, int64_t jp1, T alpha, T beta, T* C, int64_t ldc) {
    const int mr = ks.gemm_mr, nr = ks.gemm_nr;
    alignas(64) T tile[kMaxMR * kMaxNR];
    for (int64_t jp = jp0; jp < jp1; ++jp) {
        const int64_t j = jp * nr;
        const int64_t ncols = std::min<int64_t>(nr, nc - j);
        const T* b = pb + jp * kc * nr;
        if (ncols <= kGemmNarrowMaxCols && ks.gemm_ukernel_narrow) {
            const int64_t npanels = (mc + mr - 1) / mr;
            ks.gemm_ukernel_narrow(kc, pa, npanels, b, C + j, ldc, alpha, beta,
                                   static_cast<int>(mc - (npanels - 1) * mr),
                                   static_cast<int>(ncols));
            continue;
        }
        for (int64_t i = 0; i < mc; i += mr) {
            const int64_t nrows = std::min<int64_t>(mr, mc - i);
            const T* a = pa + (i / mr) * kc * mr;
            T* c = C + i * ldc + j;
            // A remainder of at most NR/2 columns runs the half-width tile: half the FMAs.
            const bool half = 2 * ncols <= nr;
            const auto ukernel = half ? ks.gemm_ukernel_half : ks.gemm_ukernel;
            if (nrows == mr && ncols == (half ? nr / 2 : nr)) {
                ukernel(kc, a, b, c, ldc, alpha, beta);
            } else if (ks.gemm_ukernel_edge) {
                ks.gemm_ukernel_edge(kc, a, b, c, ldc, alpha, beta, static_cast<int>(nrows),
                                     static_cast<int>(ncols));
            } else {
                ukernel(kc, a, b, tile, nr, alpha, T(0));
                for (int64_t ii = 0; ii < nrows; ++ii)
                    for (int64_t jj = 0; jj < ncols; ++jj) {
                        T& out = c[ii * ldc + jj];
                        out = beta == T(0) ? tile[ii * nr + jj] : tile[ii * nr + jj] + beta * out;
                    }
            }
        }
    }
}

// The same with op(A) read in place (KernelSet::gemm_ukernel_a_in_place): a is element (0, 0)
// of the block; row i at a + i*lda (a_rows) or a + i.
template <typename T>
void macro_kernel_a_in_place(const KernelSet<T>& ks, int64_t mc, int64_t nc, int64_t kc, const T* a,
                             int64_t lda, bool a_rows, const T* pb, int64_t jp0, int64_t jp1,
                             T alpha, T beta, T* C, int64_t ldc) {
    const int mr = ks.gemm_mr, nr = ks.gemm_nr;
    for (int64_t jp = jp0; jp < jp1; ++jp) {
        const int64_t j = jp * nr;
        const int ncols = static_cast<int>(std::min<int64_t>(nr, nc - j));
        const T* b = pb + jp * kc * nr;
        for (int64_t i = 0; i < mc; i += mr)
            ks.gemm_ukernel_a_in_place(kc, a + (a_rows ? i * lda : i), lda, a_rows, b,
                                       C + i * ldc + j, ldc, alpha, beta,
                                       static_cast<int>(std::min<int64_t>(mr, mc - i)), ncols);
    }
}

// Columns of A in place (trans_a) cost a line per k step for MR elements, and a page when
// lda is large: with KC = 512 those lines outgrow L1 between the tiles that share them (a
// transposed 512 x 4608 op(A) times 4608 x 64: 3.7 ms packed, 5.4 in place, 5.0 in place
// with KC = 256), so only up to 256 k steps (64x84 A^T times 84x10: 4.1 -> 2.9 us).
constexpr int64_t kAInPlaceColsMaxKc = 256;

// M <= kGemmSmallM: no packing (gemm_small_m_impl.h), threads over column ranges.
template <typename T>
void gemm_small_m(const KernelSet<T>& ks, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t a_rs, int64_t a_cs, const T* B, int64_t b_rs, int64_t b_cs, T beta,
                  T* C, int64_t ldc, int nthreads) {
    const T* a = A;
    if (a_cs != 1 || a_rs != K) {  // the kernel reads op(A) as contiguous rows
        T* copy = thread_scratch<T, 1>(static_cast<size_t>(M * K));
        for (int64_t i = 0; i < M; ++i)
            for (int64_t p = 0; p < K; ++p) copy[i * K + p] = A[i * a_rs + p * a_cs];
        a = copy;
    }
    // Columns in units of 16 per thread; a thread needs >= 64 Ki multiply-adds to pay off.
    constexpr int64_t kUnit = 16;
    const int64_t units = (N + kUnit - 1) / kUnit;
    const int64_t work = M * N * K / (int64_t{1} << 16);
    const int nt = static_cast<int>(std::max<int64_t>(
        1, std::min<int64_t>({static_cast<int64_t>(nthreads), units, work})));
    parallel_ranges(units, nt, [&](int64_t u0, int64_t u1) {
        const int64_t j0 = u0 * kUnit, j1 = std::min<int64_t>(N, u1 * kUnit);
        if (j0 < j1) ks.gemm_small_m(M, j0, j1, K, alpha, a, B, b_rs, b_cs, beta, C, ldc);
    });
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, int nthreads) {
    assert(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == T(0)) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const KernelSet<T>& ks = kernel_set<T>();
    const int mr = ks.gemm_mr, nr = ks.gemm_nr;
    assert(mr <= kMaxMR && nr <= kMaxNR);
    Blocking bl = blocking<T>(mr, nr);
    // Equal MC blocks (M = 512 as 2 x 256, not 384 + 128): threads get equal work.
    const int64_t nblk = (M + bl.mc - 1) / bl.mc;
    bl.mc = ((M + nblk - 1) / nblk + mr - 1) / mr * mr;
    const int64_t a_rs = trans_a ? 1 : lda, a_cs = trans_a ? lda : 1;
    const int64_t b_rs = trans_b ? 1 : ldb, b_cs = trans_b ? ldb : 1;
    if (M <= kGemmSmallM) {
        gemm_small_m(ks, M, N, K, alpha, A, a_rs, a_cs, B, b_rs, b_cs, beta, C, ldc, nthreads);
        return;
    }

    // Never more threads than there are MR x NR tiles of work.
    const int64_t tiles = ((M + mr - 1) / mr) * ((N + nr - 1) / nr);
    const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, tiles)));

    const int64_t nc_max = std::min<int64_t>(bl.nc, (N + nr - 1) / nr * nr);
    const int64_t kc_max = std::min<int64_t>(bl.kc, K);
    const int64_t mc_max = std::min<int64_t>(bl.mc, (M + mr - 1) / mr * mr);
    const GemmPacking<T> pk{&ks, mr, nr, bl.kc};
    const bool a_in_place =
        a_in_place_pays(pk, (N + nr - 1) / nr) && (!trans_a || kc_max <= kAInPlaceColsMaxKc);
    // Scratch for the whole team, allocated before it starts: an allocation failure inside
    // the parallel region could not be reported (and would strand the barriers).
    T* pb = thread_scratch<T, 0>(static_cast<size_t>(nc_max * kc_max));
    const int team = team_for(nt);  // tid < team; threads past the tiles claim nothing
    T* pa_all =
        a_in_place ? nullptr : thread_scratch<T, 1>(static_cast<size_t>(team * mc_max * kc_max));

    // Claim counter of the current (jc, pc) step. Thread 0 resets it between the step-end
    // barrier (every claim of the last step done) and the packB barrier (no claim yet).
    std::atomic<int64_t> next{0};

    auto run = [&](int tid, int nthr, auto&& barrier) {
        T* pa = a_in_place ? nullptr : pa_all + static_cast<int64_t>(tid) * mc_max * kc_max;
        for (int64_t jc = 0; jc < N; jc += bl.nc) {
            const int64_t nc = std::min<int64_t>(bl.nc, N - jc);
            const int64_t npanels = (nc + nr - 1) / nr;
            for (int64_t pc = 0; pc < K; pc += bl.kc) {
                const int64_t kc = std::min<int64_t>(bl.kc, K - pc);
                const T beta_eff = pc == 0 ? beta : T(1);  // later K blocks accumulate
                if (tid == 0) next.store(0, std::memory_order_relaxed);
                int64_t p0, p1;
                split_range(npanels, nthr, tid, &p0, &p1);
                for (int64_t jp = p0; jp < p1; ++jp)
                    pack_b_panel(B, b_rs, b_cs, pc, kc, jc + jp * nr,
                                 std::min<int64_t>(nr, nc - jp * nr), nr, pb + jp * kc * nr);
                barrier();
                // Work grid: (MC block, NR panel) units in block-major order, claimed in
                // contiguous chunks from the step's counter (dynamic_chunk: a thread whose
                // core is shared with another process takes fewer); a thread repacks A only
                // when its chunk enters another MC block.
                const int64_t nblocks = (M + bl.mc - 1) / bl.mc, units = nblocks * npanels;
                const int64_t chunk = nthr == 1 ? units : dynamic_chunk(units, nthr);
                int64_t packed_block = -1;
                for (int64_t t0; (t0 = next.fetch_add(chunk, std::memory_order_relaxed)) < units;) {
                    const int64_t t1 = std::min(units, t0 + chunk);
                    for (int64_t t = t0; t < t1;) {
                        const int64_t blk = t / npanels, jp0 = t % npanels;
                        const int64_t jp1 = std::min<int64_t>(npanels, jp0 + (t1 - t));
                        const int64_t ic = blk * bl.mc;
                        const int64_t mc = std::min<int64_t>(bl.mc, M - ic);
                        if (a_in_place) {
                            macro_kernel_a_in_place(ks, mc, nc, kc, A + ic * a_rs + pc * a_cs,
                                                    trans_a ? a_cs : a_rs, !trans_a, pb, jp0, jp1,
                                                    alpha, beta_eff, C + ic * ldc + jc, ldc);
                            t += jp1 - jp0;
                            continue;
                        }
                        if (blk != packed_block) {
                            pack_a(A, a_rs, a_cs, ic, mc, pc, kc, mr, pa);
                            packed_block = blk;
                        }
                        macro_kernel(ks, mc, nc, kc, pa, pb, jp0, jp1, alpha, beta_eff,
                                     C + ic * ldc + jc, ldc);
                        t += jp1 - jp0;
                    }
                }
                barrier();  // pb is repacked next step
            }
        }
    };

    if (nt == 1) {
        run(0, 1, [] {});
    } else {
#pragma omp parallel num_threads(team)
        {
#ifdef _OPENMP
            const int tid = omp_get_thread_num(), nthr = omp_get_num_threads();
#else
            const int tid = 0, nthr = 1;
#endif
            run(tid, nthr, [] {
#pragma omp barrier
            });
        }
    }
}

template <typename T>
GemmPacking<T> gemm_packing() {
    const KernelSet<T>& ks = kernel_set<T>();
    return {&ks, ks.gemm_mr, ks.gemm_nr, blocking<T>(ks.gemm_mr, ks.gemm_nr).kc};
}

template <typename T>
void gemm_pack_a(const GemmPacking<T>& pk, bool trans, int64_t M, int64_t K, const T* A,
                 int64_t lda, T* out) {
    const int64_t rs = trans ? 1 : lda, cs = trans ? lda : 1, Mpad = pk.padded_m(M);
    for (int64_t pc = 0; pc < K; pc += pk.kc)
        pack_a(A, rs, cs, 0, M, pc, std::min<int64_t>(pk.kc, K - pc), pk.mr, out + pc * Mpad);
}

template <typename T>
void gemm_pack_b(const GemmPacking<T>& pk, bool trans, int64_t K, int64_t N, const T* B,
                 int64_t ldb, T* out) {
    const int64_t rs = trans ? 1 : ldb, cs = trans ? ldb : 1, Npad = pk.padded_n(N);
    for (int64_t pc = 0; pc < K; pc += pk.kc) {
        const int64_t kc = std::min<int64_t>(pk.kc, K - pc);
        for (int64_t j = 0; j < N; j += pk.nr)
            pack_b_panel(B, rs, cs, pc, kc, j, std::min<int64_t>(pk.nr, N - j), pk.nr,
                         out + pc * Npad + (j / pk.nr) * kc * pk.nr);
    }
}

namespace {

// The loops of both packed-B products: threads split the NR panels; per KC block and MC
// block of rows, block(pc, kc, ic, mc, beta_eff, jp0, jp1) runs the macro-kernel there.
template <typename T, typename Block>
void packed_b_product(const GemmPacking<T>& pk, int64_t M, int64_t N, int64_t K, T alpha, T beta,
                      T* C, int64_t ldc, int nthreads, Block&& block) {
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == T(0)) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const int64_t npanels = pk.padded_n(N) / pk.nr;
    const int64_t mc_blk = blocking<T>(pk.mr, pk.nr).mc;
    parallel_ranges(npanels, nthreads, [&](int64_t jp0, int64_t jp1) {
        for (int64_t pc = 0; pc < K; pc += pk.kc) {
            const int64_t kc = std::min<int64_t>(pk.kc, K - pc);
            for (int64_t ic = 0; ic < M; ic += mc_blk)
                block(pc, kc, ic, std::min<int64_t>(mc_blk, M - ic), pc == 0 ? beta : T(1), jp0,
                      jp1);
        }
    });
}

}  // namespace

template <typename T>
void gemm_packed(const GemmPacking<T>& pk, int64_t M, int64_t N, int64_t K, T alpha, const T* pa,
                 const T* pb, T beta, T* C, int64_t ldc, int nthreads) {
    const int64_t Mpad = pk.padded_m(M), Npad = pk.padded_n(N);
    packed_b_product(
        pk, M, N, K, alpha, beta, C, ldc, nthreads,
        [&](int64_t pc, int64_t kc, int64_t ic, int64_t mc, T beta_eff, int64_t jp0, int64_t jp1) {
            macro_kernel(*pk.ks, mc, N, kc, pa + pc * Mpad + ic / pk.mr * kc * pk.mr,
                         pb + pc * Npad, jp0, jp1, alpha, beta_eff, C + ic * ldc, ldc);
        });
}

template <typename T>
void gemm_packed_a_in_place(const GemmPacking<T>& pk, int64_t M, int64_t N, int64_t K, T alpha,
                            const T* A, int64_t lda, const T* pb, T beta, T* C, int64_t ldc,
                            int nthreads) {
    assert(pk.ks->gemm_ukernel_a_in_place);
    const int64_t Npad = pk.padded_n(N);
    packed_b_product(
        pk, M, N, K, alpha, beta, C, ldc, nthreads,
        [&](int64_t pc, int64_t kc, int64_t ic, int64_t mc, T beta_eff, int64_t jp0, int64_t jp1) {
            macro_kernel_a_in_place(*pk.ks, mc, N, kc, A + ic * lda + pc, lda, true, pb + pc * Npad,
                                    jp0, jp1, alpha, beta_eff, C + ic * ldc, ldc);
        });
}

#define FASTCONV_INSTANTIATE_PACKED(T)                                                             \
    template GemmPacking<T> gemm_packing<T>();                                                     \
    template void gemm_pack_a<T>(const GemmPacking<T>&, bool, int64_t, int64_t, const T*, int64_t, \
                                 T*);                                                              \
    template void gemm_pack_b<T>(const GemmPacking<T>&, bool, int64_t, int64_t, const T*, int64_t, \
                                 T*);                                                              \
    template void gemm_packed<T>(const GemmPacking<T>&, int64_t, int64_t, int64_t, T, const T*,    \
                                 const T*, T, T*, int64_t, int);                                   \
    template void gemm_packed_a_in_place<T>(const GemmPacking<T>&, int64_t, int64_t, int64_t, T,   \
                                            const T*, int64_t, const T*, T, T*, int64_t, int);
FASTCONV_INSTANTIATE_PACKED(float)
FASTCONV_INSTANTIATE_PACKED(double)
#undef FASTCONV_INSTANTIATE_PACKED

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t, int);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t, int);

}  // namespace fastconv
