"""Functional ops with ``torch.nn.functional`` signatures, built on fastconv's Functions.

Every function accepts :class:`fastconv.Tensor` or :class:`numpy.ndarray` for each tensor
argument and returns a Tensor (a pair with ``return_indices=True``); argument names,
defaults, output shapes and semantics are PyTorch's (https://pytorch.org/docs/stable/nn.functional.html)
unless a docstring says otherwise. Convolution, pooling and linear run the C++ kernels
(``fastconv.kernels``, ``fastconv.gemm``) forward and backward; this module only
normalises arguments, so that the errors read like PyTorch's and name the argument.
Validation done by the kernels (dtypes, shapes, channel/group agreement, output size) is
not repeated here: their ``TypeError``/``ValueError`` come through unchanged.

Usage: ``import fastconv.functional as F``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from fastconv import kernels as _kernels
from fastconv._functions import activation as _act
from fastconv._functions import basic as _basic
from fastconv._functions import conv as _conv
from fastconv._functions import loss as _loss
from fastconv._functions import misc as _misc
from fastconv._functions import norm as _norm
from fastconv._functions import pool as _pool
from fastconv.tensor import Tensor, generator

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "conv_transpose2d",
    "cross_entropy",
    "dropout",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

TensorLike = Union[Tensor, np.ndarray]
IntPair = Union[int, Sequence[int]]
_REDUCTIONS = ("none", "mean", "sum")


# ---- argument helpers ---------------------------------------------------------------------

def _arg(value: Any, name: str, op: str, optional: bool = False):
    """`value` if it is a Tensor or ndarray (or None when optional); TypeError naming it."""
    if isinstance(value, (Tensor, np.ndarray)) or (optional and value is None):
        return value
    kind = "a fastconv.Tensor, a numpy.ndarray or None" if optional else \
        "a fastconv.Tensor or a numpy.ndarray"
    msg = f"{op}: {name} must be {kind}, got {type(value).__name__}"
    raise TypeError(msg)


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _ndim_3_or_4(input: TensorLike, op: str) -> None:
    if input.ndim not in (3, 4):
        msg = (f"{op}: expected input to be 3-D (C, H, W; unbatched) or 4-D (N, C, H, W), "
               f"got shape {tuple(input.shape)}")
        raise ValueError(msg)


def _dim(dim: Any, ndim: int, name: str, op: str) -> int:
    """A dimension index in [-ndim, ndim) as a non-negative int (0-d tensors allow 0/-1)."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        msg = f"{op}: {name} must be an int, got {type(dim).__name__}"
        raise TypeError(msg)
    n = max(ndim, 1)
    if not -n <= dim < n:
        msg = f"{op}: {name}={dim} is out of range for a tensor of {ndim} dimensions"
        raise ValueError(msg)
    return int(dim) % n


def _reduction(reduction: str, size_average, reduce, op: str) -> str:
    """reduction, or torch's legacy rule when the deprecated size_average/reduce are given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use "
                      f"reduction='{reduction}' instead.", UserWarning, stacklevel=3)
    if reduction not in _REDUCTIONS:
        msg = f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}"
        raise ValueError(msg)
    return reduction


def _real(value: Any, name: str, op: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{op}: {name} must be a real number, got {type(value).__name__}"
        raise TypeError(msg)
    return float(value)


# ---- convolution ----------------------------------------------------------------------------

def conv2d(
    input: TensorLike, weight: TensorLike, bias: TensorLike | None = None,
    stride: IntPair = 1, padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) over an NCHW input, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C_in, H, W) or unbatched (C_in, H, W)
        float32 or float64.
    weight : Tensor or ndarray, shape (C_out, C_in / groups, KH, KW), dtype of input
    bias : Tensor or ndarray, shape (C_out,), optional
    stride : int or (int, int), default 1
    padding : int, (int, int), 'valid' or 'same', default 0
        Implicit zero padding on both sides. 'valid' is 0; 'same' (stride 1 only) pads
        ``dilation·(K − 1)`` in total per axis, the odd element at the bottom/right.
    dilation : int or (int, int), default 1
    groups : int, default 1
        C_in and C_out must both be divisible by groups.

    Returns
    -------
    Tensor, shape (N, C_out, H_out, W_out) (or (C_out, H_out, W_out) for unbatched input)
        ``H_out = floor((H + 2·padding[0] − dilation[0]·(KH − 1) − 1) / stride[0]) + 1``,
        likewise W_out.

    Raises
    ------
    TypeError
        input/weight/bias not a Tensor or ndarray; dtype other than float32/float64 or
        mixed dtypes; stride/padding/dilation of the wrong type (from the kernels).
    ValueError
        input not 3-D or 4-D; a bad padding string, 'same' with stride > 1, channel or
        group mismatch, non-positive stride/dilation, output smaller than 1 (kernels).

    Notes
    -----
    ``out[n, k] = bias[k] + Σ_c Σ_{i,j} input[n, g·C_in/groups + c, s·h − p + d·i, s·w − p + d·j]
    · weight[k, c, i, j]``. Algorithm: im2col + GEMM (Chellapilla et al. 2006), a direct
    1×1 path, direct kernels for first layers and depthwise layers, and Winograd F(2×2, 3×3)
    (Lavin & Gray 2016), chosen by shape in ``fastconv.kernels.conv2d``. The
    backward runs backward_data only when input needs a gradient and backward_weight only
    when weight does. Source: https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html.
    """
    _conv_operands(input, weight, bias, "conv2d")
    args = _kernels.conv2d_args(weight.shape, stride, padding, dilation, groups)
    return _conv.Conv2d.apply(input, weight, bias, args)


