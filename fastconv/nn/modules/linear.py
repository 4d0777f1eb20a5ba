"""Linear and Identity modules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastconv import functional as F
from fastconv.nn import init
from fastconv.nn.module import Module, registered
from fastconv.nn.modules._utils import _param_dtype
from fastconv.nn.parameter import Parameter
from fastconv.tensor import Tensor

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input unchanged; constructor arguments are accepted and ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ARG002
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """y = x·Wᵀ + b over the last dimension, as ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Default True.
    device, dtype
        'cpu' only; parameter dtype (default float32).

    Attributes
    ----------
    weight : Parameter, (out_features, in_features), init U(±1/√in_features)
        (kaiming_uniform_ with a = √5)
    bias : Parameter or None, (out_features,), init U(±1/√in_features)

    Notes
    -----
    Input (*, in_features) → output (*, out_features).
    """

    weight = registered()
    bias = registered()

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        dt = _param_dtype(device, dtype)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Any) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
