// im2col_pack_panel and col2im_plane for one ISA: the including .cpp defines FASTCONV_ISA
// (ref / avx2 / avx512) and is compiled with that ISA's flags. Runs are short (an output row, at most NR
// lanes), so unit-stride runs are copied with (masked) vector loads/stores rather than
// memcpy calls, whose per-call cost would dominate; AVX-512 builds each vector of the panel
// with a two-source permute instead (pack_panel_permute). Semantics:
// KernelSet::im2col_pack_panel and KernelSet::col2im_plane.
// No std:: function templates here (see direct_impl.h).
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including im2col_pack_impl.h"
#endif

#include <cstdint>
#include <type_traits>

#include "fastconv/params.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
#include "kernels/avx2_lanes.h"
#endif

#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_IM2COL_KERNELS

namespace {

// Copies one run (same lanes, same source offset) for every row r < nrows of a panel:
//   out[r*nr + i] = base[row_off[r] + i], i < len.
// Run-major order: the run's lane mask is built once, and the inner loop is one (masked)
// vector load and store per row, instead of re-reading the run table for every row.
template <typename T>
inline void copy_run_all_rows(T* __restrict out, int64_t nr, const T* __restrict base,
                              const int64_t* __restrict row_off, int64_t nrows, int64_t len) {
#if defined(__AVX512F__)
    constexpr int64_t W = 64 / sizeof(T);
    const int64_t full = len / W, rem = len % W;
    const uint32_t bits = (1u << rem) - 1u;
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = base + row_off[r];
        T* d = out + r * nr;
        if constexpr (std::is_same_v<T, float>) {
            for (int64_t c = 0; c < full; ++c)
                _mm512_storeu_ps(d + c * W, _mm512_loadu_ps(s + c * W));
            if (rem) {
                const __mmask16 m = static_cast<__mmask16>(bits);
                _mm512_mask_storeu_ps(d + full * W, m, _mm512_maskz_loadu_ps(m, s + full * W));
            }
        } else {
            for (int64_t c = 0; c < full; ++c)
                _mm512_storeu_pd(d + c * W, _mm512_loadu_pd(s + c * W));
            if (rem) {
                const __mmask8 m = static_cast<__mmask8>(bits);
                _mm512_mask_storeu_pd(d + full * W, m, _mm512_maskz_loadu_pd(m, s + full * W));
            }
        }
    }
#elif defined(__AVX2__)
    // Full 256-bit chunks, then scalar: AVX2 masked stores are slow on several AMD cores.
    constexpr int64_t W = 32 / sizeof(T);
    const int64_t full = len / W;
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = base + row_off[r];
        T* d = out + r * nr;
        for (int64_t c = 0; c < full; ++c) {
            if constexpr (std::is_same_v<T, float>)
                _mm256_storeu_ps(d + c * W, _mm256_loadu_ps(s + c * W));
            else
                _mm256_storeu_pd(d + c * W, _mm256_loadu_pd(s + c * W));
        }
        for (int64_t i = full * W; i < len; ++i) d[i] = s[i];
    }
#else
    for (int64_t r = 0; r < nrows; ++r) {
        const T* s = base + row_off[r];
        T* d = out + r * nr;
        for (int64_t i = 0; i < len; ++i) d[i] = s[i];
    }
#endif
}

#if defined(__AVX512F__)
// Lane types of the permute path below: W lanes of T, indices of the same lane width.
template <typename T>
struct PermLanes;

template <>
struct PermLanes<float> {
    static constexpr int64_t W = 16;
    using V = __m512;
    using M = __mmask16;
    static __m512i iota() {
        return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }
    static __m512i set1(int64_t v) { return _mm512_set1_epi32(static_cast<int32_t>(v)); }
    static __m512i add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
    static __m512i mask_add(__m512i s, M m, __m512i a, __m512i b) {
        return _mm512_mask_add_epi32(s, m, a, b);
    }
    static __m512i mul(__m512i a, __m512i b) { return _mm512_mullo_epi32(a, b); }
    static __m512i sub(__m512i a, __m512i b) { return _mm512_sub_epi32(a, b); }
    static M lt(__m512i a, __m512i b) { return _mm512_cmplt_epi32_mask(a, b); }
    static V zero() { return _mm512_setzero_ps(); }
    static M prefix(int64_t n) {  // lanes [0, n), n clamped to [0, W]
        return static_cast<M>(n <= 0 ? 0u : n >= W ? 0xFFFFu : (1u << n) - 1u);
    }
    static V load(M m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static V perm(M m, V a, __m512i idx, V b) { return _mm512_maskz_permutex2var_ps(m, a, idx, b); }
    static V blend(M m, V a, V b) { return _mm512_mask_blend_ps(m, a, b); }  // b where m
    static V gather(M m, __m512i off, const float* base) {
        return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, off, base, 4);
    }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};