def _conv_operands(input: TensorLike, weight: TensorLike, bias: TensorLike | None,
                   op: str) -> None:
    """The TypeError/ValueError of conv2d/conv_transpose2d for the operands' types and the
    input's rank (their shapes are checked by the kernels); nn.Conv2d calls it too."""
    _ndim_3_or_4(_arg(input, "input", op), op)
    _arg(weight, "weight", op)
    _arg(bias, "bias", op, optional=True)


def conv_transpose2d(
    input: TensorLike, weight: TensorLike, bias: TensorLike | None = None,
    stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
    dilation: IntPair = 1,
) -> Tensor:
    """2-D transposed convolution ("deconvolution"), as ``torch.nn.functional.conv_transpose2d``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C_in, H, W) or unbatched (C_in, H, W)
    weight : Tensor or ndarray, shape (C_in, C_out / groups, KH, KW), dtype of input
    bias : Tensor or ndarray, shape (C_out,), optional
    stride, padding, dilation : int or (int, int), defaults 1, 0, 1
        ``padding`` removes ``dilation·(K − 1) − padding`` rows of implicit padding.
    output_padding : int or (int, int), default 0
        Extra size on the bottom/right; must be smaller than stride or dilation.
    groups : int, default 1

    Returns
    -------
    Tensor, shape (N, C_out, H_out, W_out) (or unbatched)
        ``H_out = (H − 1)·stride[0] − 2·padding[0] + dilation[0]·(KH − 1)
        + output_padding[0] + 1``, likewise W_out.

    Raises
    ------
    TypeError
        Arguments not Tensor/ndarray; dtype problems (kernels).
    ValueError
        input not 3-D or 4-D; shape, group or output_padding violations (kernels).

    Notes
    -----
    The adjoint of :func:`conv2d`: its forward is Conv2d's backward_data (GEMM + col2im),
    its input gradient a Conv2d forward (Dumoulin & Visin 2016, "A guide to convolution
    arithmetic"). Source: https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose2d.html.
    """
    _conv_operands(input, weight, bias, "conv_transpose2d")
    args = _kernels.conv_transpose2d_args(stride, padding, output_padding, groups, dilation)
    return _conv.ConvTranspose2d.apply(input, weight, bias, args)


# ---- pooling --------------------------------------------------------------------------------

