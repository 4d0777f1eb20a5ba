// Conv2d and ConvTranspose2d bindings: validate shapes and arguments (PyTorch-style
// messages), build Conv2dParams, allocate outputs, release the GIL, call the driver.
// Transposed convolution runs on the conv drivers: its forward is conv's backward_data, its
// backward_data is conv's forward and its weight gradient is conv's backward_weight with
// the roles of input and output gradient exchanged.
#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/validate.h"
#include "fastconv/ops.h"

namespace fastconv {

namespace py = pybind11;
using namespace bind;

namespace {

using Pair = std::pair<int64_t, int64_t>;

struct Padding4 {
    int64_t top, bottom, left, right;
};

// Arrays of one conv call, checked for type, dtype agreement and rank.
struct ConvArrays {
    py::array a, b;  // the two 4-D operands (meaning depends on the op)
    std::optional<py::array> bias;
    DType dtype;
};

ConvArrays check_arrays(const char* op, const char* name_a, const py::object& a_obj,
                        const char* name_b, const py::object& b_obj, const py::object& bias_obj) {
    ConvArrays r;
    r.a = require_array(op, name_a, a_obj);
    r.b = require_array(op, name_b, b_obj);
    r.dtype = float_dtype(op, name_a, r.a);
    float_dtype(op, name_b, r.b);
    require_same_dtype(op, name_a, r.a, name_b, r.b);
    require_ndim(op, name_a, r.a, 4, "(N, C, H, W)");
    require_ndim(op, name_b, r.b, 4, "(N, C, H, W)");
    if (!bias_obj.is_none()) {
        r.bias = require_array(op, "bias", bias_obj);
        float_dtype(op, "bias", *r.bias);
        require_same_dtype(op, name_a, r.a, "bias", *r.bias);
    }
    return r;
}

void check_groups(const char* op, int64_t groups) {
    if (groups < 1) value_error(op, ": groups must be positive, got ", groups);
    if (groups > kMaxHyperparameter)
        value_error(op, ": groups must be at most ", kMaxHyperparameter, ", got ", groups);
}

void check_hyper(const char* op, Pair stride, Pair dilation, int64_t groups) {
    require_positive(op, "stride", stride);
    require_positive(op, "dilation", dilation);
    check_groups(op, groups);
}

// Array dimensions can be huge (broadcast views); sizes computed from them and the
// hyperparameters are formed in 128 bits and must come back inside [lo, 2^62].
int64_t checked_size(const char* op, const char* what, __int128 v, int64_t lo = 0) {
    if (v < lo || v > (static_cast<__int128>(1) << 62))
        value_error(op, ": ", what, " is out of range for 64-bit index arithmetic");
    return static_cast<int64_t>(v);
}

void check_padding(const char* op, const Padding4& pad) {
    if (pad.top < 0 || pad.bottom < 0 || pad.left < 0 || pad.right < 0)
        value_error(op, ": padding must be non-negative, got (top=", pad.top,
                    ", bottom=", pad.bottom, ", left=", pad.left, ", right=", pad.right, ")");
    require_at_most(op, "padding", {pad.top, pad.bottom});
    require_at_most(op, "padding", {pad.left, pad.right});
}

// A weight's 4-D shape; the backward_weight bindings know it without having the array.
struct WShape {
    std::array<int64_t, 4> d;
    explicit WShape(const py::array& w) : d{w.shape(0), w.shape(1), w.shape(2), w.shape(3)} {}
    WShape(int64_t a, int64_t b, int64_t c, int64_t e) : d{a, b, c, e} {}
    int64_t shape(int i) const { return d[i]; }
};
using bind::shape_str;
// Shapes in messages are formatted only on the error path (an ostringstream costs more
// than the rest of a small layer's validation).
std::string shape_str(int64_t a, int64_t b, int64_t c, int64_t d) {
    return bind::shape_str(std::vector<int64_t>{a, b, c, d});
}
std::string shape_str(const WShape& w) {
    return shape_str(w.d[0], w.d[1], w.d[2], w.d[3]);
}

void check_weight_dims(const char* op, const WShape& w) {
    for (int i = 0; i < 4; ++i)
        if (w.shape(i) < 1)
            value_error(op, ": weight must have no zero-sized dimension, got shape ", shape_str(w));
    require_at_most(op, "kernel_size", {w.shape(2), w.shape(3)});
}

// Forward-convolution params from input shape (N, C, H, W), weight (K, C/g, KH, KW).
Conv2dParams conv_params(const char* op, int64_t N, int64_t C, int64_t H, int64_t W,
                         const WShape& w, Pair stride, const Padding4& pad, Pair dilation,
                         int64_t groups) {
    check_hyper(op, stride, dilation, groups);
    check_padding(op, pad);
    check_weight_dims(op, w);
    Conv2dParams p;
    p.N = N, p.C = C, p.H = H, p.W = W;
    p.K = w.shape(0), p.KH = w.shape(2), p.KW = w.shape(3);
    p.stride_h = stride.first, p.stride_w = stride.second;
    p.dil_h = dilation.first, p.dil_w = dilation.second;
    p.pad_top = pad.top, p.pad_left = pad.left;
    p.groups = groups;
    if (H < 1 || W < 1 || C < 1)
        value_error(op, ": expected input with non-zero C, H and W, got input of shape ",
                    shape_str(N, C, H, W));
    if (static_cast<__int128>(w.shape(1)) * groups != C)
        value_error(op, ": Given groups=", groups, ", weight of size ", shape_str(w),
                    ", expected input", shape_str(N, C, H, W), " to have ",
                    checked_size(op, "weight.shape[1] * groups",
                                 static_cast<__int128>(w.shape(1)) * groups),
                    " channels, but got ", C, " channels instead");
    if (p.K % groups != 0)
        value_error(op, ": Given groups=", groups, ", expected weight to be divisible by ", groups,
                    " at dimension 0, but got weight of size ", shape_str(w));
    // Padded extents and the kernel span in 128 bits: array dims may be near 2^63.
    checked_size(op, "the padded input height", static_cast<__int128>(H) + pad.top + pad.bottom);
    checked_size(op, "the padded input width", static_cast<__int128>(W) + pad.left + pad.right);
    checked_size(op, "the dilated kernel height", static_cast<__int128>(p.dil_h) * (p.KH - 1) + 1);
    checked_size(op, "the dilated kernel width", static_cast<__int128>(p.dil_w) * (p.KW - 1) + 1);
    p.OH = conv_output_size(H, p.KH, p.stride_h, pad.top, pad.bottom, p.dil_h);
    p.OW = conv_output_size(W, p.KW, p.stride_w, pad.left, pad.right, p.dil_w);
    if (p.OH < 1 || p.OW < 1)
        value_error(op, ": Calculated padded input size per channel: (", H + pad.top + pad.bottom,
                    " x ", W + pad.left + pad.right, "). Kernel size: (", p.dil_h * (p.KH - 1) + 1,
                    " x ", p.dil_w * (p.KW - 1) + 1,
                    "). Kernel size can't be greater than actual input size");
    checked_numel(op, "the input", {N, C, H, W});
    checked_numel(op, "the output", {N, p.K, p.OH, p.OW});
    checked_numel(op, "the im2col workspace", {p.col_rows(), p.OH, p.OW});
    return p;
}

void check_bias(const char* op, const std::optional<py::array>& bias, int64_t channels) {
    if (!bias) return;
    if (bias->ndim() != 1 || bias->shape(0) != channels)
        value_error(op, ": expected bias of shape (", channels, ",), got ", shape_str(*bias));
}

void check_output_grad(const char* op, const py::array& dy, int64_t N, int64_t K, int64_t OH,
                       int64_t OW) {
    if (dy.shape(0) != N || dy.shape(1) != K || dy.shape(2) != OH || dy.shape(3) != OW)
        value_error(op, ": expected grad_output of shape ",
                    shape_str(N, K, OH, OW), ", got ", shape_str(dy));
}

ConvAlgo algo_arg(const char* op, const std::string& name) {
    try {
        return parse_conv_algo(name);
    } catch (const std::invalid_argument& e) {
        value_error(op, ": ", e.what());
    }
}

// input_shape argument of the backward_data bindings: (N, C, H, W) agreeing with the
// batch of grad_output and the channels implied by the weight.
Pair check_input_shape(const char* op, const std::vector<int64_t>& shape, int64_t N, int64_t C) {
    if (shape.size() != 4)
        value_error(op, ": input_shape must be (N, C, H, W), got ", shape_str(shape));
    if (shape[0] != N || shape[1] != C)
        value_error(op, ": input_shape ", shape_str(shape),
                    " disagrees with grad_output and weight,"
                    " which imply N=",
                    N, " and C=", C);
    return {shape[2], shape[3]};
}

// The forced algorithm must fit the shapes: checked here, before the GIL is released.
ConvAlgo resolve_algo(const char* op, const Conv2dParams& p, ConvAlgo algo, ConvDirection dir) {
    try {
        return resolve_conv_algo(p, algo, dir);
    } catch (const std::invalid_argument& e) {
        value_error(op, ": ", e.what());
    }
}

Padding4 pad4(const std::tuple<int64_t, int64_t, int64_t, int64_t>& t) {
    return {std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t)};
}

// ---- Conv2d -----------------------------------------------------------------------------

// A forward convolution's operands and hyperparameters, validated.
struct ForwardCall {
    ConvArrays r;
    Conv2dParams p;
    ConvAlgo algo;
};

ForwardCall forward_call(const char* op, const py::object& x_obj, const py::object& w_obj,
                         const py::object& bias_obj, Pair stride,
                         std::tuple<int64_t, int64_t, int64_t, int64_t> padding, Pair dilation,
                         int64_t groups, const std::string& algorithm) {
    ForwardCall c{
        check_arrays(op, "input", x_obj, "weight", w_obj, bias_obj), {}, algo_arg(op, algorithm)};
    const py::array& x = c.r.a;
    c.p = conv_params(op, x.shape(0), x.shape(1), x.shape(2), x.shape(3), WShape(c.r.b), stride,
                      pad4(padding), dilation, groups);
    c.algo = resolve_algo(op, c.p, c.algo, ConvDirection::forward);
    check_bias(op, c.r.bias, c.p.K);
    return c;
}

py::object conv2d_forward_binding(const py::object& x_obj, const py::object& w_obj,
                                  const py::object& bias_obj, Pair stride,
                                  std::tuple<int64_t, int64_t, int64_t, int64_t> padding,
                                  Pair dilation, int64_t groups, const std::string& algorithm) {
    const ForwardCall c = forward_call("conv2d", x_obj, w_obj, bias_obj, stride, padding, dilation,
                                       groups, algorithm);
    const Conv2dParams& p = c.p;
    return dispatch(c.r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return call_released<T>(
            {p.N, p.K, p.OH, p.OW},
            [&](T* out, const T* xd, const T* wd, const T* bd) {
                conv2d_forward<T>(p, xd, wd, bd, out, c.algo);
            },
            c.r.a, c.r.b, c.r.bias);
    });
}

