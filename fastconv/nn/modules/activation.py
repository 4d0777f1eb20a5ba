"""Activation modules: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax.

``inplace=True`` is accepted for signature compatibility and shown in repr, but the result
is computed out of place (a new Tensor; the input is not modified), since fastconv's
autograd has no in-place ops.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastconv import functional as F
from fastconv.nn.module import Module
from fastconv.tensor import Tensor

__all__ = ["LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class ReLU(Module):
    """max(0, x) elementwise."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Any) -> Tensor:
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x ≥ 0 else negative_slope·x (default slope 0.01)."""

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Any) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(−x)) elementwise."""

    def forward(self, input: Any) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, input: Any) -> Tensor:
        return F.tanh(input)


def _softmax_dim(name: str, ndim: int) -> int:
    """torch's legacy choice when dim is None: 0 for 0-, 1- and 3-D input, else 1 (warns)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x_i) / Σ_j exp(x_j) along `dim`."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Any) -> Tensor:
        dim = self.dim
        if dim is None:
            dim = _softmax_dim("softmax", _ndim(input))
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along `dim`, computed stably."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Any) -> Tensor:
        dim = self.dim
        if dim is None:
            dim = _softmax_dim("log_softmax", _ndim(input))
        return F.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def _ndim(x: Any) -> int:
    return x.ndim if hasattr(x, "ndim") else len(getattr(x, "shape", ()))
