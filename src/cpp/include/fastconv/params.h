// Parameter structs and output-size helpers shared by every kernel, binding and test.
// All sizes and strides are in elements. Tensors are NCHW, C-contiguous.
#pragma once

#include <cstdint>

// Helpers in headers that ISA-flagged sources also include must not be merged by the linker
// with a copy built for another ISA (ODR/COMDAT): free functions get internal linkage,
// members are forced inline.
#if defined(__GNUC__)
#define FASTCONV_FORCE_INLINE inline __attribute__((always_inline))
#else
#define FASTCONV_FORCE_INLINE inline
#endif

namespace fastconv {

// Conv2d over input[N][C][H][W], weight[K][C/groups][KH][KW], output[N][K][OH][OW].
//   OH = floor((H + pad_top + pad_bottom - dil_h*(KH-1) - 1) / stride_h) + 1   (same for W)
// Only pad_top/pad_left enter the index arithmetic: bottom/right padding is implied by
// H and OH, which is how asymmetric padding ('same' with an even kernel) is expressed.
// Kernels loop over exactly OH x OW outputs; a caller may pass a smaller OH than the
// formula gives (transposed convolution with output_padding >= stride needs this).
struct Conv2dParams {
    int64_t N = 0, C = 0, H = 0, W = 0;
    int64_t K = 0, OH = 0, OW = 0;
    int64_t KH = 0, KW = 0;
    int64_t stride_h = 1, stride_w = 1;
    int64_t pad_top = 0, pad_left = 0;
    int64_t dil_h = 1, dil_w = 1;
    int64_t groups = 1;

    FASTCONV_FORCE_INLINE int64_t c_per_group() const { return C / groups; }
    FASTCONV_FORCE_INLINE int64_t k_per_group() const { return K / groups; }
    // Rows of the im2col matrix of one image and group: C/g * KH * KW.
    FASTCONV_FORCE_INLINE int64_t col_rows() const { return c_per_group() * KH * KW; }
    FASTCONV_FORCE_INLINE int64_t col_cols() const { return OH * OW; }
};

// One contiguous run of an im2col panel row: lanes [dst, dst+len) of the NR-wide panel row
// come from src[i*stride_w], i < len, relative to the row's base in the (padded) input.
struct Im2colRun {
    int64_t src, dst, len;
};

// Tile sizes of the direct-convolution micro-kernels of one ISA (KernelSet::direct_tiles):
// shifted_gemm computes mr rows x cols positions; shifted_corr kb x tb sums, or kb2 x tb2
// (the same accumulators the other way round); vec = lanes; direct_row row_kb output
// channels x row_cols columns of one output row; direct_oc oc_mj positions of one output
// row x oc_kv output channels (in the lanes), both 0 where direct_oc is not offered.
struct DirectTiles {
    int mr, cols, kb, tb, vec, row_kb, row_cols, kb2, tb2, oc_mj, oc_kv;
};

// Pooling over input[N][C][H][W] -> output[N][C][OH][OW] (PyTorch semantics).
// Window of output (oh, ow) starts at (oh*stride_h - pad_h, ow*stride_w - pad_w) and
// takes KH x KW taps spaced by dilation. Padding is implicit: -inf for max, and for
// average counted in the divisor only when count_include_pad.
struct Pool2dParams {
    int64_t N = 0, C = 0, H = 0, W = 0;
    int64_t OH = 0, OW = 0;
    int64_t KH = 1, KW = 1;
    int64_t stride_h = 1, stride_w = 1;
    int64_t pad_h = 0, pad_w = 0;
    int64_t dil_h = 1, dil_w = 1;
    bool count_include_pad = true;
    int64_t divisor_override = 0;  // 0: none
};

// One SGD step's hyperparameters (KernelSet::sgd_step, fastconv.optim.SGD). first: the
// momentum buffer is set to this step's direction instead of updated (torch's first step).
template <typename T>
struct SgdStep {
    T lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
    bool nesterov = false, maximize = false, first = false;
};

// Convolution output size along one axis (floor), as torch.nn.Conv2d documents.
// Returns a value < 1 when the kernel does not fit; callers turn that into an error.
static inline int64_t conv_output_size(int64_t in, int64_t k, int64_t stride, int64_t pad_lo,
                                       int64_t pad_hi, int64_t dil) {
    const int64_t span = in + pad_lo + pad_hi - dil * (k - 1) - 1;
    if (span < 0) return 0;
    return span / stride + 1;
}

// Pooling output size along one axis, PyTorch's pooling_output_shape(): with ceil_mode
// the last window may run past the input but must start inside input or left padding.
static inline int64_t pool_output_size(int64_t in, int64_t k, int64_t pad, int64_t stride,
                                       int64_t dil, bool ceil_mode) {
    const int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    // floor division rounding toward -inf (div_rtn), num may be negative
    int64_t q = num / stride;
    if ((num % stride != 0) && ((num < 0) != (stride < 0))) --q;
    int64_t out = q + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
}

// Adaptive pooling window [start, end) of output index o, as PyTorch's
// start_index/end_index: start = floor(o*in/out), end = ceil((o+1)*in/out).
static inline int64_t adaptive_start(int64_t o, int64_t in, int64_t out) {
    return (o * in) / out;
}
static inline int64_t adaptive_end(int64_t o, int64_t in, int64_t out) {
    return ((o + 1) * in + out - 1) / out;
}

}  // namespace fastconv