py::object conv2d_max_pool2d_forward_binding(const py::object& x_obj, const py::object& w_obj,
                                             const py::object& bias_obj, Pair stride,
                                             std::tuple<int64_t, int64_t, int64_t, int64_t> padding,
                                             Pair dilation, int64_t groups, Pair pool_kernel_size,
                                             Pair pool_stride, Pair pool_padding,
                                             Pair pool_dilation, bool ceil_mode, bool with_indices,
                                             bool relu, const std::string& algorithm) {
    const char* op = "conv2d_max_pool2d";
    const ForwardCall c =
        forward_call(op, x_obj, w_obj, bias_obj, stride, padding, dilation, groups, algorithm);
    const Conv2dParams& p = c.p;
    const ConvArrays& r = c.r;
    Pool2dParams q;
    q.N = p.N, q.C = p.K;
    check_pool_window(op, p.K, p.OH, p.OW, pool_kernel_size, pool_stride, pool_padding,
                      pool_dilation, ceil_mode, &q);
    checked_numel(op, "the output", {q.N, q.C, q.OH, q.OW});
    return dispatch(r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        auto xc = contiguous<T>(r.a);
        auto wc = contiguous<T>(r.b);
        auto bc = contiguous_or_none<T>(r.bias);
        auto y = new_array<T>({q.N, q.C, q.OH, q.OW});
        py::object indices = py::none();
        int64_t* ip = nullptr;
        if (with_indices) {
            auto idx = new_array<int64_t>({q.N, q.C, q.OH, q.OW});
            ip = idx.mutable_data();
            indices = idx;
        }
        const T *xd = xc.data(), *wd = wc.data(), *bd = data_or_null(bc);
        T* yd = y.mutable_data();
        {
            py::gil_scoped_release release;
            conv2d_max_pool2d_forward<T>(p, q, xd, wd, bd, yd, ip, relu, c.algo);
        }
        return py::make_tuple(y, indices);
    });
}

