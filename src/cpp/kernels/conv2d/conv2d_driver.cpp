// Conv2d drivers: algorithm choice, threading and workspace over im2col + GEMM and the 1x1
// path that uses the input as the column matrix directly; the direct and depthwise
// algorithms live in conv2d_direct.cpp.
//
// Threading: with at least as many (image, group) tasks as threads, each thread runs whole
// tasks with a single-threaded GEMM and its own im2col buffer (one image-and-group column
// matrix per thread, reused between calls); otherwise tasks run in order and the GEMM
// itself is threaded. backward_weight splits images into fixed chunks, one per thread,
// accumulates each chunk into a private buffer and adds the buffers in thread order: the
// result is bitwise reproducible for a given thread count (not across thread counts; the
// direct and Winograd weight gradients are the same for any thread count).
#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/parallel.h"
#include "fastconv/kernel_table.h"
#include "fastconv/ops.h"
#include "fastconv/plane_kernels.h"
#include "kernels/conv2d/bias_sum.h"
#include "kernels/conv2d/conv2d_direct.h"
#include "kernels/conv2d/conv2d_ref.h"
#include "kernels/conv2d/im2col.h"
#include "kernels/conv2d/winograd.h"
#include "kernels/gemm/gemm_packed.h"
#include "kernels/gemm/pack_transpose.h"

