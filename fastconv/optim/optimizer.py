"""Optimizer: the base class of every fastconv optimizer, shaped as ``torch.optim.Optimizer``.

Parameters live in ``param_groups`` (a list of dicts, each with its own options and a
``'params'`` list); per-parameter state lives in ``state[param]``; ``state_dict()`` saves
both with parameters replaced by their position in the groups, as torch does, so a saved
state loads into a fresh optimizer built over the same parameters in the same order.

State tensors are NumPy arrays (``p.data``'s array module), never ``fc.Tensor``: the
update rules run on raw arrays in place, outside autograd.

Source: https://pytorch.org/docs/stable/optim.html (Optimizer API, per-parameter options,
``state_dict``).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from copy import deepcopy
from itertools import chain
from typing import Any

import numpy as np

from fastconv import autograd
from fastconv._array import default_float_dtype
from fastconv.tensor import Tensor

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks an option every param group must set (no default), as ``torch.optim.optimizer.required``."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _typename(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _copy_state_value(value: Any, dtype=None) -> Any:
    """Deep copy of one state entry: arrays copied (cast to `dtype` if given), containers walked."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=dtype, copy=True)
    if isinstance(value, dict):
        return {k: _copy_state_value(v, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_state_value(v, dtype) for v in value)
    return value


class Optimizer:
    """Base class for all optimizers (``torch.optim.Optimizer``).

    Parameters
    ----------
    params : iterable
        Tensors to optimise, ``(name, tensor)`` pairs (names are kept in the group as
        ``'param_names'``), or dicts each holding ``'params'`` plus options that override
        `defaults` for that group. The order must be deterministic: ``state_dict`` refers
        to parameters by position.
    defaults : dict
        Option values for groups that do not set them.

    Raises
    ------
    TypeError
        `params` is a single Tensor, a group is not a dict, a group's params is a set, or an
        entry is not a Tensor.
    ValueError
        `params` is empty, a tensor is not a leaf, a tensor appears in two groups, or a group
        omits an option whose default is ``required``.

    Notes
    -----
    Subclasses implement :meth:`step`. ``step`` skips every parameter whose ``.grad`` is
    None (a frozen or unused parameter), exactly as torch's optimizers do.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            msg = ("params argument given to the optimizer should be an iterable of Tensors "
                   "or dicts, but got " + _typename(params))
            raise TypeError(msg)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        # Per-dtype flat scratch arrays for the temporaries of an update, shared by every
        # parameter, so a step allocates nothing once warmed up (see _scratch).
        self._workspace: dict[tuple[np.dtype, int], np.ndarray] = {}

        param_groups = list(params)
        if len(param_groups) == 0:
            msg = "optimizer got an empty parameter list"
            raise ValueError(msg)
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # ---- construction -------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (others from ``defaults``).

        Useful when fine-tuning: unfreeze layers and hand them to the optimizer as training
        goes on. Raises as the constructor does (see the class docstring).
        """
        if not isinstance(param_group, dict):
            msg = f"param_group must be a dict, but got {type(param_group)}"
            raise TypeError(msg)

        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            msg = ("optimizer parameters need to be organized in ordered collections, but the "
                   "ordering of tensors in sets will change between runs. Please use a list "
                   "instead.")
            raise TypeError(msg)
        else:
            params = list(params)

        tensors, names = [], []
        for param in params:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                msg = ("all optimizer params should be with/without names. Some param names "
                       "are missing")
                raise ValueError(msg)
            param_group["param_names"] = names

        for param in tensors:
            if not isinstance(param, Tensor):
                msg = ("optimizer can only optimize Tensors, but one of the params is "
                       + _typename(param))
                raise TypeError(msg)
            if not getattr(param, "is_leaf", True):
                msg = "can't optimize a non-leaf Tensor"
                raise ValueError(msg)

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                msg = ("parameter group didn't specify a value of required optimization "
                       f"parameter {name}")
                raise ValueError(msg)
            param_group.setdefault(name, default)

        ids = [id(p) for p in tensors]
        if len(ids) != len(set(ids)):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, "
                "this will cause an error; see github.com/pytorch/pytorch/issues/40967 for "
                "more information", stacklevel=3)

        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                msg = ("all optimizer param groups should be with/without names. "
                       f"cannot add param group {which} to the optimizer")
                raise ValueError(msg)
        if not seen.isdisjoint(ids):
            msg = "some parameters appear in more than one parameter group"
            raise ValueError(msg)

        self.param_groups.append(param_group)

    # ---- the training-loop surface ------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradient of every parameter.

        Parameters
        ----------
        set_to_none : bool
            True (default): set ``.grad`` to None, so the next backward allocates it fresh
            and ``step`` skips parameters that then receive no gradient. False: keep the
            gradient tensor, detached from any graph, and fill it with zeros (``step`` then
            updates the parameter with a zero gradient: weight decay and momentum still act).
        """
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if getattr(grad, "requires_grad", False) and hasattr(grad, "detach_"):
                        grad.detach_()
                    grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None):
        """Perform one optimisation step; return ``closure()``'s loss if a closure is given.

        The closure re-evaluates the model (zero_grad, forward, backward) and returns the
        loss; it runs with gradient recording enabled.
        """
        raise NotImplementedError

    @staticmethod
    def _eval_closure(closure: Callable[[], Any] | None):
        if closure is None:
            return None
        with autograd.enable_grad():
            return closure()

    # ---- helpers for subclasses ---------------------------------------------------------
    def _scratch(self, like: np.ndarray, slot: int) -> np.ndarray:
        """A temporary shaped and typed as `like` (contents undefined), slot 0 or 1.

        One flat array per (dtype, slot), grown to the largest parameter and viewed to each
        parameter's shape: the update's temporaries cost no allocation after the first step.
        """
        key = (like.dtype, slot)
        buf = self._workspace.get(key)
        if buf is None or buf.size < like.size:
            buf = np.empty(like.size, dtype=like.dtype)
            self._workspace[key] = buf
        return buf[: like.size].reshape(like.shape)

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as ``{'state': {index: {...}}, 'param_groups': [...]}``.

        As torch's: parameters are replaced by their index in the concatenation of the
        groups' ``'params'`` lists; each group keeps its options and lists its indices under
        ``'params'``. State arrays are NumPy arrays, copied (unlike torch, which returns
        references that later steps keep mutating), so the result is a snapshot.
        """
        mapping: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {
            (mapping[id(k)] if isinstance(k, Tensor) else k): _copy_state_value(v)
            for k, v in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict` (or torch's, with tensors as NumPy arrays).

        Groups are matched by position and must have the same sizes; group options (lr,
        momentum, ...) are taken from `state_dict`. Floating state arrays are copied and
        cast to their parameter's dtype, except ``'step'``, which keeps its own dtype.

        Raises
        ------
        ValueError
            The number of groups, or the size of a group, differs from this optimizer's.
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            msg = "loaded state dict has a different number of parameter groups"
            raise ValueError(msg)
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            msg = ("loaded state dict contains a parameter group that doesn't match the size "
                   "of optimizer's group")
            raise ValueError(msg)

        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = self._cast_param_state(param, v)
            else:
                state[k] = _copy_state_value(v)

        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.state = state
        self.param_groups = saved_groups
        self._setstate_fixups()

    @staticmethod
    def _cast_param_state(param: Tensor, value: dict[str, Any]) -> dict[str, Any]:
        floating = np.issubdtype(param.data.dtype, np.floating)
        out = {}
        for key, v in value.items():
            if key == "step":
                out[key] = _copy_state_value(v)
            else:
                out[key] = _copy_state_value(v, param.data.dtype if floating else None)
        return out

    def _setstate_fixups(self) -> None:
        """Fill options missing from an older or foreign state (subclasses extend)."""

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._workspace = {}
        self._setstate_fixups()

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        lines.append(")")
        return "\n".join(lines)


def _new_step() -> np.ndarray:
    """Adam's step counter as torch keeps it: a 0-d array of the default float dtype."""
    return np.zeros((), dtype=default_float_dtype())
