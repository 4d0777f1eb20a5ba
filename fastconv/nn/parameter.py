"""nn.Parameter: a Tensor that a Module registers as a learnable parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastconv.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and registers itself on a Module.

    Assigning a Parameter to a Module attribute (``self.weight = Parameter(...)``) adds it
    to the module's ``parameters()`` and ``state_dict()``, as ``torch.nn.Parameter``.

    Parameters
    ----------
    data : array-like or Tensor, optional
        Values. An ndarray, or a Tensor's array, is shared without copying (as torch shares
        the storage); other array-likes are converted (Python floats to float32). None gives
        an empty float32 parameter.
    requires_grad : bool
        Default True.

    Raises
    ------
    RuntimeError
        If `requires_grad` is True and the data is not floating point.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(self.data.copy(), self.requires_grad)
        if self.grad is not None:
            result.grad = Tensor(self.grad.data.copy())
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return (Parameter, (self.data, self.requires_grad))
