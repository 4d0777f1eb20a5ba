"""Differentiable basics: elementwise arithmetic with NumPy broadcasting, matmul,
reductions, shape ops, indexing and concatenation.

Gradients of broadcast operands are summed back to the operand's shape (:func:`unbroadcast`),
as PyTorch does. Forward and backward take and return raw arrays. Array functions come from
the inputs' array module (:func:`fastconv._array.get_array_module`, kept on ``ctx.xp`` for
backward), so the same ops run on NumPy arrays today and on CuPy arrays later; ``np.shape``
and ``np.ndim`` only read attributes and work for either.
"""

from __future__ import annotations

import numpy as np

from fastconv._array import get_array_module, scatter_add
from fastconv.autograd import Context, Function

__all__ = [
    "Add", "Cast", "Cat", "Div", "Exp", "GetItem", "Log", "MatMul", "Max", "Mean", "Mul",
    "Neg", "Permute", "Pow", "Reshape", "Sqrt", "Stack", "Sub", "Sum", "unbroadcast",
]


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes NumPy broadcasting added or stretched to reach its shape."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _shape(x) -> tuple:
    return np.shape(x)


def _like(grad: np.ndarray, x) -> np.ndarray:
    """grad in x's dtype when x is an array (scalars take no gradient anyway)."""
    dtype = getattr(x, "dtype", None)
    return grad if dtype is None or grad.dtype == dtype else grad.astype(dtype)


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return get_array_module(a, b).add(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return get_array_module(a, b).subtract(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a, b).multiply(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        na, nb = ctx.needs_input_grad
        return (_like(unbroadcast(g * b, _shape(a)), a) if na else None,
                _like(unbroadcast(g * a, _shape(b)), b) if nb else None)


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a, b).divide(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        na, nb = ctx.needs_input_grad
        ga = _like(unbroadcast(g / b, _shape(a)), a) if na else None
        gb = _like(unbroadcast(-g * a / (b * b), _shape(b)), b) if nb else None
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx: Context, a):
        return get_array_module(a).negative(a)

    @staticmethod
    def backward(ctx: Context, g):
        return (-g,)


class Pow(Function):
    """a ** b for tensor or scalar a and b (d/db uses log a, defined for a > 0)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.xp = xp = get_array_module(a, b)
        out = xp.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        a, b, out = ctx.saved
        na, nb = ctx.needs_input_grad
        xp = ctx.xp
        ga = _like(unbroadcast(g * b * xp.power(a, b - 1), _shape(a)), a) if na else None
        gb = None
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = _like(unbroadcast(g * out * xp.log(a), _shape(b)), b)
        return ga, gb


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a):
        out = get_array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        (out,) = ctx.saved
        return (g * out,)


class Log(Function):
    @staticmethod
    def forward(ctx: Context, a):
        ctx.save_for_backward(a)
        return get_array_module(a).log(a)

    @staticmethod
    def backward(ctx: Context, g):
        (a,) = ctx.saved
        return (g / a,)


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Context, a):
        out = get_array_module(a).sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        (out,) = ctx.saved
        return (g / (2 * out),)


class MatMul(Function):
    """np.matmul semantics (1-D operands promoted and the added axis removed, batch broadcast)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        ctx.xp = xp = get_array_module(a, b)
        return xp.matmul(a, b)

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        na, nb = ctx.needs_input_grad
        xp = ctx.xp
        a2 = a[np.newaxis, :] if a.ndim == 1 else a
        b2 = b[:, np.newaxis] if b.ndim == 1 else b
        # Restore the axes matmul removed for 1-D operands: b's trailing one first, so a
        # 0-d gradient (vector . vector) becomes (1, 1).
        g2 = g
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if na:
            ga = unbroadcast(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if nb:
            gb = unbroadcast(xp.matmul(xp.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


def _axes(dim, ndim: int):
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % ndim if ndim else d for d in dims)


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a, dim=None, keepdim=False):
        ctx.shape = a.shape
        ctx.axes = _axes(dim, a.ndim)
        ctx.keepdim = keepdim
        ctx.xp = xp = get_array_module(a)
        return xp.sum(a, axis=ctx.axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, g):
        xp = ctx.xp
        if ctx.axes is not None and not ctx.keepdim:
            g = xp.expand_dims(g, ctx.axes)
        return (xp.broadcast_to(g, ctx.shape).copy(),)


class Mean(Function):
    @staticmethod
    def forward(ctx: Context, a, dim=None, keepdim=False):
        ctx.shape = a.shape
        ctx.axes = _axes(dim, a.ndim)
        ctx.keepdim = keepdim
        count = a.size if ctx.axes is None else int(np.prod([a.shape[i] for i in ctx.axes]))
        ctx.count = max(count, 1)
        ctx.xp = xp = get_array_module(a)
        return xp.mean(a, axis=ctx.axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, g):
        xp = ctx.xp
        if ctx.axes is not None and not ctx.keepdim:
            g = xp.expand_dims(g, ctx.axes)
        return (xp.broadcast_to(g / ctx.count, ctx.shape).copy(),)


class Max(Function):
    """max over `dim` (all elements if None); the gradient is split evenly among ties,
    as torch.amax does (torch.max(dim) sends it to the one returned index instead)."""

    @staticmethod
    def forward(ctx: Context, a, dim=None, keepdim=False):
        axes = _axes(dim, a.ndim)
        ctx.xp = xp = get_array_module(a)
        out = xp.max(a, axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return out if keepdim else (xp.squeeze(out, axis=axes) if axes is not None else out.reshape(()))

    @staticmethod
    def backward(ctx: Context, g):
        a, out = ctx.saved
        mask = (a == out).astype(a.dtype)
        mask /= mask.sum(axis=ctx.axes, keepdims=True)
        g = ctx.xp.reshape(g, out.shape)
        return (mask * g,)


class Reshape(Function):
    @staticmethod
    def infer(a, shape):
        return a.reshape(shape)

    @staticmethod
    def forward(ctx: Context, a, shape):
        # The array's own method (NumPy and CuPy both have it): no module look-up, and
        # cheaper than the np.reshape function on the flatten of every forward pass.
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g):
        return (g.reshape(ctx.shape),)


class Permute(Function):
    @staticmethod
    def forward(ctx: Context, a, dims):
        ctx.dims = tuple(d % a.ndim for d in dims)
        ctx.xp = xp = get_array_module(a)
        return xp.transpose(a, ctx.dims)

    @staticmethod
    def backward(ctx: Context, g):
        # the inverse permutation: host arithmetic on the axis numbers
        return (ctx.xp.transpose(g, tuple(np.argsort(ctx.dims).tolist())),)


class GetItem(Function):
    """a[index] with NumPy basic or advanced indexing; repeated indices accumulate."""

    @staticmethod
    def forward(ctx: Context, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        ctx.xp = get_array_module(a)
        return a[index]

    @staticmethod
    def backward(ctx: Context, g):
        xp = ctx.xp
        out = xp.zeros(ctx.shape, dtype=ctx.dtype)
        scatter_add(xp, out, ctx.index, g)
        return (out, None)


class Cast(Function):
    @staticmethod
    def forward(ctx: Context, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype, copy=True)

    @staticmethod
    def backward(ctx: Context, g):
        return (g.astype(ctx.dtype), None)


class Cat(Function):
    """Concatenate the positional array inputs along keyword `dim`."""

    @staticmethod
    def forward(ctx: Context, *arrays, dim=0):
        ctx.dim = dim % arrays[0].ndim
        ctx.sizes = [a.shape[ctx.dim] for a in arrays]
        ctx.xp = xp = get_array_module(*arrays)
        return xp.concatenate(arrays, axis=ctx.dim)

    @staticmethod
    def backward(ctx: Context, g):
        splits = np.cumsum(ctx.sizes)[:-1].tolist()  # host arithmetic on the sizes
        parts = ctx.xp.split(g, splits, axis=ctx.dim)
        return tuple(p if need else None for p, need in zip(parts, ctx.needs_input_grad))


class Stack(Function):
    @staticmethod
    def forward(ctx: Context, *arrays, dim=0):
        ctx.xp = xp = get_array_module(*arrays)
        out = xp.stack(arrays, axis=dim)
        ctx.dim = dim % out.ndim
        return out

    @staticmethod
    def backward(ctx: Context, g):
        xp = ctx.xp
        parts = [xp.take(g, i, axis=ctx.dim) for i in range(g.shape[ctx.dim])]
        return tuple(p if need else None for p, need in zip(parts, ctx.needs_input_grad))