template <>
struct PermLanes<double> {
    static constexpr int64_t W = 8;
    using V = __m512d;
    using M = __mmask8;
    static __m512i iota() { return _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7); }
    static __m512i set1(int64_t v) { return _mm512_set1_epi64(v); }
    static __m512i add(__m512i a, __m512i b) { return _mm512_add_epi64(a, b); }
    static __m512i mask_add(__m512i s, M m, __m512i a, __m512i b) {
        return _mm512_mask_add_epi64(s, m, a, b);
    }
    static __m512i mul(__m512i a, __m512i b) { return _mm512_mullo_epi64(a, b); }
    static __m512i sub(__m512i a, __m512i b) { return _mm512_sub_epi64(a, b); }
    static M lt(__m512i a, __m512i b) { return _mm512_cmplt_epi64_mask(a, b); }
    static V zero() { return _mm512_setzero_pd(); }
    static M prefix(int64_t n) {  // lanes [0, n), n clamped to [0, W]
        return static_cast<M>(n <= 0 ? 0u : n >= W ? 0xFFu : (1u << n) - 1u);
    }
    static V load(M m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
    static V perm(M m, V a, __m512i idx, V b) { return _mm512_maskz_permutex2var_pd(m, a, idx, b); }
    static V blend(M m, V a, V b) { return _mm512_mask_blend_pd(m, a, b); }  // b where m
    static V gather(M m, __m512i off, const double* base) {
        return _mm512_mask_i64gather_pd(_mm512_setzero_pd(), m, off, base, 8);
    }
    static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
};

// The panel one W-lane vector at a time: each lane's source offset (relative to a row's
// base) comes from the runs. A vector's lanes split into at most two parts whose offsets
// each span at most 2W elements of the input (at stride 1 each output row crossed adds
// (KW-1)*dil to the span; at stride 2, a vector within one output row; with several images
// per panel, the two sides of an image boundary). Each part of every row is two masked
// loads and one two-source permute (vpermt2ps), whatever the number of runs it crosses,
// and two parts are blended into one full store; the run-by-run copy needs one masked load
// and store per run and row. Vectors that need more parts (large strides) gather, which
// took 40 % of this function on LeNet-5's conv2 (8 images per panel) before image
// boundaries were split. Lanes >= ncols are zeroed. Returns false (nothing written) if
// float offsets would not fit in int32 lanes, or nr is not a multiple of W or exceeds
// kMaxVecs vectors.
template <typename T>
struct PanelPart {  // lanes `valid` of a vector: offset lo + idx[lane], within 2W of lo
    __m512i idx;
    int64_t lo, span;
    typename PermLanes<T>::M valid;
};

// The two-vector panel (float NR = 32, double NR = 16) with P0 / P1 parts per vector. Rows
// are taken in groups whose bases lie within `slack` of the group's first: the kw taps of
// one (c, kh) at dilation 1 are bases 0, 1, .., KW-1 apart. One pair of loads per part
// serves the whole group, each row permuting with its index shifted by its base's distance
// from the first. A vector with no valid lane (the last panel) is one part of span 0: it
// loads nothing and stores zeros.
template <typename T, int P0, int P1>
void permute_two_vectors(const T* xp, const int64_t* row_off, int64_t nrows,
                         const PanelPart<T> (*parts)[2], int64_t nr, T* out) {
    using L = PermLanes<T>;
    constexpr int64_t W = L::W;
    constexpr int kParts[2] = {P0, P1};
    int64_t max_span = 0;
    for (int v = 0; v < 2; ++v)
        for (int q = 0; q < kParts[v]; ++q)
            max_span = parts[v][q].span > max_span ? parts[v][q].span : max_span;
    const int64_t slack = 2 * W - max_span;
    for (int64_t r = 0; r < nrows;) {
        const int64_t base = row_off[r];
        int64_t r1 = r + 1;
        while (r1 < nrows && row_off[r1] >= base && row_off[r1] - base <= slack) ++r1;
        const int64_t ext = row_off[r1 - 1] - base;  // reads reach ext past row r's
        typename L::V lo[2][2], hi[2][2];
#pragma GCC unroll 2
        for (int v = 0; v < 2; ++v)
#pragma GCC unroll 2
            for (int q = 0; q < kParts[v]; ++q) {
                const PanelPart<T>& e = parts[v][q];
                const T* s = xp + base + e.lo;
                lo[v][q] = L::load(e.span ? L::prefix(e.span + ext) : 0, s);
                hi[v][q] = L::load(e.span ? L::prefix(e.span + ext - W) : 0, s + W);
            }
        for (; r < r1; ++r) {
            const __m512i shift = L::set1(row_off[r] - base);
#pragma GCC unroll 2
            for (int v = 0; v < 2; ++v) {
                const PanelPart<T>& e = parts[v][0];
                typename L::V o = L::perm(e.valid, lo[v][0], L::add(e.idx, shift), hi[v][0]);
                if (kParts[v] == 2) {
                    const PanelPart<T>& f = parts[v][1];
                    o = L::blend(f.valid, o,
                                 L::perm(f.valid, lo[v][1], L::add(f.idx, shift), hi[v][1]));
                }
                L::store(out + r * nr + v * W, o);
            }
        }
    }
}

template <typename T>
bool pack_panel_permute(const T* xp, const int64_t* row_off, int64_t nrows, const Im2colRun* runs,
                        int64_t nruns, int64_t stride_w, int64_t ncols, int64_t nr, T* out) {
    using L = PermLanes<T>;
    constexpr int64_t W = L::W;
    if (nr % W != 0) return false;
    if constexpr (std::is_same_v<T, float>) {
        for (int64_t q = 0; q < nruns; ++q)
            if (runs[q].src + runs[q].len * stride_w >= (int64_t(1) << 31)) return false;
    }
    enum Kind { kZeros, kPermute, kGather };  // how each vector of the panel is filled
    constexpr int64_t kMaxVecs = 4;
    const int64_t nv = nr / W;
    if (nv > kMaxVecs) return false;
    struct Desc {
        __m512i off;
        typename L::M valid;
        Kind kind;
        int nparts;
    } d[kMaxVecs];
    PanelPart<T> parts[kMaxVecs][2];
    const __m512i iota = L::iota(), sw = L::set1(stride_w);
    bool permute_only = true;
    for (int64_t v = 0; v < nv; ++v) {
        const int64_t j0 = v * W;
        Desc& e = d[v];
        e.valid = L::lt(L::add(iota, L::set1(j0)), L::set1(ncols));
        e.kind = kZeros;
        e.nparts = 1;
        if (!e.valid) {  // span 0 keeps the two-vector path's loads for it masked off
            parts[v][0] = {L::set1(0), 0, 0, 0};
            permute_only = permute_only && v > 0;
            continue;
        }
        // off[lane] = run.src + (j0 + lane - run.dst) * stride_w for the run holding the lane
        const __m512i jsw = L::mul(L::add(iota, L::set1(j0)), sw);
        // Runs are in lane order and offsets increase along the lanes (images, then output
        // rows, then columns): a part's first lane has its least offset, its last the
        // greatest. A part ends where the next run's lanes would take it past 2W.
        e.off = L::set1(0);
        e.nparts = 0;
        e.kind = kPermute;
        int64_t hi = 0;
        for (int64_t q = 0; q < nruns; ++q) {  // every run: a gathered vector needs all of off
            const int64_t d0 = runs[q].dst, d1 = d0 + runs[q].len;
            const int64_t a = d0 > j0 ? d0 : j0, b = d1 < j0 + W ? d1 : j0 + W;
            if (a >= b) continue;
            const typename L::M m = static_cast<typename L::M>(((uint32_t(1) << (b - j0)) - 1u) &
                                                               ~((uint32_t(1) << (a - j0)) - 1u));
            const int64_t shift = runs[q].src - d0 * stride_w;
            e.off = L::mask_add(e.off, m, jsw, L::set1(shift));
            const int64_t run_lo = shift + a * stride_w, run_hi = shift + (b - 1) * stride_w;
            if (e.kind == kGather) {
                continue;
            } else if (e.nparts > 0 && run_hi - parts[v][e.nparts - 1].lo < 2 * W) {
                parts[v][e.nparts - 1].valid |= m;
            } else if (e.nparts < 2 && run_hi - run_lo < 2 * W) {
                if (e.nparts > 0) parts[v][e.nparts - 1].span = hi - parts[v][e.nparts - 1].lo + 1;
                parts[v][e.nparts++] = {L::set1(0), run_lo, 0, m};
            } else {
                e.kind = kGather;
            }
            hi = run_hi;
        }
        if (e.kind == kGather) {
            permute_only = false;
            continue;
        }
        PanelPart<T>& last = parts[v][e.nparts - 1];
        last.span = hi - last.lo + 1;
        for (int q = 0; q < e.nparts; ++q) parts[v][q].idx = L::sub(e.off, L::set1(parts[v][q].lo));
    }
    if (permute_only && nv == 2) {  // the common case (float NR = 32, double NR = 16)
        const int np = d[0].nparts * 2 + d[1].nparts;  // 3, 4, 5 or 6
        if (np == 3)
            permute_two_vectors<T, 1, 1>(xp, row_off, nrows, parts, nr, out);
        else if (np == 4)
            permute_two_vectors<T, 1, 2>(xp, row_off, nrows, parts, nr, out);
        else if (np == 5)
            permute_two_vectors<T, 2, 1>(xp, row_off, nrows, parts, nr, out);
        else
            permute_two_vectors<T, 2, 2>(xp, row_off, nrows, parts, nr, out);
        return true;
    }
    for (int64_t v = 0; v < nv; ++v) {
        const Desc& e = d[v];
        T* o = out + v * W;
        if (e.kind == kZeros) {
            for (int64_t r = 0; r < nrows; ++r) L::store(o + r * nr, L::zero());
        } else if (e.kind == kPermute) {
            for (int64_t r = 0; r < nrows; ++r) {
                typename L::V x = L::zero();
                for (int q = 0; q < e.nparts; ++q) {
                    const PanelPart<T>& f = parts[v][q];
                    const T* s = xp + row_off[r] + f.lo;
                    x = L::blend(f.valid, x,
                                 L::perm(f.valid, L::load(L::prefix(f.span), s), f.idx,
                                         L::load(L::prefix(f.span - W), s + W)));
                }
                L::store(o + r * nr, x);
            }
        } else {
            for (int64_t r = 0; r < nrows; ++r)
                L::store(o + r * nr, L::gather(e.valid, e.off, xp + row_off[r]));
        }
    }
    return true;
}
#elif defined(__AVX2__)
// The lanes of one panel vector that one run fills: a masked load at row base + off (at
// stride 2, two: elements [off, off + 2W) with the even ones of the run's lanes kept).
struct MaskedPart {
    int64_t off;
    __m256i mask, mask_hi;
};

