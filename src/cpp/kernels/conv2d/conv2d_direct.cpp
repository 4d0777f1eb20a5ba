// Direct convolution without an im2col matrix, over row-padded stride-phase planes.
//
// Layout. Stride s splits the zero-padded input into s_h x s_w phase planes,
//   P_(py,px)[r][q] = x[r*s_h + py - pad_top][q*s_w + px - pad_left]   (0 outside x),
// each Hq x Wq with Hq = OH + (KH-1)*d_h / s_h, Wq = OW + (KW-1)*d_w / s_w. Tap (kh, kw)
// reads phase ((kh*d_h) % s_h, (kw*d_w) % s_w) at the fixed flat shift
//   off = (kh*d_h / s_h) * Wq + (kw*d_w / s_w),
// so with outputs (and dy) laid out on the same Wq-wide rows (columns ow >= OW are padding),
// output position i = oh*Wq + ow reads P[i + off] for every tap: each tap is one contiguous
// vector stream, for any stride and dilation. nb images are stacked per plane (S = Hq*Wq
// apart) so small maps still give long streams. This is the im2col matrix never written:
// its rows are the shifted planes themselves (cf. the indirect convolution of Dukhan 2019,
// with shifts instead of a pointer per pixel).
//
//   forward          y[k][i]   = sum_{c,t} w[k][c][t] * P_{c,t}[i + off_t]   (shifted_gemm)
//   backward_data    dP_ph[c][j] = sum_{k, t in ph} w[k][c][t] * dy[k][j - off_t]
//                    (shifted_gemm per phase; dy planes carry a zero lead of off_max),
//                    then each phase plane is written back to its strided dx positions
//   backward_weight  dw[k][c][t] += sum_i dy[k][i] * P_{c,t}[i + off_t]   (shifted_corr)
//
// Padding columns of dy are zero, so they add nothing. The price is (Wq - OW) / Wq extra
// work (7x7 maps with a 3x3 kernel: 22 %, 56x56: 3 %), paid instead of building im2col.
// Phase-plane positions that no tap of their phase reads (inputs no window reads: the last
// row / column of a strided layer, the gaps of a dilated one) are zeroed, not copied: a
// padding column of dy times an Inf/NaN there would reach dw (0 * Inf = NaN).
//
// Workspace per thread: one chunk of planes, sized to at most one image's im2col matrix
// (at least one image). Threads: forward and backward_data run whole chunks per thread
// (tiles split inside a lone chunk); backward_weight runs chunks in order and splits the
// (k block, tap block) tiles over threads, each dw entry summed by one thread in a fixed
// order: bitwise identical for any thread count.
#include "kernels/conv2d/conv2d_direct.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/parallel.h"
#include "common/row_copy.h"
#include "fastconv/kernel_table.h"
#include "kernels/conv2d/bias_sum.h"
#include "kernels/conv2d/im2col.h"