namespace fastconv {

namespace {
enum ScratchTag {
    kColTag = 10,
    kPartialTag = 11,
    kPackedWTag = 12,
    kPadTag = 13,
    kRowsTag = 14,
    kOutTag = 15,
    kPackedDyTag = 16,
    kFlippedWTag = 17,
    kPooledTag = 18,
    kPoolConvTag = 19  // conv2d_max_pool2d_forward's chunk of conv output
};

bool is_depthwise(const Conv2dParams& p) {
    return p.groups == p.C && p.groups > 1;
}
bool is_pointwise(const Conv2dParams& p) {
    return p.KH == 1 && p.KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
           p.pad_left == 0 && p.OH == p.H && p.OW == p.W;
}

}  // namespace

ConvAlgo resolve_conv_algo(const Conv2dParams& p, ConvAlgo algo, ConvDirection dir) {
    if (algo == ConvAlgo::automatic) return choose_conv_algo(p, dir);
    if (algo == ConvAlgo::direct_1x1 && !is_pointwise(p))
        throw std::invalid_argument(
            "algorithm 'direct_1x1' needs a 1x1 kernel, stride 1 and no padding");
    if (algo == ConvAlgo::depthwise && !is_depthwise(p))
        throw std::invalid_argument("algorithm 'depthwise' needs groups == in_channels > 1");
    if ((algo == ConvAlgo::winograd || algo == ConvAlgo::winograd4) && !winograd_applies(p))
        throw std::invalid_argument(
            std::string("algorithm '") + conv_algo_name(algo) +
            "' needs a 3x3 kernel, stride 1 and dilation 1 (or a dilation that divides the "
            "input and output sizes and the top and left padding)");
    return algo;
}

namespace {

// y[k] += bias[k] for the output channels [k0, k1) of one image (y_n points at channel 0).
template <typename T>
void add_bias(const Conv2dParams& p, const T* bias, int64_t k0, int64_t k1, T* y_n) {
    const int64_t ohw = p.OH * p.OW;
    for (int64_t k = k0; k < k1; ++k) {
        T* yk = y_n + k * ohw;
        const T b = bias[k];
        for (int64_t i = 0; i < ohw; ++i) yk[i] += b;
    }
}

// ---- im2col + GEMM (and the 1x1 special case) -------------------------------------------

// Images side by side in one GEMM's N (the panel path): a small feature map leaves its last
// NR panel partly empty (7x7 = 49 columns in 64: 77 % of the micro-kernel's work is
// useful), and nb images fill it. Scored by the useful share of the panels times the share
// of thread slots the ceil(N/nb) tasks keep busy; used only when the best score beats one
// image by 5 % (the output tile is copied to y), then the smallest nb within 2 % of the
// best, at most 8 (the workspace grows with nb: nb padded images and the output tile).
int64_t images_per_gemm(const Conv2dParams& p, int64_t nr) {
    const int64_t OHW = p.OH * p.OW, nt = num_threads();
    auto score = [&](int64_t nb) {
        const int64_t cols = nb * OHW, tasks = (p.N + nb - 1) / nb;
        // for_each_task: whole tasks per thread only with at least nt of them.
        const int64_t team = nt > 1 && tasks >= nt ? nt : 1;
        const int64_t slots = team * ((tasks + team - 1) / team) * nb;
        return double(cols) / double((cols + nr - 1) / nr * nr) * double(p.N) / double(slots);
    };
    const int64_t cap = std::min<int64_t>(8, p.N);
    double best = 0;
    for (int64_t nb = 1; nb <= cap; ++nb) best = std::max(best, score(nb));
    if (best < score(1) + 0.05) return 1;  // not worth the output copy
    for (int64_t nb = 2; nb <= cap; ++nb)
        if (score(nb) >= best - 0.02) return nb;
    return 1;
}

// A group's packed weights up to this size stay in L2 (1 MiB on Zen 4) while the panels
// stream past. Larger ones are applied KC block by KC block when that block of every
// panel fits L2 too (forward_gemm); on large maps the slice would not, and streaming the
// weights from L3 per panel measured faster (VGG 56x56x256: 36 vs 40 ms).
constexpr int64_t kWeightsInL2 = 512 * 1024, kSliceInL2 = 1024 * 1024;

// The padded-input copy pays off unless padding or stride make it much larger than the
// column matrix itself; then im2col writes plain rows (bounds-checked) and packB follows.
bool pack_from_padded(const Conv2dParams& p, const Im2colPlan& plan) {
    const __int128 Cg = p.c_per_group();
    return !plan.need_pad ||
           Cg * plan.Hp * plan.Wp <= 2 * (Cg * p.H * p.W + __int128{p.col_rows()} * p.OH * p.OW);
}

// Weights are packed once per call (packA, every group) and shared by all tasks; each
// task's columns are written by im2col straight into packed-B layout (no separate packB).
// With a whole task per thread, each NR panel is packed and consumed at once while it is
// in L1; a lone task (batch 1) packs every panel, then splits them over the GEMM's threads.
// A task is nb images of one group (images_per_gemm); with nb > 1 the GEMM writes an
// nb-image output tile that is then copied to y.
template <typename T>
void forward_gemm(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                  bool pointwise) {
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group();
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, CKK = p.col_rows();
    const GemmPacking<T> pk = gemm_packing<T>();
    const Im2colPlan plan1 = pointwise ? Im2colPlan{} : make_im2col_plan(p, pk.nr, 1, p.C * HW);
    const bool via_rows = !pointwise && !pack_from_padded(p, plan1);
    const int64_t nb = pointwise || via_rows || p.N == 0 ? 1 : images_per_gemm(p, pk.nr);
    // Plans for full tasks and for the last, shorter one.
    const Im2colPlan plan = nb > 1 ? make_im2col_plan(p, pk.nr, nb, p.C * HW) : plan1;
    const int64_t tail = p.N % nb;
    const Im2colPlan plan_tail = tail > 1 ? make_im2col_plan(p, pk.nr, tail, p.C * HW) : plan1;
    const int64_t nchunks = (p.N + nb - 1) / nb;
    // Weights used by few NR panels over the whole call (a deep layer on one small image)
    // are read in place: packing them would cost more than it saves (gemm_packed.h).
    // ResNet-18 7x7x512 b1 (2 panels): 4.3 -> 2.9 ms; 14x14x256 b1 (7): 2.45 -> 2.25 ms.
    const bool w_in_place = a_in_place_pays(pk, nchunks * pk.padded_n(nb * OHW) / pk.nr);
    const int64_t wstride = w_in_place ? Kg * CKK : pk.padded_m(Kg) * CKK;
    T* pw = w_in_place ? nullptr : thread_scratch<T, kPackedWTag>(static_cast<size_t>(G * wstride));
    if (!w_in_place)
        for (int64_t g = 0; g < G; ++g)
            gemm_pack_a(pk, false, Kg, CKK, w + g * Kg * CKK, CKK, pw + g * wstride);
    // C[Kg x n] (+)= W_g[:, pc : pc + kc] * packed B, the weights packed or in place.
    auto gemm_w = [&](int64_t g, int64_t pc, int64_t kc, int64_t n, const T* pb, T beta, T* c,
                      int64_t ldc, int threads) {
        if (w_in_place)
            gemm_packed_a_in_place(pk, Kg, n, kc, T(1), w + g * wstride + pc, CKK, pb, beta, c, ldc,
                                   threads);
        else
            gemm_packed(pk, Kg, n, kc, T(1), pw + g * wstride + pc * pk.padded_m(Kg), pb, beta, c,
                        ldc, threads);
    };
    const int64_t slice = std::min<int64_t>(pk.kc, CKK) * pk.padded_n(nb * OHW);
    const bool by_block = Kg * CKK * static_cast<int64_t>(sizeof(T)) > kWeightsInL2 &&
                          slice * static_cast<int64_t>(sizeof(T)) <= kSliceInL2;
    for_each_task(nchunks * G, [&](int64_t t, int gemm_threads) {
        const int64_t n0 = t / G * nb, g = t % G;
        const int64_t nbt = std::min(nb, p.N - n0);
        const Im2colPlan& pl = nbt == nb ? plan : plan_tail;
        const T* xg = x + (n0 * p.C + g * Cg) * HW;
        if (pointwise || via_rows) {  // 1x1, stride 1, no padding: the input is im2col(x)
            T* yg = y + (n0 * p.K + g * Kg) * OHW;
            const T* col = xg;
            if (via_rows) {
                T* rows = thread_scratch<T, kRowsTag>(static_cast<size_t>(CKK * OHW));
                im2col(p, xg, rows);
                col = rows;
            }
            T* pb = thread_scratch<T, kColTag>(static_cast<size_t>(CKK * pk.padded_n(OHW)));
            gemm_pack_b(pk, false, CKK, OHW, col, OHW, pb);
            gemm_w(g, 0, CKK, OHW, pb, T(0), yg, OHW, gemm_threads);
        } else {
            const int64_t ncols = pl.ncols, npanels = pk.padded_n(ncols) / pk.nr;
            const T* xp =
                im2col_pad(p, pl, xg, p.C * HW,
                           thread_scratch<T, kPadTag>(static_cast<size_t>(pl.padded_size(Cg))));
            // The GEMM's output: y itself for one image, else an nbt-image tile.
            T* out = nbt == 1 ? y + (n0 * p.K + g * Kg) * OHW
                              : thread_scratch<T, kOutTag>(static_cast<size_t>(Kg * ncols));
            auto panels = [&](int64_t jp0, int64_t jp1) {
                T* pb = thread_scratch<T, kColTag>(static_cast<size_t>(CKK * pk.nr));
                for (int64_t jp = jp0; jp < jp1; ++jp) {
                    im2col_pack_panels(p, pl, xp, pk, jp, jp + 1, pb);
                    gemm_w(g, 0, CKK, std::min<int64_t>(pk.nr, ncols - jp * pk.nr), pb, T(0),
                           out + jp * pk.nr, ncols, 1);
                }
            };
            if (by_block) {
                // The weights outgrow L2: one KC block of every panel at a time, so each
                // MC x KC weight block is loaded into L2 once and used by all the panels
                // (panel at a time streams the whole weight matrix from L3 per panel).
                T* pb = thread_scratch<T, kColTag>(
                    static_cast<size_t>(std::min<int64_t>(pk.kc, CKK) * npanels * pk.nr));
                for (int64_t pc = 0; pc < CKK; pc += pk.kc) {
                    const int64_t kc = std::min<int64_t>(pk.kc, CKK - pc);
                    im2col_pack_block(p, pl, xp, pk, pc, kc, pb, gemm_threads);
                    gemm_w(g, pc, kc, ncols, pb, pc == 0 ? T(0) : T(1), out, ncols, gemm_threads);
                }
            } else {
                // A lone task (gemm_threads > 1): the threads claim panels, each packing its
                // own (no serial im2col pass for a busy core to stall).
                parallel_ranges(npanels, gemm_threads, panels);
            }
            if (nbt > 1)
                for (int64_t i = 0; i < nbt; ++i)
                    for (int64_t k = 0; k < Kg; ++k)
                        std::memcpy(y + ((n0 + i) * p.K + g * Kg + k) * OHW,
                                    out + k * ncols + i * OHW, sizeof(T) * OHW);
        }
        if (bias)
            for (int64_t i = 0; i < nbt; ++i)
                add_bias(p, bias, g * Kg, (g + 1) * Kg, y + (n0 + i) * p.K * OHW);
    });
}

template <typename T>
void backward_data_gemm(const Conv2dParams& p, T* dx, const T* dy, const T* w, bool pointwise) {
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group();
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, CKK = p.col_rows();
    // With several images W_g^T is packed once per call (packA, every group) and shared by
    // all tasks, as the forward packs W_g: a deep layer's weights are megabytes, and packing
    // them per image cost more than the image's GEMM (ResNet-18 7x7x512 b8: 45 -> 25 ms).
    // One image has nothing to share: gemm() packs each block as it goes, while it is in L2.
    const GemmPacking<T> pk = gemm_packing<T>();
    const bool shared = p.N > 1;
    const int64_t wstride = pk.padded_m(CKK) * Kg;
    T* pw = shared ? thread_scratch<T, kPackedWTag>(static_cast<size_t>(G * wstride)) : nullptr;
    if (shared)
        for (int64_t g = 0; g < G; ++g)
            gemm_pack_a(pk, true, CKK, Kg, w + g * Kg * CKK, CKK, pw + g * wstride);
    for_each_task(p.N * G, [&](int64_t t, int gemm_threads) {
        const int64_t n = t / G, g = t % G;
        T* dxg = dx + (n * p.C + g * Cg) * HW;
        const T* dyg = dy + (n * p.K + g * Kg) * OHW;
        // dcol = W_g^T (CKK x Kg) * dy_g (Kg x OHW); for 1x1 dcol is dx itself.
        T* dcol = pointwise ? dxg : thread_scratch<T, kColTag>(static_cast<size_t>(CKK * OHW));
        if (shared) {
            T* pb = thread_scratch<T, kPackedDyTag>(static_cast<size_t>(Kg * pk.padded_n(OHW)));
            gemm_pack_b(pk, false, Kg, OHW, dyg, OHW, pb);
            gemm_packed(pk, CKK, OHW, Kg, T(1), pw + g * wstride, pb, T(0), dcol, OHW,
                        gemm_threads);
        } else {
            gemm<T>(true, false, CKK, OHW, Kg, T(1), w + g * Kg * CKK, CKK, dyg, OHW, T(0), dcol,
                    OHW, gemm_threads);
        }
        if (!pointwise) col2im(p, dcol, dxg, gemm_threads);
    });
}

// backward_data with stride 1 as the forward convolution of dy with the flipped,
// transposed weights: the forward's parameters.
Conv2dParams backward_data_as_forward_params(const Conv2dParams& p) {
    Conv2dParams q = p;
    q.C = p.K, q.H = p.OH, q.W = p.OW;
    q.K = p.C, q.OH = p.H, q.OW = p.W;
    q.pad_top = p.dil_h * (p.KH - 1) - p.pad_top;
    q.pad_left = p.dil_w * (p.KW - 1) - p.pad_left;
    return q;
}

// Whether that forward exists: stride 1, and its padding d*(k-1) - pad is not negative.
bool backward_data_as_forward_valid(const Conv2dParams& p) {
    return p.stride_h == 1 && p.stride_w == 1 && p.pad_top <= p.dil_h * (p.KH - 1) &&
           p.pad_left <= p.dil_w * (p.KW - 1);
}

// backward_data as a forward convolution (stride 1): dx is the forward convolution of dy
// with the flipped, transposed weights W'[c][k][kh][kw] = W[k][c][KH-1-kh][KW-1-kw] (per
// group), dilation kept and padding d*(KH-1) - pad. Writes W' to scratch and returns it;
// *q gets the forward's parameters.
template <typename T>
const T* flipped_weights_as_forward(const Conv2dParams& p, const T* w, Conv2dParams* q) {
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group(), KK = p.KH * p.KW;
    T* wf = thread_scratch<T, kFlippedWTag>(static_cast<size_t>(p.C * Kg * KK));
    for (int64_t g = 0; g < G; ++g)
        for (int64_t k = 0; k < Kg; ++k)
            for (int64_t c = 0; c < Cg; ++c) {
                const T* src = w + ((g * Kg + k) * Cg + c) * KK;
                T* dst = wf + ((g * Cg + c) * Kg + k) * KK;
                for (int64_t t = 0; t < KK; ++t) dst[t] = src[KK - 1 - t];
            }
    *q = backward_data_as_forward_params(p);
    return wf;
}

// dx by im2col's forward (conv2d_backward_data_as_forward says when, and why).
template <typename T>
void backward_data_forward(const Conv2dParams& p, T* dx, const T* dy, const T* w) {
    Conv2dParams q;
    const T* wf = flipped_weights_as_forward(p, w, &q);
    forward_gemm(q, dy, wf, static_cast<const T*>(nullptr), dx, false);
}

// dx by the forward by output rows (direct_rows_forward) of dy with the flipped weights:
// stride 1, ungrouped, padding <= dilation*(kernel - 1) (conv2d_backward_data_by_rows).
// No column matrix and no col2im: GEMM + col2im's K is the layer's few output channels
// (the tutorial's conv1: 6) and its col2im scatters C*KH*KW rows per image.
template <typename T>
void backward_data_rows(const Conv2dParams& p, T* dx, const T* dy, const T* w) {
    Conv2dParams q;
    const T* wf = flipped_weights_as_forward(p, w, &q);
    assert(direct_rows_forward_applies(q));
    direct_forward(q, dy, wf, static_cast<const T*>(nullptr), dx);
}

// dx by Winograd's forward: the flipped 3x3 kernel is again 3x3 / stride 1 / dilation 1,
// for any padding (a negative forward padding only shifts the tiles' reads, which are
// bounds-checked). Its weight transform reads w flipped and transposed where it lies
// (flipped_weights_as_forward's copy took 9 % of 7x7x512 b8).
template <typename T>
void backward_data_winograd(const Conv2dParams& p, T* dx, const T* dy, const T* w, int tile) {
    winograd_forward(backward_data_as_forward_params(p), dy, w,
                     WinogradWeights{9, p.c_per_group() * 9, true}, static_cast<const T*>(nullptr),
                     dx, static_cast<const WinogradPool<T>*>(nullptr), tile);
}

template <typename T>
void backward_weight_gemm(const Conv2dParams& p, T* dw, const T* dy, const T* x, bool pointwise) {
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group();
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, CKK = p.col_rows();
    const int64_t wsize = p.K * CKK;
    // col^T packed straight from the (padded) input, dy_g by packA, then the packed GEMM:
    // im2col and packB's transpose took 40 % of a CifarNet conv2 b64 backward_weight.
    const GemmPacking<T> pk = gemm_packing<T>();
    const Im2colPlan plan = pointwise ? Im2colPlan{} : make_im2col_plan(p, pk.nr, 1, p.C * HW);
    const bool fused = !pointwise && pack_from_padded(p, plan);
    // Each image's dy_g meets only the panels of its own col^T (CKK columns).
    const bool dy_in_place = a_in_place_pays(pk, pk.padded_n(CKK) / pk.nr);
    // dW_g (Kg x CKK) += dy_g (Kg x OHW) * col^T (OHW x CKK), over images [n0, n1).
    auto accumulate = [&](int64_t n0, int64_t n1, T* out, int gemm_threads) {
        for (int64_t n = n0; n < n1; ++n)
            for (int64_t g = 0; g < G; ++g) {
                const T* xg = x + (n * p.C + g * Cg) * HW;
                const T* dyg = dy + (n * p.K + g * Kg) * OHW;
                const T beta = n == n0 ? T(0) : T(1);
                if (fused) {
                    const T* xp = im2col_pad(
                        p, plan, xg, p.C * HW,
                        thread_scratch<T, kPadTag>(static_cast<size_t>(plan.padded_size(Cg))));
                    T* pb = thread_scratch<T, kColTag>(static_cast<size_t>(OHW * pk.padded_n(CKK)));
                    im2col_pack_transposed(p, plan, xp, pk, pb, gemm_threads);
                    if (dy_in_place) {
                        gemm_packed_a_in_place(pk, Kg, CKK, OHW, T(1), dyg, OHW, pb, beta,
                                               out + g * Kg * CKK, CKK, gemm_threads);
                        continue;
                    }
                    T* pa = thread_scratch<T, kPackedDyTag>(static_cast<size_t>(pk.padded_m(Kg) * OHW));
                    gemm_pack_a(pk, false, Kg, OHW, dyg, OHW, pa);
                    gemm_packed(pk, Kg, CKK, OHW, T(1), pa, pb, beta, out + g * Kg * CKK, CKK,
                                gemm_threads);
                    continue;
                }
                const T* col = xg;
                if (!pointwise) {
                    T* buf = thread_scratch<T, kColTag>(static_cast<size_t>(CKK * OHW));
                    im2col(p, xg, buf, gemm_threads);
                    col = buf;
                }
                gemm<T>(false, true, Kg, CKK, OHW, T(1), dyg, OHW, col, OHW, beta, out + g * Kg * CKK,
                        CKK, gemm_threads);
            }
    };
    const int nt = requested_threads();  // slices of the batch: fixed by the request
    if (p.N == 0) {  // empty batch: the gradient is zero, not unwritten
        std::fill(dw, dw + wsize, T(0));
        return;
    }
    if (nt == 1 || p.N < nt) {
        accumulate(0, p.N, dw, num_threads());
        return;
    }
    // One partial sum per slice of images (slice 0 writes dw), then a fixed-order reduction.
    T* partials = thread_scratch<T, kPartialTag>(static_cast<size_t>((nt - 1) * wsize));
    for_each_slice(nt, [&](int s) {
        int64_t n0, n1;
        split_range(p.N, nt, s, &n0, &n1);
        accumulate(n0, n1, s == 0 ? dw : partials + (s - 1) * wsize, 1);
    });
    parallel_ranges(wsize, num_threads(), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            T s = dw[i];
            for (int t = 1; t < nt; ++t) s += partials[(t - 1) * wsize + i];
            dw[i] = s;
        }
    });
}

}  // namespace

ConvAlgo parse_conv_algo(const std::string& name) {
    if (name == "auto") return ConvAlgo::automatic;
    if (name == "ref") return ConvAlgo::ref;
    if (name == "im2col") return ConvAlgo::im2col;
    if (name == "direct_1x1") return ConvAlgo::direct_1x1;
    if (name == "depthwise") return ConvAlgo::depthwise;
    if (name == "direct") return ConvAlgo::direct;
    if (name == "winograd") return ConvAlgo::winograd;
    if (name == "winograd4") return ConvAlgo::winograd4;
    throw std::invalid_argument(
        "unknown conv algorithm '" + name +
        "': expected auto, ref, im2col, direct_1x1, depthwise, direct, winograd or winograd4");
}

ConvDirection parse_conv_direction(const std::string& name) {
    if (name == "forward") return ConvDirection::forward;
    if (name == "backward_data") return ConvDirection::backward_data;
    if (name == "backward_weight") return ConvDirection::backward_weight;
    throw std::invalid_argument("unknown direction '" + name +
                                "': expected forward, backward_data or backward_weight");
}

const char* conv_algo_name(ConvAlgo a) {
    switch (a) {
        case ConvAlgo::automatic:
            return "auto";
        case ConvAlgo::ref:
            return "ref";
        case ConvAlgo::im2col:
            return "im2col";
        case ConvAlgo::direct_1x1:
            return "direct_1x1";
        case ConvAlgo::depthwise:
            return "depthwise";
        case ConvAlgo::direct:
            return "direct";
        case ConvAlgo::winograd:
            return "winograd";
        case ConvAlgo::winograd4:
            return "winograd4";
    }
    return "?";
}

