#include "kernels/conv2d/conv2d_ref.h"

#include "common/parallel.h"

namespace fastconv {

// y[n][k][oh][ow] = bias[k] + sum_{c, kh, kw} x[n][g*Cg + c][ih][iw] * w[k][c][kh][kw],
// ih = oh*sh - pad_top + kh*dh, iw = ow*sw - pad_left + kw*dw, g = k / Kg.
template <typename T>
void conv2d_forward_ref(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
    const int64_t Cg = p.c_per_group(), Kg = p.k_per_group();
#pragma omp parallel for collapse(2) num_threads(team_for(threads_for(p.N* p.K)))
    for (int64_t n = 0; n < p.N; ++n)
        for (int64_t k = 0; k < p.K; ++k) {
            const int64_t g = k / Kg;
            for (int64_t oh = 0; oh < p.OH; ++oh)
                for (int64_t ow = 0; ow < p.OW; ++ow) {
                    double acc = bias ? double(bias[k]) : 0.0;
                    for (int64_t c = 0; c < Cg; ++c)
                        for (int64_t kh = 0; kh < p.KH; ++kh) {
                            const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                            if (ih < 0 || ih >= p.H) continue;
                            for (int64_t kw = 0; kw < p.KW; ++kw) {
                                const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
                                if (iw < 0 || iw >= p.W) continue;
                                acc += double(x[((n * p.C + g * Cg + c) * p.H + ih) * p.W + iw]) *
                                       double(w[((k * Cg + c) * p.KH + kh) * p.KW + kw]);
                            }
                        }
                    y[((n * p.K + k) * p.OH + oh) * p.OW + ow] = T(acc);
                }
        }
}

// dx[n][c][ih][iw] = sum over (k in c's group, kh, kw, oh, ow) with matching taps of
// dy[n][k][oh][ow] * w[k][c % Cg][kh][kw]; gathered per input element (no scatter races).
template <typename T>
void conv2d_backward_data_ref(const Conv2dParams& p, T* dx, const T* dy, const T* w) {
    const int64_t Cg = p.c_per_group(), Kg = p.k_per_group();
#pragma omp parallel for collapse(2) num_threads(team_for(threads_for(p.N* p.C)))
    for (int64_t n = 0; n < p.N; ++n)
        for (int64_t c = 0; c < p.C; ++c) {
            const int64_t g = c / Cg, cg = c % Cg;
            for (int64_t ih = 0; ih < p.H; ++ih)
                for (int64_t iw = 0; iw < p.W; ++iw) {
                    double acc = 0.0;
                    for (int64_t kh = 0; kh < p.KH; ++kh) {
                        const int64_t th = ih + p.pad_top - kh * p.dil_h;
                        if (th < 0 || th % p.stride_h != 0) continue;
                        const int64_t oh = th / p.stride_h;
                        if (oh >= p.OH) continue;
                        for (int64_t kw = 0; kw < p.KW; ++kw) {
                            const int64_t tw = iw + p.pad_left - kw * p.dil_w;
                            if (tw < 0 || tw % p.stride_w != 0) continue;
                            const int64_t ow = tw / p.stride_w;
                            if (ow >= p.OW) continue;
                            for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k)
                                acc += double(dy[((n * p.K + k) * p.OH + oh) * p.OW + ow]) *
                                       double(w[((k * Cg + cg) * p.KH + kh) * p.KW + kw]);
                        }
                    }
                    dx[((n * p.C + c) * p.H + ih) * p.W + iw] = T(acc);
                }
        }
}

// dw[k][c][kh][kw] = sum_{n, oh, ow} dy[n][k][oh][ow] * x[n][g*Cg + c][ih][iw].
template <typename T>
void conv2d_backward_weight_ref(const Conv2dParams& p, T* dw, const T* dy, const T* x) {
    const int64_t Cg = p.c_per_group(), Kg = p.k_per_group();
#pragma omp parallel for collapse(2) num_threads(team_for(threads_for(p.K* Cg)))
    for (int64_t k = 0; k < p.K; ++k)
        for (int64_t c = 0; c < Cg; ++c) {
            const int64_t g = k / Kg;
            for (int64_t kh = 0; kh < p.KH; ++kh)
                for (int64_t kw = 0; kw < p.KW; ++kw) {
                    double acc = 0.0;
                    for (int64_t n = 0; n < p.N; ++n)
                        for (int64_t oh = 0; oh < p.OH; ++oh) {
                            const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dil_h;
                            if (ih < 0 || ih >= p.H) continue;
                            for (int64_t ow = 0; ow < p.OW; ++ow) {
                                const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dil_w;
                                if (iw < 0 || iw >= p.W) continue;
                                acc += double(dy[((n * p.K + k) * p.OH + oh) * p.OW + ow]) *
                                       double(x[((n * p.C + g * Cg + c) * p.H + ih) * p.W + iw]);
                            }
                        }
                    dw[((k * Cg + c) * p.KH + kh) * p.KW + kw] = T(acc);
                }
        }
}

#define FASTCONV_INSTANTIATE(T)                                                                 \
    template void conv2d_forward_ref<T>(const Conv2dParams&, const T*, const T*, const T*, T*); \
    template void conv2d_backward_data_ref<T>(const Conv2dParams&, T*, const T*, const T*);     \
    template void conv2d_backward_weight_ref<T>(const Conv2dParams&, T*, const T*, const T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv
