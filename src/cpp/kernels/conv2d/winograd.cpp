// Winograd F(2x2, 3x3) convolution for 3x3 / stride 1 layers (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", CVPR 2016, arXiv:1509.09308); dilated
// ones run on their dilation phases as images (dilation_phases_apply).
//
// Each 2x2 block of outputs ("tile") of one image and output channel is
//     Y = A^T [ sum_c (G g_kc G^T) .* (B^T d_c B) ] A
// with d_c the 4x4 input patch under the tile and g_kc the 3x3 kernel. The elementwise
// product over the 16 positions xi of the 4x4 transformed tile is 16 independent GEMMs,
//     M_xi (Kg x tiles) = U_xi (Kg x Cg) * V_xi (Cg x tiles),
// 16 * Kg * Cg multiplies per tile instead of 36 * Kg * Cg: 2.25x fewer. Matrices:
//     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//     A^T = [1 1 1 0; 0 1 -1 -1]
// Entries are 0, +-1 and +-1/2, so the transforms add at most a few roundings beyond the
// direct sum (docs/performance.md gives the measured error against float64).
//
// F(4x4, 3x3) (winograd_forward with tile 4, winograd4_preferred): 4x4 output tiles from 6x6
// patches, 36 GEMMs instead of 16, 36 multiplies per tile and channel pair instead of 144
// (4x fewer); the same layout and blocking with 36 planes xi (in float, rows of tiles padded
// to a multiple of 4 tiles: winograd4_row_tiles), the transforms in winograd_impl.h
// (winograd4_*). Its larger transform entries (up to 8, and 1/24) grow the
// float32 error 5-20x F(2x2)'s, within the parity tests' bound on the layers the automatic
// choice gives it (docs/performance.md). The weight gradient stays F(2x2).
//
// Layout and blocking. Tiles of the whole batch are numbered n-major, then tile row, then
// tile column, and taken in blocks of whole NR panels (the GEMM micro-kernel's width):
// - V of a block is written by the input transform straight into packed-B panels,
//   [xi][group][panel][c][NR], sized to stay in L2 across the output-channel loop;
// - U is packed once per call as packed-A panels, [group][xi][MR block][c][MR];
// - per MR block of output channels the 16 GEMMs write M_xi into a [xi][MR][block] tile
//   (16 x MR x the block's tiles: 64 KiB for CifarNet conv2, in L2), and the output
//   transform (plus bias) writes y from it.
// Threads take whole blocks; every output is written by one thread, in a fixed order of
// operations, so results do not depend on the thread count. The weight gradient
// (winograd_backward_weight, below) runs the same tiles' V against dY's transform.
#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/parallel.h"
#include "fastconv/kernel_table.h"
#include "fastconv/plane_kernels.h"
#include "kernels/conv2d/winograd.h"
#include "kernels/gemm/gemm_packed.h"

