"""BatchNorm2d: per-channel normalisation with learnable affine and running statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastconv import functional as F
from fastconv.nn import init
from fastconv.nn.module import Module, registered
from fastconv.nn.modules._utils import _param_dtype
from fastconv.nn.parameter import Parameter
from fastconv.tensor import Tensor

__all__ = ["BatchNorm2d"]


class BatchNorm2d(Module):
    """Batch normalisation over (N, C, H, W) per channel, as ``torch.nn.BatchNorm2d``.

    y = (x − E[x]) / √(Var[x] + eps) · weight + bias, with batch statistics over (N, H, W)
    in training mode and the running estimates in eval mode.

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance, default 1e-5.
    momentum : float or None
        running = (1 − momentum)·running + momentum·batch statistic, default 0.1. None
        gives the cumulative average (momentum 1/num_batches_tracked), as torch. The
        running variance uses the unbiased batch variance.
    affine : bool
        Learnable weight (init ones) and bias (init zeros), default True.
    bias : bool, keyword-only
        With affine, whether the shift β exists (as in torch 2.13), default True.
    track_running_stats : bool
        Keep running_mean (zeros), running_var (ones) and num_batches_tracked (int64 0)
        buffers, default True. Without them, batch statistics are used in eval mode too.
    device, dtype
        'cpu' only; parameter/buffer dtype (default float32).

    Raises
    ------
    ValueError
        In forward, for input that is not 4-D.
    """

    weight = registered()
    bias = registered()
    running_mean = registered("_buffers")
    running_var = registered("_buffers")
    num_batches_tracked = registered("_buffers")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        dt = _param_dtype(device, dtype)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.empty((num_features,), dtype=dt))
            if bias:
                self.bias = Parameter(np.empty((num_features,), dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros((num_features,), dtype=dt)))
            self.register_buffer("running_var", Tensor(np.ones((num_features,), dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _fill_missing_state(self, state_dict: dict, prefix: str) -> None:
        # torch does not report a missing num_batches_tracked (checkpoints older than the
        # buffer, or any plain dict without version metadata): the current value is kept.
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict:
            state_dict[key] = self.num_batches_tracked.data.copy()

    def forward(self, input: Any) -> Tensor:
        ndim = len(np.shape(input.data if isinstance(input, Tensor) else input))
        if ndim != 4:
            msg = f"expected 4D input (got {ndim}D input)"
            raise ValueError(msg)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input,
                            self.running_mean if track else None,
                            self.running_var if track else None,
                            self.weight, self.bias, batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")
