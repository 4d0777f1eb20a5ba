"""Small helpers shared by the module definitions (argument normalisation, factory kwargs)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastconv._array import check_device

__all__ = ["_pair", "_param_dtype"]


def _pair(x: Any) -> tuple:
    """(x, x) for a scalar, tuple(x) for a sequence (torch.nn.modules.utils._pair)."""
    if isinstance(x, (tuple, list)):
        return tuple(x)
    return (x, x)


def _param_dtype(device: Any, dtype: Any) -> np.dtype:
    """The parameter dtype from torch-style factory kwargs (default float32, 'cpu' only)."""
    if device is not None:
        check_device(device)
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if not np.issubdtype(dt, np.floating):
        msg = f"parameters must have a floating dtype, got {dt}"
        raise TypeError(msg)
    return dt