def max_pool2d(
    input: TensorLike, kernel_size: IntPair, stride: IntPair | None = None,
    padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C, H, W) or unbatched (C, H, W), float32/float64
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default (None): kernel_size.
    padding : int or (int, int), default 0
        Implicit −inf padding on both sides, at most kernel_size // 2.
    dilation : int or (int, int), default 1
    ceil_mode : bool, default False
        Use ceil instead of floor in the output size.
    return_indices : bool, default False
        Also return the argmax indices.

    Returns
    -------
    Tensor, shape (N, C, H_out, W_out)
        ``H_out = floor((H + 2·padding − dilation·(k − 1) − 1) / stride) + 1`` (ceil with
        ceil_mode, less one if the last window would start in the bottom padding).
    indices : Tensor of int64, same shape (only with return_indices)
        Flat position ``h·W + w`` of each maximum within its (n, c) plane, as torch.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray (here) or not float32/float64 (kernels).
    ValueError
        input not 3-D or 4-D; kernel/stride/dilation < 1, padding > kernel_size // 2,
        output < 1 (kernels).

    Notes
    -----
    Backward scatters the output gradient through the saved indices (the input is not
    kept). Ties keep the first maximum in row-major order; NaN propagates. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html.
    """
    args = _kernels.max_pool2d_args(kernel_size, stride, padding, dilation, ceil_mode)
    holder: list | None = [] if return_indices else None
    try:
        out = _pool.MaxPool2d.apply(input, args, holder)
    except Exception:
        # The kernel validates the input before touching it; these checks only name the
        # argument in max_pool2d's terms, so they run after a failure (~0.2 us saved on
        # every call). If none applies, the kernel's error stands.
        _ndim_3_or_4(_arg(input, "input", "max_pool2d"), "max_pool2d")
        raise
    if return_indices:
        return out, Tensor._from_op(holder[0], None)
    return out


def _relu_max_pool2d(input: Tensor, kernel_size: IntPair, stride: IntPair | None = None,
                     padding: IntPair = 0, dilation: IntPair = 1,
                     ceil_mode: bool = False) -> Tensor:
    """``max_pool2d(relu(input), ...)`` for callers that never see ``relu(input)`` itself
    (nn.Sequential's ReLU followed by MaxPool2d): the ReLU of the pooled input, the same
    values without ReLU's pass over the whole map (``_pool.MaxPool2d.apply_relu_first``).
    input: a Tensor. Errors as max_pool2d's."""
    args = _kernels.max_pool2d_args(kernel_size, stride, padding, dilation, ceil_mode)
    try:
        return _pool.MaxPool2d.apply_relu_first(input, args)
    except Exception:
        _ndim_3_or_4(_arg(input, "input", "max_pool2d"), "max_pool2d")
        raise


def _conv2d_relu_max_pool2d(input: Tensor, weight: Tensor, bias: Tensor | None,
                            conv_args: tuple, kernel_size: IntPair,
                            stride: IntPair | None = None, padding: IntPair = 0,
                            dilation: IntPair = 1, ceil_mode: bool = False) -> Tensor | None:
    """``max_pool2d(relu(conv2d(input, weight, bias, *conv_args)), ...)`` for callers that
    never see the conv's or the ReLU's output (nn.Sequential's Conv2d, ReLU, MaxPool2d): one
    kernel call that pools the conv output where it is computed
    (``_pool.Conv2dReLUMaxPool2d``). None, computing nothing, for a dilated pool (its
    windows can be empty: -inf from max_pool2d(relu(y)), 0 from relu(max_pool2d(y))).
    input: a Tensor holding a 4-D NumPy array; conv_args as ``kernels.conv2d_args``
    returns them. Errors as the kernels raise them."""
    pool_args = _kernels.max_pool2d_args(kernel_size, stride, padding, dilation, ceil_mode)
    if pool_args[3] != (1, 1):
        return None
    return _pool.Conv2dReLUMaxPool2d.apply(input, weight, bias, (conv_args, pool_args))


def avg_pool2d(
    input: TensorLike, kernel_size: IntPair, stride: IntPair | None = None,
    padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C, H, W) or unbatched (C, H, W), float32/float64
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default (None): kernel_size.
    padding : int or (int, int), default 0
        Implicit zero padding, at most kernel_size // 2.
    ceil_mode : bool, default False
    count_include_pad : bool, default True
        Count the zero padding in the divisor.
    divisor_override : int, optional
        Non-zero divisor used instead of the window size.

    Returns
    -------
    Tensor, shape (N, C, H_out, W_out)
        ``H_out = floor((H + 2·padding − k) / stride) + 1`` (ceil with ceil_mode, less one
        if the last window would start in the bottom padding).

    Raises
    ------
    TypeError
        input not a Tensor/ndarray; wrong argument types (kernels).
    ValueError
        input not 3-D or 4-D; kernel/stride < 1, padding > kernel_size // 2,
        divisor_override == 0, output < 1 (kernels).

    Notes
    -----
    PyTorch's CPU semantics for windows clipped by ceil_mode. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html.
    """
    op = "avg_pool2d"
    _ndim_3_or_4(_arg(input, "input", op), op)
    args = _kernels.avg_pool2d_args(kernel_size, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override)
    return _pool.AvgPool2d.apply(input, args)


def adaptive_avg_pool2d(input: TensorLike, output_size: Any) -> Tensor:
    """Adaptive 2-D average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C, H, W) or unbatched (C, H, W), float32/float64
    output_size : int or (int or None, int or None)
        Target (H_out, W_out); None keeps that input size.

    Returns
    -------
    Tensor, shape (N, C, H_out, W_out)
        Output (i, j) averages rows ``floor(i·H/H_out) .. ceil((i+1)·H/H_out) − 1`` and
        the analogous columns.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray; output_size of the wrong type (kernels).
    ValueError
        input not 3-D or 4-D; output_size < 1 (kernels; torch allows 0, an empty result).

    Notes
    -----
    Source: https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveAvgPool2d.html.
    """
    op = "adaptive_avg_pool2d"
    _ndim_3_or_4(_arg(input, "input", op), op)
    size = _kernels.adaptive_output_size(output_size, _raw(input), op)
    return _pool.AdaptiveAvgPool2d.apply(input, size)


def adaptive_max_pool2d(
    input: TensorLike, output_size: Any, return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Adaptive 2-D max pooling, as ``torch.nn.functional.adaptive_max_pool2d``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C, H, W) or unbatched (C, H, W), float32/float64
    output_size : int or (int or None, int or None)
    return_indices : bool, default False
        Also return the int64 flat argmax indices (``h·W + w`` per plane).

    Returns
    -------
    Tensor, shape (N, C, H_out, W_out); with return_indices also the indices Tensor.
        Windows are those of :func:`adaptive_avg_pool2d`.

    Raises
    ------
    TypeError, ValueError
        As :func:`adaptive_avg_pool2d`.

    Notes
    -----
    Source: https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveMaxPool2d.html.
    """
    op = "adaptive_max_pool2d"
    _ndim_3_or_4(_arg(input, "input", op), op)
    size = _kernels.adaptive_output_size(output_size, _raw(input), op)
    holder: list | None = [] if return_indices else None
    out = _pool.AdaptiveMaxPool2d.apply(input, size, holder)
    if return_indices:
        return out, Tensor._from_op(holder[0], None)
    return out


# ---- linear and padding ---------------------------------------------------------------------

def linear(input: TensorLike, weight: TensorLike, bias: TensorLike | None = None) -> Tensor:
    """Affine map ``y = input · weightᵀ + bias``, as ``torch.nn.functional.linear``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (*, in_features), float32 or float64
        Any number of leading dimensions (also none: a single vector).
    weight : Tensor or ndarray, shape (out_features, in_features), dtype of input
    bias : Tensor or ndarray, shape (out_features,), optional, dtype of input

    Returns
    -------
    Tensor, shape (*, out_features)

    Raises
    ------
    TypeError
        Arguments not Tensor/ndarray; bias dtype differs from weight's (here); input and
        weight dtypes differ or are not float32/float64 (GEMM).
    ValueError
        weight not 2-D, bias not of shape (out_features,) (here); in_features mismatch
        (GEMM).

    Notes
    -----
    The leading dimensions are flattened to one batch axis M; forward is one GEMM
    ``Y(M×out) = X·Wᵀ`` (``trans_b``), backward ``dW = dYᵀ·X`` (``trans_a``) and
    ``dX = dY·W``, each only if that input needs a gradient; ``db = Σ_M dY``.
    Source: https://pytorch.org/docs/stable/generated/torch.nn.Linear.html.
    """
    try:
        return _misc.Linear.apply(input, weight, bias)
    except Exception:
        # The GEMM binding validates every operand before touching memory; these checks
        # only name the argument in linear's terms, so they run after a failure (~0.8 us
        # saved on every call). If none applies, the binding's error stands.
        _linear_operands(input, weight, bias)
        raise


def _linear_relu(input: TensorLike, weight: TensorLike, bias: TensorLike | None = None) -> Tensor:
    """``relu(linear(input, weight, bias))`` for callers that never see the linear output
    (nn.Sequential's Linear followed by ReLU): one GEMM call with a ReLU epilogue
    (``_misc.LinearReLU``), bitwise the two ops. Arguments and errors as linear's."""
    try:
        return _misc.LinearReLU.apply(input, weight, bias)
    except Exception:
        _linear_operands(input, weight, bias)
        raise