ConvAlgo choose_conv_algo(const Conv2dParams& p, ConvDirection dir) {
    if (is_depthwise(p)) return ConvAlgo::depthwise;  // GEMM with K = KH*KW is wasteful
    if (is_pointwise(p)) return ConvAlgo::direct_1x1;
    if (dir == ConvDirection::forward && winograd_preferred(p))
        return winograd4_preferred(p) ? ConvAlgo::winograd4 : ConvAlgo::winograd;
    if (dir == ConvDirection::forward && winograd4_alone_preferred(p)) return ConvAlgo::winograd4;
    if (dir == ConvDirection::backward_data && winograd_applies(p)) {
        const Conv2dParams q = backward_data_as_forward_params(p);
        if (winograd_preferred(q))
            return winograd4_preferred(q) ? ConvAlgo::winograd4 : ConvAlgo::winograd;
    }
    if (dir == ConvDirection::backward_weight && winograd_grad_preferred(p))
        return ConvAlgo::winograd;
    if (dir == ConvDirection::backward_data && conv2d_backward_data_rows_preferred(p))
        return ConvAlgo::direct;
    return direct_preferred(p, dir) ? ConvAlgo::direct : ConvAlgo::im2col;
}

// dx as a forward convolution: with stride 1, dx is the forward convolution of dy with the
// flipped, transposed weights W'[c][k][kh][kw] = W[k][c][KH-1-kh][KW-1-kw] (per group),
// dilation kept and padding d*(KH-1) - pad. It runs the forward's im2col packed straight
// into GEMM panels instead of a CKK x OHW column matrix and col2im's scatter-add. Chosen
// where it measured faster (Zen 4, 1 thread, alternated with GEMM + col2im):
// - 'same' layers (OH = H, OW = W) with >= 32 input channels per group, several images:
//   CifarNet conv2 b64 1.12x, ResNet-18 3x3 b8 1.06-1.20x;
// - not with fewer channels: the forward's M is C, and C = 1..3 fills 1..3 of the
//   micro-kernel's 8 rows (LeNet-5 conv1 0.32x, CifarNet conv1 0.55x);
// - not for unpadded layers, which become full convolutions of a zero-padded dy with half
//   the rows (Keras conv2/conv3: 0.82x / 0.69x);
// - not at batch 1, where the flipped weights are packed for one image (7x7x512: 0.66x).
bool conv2d_backward_data_as_forward(const Conv2dParams& p) {
    return p.N > 1 && p.OH == p.H && p.OW == p.W && p.c_per_group() >= 32 &&
           backward_data_as_forward_valid(p);
}