py::object conv2d_backward_data_binding(const py::object& dy_obj, const py::object& w_obj,
                                        const std::vector<int64_t>& input_shape, Pair stride,
                                        std::tuple<int64_t, int64_t, int64_t, int64_t> padding,
                                        Pair dilation, int64_t groups,
                                        const std::string& algorithm) {
    const char* op = "conv2d_backward_data";
    ConvArrays r = check_arrays(op, "grad_output", dy_obj, "weight", w_obj, py::none());
    const ConvAlgo algo = algo_arg(op, algorithm);
    const py::array& dy = r.a;
    if (groups < 1) value_error(op, ": groups must be positive, got ", groups);
    const int64_t N = dy.shape(0), C = r.b.shape(1) * groups;
    const Pair input_size = check_input_shape(op, input_shape, N, C);
    Conv2dParams p = conv_params(op, N, C, input_size.first, input_size.second, WShape(r.b), stride,
                                 pad4(padding), dilation, groups);
    const ConvAlgo resolved = resolve_algo(op, p, algo, ConvDirection::backward_data);
    check_output_grad(op, dy, p.N, p.K, p.OH, p.OW);
    return dispatch(r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return call_released<T>(
            {p.N, p.C, p.H, p.W},
            [&](T* out, const T* dyd, const T* wd) {
                conv2d_backward_data<T>(p, out, dyd, wd, resolved);
            },
            dy, r.b);
    });
}