namespace fastconv {

namespace {

enum DirectTag {
    kXqTag = 20,
    kDqTag = 21,
    kRowsTag = 22,
    kPackTag = 23,
    kOutTag = 24,
    kYnTag = 25
};

constexpr int64_t kRound = 32;   // position counts round to this (a multiple of every tile width)
constexpr int64_t kPBlock = 128;  // shifted_gemm taps per pass: the B rows of a tile stay in L1

int64_t round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}

struct DirectPlan {
    int64_t Hq = 0, Wq = 0, S = 0;  // phase-plane extent and size
    int64_t nph = 0;                // phases some tap reads
    std::vector<int64_t> ph_y, ph_x;
    std::vector<int64_t> tap_phase, tap_off;  // per tap t = kh*KW + kw
    std::vector<std::vector<int64_t>> phase_taps;  // taps t of each phase, in order
    // Per phase, the [lo, hi) runs of rows / columns no tap of the phase reads.
    std::vector<std::vector<std::array<int64_t, 2>>> unread_rows, unread_cols;
    int64_t off_max = 0;
    int64_t nb = 1;     // images per chunk
    int64_t L = 0;      // positions per chunk: nb*S rounded up
    int64_t xs = 0;     // stride of one (channel, phase) plane of a chunk
    int64_t front = 0;  // zero lead of each dy plane
    int64_t ds = 0;     // stride of one channel's dy / y plane
    int64_t nchunks(int64_t N) const { return (N + nb - 1) / nb; }
};

// The [lo, hi) runs of zeros in `read`.
std::vector<std::array<int64_t, 2>> unread_runs(const std::vector<char>& read) {
    std::vector<std::array<int64_t, 2>> runs;
    const auto n = static_cast<int64_t>(read.size());
    for (int64_t i = 0; i < n;) {
        if (read[static_cast<size_t>(i)]) {
            ++i;
            continue;
        }
        int64_t j = i;
        while (j < n && !read[static_cast<size_t>(j)]) ++j;
        runs.push_back({i, j});
        i = j;
    }
    return runs;
}

DirectPlan make_plan(const Conv2dParams& p, bool one_image = false) {
    DirectPlan d;
    const int64_t sh = p.stride_h, sw = p.stride_w;
    d.Hq = p.OH + (p.KH - 1) * p.dil_h / sh;
    d.Wq = p.OW + (p.KW - 1) * p.dil_w / sw;
    d.S = d.Hq * d.Wq;
    for (int64_t kh = 0; kh < p.KH; ++kh)
        for (int64_t kw = 0; kw < p.KW; ++kw) {
            const int64_t ah = kh * p.dil_h, aw = kw * p.dil_w;
            int64_t ph = 0;
            while (ph < d.nph && !(d.ph_y[ph] == ah % sh && d.ph_x[ph] == aw % sw)) ++ph;
            if (ph == d.nph) {
                d.ph_y.push_back(ah % sh);
                d.ph_x.push_back(aw % sw);
                ++d.nph;
            }
            if (ph == static_cast<int64_t>(d.phase_taps.size())) d.phase_taps.emplace_back();
            d.phase_taps[ph].push_back(kh * p.KW + kw);
            d.tap_phase.push_back(ph);
            d.tap_off.push_back(ah / sh * d.Wq + aw / sw);
            d.off_max = std::max(d.off_max, d.tap_off.back());
        }
    for (int64_t ph = 0; ph < d.nph; ++ph) {
        std::vector<char> row_read(static_cast<size_t>(d.Hq)), col_read(static_cast<size_t>(d.Wq));
        for (const int64_t t : d.phase_taps[static_cast<size_t>(ph)]) {
            const int64_t r = t / p.KW * p.dil_h / sh, q = t % p.KW * p.dil_w / sw;
            std::fill_n(row_read.begin() + r, p.OH, 1);
            std::fill_n(col_read.begin() + q, p.OW, 1);
        }
        d.unread_rows.push_back(unread_runs(row_read));
        d.unread_cols.push_back(unread_runs(col_read));
    }
    // Chunk: as many images as fit in one image's im2col matrix, at least one.
    const int64_t per_image = (p.C * d.nph + p.K) * d.S;
    const int64_t budget = p.groups * p.col_rows() * p.OH * p.OW;
    d.nb = one_image ? 1
                     : std::max<int64_t>(1, std::min<int64_t>(
                                                p.N, budget / std::max<int64_t>(1, per_image)));
    d.L = round_up(d.nb * d.S, kRound);
    d.xs = round_up(d.L + d.off_max, 16);
    d.front = round_up(d.off_max, 16);
    d.ds = round_up(d.front + d.L, 16);
    return d;
}

// The phases of stride_w == 2 by their row phase: pairs[ph_y] = {phase of column phase 0,
// of column phase 1}, -1 where the kernel has no such tap.
std::vector<std::array<int64_t, 2>> phase_pairs(const Conv2dParams& p, const DirectPlan& d) {
    std::vector<std::array<int64_t, 2>> pairs(static_cast<size_t>(p.stride_h), {-1, -1});
    for (int64_t ph = 0; ph < d.nph; ++ph)
        pairs[static_cast<size_t>(d.ph_y[ph])][static_cast<size_t>(d.ph_x[ph])] = ph;
    return pairs;
}

// Phase rows [r0, r1) of row phase ph_y whose input rows ih = r*stride_h + ph_y - pad_top
// lie in [0, H).
void phase_rows(const Conv2dParams& p, const DirectPlan& d, int64_t ph_y, int64_t* r0,
                int64_t* r1) {
    valid_output_range(d.Hq, p.stride_h, ph_y - p.pad_top, p.H, r0, r1);
}

// Zeroes the positions of phase plane `ph` (one image's S positions) that no tap of the
// phase reads.
template <typename T>
void zero_unread(const DirectPlan& d, int64_t ph, T* plane) {
    const auto& rows = d.unread_rows[static_cast<size_t>(ph)];
    const auto& cols = d.unread_cols[static_cast<size_t>(ph)];
    for (const auto& [lo, hi] : rows) std::fill(plane + lo * d.Wq, plane + hi * d.Wq, T(0));
    if (cols.empty()) return;
    for (int64_t r = 0; r < d.Hq; ++r)
        for (const auto& [lo, hi] : cols) zero_row(plane + r * d.Wq + lo, hi - lo);
}

// Phase planes of one channel over images [0, nb) (xc: the first image's plane, img_stride
// elements between images) into `planes` (nph planes, xs apart); positions no tap reads
// and everything past the images' nb*S positions are zeroed. At stride_w 2 each input row
// is split into both column phases at once (KernelSet::phase_split_s2).
template <typename T>
void fill_x_channel(const Conv2dParams& p, const DirectPlan& d, const T* xc, int64_t nb,
                    int64_t img_stride, T* planes) {
    if (p.stride_w == 2) {
        const auto split = kernel_set<T>().phase_split_s2;
        const auto pairs = phase_pairs(p, d);
        for (int64_t ph_y = 0; ph_y < p.stride_h; ++ph_y) {
            const auto [pe, po] = pairs[static_cast<size_t>(ph_y)];
            if (pe < 0 && po < 0) continue;
            T* even = pe < 0 ? nullptr : planes + pe * d.xs;
            T* odd = po < 0 ? nullptr : planes + po * d.xs;
            int64_t r0, r1;
            phase_rows(p, d, ph_y, &r0, &r1);
            for (int64_t n = 0; n < nb; ++n)
                for (T* plane : {even, odd}) {
                    if (!plane) continue;
                    T* pn = plane + n * d.S;
                    if (r0 >= r1) {
                        std::fill(pn, pn + d.S, T(0));
                        continue;
                    }
                    std::fill(pn, pn + r0 * d.Wq, T(0));
                    std::fill(pn + r1 * d.Wq, pn + d.S, T(0));
                }
            if (r0 < r1)
                for (int64_t n = 0; n < nb; ++n)
                    split(xc + n * img_stride + (r0 * p.stride_h + ph_y - p.pad_top) * p.W,
                          p.stride_h * p.W, p.W, p.pad_left, r1 - r0, d.Wq,
                          even ? even + n * d.S + r0 * d.Wq : nullptr,
                          odd ? odd + n * d.S + r0 * d.Wq : nullptr, d.Wq);
            for (const int64_t ph : {pe, po}) {
                if (ph < 0) continue;
                T* plane = planes + ph * d.xs;
                for (int64_t n = 0; n < nb; ++n) zero_unread(d, ph, plane + n * d.S);
                std::fill(plane + nb * d.S, plane + d.xs, T(0));
            }
        }
        return;
    }
    for (int64_t ph = 0; ph < d.nph; ++ph) {
        T* plane = planes + ph * d.xs;
        int64_t lo, hi;
        valid_output_range(d.Wq, p.stride_w, d.ph_x[ph] - p.pad_left, p.W, &lo, &hi);
        for (int64_t n = 0; n < nb; ++n) {
            const T* xn = xc + n * img_stride;
            for (int64_t r = 0; r < d.Hq; ++r) {
                T* dst = plane + n * d.S + r * d.Wq;
                const int64_t ih = r * p.stride_h + d.ph_y[ph] - p.pad_top;
                if (ih < 0 || ih >= p.H || lo >= hi) {
                    zero_row(dst, d.Wq);
                    continue;
                }
                const T* src = xn + ih * p.W + d.ph_x[ph] - p.pad_left;
                zero_row(dst, lo);
                if (p.stride_w == 1)
                    copy_row(dst + lo, src + lo, hi - lo);
                else if (p.stride_w == 2)  // a constant stride vectorises (shuffles)
                    for (int64_t q = lo; q < hi; ++q) dst[q] = src[2 * q];
                else
                    for (int64_t q = lo; q < hi; ++q) dst[q] = src[q * p.stride_w];
                zero_row(dst + hi, d.Wq - hi);
            }
            zero_unread(d, ph, plane + n * d.S);
        }
        std::fill(plane + nb * d.S, plane + d.xs, T(0));
    }
}

// Channels [c0, c1) of images [n0, n0 + nb) into xq (C*nph planes, xs apart).
template <typename T>
void fill_x(const Conv2dParams& p, const DirectPlan& d, const T* x, int64_t n0, int64_t nb,
            int64_t c0, int64_t c1, T* xq) {
    const int64_t HW = p.H * p.W;
    for (int64_t c = c0; c < c1; ++c)
        fill_x_channel(p, d, x + (n0 * p.C + c) * HW, nb, p.C * HW, xq + c * d.nph * d.xs);
}

// One channel's dy over images [0, nb) on Wq-wide rows, after a zero lead of `front`;
// padding columns, rows OH..Hq-1 and the tail up to ds are zero.
template <typename T>
void fill_dy_channel(const Conv2dParams& p, const DirectPlan& d, const T* dyk, int64_t nb,
                     int64_t img_stride, T* plane) {
    std::fill(plane, plane + d.front, T(0));
    for (int64_t n = 0; n < nb; ++n) {
        const T* src = dyk + n * img_stride;
        T* dst = plane + d.front + n * d.S;
        for (int64_t oh = 0; oh < p.OH; ++oh) {
            copy_row(dst + oh * d.Wq, src + oh * p.OW, p.OW);
            zero_row(dst + oh * d.Wq + p.OW, d.Wq - p.OW);
        }
        std::fill(dst + p.OH * d.Wq, dst + d.S, T(0));
    }
    std::fill(plane + d.front + nb * d.S, plane + d.ds, T(0));
}

// Channels [k0, k1) of images [n0, n0 + nb) into dq (K planes, ds apart).
template <typename T>
void fill_dy(const Conv2dParams& p, const DirectPlan& d, const T* dy, int64_t n0, int64_t nb,
             int64_t k0, int64_t k1, T* dq) {
    const int64_t OHW = p.OH * p.OW;
    for (int64_t k = k0; k < k1; ++k)
        fill_dy_channel(p, d, dy + (n0 * p.K + k) * OHW, nb, p.K * OHW, dq + k * d.ds);
}

// Tap t's stream in the phase planes of one channel (nph planes, xs apart).
template <typename T>
const T* tap_row(const DirectPlan& d, const T* planes, int64_t t) {
    return planes + d.tap_phase[t] * d.xs + d.tap_off[t];
}

// One output plane from Wq-wide rows (src) into dst[OH][OW], plus b.
template <typename T>
void store_output(const Conv2dParams& p, const DirectPlan& d, const T* src, T b, T* dst) {
    for (int64_t oh = 0; oh < p.OH; ++oh) copy_row_add(dst + oh * p.OW, src + oh * d.Wq, p.OW, b);
}

// Phase plane `ph` of one (image, channel) gradient (src, Wq-wide rows) written to its
// strided positions of dx[H][W].
template <typename T>
void scatter_phase(const Conv2dParams& p, const DirectPlan& d, int64_t ph, const T* src, T* dxc) {
    int64_t lo, hi;
    valid_output_range(d.Wq, p.stride_w, d.ph_x[ph] - p.pad_left, p.W, &lo, &hi);
    for (int64_t r = 0; r < d.Hq; ++r) {
        const int64_t ih = r * p.stride_h + d.ph_y[ph] - p.pad_top;
        if (ih < 0 || ih >= p.H) continue;
        T* dst = dxc + ih * p.W + d.ph_x[ph] - p.pad_left;
        const T* row = src + r * d.Wq;
        if (p.stride_w == 1)
            copy_row(dst + lo, row + lo, hi - lo);
        else if (p.stride_w == 2)  // a constant stride vectorises (shuffles)
            for (int64_t q = lo; q < hi; ++q) dst[2 * q] = row[q];
        else
            for (int64_t q = lo; q < hi; ++q) dst[q * p.stride_w] = row[q];
    }
}

// dx[H][W] of one (image, channel) at stride_w 2 from its phase planes (phase ph at
// out + ph*len, Wq-wide rows): each row from the two column phases of its row phase; rows
// and columns that no phase reaches are 0.
template <typename T>
void merge_phases(const Conv2dParams& p, const DirectPlan& d,
                  const std::vector<std::array<int64_t, 2>>& pairs, const T* out, int64_t len,
                  T* dxc) {
    const auto merge = kernel_set<T>().phase_merge_s2;
    for (int64_t ph_y = 0; ph_y < p.stride_h; ++ph_y) {
        // Rows ih = r*stride_h + ph_y - pad_top: the first at or after row 0, and how many.
        const auto [pe, po] = pairs[static_cast<size_t>(ph_y)];
        int64_t ih0 = (ph_y - p.pad_top) % p.stride_h;
        if (ih0 < 0) ih0 += p.stride_h;
        int64_t r0, r1;
        phase_rows(p, d, ph_y, &r0, &r1);
        const int64_t rows = pe < 0 && po < 0 ? 0 : std::max<int64_t>(0, r1 - r0);
        if (rows > 0)
            merge(pe < 0 ? nullptr : out + pe * len + r0 * d.Wq,
                  po < 0 ? nullptr : out + po * len + r0 * d.Wq, d.Wq, d.Wq, rows, p.pad_left, p.W,
                  dxc + (r0 * p.stride_h + ph_y - p.pad_top) * p.W, p.stride_h * p.W);
        // The row phase's other rows (none reached): zero.
        for (int64_t ih = ih0; ih < p.H; ih += p.stride_h) {
            const int64_t r = (ih + p.pad_top - ph_y) / p.stride_h;
            if (rows == 0 || r < r0 || r >= r1)
                std::fill(dxc + ih * p.W, dxc + (ih + 1) * p.W, T(0));
        }
    }
}

// c[m][i] = sum_q a[q][m] * rows[q][i] for the M rows of `a_blocks` (ceil(M/MR) panels of
// P x MR) and positions [0, L); taps in passes of kPBlock. Threads split the position tiles.
template <typename T>
void shifted_gemm_all(const KernelSet<T>& ks, const DirectTiles& tl, int64_t M, int64_t P,
                      const T* a_blocks, const T* const* rows, int64_t L, T* c, int64_t ldc,
                      int nthreads) {
    const int64_t mblocks = (M + tl.mr - 1) / tl.mr, tiles = L / tl.cols;
    auto run = [&](int64_t t0, int64_t t1) {
        for (int64_t q0 = 0; q0 < P; q0 += kPBlock) {
            const int64_t pq = std::min<int64_t>(kPBlock, P - q0);
            for (int64_t t = t0; t < t1; ++t)
                for (int64_t mb = 0; mb < mblocks; ++mb)
                    ks.shifted_gemm(pq, a_blocks + (mb * P + q0) * tl.mr, rows + q0, t * tl.cols,
                                    tl.cols, static_cast<int>(std::min<int64_t>(tl.mr, M - mb * tl.mr)),
                                    c + mb * tl.mr * ldc, ldc, q0 > 0);
        }
    };
    parallel_ranges(tiles, nthreads, run);
}

// Positions per horizontal-sum block of backward_weight: tiles sweep every x stream of the
// group for one KB block of dy streams, so those C/g*phases + KB streams of a block should
// fit in half of L2; a block ends in one horizontal sum per accumulator, so >= 256.
int64_t corr_block(const Conv2dParams& p, const DirectPlan& d, int64_t kb, int64_t elem_size) {
    return std::max<int64_t>(
        256, (512 * 1024 / elem_size) / (p.c_per_group() * d.nph + kb) / kRound * kRound);
}

}  // namespace