bool conv2d_backward_data_by_rows(const Conv2dParams& p) {
    return p.groups == 1 && backward_data_as_forward_valid(p) &&
           direct_rows_forward_applies(backward_data_as_forward_params(p));
}

// Auto's choice of the rows path for backward_data: layers of <= 16 output channels, the
// K of GEMM + col2im's GEMM (each C tile gets <= 16 multiply-adds per element, and col2im
// scatters C*KH*KW rows per image whatever K is), >= 3 input channels (the row tile's
// broadcast weights) and dx with at most 1.5x the positions of dy (every tap of the full
// correlation is computed, over dy's zero padding too). Zen 3, AVX2, 1 thread, at full
// speed, alternated with GEMM + col2im: 3 -> 6 5x5 on 32x32 (the tutorial's conv1) 1.76x,
// 4..12 -> 6..16 3x3/5x5 on 32x32 1.4-3.8x, 16..24 -> 6..16 on 16x16 1.5-2.8x, 64..128
// -> 8 3x3 1.6-1.8x, 64..128 -> 16 5x5 1.05-1.10x; 3x3 layers Winograd takes first stay
// there (16 -> 16 on 16x16: F(4x4) 0.66 ms, this 0.98, GEMM 1.38). Not with more output
// channels, where the GEMM is efficient: 3 -> 32 3x3 (Keras/CifarNet conv1) 0.84-1.01x,
// 8 -> 32 3x3 0.92x (24..32 outputs on 5x5 still 1.2-1.5x: left out); not 1-2 input
// channels (LeNet-5 conv1 0.9x, 2 -> 16 3x3 0.89x); not LeNet-5's conv2 (dx 14x14 from
// 10x10: 0.86x), 32 -> 16 3x3 on 6x6 (from 4x4: 0.8x). Not measured on AVX-512 (row tile
// 12 channels x 32 columns).
bool conv2d_backward_data_rows_preferred(const Conv2dParams& p) {
    return p.K <= 16 && p.C >= 3 && 2 * p.H * p.W <= 3 * p.OH * p.OW &&
           conv2d_backward_data_by_rows(p);
}

template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                    ConvAlgo algo) {
    switch (resolve_conv_algo(p, algo, ConvDirection::forward)) {
        case ConvAlgo::ref:
            return conv2d_forward_ref(p, x, w, bias, y);
        case ConvAlgo::direct:
            return is_depthwise(p) ? direct_depthwise_forward(p, x, w, bias, y)
                                   : direct_forward(p, x, w, bias, y);
        case ConvAlgo::depthwise:
            return direct_depthwise_forward(p, x, w, bias, y);
        case ConvAlgo::direct_1x1:
            return forward_gemm(p, x, w, bias, y, true);
        case ConvAlgo::winograd:
            return winograd_forward(p, x, w, bias, y);
        case ConvAlgo::winograd4:
            return winograd_forward(p, x, w, bias, y, static_cast<const WinogradPool<T>*>(nullptr),
                                    4);
        default:
            return forward_gemm(p, x, w, bias, y, false);
    }
}

// The pool reads the conv output where it is computed: Winograd pools each 2x2 output tile
// in its output transform, the forward by rows each image's output from L2. Neither writes
// the conv output to memory and reads it back (CifarNet b64: 8 MB after conv1, 4 MB after
// conv2). Elsewhere the conv output of a chunk of images goes to a reused buffer of about
// kPoolChunkBytes (at least one image: the workspace bound is per image), pooled from L2.
template <typename T>
void conv2d_max_pool2d_forward(const Conv2dParams& p, const Pool2dParams& q, const T* x, const T* w,
                               const T* bias, T* pooled, int64_t* indices, bool relu,
                               ConvAlgo algo) {
    assert(q.N == p.N && q.C == p.K && q.H == p.OH && q.W == p.OW);
    const ConvAlgo a = resolve_conv_algo(p, algo, ConvDirection::forward);
    const bool tiles_are_windows = q.KH == 2 && q.KW == 2 && q.stride_h == 2 && q.stride_w == 2 &&
                                   q.pad_h == 0 && q.pad_w == 0 && q.dil_h == 1 && q.dil_w == 1 &&
                                   2 * q.OH <= p.OH && 2 * q.OW <= p.OW;
    if ((a == ConvAlgo::winograd || a == ConvAlgo::winograd4) && p.dil_h == 1 && p.dil_w == 1 &&
        tiles_are_windows && p.OH * p.OW < (int64_t{1} << 31)) {
        const WinogradPool<T> pool{pooled, indices, q.OH, q.OW, relu};
        return winograd_forward<T>(p, x, w, bias, nullptr, &pool, a == ConvAlgo::winograd4 ? 4 : 2);
    }
    if (a == ConvAlgo::direct && !is_depthwise(p) && direct_rows_forward_applies(p))
        return direct_rows_forward_pooled(p, q, x, w, bias, pooled, indices, relu);
    constexpr int64_t kPoolChunkBytes = 256 * 1024;
    const int64_t out_image = p.K * p.OH * p.OW, pooled_image = q.C * q.OH * q.OW;
    const int64_t nb = std::max<int64_t>(
        1, std::min<int64_t>(p.N, kPoolChunkBytes / (out_image * static_cast<int64_t>(sizeof(T)))));
    T* yp = thread_scratch<T, kPoolConvTag>(static_cast<size_t>(nb * out_image));
    for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
        Conv2dParams pc = p;
        Pool2dParams qc = q;
        pc.N = qc.N = std::min(nb, p.N - n0);
        conv2d_forward(pc, x + n0 * p.C * p.H * p.W, w, bias, yp, a);
        T* out = pooled + n0 * pooled_image;
        max_pool2d_forward(qc, yp, out, indices ? indices + n0 * pooled_image : nullptr);
        if (relu) relu_forward(qc.N * pooled_image, out, out);
    }
}

