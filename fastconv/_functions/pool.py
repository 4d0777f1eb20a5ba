"""2-D pooling as Functions over the C++ kernels: max, average, adaptive average/max.

The positional arguments are the input and ``args``, the pooling parameters already
normalised to the tuple ``_core`` takes (``fastconv.kernels.max_pool2d_args``,
``avg_pool2d_args``, ``adaptive_output_size``), so neither forward nor backward
re-validates them (a tuple rather than keywords: ~0.3 us less per call). A 3-D input
(C, H, W) runs as a batch of one. Max pooling saves only its argmax indices (backward
scatters through them, never reading x), and asks the kernel for none when no gradient
will flow and the caller does not want them (inference); max pooling of a ReLU's output
folds the ReLU's backward into its own (``MaxPool2d.apply``), and where the pooled map is a
Conv2d's output (through that ReLU or not) backward hands Conv2d the pooled gradient and
indices unscattered (``PooledGrad``); average pooling saves only
the input size. ``indices_out``, when given, is a list that receives the int64
argmax indices so ``F.max_pool2d(..., return_indices=True)`` can return them. The kernels
are the CPU ones; the little array work done here (masking the empty windows of a dilated
max pool) takes its functions from the arrays' module
(:func:`fastconv._array.get_array_module`).
"""

from __future__ import annotations

import numpy as np

from fastconv import _core, autograd
from fastconv._array import get_array_module
from fastconv._functions.activation import ReLU, relu_backward
from fastconv._functions.conv import Conv2d
from fastconv._functions.conv import _forward as _conv_saves
from fastconv.autograd import Context, Function, Node
from fastconv.kernels import conv2d_output_hw

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "Conv2dReLUMaxPool2d",
           "MaxPool2d", "PooledGrad"]


def _batched(ctx: Context, x):
    """x as (N, C, H, W); records on ctx whether it was unbatched and its (H, W)."""
    ctx.unbatched = x.ndim == 3
    if ctx.unbatched:
        x = x[None]
    ctx.x_hw = x.shape[2:]
    return x


def _pooled_grad_pays(pooled_hw, conv_hw) -> bool:
    """Whether Conv2d's backward should take the pooled gradient as it is (PooledGrad):
    where the windows cut the conv output's positions at least 4-fold, its weight and bias
    gradients from the argmaxes alone beat the dense ones."""
    return 4 * pooled_hw[0] * pooled_hw[1] <= conv_hw[0] * conv_hw[1]


def _unbatched(ctx: Context, dx):
    """dx with the batch axis of an unbatched input removed again."""
    return dx[0] if ctx.unbatched else dx


class PooledGrad(autograd.LazyGrad):
    """Max pooling's input gradient before its scatter: the pooled gradient ``grad``
    (N, C, PH, PW), already masked by a folded ReLU, and the argmax ``indices`` flat in
    the (H, W) = ``x_hw`` input plane. Conv2d's backward reads it as it is (its weight and
    bias gradients from the pooled positions only); :meth:`dense` is the scattered array
    every other consumer gets."""

    __slots__ = ("grad", "indices", "x_hw")

    def __init__(self, grad, indices, x_hw) -> None:
        self.grad, self.indices, self.x_hw = grad, indices, x_hw

    def dense(self):
        return _core.max_pool2d_backward(self.grad, self.indices, self.x_hw)


