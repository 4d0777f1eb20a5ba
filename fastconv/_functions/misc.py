"""Linear (over the C++ GEMM), padding and dropout as Functions.

Linear flattens the leading dimensions of x to one batch axis (a view when x is
contiguous) and runs the three products of a fully connected layer as single GEMM calls:
``y = x·Wᵀ + b`` (the GEMM adds the bias), ``dW = dyᵀ·x``, ``dx = dy·W``; the transposes
are GEMM flags, never copies. Pad handles constant padding by a slice copy and
reflect/replicate/circular by one ``take`` per padded axis with a precomputed source index
(its backward is the matching scatter-add). Dropout keeps its scaled mask, the only array
its backward reads.

Pad and Dropout take their array functions from the input's array module
(:func:`fastconv._array.get_array_module`, ``ctx.xp`` in backward), so they run on NumPy or
CuPy arrays; the small index arrays of Pad and Dropout's random draw are made on the host
(NumPy, fastconv's seeded generator) and moved with ``xp.asarray`` (a no-op for NumPy), so
a seed gives the same mask on every device. Linear stays on NumPy: it is the C++ GEMM path.
"""

from __future__ import annotations

import numpy as np

from fastconv import _core
from fastconv._array import get_array_module, scatter_add
from fastconv._functions.activation import relu_backward
from fastconv.autograd import Context, Function

__all__ = ["Dropout", "Linear", "LinearReLU", "Pad", "pad_source_index"]


def _weight_first_pays(x, w) -> bool:
    """A weight larger than the batch's rows (CifarNet fc1: 128 x 4096 against 64 x 4096):
    y^T = w @ x.T reads w in place and packs x, the smaller, where x @ w.T packs all of w.
    Cold, as in a training step: 0.95 -> 0.80 ms."""
    return 16 <= x.shape[0] < w.shape[0] and w.size >= 1 << 18 and type(x) is np.ndarray


class Linear(Function):
    """y = x @ W^T + b for x of shape (*, in_features) and W of shape (out, in_features)."""

    fresh_grads = True  # gemm outputs and a reduction: new arrays

    @staticmethod
    def infer(x, w, b=None):
        # Positional: pybind11 matches keyword arguments by name, ~0.6 us a call.
        if x.ndim == 2:
            if _weight_first_pays(x, w):
                yt = _core.gemm(w, x, None, 1.0, 0.0, False, True)
                y = np.empty((x.shape[0], w.shape[0]), dtype=yt.dtype)
                if b is None:
                    np.copyto(y, yt.T)
                else:
                    np.add(yt.T, b, out=y)
                return y
            return _core.gemm(x, w, None, 1.0, 0.0, False, True, b)  # x @ w.T + b
        y = _core.gemm(x.reshape(-1, x.shape[-1]), w, None, 1.0, 0.0, False, True, b)
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def save(ctx: Context, x, w, *more) -> None:
        """backward's saves: x as a matrix if dW is needed, w if dx is, then `more`."""
        need_x, need_w, _ = ctx.needs_input_grad
        x2 = (x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x) if need_w else None
        ctx.save_for_backward(x2, w if need_x else None, *more)
        ctx.x_shape = x.shape

    @staticmethod
    def forward(ctx: Context, x, w, b=None):
        Linear.save(ctx, x, w)
        return Linear.infer(x, w, b)

    @staticmethod
    def backward(ctx: Context, g):
        x2, w = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
        dx = dw = db = None
        if need_x:
            dx = _core.gemm(g2, w)
            if len(ctx.x_shape) != 2:
                dx = dx.reshape(ctx.x_shape)
        if need_w:
            dw = _core.gemm(g2, x2, None, 1.0, 0.0, True)  # g2.T @ x2
        if need_b:
            db = g2.sum(axis=0)
        return dx, dw, db


class LinearReLU(Function):
    """relu(x @ W^T + b) for callers that never see the Linear's output (nn.Sequential's
    Linear followed by ReLU): the GEMM applies the ReLU to its result (``_core.gemm``'s
    relu epilogue), one op instead of two. Backward masks the gradient where the output is
    <= 0, as ReLU's backward does, then runs Linear's: the values and gradients are bitwise
    those of the two ops."""

    fresh_grads = True

    @staticmethod
    def infer(x, w, b=None):
        if x.ndim == 2:
            if _weight_first_pays(x, w):  # Linear's y^T product, then the ReLU
                return _core.relu_forward(Linear.infer(x, w, b))
            return _core.gemm(x, w, None, 1.0, 0.0, False, True, b, True)
        y = _core.gemm(x.reshape(-1, x.shape[-1]), w, None, 1.0, 0.0, False, True, b, True)
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def forward(ctx: Context, x, w, b=None):
        y = LinearReLU.infer(x, w, b)
        Linear.save(ctx, x, w, y)  # y last: the ReLU's mask
        return y

    @staticmethod
    def backward(ctx: Context, g):
        x2, w, y = ctx.saved
        ctx.saved = (x2, w)  # Linear.backward's saves
        return Linear.backward(ctx, relu_backward(g, y))


def pad_source_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """For one axis of size n padded by (before, after): the source index of each output.

    reflect mirrors about the edge without repeating it, replicate repeats the edge,
    circular wraps; negative padding crops (for circular, the wrap is over the cropped
    part, as torch).
    """
    if mode == "circular":
        # torch crops first and wraps around what is left (length n − crops).
        lo = max(-before, 0)
        kept = n - lo - max(-after, 0)
        return lo + np.arange(-max(before, 0), kept + max(after, 0), dtype=np.intp) % kept
    src = np.arange(-before, n + after, dtype=np.intp)
    if mode == "reflect":
        src = np.abs(src)
        return np.where(src >= n, 2 * (n - 1) - src, src)
    return np.clip(src, 0, n - 1)  # replicate


class Pad(Function):
    """Pad x by ``pads``: one (before, after) pair per axis of x, in axis order."""

    @staticmethod
    def forward(ctx: Context, x, *, pads, mode, value):
        ctx.x_shape, ctx.mode = x.shape, mode
        ctx.xp = xp = get_array_module(x)
        if mode == "constant":
            out_shape = tuple(n + b + a for n, (b, a) in zip(x.shape, pads))
            # Negative padding crops: copy the part of x that survives into its place.
            src = tuple(slice(max(-b, 0), n - max(-a, 0)) for n, (b, a) in zip(x.shape, pads))
            dst = tuple(slice(max(b, 0), m - max(a, 0)) for m, (b, a) in zip(out_shape, pads))
            ctx.slices = (src, dst)
            y = xp.full(out_shape, value, dtype=x.dtype)
            y[dst] = x[src]
            return y
        ctx.index = [(axis, xp.asarray(pad_source_index(x.shape[axis], b, a, mode)))
                     for axis, (b, a) in enumerate(pads) if b or a]
        y = x
        for axis, src in ctx.index:
            y = xp.take(y, src, axis=axis)
        return y if y is not x else x.copy()

    @staticmethod
    def backward(ctx: Context, g):
        xp = ctx.xp
        if ctx.mode == "constant":
            src, dst = ctx.slices
            dx = xp.zeros(ctx.x_shape, dtype=g.dtype)
            dx[src] = g[dst]
            return (dx,)
        shape = list(g.shape)
        for axis, src in reversed(ctx.index):
            shape[axis] = ctx.x_shape[axis]
            acc = xp.zeros(shape, dtype=g.dtype)
            # Border outputs read the same source as interior ones: scatter-add them.
            scatter_add(xp, acc, (slice(None),) * axis + (src,), g)
            g = acc
        return (g,)


class Dropout(Function):
    """x ⊙ mask / (1 − p) with mask ~ Bernoulli(1 − p) from fastconv's generator."""

    @staticmethod
    def forward(ctx: Context, x, *, p, generator):
        xp = get_array_module(x)
        if p >= 1.0:
            mask = xp.zeros(x.shape, dtype=x.dtype)
        else:
            # float32 uniforms: half the generator cost of float64; P(u >= p) = 1 − p.
            # Drawn on the host by fastconv's (seeded) generator, then moved to x's module.
            keep = xp.asarray(generator.random(x.shape, dtype=np.float32) >= np.float32(p))
            mask = xp.multiply(keep, 1.0 / (1.0 - p), dtype=x.dtype)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Context, g):
        (mask,) = ctx.saved
        return (g * mask,)
