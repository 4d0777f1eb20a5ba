// im2col_pack_panel for one ISA: the including .cpp defines FASTCONV_ISA (ref / avx2 /
// avx512) and is compiled with that ISA's flags. Runs are short (an output row, at most NR
// lanes), so unit-stride runs are copied with (masked) vector loads/stores rather than
// memcpy calls, whose per-call cost would dominate; AVX-512 builds each vector of the panel
// with a two-source permute instead (pack_panel_permute). Semantics:
// KernelSet::im2col_pack_panel.
// No std:: function templates here (see direct_impl.h).
#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA before including im2col_pack_impl.h"
#endif

#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
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
    static V gather(M m, __m512i off, const double* base) {
        return _mm512_mask_i64gather_pd(_mm512_setzero_pd(), m, off, base, 8);
    }
    static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
};

// The panel one W-lane vector at a time: each lane's source offset (relative to a row's
// base) comes from the runs. When a vector's lanes span at most 2W elements of the input
// (at stride 1 each output row crossed adds (KW-1)*dil to the span; at stride 2, a vector
// within one output row), every row is two masked loads and one two-source permute
// (vpermt2ps) into a full store, whatever the number of runs it crosses; the run-by-run
// copy needs one masked load and store per run and row. Wider spans (an image boundary
// inside the vector, large strides) gather. Lanes >= ncols are zeroed. Returns false
// (nothing written) if float offsets would not fit in int32 lanes, or nr is not a multiple
// of W or exceeds kMaxVecs vectors.
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
        __m512i off, idx;
        int64_t lo, span;
        typename L::M valid, m1, m2;
        Kind kind;
    } d[kMaxVecs];
    const __m512i iota = L::iota(), sw = L::set1(stride_w);
    bool permute_only = true;
    for (int64_t v = 0; v < nv; ++v) {
        const int64_t j0 = v * W;
        Desc& e = d[v];
        e.valid = L::lt(L::add(iota, L::set1(j0)), L::set1(ncols));
        e.kind = kZeros;
        if (!e.valid) {  // span 0 keeps the two-vector path's loads for it masked off
            e.idx = L::set1(0);
            e.lo = e.span = 0;
            permute_only = permute_only && v > 0;
            continue;
        }
        // off[lane] = run.src + (j0 + lane - run.dst) * stride_w for the run holding the lane
        const __m512i jsw = L::mul(L::add(iota, L::set1(j0)), sw);
        // Runs are in lane order and offsets increase along the lanes (images, then output
        // rows, then columns), so the first valid lane has the least offset, the last the
        // greatest.
        e.off = L::set1(0);
        int64_t hi = 0;
        e.lo = -1;
        for (int64_t q = 0; q < nruns; ++q) {
            const int64_t d0 = runs[q].dst, d1 = d0 + runs[q].len;
            const int64_t a = d0 > j0 ? d0 : j0, b = d1 < j0 + W ? d1 : j0 + W;
            if (a >= b) continue;
            const typename L::M m = static_cast<typename L::M>(((uint32_t(1) << (b - j0)) - 1u) &
                                                               ~((uint32_t(1) << (a - j0)) - 1u));
            const int64_t shift = runs[q].src - d0 * stride_w;
            e.off = L::mask_add(e.off, m, jsw, L::set1(shift));
            if (e.lo < 0) e.lo = shift + a * stride_w;
            hi = shift + (b - 1) * stride_w;
        }
        const int64_t span = hi - e.lo + 1;
        e.span = span;
        if (span > 2 * W) {
            e.kind = kGather;
            permute_only = false;
            continue;
        }
        e.kind = kPermute;
        e.idx = L::sub(e.off, L::set1(e.lo));
        e.m1 = L::prefix(span);
        e.m2 = L::prefix(span - W);
    }
    if (permute_only && nv == 2) {  // the common case (float NR = 32, double NR = 16)
        // Rows are taken in groups whose bases lie within `slack` of the group's first: the
        // kw taps of one (c, kh) at dilation 1 are bases 0, 1, .., KW-1 apart. One pair of
        // loads per vector serves the whole group, each row permuting with its index
        // shifted by its base's distance from the first. A vector with no valid lane
        // (the last panel) is stored as zeros and loads nothing.
        const Desc &a = d[0], &b = d[1];
        const int64_t span_a = a.span, span_b = b.span;
        const int64_t slack = 2 * W - (span_a > span_b ? span_a : span_b);
        for (int64_t r = 0; r < nrows;) {
            const int64_t base = row_off[r];
            int64_t r1 = r + 1;
            while (r1 < nrows && row_off[r1] >= base && row_off[r1] - base <= slack) ++r1;
            const int64_t ext = row_off[r1 - 1] - base;  // reads reach ext past row r's
            const T *sa = xp + base + a.lo, *sb = xp + base + b.lo;
            const typename L::V a0 = L::load(L::prefix(span_a + ext), sa),
                                a1 = L::load(L::prefix(span_a + ext - W), sa + W),
                                b0 = L::load(span_b ? L::prefix(span_b + ext) : 0, sb),
                                b1 = L::load(L::prefix(span_b ? span_b + ext - W : 0), sb + W);
            for (; r < r1; ++r) {
                const __m512i shift = L::set1(row_off[r] - base);
                L::store(out + r * nr, L::perm(a.valid, a0, L::add(a.idx, shift), a1));
                L::store(out + r * nr + W, L::perm(b.valid, b0, L::add(b.idx, shift), b1));
            }
        }
        return true;
    }
    for (int64_t v = 0; v < nv; ++v) {
        const Desc& e = d[v];
        T* o = out + v * W;
        if (e.kind == kZeros) {
            for (int64_t r = 0; r < nrows; ++r) L::store(o + r * nr, L::zero());
        } else if (e.kind == kPermute) {
            for (int64_t r = 0; r < nrows; ++r) {
                const T* s = xp + row_off[r] + e.lo;
                L::store(o + r * nr, L::perm(e.valid, L::load(e.m1, s), e.idx, L::load(e.m2, s + W)));
            }
        } else {
            for (int64_t r = 0; r < nrows; ++r)
                L::store(o + r * nr, L::gather(e.valid, e.off, xp + row_off[r]));
        }
    }
    return true;
}
#endif

}  // namespace

template <typename T>
void im2col_pack_panel(const T* xp, const int64_t* row_off, int64_t nrows, const Im2colRun* runs,
                       int64_t nruns, int64_t stride_w, int64_t ncols, int64_t nr, T* out) {
#if defined(__AVX512F__)
    if (pack_panel_permute(xp, row_off, nrows, runs, nruns, stride_w, ncols, nr, out)) return;
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

FASTCONV_INSTANTIATE_IM2COL_KERNELS(float)
FASTCONV_INSTANTIATE_IM2COL_KERNELS(double)

}  // namespace FASTCONV_ISA
}  // namespace fastconv