class MaxPool2d(Function):
    @classmethod
    def apply(cls, x, args, indices_out=None):
        node = getattr(x, "_node", None)
        if node is None or not autograd.is_grad_enabled():
            return super().apply(x, args, indices_out)
        relu = node.fn is ReLU
        if not relu and node.fn is not Conv2d:
            return super().apply(x, args, indices_out)
        # Max pooling of a ReLU's output r = relu(a) is recorded as an op of a: at each
        # window's argmax, ReLU's backward keeps the gradient where r > 0, and r there is
        # the pooled value, so backward masks the pooled gradient and scatters it into da
        # directly. That replaces ReLU's backward over r (read dr and r, write da) with one
        # over the pooled output, a quarter of it for 2x2 windows (LeNet-5, CifarNet). The
        # same sums in the same order: bitwise the unfused gradient. r's ReLU node stays
        # for r's other uses, if any; their gradient reaches a through it and adds up.
        # Without a ReLU (pooling a Conv2d's output directly) this records what
        # Function.apply would, plus the pooled-gradient rule below.
        src = node.inputs[0] if relu else x
        ctx = Context((True, False, False))
        y = cls.forward(ctx, x.data, args, indices_out)
        return cls._record(ctx, y, src, relu)

    @classmethod
    def apply_relu_first(cls, x, args):
        """max_pool2d(relu(x)) computed as the ReLU of max_pool2d(x), for callers that
        cannot observe relu(x) itself (nn.Sequential's ReLU then MaxPool2d): max and ReLU
        commute, so the values are the same, and the ReLU runs over the pooled map only
        (a quarter of x for 2x2 windows): CifarNet conv1's 8 MB output is read once, not
        read, written and read again. Recorded as apply records the pool of a ReLU's
        output: an op of x, the ReLU folded into backward. The argmax may differ where a
        window's maximum is <= 0 (relu(x) ties its entries at 0); the output is 0 there
        and its gradient masked to 0. Dilated windows can be empty (pool(relu(x)) is -inf
        there, relu(pool(x)) 0): those pool relu(x). x: a Tensor; args as apply's."""
        if args[3] != (1, 1):
            return cls.apply(ReLU.apply(x), args)
        if not (x.requires_grad and autograd.is_grad_enabled()):
            return autograd.Tensor._from_op(ReLU.infer(cls.infer(x.data, args)), None)
        ctx = Context((True, False, False))
        y = ReLU.infer(cls.forward(ctx, x.data, args))
        return cls._record(ctx, y, x, True)

    @staticmethod
    def _record(ctx: Context, y, src, relu: bool):
        """The output y of a max pool of src (through a folded ReLU when relu), recorded as
        an op of src. Where src is a Conv2d's output, backward hands Conv2d the pooled
        gradient itself (PooledGrad) when the windows cut the positions at least 4-fold:
        its weight and bias gradients then read only the argmaxes
        (conv2d_backward_weight_pooled). NumPy arrays only (the kernels are the CPU
        ones); no empty dilated windows."""
        ctx.relu_y = y if relu else None
        a = src.data
        ctx.pooled = (src._node is not None and src._node.fn is Conv2d
                      and type(a) is np.ndarray and a.ndim == 4 and ctx.empty is None
                      and _pooled_grad_pays(y.shape[-2:], a.shape[-2:]))
        return autograd.Tensor._from_op(y, Node(MaxPool2d, ctx, (src, None, None)))

    @staticmethod
    def infer(x, args, indices_out=None):
        if indices_out is not None:  # the caller reads the argmax
            return MaxPool2d.forward(Context((False, False, False)), x, args, indices_out)
        if x.ndim == 3:
            return _core.max_pool2d_forward(x[None], *args, False)[0][0]
        return _core.max_pool2d_forward(x, *args, False)[0]

    @staticmethod
    def forward(ctx: Context, x, args, indices_out=None):
        """args: (kernel_size, stride, padding, dilation, ceil_mode)."""
        x = _batched(ctx, x)
        # The argmax only when backward or the caller reads it (not for inference).
        with_indices = ctx.needs_input_grad[0] or indices_out is not None
        y, idx = _core.max_pool2d_forward(x, *args, with_indices)
        ctx.indices, ctx.empty, ctx.relu_y, ctx.pooled = idx, None, None, False
        if with_indices and args[3] != (1, 1):
            # A dilated window can hold no input element at all: torch then returns -inf and
            # an index outside the plane. Such an output sends no gradient anywhere.
            plane = x.shape[-2] * x.shape[-1]
            empty = (idx < 0) | (idx >= plane)
            if empty.any():
                ctx.empty = empty
        if ctx.unbatched:
            y = y[0]
        if indices_out is not None:
            indices_out.append(idx[0] if ctx.unbatched else idx)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        if ctx.relu_y is not None:
            g = relu_backward(g, ctx.relu_y)
        if ctx.pooled:
            return PooledGrad(g, ctx.indices, ctx.x_hw), None, None
        if ctx.unbatched:
            g = g[None]
        indices = ctx.indices
        if ctx.empty is not None:
            # Only here (dilated pooling with empty windows): the module is looked up off
            # the hot path, from the arrays at hand.
            xp = get_array_module(g, indices)
            g = xp.where(ctx.empty, g.dtype.type(0), g)
            indices = xp.where(ctx.empty, 0, indices)
        return _unbatched(ctx, _core.max_pool2d_backward(g, indices, ctx.x_hw)), None, None


