// Optimised 2-D pooling plane kernels, written once as templates and compiled per ISA:
// pool2d_avx2.cpp / pool2d_avx512.cpp define FASTCONV_ISA (avx2 | avx512), include this
// file and instantiate for float and double; CMake gives each its -m flags, and the loops
// below are shaped for the auto-vectoriser (-O3) rather than written with intrinsics,
// except the float kernels of 2x2 / stride 2 max pooling (AVX-512 max_pool2x2_*, AVX2
// max_pool2x2_ymm).
//
// Semantics are exactly PyTorch's CPU kernels (aten/src/ATen/native/cpu/MaxPoolKernel.cpp,
// AvgPoolKernel.cpp, AdaptiveAvgPoolKernel.cpp, AdaptiveMaxPoolKernel.cpp), the same as
// pool2d_ref.cpp: max keeps the first maximum in scan order (h-major) with NaN always
// replacing; avg divides by divisor_override, the padded window or the clipped window.
// Averages accumulate in T, as PyTorch's opmath does for float.
//
// Scheme: each output row is split into the interior columns [lo, hi), whose windows lie
// fully inside the input horizontally, and the border columns. Interior columns are
// processed one window tap at a time across the whole row (a unit- or constant-stride
// loop over ow with no bounds checks, which vectorises); the y row (and a per-chunk argmax
// buffer) serve as accumulators, so per output the taps are still visited in PyTorch's
// order. Border columns take the scalar path with clipping, except in max pooling of
// small planes, which runs on a -inf-padded copy (max_pool2d_padded). Strides 1 and 2 are
// compile-time constants. Average backward builds one output row's contribution once and
// adds it to each input row of the window. Adaptive pooling reuses the strided row code
// when OW divides W (uniform windows); global average pooling sums the plane as one run.
//
// Layout: x/dx [H][W], y/dy/indices [OH][OW], row-major; indices are flat h*W + w.
// Forward kernels overwrite y (and indices); backward kernels zero dx, then scatter-add.
// Single-threaded: the driver parallelises over planes. No OpenMP here.
#pragma once

#ifndef FASTCONV_ISA
#error "define FASTCONV_ISA (the ISA namespace, e.g. avx2) before including pool2d_impl.h"
#endif

#include <cassert>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
#include "kernels/avx2_lanes.h"
#endif

#include "fastconv/params.h"
#include "fastconv/plane_kernels.h"

