// Declarations of the per-ISA kernels listed in dispatch/kernels.def. Semantics are
// documented on the slots of KernelSet in fastconv/kernel_table.h.
//
// FASTCONV_DECLARE_ISA_KERNELS(isa) declares them in namespace fastconv::isa. An ISA source
// file defines them (usually by including a *_impl.h template with FASTCONV_ISA set) and
// instantiates them for float and double with the FASTCONV_INSTANTIATE_* macros below.
#pragma once

#include <cstdint>

#include "fastconv/params.h"

// col2im_planes takes layers of at most this many taps (KH * KW; 11x11 is 121).
namespace fastconv {
constexpr int64_t kCol2imMaxTaps = 128;
// pooled_corr_rows takes at most this many kernel rows.
constexpr int kPooledMaxRows = 8;
}  // namespace fastconv

#define FASTCONV_DECLARE_IM2COL_KERNELS                                                        \
    template <typename T>                                                                      \
    void im2col_pack_panel(const T* xp, const int64_t* row_off, int64_t nrows,                 \
                           const ::fastconv::Im2colRun* runs, int64_t nruns, int64_t stride_w, \
                           int64_t ncols, int64_t nr, T* out);                                 \
    template <typename T>                                                                      \
    void col2im_planes(const ::fastconv::Conv2dParams& p, const T* col, int64_t nplanes, T* dx);

#define FASTCONV_INSTANTIATE_IM2COL_KERNELS(T)                                                  \
    template void im2col_pack_panel<T>(const T*, const int64_t*, int64_t,                       \
                                       const ::fastconv::Im2colRun*, int64_t, int64_t, int64_t, \
                                       int64_t, T*);                                            \
    template void col2im_planes<T>(const ::fastconv::Conv2dParams&, const T*, int64_t, T*);

#define FASTCONV_DECLARE_ELTWISE_KERNELS                           \
    template <typename T>                                          \
    void relu_forward(int64_t n, const T* x, T* y);                \
    template <typename T>                                          \
    void relu_backward(int64_t n, const T* dy, const T* y, T* dx); \
    template <typename T>                                          \
    void sgd_step(int64_t n, T* p, const T* g, T* buf, const ::fastconv::SgdStep<T>& s);

#define FASTCONV_INSTANTIATE_ELTWISE_KERNELS(T)                      \
    template void relu_forward<T>(int64_t, const T*, T*);            \
    template void relu_backward<T>(int64_t, const T*, const T*, T*); \
    template void sgd_step<T>(int64_t, T*, const T*, T*, const ::fastconv::SgdStep<T>&);

#define FASTCONV_DECLARE_POOL2D_KERNELS                                                            \
    template <typename T>                                                                          \
    void max_pool2d_forward_planes(const ::fastconv::Pool2dParams& p, int64_t nplanes, const T* x, \
                                   T* y, int64_t* indices);                                        \
    template <typename T>                                                                          \
    int64_t max_pool2d_backward_plane(const ::fastconv::Pool2dParams& p, T* dx, const T* dy,       \
                                      const int64_t* indices);                                     \
    template <typename T>                                                                          \
    void avg_pool2d_forward_planes(const ::fastconv::Pool2dParams& p, int64_t nplanes, const T* x, \
                                   T* y);                                                          \
    template <typename T>                                                                          \
    void avg_pool2d_backward_planes(const ::fastconv::Pool2dParams& p, int64_t nplanes, T* dx,     \
                                    const T* dy);                                                  \
    template <typename T>                                                                          \
    void adaptive_avg_pool2d_forward_plane(const ::fastconv::Pool2dParams& p, const T* x, T* y);   \
    template <typename T>                                                                          \
    void adaptive_avg_pool2d_backward_plane(const ::fastconv::Pool2dParams& p, T* dx,              \
                                            const T* dy);                                          \
    template <typename T>                                                                          \
    void adaptive_max_pool2d_forward_plane(const ::fastconv::Pool2dParams& p, const T* x, T* y,    \
                                           int64_t* indices);

#define FASTCONV_DECLARE_GEMM_UKERNEL(name, T) \
    void name(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta);
#define FASTCONV_DECLARE_GEMM_UKERNEL_EDGE(name, T)                                     \
    void name(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta, int rows, \
              int cols);
