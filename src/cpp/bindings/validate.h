// Validation and conversion helpers for the binding layer: one check per rule, each
// raising a Python ValueError/TypeError that names the op, the argument and the shapes,
// before any data pointer is touched (the role of NNPACK's include/nnpack/validation.h).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace fastconv {
struct Pool2dParams;
namespace bind {

namespace py = pybind11;

// A max/avg pool's window arguments over (C, H, W) planes checked as PyTorch's
// pool2d_shape_check (kernel_size, stride, dilation >= 1, 0 <= padding <= kernel_size / 2,
// index arithmetic in 64 bits, output size >= 1); fills p's window fields, H, W, OH and OW
// (pool2d_binding.cpp).
void check_pool_window(const char* op, int64_t C, int64_t H, int64_t W,
                       std::pair<int64_t, int64_t> kernel, std::pair<int64_t, int64_t> stride,
                       std::pair<int64_t, int64_t> padding, std::pair<int64_t, int64_t> dilation,
                       bool ceil_mode, Pool2dParams* p);

enum class DType { f32, f64 };

inline std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    if (a.ndim() == 1) s << ",";
    s << ")";
    return s.str();
}

inline std::string shape_str(const std::vector<int64_t>& v) {
    std::ostringstream s;
    s << "(";
    for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
    if (v.size() == 1) s << ",";
    s << ")";
    return s.str();
}

template <typename... Args>
[[noreturn]] inline void value_error(Args&&... args) {
    std::ostringstream s;
    (s << ... << args);
    throw py::value_error(s.str());
}

template <typename... Args>
[[noreturn]] inline void type_error(Args&&... args) {
    std::ostringstream s;
    (s << ... << args);
    throw py::type_error(s.str());
}

// Accepts only a NumPy ndarray (anything else: TypeError); no implicit conversion.
inline py::array require_array(const char* op, const char* arg, const py::handle& obj) {
    if (!py::isinstance<py::array>(obj))
        type_error(op, ": expected ", arg, " to be a numpy.ndarray, got ",
                   std::string(py::str(py::type::of(obj).attr("__name__"))));
    return py::reinterpret_borrow<py::array>(obj);
}

// Calls f(float{}) or f(double{}) for the dtype: the element type of a binding's body.
template <typename F>
py::object dispatch(DType dt, F&& f) {
    if (dt == DType::f32) return f(float{});
    return f(double{});
}

// The descriptor of a's dtype, read in place: a.dtype() and py::dtype::of<T>() each cost a
// reference and a NumPy call, ~0.1 us per array and check on every small-layer call.
inline const py::detail::PyArrayDescr_Proxy* descr_of(const py::array& a) {
    return py::detail::array_descriptor_proxy(py::detail::array_proxy(a.ptr())->descr);
}

// Whether a's dtype is T in native byte order ('>' is the only foreign order on the
// little-endian x86-64 hosts this extension builds for).
template <typename T>
bool is_native(const py::array& a) {
    const auto* d = descr_of(a);
    return d->type_num == py::detail::npy_format_descriptor<T>::value && d->byteorder != '>';
}

// float32 or float64 in native byte order; anything else is a TypeError.
inline DType float_dtype(const char* op, const char* arg, const py::array& a) {
    if (is_native<float>(a)) return DType::f32;
    if (is_native<double>(a)) return DType::f64;
    type_error(op, ": expected ", arg, " to have dtype float32 or float64, got ",
               std::string(py::str(a.dtype())));
}

inline void require_same_dtype(const char* op, const char* arg_a, const py::array& a,
                               const char* arg_b, const py::array& b) {
    const auto *da = descr_of(a), *db = descr_of(b);
    if (da->type_num == db->type_num && da->byteorder == db->byteorder) return;
    if (!a.dtype().equal(b.dtype()))
        type_error(op, ": expected ", arg_a, " and ", arg_b, " to have the same dtype, but got ",
                   arg_a, ".dtype=", std::string(py::str(a.dtype())), " and ", arg_b,
                   ".dtype=", std::string(py::str(b.dtype())));
}

inline void require_ndim(const char* op, const char* arg, const py::array& a, int ndim,
                         const char* layout) {
    if (a.ndim() != ndim)
        value_error(op, ": expected ", arg, " to be ", ndim, "-D ", layout, ", got ", a.ndim(),
                    "-D array of shape ", shape_str(a));
}

// Kernel sizes, strides, paddings, dilations and groups are at most 2^31 - 1 (as PyTorch's
// CPU kernels, which index them in int). Composite sizes built from them and from array
// dimensions then stay far inside int64 (checked separately where they meet).
constexpr int64_t kMaxHyperparameter = 2147483647;

inline void require_at_most(const char* op, const char* arg, std::pair<int64_t, int64_t> v) {
    if (v.first > kMaxHyperparameter || v.second > kMaxHyperparameter)
        value_error(op, ": ", arg, " must be at most ", kMaxHyperparameter, ", got (", v.first,
                    ", ", v.second, ")");
}

inline void require_positive(const char* op, const char* arg, std::pair<int64_t, int64_t> v) {
    if (v.first < 1 || v.second < 1)
        value_error(op, ": ", arg, " must be positive, got (", v.first, ", ", v.second, ")");
    require_at_most(op, arg, v);
}

inline void require_non_negative(const char* op, const char* arg, std::pair<int64_t, int64_t> v) {
    if (v.first < 0 || v.second < 0)
        value_error(op, ": ", arg, " must be non-negative, got (", v.first, ", ", v.second, ")");
    require_at_most(op, arg, v);
}

// Product of sizes with a check that it fits int64 (index arithmetic never overflows).
inline int64_t checked_numel(const char* op, const char* what,
                             std::initializer_list<int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0) value_error(op, ": negative size in ", what);
        if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
            value_error(op, ": ", what, " has more elements than fit in 64-bit index arithmetic");
        n *= d;
    }
    return n;
}

// A C-contiguous, aligned view of `a` with element type T, copying only when needed
// (non-contiguous, negative strides, or data not aligned to alignof(T), which numpy's
// C-contiguity flag alone does not rule out). dtype must already have been checked.
template <typename T>
py::array_t<T, py::array::c_style> contiguous(const py::array& a) {
    // Already a C-contiguous, aligned, native T array (the usual case): the array itself,
    // without ensure()'s PyArray_FromAny, which costs ~0.15 us per argument.
    constexpr int kReady = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                           py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    if ((a.flags() & kReady) == kReady && is_native<T>(a))
        return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(a);
    auto c = py::array_t<T, py::array::c_style>::ensure(a);
    if (reinterpret_cast<std::uintptr_t>(c.data()) % alignof(T) == 0) return c;
    py::array_t<T, py::array::c_style> copy(
        std::vector<py::ssize_t>(c.shape(), c.shape() + c.ndim()));
    std::memcpy(copy.mutable_data(), c.data(), sizeof(T) * static_cast<size_t>(c.size()));
    return copy;
}

template <typename T>
py::array_t<T, py::array::c_style> contiguous_or_none(const py::array& a) {
    return contiguous<T>(a);
}
template <typename T>
std::optional<py::array_t<T, py::array::c_style>> contiguous_or_none(
    const std::optional<py::array>& a) {
    if (!a) return std::nullopt;
    return contiguous<T>(*a);
}
template <typename T>
const T* data_or_null(const py::array_t<T, py::array::c_style>& a) {
    return a.data();
}
template <typename T>
const T* data_or_null(const std::optional<py::array_t<T, py::array::c_style>>& a) {
    return a ? a->data() : nullptr;
}

template <typename T>
py::array_t<T, py::array::c_style> new_array(std::vector<int64_t> shape) {
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    return py::array_t<T, py::array::c_style>(s);
}

// The tail of every binding: C-contiguous views of the inputs (a null optional stays a
// null pointer), a new output array of `out_shape`, then f(out, inputs...) with the GIL
// released. Returns the output.
template <typename T, typename F, typename... In>
py::array call_released(std::vector<int64_t> out_shape, F&& f, const In&... inputs) {
    auto views = std::make_tuple(contiguous_or_none<T>(inputs)...);
    auto out = new_array<T>(std::move(out_shape));
    T* o = out.mutable_data();
    std::apply(
        [&](const auto&... v) {
            py::gil_scoped_release release;
            f(o, data_or_null(v)...);
        },
        views);
    return std::move(out);
}

}  // namespace bind
}  // namespace fastconv