namespace fastconv {

namespace {

enum WinogradScratchTag {
    kWinoUTag = 40,
    kWinoVTag = 41,
    kWinoMTag = 42,
    kWinoGradVTag = 43,
    kWinoGradZTag = 44,
    kWinoGradUTag = 45,
    kWinoPackTag = 46,
    kWinoPhaseXTag = 47,  // the dilation phases of x (or dy) ...
    kWinoPhaseYTag = 48   // ... and of y (or x), side by side as images
};
constexpr int kXi = 16;  // positions of a transformed 4x4 tile (F(2x2, 3x3))
constexpr int kMaxLanes = kWinogradMaxLanes;
// V of one block (16 x C x tiles) is kept within this many bytes (Zen 4: 1 MiB L2, shared
// with the streaming U panels and the M tile).
constexpr int64_t kBlockBytes = 512 * 1024;

// The transformed weights U of small calls, kept per thread for the next call on the same
// weights: CifarNet conv2 at batch 1 (64 tiles) spent 12 % of its call transforming them.
// A hit needs the same address, shape, layout and kernel (the ISA's transform), and the
// same values, compared with a copy (never trusted by address: an optimizer step or an
// in-place edit changes them); the compare costs a fraction of the transform.
constexpr int64_t kUCacheMaxTiles = 256;          // calls with more tiles transform anew
constexpr int64_t kUCacheMaxBytes = 1024 * 1024;  // per entry, U and the weights' copy
constexpr int kUCacheEntries = 4;                 // per thread, least recently used out

template <typename T>
struct UCacheEntry {
    const T* w = nullptr;
    std::array<int64_t, 8> key{};
    std::vector<T> wcopy;
    AlignedBuffer<T> u;
    uint64_t last = 0;
};

// The entry for weights w (wsize elements) under `key`: *hit says whether its U holds
// them already. Otherwise the caller sizes and fills e->u, then sets e->w = w: until then the entry
// claims no weights (a failure in between leaves no stale U behind).
template <typename T>
UCacheEntry<T>* cached_u(const T* w, int64_t wsize, const std::array<int64_t, 8>& key, bool* hit) {
    thread_local UCacheEntry<T> entries[kUCacheEntries];
    thread_local uint64_t clock = 0;
    ++clock;
    const size_t bytes = static_cast<size_t>(wsize) * sizeof(T);
    for (UCacheEntry<T>& e : entries)
        if (e.w == w && e.key == key && std::memcmp(e.wcopy.data(), w, bytes) == 0) {
            e.last = clock;
            *hit = true;
            return &e;
        }
    UCacheEntry<T>* e = entries;
    for (UCacheEntry<T>& c : entries)
        if (c.last < e->last) e = &c;
    e->w = nullptr;
    e->wcopy.assign(w, w + wsize);
    e->key = key;
    e->last = clock;
    *hit = false;
    return e;
}
// A call whose U is not cached and whose V of all its tiles is at most kFusedVBytes (a deep
// layer on a small map) transforms U inside its GEMM loop, one MR block at a time into an
// L2-resident panel, instead of writing the whole U to memory to read each panel back once
// per block: the weight transform was half of ResNet-18 7x7x512 b1's F(2x2) forward (16.8 MB
// of U for 16 tiles). All its tiles go in one block, its V transformed once and read once
// per MR block. Zen 3, 1 thread, alternated, bitwise equal: 7x7x512 b1 1.77-1.83x, b2
// 1.49x, b4 1.26x, b8 (4 MiB of V) 1.24-1.27x; 14x14x256 b1 1.07-1.09x, b4 1.05x;
// 28x28x128 b1-b2 1.05x; 56x56x64 b1 1.01-1.05x; 2 threads 1.01-1.86x. With more V it
// loses (28x28x128 b8, 12.8 MB: 0.89x).
constexpr int64_t kFusedVBytes = 4 * 1024 * 1024;

// The 16 planes xi of V, M, dZ are a whole number of 4 KiB pages apart without padding, so a
// tile's 16 values map to one L1 set (8 ways on Zen 4) and evict each other as the
// transforms store (V, dZ) or load (M) them; a cache line between planes spreads them over
// 16 sets. Zen 4, 1 thread, alternated in one process: CifarNet conv2 b64 forward 2 %,
// backward_data 3.5 % faster, ResNet-18 56x56x64 b8 7 %, 28x28x128 b8 5 %.
template <typename T>
constexpr int64_t kXiPad = 64 / static_cast<int64_t>(sizeof(T));

// A run: tiles of one image within one NR panel of a block: tiles tw0 .. tw0+len-1 of the
// tile rows th .. th+rows-1, at lanes lane0 + j*len + i of panel jp. Runs of several rows
// are whole rows (tw0 = 0, len = TW), so the transforms' loops span up to a panel's lanes
// also on narrow maps (CifarNet's 16x16: 4 rows of 8 tiles per call instead of 8 tiles).
struct Run {
    int64_t n, th, tw0;
    int len, rows, jp, lane0;
};

// The runs of tiles [t0, t1), split at tile rows and at panels of nr lanes from t0, then
// consecutive whole rows of one image in one panel merged.
std::vector<Run> block_runs(int64_t TW, int64_t TT, int64_t t0, int64_t t1, int nr) {
    std::vector<Run> runs;
    for (int64_t t = t0; t < t1;) {
        const int64_t tw = t % TW, l = t - t0;
        const int64_t end = std::min({t1, t + (TW - tw), t0 + (l / nr + 1) * nr});
        const Run r{t / TT, t % TT / TW, tw, static_cast<int>(end - t), 1,
                    static_cast<int>(l / nr), static_cast<int>(l % nr)};
        Run* last = runs.empty() ? nullptr : &runs.back();
        if (last && r.tw0 == 0 && r.len == TW && last->tw0 == 0 && last->len == TW &&
            last->n == r.n && last->jp == r.jp && last->th + last->rows == r.th)
            ++last->rows;
        else
            runs.push_back(r);
        t = end;
    }
    return runs;
}

// Weight gradient with a small dU: this many fixed chunks of blocks, each with its own dU
// (CifarNet conv2 b64 vs the shared mode: 8 chunks 1.2x slower at 1 thread, their copies of
// dU crowding L2; 4 chunks 1.1x slower at 1 thread, 1.2x faster at 2).
constexpr int64_t kWinoGradChunks = 4;
constexpr int64_t kWinoGradSmallU = 128 * 1024;  // bytes of dU

// Tiles per weight-gradient block: V and dZ of a block (16 x (C + K) x tiles) within
// kBlockBytes, but at least 128 tiles, the GEMMs' reduction length: each block reads and
// writes dU once per GEMM (with 256 and 512 channels, blocks of 16 tiles ran ResNet-18
// 14x14x256 b8 at 0.98x im2col and 7x7x512 b8 at 0.74x, blocks of 128 at 1.26x and 1.29x).
// At most one KC block of the GEMM.
int64_t winograd_grad_block_tiles(int64_t channels, int64_t elem_bytes, int64_t kc) {
    int64_t tb = kBlockBytes / (kXi * channels * elem_bytes);
    // Multiples of 16: the packed panels (tiles x MR, tiles x NR) stay 64-byte aligned.
    return std::clamp<int64_t>(tb, 128, kc) / 16 * 16;
}

}  // namespace

namespace {
// A dilated 3x3 layer at stride 1 is d_h x d_w independent 3x3 layers without dilation
// (space-to-batch): output phase (a, b), the outputs with oh % d_h == a and ow % d_w == b,
// reads only the inputs of the same phase when the top and left padding are multiples of
// the dilation (ih = oh - pad_top + kh*d_h), and through the plain kernel, on the phase's
// (H/d_h) x (W/d_w) plane with padding pad/d. With the map sizes multiples of the dilation
// every phase has the same shape, so the phases run as d_h*d_w times the images.
bool dilation_phases_apply(const Conv2dParams& p) {
    return p.KH == 3 && p.KW == 3 && p.stride_h == 1 && p.stride_w == 1 &&
           (p.dil_h > 1 || p.dil_w > 1) && p.H % p.dil_h == 0 && p.W % p.dil_w == 0 &&
           p.OH % p.dil_h == 0 && p.OW % p.dil_w == 0 && p.pad_top % p.dil_h == 0 &&
           p.pad_left % p.dil_w == 0;
}

// The layer of the phases: image n*d_h*d_w + a*d_w + b is phase (a, b) of image n.
Conv2dParams dilation_phase_params(const Conv2dParams& p) {
    Conv2dParams q = p;
    q.N = p.N * p.dil_h * p.dil_w;
    q.H = p.H / p.dil_h;
    q.W = p.W / p.dil_w;
    q.OH = p.OH / p.dil_h;
    q.OW = p.OW / p.dil_w;
    q.pad_top = p.pad_top / p.dil_h;
    q.pad_left = p.pad_left / p.dil_w;
    q.dil_h = q.dil_w = 1;
    return q;
}

// The dilation phases of a[N][C][H][W] as images: element (n, c, i + dh*r, j + dw*q) is
// element (r, q) of plane c of image (n*dh + i)*dw + j of the (H/dh) x (W/dw) phases.
// kToPhases copies a (src) into the phases (dst), else the phases (src) back into a (dst).
// d_w == 2 splits or merges each row's column phases at once (KernelSet::phase_split_s2 /
// phase_merge_s2).
struct PhaseShape {
    int64_t N, C, H, W, dh, dw;
};

template <bool kToPhases, typename T>
void copy_phases(const PhaseShape& s, const T* src, T* dst) {
    const KernelSet<T>& ks = kernel_set<T>();
    const int64_t h = s.H / s.dh, w = s.W / s.dw, next = s.C * h * w;  // next: phase j -> j+1
    parallel_ranges(s.N * s.C * s.dh, num_threads(), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {  // rows i, i + dh, .. of plane (n, c)
            const int64_t n = t / (s.C * s.dh), c = t / s.dh % s.C, i = t % s.dh;
            const int64_t rows = ((n * s.C + c) * s.H + i) * s.W;               // in a
            const int64_t phase = (((n * s.dh + i) * s.dw) * s.C + c) * h * w;  // phase (i, 0)
            if (s.dw == 2) {
                if constexpr (kToPhases)
                    ks.phase_split_s2(src + rows, s.dh * s.W, s.W, 0, h, w, dst + phase,
                                      dst + phase + next, w);
                else
                    ks.phase_merge_s2(src + phase, src + phase + next, w, w, h, 0, s.W, dst + rows,
                                      s.dh * s.W);
                continue;
            }
            for (int64_t j = 0; j < s.dw; ++j)
                for (int64_t r = 0; r < h; ++r)
                    for (int64_t q = 0; q < w; ++q) {
                        const int64_t ia = rows + r * s.dh * s.W + q * s.dw + j;
                        const int64_t ip = phase + j * next + r * w + q;
                        dst[kToPhases ? ip : ia] = src[kToPhases ? ia : ip];
                    }
        }
    });
}
}  // namespace