// Conv2dParams of a weight gradient with K output channels over input x (N, C, H, W).
Conv2dParams weight_grad_params(const char* op, int64_t K, const py::array& x, Pair kernel_size,
                                Pair stride, std::tuple<int64_t, int64_t, int64_t, int64_t> padding,
                                Pair dilation, int64_t groups) {
    require_positive(op, "kernel_size", kernel_size);
    check_groups(op, groups);
    const int64_t C = x.shape(1);
    if (C % groups != 0 || K % groups != 0)
        value_error(op, ": in_channels (", C, ") and out_channels (", K,
                    ") must both be divisible by groups (", groups, ")");
    const WShape w_shape(K, C / groups, kernel_size.first, kernel_size.second);
    return conv_params(op, x.shape(0), C, x.shape(2), x.shape(3), w_shape, stride, pad4(padding),
                       dilation, groups);
}

py::object conv2d_backward_weight_binding(const py::object& dy_obj, const py::object& x_obj,
                                          Pair kernel_size, Pair stride,
                                          std::tuple<int64_t, int64_t, int64_t, int64_t> padding,
                                          Pair dilation, int64_t groups,
                                          const std::string& algorithm, bool with_bias) {
    const char* op = "conv2d_backward_weight";
    ConvArrays r = check_arrays(op, "grad_output", dy_obj, "input", x_obj, py::none());
    const ConvAlgo algo = algo_arg(op, algorithm);
    const py::array &dy = r.a, &x = r.b;
    Conv2dParams p = weight_grad_params(op, dy.shape(1), x, kernel_size, stride, padding, dilation,
                                        groups);
    const ConvAlgo resolved = resolve_algo(op, p, algo, ConvDirection::backward_weight);
    check_output_grad(op, dy, p.N, p.K, p.OH, p.OW);
    return dispatch(r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        if (with_bias) {
            auto dyc = contiguous<T>(dy);
            auto xc = contiguous<T>(x);
            auto dw = new_array<T>({p.K, p.C / p.groups, p.KH, p.KW});
            auto db = new_array<T>({p.K});
            {
                py::gil_scoped_release release;
                conv2d_backward_weight<T>(p, dw.mutable_data(), dyc.data(), xc.data(), resolved,
                                          db.mutable_data());
            }
            return py::make_tuple(dw, db);
        }
        return call_released<T>(
            {p.K, p.C / p.groups, p.KH, p.KW},
            [&](T* out, const T* dyd, const T* xd) {
                conv2d_backward_weight<T>(p, out, dyd, xd, resolved);
            },
            dy, x);
    });
}

template <typename T>
py::tuple pooled_run(const char* op, const Conv2dParams& p, int64_t npooled, const py::array& ga,
                     const py::array& ia, const py::array& xa) {
    auto g = contiguous<T>(ga);
    auto idx = contiguous<int64_t>(ia);
    auto x = contiguous<T>(xa);
    auto dw = new_array<T>({p.K, p.C / p.groups, p.KH, p.KW});
    auto db = new_array<T>({p.K});
    int64_t bad;
    {
        py::gil_scoped_release release;
        // The driver checks each index before reading through it and reports the first bad one.
        bad = conv2d_backward_weight_pooled<T>(p, ga.shape(2), ga.shape(3), dw.mutable_data(),
                                               db.mutable_data(), g.data(), idx.data(), x.data());
    }
    if (bad >= 0) {
        const int64_t* ip = idx.data();
        const int64_t q = bad % npooled, k = bad / npooled % p.K, n = bad / npooled / p.K;
        value_error(op, ": indices[", n, ", ", k, ", ", q / ga.shape(3), ", ", q % ga.shape(3),
                    "] = ", ip[bad], " is out of range for the convolution's output (", p.OH, ", ",
                    p.OW, "): expected 0 <= index < ", p.OH * p.OW);
    }
    return py::make_tuple(std::move(dw), std::move(db));
}

