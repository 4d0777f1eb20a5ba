"""2-D pooling on NumPy arrays: max, average, adaptive; forward and backward.

Torch-style argument handling (int or pair, ``stride=None`` meaning ``kernel_size``,
``None`` entries in an adaptive ``output_size``) happens here; validation and the kernels
are in the compiled core (``fastconv._core``), whose errors name the op and argument.
Semantics are those of PyTorch's CPU kernels (``aten/src/ATen/native/cpu/MaxPoolKernel.cpp``,
``AvgPoolKernel.cpp``, ``AdaptiveAvgPoolKernel.cpp``, ``AdaptiveMaxPoolKernel.cpp``).
No autograd: the ``*_backward`` functions map an output gradient to an input gradient.
Re-exported by :mod:`fastconv.kernels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from fastconv import _core
from fastconv._args import IntPair
from fastconv._args import is_int as _is_int
from fastconv._args import pair as _pair

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "adaptive_output_size",
    "avg_pool2d",
    "avg_pool2d_args",
    "avg_pool2d_backward",
    "max_pool2d",
    "max_pool2d_args",
    "max_pool2d_backward",
]

OptionalIntPair = Union[int, None, Sequence[Optional[int]]]


def _stride(stride: IntPair | None, kernel: tuple[int, int], op: str) -> tuple[int, int]:
    """torch's rule: stride omitted (None or an empty sequence) means stride = kernel_size."""
    if stride is None:
        return kernel
    if type(stride) is int:  # before the Sequence ABC check, which costs ~0.4 us a call
        return stride, stride
    if isinstance(stride, Sequence) and len(stride) == 0:
        return kernel
    return _pair(stride, "stride", op)


def _divisor(divisor_override: int | None, op: str) -> int | None:
    if divisor_override is None or _is_int(divisor_override):
        return None if divisor_override is None else int(divisor_override)
    msg = f"{op}: divisor_override must be an int or None, got {type(divisor_override).__name__}"
    raise TypeError(msg)


def _input_hw(input_shape: Sequence[int], grad_output: np.ndarray, op: str) -> tuple[int, int]:
    """(H, W) of a full (N, C, H, W) input_shape whose N, C must match grad_output's."""
    # A tuple of 4 Python ints (x.shape) is recognised by exact type first: the generic
    # checks (the Sequence ABC, a generator per test) took 2.9 us, twice the kernel call of
    # a batch-1 LeNet-5 pool backward.
    if type(input_shape) is tuple and len(input_shape) == 4:
        n, c, h, w = input_shape
        plain = type(n) is int and type(c) is int and type(h) is int and type(w) is int
    else:
        plain = False
    if not plain:
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
            msg = f"{op}: input_shape must be a sequence (N, C, H, W), got {input_shape!r}"
            raise TypeError(msg)
        if len(input_shape) != 4 or not all(_is_int(v) for v in input_shape):
            msg = f"{op}: input_shape must be 4 ints (N, C, H, W), got {tuple(input_shape)!r}"
            raise ValueError(msg)
        n, c, h, w = (int(v) for v in input_shape)
    if (
        isinstance(grad_output, np.ndarray)
        and grad_output.ndim == 4
        and (n, c) != grad_output.shape[:2]
    ):
        msg = (
            f"{op}: input_shape {tuple(input_shape)!r} and grad_output shape "
            f"{grad_output.shape} disagree in (N, C)"
        )
        raise ValueError(msg)
    return h, w


def adaptive_output_size(output_size: OptionalIntPair, x: np.ndarray, op: str) -> tuple[int, int]:
    """output_size as (OH, OW); a None entry keeps that input dimension (torch)."""
    if output_size is None or _is_int(output_size):
        items = [output_size, output_size]
    elif isinstance(output_size, Sequence) and not isinstance(output_size, str):
        items = list(output_size)
        if len(items) == 1:
            items = items * 2
    else:
        msg = (
            f"{op}: output_size must be an int or a tuple of two ints or None, "
            f"got {type(output_size).__name__}"
        )
        raise TypeError(msg)
    if len(items) != 2 or not all(v is None or _is_int(v) for v in items):
        msg = (
            f"{op}: output_size must be an int or a tuple of two ints or None, "
            f"got {output_size!r}"
        )
        raise ValueError(msg)
    if any(v is None for v in items):
        # Without a valid x the core raises on x itself; (1, 1) is only a placeholder.
        hw = x.shape[-2:] if isinstance(x, np.ndarray) and x.ndim >= 2 else (1, 1)
        items = [hw[i] if v is None else v for i, v in enumerate(items)]
    return int(items[0]), int(items[1])