namespace fastconv {
namespace FASTCONV_ISA {

FASTCONV_DECLARE_POOL2D_KERNELS

namespace pool2d_detail {

// Local helpers instead of std::min/max/isnan/numeric_limits: an out-of-line copy of a
// std template instantiated here (e.g. at -O0) would carry this file's ISA flags, and the
// linker could hand it to baseline callers. These live in the ISA's own namespace.
inline int64_t lmin(int64_t a, int64_t b) {
    return a < b ? a : b;
}
inline int64_t lmax(int64_t a, int64_t b) {
    return a > b ? a : b;
}
template <typename T>
inline T neg_inf() {
    return -static_cast<T>(__builtin_inf());
}

// Interior output columns [lo, hi): windows [ow*stride - pad, ow*stride - pad + span)
// inside [0, in). span is the window's extent: (K-1)*dil + 1.
inline void interior_range(int64_t out, int64_t in, int64_t stride, int64_t pad, int64_t span,
                           int64_t* lo, int64_t* hi) {
    int64_t l = (pad + stride - 1) / stride;
    const int64_t last_start = in - span + pad;  // largest ow*stride allowed
    int64_t h = last_start < 0 ? 0 : last_start / stride + 1;
    l = lmin(l, out);
    h = lmin(h, out);
    *lo = l;
    *hi = lmax(h, l);
}

// ---- max ------------------------------------------------------------------------------

// The signed integer of T's size (float, double).
template <int Bytes>
struct SameSizeInt;
template <>
struct SameSizeInt<4> {
    typedef int32_t type;
};
template <>
struct SameSizeInt<8> {
    typedef int64_t type;
};

// mask (all ones or zero) ? a : b, on the bits.
template <typename T>
inline T bit_select(int64_t mask, T a, T b) {
    typedef typename SameSizeInt<sizeof(T)>::type U;
    U ua, ub;
    __builtin_memcpy(&ua, &a, sizeof(T));
    __builtin_memcpy(&ub, &b, sizeof(T));
    const U m = static_cast<U>(mask);
    const U r = (ua & m) | (ub & ~m);
    T out;
    __builtin_memcpy(&out, &r, sizeof(T));
    return out;
}

// PyTorch's per-output scan (clipped window, NaN rule); used for border columns.
template <typename T>
inline void max_one(const T* __restrict x, int64_t W, int64_t ih0, int64_t ih1, int64_t dh,
                    int64_t iw0, int64_t iw1, int64_t dw, T* y, int64_t* index) {
    int64_t maxindex = ih0 * W + iw0;
    T maxval = neg_inf<T>();
    for (int64_t ih = ih0; ih < ih1; ih += dh) {
        for (int64_t iw = iw0; iw < iw1; iw += dw) {
            const T val = x[ih * W + iw];
            const bool take = (val > maxval) | (val != val);
            // Bitwise selects, not branches (which GCC emits for ?: here): on real data the
            // comparison is a coin toss, and mispredictions cost more than the border's
            // share of the work.
            const int64_t mask = -static_cast<int64_t>(take);
            maxindex = ((ih * W + iw) & mask) | (maxindex & ~mask);
            maxval = bit_select(mask, val, maxval);
        }
    }
    *y = maxval;
    if (index) *index = maxindex;
}

// Interior outputs are processed in chunks of kChunk so per-chunk scratch fits the stack.
constexpr int64_t kChunk = 256;

// Interior columns [lo, hi) of one output row over input rows ih0, ih0+dh, ... < ih1
// (already clipped; ih0 is the first row inside the input). One pass per window tap over
// the row, as selects (no branches) so it vectorises; per output the taps are visited in
// PyTorch's order with its decision (val > max || isnan(val)). The argmax is tracked as an
// int32 offset from the window's first tap (rel32: the caller checked H*W < 2^31), which
// halves the index traffic against int64 and matches float lanes; else int64 directly.
template <typename T, int S, bool kIdx>
void max_row_interior(const T* __restrict x, int64_t W, int64_t ih0, int64_t ih1, int64_t dh,
                      int64_t KW, int64_t dw, int64_t pw, int64_t stride, int64_t lo, int64_t hi,
                      bool rel32, T* __restrict y, int64_t* __restrict index) {
    const int64_t s = S > 0 ? S : stride;
    if constexpr (!kIdx) {  // values only (inference): the same scan without the argmax
        for (int64_t ow = lo; ow < hi; ++ow) y[ow] = neg_inf<T>();
        for (int64_t ih = ih0; ih < ih1; ih += dh)
            for (int64_t j = 0; j < KW; ++j) {
                const T* __restrict xr = x + ih * W + j * dw - pw;
                for (int64_t ow = lo; ow < hi; ++ow) {
                    const T v = xr[ow * s];
                    const T m = y[ow];
                    y[ow] = (v > m) | (v != v) ? v : m;
                }
            }
        return;
    }
    if (!rel32) {
        for (int64_t ow = lo; ow < hi; ++ow) {
            y[ow] = neg_inf<T>();
            index[ow] = ih0 * W + ow * s - pw;
        }
        for (int64_t ih = ih0; ih < ih1; ih += dh) {
            for (int64_t j = 0; j < KW; ++j) {
                const int64_t base = ih * W + j * dw - pw;
                for (int64_t ow = lo; ow < hi; ++ow) {
                    const int64_t i = base + ow * s;
                    const T v = x[i];
                    const T m = y[ow];
                    const bool take = (v > m) | (v != v);
                    y[ow] = take ? v : m;
                    index[ow] = take ? i : index[ow];
                }
            }
        }
        return;
    }
    int32_t rel[kChunk];
    for (int64_t c0 = lo; c0 < hi; c0 += kChunk) {
        const int64_t n = lmin(hi - c0, kChunk);
        T* __restrict yc = y + c0;
        for (int64_t k = 0; k < n; ++k) {
            yc[k] = neg_inf<T>();
            rel[k] = 0;
        }
        const int64_t first = ih0 * W + c0 * s - pw;  // first tap of output c0
        for (int64_t ih = ih0; ih < ih1; ih += dh) {
            for (int64_t j = 0; j < KW; ++j) {
                const int32_t r = static_cast<int32_t>((ih - ih0) * W + j * dw);
                const T* __restrict xr = x + first + r;
                for (int64_t k = 0; k < n; ++k) {
                    const T v = xr[k * s];
                    const T m = yc[k];
                    const bool take = (v > m) | (v != v);
                    yc[k] = take ? v : m;
                    rel[k] = take ? r : rel[k];
                }
            }
        }
        for (int64_t k = 0; k < n; ++k) index[c0 + k] = first + k * s + rel[k];
    }
}

// ---- register-blocked windows (strides 1 and 2) ---------------------------------------
//
// A block of V interior outputs of one row is computed with all its window taps in
// registers: one vector load per tap (stride 1) or two loads and a deinterleave (stride 2),
// then one store of y and of the int64 indices. On the short rows of CNN feature maps
// (5-56 outputs) this beats the tap-at-a-time row passes above, whose loop overhead and
// scalar remainders dominate. A row's last block is shifted left to end at hi (overlapping
// the previous one; the overlap is recomputed with the same result), so there is no tail.
// Vectors: FASTCONV_VEC_BYTES (the ISA's widest), then halves for narrower rows.

template <typename T, int V>
struct PoolVec {
    typedef T type __attribute__((vector_size(V * sizeof(T)), aligned(sizeof(T)), may_alias));
    // Same-width integers: the comparison mask type, also used for the argmax offset.
    typedef __typeof__(type{} < type{}) mask;
    typedef int64_t wide __attribute__((vector_size(V * 8), aligned(8), may_alias));
};

// Through the may_alias, element-aligned vector types, not __builtin_memcpy, which GCC
// expands under AVX2 as 16-byte moves through a stack temporary (a store-forwarding stall
// on every load; see direct_impl.h).
template <typename VT, typename T>
inline VT vload(const T* p) {
    return *reinterpret_cast<const VT*>(p);
}

// Tap values x[r + k*S], k < V. For S == 2 the second load starts at r + V - 1, so the
// block reads columns [r, r + 2V - 1): never the odd column past the last window.
template <typename T, int V, int S>
inline typename PoolVec<T, V>::type tap(const T* r) {
    using VT = typename PoolVec<T, V>::type;
    using M = typename PoolVec<T, V>::mask;
    if constexpr (S == 1) {
        return vload<VT>(r);
    } else {
        static_assert(S == 2, "strides 1 and 2");
        M even;  // element 2k is lane 2k of the first load, or lane 2k - V + 1 of the second
        for (int k = 0; k < V; ++k) even[k] = 2 * k < V ? 2 * k : 2 * k + 1;
        return __builtin_shuffle(vload<VT>(r), vload<VT>(r + V - 1), even);
    }
}

// Even / odd elements of two vectors a:b within each 128-bit lane (one shufps or unpcklpd
// each, where tap<T, V, 2>'s ordered deinterleave is two permutes and a blend on AVX2):
// lane q holds column pair out_of(q); ordered() puts the lanes back in order. Kernels that
// combine several such vectors lane by lane put the result in order once, at the store.
template <typename T, int V>
struct InLane {
    using VT = typename PoolVec<T, V>::type;
    using M = typename PoolVec<T, V>::mask;
    static constexpr int E = 16 / static_cast<int>(sizeof(T));  // elements per 128-bit lane
    static constexpr int out_of(int q) {
        return q / E * (E / 2) + (q % E < E / 2 ? q % E : V / 2 + q % E - E / 2);
    }
    static M pick(int odd) {  // lane q <- element 2 * out_of(q) + odd of a:b
        M m;
        for (int q = 0; q < V; ++q)
            m[q] = (q % E < E / 2 ? 0 : V) + q / E * E + 2 * (q % (E / 2)) + odd;
        return m;
    }
    static VT evens(VT a, VT b) { return __builtin_shuffle(a, b, pick(0)); }
    static VT odds(VT a, VT b) { return __builtin_shuffle(a, b, pick(1)); }
    template <typename W>
    static W ordered(W v) {
        M m;
        for (int q = 0; q < V; ++q) m[out_of(q)] = q;
        return __builtin_shuffle(v, m);
    }
};

// Outputs [ow0, ow0 + V) of one output row (interior columns) over nrows window rows.
// Tap (r, j) of output ow0 is src[r * ld + ow0 * S + j * dw]: src is the input at the
// first window row, column -pw, and ld = dh * W (dh * Wp in a padded copy of the plane).
// Indices are flat in the input: first_row is that row's flat offset, ild = dh * W.
// PyTorch's scan (take v when v > max or v is NaN: the last NaN, else the first maximum)
// is an associative combine of (max, index) pairs in scan order, so each window row is
// reduced on its own and the row results are then combined in order: a dependency chain
// of KW - 1 + nrows - 1 compare/selects instead of KH * KW, and the rows overlap.
template <typename T, int V, int S, bool kIdx>
inline void max_block(const T* __restrict src, int64_t ld, int64_t ild, int64_t nrows,
                      int64_t KW, int64_t dw, int64_t first_row, int64_t pw, int64_t ow0,
                      T* __restrict y, int64_t* __restrict index) {
    using VT = typename PoolVec<T, V>::type;
    using M = typename PoolVec<T, V>::mask;
    using WI = typename PoolVec<T, V>::wide;
    using I = __typeof__(M{}[0]);
    auto row_max = [&](int64_t r, M* rel) {
        const T* row = src + r * ld + ow0 * S;
        const I off = static_cast<I>(r * ild);
        VT m = tap<T, V, S>(row);
        if constexpr (kIdx) *rel = M{} + off;
        for (int64_t j = 1; j < KW; ++j) {
            const VT v = tap<T, V, S>(row + j * dw);
            const M take = (v > m) | (v != v);
            m = take ? v : m;
            if constexpr (kIdx) *rel = take ? M{} + static_cast<I>(off + j * dw) : *rel;
        }
        return m;
    };
    M rel;
    VT m = row_max(0, &rel);
    for (int64_t r = 1; r < nrows; ++r) {
        M rr;
        const VT v = row_max(r, &rr);
        const M take = (v > m) | (v != v);
        m = take ? v : m;
        if constexpr (kIdx) rel = take ? rr : rel;
    }
    *reinterpret_cast<VT*>(y + ow0) = m;
    if constexpr (!kIdx) return;
    WI lane;
    for (int k = 0; k < V; ++k) lane[k] = k * S;
    // Flat position of output ow0's first tap; rel is relative to it.
    const WI idx = __builtin_convertvector(rel, WI) + lane + (first_row + ow0 * S - pw);
    *reinterpret_cast<WI*>(index + ow0) = idx;
}

// Outputs [ow0, ow0 + V): y = sum of the windows over rows [ih0, ih1), ih-major as PyTorch
// (the same order as sum_row_interior), divided by div.
template <typename T, int V, int S>
inline void avg_block(const T* __restrict x, int64_t W, int64_t ih0, int64_t ih1, int64_t KW,
                      int64_t pw, int64_t ow0, T div, T* __restrict y) {
    using VT = typename PoolVec<T, V>::type;
    VT sum = VT{};
    for (int64_t ih = ih0; ih < ih1; ++ih) {
        const T* r = x + ih * W + ow0 * S - pw;
        for (int64_t j = 0; j < KW; ++j) sum += tap<T, V, S>(r + j);
    }
    sum = sum / div;
    *reinterpret_cast<VT*>(y + ow0) = sum;
}

// The same for 2x2 windows at stride 2 over two rows r0, r1 (at output ow0's first tap):
// two loads per row give 2V columns, summed from 0 as columns 2k, 2k + 1 of r0, then r1's:
// PyTorch's order (so its sign of zero too), in 4 loads and 4 in-lane shuffles (InLane),
// where two taps<T, V, 2> per row took 8 loads. kExact: inv = 1 / div is a power of two,
// and sum * inv is then sum / div exactly (a vector division takes 10-13 cycles on Zen 3).
template <typename T, int V, bool kExact>
inline void avg2x2_block(const T* __restrict r0, const T* __restrict r1, T div, T inv,
                         T* __restrict y) {
    using L = InLane<T, V>;
    using VT = typename L::VT;
    const VT a0 = vload<VT>(r0), b0 = vload<VT>(r0 + V);
    const VT a1 = vload<VT>(r1), b1 = vload<VT>(r1 + V);
    VT sum = VT{} + L::evens(a0, b0);
    sum += L::odds(a0, b0);
    sum += L::evens(a1, b1);
    sum += L::odds(a1, b1);
    if constexpr (kExact)
        sum *= inv;
    else
        sum /= div;
    *reinterpret_cast<VT*>(y) = L::ordered(sum);
}

// Blocks of V covering [lo, hi), the last one shifted to end at hi. Needs hi - lo >= V.
template <int V, typename F>
inline void for_blocks(int64_t lo, int64_t hi, F&& block) {
    for (int64_t ow = lo;; ow += V) {
        if (ow + V >= hi) {
            block(hi - V);
            return;
        }
        block(ow);
    }
}

template <int V>
struct Lanes {
    static constexpr int value = V;
};

// The widest vector V of T (FASTCONV_VEC_BYTES, then halves down to 16 bytes) for a row of
// n outputs: n >= V, or n in [V/2, V) where wide(V) allows it (the kernel then runs the row
// as one block of V whose lanes past n are junk: max_pool3x3s2, avg_pool2x2_planes). Calls
// run(Lanes<V>{}) and returns true, or returns false when none fits.
template <typename T, typename Wide, typename F>
inline bool with_row_block_width(int64_t n, Wide&& wide, F&& run) {
    constexpr int V = FASTCONV_VEC_BYTES / static_cast<int>(sizeof(T));
    constexpr int kMin = 16 / static_cast<int>(sizeof(T));
    constexpr int V2 = V / 2 > kMin ? V / 2 : kMin, V4 = V / 4 > kMin ? V / 4 : kMin;
    auto fits = [&](int v) { return n >= v || (2 * n >= v && wide(v)); };
    if (fits(V))
        run(Lanes<V>{});
    else if (fits(V2))
        run(Lanes<V2>{});
    else if (fits(V4))
        run(Lanes<V4>{});
    else
        return false;
    return true;
}

// The widest vector that fits [lo, hi) (with_row_block_width without wide blocks), or
// false also when the stride is not 1 or 2.
template <typename T, int S, typename F>
inline bool with_block_width(int64_t lo, int64_t hi, F&& run) {
    if constexpr (S != 1 && S != 2)
        return false;
    else
        return with_row_block_width<T>(hi - lo, [](int) { return false; }, run);
}

// Calls run(std::true_type{}) when inv (exact_reciprocal's) is not 0: multiply by it; else
// run(std::false_type{}): divide.
template <typename T, typename F>
inline void with_exact_reciprocal(T inv, F&& run) {
    if (inv != T(0))
        run(std::true_type{});
    else
        run(std::false_type{});
}

// Max pooling of a small plane with border windows (padding, or ceil_mode windows past the
// edge) through a copy of the plane padded with -inf to the extent every window reaches:
// every output is then an interior one, and whole rows run in register blocks instead of
// the scalar border path, which dominated planes of 7-16 outputs a row (3x3/2 padding 1).
// A -inf tap never beats a real value (take is v > max or v is NaN) and indices stay flat
// in the real plane (max_block's ild), so the result is the unpadded scan's, except where
// a window's maximum is -inf itself: PyTorch then reports the first in-bounds tap, which a
// padding tap may have shadowed, so such outputs are recomputed by max_one. Dilation 1
// only (a window then always holds an input element); returns false when it does not
// apply: dilation, a stride other than 1 or 2, rows narrower than a 16-byte vector, or a
// padded plane over kMaxElems (the copy lives on the stack).
template <typename T, int S, bool kIdx>
bool max_pool2d_padded(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    constexpr int64_t kMaxElems = 4096;
    if constexpr (S != 1 && S != 2) {
        return false;
    } else {
        if (p.dil_h != 1 || p.dil_w != 1 || p.OW * static_cast<int64_t>(sizeof(T)) < 16)
            return false;
        const int64_t Hp = lmax((p.OH - 1) * p.stride_h + p.KH, p.pad_h + p.H);
        const int64_t Wp = lmax((p.OW - 1) * S + p.KW, p.pad_w + p.W);
        if (Hp * Wp > kMaxElems) return false;
        alignas(64) T buf[kMaxElems];
        const T ninf = neg_inf<T>();
        for (int64_t hp = 0; hp < Hp; ++hp) {
            T* row = buf + hp * Wp;
            const int64_t ih = hp - p.pad_h;
            if (ih < 0 || ih >= p.H) {
                for (int64_t w = 0; w < Wp; ++w) row[w] = ninf;
                continue;
            }
            for (int64_t w = 0; w < p.pad_w; ++w) row[w] = ninf;
            const T* xr = x + ih * p.W;
            for (int64_t w = 0; w < p.W; ++w) row[p.pad_w + w] = xr[w];
            for (int64_t w = p.pad_w + p.W; w < Wp; ++w) row[w] = ninf;
        }
        return with_block_width<T, S>(0, p.OW, [&](auto lanes) {  // true: OW checked above
            constexpr int V = decltype(lanes)::value;
            for (int64_t oh = 0; oh < p.OH; ++oh) {
                T* yr = y + oh * p.OW;
                int64_t* ir = kIdx ? indices + oh * p.OW : nullptr;
                const int64_t ih0 = oh * p.stride_h - p.pad_h;  // may lie in the padding
                for_blocks<V>(0, p.OW, [&](int64_t ow0) {
                    max_block<T, V, S, kIdx>(buf + oh * p.stride_h * Wp, Wp, p.W, p.KH, p.KW, 1,
                                             ih0 * p.W, p.pad_w, ow0, yr, ir);
                });
                if constexpr (kIdx) {
                    for (int64_t ow = 0; ow < p.OW; ++ow) {
                        if (!(yr[ow] == ninf)) continue;
                        const int64_t a0 = lmax(ih0, 0), a1 = lmin(ih0 + p.KH, p.H);
                        const int64_t w0 = ow * S - p.pad_w;
                        max_one(x, p.W, a0, a1, 1, lmax(w0, 0), lmin(w0 + p.KW, p.W), 1, yr + ow,
                                ir + ow);
                    }
                }
            }
        });
    }
}

// ---- 3x3 windows at stride 2 (ResNet-18's pool; the 3x3/2 pools of the benchmarks) -----
//
// Output row oh's windows span input rows a = 2oh - ph, a + 1, a + 2, and row a + 2 is
// output row oh + 1's first: so each input row is scanned horizontally once, giving per
// output column the row's (max, index) over its three taps in PyTorch's order, and an
// output row combines its (up to) three row scans in order (the associative combine of
// max_block). The last row's scan is kept for the next output row (the carry): two row
// scans per output row, where max_block does three. A row scan of V outputs reads the
// 2V + 1 columns of their windows in four loads and three in-lane shuffles (InLane): taps
// 0 and 1 are the even and odd columns from the first tap, tap 2 the odd ones from the
// second; max_block loads twice and shuffles across lanes for each tap. The shuffles leave
// the outputs in one fixed lane order for every tap, from which y and the indices are put
// back once, at the store (the carry keeps that order).
//
// Left padding and ceil_mode windows past the right edge: the first and last blocks of a
// row read one or two columns of the neighbouring rows, which count as -inf (per-tap lane
// masks, fix_first / fix_last), except in row 0 of the first plane and row H - 1 of the
// last, where they may lie outside the input: those are read from copies padded with
// -inf. Rows outside the plane are skipped (the combine starts at the first row inside).
// A -inf tap never beats a real value (take is v > max or v is NaN), so values and
// indices are the unpadded scan's, except where output 0's window holds -inf only: its
// padding tap, first in the scan, then keeps its index, where PyTorch reports the first
// in-bounds tap; that output is recomputed by max_one.

// The row scan, combine and store of max_pool3x3s2 for V outputs (lanes in InLane's
// order). M: same-size integer lanes, the masks and the flat indices (int32 for float).
template <typename T, int V, bool kIdx>
struct Pool3x3s2 {
    using L = InLane<T, V>;
    using VT = typename L::VT;
    using M = typename L::M;
    using I = __typeof__(M{}[0]);
    using WI = typename PoolVec<T, V>::wide;