py::tuple conv2d_backward_weight_pooled_binding(
    const py::object& g_obj, const py::object& indices_obj, const py::object& x_obj,
    Pair kernel_size, Pair stride, std::tuple<int64_t, int64_t, int64_t, int64_t> padding,
    Pair dilation, int64_t groups) {
    const char* op = "conv2d_backward_weight_pooled";
    ConvArrays r = check_arrays(op, "pooled_grad", g_obj, "input", x_obj, py::none());
    const py::array &g = r.a, &x = r.b;
    const py::array ia = require_array(op, "indices", indices_obj);
    if (!ia.dtype().equal(py::dtype::of<int64_t>()))
        type_error(op, ": expected indices to have dtype int64, got ",
                   std::string(py::str(ia.dtype())));
    if (ia.ndim() != 4 || ia.shape(0) != g.shape(0) || ia.shape(1) != g.shape(1) ||
        ia.shape(2) != g.shape(2) || ia.shape(3) != g.shape(3))
        value_error(op, ": expected indices to have the same shape as pooled_grad ", shape_str(g),
                    ", got ", shape_str(ia));
    if (g.shape(0) != x.shape(0))
        value_error(op, ": pooled_grad ", shape_str(g), " and input ", shape_str(x),
                    " must have the same batch size");
    Conv2dParams p = weight_grad_params(op, g.shape(1), x, kernel_size, stride, padding, dilation,
                                        groups);
    const int64_t npooled =
        checked_size(op, "pooled_grad's plane", __int128{g.shape(2)} * g.shape(3));
    return r.dtype == DType::f32 ? pooled_run<float>(op, p, npooled, g, ia, x)
                                 : pooled_run<double>(op, p, npooled, g, ia, x);
}

py::object conv2d_backward_bias_binding(const py::object& dy_obj) {
    const char* op = "conv2d_backward_bias";
    py::array dy = require_array(op, "grad_output", dy_obj);
    const DType dt = float_dtype(op, "grad_output", dy);
    require_ndim(op, "grad_output", dy, 4, "(N, C, H, W)");
    Conv2dParams p;
    p.N = dy.shape(0), p.K = dy.shape(1), p.OH = dy.shape(2), p.OW = dy.shape(3);
    return dispatch(dt, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return call_released<T>(
            {p.K}, [&](T* out, const T* dyd) { conv2d_backward_bias<T>(p, out, dyd); }, dy);
    });
}

// ---- ConvTranspose2d ----------------------------------------------------------------------
// Input (N, C_in, H, W), weight (C_in, C_out/g, KH, KW), output (N, C_out, H_out, W_out),
//   H_out = (H - 1)*stride - 2*padding + dilation*(KH - 1) + output_padding + 1.
// As a convolution: conv input = transposed output (C = C_out, H = H_out), conv output =
// transposed input (K = C_in, OH = H), conv weight = the same weight array.

