"""fc.Tensor: an array (NumPy on the CPU) with an optional gradient and autograd history.

Semantics follow ``torch.Tensor`` where this module is silent: arithmetic broadcasts as
NumPy does and gradients are summed back to each operand's shape; ``backward()`` with no
argument needs a single-element tensor; ``.grad`` of a leaf accumulates across backward
calls until zeroed; ``numpy()`` refuses a tensor that requires grad (use ``detach()``).

The array comes from the array-module abstraction (:mod:`fastconv._array`): creation and
the factories take the module of their device (:func:`~fastconv._array.array_module`, NumPy
for 'cpu'), and a tensor's device is read off its array's module
(:func:`~fastconv._array.get_array_module`: a CuPy array is 'cuda'), so a CuPy-backed device
can slot in without changing the ops.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastconv import autograd
from fastconv._array import array_module, check_device, default_float_dtype, get_array_module
from fastconv._functions import basic as B

__all__ = [
    "Tensor", "cat", "float32", "float64", "int64", "ones", "ones_like", "rand", "randn",
    "stack", "tensor", "zeros", "zeros_like",
]

float32 = np.float32
float64 = np.float64
int64 = np.int64

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _as_array(data: Any, dtype=None, xp=np) -> np.ndarray:
    """An array of module `xp` from data; Python floats default to float32 and ints to
    int64, as torch (NumPy arrays and scalars keep their dtype)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return xp.array(data, dtype=np.dtype(dtype))
    if isinstance(data, xp.ndarray):
        return data
    arr = xp.asarray(data)
    if arr.dtype == np.float64 and not isinstance(data, (np.generic, np.ndarray)):
        arr = arr.astype(default_float_dtype())  # Python floats and lists of them
    return arr


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _dims(args) -> tuple:
    """Sizes given as f(2, 3) or f((2, 3))."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _flattened_shape(shape: tuple, start_dim: int, end_dim: int) -> tuple:
    """The shape ``Tensor.flatten(start_dim, end_dim)`` gives an array of `shape` (its
    errors: IndexError for a dimension out of range, ValueError for start after end)."""
    ndim = len(shape)
    if ndim == 0:
        return (1,)
    if not (-ndim <= start_dim < ndim and -ndim <= end_dim < ndim):
        msg = (f"flatten: dimension out of range (expected to be in range of [{-ndim}, "
               f"{ndim - 1}], got start_dim={start_dim}, end_dim={end_dim})")
        raise IndexError(msg)
    start, end = start_dim % ndim, end_dim % ndim
    if start > end:
        msg = f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim})"
        raise ValueError(msg)
    # The merged size itself, not -1: NumPy cannot infer -1 when another axis is 0.
    return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])


class Tensor:
    """An n-dimensional array with reverse-mode autograd.

    Parameters
    ----------
    data : array-like
        Values; an ndarray is wrapped without copying (use :func:`tensor` to copy).
    requires_grad : bool
        Record operations on this tensor for :meth:`backward` (floating dtypes only).
    dtype : optional
        Convert to this dtype (float32, float64, int64, ...).
    device : str
        'cpu' ('cuda' raises RuntimeError in this build).
    """

    __slots__ = ("__weakref__", "_node", "data", "grad", "requires_grad")
    __array_ufunc__ = None  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, dtype=None, device: str = "cpu"):
        self.data = _as_array(data, dtype, array_module(device))
        self.grad: Tensor | None = None
        self._node: autograd.Node | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_op(cls, data: np.ndarray, node) -> Tensor:
        t = object.__new__(cls)
        # Op results are arrays of the inputs' module; NumPy scalars become 0-d arrays.
        t.data = data if isinstance(data, np.ndarray) else get_array_module(data).asarray(data)
        t.grad = None
        t._node = node
        t.requires_grad = node is not None
        return t

    # ---- properties ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        """'cuda' for a CuPy-backed tensor, 'cpu' otherwise."""
        return "cpu" if get_array_module(self.data) is np else "cuda"

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            msg = "len() of a 0-d tensor"
            raise TypeError(msg)
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.dtype not in (np.float32, np.int64):
            extra = f", dtype={self.dtype}" + extra
        return f"tensor({body}{extra})"

    # ---- autograd -----------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not np.issubdtype(self.dtype, np.floating):
            msg = f"only floating point tensors can require gradients, got dtype {self.dtype}"
            raise RuntimeError(msg)
        if not self.is_leaf and not requires_grad:
            msg = "you can only change requires_grad flags of leaf variables"
            raise RuntimeError(msg)
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) · grad into every leaf's ``.grad``.

        Raises RuntimeError if self does not require grad, if `grad` is omitted for a tensor
        with more than one element, or if `grad`'s shape differs from self's.
        """
        if not self.requires_grad:
            msg = "element 0 of tensors does not require grad and does not have a grad_fn"
            raise RuntimeError(msg)
        if grad is None:
            if self.numel() != 1:
                msg = "grad can be implicitly created only for scalar outputs"
                raise RuntimeError(msg)
            g = get_array_module(self.data).ones(self.shape, dtype=self.dtype)
        else:
            g = get_array_module(self.data).asarray(_raw(grad), dtype=self.dtype)
            if g.shape != self.shape:
                msg = (f"Mismatch in shape: grad_output has a shape of {g.shape} and output "
                       f"has a shape of {self.shape}")
                raise RuntimeError(msg)
        autograd.backward(self, g)

    def _accumulate(self, g: np.ndarray, fresh: bool = False) -> None:
        """Add g into .grad; `fresh`: g is a new array nothing else refers to (a kernel's
        output, Function.fresh_grads), so the first gradient is kept without a copy."""
        xp = get_array_module(g)
        g = xp.asarray(g)
        if g.dtype != self.dtype:
            g = g.astype(self.dtype)
        if g.shape != self.shape:
            g = B.unbroadcast(g, self.shape)
        if self.grad is None:
            # A private copy unless fresh: backward functions may return views of shared
            # buffers (an addition's gradient is the same array for both operands).
            self.grad = Tensor._from_op(g if fresh else xp.array(g, copy=True), None)
        else:
            self.grad.data = self.grad.data + g

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph (requires_grad=False)."""
        return Tensor._from_op(self.data, None)

    def detach_(self) -> Tensor:
        self._node = None
        self.requires_grad = False
        return self

    def zero_(self) -> Tensor:
        self.data[...] = 0
        return self

    # ---- conversion ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        if get_array_module(self.data) is not np:
            msg = ("can't convert cuda tensor to numpy. Use Tensor.cpu() to copy the tensor "
                   "to host memory first.")
            raise TypeError(msg)
        if self.requires_grad:
            msg = "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            raise RuntimeError(msg)
        return self.data

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return np.array(arr, copy=True) if copy else arr

    def item(self) -> float | int:
        if self.numel() != 1:
            msg = f"a Tensor with {self.numel()} elements cannot be converted to Scalar"
            raise RuntimeError(msg)
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def to(self, *args, **kwargs) -> Tensor:
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; differentiable in dtype."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        for a in args:
            if isinstance(a, str) and not _is_dtype_name(a):
                device = a
            else:
                dtype = a
        if device is not None:
            check_device(device)
        if dtype is None or np.dtype(dtype) == self.dtype:
            return self
        return B.Cast.apply(self, np.dtype(dtype))

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def clone(self) -> Tensor:
        return B.Cast.apply(self, self.dtype)

    def cpu(self) -> Tensor:
        return self

    # ---- arithmetic ---------------------------------------------------------------------
    def __add__(self, other):
        return B.Add.apply(self, other)

    def __radd__(self, other):
        return B.Add.apply(other, self)

    def __sub__(self, other):
        return B.Sub.apply(self, other)

    def __rsub__(self, other):
        return B.Sub.apply(other, self)

    def __mul__(self, other):
        return B.Mul.apply(self, other)

    def __rmul__(self, other):
        return B.Mul.apply(other, self)

    def __truediv__(self, other):
        return B.Div.apply(self, other)

    def __rtruediv__(self, other):
        return B.Div.apply(other, self)

    def __neg__(self):
        return B.Neg.apply(self)

    def __pos__(self):
        return self

    def __pow__(self, other):
        return B.Pow.apply(self, other)

    def __rpow__(self, other):
        return B.Pow.apply(other, self)

    def __matmul__(self, other):
        return B.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return B.MatMul.apply(other, self)

    # comparisons give boolean tensors outside the graph, as in torch
    def __eq__(self, other):  # type: ignore[override]
        return Tensor._from_op(np.equal(self.data, _raw(other)), None)

    def __ne__(self, other):  # type: ignore[override]
        return Tensor._from_op(np.not_equal(self.data, _raw(other)), None)

    def __lt__(self, other):
        return Tensor._from_op(np.less(self.data, _raw(other)), None)

    def __le__(self, other):
        return Tensor._from_op(np.less_equal(self.data, _raw(other)), None)

    def __gt__(self, other):
        return Tensor._from_op(np.greater(self.data, _raw(other)), None)

    def __ge__(self, other):
        return Tensor._from_op(np.greater_equal(self.data, _raw(other)), None)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        return int(self.data.__index__())

    # ---- elementwise functions ----------------------------------------------------------
    def exp(self) -> Tensor:
        return B.Exp.apply(self)

    def log(self) -> Tensor:
        return B.Log.apply(self)

    def sqrt(self) -> Tensor:
        return B.Sqrt.apply(self)

    def pow(self, exponent) -> Tensor:
        return B.Pow.apply(self, exponent)

    def abs(self) -> Tensor:
        return self * Tensor._from_op(np.sign(self.data), None)

    def relu(self) -> Tensor:
        from fastconv import functional as F

        return F.relu(self)

    def sigmoid(self) -> Tensor:
        from fastconv import functional as F

        return F.sigmoid(self)

    def tanh(self) -> Tensor:
        from fastconv import functional as F

        return F.tanh(self)

    def softmax(self, dim: int) -> Tensor:
        from fastconv import functional as F

        return F.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        from fastconv import functional as F

        return F.log_softmax(self, dim)

    def matmul(self, other) -> Tensor:
        return B.MatMul.apply(self, other)

    # ---- reductions ---------------------------------------------------------------------
    def sum(self, dim=None, keepdim: bool = False) -> Tensor:
        return B.Sum.apply(self, dim, keepdim)

    def mean(self, dim=None, keepdim: bool = False) -> Tensor:
        if not np.issubdtype(self.dtype, np.floating):
            msg = f"mean(): could not infer output dtype. Input dtype must be floating point, got {self.dtype}"
            raise RuntimeError(msg)
        return B.Mean.apply(self, dim, keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False):
        """max of all elements, or with `dim` a (values, indices) pair as torch.max(dim)."""
        if dim is None:
            return B.Max.apply(self, None, False)
        values = B.Max.apply(self, dim, keepdim)
        indices = np.argmax(self.data, axis=dim)
        if keepdim:
            indices = np.expand_dims(indices, dim)
        return MaxResult(values, Tensor._from_op(indices.astype(np.int64), None))

    def amax(self, dim=None, keepdim: bool = False) -> Tensor:
        return B.Max.apply(self, dim, keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        idx = np.argmax(self.data, axis=dim)
        if keepdim and dim is not None:
            idx = np.expand_dims(idx, dim)
        return Tensor._from_op(np.asarray(idx, dtype=np.int64), None)

    # ---- shape --------------------------------------------------------------------------
    def reshape(self, *shape) -> Tensor:
        return B.Reshape.apply(self, _dims(shape))

    def view(self, *shape) -> Tensor:
        return B.Reshape.apply(self, _dims(shape))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Dimensions start_dim..end_dim (inclusive, negatives from the end) merged into one,
        as ``torch.flatten``; a 0-d tensor becomes shape (1,). A view when the data is
        contiguous.

        Raises IndexError for a dimension outside [-ndim, ndim) and ValueError when
        start_dim comes after end_dim.
        """
        return B.Reshape.apply(self, _flattened_shape(self.data.shape, start_dim, end_dim))

    def permute(self, *dims) -> Tensor:
        return B.Permute.apply(self, _dims(dims))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return B.Permute.apply(self, tuple(dims))

    def t(self) -> Tensor:
        if self.ndim > 2:
            msg = f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D"
            raise RuntimeError(msg)
        return self.transpose(0, 1) if self.ndim == 2 else self

    def unsqueeze(self, dim: int) -> Tensor:
        return B.Reshape.apply(self, np.expand_dims(self.data, dim).shape)

    def squeeze(self, dim: int | None = None) -> Tensor:
        shape = np.squeeze(self.data, axis=dim).shape if (dim is None or self.shape[dim] == 1) else self.shape
        return B.Reshape.apply(self, shape)

    def __getitem__(self, index) -> Tensor:
        index = tuple(_raw(i) for i in index) if isinstance(index, tuple) else _raw(index)
        return B.GetItem.apply(self, index)

    def __setitem__(self, index, value) -> None:
        if self.requires_grad and autograd.is_grad_enabled():
            msg = "a leaf Variable that requires grad is being used in an in-place operation."
            raise RuntimeError(msg)
        self.data[_raw(index) if not isinstance(index, tuple) else tuple(_raw(i) for i in index)] = _raw(value)


autograd.Tensor = Tensor  # Function.apply wraps its results in this class


def _is_dtype_name(s: str) -> bool:
    try:
        np.dtype(s)
    except TypeError:
        return False
    return True


# ---- factories ------------------------------------------------------------------------------

def tensor(data: Any, requires_grad: bool = False, device: str = "cpu", dtype=None) -> Tensor:
    """A new tensor holding a copy of `data` (as ``torch.tensor``).

    Python floats become float32 and ints int64; NumPy arrays keep their dtype unless
    `dtype` is given.
    """
    arr = _as_array(data, dtype, array_module(device))
    if arr is data or (isinstance(data, Tensor) and arr is data.data):
        arr = arr.copy()
    return Tensor(arr, requires_grad=requires_grad, device=device)


def zeros(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    xp = array_module(device)
    return Tensor(xp.zeros(_dims(size), dtype=dtype or default_float_dtype()), requires_grad,
                  device=device)


def ones(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    xp = array_module(device)
    return Tensor(xp.ones(_dims(size), dtype=dtype or default_float_dtype()), requires_grad,
                  device=device)


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    """Zeros of t's shape, on t's device, in `dtype` (default t's)."""
    xp = get_array_module(t.data)
    return Tensor._from_op(xp.zeros(t.shape, dtype=dtype or t.dtype), None)


def ones_like(t: Tensor, dtype=None) -> Tensor:
    """Ones of t's shape, on t's device, in `dtype` (default t's)."""
    xp = get_array_module(t.data)
    return Tensor._from_op(xp.ones(t.shape, dtype=dtype or t.dtype), None)


_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind randn/rand, dropout and nn.init."""
    global _rng  # noqa: PLW0603
    _rng = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator behind randn/rand, dropout and nn.init (see manual_seed)."""
    return _rng


def randn(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Standard normal samples from fastconv's generator (drawn on the host, then placed on
    `device`, so a seed gives the same values on every device)."""
    xp = array_module(device)
    data = _rng.standard_normal(_dims(size)).astype(dtype or default_float_dtype())
    return Tensor(xp.asarray(data), requires_grad, device=device)


def rand(*size, dtype=None, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """Uniform [0, 1) samples from fastconv's generator (drawn on the host, as randn)."""
    xp = array_module(device)
    data = _rng.random(_dims(size)).astype(dtype or default_float_dtype())
    return Tensor(xp.asarray(data), requires_grad, device=device)


def cat(tensors: Sequence, dim: int = 0) -> Tensor:
    """Concatenate along `dim` (differentiable), as torch.cat."""
    return B.Cat.apply(*tensors, dim=dim)


def stack(tensors: Sequence, dim: int = 0) -> Tensor:
    """Stack along a new axis `dim` (differentiable), as torch.stack."""
    return B.Stack.apply(*tensors, dim=dim)
