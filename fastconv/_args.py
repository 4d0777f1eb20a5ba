"""Torch-style argument normalisation shared by the NumPy-level kernel wrappers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

IntPair = Union[int, Sequence[int]]


def is_int(value: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    if type(value) is int:  # the common case first (a bool's type is bool, not int)
        return True
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def pair(value: IntPair, name: str, op: str) -> tuple[int, int]:
    """An int, or a sequence of one or two ints, as (h, w) (torch accepts both lengths).

    Raises TypeError for a non-int, non-sequence value and ValueError for a sequence of the
    wrong length or element type; both messages name `op` and the argument `name`.
    """
    # Called for every argument of every conv/pool call: the two common forms (a Python
    # int, a pair of them as nn modules store it) are recognised first, by exact type.
    if type(value) is int:
        return value, value
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        return value
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = list(value)
        if len(items) in (1, 2) and all(is_int(v) for v in items):
            return int(items[0]), int(items[-1])
        msg = f"{op}: {name} must be a single int or a tuple of two ints, got {value!r}"
        raise ValueError(msg)
    msg = f"{op}: {name} must be a single int or a tuple of two ints, got {type(value).__name__}"
    raise TypeError(msg)


def integer(value: object, name: str, op: str) -> int:
    """An int argument (Python or NumPy integer, not bool); TypeError naming `name` otherwise."""
    if not is_int(value):
        msg = f"{op}: {name} must be an int, got {type(value).__name__}"
        raise TypeError(msg)
    return int(value)