// The forward by output rows with the output channels in the lanes (direct_oc): ungrouped,
// <= 16 input and <= 32 output channels, whole tiles of them. Zen 3, against im2col, 1 / 2
// threads: LeNet-5's conv2 (6 -> 16, 5x5, 10x10 outputs) 1.27x at batch 64 (1 thread),
// 1.13x at 1; 5 -> 32 3x3 on 32x32 b64 1.24x / 1.28x; 16 -> 32 on 16x16 b64 1.20x / 1.20x;
// 6 -> 16..32 on 10x10 and 28x28 outputs 1.2-1.65x, 16 -> 16..32 1.14-1.44x (1 thread).
// With 64 output channels the GEMM ties or wins (8 -> 64 on 13x13: 1.02-1.04x at 1
// thread, 0.89x at 2), and with 32 or 64 input channels too (64 -> 64 on 4x4 outputs
// 0.82x, 32 -> 32 on 5x5 0.94x): its packing is then cheap per multiply.
bool direct_oc_applies(const Conv2dParams& p) {
    const int kv = kernel_set<float>().direct_tiles().oc_kv;  // 0: not offered (AVX-512)
    return kv > 0 && p.groups == 1 && p.C <= 16 && p.K <= 32 && p.K % kv == 0;
}

// Which of the two tiles direct_rows_forward takes: the columns in the lanes (direct_row)
// for first layers (<= 4 input channels) whose rows fill a row tile, else the channels.
bool direct_oc_preferred(const Conv2dParams& p) {
    const int64_t cols = kernel_set<float>().direct_tiles().row_cols;
    return direct_oc_applies(p) && (p.c_per_group() > 4 || p.OW < cols);
}

