// Portable drivers: blocking, threading and algorithm choice over the kernel table.
// Every function is templated on T = float | double and overwrites its outputs.
// Preconditions (shapes agree, sizes >= 1, pointers to C-contiguous NCHW buffers) are
// validated by the binding layer and assert()ed here.
#pragma once

#include <cstdint>
#include <string>

#include "fastconv/params.h"

namespace fastconv {

// ---------------------------------------------------------------------------------------
// GEMM (BLIS/Goto: packA/packB into MR/NR panels, MR x NR micro-kernel, MC/KC/NC blocks;
// Goto & van de Geijn 2008, Van Zee & van de Geijn 2015), row-major:
//   C[M][N] = alpha * op(A) * op(B) + beta * C,  op(A) is M x K, op(B) is K x N.
// A is stored M x K (lda >= K) or, with trans_a, K x M (lda >= M); likewise B.
// beta == 0 does not read C (NaN there is ignored, as BLAS). K == 0 gives beta * C.
// nthreads: threads for this call (1 inside an already parallel driver).
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, int nthreads);

// ---------------------------------------------------------------------------------------
// Conv2d (NCHW). x[N][C][H][W], w[K][C/g][KH][KW], y[N][K][OH][OW], bias[K] or null.
//   im2col      im2col (packed straight into GEMM panels) + GEMM; col2im for backward_data
//   direct_1x1  1x1 / stride 1 / no padding: the input is the GEMM operand itself
//   depthwise   groups == C > 1: per-plane direct kernels
//   direct      no im2col matrix: shifted streams over row-padded stride-phase planes,
//               or by output rows (kernels/conv2d/conv2d_direct.cpp); any shape
//   winograd    Winograd F(2x2, 3x3) (kernels/conv2d/winograd.cpp): 3x3 / stride 1 /
//               dilation 1, forward, backward_data (as the forward with flipped
//               weights) and backward_weight
//   winograd4   Winograd F(4x4, 3x3) for the forward and backward_data, the same layers;
//               its backward_weight is winograd's
enum class ConvAlgo : int {
    automatic = 0,
    ref = 1,
    im2col = 2,
    direct_1x1 = 3,
    depthwise = 4,
    direct = 5,
    winograd = 6,
    winograd4 = 7
};
enum class ConvDirection : int { forward = 0, backward_data = 1, backward_weight = 2 };
ConvAlgo parse_conv_algo(const std::string& name);  // throws std::invalid_argument
const char* conv_algo_name(ConvAlgo a);
ConvDirection parse_conv_direction(const std::string& name);  // throws std::invalid_argument
// The algorithm `automatic` resolves to for these shapes and direction (pure function).
ConvAlgo choose_conv_algo(const Conv2dParams& p, ConvDirection dir);
// Whether im2col's backward_data runs as the forward convolution of dy with the flipped
// weights (stride-1 'same' layers, >= 32 channels per group, N > 1) rather than GEMM +
// col2im (pure function; conv2d_driver.cpp gives the measurements behind the rule).
bool conv2d_backward_data_as_forward(const Conv2dParams& p);
// Whether the direct backward_data runs as the forward by output rows of dy with the
// flipped weights (stride 1, ungrouped, padding <= dilation*(kernel - 1), the flipped
// forward's rows wide enough), else by shifted streams; and whether auto takes that path
// (<= 16 output and >= 3 input channels; conv2d_driver.cpp gives the measurements).
// Pure functions.
bool conv2d_backward_data_by_rows(const Conv2dParams& p);
bool conv2d_backward_data_rows_preferred(const Conv2dParams& p);
// `algo` itself, or choose_conv_algo(p, dir) for automatic; std::invalid_argument if a
// forced algorithm does not apply (direct_1x1 needs 1x1/stride 1/no padding, depthwise
// groups == C, winograd 3x3/stride 1/dilation 1).
ConvAlgo resolve_conv_algo(const Conv2dParams& p, ConvAlgo algo, ConvDirection dir);