    // (m, rel) <- (v, rv) where v > m or v is NaN: PyTorch's rule, v later in its scan.
    static void combine(VT v, M rv, VT* m, M* rel) {
        const M take = (v > *m) | (v != v);
        *m = take ? v : *m;
        if constexpr (kIdx) *rel = take ? rv : *rel;
    }
    // The outputs whose first taps are s[0], s[2], ..: their three taps in order, and
    // rel = base + tap. fix (or null): per tap, the lanes outside the row, taken as -inf.
    static void row(const T* s, const M* fix, I base, VT* m, M* rel) {
        const VT a = vload<VT>(s), b = vload<VT>(s + V);
        const VT c = vload<VT>(s + 1), d = vload<VT>(s + 1 + V);
        VT t0 = L::evens(a, b), t1 = L::odds(a, b), t2 = L::odds(c, d);
        if (fix) {
            const VT ninf = VT{} + neg_inf<T>();
            t0 = fix[0] ? ninf : t0;
            t1 = fix[1] ? ninf : t1;
            t2 = fix[2] ? ninf : t2;
        }
        *m = t0;
        if constexpr (kIdx) *rel = M{} + base;
        combine(t1, M{} + static_cast<I>(base + 1), m, rel);
        combine(t2, M{} + static_cast<I>(base + 2), m, rel);
    }
    // y[0, V) and index[0, V) in order; col0 is the input column of output 0's first tap.
    static void store(VT m, M rel, int64_t col0, T* y, int64_t* index) {
        *reinterpret_cast<VT*>(y) = L::ordered(m);
        if constexpr (kIdx) {
            WI lane;
            for (int k = 0; k < V; ++k) lane[k] = 2 * k;
            *reinterpret_cast<WI*>(index) =
                __builtin_convertvector(L::ordered(rel), WI) + lane + col0;
        }
    }
};

// nplanes planes of 3x3 / stride 2 max pooling (dilation 1) as above; false, with nothing
// written, where it does not apply: other windows, rows of fewer than 16 bytes of outputs
// or over kMaxRow, or float indices past int32.
//
// Rows of OW in [V/2, V) outputs take one block of V (wide; OW = 5 and 7 on AVX2 were two
// overlapping blocks of V/2): its lanes past OW read up to 2(V - OW) + 1 columns past the
// row (inside the plane or the next one while W > V; the last plane's last row is copied)
// and store their junk at the start of the next output row, which overwrites it; the
// batch's last output row is stored through a buffer.
template <typename T, bool kIdx>
bool max_pool3x3s2(const Pool2dParams& p, int64_t nplanes, const T* xs, T* ys, int64_t* is) {
    constexpr int64_t kMaxRow = 2048;
    if (p.KH != 3 || p.KW != 3 || p.stride_h != 2 || p.stride_w != 2 || p.dil_h != 1 ||
        p.dil_w != 1 || p.pad_h > 1 || p.pad_w > 1)
        return false;
    if (2 * p.OW + 1 > kMaxRow || (kIdx && sizeof(T) == 4 && p.H * p.W > INT32_MAX)) return false;
    const T ninf = neg_inf<T>();
    auto run = [&](auto lanes) {
        constexpr int V = decltype(lanes)::value;
        using K = Pool3x3s2<T, V, kIdx>;
        using VT = typename K::VT;
        using M = typename K::M;
        using I = typename K::I;
        const bool wide = p.OW < V;
        const int64_t Wp = 2 * (wide ? V : p.OW) + 1;          // columns read, from column -pw
        const bool edges = p.pad_w > 0 || Wp - p.pad_w > p.W;  // reads past the row
        const int64_t nb = (p.OW + V - 1) / V;  // blocks, the last one shifted to end at OW
        auto block_at = [&](int64_t b) { return lmax(lmin(b * V, p.OW - V), 0); };
        // Per tap, the lanes of a block outside the row (only the first and last blocks
        // have any); any: whether there is one.
        auto outside = [&](int64_t ow0, M* fix) {
            bool any = false;
            for (int t = 0; t < 3; ++t) {
                for (int q = 0; q < V; ++q) {
                    const int64_t col = 2 * (ow0 + K::L::out_of(q)) - p.pad_w + t;
                    fix[t][q] = col < 0 || col >= p.W ? -1 : 0;
                    any = any || col < 0 || col >= p.W;
                }
            }
            return any;
        };
        M fix_first[3], fix_last[3];
        const bool any_first = outside(block_at(0), fix_first);
        const bool any_last = outside(block_at(nb - 1), fix_last);
        auto fix_of = [&](int64_t b) -> const M* {
            return b == 0 && any_first ? fix_first : b == nb - 1 && any_last ? fix_last : nullptr;
        };
        // One carry slot per block (lanes in InLane's order: the overlapping last block
        // must not share its columns with the one before).
        alignas(64) T carry[kMaxRow];
        alignas(64) I carry_rel[kIdx ? kMaxRow : 1];
        auto slot = [&](int64_t b, M** rel) {
            if constexpr (kIdx) *rel = reinterpret_cast<M*>(carry_rel + b * V);
            return reinterpret_cast<VT*>(carry + b * V);
        };
        alignas(64) T padded[2][kMaxRow];  // rows 0 and H - 1, from input column -pw
        const int64_t ncopy = lmin(p.W, Wp - p.pad_w);
        for (auto& row : padded) {
            for (int64_t w = 0; w < p.pad_w; ++w) row[w] = ninf;
            for (int64_t w = p.pad_w + ncopy; w < Wp; ++w) row[w] = ninf;
        }
        alignas(64) T y_last[V];  // a wide block's last output row
        alignas(64) int64_t i_last[V];
        for (int64_t pl = 0; pl < nplanes; ++pl) {
            const T* x = xs + pl * p.H * p.W;
            T* y = ys + pl * p.OH * p.OW;
            int64_t* indices = kIdx ? is + pl * p.OH * p.OW : nullptr;
            // The first and last rows of the planes: their edge columns may lie outside.
            const bool copy_first = edges && pl == 0, copy_last = edges && pl == nplanes - 1;
            if (copy_first)
                for (int64_t w = 0; w < ncopy; ++w) padded[0][p.pad_w + w] = x[w];
            if (copy_last)
                for (int64_t w = 0; w < ncopy; ++w) padded[1][p.pad_w + w] = x[(p.H - 1) * p.W + w];
            // Row r from input column -pw; *fix: whether its edge blocks read past the row.
            auto source = [&](int64_t r, bool* fix) -> const T* {
                if (copy_first && r == 0) return *fix = false, padded[0];
                if (copy_last && r == p.H - 1) return *fix = false, padded[1];
                *fix = edges;
                return x + r * p.W - p.pad_w;
            };
            for (int64_t oh = 0; oh < p.OH; ++oh) {
                const int64_t a = 2 * oh - p.pad_h;  // the window's first row (< H)
                const int64_t r0 = lmax(a, 0), r1 = lmin(a + 3, p.H);
                const bool from_carry = a >= 0 && oh > 0, to_carry = a + 3 <= p.H;
                const bool last = wide && pl == nplanes - 1 && oh == p.OH - 1;
                T* yr = last ? y_last : y + oh * p.OW;
                int64_t* ir = kIdx ? (last ? i_last : indices + oh * p.OW) : nullptr;
                // Rows [r0, r1), row a from the carry when kFromCarry, row a + 2 to it when
                // kToCarry: kNew = r1 - r0 - kFromCarry rows scanned (the common cases
                // unrolled; the first output row has no carry, the last may lack rows).
                auto blocks = [&](auto from_carry_c, auto to_carry_c, auto nnew_c) {
                    constexpr bool kFromCarry = decltype(from_carry_c)::value;
                    constexpr bool kToCarry = decltype(to_carry_c)::value;
                    constexpr int kNew = decltype(nnew_c)::value;
                    const T* src[3];
                    bool fixed[3];
                    I base[3];
                    for (int k = 0; k < kNew; ++k) {
                        const int64_t r = r0 + kFromCarry + k;
                        src[k] = source(r, &fixed[k]);
                        base[k] = static_cast<I>(r * p.W);
                    }
                    for (int64_t b = 0; b < nb; ++b) {
                        const int64_t ow0 = block_at(b);
                        const M* fix = fix_of(b);
                        M* crel = nullptr;
                        VT* cv = slot(b, &crel);
                        VT m, v;
                        M rel, rv;
                        if constexpr (kFromCarry) {
                            m = *cv;
                            if constexpr (kIdx) rel = *crel;
                        }
#pragma GCC unroll 3
                        for (int k = 0; k < kNew; ++k) {
                            K::row(src[k] + 2 * ow0, fixed[k] ? fix : nullptr, base[k], &v, &rv);
                            if (kToCarry && k == kNew - 1) {
                                *cv = v;
                                if constexpr (kIdx) *crel = rv;
                            }
                            if (!kFromCarry && k == 0) {
                                m = v;
                                if constexpr (kIdx) rel = rv;
                            } else {
                                K::combine(v, rv, &m, &rel);
                            }
                        }
                        K::store(m, rel, 2 * ow0 - p.pad_w, yr + ow0, kIdx ? ir + ow0 : nullptr);
                    }
                };
                using Yes = std::true_type;
                using No = std::false_type;
                using std::integral_constant;
                const int64_t n = r1 - r0;
                if (from_carry && to_carry)  // the steady state
                    blocks(Yes{}, Yes{}, integral_constant<int, 2>{});
                else if (!from_carry && to_carry)  // the first output row
                    n == 3 ? blocks(No{}, Yes{}, integral_constant<int, 3>{})
                           : blocks(No{}, Yes{}, integral_constant<int, 2>{});
                else if (from_carry)  // the last output rows, at the bottom edge
                    n == 2 ? blocks(Yes{}, No{}, integral_constant<int, 1>{})
                           : blocks(Yes{}, No{}, integral_constant<int, 0>{});
                else  // H < 3: rows [r0, r1) only
                    n == 2 ? blocks(No{}, No{}, integral_constant<int, 2>{})
                           : blocks(No{}, No{}, integral_constant<int, 1>{});
                if (kIdx && p.pad_w > 0 && yr[0] == ninf)
                    max_one(x, p.W, r0, r1, 1, 0, lmin(3 - p.pad_w, p.W), 1, yr, ir);
                if (last) {
                    for (int64_t ow = 0; ow < p.OW; ++ow) y[oh * p.OW + ow] = y_last[ow];
                    if constexpr (kIdx)
                        for (int64_t ow = 0; ow < p.OW; ++ow) indices[oh * p.OW + ow] = i_last[ow];
                }
            }
        }
    };
    // A row of OW in [V/2, V) is one wide block of V when W > V keeps its reads past the
    // row inside the plane (see above).
    return with_row_block_width<T>(p.OW, [&](int v) { return p.W > v; }, run);
}

// kIdx false: indices is null and only y is written (inference needs no argmax).
// nplanes consecutive planes, set up once: on small planes the per-plane call and setup
// mattered: LeNet-5 pool2 (10x10, b64, 1024 planes) 82 -> 78 us with indices, 60 -> 49
// without; CifarNet pool2 (16x16) 252 -> 210 us without.
template <typename T, int S, bool kIdx>
void max_pool2d_forward_impl(const Pool2dParams& p, int64_t nplanes, const T* xs, T* ys,
                             int64_t* is) {
    const int64_t s = S > 0 ? S : p.stride_w;
    const int64_t span_w = (p.KW - 1) * p.dil_w + 1;
    int64_t lo, hi;
    interior_range(p.OW, p.W, s, p.pad_w, span_w, &lo, &hi);
    const bool border = lo > 0 || hi < p.OW || p.pad_h > 0 ||
                        (p.OH - 1) * p.stride_h + (p.KH - 1) * p.dil_h + 1 > p.H;
    const bool rel32 = p.H * p.W <= INT32_MAX;
    if constexpr (S == 2) {
        if (max_pool3x3s2<T, kIdx>(p, nplanes, xs, ys, is)) return;
    }
    const int64_t in_size = p.H * p.W, out_size = p.OH * p.OW;
    for (int64_t pl = 0; pl < nplanes; ++pl) {
        const T* x = xs + pl * in_size;
        T* y = ys + pl * out_size;
        int64_t* indices = kIdx ? is + pl * out_size : nullptr;
        if (border && max_pool2d_padded<T, S, kIdx>(p, x, y, indices)) continue;
        for (int64_t oh = 0; oh < p.OH; ++oh) {
            int64_t ih0 = oh * p.stride_h - p.pad_h;
            const int64_t ih1 = lmin(ih0 + (p.KH - 1) * p.dil_h + 1, p.H);
            if (ih0 < 0) ih0 += (-ih0 + p.dil_h - 1) / p.dil_h * p.dil_h;  // first tap >= 0
            T* yr = y + oh * p.OW;
            int64_t* ir = kIdx ? indices + oh * p.OW : nullptr;
            auto border = [&](int64_t ow) {
                int64_t iw0 = ow * s - p.pad_w;
                const int64_t iw1 = lmin(iw0 + span_w, p.W);
                if (iw0 < 0) iw0 += (-iw0 + p.dil_w - 1) / p.dil_w * p.dil_w;
                max_one(x, p.W, ih0, ih1, p.dil_h, iw0, iw1, p.dil_w, yr + ow,
                        kIdx ? ir + ow : nullptr);
            };
            for (int64_t ow = 0; ow < lo; ++ow) border(ow);
            for (int64_t ow = hi; ow < p.OW; ++ow) border(ow);
            // Dilation can leave no window row inside the input: then the row pass below
            // writes -inf and the first tap's index, as PyTorch.
            const int64_t nrows = (ih1 - ih0 + p.dil_h - 1) / p.dil_h;
            const bool blocked = nrows > 0 && (rel32 || sizeof(T) == 8) &&
                                 with_block_width<T, S>(lo, hi, [&](auto lanes) {
                                     constexpr int V = decltype(lanes)::value;
                                     for_blocks<V>(lo, hi, [&](int64_t ow0) {
                                         max_block<T, V, S, kIdx>(
                                             x + ih0 * p.W - p.pad_w, p.dil_h * p.W, p.dil_h * p.W,
                                             nrows, p.KW, p.dil_w, ih0 * p.W, p.pad_w, ow0, yr, ir);
                                     });
                                 });
            if (!blocked)
                max_row_interior<T, S, kIdx>(x, p.W, ih0, ih1, p.dil_h, p.KW, p.dil_w, p.pad_w, s,
                                             lo, hi, rel32, yr, ir);
        }
    }
}

#if defined(__AVX512F__)
// Helpers of the 2x2 / stride 2 kernels below.
// Lanes where v replaces the running maximum m under PyTorch's rule (v > m or v is NaN).
inline __mmask16 max_take(__m512 v, __m512 m) {
    return static_cast<__mmask16>(_mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) |
                                  _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
}
// Lanes [0, n), n clamped to [0, 16].
inline __mmask16 lanes16(int64_t n) {
    return n >= 16  ? __mmask16(0xFFFF)
           : n <= 0 ? __mmask16(0)
                    : static_cast<__mmask16>((1u << n) - 1u);
}
// Even lanes 0, 2, .., 30 of a two-register permute: column 2j of 32 consecutive inputs.
inline __m512i even_lanes() {
    return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
// Columns 2j and 2j + 1 of 32 consecutive inputs (lo: the first 16, hi: the next), reduced
// in that order under max_take; *odd_won gets the lanes where column 2j + 1 won.
inline __m512 pair_max(__m512 lo, __m512 hi, __m512i even, __m512i odd, __mmask16* odd_won) {
    const __m512 e = _mm512_permutex2var_ps(lo, even, hi), o = _mm512_permutex2var_ps(lo, odd, hi);
    *odd_won = max_take(o, e);
    return _mm512_mask_blend_ps(*odd_won, e, o);
}
// The int32 flat indices of lanes `out` to io as int64.
inline void store_indices(int64_t* io, __mmask16 out, __m512i idx) {
    _mm512_mask_storeu_epi64(io, static_cast<__mmask8>(out),
                             _mm512_cvtepi32_epi64(_mm512_castsi512_si256(idx)));
    _mm512_mask_storeu_epi64(io + 8, static_cast<__mmask8>(out >> 8),
                             _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(idx, 1)));
}

// 2x2 windows at stride 2 tiling the plane exactly (H = 2*OH, W = 2*OW; no padding, no
// dilation), float, OW <= 16 (LeNet-5's 10x10 pool2, CifarNet's 16x16 and 32x32 pools):
// k = 16 / OW whole output rows per vector, from 2k input rows, i.e. 4*k*OW <= 64
// consecutive inputs (four masked loads). Each input row's column pairs are reduced
// first (h: the even and odd columns by two permutes, flat across the rows), then the two
// rows of each window (two permutes of h): PyTorch's scan order, as max_block, and its
// rule (take v when v > max or v is NaN). The row-by-row blocks took 2 x 4 lanes per
// 5-wide output row, with shuffles per tap and a call per row.
template <bool kIdx>
void max_pool2x2_rows(int64_t nplanes, int64_t OH, int64_t OW, const float* x, float* y,
                      int64_t* indices) {
    const int64_t W = 2 * OW, in_size = 4 * OH * OW, out_size = OH * OW;
    const int k = static_cast<int>(16 / OW);  // output rows per vector
    const __m512i even = even_lanes(), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    // Output lane j = r*OW + c (window row r, column c of the block): its window's top row
    // is h[2r*OW + c], its bottom row h[(2r + 1)*OW + c]; top-left input r*2W + 2c.
    alignas(64) int32_t top[16], corner[16];
    for (int j = 0; j < 16; ++j) {
        const int r = j < k * OW ? static_cast<int>(j / OW) : 0;
        const int c = j < k * OW ? static_cast<int>(j % OW) : 0;
        top[j] = 2 * r * static_cast<int32_t>(OW) + c;
        corner[j] = r * 2 * static_cast<int32_t>(W) + 2 * c;
    }
    const __m512i ptop = _mm512_load_si512(top);
    const __m512i pbot = _mm512_add_epi32(ptop, _mm512_set1_epi32(static_cast<int32_t>(OW)));
    const __m512i vcorner = _mm512_load_si512(corner);
    const __m512i one = _mm512_set1_epi32(1), vW = _mm512_set1_epi32(static_cast<int32_t>(W));
    for (int64_t pl = 0; pl < nplanes; ++pl) {
        const float* xp = x + pl * in_size;
        float* yp = y + pl * out_size;
        int64_t* ip = kIdx ? indices + pl * out_size : nullptr;
        for (int64_t r0 = 0; r0 < OH; r0 += k) {
            const int64_t nout = (OH - r0 < k ? OH - r0 : k) * OW, nin = 4 * nout;
            const float* xb = xp + r0 * 2 * W;
            auto load = [&](int64_t at) {
                return _mm512_maskz_loadu_ps(lanes16(nin - at), xb + (nin > at ? at : 0));
            };
            const __m512 v0 = load(0), v1 = load(16), v2 = load(32), v3 = load(48);
            // h: each input row's column pairs (the first 16 from v0:v1, the next from v2:v3)
            __mmask16 t0, t1;
            const __m512 h0 = pair_max(v0, v1, even, odd, &t0);
            const __m512 h1 = pair_max(v2, v3, even, odd, &t1);
            // the window's two rows
            const __m512 a = _mm512_permutex2var_ps(h0, ptop, h1);
            const __m512 b = _mm512_permutex2var_ps(h0, pbot, h1);
            const __mmask16 tv = max_take(b, a), out = lanes16(nout);
            _mm512_mask_storeu_ps(yp + r0 * OW, out, _mm512_mask_blend_ps(tv, a, b));
            if constexpr (kIdx) {
                // column bit of each h, then of the chosen row; flat h*W + w in the plane
                const __m512i c0 = _mm512_maskz_mov_epi32(t0, one);
                const __m512i c1 = _mm512_maskz_mov_epi32(t1, one);
                const __m512i ca = _mm512_permutex2var_epi32(c0, ptop, c1);
                const __m512i cb = _mm512_add_epi32(_mm512_permutex2var_epi32(c0, pbot, c1), vW);
                const __m512i rel = _mm512_mask_blend_epi32(tv, ca, cb);
                const __m512i idx =
                    _mm512_add_epi32(_mm512_add_epi32(vcorner, rel),
                                     _mm512_set1_epi32(static_cast<int32_t>(r0 * 2 * W)));
                store_indices(ip + r0 * OW, out, idx);
            }
        }
    }
}

// The same windows on any rows whose windows all lie inside the plane (2*OH <= H and
// 2*OW <= W: an odd size drops the last row or column, as floor mode does), one output row
// at a time: 16 outputs from the two window rows (two masked loads each), the column pairs
// reduced in each row, then the rows (Keras's 13x13 pool2, rows of more than 16 outputs).
template <bool kIdx>
void max_pool2x2_any(int64_t nplanes, int64_t H, int64_t W, int64_t OH, int64_t OW, const float* x,
                     float* y, int64_t* indices) {
    const __m512i even = even_lanes(), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i one = _mm512_set1_epi32(1), vW = _mm512_set1_epi32(static_cast<int32_t>(W));
    for (int64_t r = 0; r < nplanes * OH; ++r) {  // output rows of all the planes
        const int64_t row_in_plane = r % OH;
        const float* top = x + (r / OH) * H * W + 2 * row_in_plane * W;
        float* yr = y + r * OW;
        for (int64_t c0 = 0; c0 < OW; c0 += 16) {
            const int64_t n = OW - c0 < 16 ? OW - c0 : 16;  // outputs here
            const __mmask16 m0 = lanes16(2 * n), m1 = lanes16(2 * n - 16);
            const float* t = top + 2 * c0;
            const float* b = t + W;
            const __m512 t0 = _mm512_maskz_loadu_ps(m0, t);
            const __m512 t1 = _mm512_maskz_loadu_ps(m1, m1 ? t + 16 : t);
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
            const __m512 b1 = _mm512_maskz_loadu_ps(m1, m1 ? b + 16 : b);
            __mmask16 tt, tb;
            const __m512 ht = pair_max(t0, t1, even, odd, &tt);
            const __m512 hb = pair_max(b0, b1, even, odd, &tb);
            const __mmask16 tv = max_take(hb, ht), out = lanes16(n);
            _mm512_mask_storeu_ps(yr + c0, out, _mm512_mask_blend_ps(tv, ht, hb));
            if constexpr (kIdx) {
                // flat h*W + w in the plane: the window's corner 2*row*W + 2*(c0 + j), plus
                // the column bit of the chosen row, plus W for the bottom row
                const __m512i ct = _mm512_maskz_mov_epi32(tt, one);
                const __m512i cb = _mm512_add_epi32(_mm512_maskz_mov_epi32(tb, one), vW);
                const __m512i corner = _mm512_add_epi32(
                    even, _mm512_set1_epi32(static_cast<int32_t>(2 * row_in_plane * W + 2 * c0)));
                const __m512i idx = _mm512_add_epi32(corner, _mm512_mask_blend_epi32(tv, ct, cb));
                store_indices(indices + r * OW + c0, out, idx);
            }
        }
    }
}
#elif defined(__AVX2__)
// 2x2 windows at stride 2 whose rows all lie inside the plane (2*OH <= H, 2*OW <= W: an
// odd size drops the last row or column, as floor mode does; no padding, no dilation),
// float: 8 outputs of an output row from 16 inputs of each window row (two loads, masked
// for a row's last partial vector). Each row's column pairs are reduced first (even and
// odd columns by shuffles), then the two rows: PyTorch's scan order and rule (take v when
// v > max or v is NaN), as the AVX-512 kernels above. The generic row path took a loop
// per tap with a deinterleaving permute per load: 0.65 ns per output on 32x32 planes.
// Lanes where v replaces the running maximum m (v > m or v is NaN): all-ones.
inline __m256 max_take8(__m256 v, __m256 m) {
    return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
// Columns 2j and 2j + 1 of 16 consecutive inputs (lo: the first 8, hi: the next), reduced
// in that order under max_take8; *odd_won gets the lanes where column 2j + 1 won.
inline __m256 pair_max8(__m256 lo, __m256 hi, __m256* odd_won) {
    const __m256 e = evens(lo, hi), o = odds(lo, hi);
    *odd_won = max_take8(o, e);
    return _mm256_blendv_ps(e, o, *odd_won);
}

template <bool kIdx>
void max_pool2x2_ymm(int64_t nplanes, int64_t H, int64_t W, int64_t OH, int64_t OW, const float* x,
                     float* y, int64_t* indices) {
    const __m256i two_lane = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i vW = _mm256_set1_epi32(static_cast<int32_t>(W));
    for (int64_t pl = 0; pl < nplanes; ++pl) {
        const float* xp = x + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
            const float* top = xp + 2 * oh * W;
            const float* bot = top + W;
            float* yr = y + (pl * OH + oh) * OW;
            for (int64_t ow0 = 0; ow0 < OW; ow0 += 8) {
                const int64_t n = OW - ow0 < 8 ? OW - ow0 : 8;
                const int64_t c = 2 * ow0;
                __m256 t0, t1, b0, b1;
                if (n == 8) {
                    t0 = _mm256_loadu_ps(top + c), t1 = _mm256_loadu_ps(top + c + 8);
                    b0 = _mm256_loadu_ps(bot + c), b1 = _mm256_loadu_ps(bot + c + 8);
                } else {  // inputs [c, c + 2n) of each row; masked-off lanes read nothing
                    const __m256i m0 = lanes32(0, 2 * n), m1 = lanes32(0, 2 * n - 8);
                    t0 = _mm256_maskload_ps(top + c, m0), t1 = _mm256_maskload_ps(top + c + 8, m1);
                    b0 = _mm256_maskload_ps(bot + c, m0), b1 = _mm256_maskload_ps(bot + c + 8, m1);
                }
                __m256 tt, tb;
                const __m256 ht = pair_max8(t0, t1, &tt), hb = pair_max8(b0, b1, &tb);
                const __m256 tv = max_take8(hb, ht);
                store_first(yr + ow0, _mm256_blendv_ps(ht, hb, tv), n);
                if constexpr (kIdx) {
                    // flat (2*oh + row)*W + c + 2*lane + column; the masks are -1 where set
                    const __m256i col = _mm256_castps_si256(_mm256_blendv_ps(tt, tb, tv));
                    const __m256i row = _mm256_and_si256(_mm256_castps_si256(tv), vW);
                    store_indices(indices + (pl * OH + oh) * OW + ow0,
                                  _mm256_sub_epi32(_mm256_add_epi32(two_lane, row), col),
                                  2 * oh * W + c, n);
                }
            }
        }
    }
}

// Maps whose output rows are at most a vector wide (OW <= 8: LeNet-5's, Keras's and
// CifarNet's pool2 maps), float, any window: eight planes at a time, one per lane, so that
// every vector operation is whole and no row, column or plane edge needs a mask. The
// group's planes are transposed in (8x8 blocks), each input row's windows reduced over
// their in-bounds columns, then each output's window over its in-bounds rows, then
// transposed out. Row then column is PyTorch's row-major scan (take v when v > max or v
// is NaN; indices h*W + w): the first maximum of the first row holding the window's
// maximum, or the last NaN. The row kernels spent most of their time on per-row setup and
// masked lanes there. Zen 3, 1 thread, in-process A/B with indices: 3x3/2 padding 1 on
// 64x16x10x10 101-106 -> 50-54 us, on 64x32x13x13 284-290 -> 190-193 us, on 64x64x16x16
// (rows of 8) 638 -> 546 us; 3x3/1 padding 1 on 8x16x7x7 4.2x, 3x3/3 on 8x16x12x12 5.0x
// (the 2x2/2 kernel is kept for its windows: this measured 0.88-1.15x of it on 10x10 and
// 13x13 maps). Returns the planes done (a multiple of 8; 0 where it does not apply: wider
// rows, planes or windows past the buffers, or a window with no in-bounds row or column,
// which ceil_mode can give).
template <bool kIdx>
int64_t max_pool_plane_lanes(const Pool2dParams& p, int64_t nplanes, const float* x, float* y,
                             int64_t* indices) {
    constexpr int kHW = 256, kRowOuts = 128, kOuts = 64, kTaps = 64;
    const int64_t H = p.H, W = p.W, OH = p.OH, OW = p.OW, HW = H * W, OHW = OH * OW;
    if (OW > 8 || nplanes < 8 || HW > kHW || H * OW > kRowOuts || OHW > kOuts) return 0;
    // The in-bounds columns of each output column's window, and rows of each output row's,
    // in scan order: [first[o], first[o + 1]) of taps.
    int col_first[9], row_first[kOuts + 1], cols[kTaps], rows[kTaps];
    auto taps = [](int64_t n_out, int64_t stride, int64_t pad, int64_t k, int64_t dil, int64_t n,
                   int* first, int* at) {
        int nt = 0;
        for (int64_t o = 0; o < n_out; ++o) {
            first[o] = nt;
            for (int64_t j = 0; j < k; ++j) {
                const int64_t i = o * stride - pad + j * dil;
                if (i < 0 || i >= n) continue;
                if (nt == kTaps) return false;
                at[nt++] = static_cast<int>(i);
            }
            if (nt == first[o]) return false;  // no in-bounds tap
        }
        first[n_out] = nt;
        return true;
    };
    if (!taps(OW, p.stride_w, p.pad_w, p.KW, p.dil_w, W, col_first, cols) ||
        !taps(OH, p.stride_h, p.pad_h, p.KH, p.dil_h, H, row_first, rows))
        return 0;
    alignas(32) float xt[kHW * 8];       // [h*W + w][plane]
    alignas(32) float hm[kRowOuts * 8];  // [h*OW + ow][plane]: row h's window maximum
    alignas(32) float hi[kRowOuts * 8];  // its flat index, int32 bits
    alignas(32) float yt[kOuts * 8];     // [oh*OW + ow][plane]
    alignas(32) float it[kOuts * 8];     // its flat index, int32 bits
    // (m, rel) <- (v, rv) where v > m or v is NaN: PyTorch's rule, v later in its scan.
    auto combine = [](__m256 v, __m256 rv, __m256* m, __m256* rel) {
        const __m256 take = max_take8(v, *m);
        *m = _mm256_blendv_ps(*m, v, take);
        if constexpr (kIdx) *rel = _mm256_blendv_ps(*rel, rv, take);
    };
    auto flat = [](int64_t i) {
        return _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(i)));
    };
    const int64_t ngroups = nplanes / 8;
    for (int64_t gi = 0; gi < ngroups; ++gi) {
        const float* xg = x + gi * 8 * HW;
        int64_t i = 0;
        for (; i + 8 <= HW; i += 8) {
            __m256 r[8];
            for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(xg + l * HW + i);
            transpose8x8(r);
            for (int e = 0; e < 8; ++e) _mm256_store_ps(xt + (i + e) * 8, r[e]);
        }
        for (; i < HW; ++i)
            for (int l = 0; l < 8; ++l) xt[i * 8 + l] = xg[l * HW + i];
        for (int64_t h = 0; h < H; ++h)
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float* xr = xt + h * W * 8;
                int t = col_first[ow];
                __m256 m = _mm256_load_ps(xr + cols[t] * 8), rel = flat(h * W + cols[t]);
                for (++t; t < col_first[ow + 1]; ++t)
                    combine(_mm256_load_ps(xr + cols[t] * 8), flat(h * W + cols[t]), &m, &rel);
                _mm256_store_ps(hm + (h * OW + ow) * 8, m);
                if constexpr (kIdx) _mm256_store_ps(hi + (h * OW + ow) * 8, rel);
            }
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                int t = row_first[oh];
                const int64_t at = (rows[t] * OW + ow) * 8;
                __m256 m = _mm256_load_ps(hm + at), rel = kIdx ? _mm256_load_ps(hi + at) : m;
                for (++t; t < row_first[oh + 1]; ++t) {
                    const int64_t r = (rows[t] * OW + ow) * 8;
                    combine(_mm256_load_ps(hm + r), kIdx ? _mm256_load_ps(hi + r) : m, &m, &rel);
                }
                _mm256_store_ps(yt + (oh * OW + ow) * 8, m);
                if constexpr (kIdx) _mm256_store_ps(it + (oh * OW + ow) * 8, rel);
            }
        float* yg = y + gi * 8 * OHW;
        int64_t* ig = kIdx ? indices + gi * 8 * OHW : nullptr;
        int64_t o = 0;
        for (; o + 8 <= OHW; o += 8) {
            __m256 r[8];
            for (int e = 0; e < 8; ++e) r[e] = _mm256_load_ps(yt + (o + e) * 8);
            transpose8x8(r);
            for (int l = 0; l < 8; ++l) _mm256_storeu_ps(yg + l * OHW + o, r[l]);
            if constexpr (kIdx) {
                for (int e = 0; e < 8; ++e) r[e] = _mm256_load_ps(it + (o + e) * 8);
                transpose8x8(r);
                for (int l = 0; l < 8; ++l) {
                    const __m256i v = _mm256_castps_si256(r[l]);
                    int64_t* d = ig + l * OHW + o;
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d),
                                        _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)));
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 4),
                                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
                }
            }
        }
        for (; o < OHW; ++o)
            for (int l = 0; l < 8; ++l) {
                yg[l * OHW + o] = yt[o * 8 + l];
                if constexpr (kIdx) {
                    int32_t v;
                    std::memcpy(&v, it + o * 8 + l, sizeof(v));
                    ig[l * OHW + o] = v;
                }
            }
    }
    return ngroups * 8;
}
#endif