Conv2dParams transpose_params(const char* op, int64_t N, int64_t C_in, int64_t H, int64_t W,
                              const WShape& w, Pair stride, Pair padding, Pair output_padding,
                              Pair dilation, int64_t groups) {
    check_hyper(op, stride, dilation, groups);
    require_non_negative(op, "padding", padding);
    require_non_negative(op, "output_padding", output_padding);
    check_weight_dims(op, w);
    if (output_padding.first >= std::max(stride.first, dilation.first) ||
        output_padding.second >= std::max(stride.second, dilation.second))
        value_error(op,
                    ": output padding must be smaller than either stride or dilation, got "
                    "output_padding=(",
                    output_padding.first, ", ", output_padding.second, "), stride=(", stride.first,
                    ", ", stride.second, "), dilation=(", dilation.first, ", ", dilation.second,
                    ")");
    if (H < 1 || W < 1 || C_in < 1)
        value_error(op, ": expected input with non-zero C, H and W, got input of shape ",
                    shape_str(N, C_in, H, W));
    if (w.shape(0) != C_in)
        value_error(op, ": Given transposed=1, weight of size ", shape_str(w), ", expected input",
                    shape_str(N, C_in, H, W), " to have ", w.shape(0), " channels, but got ", C_in,
                    " channels instead");
    if (C_in % groups != 0)
        value_error(op, ": Given groups=", groups, ", expected weight to be divisible by ", groups,
                    " at dimension 0, but got weight of size ", shape_str(w));
    Conv2dParams p;
    p.N = N, p.K = C_in, p.OH = H, p.OW = W;
    p.C = checked_size(op, "out_channels", static_cast<__int128>(w.shape(1)) * groups, 1);
    p.KH = w.shape(2), p.KW = w.shape(3);
    p.stride_h = stride.first, p.stride_w = stride.second;
    p.dil_h = dilation.first, p.dil_w = dilation.second;
    p.pad_top = padding.first, p.pad_left = padding.second;
    p.groups = groups;
    using i128 = __int128;
    const i128 out_h = (static_cast<i128>(H) - 1) * p.stride_h -
                       2 * static_cast<i128>(padding.first) +
                       static_cast<i128>(p.dil_h) * (p.KH - 1) + output_padding.first + 1;
    const i128 out_w = (static_cast<i128>(W) - 1) * p.stride_w -
                       2 * static_cast<i128>(padding.second) +
                       static_cast<i128>(p.dil_w) * (p.KW - 1) + output_padding.second + 1;
    if (out_h < 1 || out_w < 1)
        value_error(op, ": Given input size per channel: (", H, " x ", W,
                    "). Calculated output size per channel: (", static_cast<int64_t>(out_h), " x ",
                    static_cast<int64_t>(out_w), "). Output size is too small");
    p.H = checked_size(op, "the output height", out_h, 1);
    p.W = checked_size(op, "the output width", out_w, 1);
    // The equivalent convolution's padded extent must fit too.
    checked_size(op, "the padded output height", out_h + 2 * static_cast<i128>(padding.first));
    checked_size(op, "the padded output width", out_w + 2 * static_cast<i128>(padding.second));
    checked_numel(op, "the input", {N, C_in, H, W});
    checked_numel(op, "the output", {N, p.C, p.H, p.W});
    checked_numel(op, "the im2col workspace", {p.col_rows(), p.OH, p.OW});
    return p;
}

py::object conv_transpose2d_forward_binding(const py::object& x_obj, const py::object& w_obj,
                                            const py::object& bias_obj, Pair stride, Pair padding,
                                            Pair output_padding, Pair dilation, int64_t groups,
                                            const std::string& algorithm) {
    const char* op = "conv_transpose2d";
    ConvArrays r = check_arrays(op, "input", x_obj, "weight", w_obj, bias_obj);
    const ConvAlgo algo = algo_arg(op, algorithm);
    const py::array& x = r.a;
    Conv2dParams p =
        transpose_params(op, x.shape(0), x.shape(1), x.shape(2), x.shape(3), WShape(r.b), stride,
                         padding, output_padding, dilation, groups);
    const ConvAlgo resolved = resolve_algo(op, p, algo, ConvDirection::backward_data);
    check_bias(op, r.bias, p.C);
    return dispatch(r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return call_released<T>(
            {p.N, p.C, p.H, p.W},
            [&](T* out, const T* xd, const T* wd, const T* bd) {
                conv_transpose2d_forward<T>(p, xd, wd, bd, out, resolved);
            },
            x, r.b, r.bias);
    });
}

py::object conv_transpose2d_backward_data_binding(const py::object& dy_obj, const py::object& w_obj,
                                                  const std::vector<int64_t>& input_shape,
                                                  Pair stride, Pair padding, Pair output_padding,
                                                  Pair dilation, int64_t groups,
                                                  const std::string& algorithm) {
    const char* op = "conv_transpose2d_backward_data";
    ConvArrays r = check_arrays(op, "grad_output", dy_obj, "weight", w_obj, py::none());
    const ConvAlgo algo = algo_arg(op, algorithm);
    const py::array& dy = r.a;
    const int64_t N = dy.shape(0), C_in = r.b.shape(0);
    const Pair input_size = check_input_shape(op, input_shape, N, C_in);
    Conv2dParams p = transpose_params(op, N, C_in, input_size.first, input_size.second, WShape(r.b),
                                      stride, padding, output_padding, dilation, groups);
    const ConvAlgo resolved = resolve_algo(op, p, algo, ConvDirection::forward);
    check_output_grad(op, dy, p.N, p.C, p.H, p.W);
    return dispatch(r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return call_released<T>(
            {p.N, p.K, p.OH, p.OW},
            [&](T* out, const T* dyd, const T* wd) {
                conv2d_forward<T>(p, dyd, wd, nullptr, out, resolved);
            },
            dy, r.b);
    });
}

