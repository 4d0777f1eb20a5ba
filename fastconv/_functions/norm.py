"""Batch normalisation as one Function (forward statistics, running update, closed-form backward).

Training normalises with the batch mean and biased variance over every axis but the
channel axis 1, and updates the running statistics in place with the unbiased variance:
``r ← (1 − momentum)·r + momentum·stat``. Evaluation normalises with the running
statistics. The training backward is the closed form of Ioffe & Szegedy (2015), eq. for
∂ℓ/∂x_i, written with the two channel sums Σ dy and Σ dy·x̂:
``dx = γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)``.

Array functions come from the input's array module
(:func:`fastconv._array.get_array_module`), so the same code runs on NumPy or CuPy arrays;
the backward uses array methods only.
"""

from __future__ import annotations

from fastconv._array import get_array_module
from fastconv.autograd import Context, Function

__all__ = ["BatchNorm"]


class BatchNorm(Function):
    """y = (x − μ)/√(σ² + eps)·γ + β over channel axis 1 of an (N, C, *) input."""

    @staticmethod
    def forward(ctx: Context, x, weight=None, bias=None, *, running_mean, running_var,
                training, momentum, eps):
        xp = get_array_module(x, weight, bias)
        c = x.shape[1]
        axes = (0, *range(2, x.ndim))
        bshape = (1, c) + (1,) * (x.ndim - 2)
        m = x.size // c
        if training:
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(bshape)
            var = xp.mean(xc * xc, axis=axes)
            if running_mean is not None:
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            if running_var is not None:
                running_var[...] = (1 - momentum) * running_var + momentum * (var * (m / (m - 1)))
        else:
            mean = running_mean.astype(x.dtype, copy=False)
            var = running_var.astype(x.dtype, copy=False)
            xc = x - mean.reshape(bshape)
        invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        xhat = xc
        xhat *= invstd.reshape(bshape)
        y = xhat if weight is None else xhat * weight.reshape(bshape)
        if bias is not None:
            y = y + bias.reshape(bshape) if y is xhat else xp.add(y, bias.reshape(bshape), out=y)
        need_x, need_w, _ = ctx.needs_input_grad
        keep_xhat = need_w or (need_x and training)
        ctx.save_for_backward(xhat if keep_xhat else None, invstd, weight)
        ctx.axes, ctx.bshape, ctx.m, ctx.training = axes, bshape, m, training
        return y

    @staticmethod
    def backward(ctx: Context, g):
        xhat, invstd, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        axes, bshape = ctx.axes, ctx.bshape
        sum_g = g.sum(axis=axes) if (need_b or (need_x and ctx.training)) else None
        sum_gx = (g * xhat).sum(axis=axes) if (need_w or (need_x and ctx.training)) else None
        dx = None
        if need_x:
            scale = invstd if weight is None else weight * invstd
            if ctx.training:
                dx = g - (sum_g / ctx.m).reshape(bshape)
                dx -= xhat * (sum_gx / ctx.m).reshape(bshape)
                dx *= scale.reshape(bshape)
            else:
                dx = g * scale.reshape(bshape)
        return dx, sum_gx if need_w else None, sum_g if need_b else None
