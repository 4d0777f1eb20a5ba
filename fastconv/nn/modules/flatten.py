"""Flatten: merge dimensions start_dim..end_dim into one."""

from __future__ import annotations

from typing import Any

from fastconv.nn.module import Module
from fastconv.tensor import Tensor

__all__ = ["Flatten"]


class Flatten(Module):
    """Flatten dims start_dim..end_dim (default 1..−1: (N, C, H, W) → (N, C·H·W))."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> Tensor:
        if not isinstance(input, Tensor):
            input = Tensor(input)
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
