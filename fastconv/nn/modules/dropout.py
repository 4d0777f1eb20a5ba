"""Dropout: zero elements with probability p in training mode (inverted dropout)."""

from __future__ import annotations

from typing import Any

from fastconv import functional as F
from fastconv.nn.module import Module
from fastconv.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode, zero each element with probability p and scale the rest by 1/(1−p).

    In eval mode it is the identity. The mask comes from ``fastconv.tensor.generator()``.
    ``inplace=True`` is accepted but computed out of place.

    Raises
    ------
    ValueError
        If p is not in [0, 1].
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            msg = f"dropout probability has to be between 0 and 1, but got {p}"
            raise ValueError(msg)
        self.p = p
        self.inplace = inplace

    def forward(self, input: Any) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
