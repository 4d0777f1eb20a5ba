"""Conv2d and ConvTranspose2d as Functions over the C++ kernels (``fastconv._core``).

The positional arguments are the Tensors (input, weight, bias) and ``args``, the
convolution parameters already normalised to the tuple ``_core`` takes
(``fastconv.kernels.conv2d_args``, ``conv_transpose2d_args``: pairs as (h, w) tuples, conv2d
padding as (top, bottom, left, right)), so neither forward nor backward re-validates them;
one tuple rather than keywords, which cost ~0.3 us a call to pass through ``apply``. A 3-D
input (C, H, W) is run as a batch of one and the result squeezed, as torch does for
unbatched input. Backward runs only the kernels whose input needs a gradient (a first-layer
conv never runs backward_data), and forward saves only what those kernels read: the weight
for the data gradient, the input for the weight gradient.
"""

from __future__ import annotations

from fastconv import _core
from fastconv.autograd import Context, Function, LazyGrad

__all__ = ["Conv2d", "ConvTranspose2d"]


def _forward(ctx: Context, x, w, args: tuple):
    """Batch an unbatched x and save what the backward kernels that will run need."""
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    need_x, need_w, _, _ = ctx.needs_input_grad
    ctx.save_for_backward(x if need_w else None, w if need_x else None)
    ctx.x_shape, ctx.w_shape, ctx.unbatched, ctx.args = x.shape, w.shape, unbatched, args
    return x


def _backward(ctx: Context, g, backward_data, backward_weight, fused_bias: bool = False):
    """(dx, dw, db) of a (transposed) convolution, running only the kernels whose input
    needs a gradient; ``ctx.args`` are the hyperparameters in the ``_core`` order.
    fused_bias: backward_weight takes ``with_bias`` (conv2d's)."""
    x, w = ctx.saved
    need_x, need_w, need_b, _ = ctx.needs_input_grad
    if ctx.unbatched:
        g = g[None]
    dx = dw = db = None
    # The bias gradient first, while g is still in cache from the op that wrote it: after
    # the other two kernels it took 3.6 % of CifarNet's b64 step in perf (1.1 ms; 0.3 ms
    # on a g in cache). With the weight gradient too, one call: it sums g first, or plane
    # by plane as its depthwise kernels read g (the same bits).
    if need_w and need_b and fused_bias:
        dw, db = backward_weight(g, x, ctx.w_shape[2:], *ctx.args, "auto", True)
    elif need_b:
        db = _core.conv2d_backward_bias(g)
    if need_x:
        dx = backward_data(g, w, ctx.x_shape, *ctx.args, "auto")
        if ctx.unbatched:
            dx = dx[0]
    if need_w and dw is None:
        dw = backward_weight(g, x, ctx.w_shape[2:], *ctx.args, "auto")
    return dx, dw, db, None


class Conv2d(Function):
    """y = conv2d(x, w) + b; backward: dx = backward_data, dW = backward_weight, db = Σ dy.

    Where y reaches the loss only through a max pool, backward receives the pooled
    gradient and argmax (``pool.PooledGrad``): dW and db then come from the pooled
    positions alone (``_core.conv2d_backward_weight_pooled``), dx from the scattered dy.
    """

    lazy_grad_ok = True  # PooledGrad; the engine densifies any other LazyGrad kind
    fresh_grads = True  # every gradient is a kernel's new output (or a view of one)

    @staticmethod
    def infer(x, w, b, args):
        if x.ndim == 3:
            return _core.conv2d_forward(x[None], w, b, *args, "auto")[0]
        return _core.conv2d_forward(x, w, b, *args, "auto")

    @staticmethod
    def forward(ctx: Context, x, w, b, args):
        """args: (stride, padding, dilation, groups) as ``_core.conv2d_forward`` takes them."""
        _forward(ctx, x, w, args)  # the saves; infer computes the result
        return Conv2d.infer(x, w, b, args)

    @staticmethod
    def backward(ctx: Context, g):
        if not hasattr(g, "indices"):  # an array (any LazyGrad but PooledGrad: densified)
            g = g.dense() if isinstance(g, LazyGrad) else g
            return _backward(ctx, g, _core.conv2d_backward_data, _core.conv2d_backward_weight,
                             fused_bias=True)
        x, w = ctx.saved
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        dx = dw = db = None
        if need_w:
            dw, db = _core.conv2d_backward_weight_pooled(g.grad, g.indices, x, ctx.w_shape[2:],
                                                         *ctx.args)
        elif need_b:  # the sum of dy over positions is the sum of the pooled gradient
            db = _core.conv2d_backward_bias(g.grad)
        if need_x:  # (a PooledGrad comes only from a batched, 4-D map)
            dx = _core.conv2d_backward_data(g.dense(), w, ctx.x_shape, *ctx.args, "auto")
        return dx, dw, db if need_b else None, None


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, w) + b (the adjoint of conv2d); backward via the transpose kernels."""

    @staticmethod
    def forward(ctx: Context, x, w, b, args):
        """args: (stride, padding, output_padding, dilation, groups), as ``_core`` takes them."""
        x = _forward(ctx, x, w, args)
        y = _core.conv_transpose2d_forward(x, w, b, *args, "auto")
        return y[0] if ctx.unbatched else y

    @staticmethod
    def backward(ctx: Context, g):
        return _backward(ctx, g, _core.conv_transpose2d_backward_data,
                         _core.conv_transpose2d_backward_weight)
