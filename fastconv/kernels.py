"""NumPy-level kernels: Conv2d, ConvTranspose2d and pooling, forward and backward.

These functions take and return :class:`numpy.ndarray` (float32 or float64, NCHW) and do
no autograd; ``fastconv.functional`` builds on them. Argument names, defaults and output
shapes follow ``torch.nn.functional``; the backward functions follow
``torch.nn.grad.conv2d_input`` / ``conv2d_weight``. Inputs of any strides are accepted
(non-contiguous or negative-stride views are copied once); outputs are new C-contiguous
arrays. Validation errors are ``ValueError`` / ``TypeError`` naming the argument.
``conv2d_args``, ``conv_transpose2d_args``, ``max_pool2d_args``, ``avg_pool2d_args`` and
``adaptive_output_size`` do the torch-style argument normalisation alone, so
``fastconv.functional`` can do it once per call and hand the result to the autograd
Functions, which call ``_core`` directly in forward and backward.

The private keyword ``algorithm`` ('auto', 'im2col', 'direct_1x1', 'depthwise', 'direct',
'winograd', 'winograd4', 'ref') forces a convolution algorithm for tests and benchmarks;
'auto' picks by shape and direction (``_core.conv2d_choose_algorithm``). 'direct' builds no im2col matrix:
every kernel tap is a shifted contiguous stream over row-padded stride-phase planes; its
stride-1, ungrouped forward runs by output rows (auto's choice for first layers).
'winograd' is Winograd F(2x2, 3x3) (Lavin & Gray 2016) for 3x3 / stride 1 with dilation 1,
or a dilation that divides the input and output sizes and the top and left padding (run
as the dilation phases side by side: space-to-batch); ValueError otherwise. All three
directions (docs/performance.md). 'winograd4' is Winograd F(4x4, 3x3) for the same layers:
forward and backward_data (its backward_weight is 'winograd''s); 'auto' takes it where it
measured faster than F(2x2, 3x3), its error within the parity bound (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from fastconv import _core
from fastconv._args import IntPair
from fastconv._args import integer as _integer
from fastconv._args import pair as _pair
from fastconv._pooling import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    adaptive_output_size,
    avg_pool2d,
    avg_pool2d_args,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_args,
    max_pool2d_backward,
)

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "adaptive_output_size",
    "avg_pool2d",
    "avg_pool2d_args",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_args",
    "conv2d_backward_bias",
    "conv2d_backward_data",
    "conv2d_backward_weight",
    "conv2d_output_hw",
    "conv2d_output_shape",
    "conv_transpose2d",
    "conv_transpose2d_args",
    "conv_transpose2d_backward_data",
    "conv_transpose2d_backward_weight",
    "gemm",
    "max_pool2d",
    "max_pool2d_args",
    "max_pool2d_backward",
]

Padding = Union[int, Sequence[int], str]


def _conv_padding(
    padding: Padding, kernel_hw: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int], op: str,
) -> tuple[int, int, int, int]:
    """torch-style padding → (top, bottom, left, right).

    'same' pads d·(k−1) in total per axis, the extra element (odd total) at the bottom/right,
    as torch does; it requires stride 1. A 4-sequence is taken in ``F.pad`` order
    (left, right, top, bottom).
    """
    if type(padding) is int or (type(padding) is tuple and len(padding) == 2):
        # The common forms first, by exact type: an ABC isinstance(…, Sequence) test costs
        # a third of this function on every conv call.
        ph, pw = _pair(padding, "padding", op)
        return ph, ph, pw, pw
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                msg = f"{op}: padding='same' is not supported for strided convolutions"
                raise ValueError(msg)
            total_h = dilation[0] * (kernel_hw[0] - 1)
            total_w = dilation[1] * (kernel_hw[1] - 1)
            return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
        msg = f"{op}: invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
        raise ValueError(msg)
    if isinstance(padding, Sequence) and len(padding) == 4:
        left, right, top, bottom = (_integer(v, "padding", op) for v in padding)
        return top, bottom, left, right
    ph, pw = _pair(padding, "padding", op)
    return ph, ph, pw, pw


def _weight_hw(shape: Sequence[int], op: str) -> tuple[int, int]:
    """(KH, KW) of a weight of `shape`; ValueError unless it is 4-D."""
    if len(shape) != 4:
        msg = f"{op}: expected weight to be 4-D (K, C/groups, KH, KW), got shape {tuple(shape)}"
        raise ValueError(msg)
    return int(shape[2]), int(shape[3])


def _shape4(shape: Sequence[int], name: str, op: str) -> list[int]:
    """A full (N, C, H, W) shape as a list of ints; ValueError naming `name` otherwise."""
    if len(shape) != 4:
        msg = f"{op}: {name} must be a 4-tuple (N, C, H, W), got {tuple(shape)!r}"
        raise ValueError(msg)
    return [int(v) for v in shape]


def _weight_shape(shape: Sequence[int], layout: str, op: str) -> tuple[int, ...]:
    """A weight_shape argument: four positive ints."""
    if len(shape) != 4 or any(int(v) < 1 for v in shape):
        msg = f"{op}: weight_shape must be 4 positive sizes {layout}, got {tuple(shape)!r}"
        raise ValueError(msg)
    return tuple(int(v) for v in shape)


def conv2d_args(
    weight_shape: Sequence[int], stride: IntPair = 1, padding: Padding = 0,
    dilation: IntPair = 1, groups: int = 1, op: str = "conv2d",
) -> tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int], int]:
    """conv2d's torch-style hyperparameters in the form ``_core`` takes them.

    Returns ``(stride, (top, bottom, left, right), dilation, groups)``; raises the
    TypeError/ValueError of :func:`conv2d` for a bad argument, naming `op` and the argument.
    ``fastconv.functional.conv2d`` normalises once here and hands the result to the
    autograd Function, whose forward and backward then call ``_core`` directly.
    """
    s, d = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    pad = _conv_padding(padding, _weight_hw(weight_shape, op), s, d, op)
    return s, pad, d, _integer(groups, "groups", op)


def conv_transpose2d_args(
    stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
    dilation: IntPair = 1, op: str = "conv_transpose2d",
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], int]:
    """conv_transpose2d's hyperparameters as ``_core`` takes them (see :func:`conv2d_args`).

    Returns ``(stride, padding, output_padding, dilation, groups)``, each pair as (h, w).
    """
    s, d = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    p = _pair(padding, "padding", op)
    opad = _pair(output_padding, "output_padding", op)
    return s, p, opad, d, _integer(groups, "groups", op)


def conv2d_output_shape(
    input_shape: Sequence[int], weight_shape: Sequence[int], stride: IntPair = 1,
    padding: Padding = 0, dilation: IntPair = 1,
) -> tuple[int, int, int, int]:
    """Output shape (N, K, OH, OW) of :func:`conv2d`; sizes may be < 1 if the kernel does not fit.

    ``OH = floor((H + pad_top + pad_bottom − dilation·(KH − 1) − 1) / stride) + 1``.
    """
    op = "conv2d"
    s, d = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    kh, kw = int(weight_shape[2]), int(weight_shape[3])
    pad = _conv_padding(padding, (kh, kw), s, d, op)
    n, _, h, w = (int(v) for v in input_shape)
    return (n, int(weight_shape[0]), *conv2d_output_hw((h, w), (kh, kw), s, pad, d))


def conv2d_output_hw(
    input_hw: Sequence[int], kernel_hw: Sequence[int], stride: tuple[int, int],
    padding: tuple[int, int, int, int], dilation: tuple[int, int],
) -> tuple[int, int]:
    """(OH, OW) of a convolution with hyperparameters as :func:`conv2d_args` returns them
    (padding (top, bottom, left, right)): ``OH = floor((H + top + bottom − dilation·(KH − 1)
    − 1) / stride) + 1``, as torch computes it. No checks: sizes may be < 1."""
    (h, w), (kh, kw) = input_hw, kernel_hw
    top, bottom, left, right = padding
    return ((h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
            (w + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1)


def gemm(
    a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0,
    beta: float = 0.0, trans_a: bool = False, trans_b: bool = False,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """General matrix multiply with BLAS sgemm/dgemm semantics (row-major).

    Returns ``alpha * op(a) @ op(b) + beta * c`` as a new C-contiguous array; ``c`` is not
    modified. op(a) is ``a.T`` if `trans_a` else `a`, shape (M, K); op(b) likewise (K, N).
    ``beta == 0`` ignores `c` entirely (NaN in `c` does not propagate), as BLAS does.
    `bias` (optional, shape (N,)) is added to every row, not scaled by alpha: Linear's
    ``x @ W.T + b`` in one call.

    Parameters
    ----------
    a, b : ndarray, 2-D, float32 or float64 (one dtype), any strides
    c : ndarray (M, N) of that dtype, optional
    alpha, beta : float
    trans_a, trans_b : bool
    bias : ndarray (N,) of that dtype, optional

    Raises
    ------
    TypeError
        An operand that is not an ndarray, or not float32/float64, or dtypes that differ.
    ValueError
        An operand that is not 2-D (bias: 1-D), inner dimensions that differ, or `c` /
        `bias` of the wrong shape.

    Notes
    -----
    Goto & van de Geijn's packed GEMM ("Anatomy of high-performance matrix
    multiplication", ACM TOMS 2008): packA/packB panels and an MR×NR micro-kernel per ISA;
    M <= 4 streams op(b) unpacked. This Python function passes its arguments to
    ``_core.gemm`` positionally: pybind11 matches keyword arguments by name on every call,
    ~0.4 us, as much as the whole product of a 1×84 by 84×10 Linear.
    """
    return _core.gemm(a, b, c, alpha, beta, trans_a, trans_b, bias)


def conv2d(
    input: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
    stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1, groups: int = 1,
    *, algorithm: str = "auto",
) -> np.ndarray:
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``), NCHW.

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W), float32 or float64
    weight : ndarray, shape (K, C/groups, KH, KW), same dtype
    bias : ndarray, shape (K,), optional
    stride, dilation : int or (int, int), positive
    padding : int, (int, int), 'valid', 'same' (stride 1 only; odd total padding puts the
        extra row/column at the bottom/right, as PyTorch), or (left, right, top, bottom)
    groups : int, divides C and K

    Returns
    -------
    ndarray, shape (N, K, OH, OW), ``OH = floor((H + 2·pad − dilation·(KH − 1) − 1)/stride) + 1``.

    Raises
    ------
    TypeError
        Non-array input, dtype other than float32/float64, or mixed dtypes.
    ValueError
        Wrong rank, channel/group mismatch, non-positive stride/dilation, negative padding,
        output smaller than 1, or sizes whose index arithmetic would overflow 64 bits.

    Notes
    -----
    ``y[n,k] = bias[k] + Σ_c Σ_{kh,kw} x[n, g·C/g + c, oh·s − p + kh·d, ow·s − p + kw·d] · w[k,c,kh,kw]``.
    Algorithm: im2col + GEMM (Chellapilla et al. 2006; BLIS-style GEMM), the input used
    directly as the column matrix for 1×1/stride-1 kernels, a direct kernel by output rows
    for first layers (≤ 4 input channels, stride 1), a direct kernel for depthwise
    convolution (groups == C > 1) and Winograd F(2×2, 3×3) (Lavin & Gray 2016) for 3×3
    stride-1 layers with enough channels (docs/performance.md).
    """
    args = conv2d_args(np.shape(weight), stride, padding, dilation, groups)
    return _core.conv2d_forward(input, weight, bias, *args, algorithm)


def conv2d_backward_data(
    grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int],
    stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1, groups: int = 1,
    *, algorithm: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its input (cuDNN: dgrad).

    Parameters
    ----------
    grad_output : ndarray, shape (N, K, OH, OW)
    weight : ndarray, shape (K, C/groups, KH, KW)
    input_shape : (N, C, H, W) of the forward input
    stride, padding, dilation, groups : as in :func:`conv2d`

    Returns
    -------
    ndarray, shape (N, C, H, W) — as ``torch.nn.grad.conv2d_input``.

    Notes
    -----
    Computed as ``col = Wᵀ · dy`` per image and group followed by col2im (the adjoint of
    im2col, a scatter-add); for 1×1/stride-1 kernels ``dx = Wᵀ · dy`` directly.
    """
    op = "conv2d_backward_data"
    args = conv2d_args(np.shape(weight), stride, padding, dilation, groups, op)
    shape = _shape4(input_shape, "input_shape", op)
    return _core.conv2d_backward_data(grad_output, weight, shape, *args, algorithm)


def conv2d_backward_weight(
    grad_output: np.ndarray, input: np.ndarray, weight_shape: Sequence[int],
    stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1, groups: int = 1,
    *, algorithm: str = "auto", with_bias: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Gradient of :func:`conv2d` with respect to its weight (cuDNN: wgrad), and optionally
    its bias.

    Parameters
    ----------
    grad_output : ndarray, shape (N, K, OH, OW)
    input : ndarray, shape (N, C, H, W), the forward input
    weight_shape : (K, C/groups, KH, KW)
    with_bias : bool
        Also return the bias gradient, bitwise :func:`conv2d_backward_bias`'s result (as
        torch's ``convolution_backward`` with output_mask ``[False, True, True]``). The
        depthwise kernels add each grad_output plane to it while the plane is in cache,
        instead of a second pass over grad_output.

    Returns
    -------
    ndarray, shape (K, C/groups, KH, KW) — as ``torch.nn.grad.conv2d_weight``; with
    ``with_bias``, the tuple (that, ndarray of shape (K,)).

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d` for a bad argument or shape; TypeError if ``with_bias`` is not a
        bool.

    Notes
    -----
    ``dW_g = Σ_n dy_{n,g} · im2col(x_{n,g})ᵀ``. With several threads the images are split
    into one fixed chunk per thread and the partial sums added in thread order, so results
    are bitwise reproducible for a given thread count but may differ in the last bits
    between thread counts. 3x3 / stride-1 layers with enough channels (docs/performance.md)
    use Winograd F(2x2, 3x3) instead (``dU = Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)``, ``dW = Gᵀ dU G``),
    whose result is the same for any thread count.
    """
    op = "conv2d_backward_weight"
    if not isinstance(with_bias, (bool, np.bool_)):
        msg = f"{op}: with_bias must be a bool, got {type(with_bias).__name__}"
        raise TypeError(msg)
    weight_shape = _weight_shape(weight_shape, "(K, C/groups, KH, KW)", op)
    args = conv2d_args(weight_shape, stride, padding, dilation, groups, op)
    out = _core.conv2d_backward_weight(grad_output, input, weight_shape[2:], *args, algorithm,
                                       bool(with_bias))
    dw = out[0] if with_bias else out
    if tuple(dw.shape) != weight_shape:
        msg = (f"{op}: weight_shape {tuple(weight_shape)!r} does not match grad_output and "
               f"input, which give {tuple(dw.shape)}")
        raise ValueError(msg)
    return out


def conv2d_backward_bias(grad_output: np.ndarray) -> np.ndarray:
    """Gradient of a convolution's bias: ``grad_output`` (N, K, OH, OW) summed to shape (K,)."""
    return _core.conv2d_backward_bias(grad_output)


def conv_transpose2d(
    input: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
    stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
    dilation: IntPair = 1, *, algorithm: str = "auto",
) -> np.ndarray:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_in, C_out/groups, KH, KW)
    bias : ndarray, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or pair; output_padding must be
        smaller than stride or dilation
    groups : int

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out),
    ``H_out = (H − 1)·stride − 2·padding + dilation·(KH − 1) + output_padding + 1``.

    Notes
    -----
    The forward pass is exactly Conv2d's backward_data (Dumoulin & Visin 2016, "A guide to
    convolution arithmetic"), run by the same GEMM + col2im kernels.
    """
    args = conv_transpose2d_args(stride, padding, output_padding, groups, dilation)
    return _core.conv_transpose2d_forward(input, weight, bias, *args, algorithm)


def conv_transpose2d_backward_data(
    grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int],
    stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
    dilation: IntPair = 1, *, algorithm: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv_transpose2d` w.r.t. its input: a Conv2d forward of grad_output.

    Returns an array of ``input_shape`` (N, C_in, H, W).
    """
    op = "conv_transpose2d_backward_data"
    args = conv_transpose2d_args(stride, padding, output_padding, groups, dilation, op)
    shape = _shape4(input_shape, "input_shape", op)
    return _core.conv_transpose2d_backward_data(grad_output, weight, shape, *args, algorithm)


def conv_transpose2d_backward_weight(
    grad_output: np.ndarray, input: np.ndarray, weight_shape: Sequence[int],
    stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
    dilation: IntPair = 1, *, algorithm: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`conv_transpose2d` w.r.t. its weight (C_in, C_out/groups, KH, KW).

    Computed as Conv2d's backward_weight with input and output gradient exchanged.
    """
    op = "conv_transpose2d_backward_weight"
    weight_shape = _weight_shape(weight_shape, "(C_in, C_out/groups, KH, KW)", op)
    args = conv_transpose2d_args(stride, padding, output_padding, groups, dilation, op)
    dw = _core.conv_transpose2d_backward_weight(grad_output, input, weight_shape[2:], *args,
                                                algorithm)
    if tuple(dw.shape) != weight_shape:
        msg = (f"{op}: weight_shape {tuple(weight_shape)!r} does not match grad_output and "
               f"input, which give {tuple(dw.shape)}")
        raise ValueError(msg)
    return dw