// One panel vector (column o of out) for every row from its NP parts; NP = 0 stores
// zeros, and a stride-1 part with every lane (full) is a plain load. Masked-off lanes
// load zeros, so the parts combine by OR, bit-exact (an add would turn -0 into +0); at
// stride 2 element e of any part's pair of loads is lane e / 2, so the pairs are ORed
// first and the even elements taken once.
template <typename T, int NP, bool full, int S>
void masked_vector_rows(const T* xp, const int64_t* row_off, int64_t nrows, const MaskedPart* f,
                        int64_t nr, T* o) {
    using L = Lanes256<T>;
    for (int64_t r = 0; r < nrows; ++r, o += nr) {
        const T* base = xp + row_off[r];
        typename L::V x = L::zero();
        if constexpr (full) {
            x = L::loadu(base + f[0].off);
        } else if constexpr (S == 1) {
            for (int q = 0; q < NP; ++q) x = L::bit_or(x, L::maskload(f[q].mask, base + f[q].off));
        } else if constexpr (NP > 0) {
            typename L::V hi = L::zero();
            for (int q = 0; q < NP; ++q) {
                x = L::bit_or(x, L::maskload(f[q].mask, base + f[q].off));
                hi = L::bit_or(hi, L::maskload(f[q].mask_hi, base + f[q].off + L::L));
            }
            x = evens(x, hi);
        }
        L::storeu(o, x);
    }
}

template <typename T, int S>
void masked_panel(const T* xp, const int64_t* row_off, int64_t nrows, const MaskedPart* f, int np,
                  bool full, int64_t nr, T* o) {
    if (full)
        masked_vector_rows<T, 1, true, S>(xp, row_off, nrows, f, nr, o);
    else if (np == 0)
        masked_vector_rows<T, 0, false, S>(xp, row_off, nrows, f, nr, o);
    else if (np == 1)
        masked_vector_rows<T, 1, false, S>(xp, row_off, nrows, f, nr, o);
    else if (np == 2)
        masked_vector_rows<T, 2, false, S>(xp, row_off, nrows, f, nr, o);
    else
        masked_vector_rows<T, 3, false, S>(xp, row_off, nrows, f, nr, o);
}

// The panel at stride 1 or 2 one W-lane vector at a time: lane j of a run reads row base
// + src + (j - dst) * stride, so the run's lanes within a vector starting at lane j0 are
// one masked load at src + (j0 - dst) * stride (two at stride 2). AVX2 masked loads do
// not fault on masked-off lanes, so a load may start before the run and end past it, even
// past the array. Vectors of 1..3 runs; a vector whose lanes cross more runs (output rows
// shorter than W / 3) returns false, with nothing written. The run-by-run copy this
// replaces took a scalar loop for every run's last len % W lanes (37 % of LeNet-5's conv2
// forward: runs of 10 and 6 lanes) and for every lane at stride 2.
template <typename T>
bool pack_panel_masked(const T* xp, const int64_t* row_off, int64_t nrows, const Im2colRun* runs,
                       int64_t nruns, int64_t stride_w, int64_t nr, T* out) {
    using L = Lanes256<T>;
    constexpr int64_t W = L::L;
    constexpr int kMaxVecs = 4, kMaxParts = 3;
    if (nr % W != 0 || nr / W > kMaxVecs || stride_w < 1 || stride_w > 2) return false;
    const int64_t nv = nr / W;
    MaskedPart parts[kMaxVecs][kMaxParts];
    int np[kMaxVecs];
    bool full[kMaxVecs];
    for (int64_t v = 0; v < nv; ++v) {
        const int64_t j0 = v * W;
        np[v] = 0;
        full[v] = false;
        for (int64_t q = 0; q < nruns; ++q) {
            const int64_t d0 = runs[q].dst, d1 = d0 + runs[q].len;
            const int64_t a = d0 > j0 ? d0 : j0, b = d1 < j0 + W ? d1 : j0 + W;
            if (a >= b) continue;
            if (np[v] == kMaxParts) return false;
            MaskedPart& f = parts[v][np[v]++];
            f.off = runs[q].src + (j0 - d0) * stride_w;
            if (stride_w == 1) {
                f.mask = L::lanes(a - j0, b - j0);
                full[v] = b - a == W;
            } else {  // element e of the 2W loaded holds lane e / 2 when e is even
                const int64_t e0 = 2 * (a - j0), e1 = 2 * (b - j0);
                f.mask = _mm256_and_si256(L::lanes(e0, e1), L::even_mask());
                f.mask_hi = _mm256_and_si256(L::lanes(e0 - W, e1 - W), L::even_mask());
            }
        }
    }
    for (int64_t v = 0; v < nv; ++v) {
        if (stride_w == 1)
            masked_panel<T, 1>(xp, row_off, nrows, parts[v], np[v], full[v], nr, out + v * W);
        else
            masked_panel<T, 2>(xp, row_off, nrows, parts[v], np[v], false, nr, out + v * W);
    }
    return true;  // lanes >= ncols belong to no run: zeros
}
#endif

}  // namespace

template <typename T>
void im2col_pack_panel(const T* xp, const int64_t* row_off, int64_t nrows, const Im2colRun* runs,
                       int64_t nruns, int64_t stride_w, int64_t ncols, int64_t nr, T* out) {
#if defined(__AVX512F__)
    if (pack_panel_permute(xp, row_off, nrows, runs, nruns, stride_w, ncols, nr, out)) return;
#elif defined(__AVX2__)
    if (pack_panel_masked(xp, row_off, nrows, runs, nruns, stride_w, nr, out)) return;
#endif
    if (stride_w == 1) {
        for (int64_t q = 0; q < nruns; ++q)
            copy_run_all_rows(out + runs[q].dst, nr, xp + runs[q].src, row_off, nrows, runs[q].len);
    } else {
        for (int64_t r = 0; r < nrows; ++r) {
            const T* base = xp + row_off[r];
            for (int64_t q = 0; q < nruns; ++q) {
                const T* s = base + runs[q].src;
                T* d = out + r * nr + runs[q].dst;
                for (int64_t i = 0; i < runs[q].len; ++i) d[i] = s[i * stride_w];
            }
        }
    }
    if (ncols < nr)
        for (int64_t r = 0; r < nrows; ++r)
            for (int64_t j = ncols; j < nr; ++j) out[r * nr + j] = T(0);
}

