"""The array-module abstraction: which module (NumPy today) backs a tensor's data.

Ops get their module from :func:`get_array_module` (from the arrays they are given) and
tensor factories from :func:`array_module` (from a device name) instead of calling NumPy
directly, so a CuPy-backed 'cuda' device can slot in later without touching the ops: a
CuPy array handed to an op is computed on by ``cupy``. Only the CPU device exists in this
build; CuPy is never imported unless a CuPy array is actually seen.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "DEVICES", "array_module", "check_device", "default_float_dtype", "get_array_module",
    "scatter_add",
]

DEVICES = ("cpu",)

# Types that are certainly host (NumPy) values: checked first, so the common case costs one
# isinstance call and no import.
_HOST_TYPES = (np.ndarray, np.generic, float, int, bool, complex, type(None))


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


def array_module(device: str = "cpu") -> ModuleType:
    """The array module holding tensors of `device` (numpy for 'cpu')."""
    check_device(device)
    return np


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module to compute on `arrays` with: ``cupy`` if any is a CuPy array, else numpy.

    Parameters
    ----------
    *arrays : array, scalar or None
        The arrays (and scalars) an op works on, in any mix.

    Returns
    -------
    module
        ``cupy`` when one of `arrays` is a CuPy array (its type is defined in the ``cupy``
        package), ``numpy`` otherwise: for ndarrays, NumPy and Python scalars, None and
        anything else that is not a CuPy array.

    Notes
    -----
    Called on every op, so it is cheap on the NumPy path: host values are recognised with
    one ``isinstance`` check and nothing is imported. A CuPy array is recognised by the
    package its type comes from, ``type(a).__module__``, so CuPy is imported only once such
    an array is actually seen (then ``import cupy`` costs a dictionary look-up). Like
    ``cupy.get_array_module``, which this mirrors without needing CuPy installed.
    """
    for a in arrays:
        if isinstance(a, _HOST_TYPES):
            continue
        if type(a).__module__.partition(".")[0] == "cupy":
            return importlib.import_module("cupy")
    return np


def scatter_add(xp: ModuleType, out: Any, index: Any, values: Any) -> None:
    """``out[index] += values`` with repeated indices accumulating, in place.

    ``np.add.at`` for NumPy, ``cupyx.scatter_add`` for CuPy (the same operation, named
    differently).

    Parameters
    ----------
    xp : module
        The array module of `out` (from :func:`get_array_module`).
    out : array
        Accumulated into.
    index : index expression
        Any index NumPy accepts (basic and advanced).
    values : array or scalar
        Broadcast to ``out[index]``'s shape.
    """
    if xp is np:
        np.add.at(out, index, values)
    else:
        importlib.import_module("cupyx").scatter_add(out, index, values)


def default_float_dtype() -> np.dtype:
    """dtype for tensors made from Python floats (torch's default: float32)."""
    return np.dtype(np.float32)