template <typename T>
void conv2d_backward_data(const Conv2dParams& p, T* dx, const T* dy, const T* w, ConvAlgo algo) {
    switch (resolve_conv_algo(p, algo, ConvDirection::backward_data)) {
        case ConvAlgo::ref:
            return conv2d_backward_data_ref(p, dx, dy, w);
        case ConvAlgo::direct:
            if (is_depthwise(p)) return direct_depthwise_backward_data(p, dx, dy, w);
            return conv2d_backward_data_by_rows(p) ? backward_data_rows(p, dx, dy, w)
                                                   : direct_backward_data(p, dx, dy, w);
        case ConvAlgo::depthwise:
            return direct_depthwise_backward_data(p, dx, dy, w);
        case ConvAlgo::direct_1x1:
            return backward_data_gemm(p, dx, dy, w, true);
        case ConvAlgo::winograd:
            return backward_data_winograd(p, dx, dy, w, 2);
        case ConvAlgo::winograd4:
            return backward_data_winograd(p, dx, dy, w, 4);
        default:
            return conv2d_backward_data_as_forward(p) ? backward_data_forward(p, dx, dy, w)
                                                      : backward_data_gemm(p, dx, dy, w, false);
    }
}

template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x, ConvAlgo algo,
                            T* db) {
    const ConvAlgo a = resolve_conv_algo(p, algo, ConvDirection::backward_weight);
    if (a == ConvAlgo::depthwise || (a == ConvAlgo::direct && is_depthwise(p)))
        return direct_depthwise_backward_weight(p, dw, dy, x, db);
    // The other kernels take dy in their own order: db first, while dy is in cache.
    if (db) conv2d_backward_bias(p, db, dy);
    switch (a) {
        case ConvAlgo::ref:
            return conv2d_backward_weight_ref(p, dw, dy, x);
        case ConvAlgo::direct:
            return direct_backward_weight(p, dw, dy, x);
        case ConvAlgo::direct_1x1:
            return backward_weight_gemm(p, dw, dy, x, true);
        case ConvAlgo::winograd:
        case ConvAlgo::winograd4:  // F(2x2, 3x3)'s weight gradient
            return winograd_backward_weight(p, dw, dy, x);
        default:
            return backward_weight_gemm(p, dw, dy, x, false);
    }
}

template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, T* db, const T* dy) {
    const int64_t OHW = p.OH * p.OW;
    // Each channel summed by one thread, images in order: deterministic, no reduction across
    // threads. Sixteen independent partial sums per plane (add_plane_sum; a single scalar
    // chain is bound by the add latency: 2 ms for a 64x32x32x32 dy, as long as that layer's
    // convolution). Images outer and a block of channels inner, so dy is read in address
    // order: channel by channel, it was read one plane per image 128 KiB apart (CifarNet
    // conv1's 8 MB dy from memory: 855 -> 301 us; NumPy's sum over those axes takes 406 us).
    constexpr int64_t kBlock = 256;
    // Threads claim ranges of channels (whole channels: the order of each sum is fixed).
    parallel_ranges(p.K, threads_for(p.K), [&](int64_t k0, int64_t k1) {
        for (int64_t kb = k0; kb < k1; kb += kBlock) {
            const int64_t ke = std::min(k1, kb + kBlock);
            double acc[kBlock] = {};
            for (int64_t n = 0; n < p.N; ++n)
                for (int64_t k = kb; k < ke; ++k)
                    add_plane_sum(dy + (n * p.K + k) * OHW, OHW, acc[k - kb]);
            for (int64_t k = kb; k < ke; ++k) db[k] = T(acc[k - kb]);
        }
    });
}

// x's Cg channel planes (H x W, HW apart) copied into an Hp x Wp x Cg NHWC buffer, each
// plane shifted by (pad_top, pad_left) and zero outside the input. Channels go 4 floats /
// 2 doubles at a time through a register transpose (pack_transpose.h).
template <typename T>
void pad_nhwc(const T* x, int64_t Cg, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
              int64_t Hp, int64_t Wp, T* out) {
    constexpr int64_t kR = kTransposeRows<T>;
    const int64_t w1 = std::min(W, Wp - pad_left);  // input columns copied: [0, w1)
    for (int64_t hp = 0; hp < Hp; ++hp) {
        T* row = out + hp * Wp * Cg;
        const int64_t h = hp - pad_top;
        if (h < 0 || h >= H || w1 <= 0) {
            std::fill(row, row + Wp * Cg, T(0));
            continue;
        }
        std::fill(row, row + pad_left * Cg, T(0));
        std::fill(row + (pad_left + w1) * Cg, row + Wp * Cg, T(0));
        const T* src = x + h * W;
        T* dst = row + pad_left * Cg;
        if (Cg == 1) {
            std::copy(src, src + w1, dst);
            continue;
        }
        int64_t c = 0;
        for (; c + kR <= Cg; c += kR)
            transpose_strided_rows(src + c * H * W, H * W, w1, Cg, dst + c);
        // The last Cg % kR channels position by position: the stores in address order (a
        // channel at a time they were Cg apart, 19 % of the tutorial conv1's pooled dW).
        if (c < Cg)
            for (int64_t w = 0; w < w1; ++w)
                for (int64_t cc = c; cc < Cg; ++cc) dst[w * Cg + cc] = src[cc * H * W + w];
    }
}