py::object conv_transpose2d_backward_weight_binding(const py::object& dy_obj,
                                                    const py::object& x_obj, Pair kernel_size,
                                                    Pair stride, Pair padding, Pair output_padding,
                                                    Pair dilation, int64_t groups,
                                                    const std::string& algorithm) {
    const char* op = "conv_transpose2d_backward_weight";
    ConvArrays r = check_arrays(op, "grad_output", dy_obj, "input", x_obj, py::none());
    const ConvAlgo algo = algo_arg(op, algorithm);
    const py::array &dy = r.a, &x = r.b;
    require_positive(op, "kernel_size", kernel_size);
    if (groups < 1) value_error(op, ": groups must be positive, got ", groups);
    const int64_t C_in = x.shape(1), C_out = dy.shape(1);
    if (C_in % groups != 0 || C_out % groups != 0)
        value_error(op, ": in_channels (", C_in, ") and out_channels (", C_out,
                    ") must both be divisible by groups (", groups, ")");
    const WShape w_shape(C_in, C_out / groups, kernel_size.first, kernel_size.second);
    Conv2dParams p = transpose_params(op, x.shape(0), C_in, x.shape(2), x.shape(3), w_shape, stride,
                                      padding, output_padding, dilation, groups);
    const ConvAlgo resolved = resolve_algo(op, p, algo, ConvDirection::backward_weight);
    check_output_grad(op, dy, p.N, p.C, p.H, p.W);
    return dispatch(r.dtype, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return call_released<T>(
            {p.K, p.C / p.groups, p.KH, p.KW},
            [&](T* out, const T* xd, const T* dyd) {
                conv2d_backward_weight<T>(p, out, xd, dyd, resolved);
            },
            x, dy);
    });
}

// A pure rule over a convolution's shapes, bound as
// name(input, weight, stride, padding, dilation, groups) -> bool.
void def_conv_rule(py::module_& m, const char* name, bool (*rule)(const Conv2dParams&),
                   const char* doc) {
    using namespace pybind11::literals;
    m.def(
        name,
        [rule](const py::object& x_obj, const py::object& w_obj, Pair stride,
               std::tuple<int64_t, int64_t, int64_t, int64_t> padding, Pair dilation,
               int64_t groups) {
            ConvArrays r = check_arrays("conv2d", "input", x_obj, "weight", w_obj, py::none());
            const py::array& x = r.a;
            return rule(conv_params("conv2d", x.shape(0), x.shape(1), x.shape(2), x.shape(3),
                                    WShape(r.b), stride, pad4(padding), dilation, groups));
        },
        "input"_a, "weight"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a, doc);
}

}  // namespace