bool winograd_applies(const Conv2dParams& p) {
    return p.KH == 3 && p.KW == 3 && p.stride_h == 1 && p.stride_w == 1 &&
           ((p.dil_h == 1 && p.dil_w == 1) || dilation_phases_apply(p));
}

namespace {
// Percent of the 2x2 tiles' outputs inside OH x OW: an odd OH or OW adds a row or column
// of tiles whose other half is computed and dropped.
int64_t winograd_fill_pct(const Conv2dParams& p) {
    const int64_t th = (p.OH + 1) / 2, tw = (p.OW + 1) / 2;
    return 100 * p.OH * p.OW / (4 * th * tw);
}

// Percent of the outputs computed that are used: the tiles' fill as above, and the GEMMs'
// last panel of NR tiles part-empty (AVX-512, NR = 32: 49 tiles run as 64; AVX2, NR = 16:
// the 16 tiles of a 7x7 map fill one panel).
int64_t winograd_used_pct(const Conv2dParams& p) {
    const int64_t th = (p.OH + 1) / 2, tw = (p.OW + 1) / 2, tiles = p.N * th * tw;
    const int64_t nr = kernel_set<float>().gemm_nr;
    const int64_t lanes = (tiles + nr - 1) / nr * nr;
    return lanes == 0 ? 0 : 100 * p.N * p.OH * p.OW / (4 * lanes);
}

// Rows of 2-3 tiles (4-6 outputs): the transforms' per-run cost is paid back by >= 64
// channels per group in and out, with >= 90 % of the outputs used and a padding of at most
// 1 (Zen 4, float32, im2col / Winograd, 1 thread and 2, alternated: 64 -> 64 on 6x6 b64
// forward 1.32x / 1.23x, backward_data 1.19x / 1.33x, weight gradient 1.37x / 1.08x; 128 ->
// 128 on 4x4 b16 forward 1.46x / 1.29x, backward_data 1.35x / 1.53x; Keras conv3, 64 -> 64
// on 4x4 b64, weight gradient 1.15-1.32x / 1.05x, forward 0.98-1.17x / 0.99x). It loses
// with fewer channels (32 -> 32 on 4x4 b64 0.84x), few tiles (b1: 0.2-0.6x; 4x4 b8 0.5-1.0x)
// and as the backward_data of an unpadded layer (padding 2 on the 4x4 gradient: 0.58x).
bool narrow_map_pays(const Conv2dParams& p) {
    // Stride 1, 3x3 (winograd_applies): the bottom and right padding are OH + 2 - H - top.
    const int64_t pad =
        std::max({p.pad_top, p.pad_left, p.OH + 2 - p.H - p.pad_top, p.OW + 2 - p.W - p.pad_left});
    return p.c_per_group() >= 64 && p.k_per_group() >= 64 && winograd_used_pct(p) >= 90 &&
           pad <= 1 && (p.OW + 1) / 2 >= 2;
}
}  // namespace

// Measured against im2col (Zen 4, float32, 1 and 2 threads, alternated). Winograd wins
// 1.2-1.8x on CifarNet conv2 and the ResNet-18 / VGG 3x3 layers at batch 1 and 8, and
// loses where
// - channels are few: the GEMMs' K = C/g and M = K/g are too short for the micro-kernel
//   to pay for the transforms (CifarNet conv1, C = 3: 0.6x; 16 -> 32 on 14x14: 0.85x);
// - rows are under 4 tiles: the transforms' per-run cost dominates (Keras conv3, 4x4
//   outputs: 0.81x forward, 0.62x backward_data at batch 64), but see narrow_map_pays;
// - few of the outputs it computes are used. Odd output sizes drop part of each edge tile
//   (13x13: 86 % used, 7x7: 77 %), and the GEMMs' last panel of 32 tiles can be
//   part-empty (7x7x512 b3: 48 tiles as 64, 57 % used). It still wins at >= 85 % used
//   (Keras conv2 b64, 32 -> 64 channels: forward 1.07x / 1.10x at 1 / 2 threads,
//   backward_data 1.28x / 1.17x; CifarNet conv2 b1 1.57x), and at >= 75 % with >= 64
//   channels (ResNet-18 7x7x512 b2 1.11x, b4 1.05x, b8 1.08x / 1.12x; 14x14x256 b1 1.37x;
//   64 -> 64 on 14x14 at batch 1 1.14x). It loses below: Keras conv2 b1 (66 %) 0.88x,
//   7x7x512 b3 (57 %) 0.90x, b1 (38 %) 0.56x.
// Those figures are with the transforms in registers and the weight transform
// vectorised, which moved the rule from >= 192 tiles and >= 90 % of tile outputs used.
// Rows of 2-3 tiles: narrow_map_pays (measured since; with >= 64 channels the loss above
// is gone).
bool winograd_preferred(const Conv2dParams& p) {
    const int64_t cg = p.c_per_group(), kg = p.k_per_group();
    if (!winograd_applies(p) || cg < 16 || kg < 16) return false;
    if (p.dil_h > 1 || p.dil_w > 1) return winograd_preferred(dilation_phase_params(p));
    const int64_t tw = (p.OW + 1) / 2, used = winograd_used_pct(p);
    if (tw < 4)
        return narrow_map_pays(p) && (tw >= 3 || cg * kg >= 128 * 128) &&
               p.N * ((p.OH + 1) / 2) * tw >= 64;
    return used >= 85 || (used >= 75 && cg >= 64 && kg >= 64);
}

namespace {
// Tiles per row of F(4x4, 3x3) in float: ceil(OW / 4) rounded up to a multiple of 4.
int64_t winograd4_row_tiles(int64_t OW) {
    return ((OW + 3) / 4 + 3) / 4 * 4;
}
}  // namespace

// F(4x4, 3x3) against F(2x2, 3x3), where winograd_preferred holds (Zen 4, float32, 1 thread,
// alternated in one process, forward / backward_data): 4x fewer multiplies than the direct
// sum instead of 2.25x, and the transforms write 36 values per 16 outputs instead of 16 per
// 4. Rows of tiles are padded to whole groups of 4 tiles (winograd4_row_tiles: the
// transforms' load/store paths, winograd_impl.h; gathering the patches instead cost what
// F(4x4) saves, 1.0x on 56x56 and 28x28). It wins with >= 128 tiles, >= 80 % of the outputs
// computed used and an F(4x4) U of <= 36 x 128 x 128 values: CifarNet conv2 (16x16, 32 ->
// 64) b64 1.30-1.33x / 1.40-1.41x, b8 1.48-1.58x / 1.47-1.52x; 32 -> 64 on 15x15 b64 1.29-1.41x
// / 1.39-1.41x; 64 -> 64 on 32x32 b64 1.40-1.46x / 1.44-1.45x; ResNet-18 56x56x64 b1 1.47x /
// 1.45x, b8 1.53x / 1.42x, 28x28x128 b8 1.26x / 1.33x (AVX2: 1.38-1.49x on these). It loses
// with 16 tiles (CifarNet conv2 b1 0.86x / 0.84x, 14x14x256 b1 0.49x: half an NR panel), 56
// (28x28x128 b1 0.94x / 1.00x), on 7x7 maps (38 % used: 0.56x), and gains little or loses with
// 256 channels (VGG 56x56x256 b1 1.15x / 1.12x, AVX2 0.86x / 0.76x; 14x14x256 b8, 76 %
// used, 0.92-1.12x). Its output error is larger (docs/performance.md): within the parity
// tests' bound where this rule gives it. With AVX2 (Zen 3, 1 thread, forward /
// backward_data):
// - the share of outputs used may drop to 60 %: the Keras net's conv2 (13x13 outputs,
//   66 %) runs F(4x4) 1.55-1.6x faster at b64 and 1.8x at b8, where 7x7 maps (38 %) still
//   lose (0.72x);
// - 16 tiles fill the 6x16 micro-kernel's NR panel, and with <= 64 x 64 channels (U in
//   L2) F(4x4) wins from there: CifarNet conv2 b1 (16 tiles) 1.58x / 1.59x, b2 1.75x,
//   64 -> 64 on 16x16 b1 1.55x; 8 tiles lose (64 -> 64 on 8x8: 0.89x). 128 -> 128 on
//   16x16 b1 lost then (0.70x: its 2.4 MB U read for 16 tiles), but
// - since the AVX2 weight transform (weight4_panel_6: 40 -> ~10 ns per kernel) and U
//   transformed inside the GEMM loop where it is not cached (kFusedVBytes), the channel
//   limits are gone there: F(4x4) against F(2x2), forward, 1 thread: 14x14x256 b1 1.12x,
//   b2 1.22x, b4 1.31x, b8 1.18x; 28x28x128 b1 1.38x, b2 1.56x, b8 1.51x; 128 -> 128 on
//   14x14 / 16x16 b1 1.24x / 1.16x; 14x14x512 b1 1.04x; VGG 56x56x256 b1 1.33x
//   (backward_data: 14x14x256 b1 1.10x, b4 1.23x; 28x28x128 b1 1.38x; 14x14x512 1.03x).
bool winograd4_preferred(const Conv2dParams& p) {
    if (p.dil_h != 1 || p.dil_w != 1) return false;  // winograd_preferred(p): the caller's
    const int64_t th = (p.OH + 3) / 4, tw = winograd4_row_tiles(p.OW);
    const int64_t ck = p.c_per_group() * p.k_per_group();
    const int64_t tiles = p.N * th * tw;
    // Whether >= pct percent of the outputs computed (16 a tile, padded tiles too) are used.
    auto used = [&](int64_t pct) { return 100 * p.OH * p.OW >= pct * 16 * th * tw; };
    if (kernels().isa == Isa::avx2) return tiles >= 16 && used(60);
    return tiles >= 128 && used(80) && ck <= 128 * 128;
}

// With AVX2, F(4x4) is also taken for a forward that winograd_preferred turns down, for its
// share of outputs used or its rows of 2-3 tiles, where winograd4_preferred holds with
// >= 16 channels in and out (F(2x2)'s floor): at batch 1-4 the F(4x4) tiles fill the NR
// panels that F(2x2)'s leave part-empty. Zen 3, 1 thread, alternated with im2col: Keras
// conv2 (32 -> 64, 13x13 outputs) b1 1.55-1.65x, b2 1.65x, b4 1.6x; 64 -> 64 on 13x13 b1
// 1.5-1.8x; 16 -> 32 on 14x14 b1 1.7-2.2x. Backward_data keeps F(2x2)'s rule (its padded
// problem is where F(2x2) already holds for Keras conv2; 64 -> 64 on 13x13 b1: 0.8-1.07x).
bool winograd4_alone_preferred(const Conv2dParams& p) {
    return kernels().isa == Isa::avx2 && winograd_applies(p) && p.dil_h == 1 && p.dil_w == 1 &&
           p.c_per_group() >= 16 && p.k_per_group() >= 16 && winograd4_preferred(p);
}