namespace {

// Lane traits of col2im_plane: L lanes of T, masked loads (masked-off lanes read nothing, so
// their addresses may lie outside the buffer), stores of the first n lanes.
template <typename T>
struct Col2imLanes;
#if defined(__AVX512F__)
template <typename T>
struct Col2imLanes : PermLanes<T> {  // the permute path's lanes, zero() and masked load()
    using P = PermLanes<T>;
    using V = typename P::V;
    static constexpr int64_t L = P::W;
    static V add(V a, V b) {
        if constexpr (std::is_same_v<T, float>)
            return _mm512_add_ps(a, b);
        else
            return _mm512_add_pd(a, b);
    }
    static void store(T* d, int64_t n, V v) {
        if constexpr (std::is_same_v<T, float>)
            _mm512_mask_storeu_ps(d, static_cast<typename P::M>((1u << n) - 1u), v);
        else
            _mm512_mask_storeu_pd(d, static_cast<typename P::M>((1u << n) - 1u), v);
    }
};
#elif defined(__AVX2__)
template <typename T>
struct Col2imLanes : Lanes256<T> {  // masks as bits; partial stores by pieces
    using B = Lanes256<T>;
    static typename B::V load(uint32_t m, const T* p) { return B::maskload(B::from_bits(m), p); }
    static typename B::V loadu(const T* p) { return B::loadu(p); }
    static void store(T* d, int64_t n, typename B::V v) { store_first(d, v, n); }
};
#else
template <typename T>
struct Col2imLanes {  // one lane: the same loops, scalar
    using V = T;
    static constexpr int64_t L = 1;
    static V zero() { return T(0); }
    static V add(V a, V b) { return a + b; }
    static V load(uint32_t m, const T* p) { return m ? *p : T(0); }
    static V loadu(const T* p) { return *p; }
    static void store(T* d, int64_t, V v) { *d = v; }
};
#endif

// The output row whose tap kh reads input row ih, or -1 (col2im at any row stride).
inline int64_t col2im_tap_row(const Conv2dParams& p, int64_t ih, int64_t kh) {
    const int64_t num = ih + p.pad_top - kh * p.dil_h;
    if (num < 0 || (p.stride_h != 1 && num % p.stride_h != 0)) return -1;
    const int64_t o = p.stride_h == 1 ? num : num / p.stride_h;
    return o < p.OH ? o : -1;
}

// The lanes of the input-column chunk [w0, w0 + n) (n <= 32) that tap kw reaches at unit
// column stride, as bits, and in *off where lane 0 reads within an output row: input
// column w0 + i reads output column w0 + i - shift, valid in [0, OW).
inline uint32_t col2im_tap_lanes(const Conv2dParams& p, int64_t w0, int64_t n, int64_t kw,
                                 int64_t* off) {
    const int64_t shift = kw * p.dil_w - p.pad_left;
    const int64_t lo = shift - w0 > 0 ? shift - w0 : 0;
    const int64_t hi = shift - w0 + p.OW < n ? shift - w0 + p.OW : n;
    *off = w0 - shift;
    return lo < hi ? (hi >= 32 ? ~0u : (1u << hi) - 1u) & ~((1u << lo) - 1u) : 0u;
}

// Rows ih0 .. ih0 + R - 1 of col2im_plane, one L-lane chunk [w0, w0 + n) at a time: R
// independent accumulators (a single one is a chain of KH*KW dependent adds), each summing
// its row's taps in (kh, kw) order. mask[kw] / off[kw]: the chunk's lanes that tap kw
// reaches and where they read within an output row (w0 - shift).
template <typename T, int R>
inline void col2im_rows(const Conv2dParams& p, const T* col, const int64_t* oh, int64_t w0,
                        int64_t n, const uint32_t* mask, const int64_t* off, T* dx) {
    using Ln = Col2imLanes<T>;
    const int64_t OHW = p.OH * p.OW;
    // The r loops unrolled keep acc in registers (GCC left it on the stack, a store and a
    // reload per add: 40 % of col2im_rows_plane on LeNet-5's conv2).
    typename Ln::V acc[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = Ln::zero();
    for (int64_t kh = 0; kh < p.KH; ++kh) {
        const T* row[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const int64_t o = oh[r * p.KH + kh];
            row[r] = o >= 0 ? col + kh * p.KW * OHW + o * p.OW : nullptr;
        }
        for (int64_t kw = 0; kw < p.KW; ++kw) {
            if (!mask[kw]) continue;
            const int64_t at = kw * OHW + off[kw];
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
                if (row[r]) acc[r] = Ln::add(acc[r], Ln::load(mask[kw], row[r] + at));
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) Ln::store(dx + r * p.W + w0, n, acc[r]);
}

// One plane by input rows (col2im_planes' general path).
template <typename T>
void col2im_rows_plane(const Conv2dParams& p, const T* col, T* dx) {
    // Each input row gathers its taps' output rows and is written once: no zero-fill pass,
    // and no read-modify-write of rows that the next tap's unaligned store overlaps (the
    // scatter-add's store-forwarding stalls: 40 % of LeNet-5 conv2's backward_data).
    using Ln = Col2imLanes<T>;
    constexpr int R = 4;
    uint32_t mask[kCol2imMaxTaps];
    int64_t off[kCol2imMaxTaps];
    int64_t oh[R * kCol2imMaxTaps];
    for (int64_t w0 = 0; w0 < p.W; w0 += Ln::L) {
        const int64_t n = p.W - w0 < Ln::L ? p.W - w0 : Ln::L;
        for (int64_t kw = 0; kw < p.KW; ++kw) mask[kw] = col2im_tap_lanes(p, w0, n, kw, &off[kw]);
        for (int64_t ih0 = 0; ih0 < p.H; ih0 += R) {
            const int rows = p.H - ih0 < R ? static_cast<int>(p.H - ih0) : R;
            // oh[r * KH + kh]: the output row whose tap kh reads input row ih0 + r, or -1.
            for (int r = 0; r < rows; ++r)
                for (int64_t kh = 0; kh < p.KH; ++kh)
                    oh[r * p.KH + kh] = col2im_tap_row(p, ih0 + r, kh);
            T* d = dx + ih0 * p.W;
            if (rows == R) {
                col2im_rows<T, R>(p, col, oh, w0, n, mask, off, d);
            } else {
                for (int r = 0; r < rows; ++r)
                    col2im_rows<T, 1>(p, col, oh + r * p.KH, w0, n, mask, off, d + r * p.W);
            }
        }
    }
}

#if !defined(__AVX512F__)
// col2im_rows_plane's sums by a table built once per call. The entries of one output
// vector (an input row ih and its chunk of L columns) -- each tap that reaches it: its col
// offset and lane mask -- depend only on the shapes, where col2im_rows_plane rebuilds its
// masks and row tables per plane and per row group, which cost more than the adds on small
// planes (23 % of Keras conv3's backward_data on Zen 3, 6x6 planes). P planes at a time
// give P independent chains of adds. Returns false (nothing written) if the table would
// exceed its fixed size; the sums are the row path's, in the same (kh, kw) order.
template <typename T>
bool col2im_table(const Conv2dParams& p, const T* col, int64_t nplanes, T* dx) {
    using Ln = Col2imLanes<T>;
    constexpr int64_t L = Ln::L, kMaxEntries = 4096, kMaxOut = 1024;
    const int64_t nchunks = (p.W + L - 1) / L, nout = p.H * nchunks;
    const int64_t KK = p.KH * p.KW, OHW = p.OH * p.OW, HW = p.H * p.W;
    // Under 4 planes a vector's taps are one chain of dependent adds, where the row path
    // interleaves 4 rows (LeNet-5 conv1's single 32x32 plane: 1.5x slower).
    if (nplanes < 4 || nout > kMaxOut || nout * KK > kMaxEntries || KK * OHW >= (int64_t(1) << 30))
        return false;
    constexpr uint32_t kFull = L >= 32 ? ~0u : (1u << L) - 1u;
    struct Entry {
        int32_t src;  // col offset of the tap's vector (lanes outside mask read nothing)
        uint32_t mask;
    };
    Entry e[kMaxEntries];
    int32_t first[kMaxOut + 1];  // entries of output vector o = ih * nchunks + chunk
    int64_t n = 0;
    for (int64_t ih = 0; ih < p.H; ++ih)
        for (int64_t c = 0; c < nchunks; ++c) {
            first[ih * nchunks + c] = static_cast<int32_t>(n);
            const int64_t w0 = c * L, nl = p.W - w0 < L ? p.W - w0 : L;
            for (int64_t kh = 0; kh < p.KH; ++kh) {
                const int64_t oh = col2im_tap_row(p, ih, kh);
                if (oh < 0) continue;
                for (int64_t kw = 0; kw < p.KW; ++kw) {
                    int64_t off;
                    const uint32_t m = col2im_tap_lanes(p, w0, nl, kw, &off);
                    if (m)
                        e[n++] = {static_cast<int32_t>((kh * p.KW + kw) * OHW + oh * p.OW + off),
                                  m};
                }
            }
        }
    first[nout] = static_cast<int32_t>(n);
    auto planes = [&](auto np, const T* cp, T* d) {
        constexpr int P = decltype(np)::value;
        for (int64_t o = 0; o < nout; ++o) {
            typename Ln::V acc[P];
#pragma GCC unroll 4
            for (int j = 0; j < P; ++j) acc[j] = Ln::zero();
            for (int64_t i = first[o]; i < first[o + 1]; ++i) {
                const Entry x = e[i];
                const T* s = cp + x.src;
                if (x.mask == kFull) {
#pragma GCC unroll 4
                    for (int j = 0; j < P; ++j)
                        acc[j] = Ln::add(acc[j], Ln::loadu(s + j * KK * OHW));
                } else {
#pragma GCC unroll 4
                    for (int j = 0; j < P; ++j)
                        acc[j] = Ln::add(acc[j], Ln::load(x.mask, s + j * KK * OHW));
                }
            }
            const int64_t ih = o / nchunks, w0 = (o % nchunks) * L;
            const int64_t nl = p.W - w0 < L ? p.W - w0 : L;
#pragma GCC unroll 4
            for (int j = 0; j < P; ++j) Ln::store(d + j * HW + ih * p.W + w0, nl, acc[j]);
        }
    };
    int64_t c = 0;
    for (; c + 4 <= nplanes; c += 4)
        planes(std::integral_constant<int, 4>{}, col + c * KK * OHW, dx + c * HW);
    for (; c + 2 <= nplanes; c += 2)
        planes(std::integral_constant<int, 2>{}, col + c * KK * OHW, dx + c * HW);
    for (; c < nplanes; ++c)
        planes(std::integral_constant<int, 1>{}, col + c * KK * OHW, dx + c * HW);
    return true;
}
#endif

#if defined(__AVX512F__)
// col2im of small planes (W at most half a vector, stride 1), one vector of the flattened
// H x W plane at a time: a vector covers several input rows, where the row path would
// spend a vector per row with most lanes idle (Keras conv3's 6x6 planes: 6 of 16). For tap
// t, lane q = ih*W + iw of the plane reads col row t at (ih + a)*OW + iw + b, where a and b
// are the tap's shifts: base[q] = ih*OW + iw plus a constant, so one pair of masked loads
// and one two-source permute give the tap's contribution to the whole vector (lanes it
// does not reach are zeroed). The table of (vector, tap) entries depends only on the
// shapes and is built once for all planes; the row path rebuilt its masks and row tables
// per plane, which cost more than the adds on 6x6 planes. Returns false (nothing written)
// if the layer does not qualify or an entry would span more than two vectors.
template <typename T>
bool col2im_flat(const Conv2dParams& p, const T* col, int64_t nplanes, T* dx) {
    using L = Col2imLanes<T>;
    constexpr int64_t W = L::W, kMaxEntries = 128;
    const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, KK = p.KH * p.KW;
    const int64_t nvec = (HW + W - 1) / W;
    if (p.stride_h != 1 || p.stride_w != 1 || 2 * p.W > W || nvec * KK > kMaxEntries ||
        OHW * KK >= (int64_t(1) << 31))
        return false;
    struct Entry {
        __m512i idx;
        int64_t src;  // col offset of the entry's first valid lane, tap row included
        typename L::M valid, m1, m2;
    };
    Entry e[kMaxEntries];
    int64_t first[kMaxEntries + 1];  // entries of vector v: [first[v], first[v + 1])
    int64_t n = 0;
    for (int64_t v = 0; v < nvec; ++v) {
        first[v] = n;
        int64_t ih[W], iw[W], base[W];
        const int64_t lanes = HW - v * W < W ? HW - v * W : W;
        for (int64_t l = 0; l < lanes; ++l) {
            ih[l] = (v * W + l) / p.W;
            iw[l] = (v * W + l) % p.W;
            base[l] = ih[l] * p.OW + iw[l];
        }
        for (int64_t kh = 0; kh < p.KH; ++kh) {
            const int64_t a = p.pad_top - kh * p.dil_h;
            uint32_t rows = 0;  // lanes whose output row ih + a exists
            for (int64_t l = 0; l < lanes; ++l)
                if (ih[l] + a >= 0 && ih[l] + a < p.OH) rows |= 1u << l;
            for (int64_t kw = 0; kw < p.KW; ++kw) {
                const int64_t b = p.pad_left - kw * p.dil_w;
                uint32_t m = 0;
                for (int64_t l = 0; l < lanes; ++l)
                    if ((rows >> l & 1u) && iw[l] + b >= 0 && iw[l] + b < p.OW) m |= 1u << l;
                if (!m) continue;
                const int f = __builtin_ctz(m), last = 31 - __builtin_clz(m);
                const int64_t span = base[last] - base[f] + 1;
                if (span > 2 * W) return false;
                int32_t idx[W] = {};
                for (int64_t l = 0; l < lanes; ++l)
                    if (m >> l & 1u) idx[l] = static_cast<int32_t>(base[l] - base[f]);
                Entry& x = e[n++];
                if constexpr (std::is_same_v<T, float>)
                    x.idx = _mm512_loadu_si512(idx);
                else
                    x.idx =
                        _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<__m256i*>(idx)));
                x.src = (kh * p.KW + kw) * OHW + (ih[f] + a) * p.OW + iw[f] + b;
                x.valid = static_cast<typename L::M>(m);
                x.m1 = L::prefix(span);
                x.m2 = L::prefix(span - W);
            }
        }
    }
    first[nvec] = n;
    // P planes at a time: P independent chains of adds (one chain waited on the add's
    // latency at every entry), each entry's index and masks loaded once.
    auto planes = [&](auto np, const T* cp, T* d) {
        constexpr int P = decltype(np)::value;
        for (int64_t v = 0; v < nvec; ++v) {
            typename L::V acc[P];
#pragma GCC unroll 4
            for (int j = 0; j < P; ++j) acc[j] = L::zero();
            for (int64_t i = first[v]; i < first[v + 1]; ++i) {
                const Entry& x = e[i];
#pragma GCC unroll 4
                for (int j = 0; j < P; ++j) {
                    const T* s = cp + j * KK * OHW + x.src;
                    acc[j] = L::add(
                        acc[j], L::perm(x.valid, L::load(x.m1, s), x.idx, L::load(x.m2, s + W)));
                }
            }
#pragma GCC unroll 4
            for (int j = 0; j < P; ++j)
                L::store(d + j * HW + v * W, HW - v * W < W ? HW - v * W : W, acc[j]);
        }
    };
    int64_t c = 0;
    for (; c + 4 <= nplanes; c += 4)
        planes(std::integral_constant<int, 4>{}, col + c * KK * OHW, dx + c * HW);
    for (; c < nplanes; ++c)
        planes(std::integral_constant<int, 1>{}, col + c * KK * OHW, dx + c * HW);
    return true;
}
#endif

}  // namespace

template <typename T>
void col2im_planes(const Conv2dParams& p, const T* col, int64_t nplanes, T* dx) {
#if defined(__AVX512F__)
    if (col2im_flat(p, col, nplanes, dx)) return;
#else
    if (col2im_table(p, col, nplanes, dx)) return;
#endif
    for (int64_t c = 0; c < nplanes; ++c)
        col2im_rows_plane(p, col + c * p.KH * p.KW * p.OH * p.OW, dx + c * p.H * p.W);
}

FASTCONV_INSTANTIATE_IM2COL_KERNELS(float)
FASTCONV_INSTANTIATE_IM2COL_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