class Conv2dReLUMaxPool2d(Function):
    """relu(max_pool2d(conv2d(x, w) + b)) from one kernel call
    (``_core.conv2d_max_pool2d_forward`` with relu), for callers that never see the conv's
    or the ReLU's output (nn.Sequential's Conv2d, ReLU, MaxPool2d). Max and ReLU commute,
    and an undilated window always holds an input element, so this is
    max_pool2d(relu(conv2d)). The kernel pools the conv output where it is computed
    (Winograd's 2x2 output tiles, the direct forward's per-image rows) instead of writing it
    to memory and reading it back (CifarNet b64's 8 MB and 4 MB maps), and applies the ReLU
    to the pooled values as it stores them. Backward is the one MaxPool2d.apply records for the
    pool of a ReLU of a Conv2d's output: the pooled gradient masked by the ReLU, then
    Conv2d's backward on the pooled gradient and argmax (PooledGrad) where the windows cut
    the positions at least 4-fold, on the scattered gradient elsewhere; bitwise the unfused
    modules' gradients. x: (N, C, H, W) NumPy array; w, b as Conv2d's; args: (conv args as
    Conv2d's, max-pool args as MaxPool2d's with dilation (1, 1))."""

    fresh_grads = True  # Conv2d's backward: kernel outputs

    @staticmethod
    def infer(x, w, b, args):
        conv_args, pool_args = args
        return _core.conv2d_max_pool2d_forward(x, w, b, *conv_args, *pool_args, False, True)[0]

    @staticmethod
    def forward(ctx: Context, x, w, b, args):
        conv_args, pool_args = args
        _conv_saves(ctx, x, w, conv_args)  # Conv2d's saves and ctx.args
        y, idx = _core.conv2d_max_pool2d_forward(x, w, b, *conv_args, *pool_args, True, True)
        stride, padding, dilation, _ = conv_args
        ctx.y_hw = conv2d_output_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
        ctx.relu_y, ctx.indices = y, idx
        ctx.pooled = _pooled_grad_pays(y.shape[-2:], ctx.y_hw)  # as MaxPool2d._record
        return y

    @staticmethod
    def backward(ctx: Context, g):
        g = PooledGrad(relu_backward(g, ctx.relu_y), ctx.indices, ctx.y_hw)
        return Conv2d.backward(ctx, g if ctx.pooled else g.dense())


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x, args):
        """args: (kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override)."""
        x = _batched(ctx, x)
        ctx.args = args
        y = _core.avg_pool2d_forward(x, *args)
        return y[0] if ctx.unbatched else y

    @staticmethod
    def backward(ctx: Context, g):
        if ctx.unbatched:
            g = g[None]
        return _unbatched(ctx, _core.avg_pool2d_backward(g, ctx.x_hw, *ctx.args)), None


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x, output_size):
        x = _batched(ctx, x)
        y = _core.adaptive_avg_pool2d_forward(x, output_size)
        return y[0] if ctx.unbatched else y

    @staticmethod
    def backward(ctx: Context, g):
        if ctx.unbatched:
            g = g[None]
        return _unbatched(ctx, _core.adaptive_avg_pool2d_backward(g, ctx.x_hw)), None


class AdaptiveMaxPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x, output_size, indices_out=None):
        x = _batched(ctx, x)
        y, idx = _core.adaptive_max_pool2d_forward(x, output_size)
        ctx.indices = idx
        if ctx.unbatched:
            y, idx = y[0], idx[0]
        if indices_out is not None:
            indices_out.append(idx)
        return y

    @staticmethod
    def backward(ctx: Context, g):
        if ctx.unbatched:
            g = g[None]
        return _unbatched(ctx, _core.max_pool2d_backward(g, ctx.indices, ctx.x_hw)), None, None
