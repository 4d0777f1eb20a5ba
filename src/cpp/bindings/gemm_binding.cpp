// fc.gemm: validate, describe each operand as (pointer, leading dimension, transposed) without
// copying where its strides allow (C- or F-ordered, or row slices), release the GIL, call.
#include <optional>

#include "bindings/validate.h"
#include "common/parallel.h"
#include "fastconv/ops.h"

namespace fastconv {

namespace py = pybind11;
using namespace bind;

namespace {

// A 2-D operand as BLAS sees it: data, leading dimension and whether it is stored
// transposed relative to the array's logical (rows, cols). `keep` owns any copy.
template <typename T>
struct Operand {
    const T* data;
    int64_t ld;
    bool transposed;
    py::array keep;
};

template <typename T>
Operand<T> as_operand(const py::array& a) {
    const int64_t rows = a.shape(0), cols = a.shape(1);
    const int64_t s0 = a.strides(0), s1 = a.strides(1), item = sizeof(T);
    const bool aligned = reinterpret_cast<uintptr_t>(a.data()) % alignof(T) == 0;
    // Row-major with unit column stride (also row slices): ld = row stride.
    if (aligned && (s1 == item || cols == 1) && s0 % item == 0 && s0 / item >= cols && s0 > 0)
        return {static_cast<const T*>(a.data()), s0 / item, false, a};
    // Column-major (e.g. a.T of a C-ordered array): the transposed matrix is row-major.
    if (aligned && (s0 == item || rows == 1) && s1 % item == 0 && s1 / item >= rows && s1 > 0)
        return {static_cast<const T*>(a.data()), s1 / item, true, a};
    auto c = contiguous<T>(a);
    return {c.data(), cols, false, c};
}

// With a bias, the output starts as beta * c + bias (each row) and the GEMM accumulates
// into it (beta 1): Linear's y = x W^T + b in one call, no second pass over y in NumPy.
// relu: max(0, .) over the result once it is complete (relu_forward in place, while C is
// in cache): a Linear followed by a ReLU in one call.
template <typename T>
py::array gemm_typed(const py::array& a, const py::array& b, const std::optional<py::array>& c,
                     const std::optional<py::array>& bias, double alpha, double beta, bool trans_a,
                     bool trans_b, bool relu) {
    const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t N = trans_b ? b.shape(0) : b.shape(1);
    auto out = new_array<T>({M, N});
    const bool use_c = c.has_value() && beta != 0.0;
    T* C = out.mutable_data();
    if (use_c) {
        auto cc = contiguous<T>(*c);
        std::memcpy(C, cc.data(), sizeof(T) * static_cast<size_t>(M * N));
    }
    py::array bias_c;
    if (bias) {
        bias_c = contiguous<T>(*bias);
        const T* bv = static_cast<const T*>(bias_c.data());
        const T bt = T(beta);
        for (int64_t i = 0; i < M; ++i) {
            T* row = C + i * N;
            if (use_c)
                for (int64_t j = 0; j < N; ++j) row[j] = bt * row[j] + bv[j];
            else
                std::memcpy(row, bv, sizeof(T) * static_cast<size_t>(N));
        }
    }
    Operand<T> A = as_operand<T>(a), B = as_operand<T>(b);
    const bool ta = trans_a != A.transposed, tb = trans_b != B.transposed;
    const T beta_gemm = bias ? T(1) : use_c ? T(beta) : T(0);
    {
        py::gil_scoped_release release;
        gemm<T>(ta, tb, M, N, K, T(alpha), A.data, A.ld, B.data, B.ld, beta_gemm, C, N,
                num_threads());
        if (relu) relu_forward<T>(M * N, C, C);
    }
    return out;
}

py::array gemm_binding(const py::object& a_obj, const py::object& b_obj, const py::object& c_obj,
                       double alpha, double beta, bool trans_a, bool trans_b,
                       const py::object& bias_obj, bool relu) {
    const char* op = "gemm";
    py::array a = require_array(op, "a", a_obj), b = require_array(op, "b", b_obj);
    const DType dt = float_dtype(op, "a", a);
    float_dtype(op, "b", b);
    require_same_dtype(op, "a", a, "b", b);
    require_ndim(op, "a", a, 2, "matrix");
    require_ndim(op, "b", b, 2, "matrix");
    const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t K2 = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
    if (K != K2)
        value_error(op, ": op(a) is ", M, "x", K, " and op(b) is ", K2, "x", N,
                    ": inner dimensions must agree (a.shape=", shape_str(a),
                    ", b.shape=", shape_str(b), ", trans_a=", trans_a, ", trans_b=", trans_b, ")");
    checked_numel(op, "the output", {M, N});
    std::optional<py::array> c;
    if (!c_obj.is_none()) {
        c = require_array(op, "c", c_obj);
        float_dtype(op, "c", *c);
        require_same_dtype(op, "a", a, "c", *c);
        require_ndim(op, "c", *c, 2, "matrix");
        if (c->shape(0) != M || c->shape(1) != N)
            value_error(op, ": expected c of shape (", M, ", ", N, ") = op(a) @ op(b), got ",
                        shape_str(*c));
    }
    std::optional<py::array> bias;
    if (!bias_obj.is_none()) {
        bias = require_array(op, "bias", bias_obj);
        float_dtype(op, "bias", *bias);
        require_same_dtype(op, "a", a, "bias", *bias);
        if (bias->ndim() != 1 || bias->shape(0) != N)
            value_error(op, ": expected bias of shape (", N,
                        ",) (the columns of op(a) @ op(b)), got ", shape_str(*bias));
    }
    return dt == DType::f32
               ? gemm_typed<float>(a, b, c, bias, alpha, beta, trans_a, trans_b, relu)
               : gemm_typed<double>(a, b, c, bias, alpha, beta, trans_a, trans_b, relu);
}

}  // namespace

void register_gemm(py::module_& m) {
    m.def("gemm", &gemm_binding, py::arg("a"), py::arg("b"), py::arg("c") = py::none(),
          py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("bias") = py::none(), py::arg("relu") = false,
          R"doc(General matrix multiply, BLAS sgemm/dgemm semantics (row-major).

Returns ``alpha * op(a) @ op(b) + beta * c`` as a new array; ``c`` is not modified.
``bias`` (optional, shape (N,)) is added to every row of the result (not scaled by alpha):
Linear's ``x @ W.T + b`` in one call. ``relu`` then applies ``max(0, .)`` to the result
(relu_forward's semantics: NaN passes through): a Linear and its ReLU in one call.
op(a) is ``a.T`` if ``trans_a`` else ``a`` (shape (M, K)); op(b) likewise (K, N).
``beta == 0`` ignores ``c`` entirely (NaN in ``c`` does not propagate), as BLAS does.
``a``, ``b``, ``c`` and ``bias`` must share dtype float32 or float64; any strides are accepted.

Raises TypeError for other dtypes or non-arrays, ValueError for shape mismatches.
Algorithm: Goto/BLIS packing (packA/packB) with an MR x NR micro-kernel per ISA.)doc");
}

}  // namespace fastconv
