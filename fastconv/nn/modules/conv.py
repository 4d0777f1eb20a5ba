"""Conv2d and ConvTranspose2d modules (torch.nn signatures, parameters and init)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastconv import functional as F
from fastconv import kernels
from fastconv._functions import conv as _conv
from fastconv.nn import init
from fastconv.nn.module import Module, registered
from fastconv.nn.modules._utils import _pair, _param_dtype
from fastconv.nn.parameter import Parameter
from fastconv.tensor import Tensor

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared constructor checks, parameters, init and repr of Conv2d / ConvTranspose2d."""

    weight = registered()
    bias = registered()

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple,
                 stride: tuple, padding: tuple | str, dilation: tuple, transposed: bool,
                 output_padding: tuple, groups: int, bias: bool, padding_mode: str,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if groups <= 0:
            msg = "groups must be a positive integer"
            raise ValueError(msg)
        if in_channels % groups != 0:
            msg = "in_channels must be divisible by groups"
            raise ValueError(msg)
        if out_channels % groups != 0:
            msg = "out_channels must be divisible by groups"
            raise ValueError(msg)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                msg = f"Invalid padding string {padding!r}, should be one of {{'same', 'valid'}}"
                raise ValueError(msg)
            if padding == "same" and any(s != 1 for s in stride):
                msg = "padding='same' is not supported for strided convolutions"
                raise ValueError(msg)
        if padding_mode not in _PADDING_MODES:
            msg = ("padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, "
                   f"but got padding_mode='{padding_mode}'")
            raise ValueError(msg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = output_padding
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad's argument for the non-'zeros' modes: (left, right, top, bottom).
        if isinstance(padding, str):
            pads = [0, 0] * len(kernel_size)
            if padding == "same":
                for i, (d, k) in enumerate(zip(reversed(dilation), reversed(kernel_size))):
                    total = d * (k - 1)
                    pads[2 * i], pads[2 * i + 1] = total // 2, total - total // 2
            self._reversed_padding_repeated_twice = tuple(pads)
        else:
            self._reversed_padding_repeated_twice = tuple(
                p for p in reversed(padding) for _ in range(2))
        dt = _param_dtype(device, dtype)
        if transposed:
            shape = (in_channels, out_channels // groups, *kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: weight kaiming_uniform_(a=√5), bias U(±1/√fan_in).

        Both bounds come to 1/√fan_in, with fan_in = weight.shape[1]·KH·KW (C_in/groups·KH·KW
        for Conv2d, C_out/groups·KH·KW for ConvTranspose2d, as torch).
        """
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in != 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) input, as ``torch.nn.Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
        C_in and C_out; both divisible by `groups`.
    kernel_size, stride, dilation : int or (int, int)
        Default stride 1, dilation 1.
    padding : int, (int, int), 'same' or 'valid'
        Implicit padding on both sides (default 0). 'same' needs stride 1.
    groups : int
        Default 1; groups = C_in is a depthwise convolution.
    bias : bool
        Default True.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        'zeros' pads inside the kernel; the others pad the input with ``F.pad`` and then
        convolve with padding 0, as torch.
    device, dtype
        'cpu' only; parameter dtype (default float32).

    Attributes
    ----------
    weight : Parameter, (C_out, C_in/groups, KH, KW), init U(±1/√fan_in)
    bias : Parameter or None, (C_out,), init U(±1/√fan_in); fan_in = C_in/groups·KH·KW

    Notes
    -----
    Output (N, C_out, H_out, W_out) with H_out = floor((H + 2p − d(KH − 1) − 1)/s) + 1.
    Raises ValueError for groups ≤ 0, channels not divisible by groups, an unknown padding
    string or padding mode, or padding='same' with a stride other than 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple,
                 stride: int | tuple = 1, padding: int | tuple | str = 0,
                 dilation: int | tuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, _pair(kernel_size), _pair(stride),
                         padding if isinstance(padding, str) else _pair(padding),
                         _pair(dilation), False, _pair(0), groups, bias, padding_mode,
                         device, dtype)
        self._core_args_cache: tuple | None = None

    def _conv_forward(self, input: Any, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(padded, weight, bias, self.stride, _pair(0), self.dilation,
                            self.groups)
        # F.conv2d's Function, with the hyperparameters normalised once. The kernels
        # validate every operand; F.conv2d's checks, which name the argument, run only
        # after a failure (~0.5 us saved on every call). If none applies, the error stands.
        try:
            return _conv.Conv2d.apply(input, weight, bias, self._core_args(weight))
        except Exception:
            F._conv_operands(input, weight, bias, "conv2d")
            raise

    def _core_args(self, weight: Tensor) -> tuple:
        """``kernels.conv2d_args`` of the current stride, padding, dilation and groups.

        Kept until one of the four attributes is rebound (compared by identity: a new value
        is a new object), so assigning ``conv.padding`` still takes effect on the next call
        while the normal forward skips ~0.8 us of normalisation. Only immutable values
        (ints, tuples) are kept, and never a padding string, whose 'same' depends on the
        weight's size.
        """
        s, p, d, g = self.stride, self.padding, self.dilation, self.groups
        c = self._core_args_cache
        if c is not None and c[0] is s and c[1] is p and c[2] is d and c[3] is g:
            return c[4]
        args = kernels.conv2d_args(weight.shape, s, p, d, g)
        if all(type(v) in (int, tuple) for v in (s, p, d, g)):
            self._core_args_cache = (s, p, d, g, args)
        return args

    def forward(self, input: Any) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the adjoint of Conv2d), as ``torch.nn.ConvTranspose2d``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, groups, bias, dilation
        As Conv2d, except that padding is an int or pair only.
    output_padding : int or (int, int)
        Extra rows/columns added to one side of the output (default 0); less than the
        stride or the dilation.
    padding_mode : 'zeros'
        The only mode torch supports here (ValueError otherwise).

    Attributes
    ----------
    weight : Parameter, (C_in, C_out/groups, KH, KW), init U(±1/√fan_in) with
        fan_in = C_out/groups·KH·KW (weight dim 1, as torch computes it)
    bias : Parameter or None, (C_out,)

    Notes
    -----
    H_out = (H − 1)·s − 2p + d(KH − 1) + output_padding + 1. ``forward(input, output_size)``
    chooses output_padding to reach `output_size` (ValueError if out of range), as torch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple,
                 stride: int | tuple = 1, padding: int | tuple = 0,
                 output_padding: int | tuple = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        if padding_mode != "zeros":
            msg = f'Only "zeros" padding mode is supported for {type(self).__name__}'
            raise ValueError(msg)
        if isinstance(padding, str):
            msg = f"{type(self).__name__} does not support string padding, got {padding!r}"
            raise TypeError(msg)
        super().__init__(in_channels, out_channels, _pair(kernel_size), _pair(stride),
                         _pair(padding), _pair(dilation), True, _pair(output_padding),
                         groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input: Any, output_size: Any) -> tuple:
        if output_size is None:
            return self.output_padding
        ndim = len(np.shape(input.data if isinstance(input, Tensor) else input))
        non_spatial = 2 if ndim == 4 else 1
        output_size = tuple(int(s) for s in output_size)
        if len(output_size) == non_spatial + 2:
            output_size = output_size[non_spatial:]
        if len(output_size) != 2:
            msg = (f"ConvTranspose2D: for {ndim}D input, output_size must have 2 or "
                   f"{non_spatial + 2} elements (got {len(output_size)})")
            raise ValueError(msg)
        in_sizes = np.shape(input.data if isinstance(input, Tensor) else input)[non_spatial:]
        min_sizes = [(in_sizes[d] - 1) * self.stride[d] - 2 * self.padding[d]
                     + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(2)]
        max_sizes = [min_sizes[d] + self.stride[d] - 1 for d in range(2)]
        for d in range(2):
            if not min_sizes[d] <= output_size[d] <= max_sizes[d]:
                msg = (f"requested an output size of {list(output_size)}, but valid sizes "
                       f"range from {min_sizes} to {max_sizes} (for an input of "
                       f"{list(in_sizes)})")
                raise ValueError(msg)
        return tuple(output_size[d] - min_sizes[d] for d in range(2))

    def forward(self, input: Any, output_size: Any = None) -> Tensor:
        output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)