// The forward by output rows: ungrouped (any stride), with the channels in the lanes or
// rows wide enough to fill half of a float32 tile's columns (the columns in the lanes:
// LeNet-5's conv2, 10 columns of 32, ran at 0.6x of the shifted planes). float64 uses the
// same test, so both dtypes take the same path for a shape.
bool direct_rows_forward_applies(const Conv2dParams& p) {
    const int64_t cols = kernel_set<float>().direct_tiles().row_cols;
    return p.groups == 1 && (2 * p.OW >= cols || direct_oc_applies(p));
}

bool direct_preferred(const Conv2dParams& p, ConvDirection dir) {
    if (p.N == 0 || p.OH == 0 || p.OW == 0) return false;
    switch (dir) {
        case ConvDirection::backward_weight: {
            // Since the GEMM path packs col^T straight from the input (register transposes,
            // no im2col matrix), it beats direct on every bench shape with more than 4 input
            // channels per group (Zen 4, 1 thread, alternated: 1.3-1.7x on CifarNet conv2,
            // ResNet-18 28x28x128, VGG; even on 56x56x64) and scales better at 2 threads.
            // Direct still wins on first layers with 5x5/7x7 kernels (LeNet-5 conv1, the
            // tutorial's conv1, the 7x7/2 stem: 0.6-0.7x of im2col's time), where the GEMM's
            // N = C*KH*KW is a panel or two and stride 2 leaves the packing scalar; on 3x3
            // first layers the two tie at 1 thread and im2col scales better.
            if (p.c_per_group() > 4 || p.KH * p.KW < 25) return false;
            const DirectPlan d = make_plan(p);  // only this direction needs the plan
            return std::min(corr_block(p, d, 4, sizeof(float)), d.nb * d.S) >= 512;
        }
        case ConvDirection::forward:
            // By output rows (direct_row): first layers, <= 4 input channels, where the
            // GEMM's K = C*KH*KW is 25-75 and its packing costs as much as the multiplies.
            // Zen 4, 1 thread, vs im2col: LeNet-5 conv1 1.9x (b1 and b64), the tutorial's
            // conv1 1.9x, CifarNet conv1 1.4x (b1) / 1.7x (b64), Keras conv1 1.2x. With more
            // channels the GEMM wins or ties (ResNet-18 56x56x64 0.95x, 14x14x256 0.48x).
            // Strided first layers too (Zen 3, 1 and 2 threads: the 7x7/2 stem 1.09-1.16x,
            // 3x3/2 on 224x224 1.36-1.49x, 11x11/4 1.09x, 5x5/2 on 28-32 maps 1.4-1.8x).
            return (p.c_per_group() <= 4 && direct_rows_forward_applies(p)) || direct_oc_applies(p);
        default:
            // shifted_gemm reaches 0.6-1.2x of the packed GEMM (unaligned, scattered B
            // rows): not chosen automatically. (backward_data on <= 7x7 maps with >= 256
            // channels used it until the GEMM path packed W^T once per call and row-major
            // within panels; since then im2col is 1.2-1.7x faster on every bench shape.)
            return false;
    }
}