def _linear_operands(input: TensorLike, weight: TensorLike, bias: TensorLike | None) -> None:
    """The TypeError/ValueError of linear for its operands' types and shapes."""
    op = "linear"
    _arg(input, "input", op)
    w = _raw(_arg(weight, "weight", op))
    if w.ndim != 2:
        msg = f"linear: weight must be 2-D (out_features, in_features), got shape {w.shape}"
        raise ValueError(msg)
    if _arg(bias, "bias", op, optional=True) is not None:
        b = _raw(bias)
        if b.shape != w.shape[:1]:
            msg = f"linear: bias must have shape ({w.shape[0]},), got {b.shape}"
            raise ValueError(msg)
        if b.dtype != w.dtype:
            msg = f"linear: bias dtype {b.dtype} differs from weight dtype {w.dtype}"
            raise TypeError(msg)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: TensorLike, pad: Sequence[int], mode: str = "constant",
        value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dimensions, as ``torch.nn.functional.pad``.

    Parameters
    ----------
    input : Tensor or ndarray
        Any shape for 'constant'; for the other modes (N, C, H, W) or (C, H, W) with a
        4-element pad, (N, C, W) or (C, W) with a 2-element pad, (N, C, D, H, W) or
        (C, D, H, W) with a 6-element pad.
    pad : sequence of ints, even length ≤ 2·input.ndim
        ``(left, right, top, bottom, front, back)``: last dimension first. Negative
        values crop.
    mode : {'constant', 'reflect', 'replicate', 'circular'}, default 'constant'
        'reflect' mirrors without repeating the edge, 'replicate' repeats the edge,
        'circular' wraps around.
    value : float, optional
        Fill value for 'constant' (default 0); not allowed with the other modes.

    Returns
    -------
    Tensor, the dtype of input; padded dimension i has size
    ``input.shape[i] + before_i + after_i``.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray; pad not a sequence of ints.
    ValueError
        Odd pad length or more than 2·ndim entries; an unknown mode; value given for a
        non-constant mode; a pad length the mode does not support for this ndim;
        reflect padding ≥ the padded dimension; circular padding > the dimension (after
        cropping by any negative padding);
        replicate padding of an empty dimension; an output size < 0.

    Notes
    -----
    The rules are torch's, but torch raises RuntimeError/NotImplementedError where this
    raises ValueError. Source: https://pytorch.org/docs/stable/generated/torch.nn.functional.pad.html
    and torch.nn.ReflectionPad2d / ReplicationPad2d / CircularPad2d.
    """
    op = "pad"
    _arg(input, "input", op)
    if isinstance(pad, (str, bytes)) or not isinstance(pad, Sequence) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pad):
        msg = f"pad: pad must be a tuple of ints, got {pad!r}"
        raise TypeError(msg)
    ndim = input.ndim
    if len(pad) % 2:
        msg = f"pad: padding length must be divisible by 2, got pad of length {len(pad)}"
        raise ValueError(msg)
    if len(pad) > 2 * ndim:
        msg = (f"pad: padding length should be at most two times the input dimension, but got "
               f"pad of length {len(pad)} for input of dimension {ndim}")
        raise ValueError(msg)
    if mode not in _PAD_MODES:
        msg = f"pad: unrecognised padding mode {mode!r}; expected one of {_PAD_MODES}"
        raise ValueError(msg)
    k = len(pad) // 2
    pairs = [(0, 0)] * (ndim - k) + [(int(pad[2 * i]), int(pad[2 * i + 1]))
                                     for i in reversed(range(k))]
    shape = input.shape
    if mode == "constant":
        value = 0.0 if value is None else _real(value, "value", op)
        for axis, (b, a) in enumerate(pairs):
            if shape[axis] + b + a < 0:
                msg = (f"pad: pad {tuple(pad)} gives a negative size "
                       f"{shape[axis] + b + a} in dimension {axis} of input {tuple(shape)}")
                raise ValueError(msg)
    else:
        if value is not None:
            msg = f'pad: padding mode "{mode}" does not take in a value argument'
            raise ValueError(msg)
        if k not in (1, 2, 3) or ndim not in (k + 1, k + 2):
            msg = (f"pad: padding size {len(pad)} is not supported for {ndim}-D input in mode "
                   f"{mode!r}; supported: 2 for 2-D/3-D, 4 for 3-D/4-D, 6 for 4-D/5-D input")
            raise ValueError(msg)
        for axis in range(ndim - k, ndim):
            n, (b, a) = shape[axis], pairs[axis]
            if mode == "reflect" and (b >= n or a >= n):
                msg = (f"pad: padding size should be less than the corresponding input "
                       f"dimension in reflect mode, but got padding ({b}, {a}) at dimension "
                       f"{axis} of input {tuple(shape)}")
                raise ValueError(msg)
            kept = n - max(-b, 0) - max(-a, 0)  # circular wraps around the cropped part
            if mode == "circular" and (b > kept or a > kept):
                msg = (f"pad: padding ({b}, {a}) at dimension {axis} of input {tuple(shape)} "
                       f"wraps around more than once in circular mode")
                raise ValueError(msg)
            if mode == "replicate" and n == 0:
                msg = f"pad: cannot replicate-pad the empty dimension {axis} of input {tuple(shape)}"
                raise ValueError(msg)
            if n + b + a < 0:
                msg = (f"pad: pad {tuple(pad)} gives a negative size {n + b + a} in "
                       f"dimension {axis} of input {tuple(shape)}")
                raise ValueError(msg)
    return _misc.Pad.apply(input, pads=tuple(pairs), mode=mode, value=value)


# ---- activations ----------------------------------------------------------------------------

def relu(input: TensorLike, inplace: bool = False) -> Tensor:  # noqa: ARG001
    """Rectified linear unit ``max(input, 0)``, as ``torch.nn.functional.relu``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape
    inplace : bool, default False
        Accepted for torch compatibility; the result is always a new tensor (the input
        is not overwritten), which gives the same values and gradients.

    Returns
    -------
    Tensor, shape and dtype of input.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray.

    Notes
    -----
    The gradient at 0 is 0, as torch. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.ReLU.html.
    """
    return _act.ReLU.apply(_arg(input, "input", "relu"))


def leaky_relu(input: TensorLike, negative_slope: float = 0.01,
               inplace: bool = False) -> Tensor:  # noqa: ARG001
    """``input`` where positive, ``negative_slope · input`` elsewhere, as torch's leaky_relu.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype
    negative_slope : float, default 0.01
    inplace : bool, default False
        Accepted for torch compatibility; the result is always a new tensor.

    Returns
    -------
    Tensor, shape and dtype of input.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray; negative_slope not a real number.

    Notes
    -----
    The gradient at 0 is negative_slope (torch: ``x > 0 ? g : g·slope``). Source:
    https://pytorch.org/docs/stable/generated/torch.nn.LeakyReLU.html.
    """
    op = "leaky_relu"
    slope = _real(negative_slope, "negative_slope", op)
    return _act.LeakyReLU.apply(_arg(input, "input", op), negative_slope=slope)


def sigmoid(input: TensorLike) -> Tensor:
    """Logistic function ``1 / (1 + exp(−input))``, as ``torch.sigmoid``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype

    Returns
    -------
    Tensor, shape and dtype of input, values in [0, 1].

    Raises
    ------
    TypeError
        input not a Tensor/ndarray.

    Notes
    -----
    Evaluated as ``1/(1 + e)`` for x ≥ 0 and ``e/(1 + e)`` for x < 0 with ``e = exp(−|x|)``,
    so exp never overflows. Backward: ``dy·σ·(1 − σ)``. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.Sigmoid.html.
    """
    return _act.Sigmoid.apply(_arg(input, "input", "sigmoid"))


def tanh(input: TensorLike) -> Tensor:
    """Hyperbolic tangent, as ``torch.tanh``; backward ``dy·(1 − tanh²)``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype

    Returns
    -------
    Tensor, shape and dtype of input.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray.

    Notes
    -----
    Source: https://pytorch.org/docs/stable/generated/torch.nn.Tanh.html.
    """
    return _act.Tanh.apply(_arg(input, "input", "tanh"))


def _softmax_args(input, dim, dtype, op: str, stacklevel: int):
    _arg(input, "input", op)
    if dim is None:
        # torch's legacy implicit choice (_get_softmax_dim), with its deprecation warning
        dim = 0 if input.ndim in (0, 1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the "
                      "call to include dim=X as an argument.", UserWarning,
                      stacklevel=stacklevel)
    dim = _dim(dim, input.ndim, "dim", op)
    if dtype is not None and np.dtype(dtype) != input.dtype:
        input = _basic.Cast.apply(input, np.dtype(dtype))
    return input, dim


def softmax(input: TensorLike, dim: int | None = None, _stacklevel: int = 3,
            dtype: Any = None) -> Tensor:
    """``exp(x_i) / Σ_j exp(x_j)`` along ``dim``, as ``torch.nn.functional.softmax``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype
    dim : int
        The dimension that sums to 1. None selects torch's deprecated implicit choice
        (0 for 0-, 1- and 3-D input, else 1) and warns.
    _stacklevel : int
        Warning stack level (torch compatibility).
    dtype : numpy dtype, optional
        Cast the input to this dtype first (differentiably).

    Returns
    -------
    Tensor, shape of input.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray; dim not an int.
    ValueError
        dim out of range.

    Notes
    -----
    The maximum along dim is subtracted before exp (no overflow). Backward:
    ``y ⊙ (dy − Σ_dim dy ⊙ y)``. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html.
    """
    input, dim = _softmax_args(input, dim, dtype, "softmax", _stacklevel)
    return _act.Softmax.apply(input, dim=dim)


def log_softmax(input: TensorLike, dim: int | None = None, _stacklevel: int = 3,
                dtype: Any = None) -> Tensor:
    """``x_i − log Σ_j exp(x_j)`` along ``dim``, as ``torch.nn.functional.log_softmax``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype
    dim : int
        As :func:`softmax`.
    _stacklevel : int
        Warning stack level (torch compatibility).
    dtype : numpy dtype, optional
        Cast the input to this dtype first (differentiably).

    Returns
    -------
    Tensor, shape of input.

    Raises
    ------
    TypeError, ValueError
        As :func:`softmax`.

    Notes
    -----
    Numerically stable log-sum-exp: ``z = x − max``, ``z − log Σ exp z``. Backward:
    ``dy − softmax ⊙ Σ_dim dy``. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.LogSoftmax.html.
    """
    input, dim = _softmax_args(input, dim, dtype, "log_softmax", _stacklevel)
    return _act.LogSoftmax.apply(input, dim=dim)


def dropout(input: TensorLike, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:  # noqa: ARG001
    """Zero each element with probability ``p`` and scale the rest by ``1/(1 − p)``.

    As ``torch.nn.functional.dropout``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype
    p : float in [0, 1], default 0.5
        Probability of an element to be zeroed.
    training : bool, default True
        When False (or p == 0) the input is returned unchanged (a Tensor wrapping an
        ndarray input without copying).
    inplace : bool, default False
        Accepted for torch compatibility; the result is always a new tensor.

    Returns
    -------
    Tensor, shape and dtype of input.

    Raises
    ------
    TypeError
        input not a Tensor/ndarray; p not a real number.
    ValueError
        p outside [0, 1].

    Notes
    -----
    The Bernoulli(1 − p) mask comes from :func:`fastconv.tensor.generator` (seeded by
    ``fastconv.manual_seed``), so it differs from torch's stream; the backward multiplies by
    the same scaled mask. p == 1 gives zeros. Source: Srivastava et al. 2014, "Dropout";
    https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html.
    """
    op = "dropout"
    _arg(input, "input", op)
    p = _real(p, "p", op)
    if not 0.0 <= p <= 1.0:
        msg = f"dropout: dropout probability has to be between 0 and 1, but got p={p}"
        raise ValueError(msg)
    if not training or p == 0.0 or _raw(input).size == 0:
        return input if isinstance(input, Tensor) else Tensor._from_op(input, None)
    return _misc.Dropout.apply(input, p=p, generator=generator())


# ---- losses ---------------------------------------------------------------------------------

def _class_target(input, target, op: str) -> None:
    """Shape rules of a class-index target: (N, d1, ...) for input (N, C, d1, ...), () for (C,)."""
    expected = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if target.shape != expected:
        msg = (f"{op}: expected target of shape {expected} for input of shape "
               f"{tuple(input.shape)}, got {tuple(target.shape)}")
        raise ValueError(msg)


def _class_weight(weight, input, op: str):
    """The raw class-weight vector (C,) in input's dtype, or None."""
    if _arg(weight, "weight", op, optional=True) is None:
        return None
    w = _raw(weight)
    n_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    if w.shape != (n_classes,):
        msg = f"{op}: weight must have shape ({n_classes},) (one per class), got {w.shape}"
        raise ValueError(msg)
    return w if w.dtype == input.dtype else w.astype(input.dtype)


def cross_entropy(
    input: TensorLike, target: TensorLike, weight: TensorLike | None = None,
    size_average: bool | None = None, ignore_index: int = -100,
    reduce: bool | None = None, reduction: str = "mean", label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C), (N, C, d1, ...) or unbatched (C,)
        Unnormalised logits, float32 or float64.
    target : Tensor or ndarray
        Class indices (integer dtype) of shape (N,), (N, d1, ...) or (); or class
        probabilities (input's dtype and shape).
    weight : Tensor or ndarray, shape (C,), optional
        Per-class rescaling weight (not differentiated).
    size_average, reduce : bool, optional
        Deprecated torch arguments; when given they select the reduction (and warn).
    ignore_index : int, default -100
        Class-index targets equal to this contribute neither loss nor gradient and are
        left out of the 'mean' denominator.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    label_smoothing : float in [0, 1], default 0.0
        The target becomes ``(1 − ε)·onehot + ε/C``.

    Returns
    -------
    Tensor: a scalar for 'mean'/'sum'; for 'none' the per-element losses, of the target's
    shape (class indices) or the input's shape without C (probabilities).

    Raises
    ------
    TypeError
        input/target/weight not a Tensor/ndarray; probability target of another dtype.
    ValueError
        target shape mismatch; a class index outside [0, C) that is not ignore_index;
        weight not of shape (C,); unknown reduction; label_smoothing outside [0, 1].

    Notes
    -----
    ``ℓ_n = −Σ_c a_{n,c} · log softmax(x_n)_c`` with ``a = (1 − ε)·w_{y_n}·onehot(y_n) + (ε/C)·w``
    for class indices (0 for ignored elements) and ``a = w ⊙ ((1 − ε)·t + ε/C)`` for
    probabilities. 'mean' divides by ``Σ_n w_{y_n}`` over non-ignored elements (class
    indices; NaN if all are ignored) or by the number of elements (probabilities). One
    fused Function computes forward and the closed-form backward
    ``dx = (softmax(x)·Σ_c a_c − a)·upstream``. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html
    (Szegedy et al. 2016 for label smoothing).
    """
    op = "cross_entropy"
    _arg(input, "input", op)
    _arg(target, "target", op)
    reduction = _reduction(reduction, size_average, reduce, op)
    eps = _real(label_smoothing, "label_smoothing", op)
    if not 0.0 <= eps <= 1.0:
        msg = f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {eps}"
        raise ValueError(msg)
    if input.ndim == 0:
        msg = "cross_entropy: input must have at least one dimension (C,)"
        raise ValueError(msg)
    w = _class_weight(weight, input, op)
    if np.issubdtype(target.dtype, np.integer):
        _class_target(input, target, op)
    elif np.issubdtype(target.dtype, np.floating):
        if target.shape != input.shape:
            msg = (f"cross_entropy: a probability target must have the input's shape "
                   f"{tuple(input.shape)}, got {tuple(target.shape)}")
            raise ValueError(msg)
        if target.dtype != input.dtype:
            msg = (f"cross_entropy: a probability target must have the input's dtype "
                   f"{input.dtype}, got {target.dtype}")
            raise TypeError(msg)
    else:
        msg = f"cross_entropy: target must hold class indices (integers) or probabilities, got dtype {target.dtype}"
        raise TypeError(msg)
    return _loss.CrossEntropy.apply(input, target, weight=w, ignore_index=int(ignore_index),
                                    reduction=reduction, label_smoothing=eps)


def nll_loss(
    input: TensorLike, target: TensorLike, weight: TensorLike | None = None,
    size_average: bool | None = None, ignore_index: int = -100,
    reduce: bool | None = None, reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class indices, as ``torch.nn.functional.nll_loss``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C), (N, C, d1, ...) or unbatched (C,)
        Log-probabilities (e.g. from :func:`log_softmax`).
    target : Tensor or ndarray of integers, shape (N,), (N, d1, ...) or ()
    weight : Tensor or ndarray, shape (C,), optional
    size_average, reduce : bool, optional
        Deprecated torch arguments (see :func:`cross_entropy`).
    ignore_index : int, default -100
    reduction : {'mean', 'sum', 'none'}, default 'mean'

    Returns
    -------
    Tensor: a scalar, or for 'none' the losses with the target's shape.

    Raises
    ------
    TypeError
        Arguments not Tensor/ndarray; target not of an integer dtype.
    ValueError
        As :func:`cross_entropy` for class indices.

    Notes
    -----
    ``ℓ_n = −w_{y_n} · x_{n, y_n}``; 'mean' divides by ``Σ_n w_{y_n}`` over non-ignored
    elements. Source: https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html.
    """
    op = "nll_loss"
    _arg(input, "input", op)
    _arg(target, "target", op)
    reduction = _reduction(reduction, size_average, reduce, op)
    if not np.issubdtype(target.dtype, np.integer):
        msg = f"nll_loss: target must hold class indices (an integer dtype), got {target.dtype}"
        raise TypeError(msg)
    if input.ndim == 0:
        msg = "nll_loss: input must have at least one dimension (C,)"
        raise ValueError(msg)
    _class_target(input, target, op)
    w = _class_weight(weight, input, op)
    return _loss.NLLLoss.apply(input, target, weight=w, ignore_index=int(ignore_index),
                               reduction=reduction)


def mse_loss(
    input: TensorLike, target: TensorLike, size_average: bool | None = None,
    reduce: bool | None = None, reduction: str = "mean", weight: TensorLike | None = None,
) -> Tensor:
    """Mean squared error ``(input − target)²``, reduced, as ``torch.nn.functional.mse_loss``.

    Parameters
    ----------
    input : Tensor or ndarray, any shape, floating dtype
    target : Tensor or ndarray, broadcastable with input (a UserWarning is issued when the
        shapes differ, as torch)
    size_average, reduce : bool, optional
        Deprecated torch arguments (see :func:`cross_entropy`).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    weight : Tensor or ndarray, shape of input, optional
        Per-element weights (torch ≥ 2.6); 'mean' then divides by ``Σ weight``.

    Returns
    -------
    Tensor: a scalar, or for 'none' the squared errors with the broadcast shape.

    Raises
    ------
    TypeError
        Arguments not Tensor/ndarray.
    ValueError
        Unknown reduction; weight's shape differs from input's; shapes that do not
        broadcast (NumPy).

    Notes
    -----
    Both input and target (and weight) receive gradients, summed back over broadcast axes:
    ``d/dinput = 2·(input − target)·w·upstream``. Source:
    https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html.
    """
    op = "mse_loss"
    _arg(input, "input", op)
    _arg(target, "target", op)
    reduction = _reduction(reduction, size_average, reduce, op)
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the "
                      f"input size ({tuple(input.shape)}). This will likely lead to incorrect "
                      "results due to broadcasting. Please ensure they have the same size.",
                      UserWarning, stacklevel=2)
    if _arg(weight, "weight", op, optional=True) is not None and weight.shape != input.shape:
        msg = f"mse_loss: weight must have the input's shape {tuple(input.shape)}, got {tuple(weight.shape)}"
        raise ValueError(msg)
    return _loss.MSELoss.apply(input, target, weight, reduction=reduction)


