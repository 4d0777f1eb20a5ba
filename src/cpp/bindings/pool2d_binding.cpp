// _core pooling functions: convert + validate + release the GIL + call the pool2d drivers.
// No arithmetic beyond output sizes. Every rule is checked, in argument order, before any
// data pointer is touched; messages follow PyTorch's pool2d_shape_check and name the op,
// the argument and the shapes. Torch-style int/pair normalisation is in fastconv/_pooling.py.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/validate.h"
#include "fastconv/ops.h"
#include "fastconv/params.h"

namespace fastconv {

namespace {

namespace py = pybind11;
using bind::DType;
using Pair = std::pair<int64_t, int64_t>;

// A validated 4-D float array (N, C, H, W), N >= 0 and C, H, W >= 1 (as PyTorch's
// "non-zero size for non-batch dimensions").
struct Input4d {
    py::array a;
    DType dtype;
    int64_t N, C, H, W;
};

Input4d require_input(const char* op, const char* arg, const py::handle& obj) {
    py::array a = bind::require_array(op, arg, obj);
    const DType dtype = bind::float_dtype(op, arg, a);
    bind::require_ndim(op, arg, a, 4, "(N, C, H, W)");
    const int64_t N = a.shape(0), C = a.shape(1), H = a.shape(2), W = a.shape(3);
    if (C < 1 || H < 1 || W < 1)
        bind::value_error(op, ": expected ", arg,
                          " to have non-zero size for non-batch dimensions (1, 2, 3), got shape ",
                          bind::shape_str(a));
    return {a, dtype, N, C, H, W};
}

std::string pair_str(Pair v) {
    return "(" + std::to_string(v.first) + ", " + std::to_string(v.second) + ")";
}

// a + b and a * b without signed overflow (UB); false when the result does not fit.
bool add_ok(int64_t a, int64_t b, int64_t* r) {
    return !__builtin_add_overflow(a, b, r);
}
bool mul_ok(int64_t a, int64_t b, int64_t* r) {
    return !__builtin_mul_overflow(a, b, r);
}

// Window sizes along one axis fit 64-bit index arithmetic: the kernels compute positions up
// to in + 2*pad + stride + (k-1)*dil + 1 (pad <= k/2 is checked first).
bool window_axis_fits(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    int64_t span, t;
    return mul_ok(k - 1, dil, &span) && add_ok(span, 1, &span) && add_ok(in, 2 * pad, &t) &&
           add_ok(t, stride, &t) && add_ok(t, span, &t);
}

}  // namespace

// validate.h: PyTorch's pool2d_shape_check, then the output size.
void bind::check_pool_window(const char* op, int64_t C, int64_t H, int64_t W, Pair kernel,
                             Pair stride, Pair padding, Pair dilation, bool ceil_mode,
                             Pool2dParams* p) {
    bind::require_positive(op, "kernel_size", kernel);
    bind::require_positive(op, "stride", stride);
    bind::require_non_negative(op, "padding", padding);
    bind::require_positive(op, "dilation", dilation);
    if (padding.first > kernel.first / 2 || padding.second > kernel.second / 2)
        bind::value_error(op, ": padding should be at most half of kernel_size, but got padding=",
                          pair_str(padding), " and kernel_size=", pair_str(kernel));
    if (!window_axis_fits(H, kernel.first, stride.first, padding.first, dilation.first) ||
        !window_axis_fits(W, kernel.second, stride.second, padding.second, dilation.second))
        bind::value_error(op, ": kernel_size=", pair_str(kernel), ", stride=", pair_str(stride),
                          ", padding=", pair_str(padding), " and dilation=", pair_str(dilation),
                          " are too large for 64-bit index arithmetic");
    p->H = H, p->W = W;
    p->KH = kernel.first, p->KW = kernel.second;
    p->stride_h = stride.first, p->stride_w = stride.second;
    p->pad_h = padding.first, p->pad_w = padding.second;
    p->dil_h = dilation.first, p->dil_w = dilation.second;
    p->OH = pool_output_size(H, p->KH, p->pad_h, p->stride_h, p->dil_h, ceil_mode);
    p->OW = pool_output_size(W, p->KW, p->pad_w, p->stride_w, p->dil_w, ceil_mode);
    if (p->OH < 1 || p->OW < 1)
        bind::value_error(
            op, ": Given input size: (", C, ", ", H, ", ", W, "). Calculated output size: (", C,
            ", ", p->OH, ", ", p->OW, "). Output size is too small (kernel_size=", pair_str(kernel),
            ", stride=", pair_str(stride), ", padding=", pair_str(padding),
            ", dilation=", pair_str(dilation), ", ceil_mode=", ceil_mode ? "True" : "False", ")");
}

namespace {

using bind::check_pool_window;

// Adaptive windows: output_size >= 1 (PyTorch allows it larger than the input) and
// (out + 1) * in fits int64 (adaptive_end computes (o + 1) * in + out - 1).
void check_adaptive(const char* op, const char* arg, Pair out, int64_t H, int64_t W) {
    bind::require_positive(op, arg, out);
    int64_t t;
    if (!mul_ok(out.first + 1, H, &t) || !add_ok(t, out.first, &t) ||
        !mul_ok(out.second + 1, W, &t) || !add_ok(t, out.second, &t))
        bind::value_error(op, ": ", arg, "=", pair_str(out), " with input size (", H, ", ", W,
                          ") is too large for 64-bit index arithmetic");
}

void check_divisor(const char* op, const std::optional<int64_t>& divisor_override) {
    if (divisor_override.has_value() && *divisor_override == 0)
        bind::value_error(op, ": divisor_override must be non-zero, got 0");
}

std::vector<int64_t> nchw(int64_t N, int64_t C, int64_t H, int64_t W) {
    return {N, C, H, W};
}

// ---- max_pool2d -----------------------------------------------------------------------

template <typename T>
py::tuple max_forward_run(const py::array& xa, const Pool2dParams& p, bool with_indices) {
    auto x = bind::contiguous<T>(xa);
    auto y = bind::new_array<T>(nchw(p.N, p.C, p.OH, p.OW));
    py::object indices = py::none();
    int64_t* ip = nullptr;
    if (with_indices) {
        auto idx = bind::new_array<int64_t>(nchw(p.N, p.C, p.OH, p.OW));
        ip = idx.mutable_data();
        indices = idx;
    }
    const T* xp = x.data();
    T* yp = y.mutable_data();
    {
        py::gil_scoped_release release;
        max_pool2d_forward<T>(p, xp, yp, ip);
    }
    return py::make_tuple(y, indices);
}

py::tuple max_pool2d_forward_py(const py::object& x_obj, Pair kernel_size, Pair stride,
                                Pair padding, Pair dilation, bool ceil_mode, bool with_indices) {
    const char* op = "max_pool2d_forward";
    const Input4d in = require_input(op, "x", x_obj);
    Pool2dParams p;
    p.N = in.N, p.C = in.C;
    check_pool_window(op, in.C, in.H, in.W, kernel_size, stride, padding, dilation, ceil_mode, &p);
    bind::checked_numel(op, "output", {p.N, p.C, p.OH, p.OW});
    return in.dtype == DType::f32 ? max_forward_run<float>(in.a, p, with_indices)
                                  : max_forward_run<double>(in.a, p, with_indices);
}

template <typename T>
py::array max_backward_run(const char* op, const py::array& ga, const py::array& ia,
                           const Pool2dParams& p) {
    auto dy = bind::contiguous<T>(ga);
    auto indices = bind::contiguous<int64_t>(ia);
    auto dx = bind::new_array<T>(nchw(p.N, p.C, p.H, p.W));
    const T* dyp = dy.data();
    const int64_t* ip = indices.data();
    T* dxp = dx.mutable_data();
    int64_t bad;
    {
        py::gil_scoped_release release;
        // The kernel checks each index before writing through it (an index outside the
        // plane would be an out-of-bounds write) and reports the first bad one; the
        // partly written dx is then dropped with the error.
        bad = max_pool2d_backward<T>(p, dxp, dyp, ip);
    }
    if (bad >= 0) {
        const int64_t ow = bad % p.OW, oh = bad / p.OW % p.OH, c = bad / (p.OW * p.OH) % p.C,
                      nn = bad / (p.OW * p.OH * p.C);
        bind::value_error(op, ": indices[", nn, ", ", c, ", ", oh, ", ", ow, "] = ", ip[bad],
                          " is out of range for input_size (", p.H, ", ", p.W,
                          "): expected 0 <= index < ", p.H * p.W);
    }
    return std::move(dx);
}

py::array max_pool2d_backward_py(const py::object& grad_output_obj, const py::object& indices_obj,
                                 Pair input_size) {
    const char* op = "max_pool2d_backward";
    const Input4d g = require_input(op, "grad_output", grad_output_obj);
    const py::array ia = bind::require_array(op, "indices", indices_obj);
    if (!ia.dtype().equal(py::dtype::of<int64_t>()))
        bind::type_error(op, ": expected indices to have dtype int64, got ",
                         std::string(py::str(ia.dtype())));
    if (ia.ndim() != 4 || ia.shape(0) != g.N || ia.shape(1) != g.C || ia.shape(2) != g.H ||
        ia.shape(3) != g.W)
        bind::value_error(op, ": expected indices to have the same shape as grad_output ",
                          bind::shape_str(g.a), ", got ", bind::shape_str(ia));
    bind::require_positive(op, "input_size", input_size);
    Pool2dParams p;
    p.N = g.N, p.C = g.C, p.OH = g.H, p.OW = g.W;
    p.H = input_size.first, p.W = input_size.second;
    bind::checked_numel(op, "grad_input", {p.N, p.C, p.H, p.W});
    return g.dtype == DType::f32 ? max_backward_run<float>(op, g.a, ia, p)
                                 : max_backward_run<double>(op, g.a, ia, p);
}

// ---- avg_pool2d -----------------------------------------------------------------------

template <typename T>
py::array avg_forward_run(const py::array& xa, const Pool2dParams& p) {
    return bind::call_released<T>(
        nchw(p.N, p.C, p.OH, p.OW), [&](T* out, const T* in) { avg_pool2d_forward<T>(p, in, out); },
        xa);
}

py::array avg_pool2d_forward_py(const py::object& x_obj, Pair kernel_size, Pair stride,
                                Pair padding, bool ceil_mode, bool count_include_pad,
                                std::optional<int64_t> divisor_override) {
    const char* op = "avg_pool2d_forward";
    const Input4d in = require_input(op, "x", x_obj);
    Pool2dParams p;
    p.N = in.N, p.C = in.C;
    check_pool_window(op, in.C, in.H, in.W, kernel_size, stride, padding, Pair{1, 1}, ceil_mode,
                      &p);
    check_divisor(op, divisor_override);
    p.count_include_pad = count_include_pad;
    p.divisor_override = divisor_override.value_or(0);
    bind::checked_numel(op, "output", {p.N, p.C, p.OH, p.OW});
    return in.dtype == DType::f32 ? avg_forward_run<float>(in.a, p)
                                  : avg_forward_run<double>(in.a, p);
}

template <typename T>
py::array avg_backward_run(const py::array& ga, const Pool2dParams& p) {
    return bind::call_released<T>(
        nchw(p.N, p.C, p.H, p.W), [&](T* out, const T* in) { avg_pool2d_backward<T>(p, out, in); },
        ga);
}

py::array avg_pool2d_backward_py(const py::object& grad_output_obj, Pair input_size,
                                 Pair kernel_size, Pair stride, Pair padding, bool ceil_mode,
                                 bool count_include_pad, std::optional<int64_t> divisor_override) {
    const char* op = "avg_pool2d_backward";
    const Input4d g = require_input(op, "grad_output", grad_output_obj);
    bind::require_positive(op, "input_size", input_size);
    Pool2dParams p;
    p.N = g.N, p.C = g.C;
    check_pool_window(op, g.C, input_size.first, input_size.second, kernel_size, stride, padding,
                      Pair{1, 1}, ceil_mode, &p);
    check_divisor(op, divisor_override);
    p.count_include_pad = count_include_pad;
    p.divisor_override = divisor_override.value_or(0);
    if (g.H != p.OH || g.W != p.OW)
        bind::value_error(op, ": expected grad_output of shape ",
                          bind::shape_str(nchw(p.N, p.C, p.OH, p.OW)),
                          " (the forward output for input_size ", pair_str(input_size), "), got ",
                          bind::shape_str(g.a));
    bind::checked_numel(op, "grad_input", {p.N, p.C, p.H, p.W});
    return g.dtype == DType::f32 ? avg_backward_run<float>(g.a, p)
                                 : avg_backward_run<double>(g.a, p);
}

// ---- adaptive pooling -----------------------------------------------------------------

template <typename T>
py::array adaptive_avg_forward_run(const py::array& xa, const Pool2dParams& p) {
    return bind::call_released<T>(
        nchw(p.N, p.C, p.OH, p.OW),
        [&](T* out, const T* in) { adaptive_avg_pool2d_forward<T>(p, in, out); }, xa);
}

Pool2dParams adaptive_params(int64_t N, int64_t C, int64_t H, int64_t W, Pair out) {
    Pool2dParams p;
    p.N = N, p.C = C, p.H = H, p.W = W, p.OH = out.first, p.OW = out.second;
    return p;
}

py::array adaptive_avg_pool2d_forward_py(const py::object& x_obj, Pair output_size) {
    const char* op = "adaptive_avg_pool2d_forward";
    const Input4d in = require_input(op, "x", x_obj);
    check_adaptive(op, "output_size", output_size, in.H, in.W);
    const Pool2dParams p = adaptive_params(in.N, in.C, in.H, in.W, output_size);
    bind::checked_numel(op, "output", {p.N, p.C, p.OH, p.OW});
    return in.dtype == DType::f32 ? adaptive_avg_forward_run<float>(in.a, p)
                                  : adaptive_avg_forward_run<double>(in.a, p);
}

template <typename T>
py::array adaptive_avg_backward_run(const py::array& ga, const Pool2dParams& p) {
    return bind::call_released<T>(
        nchw(p.N, p.C, p.H, p.W),
        [&](T* out, const T* in) { adaptive_avg_pool2d_backward<T>(p, out, in); }, ga);
}

py::array adaptive_avg_pool2d_backward_py(const py::object& grad_output_obj, Pair input_size) {
    const char* op = "adaptive_avg_pool2d_backward";
    const Input4d g = require_input(op, "grad_output", grad_output_obj);
    bind::require_positive(op, "input_size", input_size);
    check_adaptive(op, "grad_output spatial size", Pair{g.H, g.W}, input_size.first,
                   input_size.second);
    const Pool2dParams p =
        adaptive_params(g.N, g.C, input_size.first, input_size.second, Pair{g.H, g.W});
    bind::checked_numel(op, "grad_input", {p.N, p.C, p.H, p.W});
    return g.dtype == DType::f32 ? adaptive_avg_backward_run<float>(g.a, p)
                                 : adaptive_avg_backward_run<double>(g.a, p);
}

template <typename T>
py::tuple adaptive_max_forward_run(const py::array& xa, const Pool2dParams& p) {
    auto x = bind::contiguous<T>(xa);
    auto y = bind::new_array<T>(nchw(p.N, p.C, p.OH, p.OW));
    auto indices = bind::new_array<int64_t>(nchw(p.N, p.C, p.OH, p.OW));
    const T* xp = x.data();
    T* yp = y.mutable_data();
    int64_t* ip = indices.mutable_data();
    {
        py::gil_scoped_release release;
        adaptive_max_pool2d_forward<T>(p, xp, yp, ip);
    }
    return py::make_tuple(y, indices);
}

py::tuple adaptive_max_pool2d_forward_py(const py::object& x_obj, Pair output_size) {
    const char* op = "adaptive_max_pool2d_forward";
    const Input4d in = require_input(op, "x", x_obj);
    check_adaptive(op, "output_size", output_size, in.H, in.W);
    const Pool2dParams p = adaptive_params(in.N, in.C, in.H, in.W, output_size);
    bind::checked_numel(op, "output", {p.N, p.C, p.OH, p.OW});
    return in.dtype == DType::f32 ? adaptive_max_forward_run<float>(in.a, p)
                                  : adaptive_max_forward_run<double>(in.a, p);
}

}  // namespace

void register_pool2d(py::module_& m) {
    using py::arg;
    m.def("max_pool2d_forward", &max_pool2d_forward_py, arg("x"), arg("kernel_size"), arg("stride"),
          arg("padding"), arg("dilation"), arg("ceil_mode"), arg("with_indices") = true,
          "Max pooling of x (N, C, H, W) float32/float64 (PyTorch semantics).\n\n"
          "kernel_size, stride, dilation: (h, w) >= 1; padding: (h, w), 0 <= pad <= k // 2.\n"
          "Returns (y, indices), both (N, C, OH, OW): y of x's dtype, indices int64 flat\n"
          "positions h * W + w within each plane. OH = floor or, with ceil_mode, ceil of\n"
          "(H + 2*ph - dh*(kh-1) - 1) / sh, plus 1; a last window must start inside the\n"
          "input or left padding. NaN propagates (its index is returned).\n"
          "with_indices=False returns (y, None) and skips the argmax (inference: the int64\n"
          "indices are twice y's bytes).");
    m.def("max_pool2d_backward", &max_pool2d_backward_py, arg("grad_output"), arg("indices"),
          arg("input_size"),
          "Gradient of max pooling (also adaptive max pooling) w.r.t. its input.\n\n"
          "grad_output (N, C, OH, OW) float32/float64, indices int64 of the same shape from\n"
          "the forward, input_size (H, W). Returns grad_input (N, C, H, W): zero, then\n"
          "grad_input[n, c].flat[indices[n, c, i, j]] += grad_output[n, c, i, j].\n"
          "Raises ValueError if any index is outside [0, H*W).");
    m.def("avg_pool2d_forward", &avg_pool2d_forward_py, arg("x"), arg("kernel_size"), arg("stride"),
          arg("padding"), arg("ceil_mode"), arg("count_include_pad"), arg("divisor_override"),
          "Average pooling of x (N, C, H, W) float32/float64 (PyTorch semantics).\n\n"
          "kernel_size, stride: (h, w) >= 1; padding: (h, w), 0 <= pad <= k // 2.\n"
          "Each output is the window sum divided by divisor_override if given (non-zero),\n"
          "else by the window area including padding (count_include_pad) or only the\n"
          "in-bounds taps. Returns y (N, C, OH, OW), OH as max_pool2d_forward with dilation 1.");
    m.def("avg_pool2d_backward", &avg_pool2d_backward_py, arg("grad_output"), arg("input_size"),
          arg("kernel_size"), arg("stride"), arg("padding"), arg("ceil_mode"),
          arg("count_include_pad"), arg("divisor_override"),
          "Gradient of average pooling w.r.t. its input.\n\n"
          "grad_output must have the forward output shape (N, C, OH, OW) for input_size\n"
          "(H, W) and the same window arguments as avg_pool2d_forward. Returns grad_input\n"
          "(N, C, H, W): each output's gradient divided by its divisor, spread over its window.");
    m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_py, arg("x"),
          arg("output_size"),
          "Adaptive average pooling of x (N, C, H, W) to output_size (OH, OW) >= 1.\n\n"
          "Output (i, j) averages rows [floor(i*H/OH), ceil((i+1)*H/OH)) and the columns\n"
          "likewise (PyTorch's start_index/end_index); OH may exceed H. Returns (N, C, OH, OW).");
    m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_py, arg("grad_output"),
          arg("input_size"),
          "Gradient of adaptive average pooling: grad_output (N, C, OH, OW), input_size\n"
          "(H, W). Returns grad_input (N, C, H, W).");
    m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward_py, arg("x"),
          arg("output_size"),
          "Adaptive max pooling of x (N, C, H, W) to output_size (OH, OW) >= 1, windows as\n"
          "adaptive_avg_pool2d_forward. Returns (y, indices), both (N, C, OH, OW), indices\n"
          "int64 flat positions within each plane; backward is max_pool2d_backward.");
}

}  // namespace fastconv
