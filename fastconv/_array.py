"""The array-module abstraction: which module (NumPy today) backs a tensor's data.

Ops get their module from :func:`array_module` instead of importing NumPy directly, so a
CuPy-backed 'cuda' device can slot in later by returning ``cupy`` here without touching
the ops. Only the CPU device exists in this build.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEVICES", "array_module", "check_device", "default_float_dtype"]

DEVICES = ("cpu",)


def check_device(device: str) -> str:
    """Normalise a device string ('cpu', 'cuda', 'cuda:0'); ValueError/RuntimeError otherwise."""
    if not isinstance(device, str):
        device = str(device)
    name = device.split(":", 1)[0]
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        msg = ("device 'cuda' is not available: fastconv was built without CUDA support "
               "(fastconv.cuda.is_available() is False)")
        raise RuntimeError(msg)
    msg = f"unknown device {device!r}; expected 'cpu' or 'cuda'"
    raise ValueError(msg)


def array_module(device: str = "cpu"):
    """The array module holding tensors of `device` (numpy for 'cpu')."""
    check_device(device)
    return np


def default_float_dtype() -> np.dtype:
    """dtype for tensors made from Python floats (torch's default: float32)."""
    return np.dtype(np.float32)