#define FASTCONV_DECLARE_GEMM_UKERNEL_NARROW(name, T)                                          \
    void name(int64_t kc, const T* a, int64_t npanels, const T* b, T* c, int64_t ldc, T alpha, \
              T beta, int rows, int cols);
#define FASTCONV_DECLARE_GEMM_UKERNEL_A_IN_PLACE(name, T)                                   \
    void name(int64_t kc, const T* a, int64_t lda, bool a_rows, const T* b, T* c, int64_t ldc, \
              T alpha, T beta, int rows, int cols);

#define FASTCONV_INSTANTIATE_POOL2D_KERNELS(T)                                                     \
    template void max_pool2d_forward_planes<T>(const ::fastconv::Pool2dParams&, int64_t, const T*, \
                                               T*, int64_t*);                                      \
    template int64_t max_pool2d_backward_plane<T>(const ::fastconv::Pool2dParams&, T*, const T*,   \
                                                  const int64_t*);                                 \
    template void avg_pool2d_forward_planes<T>(const ::fastconv::Pool2dParams&, int64_t, const T*, \
                                               T*);                                                \
    template void avg_pool2d_backward_planes<T>(const ::fastconv::Pool2dParams&, int64_t, T*,      \
                                                const T*);                                         \
    template void adaptive_avg_pool2d_forward_plane<T>(const ::fastconv::Pool2dParams&, const T*,  \
                                                       T*);                                        \
    template void adaptive_avg_pool2d_backward_plane<T>(const ::fastconv::Pool2dParams&, T*,       \
                                                        const T*);                                 \
    template void adaptive_max_pool2d_forward_plane<T>(const ::fastconv::Pool2dParams&, const T*,  \
                                                       T*, int64_t*);

#define FASTCONV_DECLARE_GEMM_SMALL_M_KERNEL                                              \
    template <typename T>                                                                  \
    void gemm_small_m(int64_t M, int64_t j0, int64_t j1, int64_t K, T alpha, const T* a,    \
                      const T* B, int64_t rs, int64_t cs, T beta, T* C, int64_t ldc);

#define FASTCONV_DECLARE_DIRECT_KERNELS                                                            \
    template <typename T>                                                                          \
    void shifted_gemm(int64_t P, const T* a, const T* const* rows, int64_t i0, int64_t n, int mr,  \
                      T* c, int64_t ldc, bool accumulate);                                         \
    template <typename T>                                                                          \
    void shifted_corr(int64_t n, const T* d, int64_t ldd, int kb, const T* const* rows, int tb,    \
                      T* out, int64_t ldo);                                                        \
    template <typename T>                                                                          \
    void shifted_taps(int64_t n, const T* w, int64_t ntaps, const T* const* rows, T* out);         \
    template <typename T>                                                                          \
    int64_t pooled_corr(int64_t nk, int64_t nq, const T* g, const int64_t* idx, int64_t ldq,       \
                        int64_t nrows, const T* base, int64_t ld, int64_t n, T* acc,               \
                        int64_t ldacc);                                                            \
    template <typename T>                                                                          \
    int64_t pooled_corr_rows(int64_t nq, const T* g, const int64_t* idx, int64_t npos,             \
                             const int64_t* poff, const T* base, const int64_t* roff, int nr,      \
                             int64_t len, int64_t ldacc, T* acc);                                  \
    template <typename T>                                                                          \
    void direct_row(int64_t ntaps, const T* base, const int64_t* offs, const T* wp, int kb,        \
                    const T* bias, int64_t n, T* y, int64_t ystride);                              \
    template <typename T>                                                                          \
    void direct_oc(int64_t ntaps, const T* base, const int64_t* offs, const T* wp, const T* bias,  \
                   int nj, T* out, int64_t ldo);                                                   \
    template <typename T>                                                                          \
    void phase_split_s2(const T* src, int64_t src_stride, int64_t W, int64_t pad, int64_t nrows,   \
                        int64_t Wq, T* even, T* odd, int64_t dst_stride);                          \
    template <typename T>                                                                          \
    void phase_merge_s2(const T* even, const T* odd, int64_t src_stride, int64_t Wq,               \
                        int64_t nrows, int64_t pad, int64_t W, T* dst, int64_t dst_stride);        \
    template <typename T>                                                                          \
    ::fastconv::DirectTiles direct_tiles();                                                        \
    template <typename T>                                                                          \
    void depthwise_plane(const T* src, int64_t src_h, int64_t src_w, const T* w, int64_t KH,       \
                         int64_t KW, int64_t row_off, int64_t row_step, int64_t col_off,           \
                         int64_t col_step, int64_t out_h, int64_t out_w, T* out, bool accumulate,  \
                         T bias);                                                                  \
    template <typename T>                                                                          \
    void depthwise_corr_plane(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH,           \
                              int64_t OW, int64_t KH, int64_t KW, int64_t row_off,                 \
                              int64_t row_step, int64_t col_off, int64_t col_step, T* dw);         \
    template <typename T>                                                                          \
    void depthwise3x3_s2_plane(const T* src, int64_t src_h, int64_t src_w, const T* w,             \
                               int64_t row_off, int64_t col_off, int64_t out_h, int64_t out_w,     \
                               T* out, T bias);                                                    \
    template <typename T>                                                                          \
    void depthwise3x3_s2_corr_plane(const T* x, int64_t H, int64_t W, const T* dy, int64_t OH,     \
                                    int64_t OW, int64_t row_off, int64_t col_off, T* dw);          \
    template <typename T>                                                                          \
    void depthwise3x3_s2_transposed_plane(const T* dy, int64_t OH, int64_t OW, const T* w,         \
                                          int64_t pad_top, int64_t pad_left, int64_t H, int64_t W, \
                                          T* dx, bool accumulate);

#define FASTCONV_INSTANTIATE_DIRECT_KERNELS(T)                                                     \
    template void shifted_gemm<T>(int64_t, const T*, const T* const*, int64_t, int64_t, int, T*,   \
                                  int64_t, bool);                                                  \
    template void shifted_corr<T>(int64_t, const T*, int64_t, int, const T* const*, int, T*,       \
                                  int64_t);                                                        \
    template void shifted_taps<T>(int64_t, const T*, int64_t, const T* const*, T*);                \
    template int64_t pooled_corr<T>(int64_t, int64_t, const T*, const int64_t*, int64_t, int64_t,  \
                                    const T*, int64_t, int64_t, T*, int64_t);                      \
    template int64_t pooled_corr_rows<T>(int64_t, const T*, const int64_t*, int64_t,               \
                                         const int64_t*, const T*, const int64_t*, int, int64_t,   \
                                         int64_t, T*);                                             \
    template void direct_row<T>(int64_t, const T*, const int64_t*, const T*, int, const T*,        \
                                int64_t, T*, int64_t);                                             \
    template void direct_oc<T>(int64_t, const T*, const int64_t*, const T*, const T*, int, T*,     \
                               int64_t);                                                           \
    template void phase_split_s2<T>(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*, T*, \
                                    int64_t);                                                      \
    template void phase_merge_s2<T>(const T*, const T*, int64_t, int64_t, int64_t, int64_t,        \
                                    int64_t, T*, int64_t);                                         \
    template ::fastconv::DirectTiles direct_tiles<T>();

// The depthwise plane kernels exist on AVX2 and AVX-512 (null slots in the baseline build).
#define FASTCONV_INSTANTIATE_DEPTHWISE_KERNELS(T)                                                  \
    template void depthwise_plane<T>(const T*, int64_t, int64_t, const T*, int64_t, int64_t,       \
                                     int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, T*,     \
                                     bool, T);                                                     \
    template void depthwise_corr_plane<T>(const T*, int64_t, int64_t, const T*, int64_t, int64_t,  \
                                          int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,    \
                                          T*);                                                     \
    template void depthwise3x3_s2_plane<T>(const T*, int64_t, int64_t, const T*, int64_t, int64_t, \
                                           int64_t, int64_t, T*, T);                               \
    template void depthwise3x3_s2_corr_plane<T>(const T*, int64_t, int64_t, const T*, int64_t,     \
                                                int64_t, int64_t, int64_t, T*);                    \
    template void depthwise3x3_s2_transposed_plane<T>(                                             \
        const T*, int64_t, int64_t, const T*, int64_t, int64_t, int64_t, int64_t, T*, bool);

namespace fastconv {
// Widest run / panel of the Winograd transforms: the widest NR of any micro-kernel.
constexpr int kWinogradMaxLanes = 32;
}  // namespace fastconv

#define FASTCONV_DECLARE_WINOGRAD_KERNELS                                                          \
    template <typename T>                                                                          \
    void winograd_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len,  \
                            int rows, T* out, int64_t xi_stride);                                  \
    template <typename T>                                                                          \
    void winograd_weight_panel(const T* w, int64_t k_stride, int64_t c_stride, bool flipped,       \
                               int rows, int64_t cg, int mr, T* dst, int64_t xi_stride);           \
    template <typename T>                                                                          \
    void winograd_output_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,      \
                             int64_t OH, int64_t OW, int64_t oh0, int64_t ow0);                    \
    template <typename T>                                                                          \
    void winograd_output_pool_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk, \
                                  int64_t* ik, bool relu, int64_t PH, int64_t PW, int64_t OW,      \
                                  int64_t th0, int64_t tw0);                                       \
    template <typename T>                                                                          \
    void winograd_grad_output_run(const T* dyk, int64_t OH, int64_t OW, int64_t oh0, int64_t ow0,  \
                                  int len, int rows, T* out, int64_t xi_stride);                   \
    template <typename T>                                                                          \
    void winograd4_input_run(const T* xc, int64_t H, int64_t W, int64_t ih0, int64_t iw0, int len, \
                             int rows, T* out, int64_t xi_stride);                                 \
    template <typename T>                                                                          \
    void winograd4_weight_panel(const T* w, int64_t k_stride, int64_t c_stride, bool flipped,      \
                                int rows, int64_t cg, int mr, T* dst, int64_t xi_stride);          \
    template <typename T>                                                                          \
    void winograd4_output_run(const T* m, int64_t xi_stride, int len, int rows, T bias, T* yk,     \
                              int64_t OH, int64_t OW, int64_t oh0, int64_t ow0);                   \
    template <typename T>                                                                          \
    void winograd4_output_pool_run(const T* m, int64_t xi_stride, int len, int rows, T bias,       \
                                   T* yk, int64_t* ik, bool relu, int64_t PH, int64_t PW,          \
                                   int64_t OW, int64_t th0, int64_t tw0);

#define FASTCONV_INSTANTIATE_WINOGRAD_KERNELS(T)                                                   \
    template void winograd_input_run<T>(const T*, int64_t, int64_t, int64_t, int64_t, int, int,    \
                                        T*, int64_t);                                              \
    template void winograd_weight_panel<T>(const T*, int64_t, int64_t, bool, int, int64_t, int,    \
                                           T*, int64_t);                                           \
    template void winograd_output_run<T>(const T*, int64_t, int, int, T, T*, int64_t, int64_t,     \
                                         int64_t, int64_t);                                        \
    template void winograd_output_pool_run<T>(const T*, int64_t, int, int, T, T*, int64_t*, bool,  \
                                              int64_t, int64_t, int64_t, int64_t, int64_t);        \
    template void winograd_grad_output_run<T>(const T*, int64_t, int64_t, int64_t, int64_t, int,   \
                                              int, T*, int64_t);                                   \
    template void winograd4_input_run<T>(const T*, int64_t, int64_t, int64_t, int64_t, int, int,   \
                                         T*, int64_t);                                             \
    template void winograd4_weight_panel<T>(const T*, int64_t, int64_t, bool, int, int64_t, int,   \
                                            T*, int64_t);                                          \
    template void winograd4_output_run<T>(const T*, int64_t, int, int, T, T*, int64_t, int64_t,    \
                                          int64_t, int64_t);                                       \
    template void winograd4_output_pool_run<T>(const T*, int64_t, int, int, T, T*, int64_t*, bool, \
                                               int64_t, int64_t, int64_t, int64_t, int64_t);

#define FASTCONV_DECLARE_ISA_KERNELS(isa) \
    namespace fastconv {                  \
    namespace isa {                       \
    FASTCONV_DECLARE_DIRECT_KERNELS       \
    FASTCONV_DECLARE_WINOGRAD_KERNELS     \
    FASTCONV_DECLARE_GEMM_SMALL_M_KERNEL  \
    FASTCONV_DECLARE_IM2COL_KERNELS       \
    FASTCONV_DECLARE_POOL2D_KERNELS       \
    FASTCONV_DECLARE_ELTWISE_KERNELS      \
    }                                     \
    }