// The weight gradient's rule, measured against im2col's (Zen 4, float32, 1 and 2 threads,
// alternated), where the forward rule holds and there are >= 128 tiles (its blocks' GEMMs
// reduce over >= 128 tiles; with fewer it lost: 14x14x256 b1 1.0x, 7x7x512 b4 0.89x,
// CifarNet conv2 b1 0.84x): with >= 64 channels per group in and out Winograd wins
// 1.1-1.8x (ResNet-18 56x56x64 b1/b8 1.39-1.58x at 1 thread, 1.14-1.46x at 2; 28x28x128
// b1/b8 1.29-1.37x / 1.15-1.30x; 14x14x256 b8 1.26x / 1.46x; VGG 56x56x256 b1 1.62x /
// 1.77x; 7x7 maps, 77 % of tile outputs used: 7x7x512 b8 1.19x / 1.32x, 7x7x256 b8
// 1.04x, 7x7x128 b16 1.21x); with >= 32, ungrouped, and a float32 dU small enough for the
// chunked mode, CifarNet conv2 (32 -> 64, 16x16, b64) 1.17x / 1.18x, and with odd maps only
// with >= 1024 tiles and >= 85 % of the tile outputs used (Keras conv2 b64, 13x13, 86 %:
// 1.09-1.11x / 1.09x; 32 -> 64 on 15x15 b64, 88 %: 1.30-1.34x / 1.39x), or every one used
// (Keras conv2 b8, 392 tiles: 0.62x; at b64 an earlier version measured 0.70x). Fewer channels
// leave the transforms (16 values written per tile and channel, for 2 * 16 * Cg * Kg multiplies)
// unamortised. Rows of 2-3 tiles as the forward's narrow_map_pays, with the forward's >= 128
// channels for 2 tiles waived (Keras conv3 above).
bool winograd_grad_preferred(const Conv2dParams& p) {
    if (p.dil_h > 1 || p.dil_w > 1)
        return winograd_applies(p) && winograd_grad_preferred(dilation_phase_params(p));
    const int64_t cg = p.c_per_group(), kg = p.k_per_group();
    const int64_t tiles = p.N * ((p.OH + 1) / 2) * ((p.OW + 1) / 2);
    const bool small_du = p.groups == 1 && kXi * p.K * cg * 4 <= kWinoGradSmallU;
    const bool shape_ok = winograd_preferred(p) || (winograd_applies(p) && narrow_map_pays(p));
    return shape_ok && tiles >= 128 && cg >= 32 && kg >= 32 &&
           ((cg >= 64 && kg >= 64) ||
            (small_du && winograd_fill_pct(p) >= (tiles >= 1024 ? 85 : 90)));
}

template <typename T>
void winograd_forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y,
                      const WinogradPool<T>* pool, int tile) {
    winograd_forward(p, x, w, WinogradWeights{p.c_per_group() * 9, 9, false}, bias, y, pool, tile);
}