// ---- average --------------------------------------------------------------------------

// One window tap for interior outputs [lo, hi): y[ow] += x[base + ow*stride].
template <typename T, int S>
inline void sum_tap(const T* __restrict x, int64_t base, int64_t stride, int64_t lo, int64_t hi,
                    T* __restrict y) {
    const int64_t s = S > 0 ? S : stride;
    for (int64_t ow = lo; ow < hi; ++ow) y[ow] += x[base + ow * s];
}

// Interior columns [lo, hi) of one output row: y[ow] = sum of the KW-wide windows over
// rows [ih0, ih1), ih-major as PyTorch sums (the division is left to the caller).
template <typename T, int S>
void sum_row_interior(const T* x, int64_t W, int64_t ih0, int64_t ih1, int64_t KW, int64_t pw,
                      int64_t stride, int64_t lo, int64_t hi, T* __restrict y) {
    const int64_t s = S > 0 ? S : stride;
    for (int64_t ow = lo; ow < hi; ++ow) y[ow] = T(0);
    for (int64_t ih = ih0; ih < ih1; ++ih)
        for (int64_t j = 0; j < KW; ++j) sum_tap<T, S>(x, ih * W + j - pw, s, lo, hi, y);
}

// Rows of output row oh for average pooling: clipped [*ih0, *ih1) and the unclipped
// height that enters pool_size (PyTorch's cpu_avg_pool).
inline void avg_rows(const Pool2dParams& p, int64_t oh, int64_t* ih0, int64_t* ih1,
                     int64_t* padded_height) {
    const int64_t h0 = oh * p.stride_h - p.pad_h;
    const int64_t h1 = lmin(h0 + p.KH, p.H + p.pad_h);
    *padded_height = h1 - h0;
    *ih0 = lmax(h0, 0);
    *ih1 = lmin(h1, p.H);
}

