"""Elementwise activations and softmax as Functions (NumPy ufuncs, one pass each way).

ReLU on float32/float64 NumPy arrays runs the compiled kernels (``_core.relu_forward`` /
``_core.relu_backward``: one pass, threaded; NumPy's ``maximum(x, 0)`` and
``g * (y > 0)`` take 2-4x as long, a tenth of a CifarNet training step); other dtypes and
CuPy arrays take the ufuncs. Each forward saves the one array its backward reads: relu, sigmoid and tanh their output,
leaky_relu its input, softmax/log_softmax their output. Softmax and log_softmax subtract
the maximum along ``dim`` first (no overflow in exp), and sigmoid evaluates ``exp(-|x|)``
only, so no float warning is raised for any finite input. Array functions come from the
input's array module (:func:`fastconv._array.get_array_module`; ``ctx.xp`` in backward), so
the same code runs on NumPy or CuPy arrays.
"""

from __future__ import annotations

import numpy as np

from fastconv import _core
from fastconv._array import get_array_module
from fastconv.autograd import Context, Function

__all__ = ["LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh"]


def _compiled(a) -> bool:
    """Whether the compiled elementwise kernels take `a`: a float32/float64 ndarray."""
    return type(a) is np.ndarray and a.dtype.char in "fd"


class ReLU(Function):
    @staticmethod
    def infer(x):
        if type(x) is np.ndarray:
            try:
                return _core.relu_forward(x)
            except TypeError:  # not float32/float64 (the kernel's TypeError): NumPy's
                pass
        return get_array_module(x).maximum(x, 0)

    @staticmethod
    def forward(ctx: Context, x):
        y = ReLU.infer(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        return (relu_backward(g, y),)


def relu_backward(g, y):
    """torch's threshold_backward: 0 where y <= 0 (so 0 at the kink), g elsewhere (NaN
    outputs included); g and y of one shape."""
    if _compiled(g) and g.dtype == y.dtype and g.shape == y.shape:
        return _core.relu_backward(g, y)
    return get_array_module(g).where(y <= 0, 0, g)


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx: Context, x, *, negative_slope):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        ctx.xp = xp = get_array_module(x)
        return xp.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def backward(ctx: Context, g):
        (x,) = ctx.saved
        # torch: x > 0 ? g : g * slope (slope at exactly 0).
        return (ctx.xp.where(x > 0, g, g * g.dtype.type(ctx.slope)),)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx: Context, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1, e) / (1 + e)
        y = y.astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        return (g * y * (1 - y),)


class Tanh(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = get_array_module(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        return (g * (1 - y * y),)


class Softmax(Function):
    @staticmethod
    def forward(ctx: Context, x, *, dim):
        e = get_array_module(x).exp(x - x.max(axis=dim, keepdims=True))
        e /= e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(e)
        ctx.dim = dim
        return e

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        gy = g * y
        # d softmax: y ⊙ (g − Σ_dim g ⊙ y)
        gy -= y * gy.sum(axis=ctx.dim, keepdims=True)
        return (gy,)


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx: Context, x, *, dim):
        ctx.xp = xp = get_array_module(x)
        z = x - x.max(axis=dim, keepdims=True)
        z -= xp.log(xp.exp(z).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(z)
        ctx.dim = dim
        return z

    @staticmethod
    def backward(ctx: Context, g):
        (y,) = ctx.saved
        # d log_softmax: g − softmax ⊙ Σ_dim g
        return (g - ctx.xp.exp(y) * g.sum(axis=ctx.dim, keepdims=True),)