template <typename T>
void winograd_forward(const Conv2dParams& p, const T* x, const T* w, WinogradWeights wv,
                      const T* bias, T* y, const WinogradPool<T>* pool, int tile) {
    if (p.dil_h > 1 || p.dil_w > 1) {  // dilation_phases_apply: the phases as images
        assert(!pool);
        const Conv2dParams q = dilation_phase_params(p);
        T* xq = thread_scratch<T, kWinoPhaseXTag>(static_cast<size_t>(p.N * p.C * p.H * p.W));
        T* yq = thread_scratch<T, kWinoPhaseYTag>(static_cast<size_t>(p.N * p.K * p.OH * p.OW));
        copy_phases<true>(PhaseShape{p.N, p.C, p.H, p.W, p.dil_h, p.dil_w}, x, xq);
        winograd_forward(q, xq, w, wv, bias, yq, static_cast<const WinogradPool<T>*>(nullptr),
                         tile);
        copy_phases<false>(PhaseShape{p.N, p.K, p.OH, p.OW, p.dil_h, p.dil_w}, yq, y);
        return;
    }
    const KernelSet<T>& ks = kernel_set<T>();
    const int mr = ks.gemm_mr, nr = ks.gemm_nr;
    // F(tile x tile, 3x3): tiles of tile x tile outputs, (tile + 2)^2 positions xi.
    assert(tile == 2 || tile == 4);
    const bool f4 = tile == 4;
    const int nxi = (tile + 2) * (tile + 2);
    const auto input_run = f4 ? ks.winograd4_input_run : ks.winograd_input_run;
    const auto weight_panel = f4 ? ks.winograd4_weight_panel : ks.winograd_weight_panel;
    const auto output_run = f4 ? ks.winograd4_output_run : ks.winograd_output_run;
    const auto output_pool_run = f4 ? ks.winograd4_output_pool_run : ks.winograd_output_pool_run;
    const int64_t G = p.groups, C = p.C, Cg = p.c_per_group(), Kg = p.k_per_group();
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW;
    // F(4x4) in float: each row of tiles padded to a multiple of 4 tiles, so that the
    // transforms take whole groups of 4 (winograd_impl.h) instead of gathering; the padded
    // tiles read zeros past the plane, and their outputs are not stored.
    const int64_t TW = f4 && sizeof(T) == 4 ? winograd4_row_tiles(p.OW) : (p.OW + tile - 1) / tile;
    const int64_t TT = (p.OH + tile - 1) / tile * TW, P = p.N * TT;
    const int64_t PHW = pool ? pool->PH * pool->PW : 0;
    assert(!pool || (2 * pool->PH <= p.OH && 2 * pool->PW <= p.OW && OHW < (int64_t{1} << 31)));
    if (P == 0 || p.K == 0) return;

    // U, packed: [g][xi][ip][c][mr] with rows k >= Kg zero.
    const int64_t nkp = (Kg + mr - 1) / mr, upanel = Cg * mr;
    const int64_t usize = G * nxi * nkp * upanel, wsize = G * Kg * Cg * 9;
    const int64_t panels_total = (P + nr - 1) / nr;
    const int64_t v_panel_bytes = nxi * C * nr * static_cast<int64_t>(sizeof(T));
    const bool cacheable = P <= kUCacheMaxTiles &&
                           (usize + wsize) * static_cast<int64_t>(sizeof(T)) <= kUCacheMaxBytes;
    // fused: U is never stored whole (kFusedVBytes); each item transforms the U of its (group,
    // MR block) pairs right before their GEMMs, into a per-thread panel read from L2.
    const bool fused = !cacheable && panels_total * v_panel_bytes <= kFusedVBytes;
    bool hit = false;
    UCacheEntry<T>* entry = nullptr;
    T* U = nullptr;
    if (cacheable) {
        const std::array<int64_t, 8> key{
            G,           Kg,
            Cg,          wv.k_stride,
            wv.c_stride, wv.flipped,
            mr,          static_cast<int64_t>(reinterpret_cast<uintptr_t>(weight_panel))};
        entry = cached_u(w, wsize, key, &hit);
        U = entry->u.get(static_cast<size_t>(usize));  // a hit: the same size, kept
    } else if (!fused) {
        U = thread_scratch<T, kWinoUTag>(static_cast<size_t>(usize));
    }
    // The U panels of MR block ip of group g, xi_stride apart (KernelSet::winograd_weight_panel).
    auto transform_u = [&](int64_t g, int64_t ip, T* dst, int64_t xi_stride) {
        const int rows = static_cast<int>(std::min<int64_t>(mr, Kg - ip * mr));
        weight_panel(w + g * Kg * Cg * 9 + ip * mr * wv.k_stride, wv.k_stride, wv.c_stride,
                     wv.flipped, rows, Cg, mr, dst, xi_stride);
    };
    if (U && !hit)
        parallel_ranges(G * nkp, num_threads(), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r)
                transform_u(r / nkp, r % nkp, U + (r / nkp * nxi * nkp + r % nkp) * upanel,
                            nkp * upanel);
        });
    if (entry) entry->w = w;  // U is complete: the entry now answers for these weights

    // Tiles per block: whole panels, V within kBlockBytes, and enough blocks to share; fused,
    // one block (each block would transform U anew).
    int64_t bp = std::max<int64_t>(1, kBlockBytes / v_panel_bytes);
    const int nt = num_threads();
    if (nt > 1) bp = std::max<int64_t>(1, std::min(bp, panels_total / (4 * nt)));
    if (fused) bp = panels_total;
    const int64_t nblocks = (panels_total + bp - 1) / bp;
    const int64_t nkb = G * nkp;                  // (group, MR block of output channels) pairs
    const int64_t bcols = bp * nr;                // ldc of the M tile, lanes per block
    const int64_t m_xi = mr * bcols + kXiPad<T>;  // M's plane stride
    const size_t v_size = static_cast<size_t>(nxi * (C * bcols + kXiPad<T>));
    const size_t m_size = static_cast<size_t>(nxi * m_xi);

    // Block b: panels [b * bp, b * bp + np), tiles [t0, t1); V_xi of the block is
    // [xi][g][panel][c][nr], xi_stride apart.
    struct Block {
        int64_t np, t0, t1, xi_stride;
        bool half_tail;  // a last panel of at most NR/2 tiles
        std::vector<Run> runs;
    };
    auto block = [&](int64_t b) {
        Block k;
        const int64_t jp0 = b * bp;
        k.np = std::min(bp, panels_total - jp0);
        k.t0 = jp0 * nr;
        k.t1 = std::min(P, k.t0 + k.np * nr);
        k.xi_stride = G * k.np * Cg * nr + kXiPad<T>;
        k.half_tail = 2 * (k.t1 - k.t0 - (k.np - 1) * nr) <= nr;
        k.runs = block_runs(TW, TT, k.t0, k.t1, nr);
        return k;
    };
    // V of the block's input channels [c0, c1). Lanes past the last tile are zero (their
    // columns of M are never stored).
    auto transform_v = [&](const Block& k, int64_t c0, int64_t c1, T* V) {
        if (k.t1 - k.t0 < k.np * nr) {
            const int64_t jp = k.np - 1, l0 = (k.t1 - k.t0) % nr;
            for (int xi = 0; xi < nxi; ++xi)
                for (int64_t c = c0; c < c1; ++c)
                    std::fill_n(
                        V + xi * k.xi_stride + ((c / Cg * k.np + jp) * Cg + c % Cg) * nr + l0,
                        nr - l0, T(0));
        }
        for (int64_t c = c0; c < c1; ++c) {
            const int64_t g = c / Cg, cg = c % Cg;
            for (const Run& r : k.runs)
                input_run(x + (r.n * C + c) * HW, p.H, p.W, tile * r.th - p.pad_top,
                          tile * r.tw0 - p.pad_left, r.len, r.rows,
                          V + ((g * k.np + r.jp) * Cg + cg) * nr + r.lane0, k.xi_stride);
        }
    };
    // Pairs [q0, q1) of the block, each: nxi GEMMs into M, then A^T M A into y (or the pool).
    auto compute_pairs = [&](const Block& k, const T* V, int64_t q0, int64_t q1, T* M) {
        for (int64_t q = q0; q < q1; ++q) {
            const int64_t g = q / nkp, ip = q % nkp;
            const T* uq;  // the pair's xi = 0 panel of U, its xi panels uq_xi apart
            int64_t uq_xi;
            if (fused) {
                // Panels kXiPad apart: whole pages apart, the 16 stores per input channel
                // would share one L1 set (the transform ran 2.5x slower).
                uq_xi = upanel + kXiPad<T>;
                T* u = thread_scratch<T, kWinoUTag>(static_cast<size_t>(nxi * uq_xi));
                transform_u(g, ip, u, uq_xi);
                uq = u;
            } else {
                uq = U + (g * nxi * nkp + ip) * upanel;
                uq_xi = nkp * upanel;
            }
            for (int xi = 0; xi < nxi; ++xi) {
                const T* a = uq + xi * uq_xi;
                const T* vb = V + xi * k.xi_stride + g * k.np * Cg * nr;
                T* m = M + xi * m_xi;
                for (int64_t jp = 0; jp < k.np; ++jp)
                    // The half-width tile on a half-empty last panel: half the FMAs (M's
                    // columns past the tiles are never read).
                    (jp == k.np - 1 && k.half_tail ? ks.gemm_ukernel_half : ks.gemm_ukernel)(
                        Cg, a, vb + jp * Cg * nr, m + jp * nr, bcols, T(1), T(0));
            }
            const int rows = static_cast<int>(std::min<int64_t>(mr, Kg - ip * mr));
            for (int i = 0; i < rows; ++i) {
                const int64_t kk = g * Kg + ip * mr + i;
                const T bk = bias ? bias[kk] : T(0);
                const T* mi = M + i * bcols;
                if (pool) {
                    for (const Run& r : k.runs) {
                        const int64_t at = (r.n * p.K + kk) * PHW;
                        output_pool_run(mi + r.jp * nr + r.lane0, m_xi, r.len, r.rows, bk,
                                        pool->pooled + at,
                                        pool->indices ? pool->indices + at : nullptr, pool->relu,
                                        pool->PH, pool->PW, p.OW, r.th, r.tw0);
                    }
                    continue;
                }
                for (const Run& r : k.runs)
                    output_run(mi + r.jp * nr + r.lane0, m_xi, r.len, r.rows, bk,
                               y + (r.n * p.K + kk) * OHW, p.OH, p.OW, tile * r.th, tile * r.tw0);
            }
        }
    };

    if (fused) {  // one block: its V transformed once, its channels split over the threads
        const Block k = block(0);
        T* V = thread_scratch<T, kWinoVTag>(v_size);
        parallel_ranges(C, nt, [&](int64_t c0, int64_t c1) { transform_v(k, c0, c1, V); });
        parallel_ranges(nkb, nt, [&](int64_t q0, int64_t q1) {
            compute_pairs(k, V, q0, q1, thread_scratch<T, kWinoMTag>(m_size));
        });
        return;
    }
    // Fewer blocks than threads (a small map at batch 1: CifarNet conv2 b1 is one panel of
    // 16 tiles): a block's pairs are split over ksplit items too, each item transforming the
    // block's input itself, about a tenth of its GEMMs' multiply-adds there. Every output is
    // still computed by the same operations: the result does not depend on the split.
    const int64_t ksplit = nblocks >= nt ? 1 : std::min<int64_t>(nkb, (nt + nblocks - 1) / nblocks);
    parallel_ranges(nblocks * ksplit, nt, [&](int64_t i0, int64_t i1) {
        T* V = thread_scratch<T, kWinoVTag>(v_size);
        T* M = thread_scratch<T, kWinoMTag>(m_size);
        int64_t v_block = -1;  // the block whose V this thread holds
        Block k;
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / ksplit;
            if (b != v_block) {
                v_block = b;
                k = block(b);
                transform_v(k, 0, C, V);
            }
            int64_t q0, q1;  // this item's pairs
            split_range(nkb, ksplit, i % ksplit, &q0, &q1);
            compute_pairs(k, V, q0, q1, M);
        }
    });
}

// Weight gradient. With Z = U .* V the forward's elementwise product and dZ = A dY A^T the
// gradient reaching it from a tile's 2x2 output gradient dY (zero at outputs past an odd
// OH/OW), the chain rule through U = G g G^T gives
//     dU_xi (Kg x Cg) = sum over tiles  dZ_xi (Kg x tiles) * V_xi^T (tiles x Cg),
//     dg = G^T dU G   (G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]),
// 16 GEMMs whose reduction runs over the tiles: 2.25x fewer multiplies than im2col's
// Kg x 9Cg x OH*OW product. Per block of tiles the transforms write V and dZ row-major
// (contiguous over tiles, as they vectorise), then packA/packB transpose them for the GEMMs.
// Threads share each block: first its channels' transforms, then its 16 GEMMs, one
// (group, xi) each, accumulating over the blocks in order. Every dU entry is thus summed by
// one thread in one order: bitwise identical results for any thread count, and no private
// copies of dU to add up. A small dU is instead summed in a fixed number of chunks (below),
// which does not depend on the thread count either.
template <typename T>
void winograd_backward_weight(const Conv2dParams& p, T* dw, const T* dy, const T* x) {
    if (p.dil_h > 1 || p.dil_w > 1) {  // dilation_phases_apply: dW sums over the phases too
        const Conv2dParams q = dilation_phase_params(p);
        T* dyq = thread_scratch<T, kWinoPhaseXTag>(static_cast<size_t>(p.N * p.K * p.OH * p.OW));
        T* xq = thread_scratch<T, kWinoPhaseYTag>(static_cast<size_t>(p.N * p.C * p.H * p.W));
        copy_phases<true>(PhaseShape{p.N, p.K, p.OH, p.OW, p.dil_h, p.dil_w}, dy, dyq);
        copy_phases<true>(PhaseShape{p.N, p.C, p.H, p.W, p.dil_h, p.dil_w}, x, xq);
        winograd_backward_weight(q, dw, dyq, xq);
        return;
    }
    const GemmPacking<T> pk = gemm_packing<T>();
    const KernelSet<T>& ks = *pk.ks;
    const int64_t G = p.groups, C = p.C, K = p.K, Cg = p.c_per_group(), Kg = p.k_per_group();
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, KCg = K * Cg;
    const int64_t TW = (p.OW + 1) / 2, TT = (p.OH + 1) / 2 * TW, P = p.N * TT;
    if (P == 0) {  // empty batch: the gradient is zero, not unwritten
        std::fill(dw, dw + KCg * 9, T(0));
        return;
    }
    const int64_t tb = winograd_grad_block_tiles(C + K, static_cast<int64_t>(sizeof(T)), pk.kc);
    const int64_t nblocks = (P + tb - 1) / tb;
    std::vector<Run> runs;  // the runs of block b: [first[b], first[b + 1])
    std::vector<size_t> first{0};
    for (int64_t b = 0; b < nblocks; ++b) {
        const std::vector<Run> r =
            block_runs(TW, TT, b * tb, std::min(P, (b + 1) * tb), kMaxLanes);
        runs.insert(runs.end(), r.begin(), r.end());
        first.push_back(runs.size());
    }
    const int nt = num_threads();
    const int64_t pa_size = pk.padded_m(Kg) * tb, pb_size = pk.padded_n(Cg) * tb;
    const int64_t usize = kXi * KCg;  // dU: [xi][k][c]
    // V: [xi][c][tile], dZ: [xi][k][tile], rows tb long; the planes kXiPad further apart
    // (Zen 4, 1 thread: CifarNet conv2 b64 5 %, ResNet-18 56x56x64 b8 12 %, 28x28x128 b8
    // 10 %, 14x14x256 b8 1-8 % faster; 2 threads 7-9 %).
    const int64_t v_xi = C * tb + kXiPad<T>, z_xi = K * tb + kXiPad<T>;

    // Channel j < C + K of block b: V of input channel j, or dZ of output channel j - C.
    auto transform = [&](int64_t b, int64_t j, T* V, T* Z) {
        const Run* r1 = runs.data() + first[b + 1];
        for (const Run* r = runs.data() + first[b]; r < r1; ++r) {
            const int64_t lanes = r->jp * kMaxLanes + r->lane0;
            if (j < C)
                ks.winograd_input_run(x + (r->n * C + j) * HW, p.H, p.W, 2 * r->th - p.pad_top,
                                      2 * r->tw0 - p.pad_left, r->len, r->rows, V + j * tb + lanes,
                                      v_xi);
            else
                ks.winograd_grad_output_run(dy + (r->n * K + j - C) * OHW, p.OH, p.OW, 2 * r->th,
                                            2 * r->tw0, r->len, r->rows, Z + (j - C) * tb + lanes,
                                            z_xi);
        }
    };
    // dZ_xi read in place by the GEMM tiles (its rows are contiguous over the tiles), not
    // transposed by packA, when it meets few panels of V^T: with Cg <= 4 panels (128 float
    // channels) packA cost more than the re-reads it saves (CifarNet conv2 b64 5.00 ->
    // 4.52 ms, ResNet-18 56x56x64 b1 1.78 -> 1.68, 28x28x128 b8 12.4 -> 12.1), with 8 and
    // 16 panels it paid (14x14x256 b8 12.3 vs 12.6, 7x7x512 b8 16.5 vs 17.1 in place).
    const int64_t vt_panels = pk.padded_n(Cg) / pk.nr;
    const bool dz_in_place = a_in_place_pays(pk, vt_panels) && vt_panels <= 4;
    // dU_xi of group g (+)= dZ_xi V_xi^T over block b's tiles.
    auto product = [&](int64_t b, int64_t gx, const T* V, const T* Z, T* pa, T* pb, T* du,
                       bool accumulate) {
        const int64_t g = gx / kXi, xi = gx % kXi;
        const int64_t len = std::min(P, (b + 1) * tb) - b * tb;
        gemm_pack_b(pk, true, len, Cg, V + xi * v_xi + g * Cg * tb, tb, pb);
        if (dz_in_place) {
            gemm_packed_a_in_place(pk, Kg, Cg, len, T(1), Z + xi * z_xi + g * Kg * tb, tb, pb,
                                   accumulate ? T(1) : T(0), du + xi * KCg + g * Kg * Cg, Cg, 1);
            return;
        }
        gemm_pack_a(pk, false, Kg, len, Z + xi * z_xi + g * Kg * tb, tb, pa);
        gemm_packed(pk, Kg, Cg, len, T(1), pa, pb, accumulate ? T(1) : T(0),
                    du + xi * KCg + g * Kg * Cg, Cg, 1);
    };
    // dw = G^T dU G for the (k, c) in [i0, i1).
    auto to_weights = [&](const T* du, int64_t i0, int64_t i1) {
        const T h = T(0.5);
        for (int64_t kc = i0; kc < i1; ++kc) {
            T u[kXi];
            for (int xi = 0; xi < kXi; ++xi) u[xi] = du[xi * KCg + kc];
            T t[3][4];  // G^T dU
            for (int j = 0; j < 4; ++j) {
                t[0][j] = u[j] + h * (u[4 + j] + u[8 + j]);
                t[1][j] = h * (u[4 + j] - u[8 + j]);
                t[2][j] = h * (u[4 + j] + u[8 + j]) + u[12 + j];
            }
            T* d = dw + kc * 9;  // (G^T dU) G
            for (int i = 0; i < 3; ++i) {
                d[i * 3 + 0] = t[i][0] + h * (t[i][1] + t[i][2]);
                d[i * 3 + 1] = h * (t[i][1] - t[i][2]);
                d[i * 3 + 2] = h * (t[i][1] + t[i][2]) + t[i][3];
            }
        }
    };

    // Small dU (CifarNet conv2: 128 KiB): a fixed number of chunks of blocks, each summed
    // by one thread into its own copy of dU and added in chunk order. Threads then never
    // share a block's V and dZ (their exchange between the cores' L2s made the shared mode
    // below scale 1.4x at 2 threads there), and the chunks, not the threads, fix the order:
    // the mode is chosen without looking at the thread count, for the same bits at any.
    const int64_t nchunks = std::min<int64_t>(nblocks, kWinoGradChunks);
    if (nchunks > 1 && usize * static_cast<int64_t>(sizeof(T)) <= kWinoGradSmallU) {
        T* parts = thread_scratch<T, kWinoGradUTag>(static_cast<size_t>(nchunks * usize));
        parallel_ranges(nchunks, nt, [&](int64_t c0, int64_t c1) {
            T* V = thread_scratch<T, kWinoGradVTag>(static_cast<size_t>(kXi * v_xi));
            T* Z = thread_scratch<T, kWinoGradZTag>(static_cast<size_t>(kXi * z_xi));
            T* pa = thread_scratch<T, kWinoPackTag>(static_cast<size_t>(pa_size + pb_size));
            for (int64_t c = c0; c < c1; ++c) {
                int64_t b0, b1;
                split_range(nblocks, nchunks, c, &b0, &b1);
                for (int64_t b = b0; b < b1; ++b) {
                    for (int64_t j = 0; j < C + K; ++j) transform(b, j, V, Z);
                    for (int64_t gx = 0; gx < G * kXi; ++gx)
                        product(b, gx, V, Z, pa, pa + pa_size, parts + c * usize, b > b0);
                }
            }
        });
        // The copies summed into the first in chunk order, contiguously (a sum per (k, c)
        // read 16 x nchunks strided lines: CifarNet conv2 5 % slower), then transformed.
        parallel_ranges(usize, nt, [&](int64_t i0, int64_t i1) {
            for (int64_t c = 1; c < nchunks; ++c) {
                const T* src = parts + c * usize;
                for (int64_t i = i0; i < i1; ++i) parts[i] += src[i];
            }
        });
        parallel_ranges(KCg, nt, [&](int64_t i0, int64_t i1) { to_weights(parts, i0, i1); });
        return;
    }

    // Otherwise threads share each block: its channels' transforms, then its GEMMs.
    T* dU = thread_scratch<T, kWinoGradUTag>(static_cast<size_t>(usize));
    T* V = thread_scratch<T, kWinoGradVTag>(static_cast<size_t>(kXi * v_xi));
    T* Z = thread_scratch<T, kWinoGradZTag>(static_cast<size_t>(kXi * z_xi));
    const int team = team_for(nt);  // thread_id() < team
    T* packs = thread_scratch<T, kWinoPackTag>(static_cast<size_t>(team * (pa_size + pb_size)));
    const int64_t tchunk = dynamic_chunk(C + K, nt);
    // Nothing in the region allocates or throws: every thread reaches every barrier.
#pragma omp parallel num_threads(team)
    {
        T* pa = packs + thread_id() * (pa_size + pb_size);
        for (int64_t b = 0; b < nblocks; ++b) {
#pragma omp for schedule(dynamic, tchunk)
            for (int64_t j = 0; j < C + K; ++j) transform(b, j, V, Z);
#pragma omp for schedule(dynamic, 1)
            for (int64_t gx = 0; gx < G * kXi; ++gx)
                product(b, gx, V, Z, pa, pa + pa_size, dU, b > 0);
        }
#pragma omp for schedule(static)
        for (int64_t kc = 0; kc < KCg; ++kc) to_weights(dU, kc, kc + 1);
    }
}

template void winograd_forward<float>(const Conv2dParams&, const float*, const float*, const float*,
                                      float*, const WinogradPool<float>*, int);
template void winograd_forward<double>(const Conv2dParams&, const double*, const double*,
                                       const double*, double*, const WinogradPool<double>*, int);
template void winograd_forward<float>(const Conv2dParams&, const float*, const float*,
                                      WinogradWeights, const float*, float*,
                                      const WinogradPool<float>*, int);
template void winograd_forward<double>(const Conv2dParams&, const double*, const double*,
                                       WinogradWeights, const double*, double*,
                                       const WinogradPool<double>*, int);
template void winograd_backward_weight<float>(const Conv2dParams&, float*, const float*,
                                              const float*);
template void winograd_backward_weight<double>(const Conv2dParams&, double*, const double*,
                                               const double*);

}  // namespace fastconv