// Columns of output ow, as avg_rows.
inline void avg_cols(const Pool2dParams& p, int64_t ow, int64_t* iw0, int64_t* iw1,
                     int64_t* padded_width) {
    const int64_t w0 = ow * p.stride_w - p.pad_w;
    const int64_t w1 = lmin(w0 + p.KW, p.W + p.pad_w);
    *padded_width = w1 - w0;
    *iw0 = lmax(w0, 0);
    *iw1 = lmin(w1, p.W);
}

// 1 / d when |d| is a power of two (x * (1 / d) is then x / d exactly: both round the
// same real number), else 0.
template <typename T>
inline T exact_reciprocal(int64_t d) {
    const uint64_t a = d < 0 ? 0 - static_cast<uint64_t>(d) : static_cast<uint64_t>(d);
    return a > 0 && (a & (a - 1)) == 0 ? T(1) / T(d) : T(0);
}

inline int64_t avg_divisor(const Pool2dParams& p, int64_t padded_h, int64_t padded_w,
                           int64_t clipped_h, int64_t clipped_w) {
    if (p.divisor_override != 0) return p.divisor_override;
    return p.count_include_pad ? padded_h * padded_w : clipped_h * clipped_w;
}

template <typename T, int S>
void avg_pool2d_forward_impl(const Pool2dParams& p, const T* x, T* y) {
    const int64_t s = S > 0 ? S : p.stride_w;
    int64_t lo, hi;
    interior_range(p.OW, p.W, s, p.pad_w, p.KW, &lo, &hi);
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        int64_t ih0, ih1, ph;
        avg_rows(p, oh, &ih0, &ih1, &ph);
        T* yr = y + oh * p.OW;
        if (ih0 >= ih1) {  // window with no input row: PyTorch writes 0
            for (int64_t ow = 0; ow < p.OW; ++ow) yr[ow] = T(0);
            continue;
        }
        auto border = [&](int64_t ow) {
            int64_t iw0, iw1, pwid;
            avg_cols(p, ow, &iw0, &iw1, &pwid);
            if (iw0 >= iw1) {
                yr[ow] = T(0);
                return;
            }
            T sum = T(0);
            for (int64_t ih = ih0; ih < ih1; ++ih)
                for (int64_t iw = iw0; iw < iw1; ++iw) sum += x[ih * p.W + iw];
            yr[ow] = sum / T(avg_divisor(p, ph, pwid, ih1 - ih0, iw1 - iw0));
        };
        for (int64_t ow = 0; ow < lo; ++ow) border(ow);
        for (int64_t ow = hi; ow < p.OW; ++ow) border(ow);
        if (lo < hi) {
            const int64_t divisor = avg_divisor(p, ph, p.KW, ih1 - ih0, p.KW);
            const T div = T(divisor), inv = exact_reciprocal<T>(divisor);
            const bool blocked = with_block_width<T, S>(lo, hi, [&](auto lanes) {
                constexpr int V = decltype(lanes)::value;
                if (S == 2 && p.KW == 2 && ih1 - ih0 == 2) {
                    const T* r0 = x + ih0 * p.W - p.pad_w;
                    with_exact_reciprocal(inv, [&](auto exact) {
                        constexpr bool kExact = decltype(exact)::value;
                        for_blocks<V>(lo, hi, [&](int64_t ow0) {
                            avg2x2_block<T, V, kExact>(r0 + 2 * ow0, r0 + p.W + 2 * ow0, div, inv,
                                                       yr + ow0);
                        });
                    });
                    return;
                }
                for_blocks<V>(lo, hi, [&](int64_t ow0) {
                    avg_block<T, V, S>(x, p.W, ih0, ih1, p.KW, p.pad_w, ow0, div, yr);
                });
            });
            if (!blocked) {
                sum_row_interior<T, S>(x, p.W, ih0, ih1, p.KW, p.pad_w, s, lo, hi, yr);
                for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = yr[ow] / div;
            }
        }
    }
}

// 2x2 windows at stride 2 inside the plane (no padding, 2*OH <= H, 2*OW <= W; so the
// divisor is 4 or divisor_override), nplanes planes: output rows of avg2x2_block, with no
// per-row clipping, border or divisor work. A row of OW in [V/2, V) outputs is one block
// of V (the per-plane path ran two overlapping blocks of V/2 and set each row up: on 10x10
// and 13x13 planes it took 60-70 ns a plane): its lanes past OW read up to 2V - W columns
// past each window row, inside the plane or the next one (W >= 2 * OW >= V), and store
// their junk at the start of the next output row, which overwrites it; the batch's last
// output row is computed from a zero-padded copy of its two rows and stored through a
// buffer. false, with nothing written, where this does not apply.
template <typename T>
bool avg_pool2x2_planes(const Pool2dParams& p, int64_t nplanes, const T* xs, T* ys) {
    if (p.KH != 2 || p.KW != 2 || p.stride_h != 2 || p.stride_w != 2 || p.pad_h != 0 ||
        p.pad_w != 0 || 2 * p.OH > p.H || 2 * p.OW > p.W)
        return false;
    const int64_t divisor = avg_divisor(p, 2, 2, 2, 2);  // windows inside: 4, or the override
    const T div = T(divisor), inv = exact_reciprocal<T>(divisor);
    auto run = [&](auto lanes, auto exact) {
        constexpr int V = decltype(lanes)::value;
        constexpr bool kExact = decltype(exact)::value;
        const int64_t in_size = p.H * p.W, W = p.W, OW = p.OW;
        if (OW >= V) {
            for (int64_t pl = 0; pl < nplanes; ++pl) {
                for (int64_t oh = 0; oh < p.OH; ++oh) {
                    const T* r0 = xs + pl * in_size + 2 * oh * W;
                    T* yr = ys + (pl * p.OH + oh) * OW;
                    for_blocks<V>(0, OW, [&](int64_t ow0) {
                        avg2x2_block<T, V, kExact>(r0 + 2 * ow0, r0 + W + 2 * ow0, div, inv,
                                                   yr + ow0);
                    });
                }
            }
            return;
        }
        const int64_t rows = nplanes * p.OH;
        if (rows == 0) return;
        for (int64_t row = 0; row + 1 < rows; ++row) {
            const int64_t pl = row / p.OH, oh = row - pl * p.OH;
            const T* r0 = xs + pl * in_size + 2 * oh * W;
            avg2x2_block<T, V, kExact>(r0, r0 + W, div, inv, ys + row * OW);
        }
        alignas(64) T copy[2][2 * V] = {};
        alignas(64) T last[V];
        const T* r0 = xs + (nplanes - 1) * in_size + 2 * (p.OH - 1) * W;
        for (int64_t w = 0; w < 2 * OW; ++w) {
            copy[0][w] = r0[w];
            copy[1][w] = r0[W + w];
        }
        avg2x2_block<T, V, kExact>(copy[0], copy[1], div, inv, last);
        for (int64_t ow = 0; ow < OW; ++ow) ys[(rows - 1) * OW + ow] = last[ow];
    };
    // Any row of OW >= V / 2 (W >= 2 * OW keeps the wide block's reads in the plane).
    return with_row_block_width<T>(
        p.OW, [](int) { return true; },
        [&](auto lanes) { with_exact_reciprocal(inv, [&](auto exact) { run(lanes, exact); }); });
}