// The weight gradient of a convolution whose output reaches the loss only through a max
// pool (conv -> [ReLU] -> max_pool2d, the classic nets' blocks). dy is then zero except at
// the pooled argmaxes, so instead of the dense dW = dy * col^T over every output position,
// each output channel k sums g * (row idx of col^T) over its pooled positions: a quarter
// of the multiply-adds for 2x2 windows, and no scatter of g into a dense dy first. The
// rows are read from a padded NHWC copy of each image (below), or from col^T packed
// row-major per image, ld = CKK + 1 rounded up to the vector width, with a column of ones
// at CKK: the same pass then sums db.
template <typename T>
int64_t conv2d_backward_weight_pooled(const Conv2dParams& p, int64_t PH, int64_t PW, T* dw, T* db,
                                      const T* g, const int64_t* idx, const T* x) {
    const int64_t npooled = PH * PW;
    const KernelSet<T>& ks = kernel_set<T>();
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group();
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, CKK = p.col_rows();
    const int64_t lanes = ks.direct_tiles().vec;
    const int64_t ld = (CKK + 1 + lanes - 1) / lanes * lanes;
    auto first_bad = [&]() -> int64_t {  // in address order
        for (int64_t i = 0; i < p.N * p.K * npooled; ++i)
            if (idx[i] < 0 || idx[i] >= OHW) return i;
        return -1;
    };
    std::fill(dw, dw + p.K * CKK, T(0));
    if (db) std::fill(db, db + p.K, T(0));
    if (p.N == 0 || OHW == 0 || npooled == 0) return first_bad();
    GemmPacking<T> pk = gemm_packing<T>();  // one panel of ld columns, one K block: row-major
    pk.nr = static_cast<int>(ld);
    pk.kc = OHW;
    const Im2colPlan plan = make_im2col_plan(p, pk.nr, 1, p.C * HW);
    const bool from_padded = pack_from_padded(p, plan);
    // Kernels of at most kPooledMaxRows rows: no col^T. The image is copied zero-padded in
    // NHWC, where col^T's row for an output position is, per kernel row, one contiguous
    // segment of the window's span of columns x Cg channels, read in place
    // (pooled_corr_rows): no packing, and the copy stays in L1 where col^T did not (b64,
    // 1 thread, Zen 4: LeNet-5 conv2 0.33 -> 0.16 ms, CifarNet conv2 3.4 -> 2.1 ms, the
    // 7x7/2 stem 34 -> 13 ms). But a short segment fills whole vectors, and more of them
    // than col^T's row may need; that costs per (image, output channel) entry, where the
    // packing is paid per image. col^T is kept where the extra vectors over all entries
    // exceed half the elements packed (at stride 1: strided packing costs more): the 3x3
    // layers on 3 channels (CifarNet/Keras conv1: 3 segment vectors + the bias sum
    // against a row of 2, 1.1 vs 1.0 ms).
    const int64_t span = (p.KW - 1) * p.dil_w + 1, seg = span * Cg;
    const int64_t extra = p.KH * ((seg + lanes - 1) / lanes) + 1 - ld / lanes;
    const int64_t packed = CKK * OHW / (p.stride_w == 1 ? 2 : 1);
    // The NHWC copy holds the windows' footprint; with strides beyond the kernel that can
    // exceed col^T (the workspace bound is one image's col^T per thread).
    const int64_t Hp = (p.OH - 1) * p.stride_h + (p.KH - 1) * p.dil_h + 1;
    const int64_t Wp = (p.OW - 1) * p.stride_w + span;
    const bool in_place =
        p.KH <= kPooledMaxRows && extra * Kg * npooled <= packed && Hp * Wp * Cg <= CKK * OHW;
    // An NHWC copy larger than L1 (32 KiB on Zen 2-4) is kept as nblk blocks of cb channels,
    // each an NHWC image of its own, and every output channel sums block by block: each
    // block's windows then come from L1, where the whole copy's came from L2 (CifarNet
    // conv2: 18x18x32, 41 KB, as 2 blocks of 16 channels; Zen 3, AVX2, b64, 1 thread:
    // 3.8 -> 3.3 ms, its multiply-adds alone 1.5 ms). Blocks divide Cg into whole vectors;
    // no block is made where none fits.
    constexpr int64_t kL1Budget = 24 * 1024;  // room left for g, idx and the accumulators
    int64_t nblk = 1;
    if (in_place && Hp * Wp * Cg * static_cast<int64_t>(sizeof(T)) > kL1Budget)
        for (int64_t n = 2; n <= Cg / lanes; ++n)
            if (Cg % n == 0 && Cg / n % lanes == 0 &&
                Hp * Wp * (Cg / n) * static_cast<int64_t>(sizeof(T)) <= kL1Budget) {
                nblk = n;
                break;
            }
    const int64_t cb = Cg / nblk, seg_b = span * cb;
    const int64_t ldr = (seg_b + lanes - 1) / lanes * lanes;  // accumulator row stride
    // Per output channel and block: the sums of KH segments and of g (the bias: block 0's
    // is used), or of col^T's row.
    const int64_t ldb = p.KH * ldr + lanes, ldk = in_place ? nblk * ldb : ld;
    std::vector<int64_t> roff, poff;
    if (in_place) {
        for (int64_t kh = 0; kh < p.KH; ++kh) roff.push_back(kh * p.dil_h * Wp * cb);
        for (int64_t oh = 0; oh < p.OH; ++oh)
            for (int64_t ow = 0; ow < p.OW; ++ow)
                poff.push_back((oh * p.stride_h * Wp + ow * p.stride_w) * cb);
    }
    // Column blocks of 4 vectors: the selected rows are re-read once per block but come
    // from L1 more often (CifarNet conv2 b64, Zen 4: 3.7 ms vs 4.0 whole rows, 4.6 with
    // 1-vector blocks, where each channel's FMA chains are too short).
    const int64_t jblock = 4 * lanes;
    // Slices of the batch fixed by the requested thread count (the same bits whatever the
    // load leaves), each summed whole by one thread into its own partial.
    const int nt = static_cast<int>(std::min<int64_t>(requested_threads(), p.N));
    T* partial = thread_scratch<T, kPooledTag>(static_cast<size_t>(nt * p.K * ldk));
    std::fill(partial, partial + nt * p.K * ldk, T(0));
    std::atomic<bool> bad{false};
    for_each_slice(nt, [&](int s) {
        int64_t n0, n1;
        split_range(p.N, nt, s, &n0, &n1);
        T* acc = partial + s * p.K * ldk;
        const int64_t xh_size = Hp * Wp * Cg;
        T* xh =
            in_place ? thread_scratch<T, kPadTag>(static_cast<size_t>(xh_size + lanes)) : nullptr;
        if (in_place) std::fill(xh + xh_size, xh + xh_size + lanes, T(0));  // read slack
        T* colT = in_place ? nullptr : thread_scratch<T, kColTag>(static_cast<size_t>(OHW * ld));
        for (int64_t n = n0; n < n1 && !bad.load(std::memory_order_relaxed); ++n)
            for (int64_t gi = 0; gi < G; ++gi) {
                const T* xg = x + (n * p.C + gi * Cg) * HW;
                if (in_place) {
                    const int64_t bsize = Hp * Wp * cb;
                    for (int64_t b = 0; b < nblk; ++b)
                        pad_nhwc(xg + b * cb * HW, cb, p.H, p.W, p.pad_top, p.pad_left, Hp, Wp,
                                 xh + b * bsize);
                    for (int64_t b = 0; b < nblk; ++b)
                        for (int64_t k = gi * Kg; k < (gi + 1) * Kg; ++k) {
                            const int64_t off = (n * p.K + k) * npooled;
                            if (ks.pooled_corr_rows(npooled, g + off, idx + off, OHW, poff.data(),
                                                    xh + b * bsize, roff.data(),
                                                    static_cast<int>(p.KH), seg_b, ldr,
                                                    acc + k * ldk + b * ldb) >= 0) {
                                bad.store(true);
                                return;
                            }
                        }
                    continue;
                }
                if (from_padded) {
                    const T* xp = im2col_pad(
                        p, plan, xg, p.C * HW,
                        thread_scratch<T, kPadTag>(static_cast<size_t>(plan.padded_size(Cg))));
                    im2col_pack_transposed(p, plan, xp, pk, colT, 1);
                } else {  // large padding: im2col, then a plain transpose
                    T* col = thread_scratch<T, kRowsTag>(static_cast<size_t>(CKK * OHW));
                    im2col(p, xg, col, 1);
                    for (int64_t q = 0; q < OHW; ++q) {
                        for (int64_t j = 0; j < CKK; ++j) colT[q * ld + j] = col[j * OHW + q];
                        for (int64_t j = CKK; j < ld; ++j) colT[q * ld + j] = T(0);
                    }
                }
                for (int64_t q = 0; q < OHW; ++q) colT[q * ld + CKK] = T(1);
                // Per column block, the group's channels together (blocks of them share the
                // rows their argmaxes select), each over its pooled positions in order.
                const int64_t off = (n * p.K + gi * Kg) * npooled;
                for (int64_t j0 = 0; j0 < ld; j0 += jblock) {
                    const int64_t nj = std::min(jblock, ld - j0);
                    if (ks.pooled_corr(Kg, npooled, g + off, idx + off, npooled, OHW, colT + j0, ld,
                                       nj, acc + gi * Kg * ld + j0, ld) >= 0) {
                        bad.store(true);
                        return;
                    }
                }
            }
    });
    if (bad.load()) return first_bad();
    // Partial sums added in slice order: the same result for the same thread count.
    // Entry j = (c*KH + kh)*KW + kw of dW[k] is at col^T's column j, or in kernel row kh's
    // segment of channel c's block at kw*dil_w*cb + c % cb; db[k] after block 0's segments.
    std::vector<int64_t> at(static_cast<size_t>(CKK + 1));
    for (int64_t j = 0; j < CKK; ++j) {
        const int64_t c = j / (p.KH * p.KW), kh = j / p.KW % p.KH, kw = j % p.KW;
        at[j] = in_place ? c / cb * ldb + kh * ldr + kw * p.dil_w * cb + c % cb : j;
    }
    at[CKK] = in_place ? p.KH * ldr : CKK;
    for (int64_t k = 0; k < p.K; ++k) {
        for (int64_t j = 0; j <= CKK; ++j) {
            if (j == CKK && !db) break;
            T s = partial[k * ldk + at[j]];
            for (int t = 1; t < nt; ++t) s += partial[(t * p.K + k) * ldk + at[j]];
            (j < CKK ? dw[k * CKK + j] : db[k]) = s;
        }
    }
    return -1;
}

