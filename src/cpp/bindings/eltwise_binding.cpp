// _core elementwise functions: validate + release the GIL + call the eltwise drivers.
// Any shape; float32/float64; non-contiguous inputs are read through a contiguous copy.

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
}

}  // namespace fastconv