// Interior columns [lo, hi) of output row oh, whose windows cover input rows [ih0, ih1):
// the row's contribution r to one input row is the same for every ih, so build it once
// (per chunk of outputs) and add it to each row: KW + KH passes instead of KW * KH, and
// the passes over dx never partially overlap one another (no store-forwarding stalls).
// For stride 1, r[i] = sum_j g[i - j] is a box filter, summed from a zero-padded copy of
// g with aligned stores; other strides scatter g into r, one tap at a time. KW must be
// well below kRowBuf (the caller falls back to the border path otherwise).
constexpr int64_t kRowBuf = 1024;

template <typename T, int S>
void avg_backward_row_interior(T* __restrict dx, int64_t W, int64_t ih0, int64_t ih1, int64_t KW,
                               int64_t pw, int64_t stride, int64_t lo, int64_t hi,
                               const T* __restrict dyr, T div) {
    const int64_t s = S > 0 ? S : stride;
    T r[kRowBuf];
    T gp[kRowBuf];
    const int64_t n_max = S == 1 ? kRowBuf - 2 * (KW - 1) : (kRowBuf - KW) / s + 1;
    assert(n_max >= 1);
    for (int64_t c0 = lo; c0 < hi; c0 += n_max) {
        const int64_t n = lmin(hi - c0, n_max);
        const int64_t span = (n - 1) * s + KW;  // input columns touched by this chunk
        for (int64_t i = 0; i < span; ++i) r[i] = T(0);
        if (S == 1) {
            for (int64_t i = 0; i < KW - 1; ++i) gp[i] = gp[KW - 1 + n + i] = T(0);
            for (int64_t k = 0; k < n; ++k) gp[KW - 1 + k] = dyr[c0 + k] / div;
            for (int64_t j = 0; j < KW; ++j) {
                const T* __restrict src = gp + (KW - 1 - j);
                for (int64_t i = 0; i < span; ++i) r[i] += src[i];
            }
        } else {
            for (int64_t k = 0; k < n; ++k) gp[k] = dyr[c0 + k] / div;
            for (int64_t j = 0; j < KW; ++j)
                for (int64_t k = 0; k < n; ++k) r[k * s + j] += gp[k];
        }
        for (int64_t ih = ih0; ih < ih1; ++ih) {
            T* __restrict d = dx + ih * W + c0 * s - pw;
            for (int64_t i = 0; i < span; ++i) d[i] += r[i];
        }
    }
}

template <typename T, int S>
void avg_pool2d_backward_impl(const Pool2dParams& p, T* __restrict dx, const T* __restrict dy) {
    const int64_t s = S > 0 ? S : p.stride_w;
    for (int64_t i = 0; i < p.H * p.W; ++i) dx[i] = T(0);
    int64_t lo, hi;
    interior_range(p.OW, p.W, s, p.pad_w, p.KW, &lo, &hi);
    // Very wide kernels do not fit the row buffer: treat every column as border.
    if (p.KW > kRowBuf / 4) lo = hi = 0;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        int64_t ih0, ih1, ph;
        avg_rows(p, oh, &ih0, &ih1, &ph);
        if (ih0 >= ih1) continue;
        const T* dyr = dy + oh * p.OW;
        auto border = [&](int64_t ow) {
            int64_t iw0, iw1, pwid;
            avg_cols(p, ow, &iw0, &iw1, &pwid);
            if (iw0 >= iw1) return;
            const T delta = dyr[ow] / T(avg_divisor(p, ph, pwid, ih1 - ih0, iw1 - iw0));
            for (int64_t ih = ih0; ih < ih1; ++ih)
                for (int64_t iw = iw0; iw < iw1; ++iw) dx[ih * p.W + iw] += delta;
        };
        for (int64_t ow = 0; ow < lo; ++ow) border(ow);
        for (int64_t ow = hi; ow < p.OW; ++ow) border(ow);
        if (lo < hi)
            avg_backward_row_interior<T, S>(dx, p.W, ih0, ih1, p.KW, p.pad_w, s, lo, hi, dyr,
                                            T(avg_divisor(p, ph, p.KW, ih1 - ih0, p.KW)));
    }
}

// Windows that tile the plane: kernel == stride, no padding, every window inside (floor
// mode, or ceil mode where it adds no window). Then all windows share one divisor.
inline bool avg_windows_tile(const Pool2dParams& p) {
    return p.KH == p.stride_h && p.KW == p.stride_w && p.pad_h == 0 && p.pad_w == 0 &&
           p.OH * p.KH <= p.H && p.OW * p.KW <= p.W;
}

// Backward of tiling windows (avg_windows_tile; kw = KW when K > 0): each input element
// lies in at most one window and is written once with its dy / div, the value PyTorch's
// scatter-add gives it (0 + dy / div, a -0 quotient included), so there is no zero-fill
// pass and no read-modify-write of dx (2x2/2 planes: 2.3-3.3x faster than the row scheme).
// A window row is built in
// the first of its KH input rows and copied to the others; rows and columns past the last
// window get 0.
template <typename T, int K>
void avg_backward_tiled(const Pool2dParams& p, T* __restrict dx, const T* __restrict dy) {
    const int64_t kw = K > 0 ? K : p.KW;
    const T div = T(avg_divisor(p, p.KH, p.KW, p.KH, p.KW));
    const int64_t covered = p.OW * kw;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        T* __restrict d = dx + oh * p.KH * p.W;
        const T* __restrict g = dy + oh * p.OW;
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const T v = T(0) + g[ow] / div;
            for (int64_t j = 0; j < kw; ++j) d[ow * kw + j] = v;
        }
        for (int64_t iw = covered; iw < p.W; ++iw) d[iw] = T(0);
        for (int64_t r = 1; r < p.KH; ++r) {
            T* __restrict dr = d + r * p.W;
            for (int64_t iw = 0; iw < p.W; ++iw) dr[iw] = d[iw];
        }
    }
    for (int64_t i = p.OH * p.KH * p.W; i < p.H * p.W; ++i) dx[i] = T(0);
}

// avg_backward_tiled for 2x2 windows at stride 2 in vectors, nplanes consecutive planes:
// V values of dy, scaled once (by the exact reciprocal of a power-of-two divisor, else
// divided), each written to its window's four inputs by one zip with itself per row (two
// stores of V per dx row). The per-output scalar loop and the row copy took 75-85 ns per
// 10x10 plane. Set up once per call, and an odd plane's last row zeroed by vector stores:
// one plane per call, with a memset call for that row, took 35-40 ns per 10x10 or 12x12
// plane and 75-80 ns per 13x13 one (Keras pool2) on Zen 3. false where no vector fits a row
// (OW below a 16-byte vector).
template <typename T>
bool avg_backward_2x2(const Pool2dParams& p, int64_t nplanes, T* __restrict dx,
                      const T* __restrict dy) {
    const int64_t divisor = avg_divisor(p, 2, 2, 2, 2);
    const T div = T(divisor), inv = exact_reciprocal<T>(divisor);
    const int64_t in_size = p.H * p.W, out_size = p.OH * p.OW;
    auto run = [&](auto lanes, auto exact) {
        constexpr int V = decltype(lanes)::value;
        constexpr bool kExact = decltype(exact)::value;
        using VT = typename PoolVec<T, V>::type;
        using M = typename PoolVec<T, V>::mask;
        M lo, hi;  // lanes 0, 0, 1, 1, .. and V/2, V/2, ..
        for (int k = 0; k < V; ++k) {
            lo[k] = k / 2;
            hi[k] = V / 2 + k / 2;
        }
        for (int64_t pl = 0; pl < nplanes; ++pl) {
            T* dxp = dx + pl * in_size;
            const T* dyp = dy + pl * out_size;
            for (int64_t oh = 0; oh < p.OH; ++oh) {
                const T* g = dyp + oh * p.OW;
                T* d0 = dxp + 2 * oh * p.W;
                T* d1 = d0 + p.W;
                // Columns past the last window (W odd) first, by vectors ending at W whose
                // other lanes the blocks then overwrite (W >= 2 * OW >= 2 * V): scalar
                // stores after the blocks took twice the time of a 12-wide plane.
                for (int64_t iw = p.W; iw > 2 * p.OW; iw -= V)
                    *reinterpret_cast<VT*>(d0 + iw - V) = *reinterpret_cast<VT*>(d1 + iw - V) =
                        VT{};
                for_blocks<V>(0, p.OW, [&](int64_t ow0) {
                    const VT gv = vload<VT>(g + ow0);
                    VT v;
                    if constexpr (kExact)
                        v = VT{} + gv * inv;  // 0 + g / div
                    else
                        v = VT{} + gv / div;
                    const VT a = __builtin_shuffle(v, lo), b = __builtin_shuffle(v, hi);
                    *reinterpret_cast<VT*>(d0 + 2 * ow0) = a;
                    *reinterpret_cast<VT*>(d0 + 2 * ow0 + V) = b;
                    *reinterpret_cast<VT*>(d1 + 2 * ow0) = a;
                    *reinterpret_cast<VT*>(d1 + 2 * ow0 + V) = b;
                });
            }
            // Rows past the last window (H odd).
            for (int64_t ih = 2 * p.OH; ih < p.H; ++ih)
                for_blocks<V>(0, p.W, [&](int64_t iw0) {
                    *reinterpret_cast<VT*>(dxp + ih * p.W + iw0) = VT{};
                });
        }
    };
    return with_block_width<T, 2>(0, p.OW, [&](auto lanes) {
        with_exact_reciprocal(inv, [&](auto exact) { run(lanes, exact); });
    });
}

// ---- adaptive -------------------------------------------------------------------------

// Sum of a contiguous run, with 8 independent partial sums so it vectorises without
// -ffast-math (the order differs from a sequential sum; within rounding tolerance).
template <typename T>
inline T sum_run(const T* __restrict r, int64_t n) {
    constexpr int kAcc = 8;
    T acc[kAcc] = {};
    int64_t i = 0;
    for (; i + kAcc <= n; i += kAcc)
        for (int k = 0; k < kAcc; ++k) acc[k] += r[i + k];
    T tail = T(0);
    for (; i < n; ++i) tail += r[i];
    T sum = T(0);
    for (int k = 0; k < kAcc; ++k) sum += acc[k];
    return sum + tail;
}

// Windows are uniform (start ow*k, width k) when OW divides W; then the strided row
// machinery of max/avg pooling applies with stride = kernel = W/OW. Worth it only when
// there are more outputs in a row than taps in a window.
inline bool adaptive_uniform(int64_t in, int64_t out) {
    return in % out == 0 && in / out <= out;
}

template <typename T, int S>
void adaptive_avg_uniform(const Pool2dParams& p, const T* x, T* y) {
    const int64_t k = p.W / p.OW;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        T* yr = y + oh * p.OW;
        sum_row_interior<T, S>(x, p.W, ih0, ih1, k, 0, k, 0, p.OW, yr);
        const T kh = T(ih1 - ih0), kw = T(k);
        for (int64_t ow = 0; ow < p.OW; ++ow) yr[ow] = yr[ow] / kh / kw;
    }
}

template <typename T, int S>
void adaptive_max_uniform(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    const int64_t k = p.W / p.OW;
    const bool rel32 = p.H * p.W <= INT32_MAX;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        max_row_interior<T, S, true>(x, p.W, ih0, ih1, 1, k, 1, 0, k, 0, p.OW, rel32,
                                     y + oh * p.OW, indices + oh * p.OW);
    }
}

}  // namespace pool2d_detail

// ---- the plane kernels (slots of KernelSet) -------------------------------------------

template <typename T>
void max_pool2d_forward_planes(const Pool2dParams& p, int64_t nplanes, const T* x, T* y,
                               int64_t* indices) {
    assert(p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1);
    assert(p.dil_h >= 1 && p.dil_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0);
    using namespace pool2d_detail;
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) {
        if (p.KH == 2 && p.KW == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 &&
            p.pad_w == 0 && p.dil_h == 1 && p.dil_w == 1 && 2 * p.OH <= p.H && 2 * p.OW <= p.W &&
            p.H * p.W <= INT32_MAX) {
            if (p.H == 2 * p.OH && p.W == 2 * p.OW && p.OW <= 16)
                (indices ? max_pool2x2_rows<true> : max_pool2x2_rows<false>)(nplanes, p.OH, p.OW, x,
                                                                             y, indices);
            else
                (indices ? max_pool2x2_any<true> : max_pool2x2_any<false>)(nplanes, p.H, p.W, p.OH,
                                                                           p.OW, x, y, indices);
            return;
        }
    }
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
        if (p.KH == 2 && p.KW == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 &&
            p.pad_w == 0 && p.dil_h == 1 && p.dil_w == 1 && 2 * p.OH <= p.H && 2 * p.OW <= p.W &&
            p.H * p.W <= INT32_MAX) {
            (indices ? max_pool2x2_ymm<true> : max_pool2x2_ymm<false>)(nplanes, p.H, p.W, p.OH,
                                                                       p.OW, x, y, indices);
            return;
        }
        // Other windows on rows at most a vector wide: planes as lanes (on the 2x2 windows
        // above that measured 0.88-1.15x of max_pool2x2_ymm, which stays there).
        const int64_t done = (indices ? max_pool_plane_lanes<true>
                                      : max_pool_plane_lanes<false>)(p, nplanes, x, y, indices);
        if (done > 0) {
            const int64_t out = done * p.OH * p.OW;
            x += done * p.H * p.W;
            y += out;
            if (indices) indices += out;
            nplanes -= done;
            if (nplanes == 0) return;
        }
    }
#endif
    if (indices == nullptr) {
        if (p.stride_w == 1)
            max_pool2d_forward_impl<T, 1, false>(p, nplanes, x, y, nullptr);
        else if (p.stride_w == 2)
            max_pool2d_forward_impl<T, 2, false>(p, nplanes, x, y, nullptr);
        else
            max_pool2d_forward_impl<T, 0, false>(p, nplanes, x, y, nullptr);
    } else if (p.stride_w == 1) {
        max_pool2d_forward_impl<T, 1, true>(p, nplanes, x, y, indices);
    } else if (p.stride_w == 2) {
        max_pool2d_forward_impl<T, 2, true>(p, nplanes, x, y, indices);
    } else {
        max_pool2d_forward_impl<T, 0, true>(p, nplanes, x, y, indices);
    }
}

// Scatter: conflicting indices (overlapping windows) make this inherently sequential. The
// range check rides along (one predictable branch) instead of a separate pass over the
// indices; a bad index is reported, never written through.
template <typename T>
int64_t max_pool2d_backward_plane(const Pool2dParams& p, T* dx, const T* dy,
                                  const int64_t* indices) {
    const int64_t in_size = p.H * p.W, out_size = p.OH * p.OW;
    for (int64_t i = 0; i < in_size; ++i) dx[i] = T(0);
    for (int64_t o = 0; o < out_size; ++o) {
        const int64_t i = indices[o];
        if (static_cast<uint64_t>(i) >= static_cast<uint64_t>(in_size)) return o;
        dx[i] += dy[o];
    }
    return -1;
}

template <typename T>
void avg_pool2d_forward_planes(const Pool2dParams& p, int64_t nplanes, const T* x, T* y) {
    assert(p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1);
    using namespace pool2d_detail;
    if (avg_pool2x2_planes(p, nplanes, x, y)) return;
    const int64_t in = p.H * p.W, out = p.OH * p.OW;
    for (int64_t i = 0; i < nplanes; ++i) {
        if (p.stride_w == 1)
            avg_pool2d_forward_impl<T, 1>(p, x + i * in, y + i * out);
        else if (p.stride_w == 2)
            avg_pool2d_forward_impl<T, 2>(p, x + i * in, y + i * out);
        else
            avg_pool2d_forward_impl<T, 0>(p, x + i * in, y + i * out);
    }
}

template <typename T>
void avg_pool2d_backward_planes(const Pool2dParams& p, int64_t nplanes, T* dx, const T* dy) {
    assert(p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1);
    using namespace pool2d_detail;
    const bool tile = avg_windows_tile(p);
    if (tile && p.KH == 2 && p.KW == 2 && avg_backward_2x2(p, nplanes, dx, dy)) return;
    const int64_t in = p.H * p.W, out = p.OH * p.OW;
    for (int64_t i = 0; i < nplanes; ++i) {
        T* dxp = dx + i * in;
        const T* dyp = dy + i * out;
        if (tile) {
            if (p.KW == 2)
                avg_backward_tiled<T, 2>(p, dxp, dyp);
            else
                avg_backward_tiled<T, 0>(p, dxp, dyp);
        } else if (p.stride_w == 1) {
            avg_pool2d_backward_impl<T, 1>(p, dxp, dyp);
        } else if (p.stride_w == 2) {
            avg_pool2d_backward_impl<T, 2>(p, dxp, dyp);
        } else {
            avg_pool2d_backward_impl<T, 0>(p, dxp, dyp);
        }
    }
}

template <typename T>
void adaptive_avg_pool2d_forward_plane(const Pool2dParams& p, const T* x, T* y) {
    assert(p.OH >= 1 && p.OW >= 1 && p.H >= 1 && p.W >= 1);
    using namespace pool2d_detail;
    if (p.OH == 1 && p.OW == 1) {  // global average pooling: one contiguous run
        y[0] = sum_run(x, p.H * p.W) / T(p.H) / T(p.W);
        return;
    }
    if (adaptive_uniform(p.W, p.OW)) {
        const int64_t k = p.W / p.OW;
        if (k == 1)
            adaptive_avg_uniform<T, 1>(p, x, y);
        else if (k == 2)
            adaptive_avg_uniform<T, 2>(p, x, y);
        else
            adaptive_avg_uniform<T, 0>(p, x, y);
        return;
    }
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t iw0 = adaptive_start(ow, p.W, p.OW);
            const int64_t iw1 = adaptive_end(ow, p.W, p.OW);
            T sum = T(0);
            if (iw1 - iw0 == p.W)  // full rows are one contiguous run
                sum = sum_run(x + ih0 * p.W, (ih1 - ih0) * p.W);
            else
                for (int64_t ih = ih0; ih < ih1; ++ih)
                    sum += sum_run(x + ih * p.W + iw0, iw1 - iw0);
            y[oh * p.OW + ow] = sum / T(ih1 - ih0) / T(iw1 - iw0);
        }
    }
}

template <typename T>
void adaptive_avg_pool2d_backward_plane(const Pool2dParams& p, T* __restrict dx,
                                        const T* __restrict dy) {
    assert(p.OH >= 1 && p.OW >= 1 && p.H >= 1 && p.W >= 1);
    for (int64_t i = 0; i < p.H * p.W; ++i) dx[i] = T(0);
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t iw0 = adaptive_start(ow, p.W, p.OW);
            const int64_t iw1 = adaptive_end(ow, p.W, p.OW);
            const T delta = dy[oh * p.OW + ow] / T(ih1 - ih0) / T(iw1 - iw0);
            for (int64_t ih = ih0; ih < ih1; ++ih) {
                T* d = dx + ih * p.W;
                for (int64_t iw = iw0; iw < iw1; ++iw) d[iw] += delta;
            }
        }
    }
}

template <typename T>
void adaptive_max_pool2d_forward_plane(const Pool2dParams& p, const T* x, T* y, int64_t* indices) {
    assert(p.OH >= 1 && p.OW >= 1 && p.H >= 1 && p.W >= 1);
    using namespace pool2d_detail;
    if (adaptive_uniform(p.W, p.OW)) {
        const int64_t k = p.W / p.OW;
        if (k == 1)
            adaptive_max_uniform<T, 1>(p, x, y, indices);
        else if (k == 2)
            adaptive_max_uniform<T, 2>(p, x, y, indices);
        else
            adaptive_max_uniform<T, 0>(p, x, y, indices);
        return;
    }
    for (int64_t oh = 0; oh < p.OH; ++oh) {
        const int64_t ih0 = adaptive_start(oh, p.H, p.OH), ih1 = adaptive_end(oh, p.H, p.OH);
        for (int64_t ow = 0; ow < p.OW; ++ow) {
            const int64_t iw0 = adaptive_start(ow, p.W, p.OW);
            const int64_t iw1 = adaptive_end(ow, p.W, p.OW);
            max_one(x, p.W, ih0, ih1, 1, iw0, iw1, 1, y + oh * p.OW + ow, indices + oh * p.OW + ow);
        }
    }
}

}  // namespace FASTCONV_ISA
}  // namespace fastconv