# ---- normalisation --------------------------------------------------------------------------

def batch_norm(
    input: TensorLike, running_mean: TensorLike | None, running_var: TensorLike | None,
    weight: TensorLike | None = None, bias: TensorLike | None = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over channel axis 1, as ``torch.nn.functional.batch_norm``.

    Parameters
    ----------
    input : Tensor or ndarray, shape (N, C) or (N, C, *), floating dtype
    running_mean, running_var : Tensor or ndarray, shape (C,), or None
        Running statistics. In training they are updated in place (when given):
        ``r ← (1 − momentum)·r + momentum·s`` with the batch mean and the unbiased batch
        variance. Required in evaluation, where they normalise the input.
    weight, bias : Tensor or ndarray, shape (C,), optional
        Affine scale γ and shift β, dtype of input.
    training : bool, default False
        Normalise with batch statistics (biased variance) instead of the running ones.
    momentum : float, default 0.1
    eps : float, default 1e-5
        Added to the variance.

    Returns
    -------
    Tensor, shape and dtype of input: ``(x − mean) / sqrt(var + eps) · γ + β``.

    Raises
    ------
    TypeError
        Arguments not Tensor/ndarray (or None where allowed); momentum/eps not real
        numbers; weight/bias dtype differing from input's.
    ValueError
        input with fewer than 2 dimensions; parameter or statistic not of shape (C,);
        running statistics missing in evaluation; training with one value per channel.

    Notes
    -----
    The running statistics are not differentiated (as torch). Source: Ioffe & Szegedy 2015,
    "Batch Normalization"; https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html.
    """
    op = "batch_norm"
    _arg(input, "input", op)
    if input.ndim < 2:
        msg = f"batch_norm: expected input of shape (N, C, *), got {tuple(input.shape)}"
        raise ValueError(msg)
    c = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if _arg(value, name, op, optional=True) is not None and value.shape != (c,):
            msg = f"batch_norm: {name} must have shape ({c},), got {tuple(value.shape)}"
            raise ValueError(msg)
        if name in ("weight", "bias") and value is not None and value.dtype != input.dtype:
            msg = f"batch_norm: {name} dtype {value.dtype} differs from input dtype {input.dtype}"
            raise TypeError(msg)
    momentum = _real(momentum, "momentum", op)
    eps = _real(eps, "eps", op)
    training = bool(training)
    if training:
        if _raw(input).size // max(c, 1) <= 1:
            msg = (f"batch_norm: expected more than 1 value per channel when training, got "
                   f"input size {tuple(input.shape)}")
            raise ValueError(msg)
    elif running_mean is None or running_var is None:
        msg = "batch_norm: running_mean and running_var must be given in evaluation mode"
        raise ValueError(msg)
    return _norm.BatchNorm.apply(input, weight, bias, running_mean=_raw(running_mean),
                                 running_var=_raw(running_var), training=training,
                                 momentum=momentum, eps=eps)