template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                    ConvAlgo algo);
// pooled = max_pool2d(conv2d(x, w) + bias) with q the pool over the conv output (q.N = N,
// q.C = K, q.H = OH, q.W = OW), its argmax into indices (null: none), then with relu
// pooled = relu(pooled): bitwise conv2d_forward(algo), max_pool2d_forward and
// relu_forward. Winograd pools 2x2/stride-2 windows in its output transform and the direct
// forward by rows pools each image from a per-thread buffer, so the conv output never goes
// to memory; other algorithms and pools fill a temporary conv output first.
template <typename T>
void conv2d_max_pool2d_forward(const Conv2dParams& p, const Pool2dParams& q, const T* x, const T* w,
                               const T* bias, T* pooled, int64_t* indices, bool relu,
                               ConvAlgo algo);
// dx[N][C][H][W] = d(loss)/dx given dy[N][K][OH][OW] (cuDNN: dgrad).
template <typename T>
void conv2d_backward_data(const Conv2dParams& p, T* dx, const T* dy, const T* w, ConvAlgo algo);
// dw[K][C/g][KH][KW] = sum over n of dy (x) x  (cuDNN: wgrad). Deterministic for a given
// thread count: images are split into fixed chunks, partial sums added in thread order.
// db, if not null: conv2d_backward_bias's db, bitwise (the depthwise kernels add each dy
// plane to it while the plane is in cache; the others run conv2d_backward_bias first).
template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x, ConvAlgo algo,
                            T* db = nullptr);
// db[K] = sum over N, OH, OW of dy.
template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, T* db, const T* dy);
// dw and db (db may be null) where dy is zero but at a max pool's argmaxes: with g and idx
// [N][K][PH][PW], dy[n][k][idx[n][k][q]] += g[n][k][q] (idx flat in the OH x OW plane).
// dw[k] = sum_{n,q} g * col^T[idx] and db[k] = sum_{n,q} g.
// Returns the flat position (in g) of the first index outside [0, OH*OW), dw and db then
// unspecified; else -1. Deterministic for a given thread count (per-thread sums over fixed
// image chunks, added in thread order).
template <typename T>
int64_t conv2d_backward_weight_pooled(const Conv2dParams& p, int64_t PH, int64_t PW, T* dw, T* db,
                                      const T* g, const int64_t* idx, const T* x);

// ConvTranspose2d forward, expressed in the params of the convolution it transposes:
// x is that conv's output-shaped [N][K][OH][OW], y its input-shaped [N][C][H][W]:
//   y = conv2d_backward_data(x) + bias[C]
template <typename T>
void conv_transpose2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                              ConvAlgo algo);

// ---------------------------------------------------------------------------------------
// Pooling drivers: parallel over the N*C planes, one table kernel per plane.
// max_pool2d_forward writes no argmax when indices is null.
template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* indices);
// Returns the first flat output position whose index lies outside [0, H*W) (no write goes
// through it; dx is then partly written), or -1 when every index is valid.
template <typename T>
int64_t max_pool2d_backward(const Pool2dParams& p, T* dx, const T* dy, const int64_t* indices);
template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dParams& p, T* dx, const T* dy);
template <typename T>
void adaptive_avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward(const Pool2dParams& p, T* dx, const T* dy);
template <typename T>
void adaptive_max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* indices);
// adaptive max backward is max_pool2d_backward: same flat-index scatter.

// ---------------------------------------------------------------------------------------
// Elementwise activations over n contiguous elements (kernels/eltwise/eltwise_driver.cpp).
//   relu_forward:  y = x < 0 ? 0 : x            (NaN passes through, as torch.relu)
//   relu_backward: dx = y <= 0 ? 0 : dy         (torch's threshold_backward on the output;
//                                               NaN outputs pass the gradient)
// Outputs may alias an input of the same call.
template <typename T>
void relu_forward(int64_t n, const T* x, T* y);
template <typename T>
void relu_backward(int64_t n, const T* dy, const T* y, T* dx);

// One SGD step of n parameters in place: p, and buf (the momentum buffer; null without
// momentum) updated from the gradient g by KernelSet::sgd_step's rule (kernel_table.h).
template <typename T>
void sgd_step(int64_t n, T* p, const T* g, T* buf, const SgdStep<T>& s);

}  // namespace fastconv