// ---- forward by output rows ------------------------------------------------------------
// Each image's channels are copied zero-padded, each padded row split into its s = stride_w
// column phases: X[c][r][ph][j] = x[c][r - pad_top][j*s + ph - pad_left] (0 outside x), for
// r < Hp = (OH-1)*stride_h + (KH-1)*dil_h + 1 and j < Wr = round_up(OW, row_cols) +
// (KW-1)*dil_w / s. Tap (c, kh, kw) of output (oh, ow) then reads
//   X[c][oh*stride_h + kh*dil_h][(kw*dil_w) % s][ow + (kw*dil_w) / s],
// a fixed offset from the tile's base (oh, ow0): every tap is one contiguous stream, at any
// stride. The tile is output row oh x columns [ow0, ow0 + row_cols) x channels [k0, k0 +
// row_kb), the columns in the lanes (direct_row), or, by direct_oc_preferred, columns
// [ow0, ow0 + oc_mj) x channels [k0, k0 + oc_kv), the channels in the lanes (direct_oc:
// narrow rows lose no lanes, and each tap's weights are one vector load). Neither computes
// a position past OH x OW (the shifted planes compute Hq x Wq per image, 51 % of it useful
// on LeNet-5's conv2, 77 % on its conv1); the bias starts the accumulators and the tile is
// stored straight into y (direct_oc transposes it in registers). With q, each image's
// output goes to a per-thread buffer (in L2: CifarNet conv1's is 128 KB) and is max pooled
// from there into pooled / indices (then, with relu, the ReLU of its pooled planes while in
// cache); y is not written.
template <typename T>
void direct_rows_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                         const Pool2dParams* q = nullptr, T* pooled = nullptr,
                         int64_t* indices = nullptr, bool relu = false) {
    const KernelSet<T>& ks = kernel_set<T>();
    const DirectTiles tl = ks.direct_tiles();
    const int64_t CKK = p.col_rows(), HW = p.H * p.W, OHW = p.OH * p.OW, s = p.stride_w;
    const int64_t Hp = (p.OH - 1) * p.stride_h + (p.KH - 1) * p.dil_h + 1;
    const int64_t Wr = round_up(p.OW, tl.row_cols) + (p.KW - 1) * p.dil_w / s;
    const int64_t rstride = s * Wr, plane = Hp * rstride;
    // packA once per call: per block of kb channels (row_kb, the last block smaller; or
    // oc_kv, which divides K), wp[(c*KH + kh)*KW + kw][k - k0]. offs[t] is the tap's
    // offset from the tile's base.
    const bool by_oc = direct_oc_preferred(p);
    const int64_t kbm = by_oc ? tl.oc_kv : tl.row_kb;
    T* wp = thread_scratch<T, kPackTag>(static_cast<size_t>(p.K * CKK));
    for (int64_t k = 0; k < p.K; ++k) {
        const int64_t k0 = k / kbm * kbm, kb = std::min<int64_t>(kbm, p.K - k0);
        for (int64_t t = 0; t < CKK; ++t) wp[k0 * CKK + t * kb + (k - k0)] = w[k * CKK + t];
    }
    std::vector<int64_t> offs(static_cast<size_t>(CKK));
    for (int64_t c = 0; c < p.C; ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw)
                offs[static_cast<size_t>((c * p.KH + kh) * p.KW + kw)] =
                    c * plane + kh * p.dil_h * rstride + (kw * p.dil_w % s) * Wr + kw * p.dil_w / s;
    // By channels: each output row's positions in pieces of <= oc_mj, as even as they go
    // (10 columns as 5 + 5).
    std::vector<int64_t> pieces;
    if (by_oc)
        for (int64_t i = 0, np = (p.OW + tl.oc_mj - 1) / tl.oc_mj; i <= np; ++i)
            pieces.push_back(i * p.OW / np);
    auto out_rows_oc = [&](const T* xr, T* yn, int64_t oh0, int64_t oh1) {
        for (int64_t oh = oh0; oh < oh1; ++oh)
            for (size_t i = 0; i + 1 < pieces.size(); ++i) {
                const int64_t ow0 = pieces[i], nj = pieces[i + 1] - ow0;
                const T* base = xr + oh * p.stride_h * rstride + ow0;
                for (int64_t k0 = 0; k0 < p.K; k0 += kbm)
                    ks.direct_oc(CKK, base, offs.data(), wp + k0 * CKK, bias ? bias + k0 : nullptr,
                                 static_cast<int>(nj), yn + k0 * OHW + oh * p.OW + ow0, OHW);
            }
    };
    auto out_rows = [&](const T* xr, T* yn, int64_t oh0, int64_t oh1) {
        if (by_oc) return out_rows_oc(xr, yn, oh0, oh1);
        for (int64_t oh = oh0; oh < oh1; ++oh)
            for (int64_t ow0 = 0; ow0 < p.OW; ow0 += tl.row_cols) {
                const T* base = xr + oh * p.stride_h * rstride + ow0;
                const int64_t n = std::min<int64_t>(tl.row_cols, p.OW - ow0);
                for (int64_t k0 = 0; k0 < p.K; k0 += tl.row_kb)
                    ks.direct_row(CKK, base, offs.data(), wp + k0 * CKK,
                                  static_cast<int>(std::min<int64_t>(tl.row_kb, p.K - k0)),
                                  bias ? bias + k0 : nullptr, n, yn + k0 * OHW + oh * p.OW + ow0,
                                  OHW);
            }
    };
    // Rows [r0, r1) of the padded copy hold input rows (the rest are zero).
    int64_t r0, r1;
    valid_output_range(Hp, 1, -p.pad_top, p.H, &r0, &r1);
    for_each_task(p.N, [&](int64_t n, int tile_threads) {
        T* xr = thread_scratch<T, kXqTag>(static_cast<size_t>(p.C * plane));
        for (int64_t c = 0; c < p.C; ++c) {
            T* xc = xr + c * plane;
            const T* src = x + (n * p.C + c) * HW + (r0 - p.pad_top) * p.W;
            std::fill(xc, xc + r0 * rstride, T(0));
            std::fill(xc + r1 * rstride, xc + plane, T(0));
            if (s == 2) {
                ks.phase_split_s2(src, p.W, p.W, p.pad_left, r1 - r0, Wr, xc + r0 * rstride,
                                  xc + r0 * rstride + Wr, rstride);
                continue;
            }
            for (int64_t r = r0; r < r1; ++r, src += p.W)
                for (int64_t ph = 0; ph < s; ++ph) {  // as fill_x_channel's phases
                    T* dst = xc + r * rstride + ph * Wr;
                    const T* sp = src + ph - p.pad_left;
                    int64_t lo, hi;
                    valid_output_range(Wr, s, ph - p.pad_left, p.W, &lo, &hi);
                    zero_row(dst, lo);
                    if (s == 1)
                        copy_row(dst + lo, sp + lo, hi - lo);
                    else
                        for (int64_t q = lo; q < hi; ++q) dst[q] = sp[q * s];
                    zero_row(dst + hi, Wr - hi);
                }
        }
        T* yn = q ? thread_scratch<T, kYnTag>(static_cast<size_t>(p.K * OHW)) : y + n * p.K * OHW;
        parallel_ranges(p.OH, tile_threads,
                        [&](int64_t a, int64_t b) { out_rows(xr, yn, a, b); });
        if (q) {
            const int64_t len = p.K * q->OH * q->OW, at = n * len;
            ks.max_pool2d_forward_planes(*q, p.K, yn, pooled + at,
                                         indices ? indices + at : nullptr);
            if (relu) ks.relu_forward(len, pooled + at, pooled + at);
        }
    });
}

template <typename T>
void direct_rows_forward_pooled(const Conv2dParams& p, const Pool2dParams& q, const T* x,
                                const T* w, const T* bias, T* pooled, int64_t* indices, bool relu) {
    assert(direct_rows_forward_applies(p) && q.H == p.OH && q.W == p.OW);
    direct_rows_forward<T>(p, x, w, bias, nullptr, &q, pooled, indices, relu);
}

template <typename T>
void direct_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
    const KernelSet<T>& ks = kernel_set<T>();
    if (direct_rows_forward_applies(p)) return direct_rows_forward(p, x, w, bias, y);
    const DirectTiles tl = ks.direct_tiles();
    const DirectPlan d = make_plan(p);
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group(), KK = p.KH * p.KW;
    const int64_t CKK = p.col_rows(), mpad = round_up(Kg, tl.mr);
    // packA once per call: per group, ceil(Kg/MR) panels of CKK x MR.
    T* pa = thread_scratch<T, kPackTag>(static_cast<size_t>(G * mpad * CKK));
    for (int64_t g = 0; g < G; ++g)
        for (int64_t k = 0; k < mpad; ++k) {
            T* panel = pa + (g * mpad + k / tl.mr * tl.mr) * CKK + k % tl.mr;
            const T* wk = w + (g * Kg + k) * CKK;
            for (int64_t q = 0; q < CKK; ++q) panel[q * tl.mr] = k < Kg ? wk[q] : T(0);
        }
    const int64_t OHW = p.OH * p.OW;
    for_each_task(d.nchunks(p.N), [&](int64_t chunk, int tile_threads) {
        const int64_t n0 = chunk * d.nb, nb = std::min(d.nb, p.N - n0);
        T* xq = thread_scratch<T, kXqTag>(static_cast<size_t>(p.C * d.nph * d.xs));
        T* yq = thread_scratch<T, kDqTag>(static_cast<size_t>(p.K * d.L));
        const T** rows = thread_scratch<const T*, kRowsTag>(static_cast<size_t>(CKK));
        fill_x(p, d, x, n0, nb, 0, p.C, xq);
        for (int64_t g = 0; g < G; ++g) {
            for (int64_t c = 0; c < Cg; ++c)
                for (int64_t t = 0; t < KK; ++t)
                    rows[c * KK + t] = tap_row(d, xq + (g * Cg + c) * d.nph * d.xs, t);
            shifted_gemm_all(ks, tl, Kg, CKK, pa + g * mpad * CKK, rows, d.L, yq + g * Kg * d.L,
                             d.L, tile_threads);
        }
        for (int64_t n = 0; n < nb; ++n)
            for (int64_t k = 0; k < p.K; ++k)
                store_output(p, d, yq + k * d.L + n * d.S, bias ? bias[k] : T(0),
                             y + ((n0 + n) * p.K + k) * OHW);
    });
}

