// _core elementwise functions: validate + release the GIL + call the eltwise drivers.
// Any shape; float32/float64; non-contiguous inputs are read through a contiguous copy
// (sgd_step's param and buffer, written in place, must be contiguous already).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/validate.h"
#include "fastconv/ops.h"

namespace fastconv {

namespace {

namespace py = pybind11;
using bind::dispatch;
using bind::DType;

std::vector<int64_t> shape_of(const py::array& a) {
    return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

py::object relu_forward_py(const py::object& x_obj) {
    const char* op = "relu_forward";
    py::array x = bind::require_array(op, "input", x_obj);
    const DType dt = bind::float_dtype(op, "input", x);
    const int64_t n = x.size();
    return dispatch(dt, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return bind::call_released<T>(
            shape_of(x), [&](T* y, const T* xd) { relu_forward<T>(n, xd, y); }, x);
    });
}

py::object relu_backward_py(const py::object& dy_obj, const py::object& y_obj) {
    const char* op = "relu_backward";
    py::array dy = bind::require_array(op, "grad_output", dy_obj);
    py::array y = bind::require_array(op, "output", y_obj);
    const DType dt = bind::float_dtype(op, "grad_output", dy);
    bind::require_same_dtype(op, "grad_output", dy, "output", y);
    if (shape_of(dy) != shape_of(y))
        bind::value_error(op, ": expected grad_output and output to have the same shape, got ",
                          bind::shape_str(dy), " and ", bind::shape_str(y));
    const int64_t n = dy.size();
    return dispatch(dt, [&](auto tag) -> py::object {
        using T = decltype(tag);
        return bind::call_released<T>(
            shape_of(dy),
            [&](T* dx, const T* dyd, const T* yd) { relu_backward<T>(n, dyd, yd, dx); }, dy,
            y);
    });
}

// An array the kernel writes in place: C-contiguous, aligned, native-order and writeable
// (a copy would drop the update), with dtype T.
template <typename T>
T* inplace_data(const char* op, const char* arg, py::array& a) {
    constexpr int kReady = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                           py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                           py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    if ((a.flags() & kReady) != kReady || !bind::is_native<T>(a))
        bind::value_error(op, ": expected ", arg,
                          " to be a writeable, C-contiguous, aligned array (it is updated in "
                          "place)");
    return static_cast<T*>(a.mutable_data());
}

void sgd_step_py(const py::object& p_obj, const py::object& g_obj, const py::object& buf_obj,
                 double lr, double momentum, double dampening, double weight_decay, bool nesterov,
                 bool maximize, bool first) {
    const char* op = "sgd_step";
    py::array p = bind::require_array(op, "param", p_obj);
    py::array g = bind::require_array(op, "grad", g_obj);
    const DType dt = bind::float_dtype(op, "param", p);
    bind::require_same_dtype(op, "param", p, "grad", g);
    const std::vector<int64_t> shape = shape_of(p);
    if (shape_of(g) != shape)
        bind::value_error(op, ": expected param and grad to have the same shape, got ",
                          bind::shape_str(p), " and ", bind::shape_str(g));
    py::array buf;
    if (!buf_obj.is_none()) {
        buf = bind::require_array(op, "momentum_buffer", buf_obj);
        bind::require_same_dtype(op, "param", p, "momentum_buffer", buf);
        if (shape_of(buf) != shape)
            bind::value_error(op, ": expected momentum_buffer to have shape ",
                              bind::shape_str(shape), ", got ", bind::shape_str(buf));
    } else if (momentum != 0.0) {
        bind::value_error(op, ": momentum ", momentum, " needs a momentum_buffer");
    }
    const int64_t n = p.size();
    dispatch(dt, [&](auto tag) -> py::object {
        using T = decltype(tag);
        T* pd = inplace_data<T>(op, "param", p);
        T* bd = buf_obj.is_none() ? nullptr : inplace_data<T>(op, "momentum_buffer", buf);
        if (bd && (bd == pd || (n > 0 && bd < pd + n && pd < bd + n)))
            bind::value_error(op, ": param and momentum_buffer overlap");
        const auto gc = bind::contiguous<T>(g);
        const T* gd = gc.data();
        // A grad sharing memory with what the step writes is read from a copy: the kernel's
        // loads and stores assume distinct arrays (__restrict).
        auto overlaps = [&](const T* a) { return a && n > 0 && gd < a + n && a < gd + n; };
        std::vector<T> gcopy;
        if (overlaps(pd) || overlaps(bd)) {
            gcopy.assign(gd, gd + n);
            gd = gcopy.data();
        }
        SgdStep<T> s;
        s.lr = static_cast<T>(lr), s.momentum = static_cast<T>(momentum);
        s.dampening = static_cast<T>(dampening), s.weight_decay = static_cast<T>(weight_decay);
        s.nesterov = nesterov, s.maximize = maximize, s.first = first;
        if (!bd) s.momentum = T(0);
        {
            py::gil_scoped_release release;
            sgd_step<T>(n, pd, gd, bd, s);
        }
        return py::none();
    });
}

}  // namespace

void register_eltwise(py::module_& m) {
    using py::arg;
    m.def("relu_forward", &relu_forward_py, arg("input"),
          "ReLU of input (any shape, float32/float64): a new array, input < 0 ? 0 : input.\n\n"
          "NaN passes through (torch.relu). TypeError for a non-ndarray or another dtype.");
    m.def("relu_backward", &relu_backward_py, arg("grad_output"), arg("output"),
          "Gradient of ReLU w.r.t. its input from its output (PyTorch's threshold_backward):\n"
          "a new array, output <= 0 ? 0 : grad_output (NaN outputs pass it). Both arrays\n"
          "of one shape and dtype (float32/float64); ValueError for different shapes,\n"
          "TypeError for dtypes.");
    m.def("sgd_step", &sgd_step_py, arg("param"), arg("grad"), arg("momentum_buffer"), arg("lr"),
          arg("momentum"), arg("dampening"), arg("weight_decay"), arg("nesterov"), arg("maximize"),
          arg("first"),
          "One SGD step in place (torch.optim.SGD's single-tensor rule, as\n"
          "fastconv.optim.SGD documents): param, and momentum_buffer unless it is None, are\n"
          "updated from grad. first: set the buffer to this step's direction. All of one\n"
          "shape and dtype (float32/float64); param and momentum_buffer writeable,\n"
          "C-contiguous and disjoint (grad may be any layout). ValueError for shapes, layouts\n"
          "or a missing buffer with momentum != 0; TypeError for dtypes.");
}

}  // namespace fastconv