def max_pool2d_args(
    kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
    dilation: IntPair = 1, ceil_mode: bool = False, op: str = "max_pool2d",
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], bool]:
    """max_pool2d's torch-style arguments in the form ``_core`` takes them.

    Returns ``(kernel_size, stride, padding, dilation, ceil_mode)``, each pair as (h, w);
    raises the TypeError/ValueError of :func:`max_pool2d` for an argument of the wrong
    type. ``fastconv.functional`` normalises once here and hands the result to the autograd
    Function, whose forward and backward then call ``_core`` directly.
    """
    k = _pair(kernel_size, "kernel_size", op)
    s = _stride(stride, k, op)
    return k, s, _pair(padding, "padding", op), _pair(dilation, "dilation", op), bool(ceil_mode)


def avg_pool2d_args(
    kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
    ceil_mode: bool = False, count_include_pad: bool = True,
    divisor_override: int | None = None, op: str = "avg_pool2d",
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], bool, bool, int | None]:
    """avg_pool2d's arguments as ``_core`` takes them (see :func:`max_pool2d_args`).

    Returns ``(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)``.
    """
    k = _pair(kernel_size, "kernel_size", op)
    s = _stride(stride, k, op)
    return (k, s, _pair(padding, "padding", op), bool(ceil_mode), bool(count_include_pad),
            _divisor(divisor_override, op))


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling with argmax indices, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
        Any strides (non-contiguous views are copied once).
    kernel_size : int or (kh, kw)
        Window size, >= 1.
    stride : int or (sh, sw), optional
        Window step, >= 1. Default (None or ``()``): ``kernel_size``.
    padding : int or (ph, pw), default 0
        Implicit -inf padding on both sides, ``0 <= p <= k // 2``.
    dilation : int or (dh, dw), default 1
        Spacing between window taps, >= 1.
    ceil_mode : bool, default False
        Round the output size up instead of down.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW), dtype of x
        ``OH = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1`` (``ceil`` with
        ``ceil_mode``, then reduced by one if the last window would start at or after
        ``H + ph``); likewise OW.
    indices : ndarray, shape (N, C, OH, OW), int64
        Flat position ``h * W + w`` of each maximum within its (n, c) plane.

    Raises
    ------
    TypeError
        x is not a NumPy array of dtype float32/float64; an argument is not an int/pair.
    ValueError
        x is not 4-D or has an empty C/H/W dimension; kernel_size, stride or dilation < 1;
        padding < 0 or > kernel_size // 2; the output size would be < 1.

    Notes
    -----
    PyTorch's CPU semantics (``MaxPoolKernel.cpp``): taps are scanned row by row and the
    first maximum wins (``val > maxval``); a NaN always wins, so NaN propagates and the
    index of the last NaN in the window is returned. Windows are clipped to the input.
    See https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html.
    """
    args = max_pool2d_args(kernel_size, stride, padding, dilation, ceil_mode)
    return _core.max_pool2d_forward(x, *args)


def max_pool2d_backward(
    grad_output: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW), float32 or float64
    indices : ndarray, shape (N, C, OH, OW), int64
        As returned by :func:`max_pool2d` (or :func:`adaptive_max_pool2d`).
    input_shape : (N, C, H, W)
        Shape of the forward input.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W), dtype of grad_output
        Zero except ``grad_input[n, c].flat[indices[n, c, i, j]] += grad_output[n, c, i, j]``
        (overlapping windows add up).

    Raises
    ------
    TypeError
        grad_output not float32/float64, indices not int64.
    ValueError
        Shapes disagree, or an index lies outside ``[0, H*W)``.

    Notes
    -----
    As PyTorch's ``max_pool2d_with_indices_backward`` on CPU, without needing the input.
    """
    op = "max_pool2d_backward"
    hw = _input_hw(input_shape, grad_output, op)
    return _core.max_pool2d_backward(grad_output, indices, hw)


def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size : int or (kh, kw)
        Window size, >= 1.
    stride : int or (sh, sw), optional
        Default (None or ``()``): ``kernel_size``.
    padding : int or (ph, pw), default 0
        Implicit zero padding, ``0 <= p <= k // 2``.
    ceil_mode : bool, default False
        Round the output size up instead of down.
    count_include_pad : bool, default True
        Count padded positions in the divisor.
    divisor_override : int, optional
        Non-zero divisor used instead of the window size.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW), dtype of x
        ``OH = floor((H + 2*ph - kh) / sh) + 1`` (``ceil`` with ``ceil_mode``, then
        reduced by one if the last window would start at or after ``H + ph``).

    Raises
    ------
    TypeError
        x not a float32/float64 NumPy array; an argument of the wrong type.
    ValueError
        x not 4-D or with an empty C/H/W dimension; kernel_size or stride < 1; padding < 0
        or > kernel_size // 2; divisor_override == 0; output size < 1.

    Notes
    -----
    PyTorch's CPU semantics (``AvgPoolKernel.cpp``): the window is first bounded by the
    padded input (its area is the count_include_pad divisor), then clipped to the input
    (the taps summed, and the divisor otherwise). With ``ceil_mode`` a window hanging past
    the padding is therefore divided by less than ``kh * kw``.
    See https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html.
    """
    args = avg_pool2d_args(kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override)
    return _core.avg_pool2d_forward(x, *args)


def avg_pool2d_backward(
    grad_output: np.ndarray,
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW), float32 or float64
        OH, OW must be the forward output size for ``input_shape`` and these arguments.
    input_shape : (N, C, H, W)
        Shape of the forward input.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As passed to :func:`avg_pool2d`.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W), dtype of grad_output
        Each output's gradient divided by its divisor, added over its clipped window.

    Raises
    ------
    TypeError, ValueError
        As :func:`avg_pool2d`; also when grad_output's shape is not the forward output's.

    Notes
    -----
    As PyTorch's CPU ``avg_pool2d_backward`` (``cpu_avg_pool_backward``).
    """
    op = "avg_pool2d_backward"
    hw = _input_hw(input_shape, grad_output, op)
    args = avg_pool2d_args(kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override, op)
    return _core.avg_pool2d_backward(grad_output, hw, *args)


def adaptive_avg_pool2d(x: np.ndarray, output_size: OptionalIntPair) -> np.ndarray:
    """Adaptive 2-D average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    output_size : int or (OH, OW)
        Output size >= 1 (may exceed the input); a None entry keeps that input size.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW), dtype of x
        ``y[n, c, i, j]`` is the mean of rows ``[floor(i*H/OH), ceil((i+1)*H/OH))`` and
        columns ``[floor(j*W/OW), ceil((j+1)*W/OW))`` of ``x[n, c]``.

    Raises
    ------
    TypeError
        x not a float32/float64 NumPy array; output_size not an int/pair.
    ValueError
        x not 4-D or with an empty C/H/W dimension; output_size < 1.

    Notes
    -----
    Windows are PyTorch's ``start_index``/``end_index`` (``AdaptivePooling.h``); they
    overlap when the sizes do not divide. PyTorch also allows an output size of 0 (an empty
    result); here it is an error.
    """
    op = "adaptive_avg_pool2d"
    return _core.adaptive_avg_pool2d_forward(x, adaptive_output_size(output_size, x, op))


def adaptive_avg_pool2d_backward(
    grad_output: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW), float32 or float64
    input_shape : (N, C, H, W)
        Shape of the forward input.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W), dtype of grad_output
        Each output's gradient divided by its window area, added over its window.

    Raises
    ------
    TypeError, ValueError
        As :func:`adaptive_avg_pool2d`, for grad_output and input_shape.

    Notes
    -----
    As PyTorch's CPU ``adaptive_avg_pool2d_backward``.
    """
    op = "adaptive_avg_pool2d_backward"
    return _core.adaptive_avg_pool2d_backward(grad_output, _input_hw(input_shape, grad_output, op))


def adaptive_max_pool2d(
    x: np.ndarray, output_size: OptionalIntPair
) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive 2-D max pooling with indices, as ``torch.nn.functional.adaptive_max_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    output_size : int or (OH, OW)
        Output size >= 1 (may exceed the input); a None entry keeps that input size.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW), dtype of x
        Maximum over the windows of :func:`adaptive_avg_pool2d`.
    indices : ndarray, shape (N, C, OH, OW), int64
        Flat position ``h * W + w`` of each maximum within its plane.

    Raises
    ------
    TypeError, ValueError
        As :func:`adaptive_avg_pool2d`.

    Notes
    -----
    PyTorch's CPU semantics (``AdaptiveMaxPoolKernel.cpp``): first maximum in row-major
    scan order; NaN always wins (the last NaN's index is returned).
    """
    op = "adaptive_max_pool2d"
    y, indices = _core.adaptive_max_pool2d_forward(x, adaptive_output_size(output_size, x, op))
    return y, indices


def adaptive_max_pool2d_backward(
    grad_output: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool2d`: the same scatter as :func:`max_pool2d_backward`.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW), float32 or float64
    indices : ndarray, shape (N, C, OH, OW), int64
        As returned by :func:`adaptive_max_pool2d`.
    input_shape : (N, C, H, W)

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W), dtype of grad_output

    Raises
    ------
    TypeError, ValueError
        As :func:`max_pool2d_backward`.

    Notes
    -----
    As PyTorch's CPU ``adaptive_max_pool2d_backward``.
    """
    op = "adaptive_max_pool2d_backward"
    hw = _input_hw(input_shape, grad_output, op)
    return _core.max_pool2d_backward(grad_output, indices, hw)