template <typename T>
void direct_backward_data(const Conv2dParams& p, T* dx, const T* dy, const T* w) {
    const KernelSet<T>& ks = kernel_set<T>();
    const DirectTiles tl = ks.direct_tiles();
    const DirectPlan d = make_plan(p);
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group(), KK = p.KH * p.KW;
    const int64_t CKK = p.col_rows(), mpad = round_up(Cg, tl.mr), HW = p.H * p.W;
    // packA per (phase, group): panels of P_ph x MR, P_ph = Kg * taps,
    // a[(k, j)][c] = w[k][c][taps_ph[j]].
    const auto& taps = d.phase_taps;
    std::vector<int64_t> pa_off(d.nph + 1, 0);
    for (int64_t ph = 0; ph < d.nph; ++ph)
        pa_off[ph + 1] = pa_off[ph] + G * mpad * Kg * static_cast<int64_t>(taps[ph].size());
    T* pa = thread_scratch<T, kPackTag>(static_cast<size_t>(pa_off[d.nph]));
    for (int64_t ph = 0; ph < d.nph; ++ph) {
        const int64_t nt = static_cast<int64_t>(taps[ph].size()), P = Kg * nt;
        for (int64_t g = 0; g < G; ++g)
            for (int64_t c = 0; c < mpad; ++c) {
                T* panel = pa + pa_off[ph] + (g * mpad + c / tl.mr * tl.mr) * P + c % tl.mr;
                for (int64_t k = 0; k < Kg; ++k)
                    for (int64_t j = 0; j < nt; ++j)
                        panel[(k * nt + j) * tl.mr] =
                            c < Cg ? w[(g * Kg + k) * CKK + c * KK + taps[ph][j]] : T(0);
            }
    }
    for_each_task(d.nchunks(p.N), [&](int64_t chunk, int tile_threads) {
        const int64_t n0 = chunk * d.nb, nb = std::min(d.nb, p.N - n0);
        T* dq = thread_scratch<T, kDqTag>(static_cast<size_t>(p.K * d.ds));
        T* dxq = thread_scratch<T, kXqTag>(static_cast<size_t>(p.C * d.L));
        const T** rows = thread_scratch<const T*, kRowsTag>(static_cast<size_t>(Kg * KK));
        fill_dy(p, d, dy, n0, nb, 0, p.K, dq);
        std::fill(dx + n0 * p.C * HW, dx + (n0 + nb) * p.C * HW, T(0));
        for (int64_t ph = 0; ph < d.nph; ++ph) {
            const int64_t nt = static_cast<int64_t>(taps[ph].size()), P = Kg * nt;
            for (int64_t g = 0; g < G; ++g) {
                for (int64_t k = 0; k < Kg; ++k)
                    for (int64_t j = 0; j < nt; ++j)
                        rows[k * nt + j] = dq + (g * Kg + k) * d.ds + d.front - d.tap_off[taps[ph][j]];
                shifted_gemm_all(ks, tl, Cg, P, pa + pa_off[ph] + g * mpad * P, rows, d.L,
                                 dxq + g * Cg * d.L, d.L, tile_threads);
            }
            for (int64_t n = 0; n < nb; ++n)
                for (int64_t c = 0; c < p.C; ++c)
                    scatter_phase(p, d, ph, dxq + c * d.L + n * d.S,
                                  dx + ((n0 + n) * p.C + c) * HW);
        }
    });
}

template <typename T>
void direct_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x) {
    const KernelSet<T>& ks = kernel_set<T>();
    const DirectTiles tl = ks.direct_tiles();
    const DirectPlan d = make_plan(p);
    const int64_t G = p.groups, Cg = p.c_per_group(), Kg = p.k_per_group(), KK = p.KH * p.KW;
    const int64_t CKK = p.col_rows();
    std::fill(dw, dw + p.K * CKK, T(0));
    if (p.N == 0) return;
    // Tiles: (group, block of KB output channels, block of TB taps of the flat (c, t) list).
    // The tile shape that pads the (Kg x CKK) sums least: 4 x 6, or 6 x 4 where Kg is 6
    // (LeNet-5 conv1, 1 -> 6, batch 64: 0.36 -> 0.35 ms, best of 5 0.35 -> 0.32; the
    // tutorial's conv1, 3 -> 6: 0.85 -> 0.71 ms).
    auto padded = [&](int64_t kb, int64_t tb) {
        return (Kg + kb - 1) / kb * kb * ((CKK + tb - 1) / tb * tb);
    };
    const bool alt = padded(tl.kb2, tl.tb2) < padded(tl.kb, tl.tb);
    const int64_t KB = alt ? tl.kb2 : tl.kb, TB = alt ? tl.tb2 : tl.tb;
    const int64_t kblocks = (Kg + KB - 1) / KB, tblocks = (CKK + TB - 1) / TB;
    const int64_t ntiles = G * kblocks * tblocks;
    const int64_t iblk = corr_block(p, d, KB, sizeof(T));
    T* xq = thread_scratch<T, kXqTag>(static_cast<size_t>(p.C * d.nph * d.xs));
    T* dq = thread_scratch<T, kDqTag>(static_cast<size_t>(p.K * d.ds));
    const T** rows = thread_scratch<const T*, kRowsTag>(static_cast<size_t>(CKK * G));
    for (int64_t g = 0; g < G; ++g)
        for (int64_t c = 0; c < Cg; ++c)
            for (int64_t t = 0; t < KK; ++t)
                rows[(g * Cg + c) * KK + t] = tap_row(d, xq + (g * Cg + c) * d.nph * d.xs, t);
    const int nt = threads_for(ntiles);
    for (int64_t n0 = 0; n0 < p.N; n0 += d.nb) {
        const int64_t nb = std::min(d.nb, p.N - n0);
#pragma omp parallel num_threads(team_for(nt))
        {
            const int team = team_size(), tid = thread_id();
            int64_t a, b;
            split_range(p.C, team, tid, &a, &b);
            fill_x(p, d, x, n0, nb, a, b, xq);
            split_range(p.K, team, tid, &a, &b);
            fill_dy(p, d, dy, n0, nb, a, b, dq);
#pragma omp barrier
            const int64_t len = round_up(nb * d.S, tl.vec);
            for (int64_t i0 = 0; i0 < len; i0 += iblk) {
                const int64_t n = std::min(iblk, len - i0);
                // Each tile is summed whole by one thread; the loop's barrier orders blocks.
#pragma omp for schedule(dynamic)
                for (int64_t tile = 0; tile < ntiles; ++tile) {
                    const int64_t g = tile / (kblocks * tblocks);
                    const int64_t kb = tile / tblocks % kblocks, tb = tile % tblocks;
                    const int64_t k0 = kb * KB, q0 = tb * TB;
                    const T* r[16];
                    const int ntap = static_cast<int>(std::min<int64_t>(TB, CKK - q0));
                    for (int t = 0; t < ntap; ++t) r[t] = rows[g * CKK + q0 + t] + i0;
                    ks.shifted_corr(n, dq + (g * Kg + k0) * d.ds + d.front + i0, d.ds,
                                    static_cast<int>(std::min<int64_t>(KB, Kg - k0)), r, ntap,
                                    dw + (g * Kg + k0) * CKK + q0, CKK);
                }
            }
        }
    }
}

// ---- depthwise (groups == C; output channel k reads input channel k / (K/C)) ----------------
// One (image, input channel) plane at a time: its phase planes stay in L1/L2 while the
// K/C output planes that read it are computed by shifted_taps, one vector stream per tap.
// At stride 1, where the ISA has them, KernelSet::depthwise_plane / depthwise_corr_plane
// read the planes in place instead (no padded copies).

// Whether the in-place plane kernels take this layer (stride 1; their tap limits).
template <typename T>
bool depthwise_in_place(const Conv2dParams& p, ConvDirection dir) {
    const KernelSet<T>& ks = kernel_set<T>();
    if (p.stride_h != 1 || p.stride_w != 1) return false;
    // depthwise_corr_plane: 3x3, and 5x5 where its 25 accumulators fit the registers
    // (AVX-512; on AVX2 they spill, 1.3x slower than the phase planes).
    if (dir == ConvDirection::backward_weight)
        return ks.depthwise_corr_plane != nullptr &&
               ((p.KH == 3 && p.KW == 3) ||
                (p.KH == 5 && p.KW == 5 && kernels().isa == Isa::avx512)) &&
               p.OW <= 32 * (64 / static_cast<int64_t>(sizeof(T)));
    return ks.depthwise_plane != nullptr && p.KW <= 16;
}

// Whether KernelSet::depthwise3x3_s2_plane, _corr_plane and _transposed_plane take this
// layer (3x3, stride 2, dilation 1): read in place, as at stride 1.
template <typename T>
bool depthwise_s2_in_place(const Conv2dParams& p) {
    return kernel_set<T>().depthwise3x3_s2_plane != nullptr && p.KH == 3 && p.KW == 3 &&
           p.stride_h == 2 && p.stride_w == 2 && p.dil_h == 1 && p.dil_w == 1;
}

template <typename T>
void direct_depthwise_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias,
                              T* y) {
    const KernelSet<T>& ks = kernel_set<T>();
    const int64_t mult = p.K / p.C, KK = p.KH * p.KW, HW = p.H * p.W, OHW = p.OH * p.OW;
    const bool s2 = depthwise_s2_in_place<T>(p);
    if (s2 || depthwise_in_place<T>(p, ConvDirection::forward)) {
        parallel_ranges(p.N * p.K, threads_for(p.N * p.K), [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t n = t / p.K, k = t % p.K;
                const T* xc = x + (n * p.C + k / mult) * HW;
                const T b = bias ? bias[k] : T(0);
                if (s2)
                    ks.depthwise3x3_s2_plane(xc, p.H, p.W, w + k * KK, -p.pad_top, -p.pad_left,
                                             p.OH, p.OW, y + t * OHW, b);
                else
                    ks.depthwise_plane(xc, p.H, p.W, w + k * KK, p.KH, p.KW, -p.pad_top, p.dil_h,
                                       -p.pad_left, p.dil_w, p.OH, p.OW, y + t * OHW, false, b);
            }
        });
        return;
    }
    const DirectPlan d = make_plan(p, true);
    const int64_t len = round_up(p.OH * d.Wq, kRound), planes = p.N * p.C;
    const int nt = threads_for(planes);
    RegionErrors errors;
#pragma omp parallel for schedule(dynamic, dynamic_chunk(planes, nt)) num_threads(team_for(nt))
    for (int64_t t = 0; t < planes; ++t)
        errors.run([&] {
            const int64_t n = t / p.C, c = t % p.C;
            T* xq = thread_scratch<T, kXqTag>(static_cast<size_t>(d.nph * d.xs + len));
            T* out = xq + d.nph * d.xs;
            const T** rows = thread_scratch<const T*, kRowsTag>(static_cast<size_t>(KK));
            fill_x_channel(p, d, x + t * HW, 1, 0, xq);
            for (int64_t i = 0; i < KK; ++i)
                rows[i] = tap_row(d, xq, i);
            for (int64_t m = 0; m < mult; ++m) {
                const int64_t k = c * mult + m;
                ks.shifted_taps(len, w + k * KK, KK, rows, out);
                store_output(p, d, out, bias ? bias[k] : T(0), y + (n * p.K + k) * OHW);
            }
        });
    errors.rethrow();
}

template <typename T>
void direct_depthwise_backward_data(const Conv2dParams& p, T* dx, const T* dy, const T* w) {
    const KernelSet<T>& ks = kernel_set<T>();
    const int64_t mult = p.K / p.C, KK = p.KH * p.KW, HW = p.H * p.W, OHW = p.OH * p.OW;
    const bool s2 = depthwise_s2_in_place<T>(p);
    if (s2 || depthwise_in_place<T>(p, ConvDirection::backward_data)) {
        // dx[ih][iw] = sum over m, kh, kw of w[k][kh][kw] * dy[k][ih + pad_top - kh*dil_h]
        // [iw + pad_left - kw*dil_w], k = c*mult + m: at stride 1 the plane kernel with
        // negative steps, at stride 2 the transposed one; each adds to dx for m > 0.
        parallel_ranges(p.N * p.C, threads_for(p.N * p.C), [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t n = t / p.C, c = t % p.C;
                for (int64_t m = 0; m < mult; ++m) {
                    const int64_t k = c * mult + m;
                    const T* dyk = dy + (n * p.K + k) * OHW;
                    if (s2)
                        ks.depthwise3x3_s2_transposed_plane(dyk, p.OH, p.OW, w + k * KK, p.pad_top,
                                                            p.pad_left, p.H, p.W, dx + t * HW,
                                                            m > 0);
                    else
                        ks.depthwise_plane(dyk, p.OH, p.OW, w + k * KK, p.KH, p.KW, p.pad_top,
                                           -p.dil_h, p.pad_left, -p.dil_w, p.H, p.W, dx + t * HW,
                                           m > 0, T(0));
                }
            }
        });
        return;
    }
    const DirectPlan d = make_plan(p, true);
    const int64_t len = round_up(d.S, kRound), planes = p.N * p.C;
    // Stride 2 along W: every phase's plane is kept, then each dx row is written once from
    // its two column phases (KernelSet::phase_merge_s2), not zeroed and scattered into.
    const bool merge = p.stride_w == 2;
    const auto pairs = merge ? phase_pairs(p, d) : std::vector<std::array<int64_t, 2>>{};
    const int nt = threads_for(planes);
    RegionErrors errors;
#pragma omp parallel for schedule(dynamic, dynamic_chunk(planes, nt)) num_threads(team_for(nt))
    for (int64_t t = 0; t < planes; ++t)
        errors.run([&] {
            const int64_t n = t / p.C, c = t % p.C;
            T* dq = thread_scratch<T, kDqTag>(
                static_cast<size_t>(mult * d.ds + (merge ? d.nph : 1) * len + KK * mult));
            T* out = dq + mult * d.ds;                // merge: every phase's plane, len apart
            T* wt = out + (merge ? d.nph : 1) * len;  // a phase's tap weights, in rows order
            const T** rows = thread_scratch<const T*, kRowsTag>(static_cast<size_t>(KK * mult));
            for (int64_t m = 0; m < mult; ++m)
                fill_dy_channel(p, d, dy + (n * p.K + c * mult + m) * OHW, 1, 0, dq + m * d.ds);
            T* dxc = dx + t * HW;
            if (!merge) std::fill(dxc, dxc + HW, T(0));
            for (int64_t ph = 0; ph < d.nph; ++ph) {
                int64_t q = 0;
                for (int64_t m = 0; m < mult; ++m)
                    for (int64_t tap : d.phase_taps[ph]) {
                        rows[q] = dq + m * d.ds + d.front - d.tap_off[tap];
                        wt[q++] = w[(c * mult + m) * KK + tap];
                    }
                T* o = merge ? out + ph * len : out;
                ks.shifted_taps(len, wt, q, rows, o);
                if (!merge) scatter_phase(p, d, ph, o, dxc);
            }
            if (merge) merge_phases(p, d, pairs, out, len, dxc);
        });
    errors.rethrow();
}

// Per output channel, images in order: each dw entry is summed by one thread in a fixed
// order (bitwise identical for any thread count).
template <typename T>
void direct_depthwise_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x,
                                      T* db) {
    const KernelSet<T>& ks = kernel_set<T>();
    const DirectTiles tl = ks.direct_tiles();
    const int64_t mult = p.K / p.C, KK = p.KH * p.KW, HW = p.H * p.W, OHW = p.OH * p.OW;
    const bool s2 = depthwise_s2_in_place<T>(p);
    if (s2 || depthwise_in_place<T>(p, ConvDirection::backward_weight)) {
        // Per output channel, images in order (bitwise identical for any thread count);
        // db adds each dy plane right after its kernel read it, in conv2d_backward_bias's
        // order (MobileNet's depthwise weight + bias gradients: 1.03-1.06x over two calls).
        parallel_ranges(p.K, threads_for(p.K), [&](int64_t k0, int64_t k1) {
            for (int64_t k = k0; k < k1; ++k) {
                T* dwk = dw + k * KK;
                std::fill(dwk, dwk + KK, T(0));
                double bias_acc = 0;
                for (int64_t n = 0; n < p.N; ++n) {
                    const T* xc = x + (n * p.C + k / mult) * HW;
                    const T* dyk = dy + (n * p.K + k) * OHW;
                    if (s2)
                        ks.depthwise3x3_s2_corr_plane(xc, p.H, p.W, dyk, p.OH, p.OW, -p.pad_top,
                                                      -p.pad_left, dwk);
                    else
                        ks.depthwise_corr_plane(xc, p.H, p.W, dyk, p.OH, p.OW, p.KH, p.KW,
                                                -p.pad_top, p.dil_h, -p.pad_left, p.dil_w, dwk);
                    if (db) add_plane_sum(dyk, OHW, bias_acc);
                }
                if (db) db[k] = T(bias_acc);
            }
        });
        return;
    }
    if (db) conv2d_backward_bias(p, db, dy);
    const DirectPlan d = make_plan(p, true);
    const int64_t len = round_up(p.OH * d.Wq, tl.vec);
    const int nt = threads_for(p.K);
    RegionErrors errors;
#pragma omp parallel for schedule(dynamic) num_threads(team_for(nt))
    for (int64_t k = 0; k < p.K; ++k)
        errors.run([&] {
            const int64_t c = k / mult;
            T* xq = thread_scratch<T, kXqTag>(static_cast<size_t>(d.nph * d.xs));
            T* dq = thread_scratch<T, kDqTag>(static_cast<size_t>(d.ds));
            const T** rows = thread_scratch<const T*, kRowsTag>(static_cast<size_t>(KK));
            for (int64_t i = 0; i < KK; ++i)
                rows[i] = tap_row(d, xq, i);
            T* dwk = dw + k * KK;
            std::fill(dwk, dwk + KK, T(0));
            for (int64_t n = 0; n < p.N; ++n) {
                fill_x_channel(p, d, x + (n * p.C + c) * HW, 1, 0, xq);
                fill_dy_channel(p, d, dy + (n * p.K + k) * OHW, 1, 0, dq);
                for (int64_t t0 = 0; t0 < KK; t0 += tl.tb)
                    ks.shifted_corr(len, dq + d.front, d.ds, 1, rows + t0,
                                    static_cast<int>(std::min<int64_t>(tl.tb, KK - t0)), dwk + t0,
                                    KK);
            }
        });
    errors.rethrow();
}

#define FASTCONV_INSTANTIATE(T)                                                                    \
    template void direct_depthwise_forward<T>(const Conv2dParams&, const T*, const T*, const T*,   \
                                              T*);                                                 \
    template void direct_depthwise_backward_data<T>(const Conv2dParams&, T*, const T*, const T*);  \
    template void direct_depthwise_backward_weight<T>(const Conv2dParams&, T*, const T*, const T*, \
                                                      T*);                                         \
    template void direct_forward<T>(const Conv2dParams&, const T*, const T*, const T*, T*);        \
    template void direct_rows_forward_pooled<T>(const Conv2dParams&, const Pool2dParams&,          \
                                                const T*, const T*, const T*, T*, int64_t*, bool); \
    template void direct_backward_data<T>(const Conv2dParams&, T*, const T*, const T*);            \
    template void direct_backward_weight<T>(const Conv2dParams&, T*, const T*, const T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv
