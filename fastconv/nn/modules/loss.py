"""Loss modules: CrossEntropyLoss, NLLLoss, MSELoss."""

from __future__ import annotations

import warnings
from typing import Any

from fastconv import functional as F
from fastconv.nn.module import Module
from fastconv.tensor import Tensor

__all__ = ["CrossEntropyLoss", "MSELoss", "NLLLoss"]


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """torch's mapping of the deprecated size_average/reduce flags to `reduction`."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  "reduction='{}' instead.".format(
                      "none" if not reduce else "mean" if size_average else "sum"),
                  stacklevel=3)
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("none", "mean", "sum"):
            msg = f"{reduction} is not a valid value for reduction"
            raise ValueError(msg)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        # A buffer, as torch: saved in state_dict and cast by .double().
        if weight is not None and not isinstance(weight, Tensor):
            weight = Tensor(weight)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy between logits (N, C) or (N, C, d1, ...) and class-index targets.

    Parameters
    ----------
    weight : array-like (C,), optional
        Per-class rescaling (a buffer, saved in state_dict when given).
    ignore_index : int
        Targets equal to it contribute nothing (and are left out of the mean), default −100.
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weights of the non-ignored targets, as torch.
    label_smoothing : float
        In [0, 1]; the target becomes (1 − ε)·one_hot + ε/C, default 0.
    size_average, reduce
        Deprecated torch flags, mapped to `reduction` with a warning.
    """

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log likelihood of log-probabilities (N, C) at class-index targets."""

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error (input − target)², reduced by `reduction` ('mean' default)."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)