void register_conv2d(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "conv2d_forward", &conv2d_forward_binding, "input"_a, "weight"_a, "bias"_a, "stride"_a,
        "padding"_a, "dilation"_a, "groups"_a, "algorithm"_a = "auto",
        R"doc(Conv2d forward, NCHW: input (N, C, H, W), weight (K, C/groups, KH, KW), bias (K,) or None.

padding is (top, bottom, left, right). Returns (N, K, OH, OW) with
OH = floor((H + top + bottom - dilation_h*(KH-1) - 1) / stride_h) + 1.)doc");
    m.def("conv2d_max_pool2d_forward", &conv2d_max_pool2d_forward_binding, "input"_a, "weight"_a,
          "bias"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a, "pool_kernel_size"_a,
          "pool_stride"_a, "pool_padding"_a, "pool_dilation"_a, "ceil_mode"_a,
          "with_indices"_a = true, "relu"_a = false, "algorithm"_a = "auto",
          R"doc(max_pool2d(conv2d_forward(input, weight, bias, ...), ...) in one call.

The conv arguments as conv2d_forward's, the pool's as max_pool2d_forward's (pool_*,
ceil_mode) over the conv output (N, K, OH, OW). Returns (y, indices), both (N, K, PH, PW):
bitwise max_pool2d_forward(conv2d_forward(...)), and with relu, relu_forward of that y
(which is max_pool2d of the ReLU: max and ReLU commute on undilated windows); indices
(int64, flat in the OH x OW plane, the argmax of the conv output) None unless
with_indices. Where the algorithm allows (Winograd with 2x2/stride-2 windows, the direct
forward by rows with any window), the conv output is pooled where it is computed and
never written to memory.)doc");
    m.def("conv2d_backward_data", &conv2d_backward_data_binding, "grad_output"_a, "weight"_a,
          "input_shape"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a,
          "algorithm"_a = "auto",
          "dL/dinput of shape input_shape (N, C, H, W) from grad_output (N, K, OH, OW).");
    m.def(
        "conv2d_backward_weight", &conv2d_backward_weight_binding, "grad_output"_a, "input"_a,
        "kernel_size"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a, "algorithm"_a = "auto",
        "with_bias"_a = false,
        R"doc(dL/dweight (K, C/groups, KH, KW) from grad_output (N, K, OH, OW) and input (N, C, H, W).

with_bias: return (dL/dweight, dL/dbias), dL/dbias (K,) bitwise conv2d_backward_bias's
(the depthwise kernels add each grad_output plane while it is in cache).)doc");
    m.def("conv2d_backward_bias", &conv2d_backward_bias_binding, "grad_output"_a,
          "dL/dbias (K,): grad_output (N, K, OH, OW) summed over N, OH, OW.");
    m.def(
        "conv2d_backward_weight_pooled", &conv2d_backward_weight_pooled_binding, "pooled_grad"_a,
        "indices"_a, "input"_a, "kernel_size"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a,
        R"doc((dL/dweight, dL/dbias) of a Conv2d whose output y reaches the loss only through a max pool.

pooled_grad and indices (int64) are (N, K, PH, PW): the pool's output gradient (already
masked by a ReLU between, if any) and its argmax, flat in y's (OH, OW) plane. Equal to
conv2d_backward_weight and conv2d_backward_bias of grad_output = max_pool2d_backward(
pooled_grad, indices, (OH, OW)), summed in another order, with a quarter of the work for
2x2 windows. Raises ValueError for an index outside [0, OH*OW).)doc");
    m.def("conv_transpose2d_forward", &conv_transpose2d_forward_binding, "input"_a, "weight"_a,
          "bias"_a, "stride"_a, "padding"_a, "output_padding"_a, "dilation"_a, "groups"_a,
          "algorithm"_a = "auto",
          R"doc(ConvTranspose2d forward: input (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW).

Returns (N, C_out, H_out, W_out), H_out = (H-1)*stride - 2*padding + dilation*(KH-1)
+ output_padding + 1. Computed as Conv2d backward_data.)doc");
    m.def("conv_transpose2d_backward_data", &conv_transpose2d_backward_data_binding,
          "grad_output"_a, "weight"_a, "input_shape"_a, "stride"_a, "padding"_a, "output_padding"_a,
          "dilation"_a, "groups"_a, "algorithm"_a = "auto",
          "dL/dinput (N, C_in, H, W) of conv_transpose2d; computed as Conv2d forward.");
    m.def("conv_transpose2d_backward_weight", &conv_transpose2d_backward_weight_binding,
          "grad_output"_a, "input"_a, "kernel_size"_a, "stride"_a, "padding"_a, "output_padding"_a,
          "dilation"_a, "groups"_a, "algorithm"_a = "auto",
          "dL/dweight (C_in, C_out/groups, KH, KW) of conv_transpose2d; Conv2d backward_weight.");
    m.def(
        "conv2d_choose_algorithm",
        [](const py::object& x_obj, const py::object& w_obj, Pair stride,
           std::tuple<int64_t, int64_t, int64_t, int64_t> padding, Pair dilation, int64_t groups,
           const std::string& direction) {
            ConvDirection dir = ConvDirection::forward;
            try {
                dir = parse_conv_direction(direction);
            } catch (const std::invalid_argument& e) {
                value_error("conv2d_choose_algorithm", ": ", e.what());
            }
            ConvArrays r = check_arrays("conv2d", "input", x_obj, "weight", w_obj, py::none());
            const py::array& x = r.a;
            Conv2dParams p =
                conv_params("conv2d", x.shape(0), x.shape(1), x.shape(2), x.shape(3), WShape(r.b),
                            stride, pad4(padding), dilation, groups);
            return std::string(conv_algo_name(choose_conv_algo(p, dir)));
        },
        "input"_a, "weight"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a,
        "direction"_a = "forward",
        "The algorithm 'auto' picks for these shapes and direction (forward, backward_data,\n"
        "backward_weight): im2col, direct_1x1, depthwise or direct.");
    def_conv_rule(
        m, "conv2d_backward_data_as_forward", conv2d_backward_data_as_forward,
        "Whether im2col's backward_data runs, for these shapes, as the forward convolution of\n"
        "grad_output with the flipped weights (stride-1 'same' layers with >= 32 channels per\n"
        "group and N > 1) instead of GEMM + col2im. For benchmark labels and tests.");
    def_conv_rule(
        m, "conv2d_backward_data_by_rows", conv2d_backward_data_by_rows,
        "Whether direct's backward_data runs, for these shapes, as the forward by output rows\n"
        "of grad_output with the flipped weights (stride 1, ungrouped, padding <= dilation *\n"
        "(kernel - 1)) instead of shifted streams. For benchmark labels and tests.");
}

}  // namespace fastconv
