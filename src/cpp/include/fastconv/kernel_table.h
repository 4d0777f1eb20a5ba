// The kernel table: one set of function pointers per ISA variant, chosen once at import
// (dispatch/kernel_table.cpp) from CPUID + XGETBV, overridable by FASTCONV_ISA.
//
// Only the inner, ISA-specific pieces live here: the GEMM register tile and the per-plane
// direct-convolution and pooling kernels. Drivers (blocking, threading, im2col) are portable code
// that calls through this table. The one list of (isa, slot, function) is kernels.def.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/params.h"

namespace fastconv {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2 };
const char* isa_name(Isa isa);

// Largest M that KernelSet::gemm_small_m handles (GEMM driver switches to it below that).
constexpr int64_t kGemmSmallM = 4;
// Most columns that KernelSet::gemm_ukernel_narrow takes.
constexpr int kGemmNarrowMaxCols = 4;

template <typename T>
struct KernelSet {
    // GEMM micro-kernel (BLIS "register tile"): over packed panels a[kc][MR] and b[kc][NR],
    //   c[i*ldc + j] = alpha * sum_p a[p*MR + i] * b[p*NR + j] + beta * c[i*ldc + j]
    // for the full MR x NR tile. beta == 0 writes without reading c (NaN in c ignored).
    // kc >= 1. Panels are 64-byte aligned.
    using GemmUkernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha,
                                 T beta);
    GemmUkernel gemm_ukernel = nullptr;
    // The same over the first NR/2 columns only (b rows still NR apart), for N remainders.
    GemmUkernel gemm_ukernel_half = nullptr;
    // Edge tiles: the same over the first rows x cols of the tile only (1 <= rows <= MR,
    // 1 <= cols <= NR; a and b are full MR- and NR-wide panels), writing just those
    // elements of c. Optional (null: the driver runs the full tile into a scratch tile and
    // copies the edge out).
    using GemmUkernelEdge = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                                     T alpha, T beta, int rows, int cols);
    GemmUkernelEdge gemm_ukernel_edge = nullptr;
    // The first cols <= kGemmNarrowMaxCols columns of npanels consecutive tiles down one
    // NR panel: packed A panels a + q*kc*MR (q < npanels; the last has `rows` rows, the
    // others MR), C rows from c + q*MR*ldc. Each element is the same FMA chain over p as in
    // gemm_ukernel_edge, so bitwise the same result: several tiles at once give independent
    // chains where one tile of few columns waits on the FMA latency. Optional.
    using GemmUkernelNarrow = void (*)(int64_t kc, const T* a, int64_t npanels, const T* b, T* c,
                                       int64_t ldc, T alpha, T beta, int rows, int cols);
    GemmUkernelNarrow gemm_ukernel_narrow = nullptr;
    // Any tile, full or edge, with op(A) read in place rather than packed: element (i, p)
    // at a[i*lda + p] if a_rows (rows of a row-major A), else a[p*lda + i]; b is a packed
    // panel as above. For an A block that few NR panels reuse, where packA would cost more
    // than it saves. Optional (null: the driver packs A).
    using GemmUkernelAInPlace = void (*)(int64_t kc, const T* a, int64_t lda, bool a_rows,
                                         const T* b, T* c, int64_t ldc, T alpha, T beta, int rows,
                                         int cols);
    GemmUkernelAInPlace gemm_ukernel_a_in_place = nullptr;
    int gemm_mr = 0, gemm_nr = 0;

    // Small-M GEMM without packing (gemm_small_m_impl.h), for 1 <= M <= kGemmSmallM:
    //   C[i*ldc + j] = alpha * sum_p a[i*K + p] * B[p*rs + j*cs] + beta * C[i*ldc + j]
    // for i < M and j in [j0, j1); op(A) rows contiguous (a[i*K + p]); rs == 1 or cs == 1.
    // beta == 0 writes without reading C.
    void (*gemm_small_m)(int64_t M, int64_t j0, int64_t j1, int64_t K, T alpha, const T* a,
                         const T* B, int64_t rs, int64_t cs, T beta, T* C,
                         int64_t ldc) = nullptr;

    // im2col into one packed-B panel (gemm_packed.h layout): for rows r < nrows,
    //   out[r*nr + run.dst + i] = xp[row_off[r] + run.src + i*stride_w]  for every run, i < run.len
    // Runs cover lanes [0, ncols); lanes [ncols, nr) are zeroed. Overwrites out.
    void (*im2col_pack_panel)(const T* xp, const int64_t* row_off, int64_t nrows,
                              const Im2colRun* runs, int64_t nruns, int64_t stride_w, int64_t ncols,
                              int64_t nr, T* out) = nullptr;

    // col2im of nplanes input channels, stride_w == 1, KH * KW <= kCol2imMaxTaps: for each
    // plane c, the H x W plane dx[(c*H + ih)*W + iw] = sum over taps (kh, kw) and output
    // positions (oh, ow) that read (ih, iw) of col[(((c*KH + kh)*KW + kw)*OH + oh)*OW + ow],
    // added in (kh, kw) order (the order of the scatter-add in im2col.cpp's col2im, so the
    // results are the same). Overwrites dx.
    void (*col2im_planes)(const Conv2dParams& p, const T* col, int64_t nplanes, T* dx) = nullptr;

    // Direct convolution over row-padded planes (kernels/conv2d/conv2d_direct.cpp). A "row"
    // is a pointer into a zero-padded plane; every kernel tap is a fixed shift of it.
    //   shifted_gemm: c[m*ldc + i] (+)= sum_{q<P} a[q*MR + m] * rows[q][i]
    //                 for m < mr <= MR, i in [i0, i0+n); n a multiple of direct_tiles().cols;
    //                 a is a P x MR panel (zero lanes beyond mr); accumulate adds to c.
    //   shifted_corr: out[k*ldo + t] += sum_{i<n} d[k*ldd + i] * rows[t][i]
    //                 for k < kb, t < tb within (KB, TB) or (KB2, TB2) of direct_tiles();
    //                 n a multiple of the vector width.
    //   shifted_taps: out[i] = sum_{t<ntaps} w[t] * rows[t][i] for i < n, n a multiple of the
    //                 vector width (one output plane of a depthwise convolution).
    // Reads run to the end of the last vector: callers pad planes with zeros.
    //   direct_row: one output row of a convolution, vectorised over its columns, each
    //     tap t a contiguous stream at base + offs[t] (column-phase planes at stride > 1):
    //     y[k*ystride + i] = bias[k] + sum_{t<ntaps} wp[t*kb + k] * base[offs[t] + i]
    //     for k < kb <= direct_tiles().row_kb and i < n <= direct_tiles().row_cols (bias
    //     null: 0). Reads base[offs[t] + [0, row_cols)); stores only i < n.
    //   direct_oc: the same sums with the output channels in the lanes and nj consecutive
    //     positions of the row broadcast (oneDNN's direct convolution over nChw8c / nChw16c
    //     blocks, here reading the input planes as they are):
    //     out[k*ldo + j] = bias[k] + sum_{t<ntaps} wp[t*oc_kv + k] * base[offs[t] + j]
    //     for j < nj <= direct_tiles().oc_mj and k < direct_tiles().oc_kv (bias null: 0);
    //     not to be called where oc_kv is 0 (not offered).
    void (*shifted_gemm)(int64_t P, const T* a, const T* const* rows, int64_t i0, int64_t n,
                         int mr, T* c, int64_t ldc, bool accumulate) = nullptr;
    void (*shifted_corr)(int64_t n, const T* d, int64_t ldd, int kb, const T* const* rows, int tb,
                         T* out, int64_t ldo) = nullptr;
    void (*shifted_taps)(int64_t n, const T* w, int64_t ntaps, const T* const* rows,
                         T* out) = nullptr;
    // The weight gradient from a max-pooled gradient (conv2d_backward_weight_pooled): nk
    // output channels' sums over the rows of col^T (ld apart) their pooled argmaxes select,
    //   acc[k*ldacc + j] += sum_{i<nq} g[k*ldq + i] * base[idx[k*ldq + i]*ld + j]
    //   for k < nk and j < n, n a multiple of the vector width, each sum in order of i.
    //   Returns the position k*ldq + i of an index outside [0, nrows), found before its row
    //   is read (acc then partly updated); else -1.
    int64_t (*pooled_corr)(int64_t nk, int64_t nq, const T* g, const int64_t* idx, int64_t ldq,
                           int64_t nrows, const T* base, int64_t ld, int64_t n, T* acc,
                           int64_t ldacc) = nullptr;
    // The same from a padded NHWC copy of the input itself, where col^T's row for output
    // position q is one contiguous segment of len elements per kernel row r < nr <=
    // kPooledMaxRows, at roff[r] + poff[q]:
    //   acc[r*ldacc + j] += sum_{i<nq} g[i] * base[roff[r] + poff[idx[i]] + j]   (j < len),
    //   acc[nr*ldacc] += sum_{i<nq} g[i].
    // Reads whole vectors: up to len rounded up to the vector width W from each segment
    // start (callers leave W elements of slack), and acc lanes up to that rounding
    // (ldacc >= it) are unspecified past len. Same return as pooled_corr.
    int64_t (*pooled_corr_rows)(int64_t nq, const T* g, const int64_t* idx, int64_t npos,
                                const int64_t* poff, const T* base, const int64_t* roff, int nr,
                                int64_t len, int64_t ldacc, T* acc) = nullptr;
    void (*direct_row)(int64_t ntaps, const T* base, const int64_t* offs, const T* wp, int kb,
                       const T* bias, int64_t n, T* y, int64_t ystride) = nullptr;
    void (*direct_oc)(int64_t ntaps, const T* base, const int64_t* offs, const T* wp, const T* bias,
                      int nj, T* out, int64_t ldo) = nullptr;
    DirectTiles (*direct_tiles)() = nullptr;
    // Stride-2 column phases of feature-map rows (the direct paths' phase planes). With
    // P_r[u] = src[r*src_stride + u - pad] for 0 <= u - pad < W and 0 elsewhere:
    //   phase_split_s2: even[r*dst_stride + q] = P_r[2q], odd[r*dst_stride + q] = P_r[2q+1]
    //     for r < nrows, q < Wq (a null phase is not written);
    //   phase_merge_s2, its inverse: dst[r*dst_stride + iw] = E[r*src_stride + u/2] with
    //     u = iw + pad and E = even (u even) or odd (u odd), for r < nrows, iw < W; 0 where
    //     u/2 >= Wq or E is null.
    void (*phase_split_s2)(const T* src, int64_t src_stride, int64_t W, int64_t pad, int64_t nrows,
                           int64_t Wq, T* even, T* odd, int64_t dst_stride) = nullptr;
    void (*phase_merge_s2)(const T* even, const T* odd, int64_t src_stride, int64_t Wq,
                           int64_t nrows, int64_t pad, int64_t W, T* dst,
                           int64_t dst_stride) = nullptr;
    // Depthwise planes at stride 1 read in place, without padded copies (AVX2 and AVX-512; null
    // elsewhere). With S(r, c) = src[r*src_w + c] inside the src_h x src_w plane, else 0:
    //   depthwise_plane: out[o*out_w + i] (+)= sum_{kh<KH, kw<KW} w[kh*KW + kw] *
    //     S(o + row_off + kh*row_step, i + col_off + kw*col_step) + bias, taps added in
    //     (kh, kw) order to 0 (or to out when accumulate), then bias, for o < out_h,
    //     i < out_w; KW <= 16.
    //   depthwise_corr_plane: dw[kh*KW + kw] += sum_{o<OH, i<OW} dy[o*OW + i] *
    //     X(o + row_off + kh*row_step, i + col_off + kw*col_step), X the H x W plane x;
    //     (KH, KW) = (3, 3) or (5, 5).
    void (*depthwise_plane)(const T* src, int64_t src_h, int64_t src_w, const T* w, int64_t KH,
                            int64_t KW, int64_t row_off, int64_t row_step, int64_t col_off,
                            int64_t col_step, int64_t out_h, int64_t out_w, T* out, bool accumulate,
                            T bias) = nullptr;
    void (*depthwise_corr_plane)(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH,
                                 int64_t OW, int64_t KH, int64_t KW, int64_t row_off,
                                 int64_t row_step, int64_t col_off, int64_t col_step,
                                 T* dw) = nullptr;
    // The 3x3 depthwise plane at stride 2 (dilation 1), read in place the same way:
    //   depthwise3x3_s2_plane: out[o*out_w + i] = sum_{kh<3, kw<3} w[kh*3 + kw] *
    //     S(2*o + row_off + kh, 2*i + col_off + kw) + bias, for o < out_h, i < out_w;
    //   depthwise3x3_s2_corr_plane: dw[kh*3 + kw] += sum_{o<OH, i<OW} dy[o*OW + i] *
    //     X(2*o + row_off + kh, 2*i + col_off + kw), X the H x W plane x.
    //   depthwise3x3_s2_transposed_plane: dx[ih*W + iw] (+)= sum of w[kh*3 + kw] *
    //     dy[oh*OW + ow] over 2*oh + kh = ih + pad_top, 2*ow + kw = iw + pad_left
    //     (0 <= oh < OH, 0 <= ow < OW), for ih < H, iw < W (+= when accumulate).
    void (*depthwise3x3_s2_plane)(const T* src, int64_t src_h, int64_t src_w, const T* w,
                                  int64_t row_off, int64_t col_off, int64_t out_h, int64_t out_w,
                                  T* out, T bias) = nullptr;
    void (*depthwise3x3_s2_corr_plane)(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH,
                                       int64_t OW, int64_t row_off, int64_t col_off,
                                       T* dw) = nullptr;
    void (*depthwise3x3_s2_transposed_plane)(const T* dy, int64_t OH, int64_t OW, const T* w,
                                             int64_t pad_top, int64_t pad_left, int64_t H,
                                             int64_t W, T* dx, bool accumulate) = nullptr;

    // ReLU over [0, n) (kernels/eltwise/eltwise_driver.cpp splits arrays into blocks):
    //   relu_forward: y[i] = x[i] < 0 ? 0 : x[i] (NaN passes, as torch.relu);
    //   relu_backward: dx[i] = y[i] <= 0 ? 0 : dy[i] (torch's threshold_backward).
    void (*relu_forward)(int64_t n, const T* x, T* y) = nullptr;
    void (*relu_backward)(int64_t n, const T* dy, const T* y, T* dx) = nullptr;
    // One SGD step over [0, n), in place (torch.optim.SGD's single-tensor rule):
    //   d = (maximize ? -g : g) + weight_decay * p             (no term when it is 0)
    //   buf = first ? d : momentum * buf + (1 - dampening) * d (buf null when momentum 0)
    //   d = nesterov ? d + momentum * buf : buf                (when momentum != 0)
    //   p = p - lr * d
    void (*sgd_step)(int64_t n, T* p, const T* g, T* buf, const SgdStep<T>& s) = nullptr;

    // Winograd F(2x2, 3x3) transforms (kernels/conv2d/winograd.cpp), over rows * len /
    // lanes <= kWinogradMaxLanes tiles side by side (tile (j, i): lane j * len + i):
    //   winograd_input_run: the 4x4 input patches at rows ih0 + 2j.., columns iw0 + 2i.. of
    //     the H x W plane xc (zeros outside it) for tile rows j < rows and tiles i < len,
    //     transformed: v = B^T d B; writes v[xi] of lane l at out[xi * xi_stride + l].
    //   winograd_output_run: y = A^T m A + bias of each tile, m[xi] of lane l at
    //     m[xi * xi_stride + l], written as the 2x2 block at rows oh0 + 2j.., columns
    //     ow0 + 2i.. of the OH x OW plane yk (the part inside it).
    //   winograd_output_pool_run: the same outputs of tile (th0 + j, tw0 + i), 2x2 max
    //     pooled: for th < PH and tw < PW, yk[th * PW + tw] = the maximum of the tile's
    //     rows 2th, 2th + 1 and columns 2tw, 2tw + 1 of the OW-wide output plane under
    //     max_pool2d's rule (the first maximum in scan order, NaN wins), ik[th * PW + tw]
    //     its flat position there (ik null: none). Bitwise max_pool2d_forward of
    //     winograd_output_run's plane, for 2x2 windows at stride 2 without padding; with
    //     relu, each maximum m is then stored as relu_forward stores it (m < 0 ? 0 : m).
    //   winograd_grad_output_run: dz = A dy A^T of the 2x2 blocks of the OH x OW gradient
    //     plane dyk at rows oh0 + 2j.., columns ow0 + 2i.. (zeros outside it), tiles as
    //     above; writes dz[xi] of lane l at out[xi * xi_stride + l].
    //   winograd_weight_panel: the packed-A panel of U = G g G^T for one MR block of output
    //     channels: dst[xi * xi_stride + c * mr + i] = U[xi] of the 3x3 kernel g at
    //     w + i * k_stride + c * c_stride (row-major; rotated 180 degrees when flipped) for
    //     c < cg, i < rows, zero for rows <= i < mr.
    void (*winograd_input_run)(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0,
                               int len, int rows, T* out, int64_t xi_stride) = nullptr;
    void (*winograd_weight_panel)(const T* w, int64_t k_stride, int64_t c_stride, bool flipped,
                                  int rows, int64_t cg, int mr, T* dst,
                                  int64_t xi_stride) = nullptr;
    void (*winograd_output_run)(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                                int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) = nullptr;
    void (*winograd_output_pool_run)(const T* m, int64_t xi_stride, int len, int rows, T bias,
                                     T* yk, int64_t* ik, bool relu, int64_t PH, int64_t PW,
                                     int64_t OW, int64_t th0, int64_t tw0) = nullptr;
    void (*winograd_grad_output_run)(const T* dyk, int64_t OH, int64_t OW, int64_t oh0,
                                     int64_t ow0, int len, int rows, T* out,
                                     int64_t xi_stride) = nullptr;
    // Winograd F(4x4, 3x3), the same contracts with 4x4 output tiles, 6x6 input patches and
    // 36 positions xi: the input patches at rows ih0 + 4j.., columns iw0 + 4i..; the outputs
    // at rows oh0 + 4j.., columns ow0 + 4i..; pooling: tile (th, tw) holds the 2x2 windows
    // (2th + a, 2tw + b), a, b in {0, 1}, each pooled as above.
    void (*winograd4_input_run)(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0,
                                int len, int rows, T* out, int64_t xi_stride) = nullptr;
    void (*winograd4_weight_panel)(const T* w, int64_t k_stride, int64_t c_stride, bool flipped,
                                   int rows, int64_t cg, int mr, T* dst,
                                   int64_t xi_stride) = nullptr;
    void (*winograd4_output_run)(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,
                                 int64_t OH, int64_t OW, int64_t oh0, int64_t ow0) = nullptr;
    void (*winograd4_output_pool_run)(const T* m, int64_t xi_stride, int len, int rows, T bias,
                                      T* yk, int64_t* ik, bool relu, int64_t PH, int64_t PW,
                                      int64_t OW, int64_t th0, int64_t tw0) = nullptr;

    // Pooling on one (image, channel) plane: x/dx [H][W], y/dy/indices [OH][OW].
    // Indices are flat positions h*W + w within the plane (PyTorch's convention).
    // Forward kernels overwrite y (and indices); backward kernels overwrite dx (zero it,
    // then scatter-add dy), so overlapping windows add up. max_pool2d_forward_planes,
    // avg_pool2d_forward_planes and avg_pool2d_backward_planes run nplanes consecutive planes
    // (x/dx, y/dy and indices advance by a plane each); the max pool takes indices ==
    // nullptr for values only (inference).
    void (*max_pool2d_forward_planes)(const Pool2dParams& p, int64_t nplanes, const T* x, T* y,
                                      int64_t* indices) = nullptr;
    // max_pool2d_backward_plane checks every index before its write: it returns the first
    // output position whose index lies outside [0, H*W) (that index is never used), or -1.
    int64_t (*max_pool2d_backward_plane)(const Pool2dParams& p, T* dx, const T* dy,
                                         const int64_t* indices) = nullptr;
    void (*avg_pool2d_forward_planes)(const Pool2dParams& p, int64_t nplanes, const T* x,
                                      T* y) = nullptr;
    void (*avg_pool2d_backward_planes)(const Pool2dParams& p, int64_t nplanes, T* dx,
                                       const T* dy) = nullptr;
    // Adaptive pooling: only N, C, H, W, OH, OW of p are used.
    void (*adaptive_avg_pool2d_forward_plane)(const Pool2dParams& p, const T* x, T* y) = nullptr;
    void (*adaptive_avg_pool2d_backward_plane)(const Pool2dParams& p, T* dx, const T* dy) = nullptr;
    void (*adaptive_max_pool2d_forward_plane)(const Pool2dParams& p, const T* x, T* y,
                                              int64_t* indices) = nullptr;
};

struct KernelTable {
    Isa isa = Isa::ref;
    KernelSet<float> f32;
    KernelSet<double> f64;
    // FMA-throughput probe: `iterations` rounds of independent float32 multiply-add chains at
    // this ISA's vector width, no memory traffic. Writes the FLOPs done (2 per FMA lane) to
    // *flops; returns a checksum so the loop cannot be optimised away. Drives the
    // "% of machine peak" column of `fastconv bench` (kernels/probe/probe_driver.cpp).
    double (*fma_probe)(int64_t iterations, double* flops) = nullptr;

    template <typename T>
    KernelSet<T>& get() {
        if constexpr (sizeof(T) == sizeof(float))
            return f32;
        else
            return f64;
    }
    template <typename T>
    const KernelSet<T>& get() const {
        if constexpr (sizeof(T) == sizeof(float))
            return f32;
        else
            return f64;
    }
};

// The active table. Initialised on first use from FASTCONV_ISA or the best supported ISA.
const KernelTable& kernels();
template <typename T>
inline const KernelSet<T>& kernel_set() {
    return kernels().get<T>();
}

// ISA variants compiled into this build, and those this CPU + OS can run.
std::vector<Isa> compiled_isas();
std::vector<Isa> supported_isas();
Isa best_supported_isa();
// Switch the active table (tests walk every variant in one process). Throws
// std::invalid_argument for an unknown name or an ISA the CPU lacks.
void set_isa(const std::string& name);
Isa parse_isa(const std::string& name);  // throws std::invalid_argument

}  // namespace fastconv
