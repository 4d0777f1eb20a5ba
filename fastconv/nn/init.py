"""Parameter initialisation in place, with torch.nn.init's names, formulas and defaults.

Each function fills ``tensor.data`` in place (the Tensor keeps its identity and dtype; a
plain ndarray is filled directly) and returns the tensor; nothing is recorded for
autograd. Random draws come from
:func:`fastconv.tensor.generator` (seeded by ``fc.manual_seed``), so the distributions
match torch's in kind and parameters but the numbers differ from torch's.
Formulas: https://pytorch.org/docs/stable/nn.init.html; the Xavier bounds are from
Glorot & Bengio (2010), the Kaiming ones from He et al. (2015).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from fastconv.tensor import Tensor, generator

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
               "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain.

    linear, conv*, sigmoid → 1; tanh → 5/3; relu → √2; leaky_relu → √(2 / (1 + slope²))
    with slope = `param` (default 0.01); selu → 3/4.

    Raises
    ------
    ValueError
        For an unknown nonlinearity, or a leaky_relu slope that is not a number.
    """
    if nonlinearity in _LINEAR_FNS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            msg = f"negative_slope {param} not a valid number"
            raise ValueError(msg)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    msg = f"Unsupported nonlinearity {nonlinearity}"
    raise ValueError(msg)


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out): shape[1]·receptive field and shape[0]·receptive field.

    The receptive field is the product of shape[2:] (KH·KW for conv weights). Note that for
    ConvTranspose2d, whose weight is (C_in, C_out/groups, KH, KW), this makes fan_in
    C_out/groups·KH·KW, as in torch.
    """
    shape = tensor.shape
    if len(shape) < 2:
        msg = "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        raise ValueError(msg)
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        msg = f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']"
        raise ValueError(msg)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _array(tensor: Tensor | np.ndarray) -> np.ndarray:
    return tensor if isinstance(tensor, np.ndarray) else tensor.data


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    # Cast into the existing array: the tensor keeps its dtype and any outside references.
    np.copyto(_array(tensor), values, casting="unsafe")
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with draws from U(a, b)."""
    return _fill(tensor, generator().uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from N(mean, std²)."""
    return _fill(tensor, generator().normal(mean, std, tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with `val`."""
    _array(tensor)[...] = val
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """U(−bound, bound) with bound = gain·√(3 / fan) (He et al. 2015).

    gain = calculate_gain(nonlinearity, a); fan = fan_in or fan_out per `mode`. With
    a = √5 (the default init of Conv2d and Linear) bound = 1/√fan_in.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """N(0, std²) with std = gain / √fan (He et al. 2015)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std)