template <typename T>
void conv_transpose2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                              ConvAlgo algo) {
    conv2d_backward_data(p, y, x, w, algo);
    if (!bias) return;
    const int64_t HW = p.H * p.W;
#pragma omp parallel for schedule(dynamic) num_threads(team_for(threads_for(p.N* p.C)))
    for (int64_t t = 0; t < p.N * p.C; ++t) {
        const T b = bias[t % p.C];
        T* yc = y + t * HW;
        for (int64_t i = 0; i < HW; ++i) yc[i] += b;
    }
}

#define FASTCONV_INSTANTIATE(T)                                                                    \
    template void conv2d_max_pool2d_forward<T>(const Conv2dParams&, const Pool2dParams&, const T*, \
                                               const T*, const T*, T*, int64_t*, bool, ConvAlgo);  \
    template void conv2d_forward<T>(const Conv2dParams&, const T*, const T*, const T*, T*,         \
                                    ConvAlgo);                                                     \
    template void conv2d_backward_data<T>(const Conv2dParams&, T*, const T*, const T*, ConvAlgo);  \
    template void conv2d_backward_weight<T>(const Conv2dParams&, T*, const T*, const T*, ConvAlgo, \
                                            T*);                                                   \
    template void conv2d_backward_bias<T>(const Conv2dParams&, T*, const T*);                      \
    template int64_t conv2d_backward_weight_pooled<T>(const Conv2dParams&, int64_t, int64_t, T*,   \
                                                      T*, const T*, const int64_t*, const T*);     \
    template void conv_transpose2d_forward<T>(const Conv2dParams&, const T*, const T*, const T*,   \
                                              T*, ConvAlgo);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv
