"""Conv2d and ConvTranspose2d as Functions over the C++ kernels (``fastconv.kernels``).

Tensors are the positional arguments (input, weight, bias); the convolution parameters are
keywords, already in the form ``fastconv.kernels`` accepts. A 3-D input (C, H, W) is run
as a batch of one and the result squeezed, as torch does for unbatched input. Backward
runs only the kernels whose input needs a gradient (a first-layer conv never runs
backward_data), and forward saves only what those kernels read: the weight for the data
gradient, the input for the weight gradient.
"""

from __future__ import annotations

from fastconv import kernels
from fastconv.autograd import Context, Function

__all__ = ["Conv2d", "ConvTranspose2d"]



def _backward(ctx: Context, g, backward_data, backward_weight):
    """(dx, dw, db) of a (transposed) convolution, running only the kernels whose input
    needs a gradient; ``ctx.args`` are the hyperparameters in the kernels' order."""
    x, w = ctx.saved
    need_x, need_w, need_b = ctx.needs_input_grad
    if ctx.unbatched:
        g = g[None]
    dx = dw = db = None
    if need_x:
        dx = backward_data(g, w, ctx.x_shape, *ctx.args)
        if ctx.unbatched:
            dx = dx[0]
    if need_w:
        dw = backward_weight(g, x, ctx.w_shape, *ctx.args)
    if need_b:
        db = kernels.conv2d_backward_bias(g)
    return dx, dw, db

class Conv2d(Function):
    """y = conv2d(x, w) + b; backward: dx = backward_data, dW = backward_weight, db = Σ dy."""

    @staticmethod
    def forward(ctx: Context, x, w, b=None, *, stride, padding, dilation, groups):
        unbatched = x.ndim == 3
        if unbatched:
            x = x[None]
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None, w if need_x else None)
        ctx.x_shape, ctx.w_shape, ctx.unbatched = x.shape, w.shape, unbatched
        ctx.args = (stride, padding, dilation, groups)
        y = kernels.conv2d(x, w, b, stride, padding, dilation, groups)
        return y[0] if unbatched else y

    @staticmethod
    def backward(ctx: Context, g):
        return _backward(ctx, g, kernels.conv2d_backward_data, kernels.conv2d_backward_weight)


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, w) + b (the adjoint of conv2d); backward via the transpose kernels."""

    @staticmethod
    def forward(ctx: Context, x, w, b=None, *, stride, padding, output_padding, groups,
                dilation):
        unbatched = x.ndim == 3
        if unbatched:
            x = x[None]
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None, w if need_x else None)
        ctx.x_shape, ctx.w_shape, ctx.unbatched = x.shape, w.shape, unbatched
        ctx.args = (stride, padding, output_padding, groups, dilation)
        y = kernels.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
        return y[0] if unbatched else y

    @staticmethod
    def backward(ctx: Context, g):
        return _backward(ctx, g, kernels.conv_transpose2d_backward_data,
                         kernels.conv_transpose2d_backward_weight)
