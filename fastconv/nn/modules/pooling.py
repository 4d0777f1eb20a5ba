"""Pooling modules: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

Arguments are stored as given (an int stays an int), so repr matches torch's.
"""

from __future__ import annotations

from typing import Any

from fastconv import functional as F
from fastconv import kernels
from fastconv.nn.module import Module

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d"]


class MaxPool2d(Module):
    """2-D max pooling, as ``torch.nn.MaxPool2d``.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default: kernel_size.
    padding : int or (int, int)
        Implicit −inf padding (at most half the kernel), default 0.
    dilation : int or (int, int)
        Default 1.
    return_indices : bool
        Also return the flat per-plane argmax indices (for MaxUnpool), default False.
    ceil_mode : bool
        Use ceil instead of floor in the output size, default False.

    Notes
    -----
    H_out = floor((H + 2p − d(k − 1) − 1)/s) + 1 (ceil with ceil_mode).
    """

    def __init__(self, kernel_size: int | tuple, stride: int | tuple | None = None,
                 padding: int | tuple = 0, dilation: int | tuple = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        self._core_args_cache: tuple | None = None

    def forward(self, input: Any):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def _core_args(self) -> tuple:
        """``kernels.max_pool2d_args`` of the current kernel_size, stride, padding, dilation
        and ceil_mode (TypeError/ValueError as max_pool2d's for a bad one).

        Kept until one of the five attributes is rebound (compared by identity, as
        Conv2d._core_args), and only for ints, tuples and bools: nn.Sequential's inference
        path skips ~0.8 us of normalisation per pool.
        """
        k, s, p, d, c = self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        cache = self._core_args_cache
        if (cache is not None and cache[0] is k and cache[1] is s and cache[2] is p
                and cache[3] is d and cache[4] is c):
            return cache[5]
        args = kernels.max_pool2d_args(k, s, p, d, c)
        if all(type(v) in (int, tuple, bool) for v in (k, s, p, d, c)):
            self._core_args_cache = (k, s, p, d, c, args)
        return args

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """2-D average pooling, as ``torch.nn.AvgPool2d``.

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode
        As MaxPool2d (stride defaults to kernel_size).
    count_include_pad : bool
        Count zero padding in the divisor, default True.
    divisor_override : int, optional
        Divide by this instead of the window size.
    """

    def __init__(self, kernel_size: int | tuple, stride: int | tuple | None = None,
                 padding: int | tuple = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Any):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (H_out, W_out), as torch.

    `output_size` is an int, a pair, or a pair with None meaning "keep the input size".
    Bin i along H covers [floor(i·H/H_out), ceil((i + 1)·H/H_out)).
    """

    def __init__(self, output_size: int | tuple) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Any):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size, as ``torch.nn.AdaptiveMaxPool2d``."""

    def __init__(self, output_size: int | tuple, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input: Any):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
