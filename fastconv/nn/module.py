"""nn.Module: the base class of layers and networks, with torch.nn.Module's bookkeeping.

A module registers what is assigned to its attributes, in definition order: a
:class:`~fastconv.nn.Parameter` becomes a parameter, a Module a child, and a Tensor given to
:meth:`Module.register_buffer` a buffer (state that is saved but not trained, such as
BatchNorm's running statistics). ``state_dict()`` walks parameters, then persistent buffers,
then children, giving keys such as ``features.0.weight`` exactly as torch does, so a torch
state_dict converted to NumPy (``{k: v.numpy() for k, v in sd.items()}``) loads directly.

Semantics follow ``torch.nn.Module``
(https://pytorch.org/docs/stable/generated/torch.nn.Module.html); the deliberate
differences are listed on :meth:`Module.state_dict` and :meth:`Module.load_state_dict`.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from fastconv._array import check_device
from fastconv.nn.parameter import Parameter
from fastconv.tensor import Tensor, _is_dtype_name

__all__ = ["Module", "registered"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What :meth:`Module.load_state_dict` returns (torch's ``_IncompatibleKeys``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(text: str, spaces: int) -> str:
    """Indent every line of `text` but the first by `spaces` (the nesting in repr)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return "\n".join([lines[0]] + [pad + line for line in lines[1:]])


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str):
        msg = f"{kind} name should be a string. Got {type(name).__name__}"
        raise TypeError(msg)
    if name == "":
        msg = f'{kind} name can\'t be empty string ""'
        raise KeyError(msg)
    if "." in name:
        msg = f'{kind} name can\'t contain ".", got: {name}'
        raise KeyError(msg)


def _as_buffer(value: Any) -> Tensor | None:
    """A buffer value: a Tensor as given, an ndarray wrapped (shared), or None."""
    if value is None or isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    return None


class registered:
    """A class-level entry that resolves a parameter, buffer or child name of the module.

    Registered members live in the module's registries, not in its instance dict, so plain
    attribute access first fails the normal lookup and only then reaches
    :meth:`Module.__getattr__`; on CPython 3.11 that failure builds and discards an
    AttributeError (~0.4 us), paid on every forward for ``self.conv1``, ``self.weight``.
    Found on the class instead, the name is looked up at once in the registry it was
    declared for (~0.1 us), and in the others through ``Module.__getattr__`` when that one
    does not hold it (the same name can be a child in one instance and a parameter in
    another), so the result is the one ``Module.__getattr__`` gives. Modules declare their
    fixed members in the class body (``weight = registered()``, ``running_mean =
    registered("_buffers")``); registration adds one to the module's class for any other
    name the class does not have (:meth:`Module._declare`). It is a non-data descriptor: an
    instance attribute of the same name still takes precedence.
    """

    __slots__ = ("name", "registry")

    def __init__(self, registry: str = "_parameters", name: str | None = None) -> None:
        self.registry = registry
        self.name = name

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, module: Module | None, owner: type | None = None) -> Any:
        if module is None:
            return self
        try:
            return module.__dict__[self.registry][self.name]
        except KeyError:  # another registry, none, or Module.__init__ has not run yet
            return module.__getattr__(self.name)  # AttributeError if no registry has it


class Module:
    """Base class of all layers and networks (``torch.nn.Module``).

    Subclasses call ``super().__init__()`` first, assign parameters, buffers and
    submodules as attributes, and define ``forward``; calling the module runs ``forward``.

    Attributes
    ----------
    training : bool
        True in training mode (the default), False after :meth:`eval`; Dropout and
        BatchNorm2d behave differently in the two modes.
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__: our __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        msg = f'Module [{type(self).__name__}] is missing the required "forward" function'
        raise NotImplementedError(msg)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- registration -------------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, as an absent bias) under `name`.

        Raises
        ------
        TypeError
            If `param` is neither a Parameter nor None, or `name` is not a str.
        KeyError
            If `name` is empty, contains ".", or is an existing non-parameter attribute.
        """
        if "_parameters" not in self.__dict__:
            msg = "cannot assign parameter before Module.__init__() call"
            raise AttributeError(msg)
        _check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            msg = f"attribute '{name}' already exists"
            raise KeyError(msg)
        if param is not None and not isinstance(param, Parameter):
            msg = (f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                   "(fastconv.nn.Parameter or None required)")
            raise TypeError(msg)
        if param is not None and not param.is_leaf:
            msg = (f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters "
                   "must be created explicitly.")
            raise ValueError(msg)
        self._parameters[name] = param
        self._declare(name, "_parameters")

    def register_buffer(self, name: str, tensor: Tensor | np.ndarray | None,
                        persistent: bool = True) -> None:
        """Add a buffer: state saved in ``state_dict()`` (if persistent) but not trained.

        An ndarray is wrapped in a Tensor sharing its memory. Raises TypeError for other
        values, KeyError for a bad or already-used name.
        """
        if "_buffers" not in self.__dict__:
            msg = "cannot assign buffer before Module.__init__() call"
            raise AttributeError(msg)
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            msg = f"attribute '{name}' already exists"
            raise KeyError(msg)
        buf = _as_buffer(tensor)
        if tensor is not None and buf is None:
            msg = (f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                   "(fastconv.Tensor or None required)")
            raise TypeError(msg)
        self._buffers[name] = buf
        self._declare(name, "_buffers")
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under `name` (what attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            msg = f"{type(module).__name__} is not a Module subclass"
            raise TypeError(msg)
        _check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            msg = f"attribute '{name}' already exists"
            raise KeyError(msg)
        self._modules[name] = module
        self._declare(name, "_modules")

    register_module = add_module

    def _declare(self, name: str, registry: str) -> None:
        """Give the module's class a :class:`registered` entry for `name` (looked up first in
        `registry`) unless the class (or a base) already has that attribute, so
        ``self.<name>`` is found on the class."""
        cls = type(self)
        if not hasattr(cls, name):
            setattr(cls, name, registered(registry, name))

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                msg = "cannot assign parameters before Module.__init__() call"
                raise AttributeError(msg)
            self._forget(name)
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                msg = (f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                       "(fastconv.nn.Parameter or None expected)")
                raise TypeError(msg)
            params[name] = None
            return
        modules = d.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                msg = "cannot assign module before Module.__init__() call"
                raise AttributeError(msg)
            self._forget(name)
            modules[name] = value
            self._declare(name, "_modules")
            return
        if modules is not None and name in modules:
            if value is not None:
                msg = (f"cannot assign '{type(value).__name__}' as child module '{name}' "
                       "(fastconv.nn.Module or None expected)")
                raise TypeError(msg)
            modules[name] = None
            return
        buffers = d.get("_buffers")
        if buffers is not None and name in buffers:
            buf = _as_buffer(value)
            if value is not None and buf is None:
                msg = (f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                       "(fastconv.Tensor or None expected)")
                raise TypeError(msg)
            buffers[name] = buf
            return
        object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Remove `name` from every registry and the instance dict (before re-registering)."""
        self.__dict__.pop(name, None)
        for registry in ("_parameters", "_buffers", "_modules"):
            self.__dict__[registry].pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str) -> Any:
        # Reached when normal lookup fails (or from `registered`): parameters, buffers and
        # children live in the registries, not in the instance dict (one source of truth,
        # as torch).
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = d.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        msg = f"'{type(self).__name__}' object has no attribute '{name}'"
        raise AttributeError(msg)

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__[registry]
            if name in entries:
                del entries[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list:
        keys = list(super().__dir__())
        for registry in (self._parameters, self._buffers, self._modules):
            keys += list(registry)
        return sorted(set(keys))

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(name, module) for self (name `prefix`) and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        if recurse:
            mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            mods = iter([(prefix, self)])
        for module_prefix, module in mods:
            for name, value in getattr(module, registry).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs, e.g. ('features.0.weight', p); shared ones once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path `target` ('' is self); AttributeError if none."""
        module = self
        if target == "":
            return module
        for item in target.split("."):
            if not isinstance(module, Module) or item not in module._modules:
                msg = f"{module._get_name()} has no attribute `{item}`"
                raise AttributeError(msg)
            module = module._modules[item]
        return module

    def _get_member(self, target: str, registry: str, kind: str) -> Any:
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        entries = getattr(module, registry)
        if name not in entries or entries[name] is None:
            msg = f"{module._get_name()} has no {kind} `{name}`"
            raise AttributeError(msg)
        return entries[name]

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path `target` (e.g. 'features.0.weight')."""
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path `target` (e.g. 'bn.running_mean')."""
        return self._get_member(target, "_buffers", "buffer")

    # ---- state dict ---------------------------------------------------------------------
    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.data.copy()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.data.copy()

    def state_dict(self, *, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers of self and all descendants, by dotted name.

        Keys and order are torch's: each module's parameters, then its buffers, then its
        children's entries, e.g. ``features.0.weight``, ``bn.running_mean``,
        ``bn.num_batches_tracked``.

        Returns
        -------
        OrderedDict of str → ndarray. Unlike torch, whose state_dict shares storage with
        the parameters, the arrays are copies: a saved state does not change as training
        goes on. With ``keep_vars=True`` the Parameter and buffer Tensors themselves.
        """
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        return destination

    def _state_entries(self, prefix: str = "") -> Iterator[tuple[str, Module, str, Tensor]]:
        """(key, owning module, local name, tensor) for every state_dict entry."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, self, name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                yield prefix + name, self, name, b
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_entries(prefix + name + ".")

    def _fill_missing_state(self, state_dict: dict, prefix: str) -> None:
        """Hook: add defaults for keys a module may lack in old checkpoints (BatchNorm)."""

    def load_state_dict(self, state_dict: Mapping[str, Any],
                        strict: bool = True) -> _IncompatibleKeys:
        """Copy values from `state_dict` into this module's parameters and buffers.

        Parameters
        ----------
        state_dict : Mapping[str, array-like]
            Keyed as :meth:`state_dict`; values are ndarrays, Tensors, or anything
            ``np.asarray`` takes (a torch state_dict's tensors, lists). Values are copied
            into the existing arrays and cast to their dtype, so parameters keep their
            identity (optimizers holding them see the new values) and dtype.
        strict : bool
            If True, missing or unexpected keys are errors.

        Returns
        -------
        namedtuple ``(missing_keys, unexpected_keys)`` of lists of str.

        Raises
        ------
        TypeError
            If `state_dict` is not a Mapping.
        RuntimeError
            ``Error(s) in loading state_dict for <Class>:`` followed by one line per
            problem, as torch: missing and unexpected keys (strict only), shape mismatches
            and values that are not numeric arrays (always). Nothing is copied when it
            raises (torch may have copied some entries by then).
        """
        if not isinstance(state_dict, Mapping):
            msg = f"Expected state_dict to be dict-like, got {type(state_dict)}."
            raise TypeError(msg)
        state_dict = dict(state_dict)
        for prefix, module in self.named_modules():
            module._fill_missing_state(state_dict, prefix + "." if prefix else "")
        entries = list(self._state_entries())
        expected = {key for key, *_ in entries}
        missing = [key for key, *_ in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        errors: list[str] = []
        copies: list[tuple[Tensor, np.ndarray]] = []
        for key, _, _, target in entries:
            if key not in state_dict:
                continue
            value = state_dict[key]
            try:
                arr = np.asarray(value.data if isinstance(value, Tensor) else value)
            except Exception as exc:  # noqa: BLE001  (reported with the key, as torch)
                arr, reason = None, str(exc)
            else:
                reason = ""
            if arr is None or arr.dtype.kind not in "biuf":
                errors.append(f'While copying the parameter named "{key}", expected a '
                              f"numeric array-like from checkpoint but received "
                              f"{type(value)}{': ' + reason if reason else ''}")
                continue
            if target.ndim == 0 and arr.shape == (1,):  # torch's 0-d vs 1-d leniency
                arr = arr.reshape(())
            if arr.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{_shape_str(arr.shape)} from checkpoint, the shape in current "
                              f"model is {_shape_str(target.shape)}.")
                continue
            copies.append((target, arr))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            msg = (f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                   + "\n\t".join(errors))
            raise RuntimeError(msg)
        for target, arr in copies:
            np.copyto(target.data, arr, casting="unsafe")
        return _IncompatibleKeys(missing, unexpected)

    # ---- modes, gradients, conversion ----------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on self and every descendant; returns self."""
        if not isinstance(mode, bool):
            msg = "training mode is expected to be boolean"
            raise ValueError(msg)  # noqa: TRY004  (torch's exception type)
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (``train(False)``): Dropout is off, BatchNorm uses running stats."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad``: set it to None, or zero it in place."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every descendant (children first, as torch) and then on self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def _apply_dtype(self, dtype: np.dtype) -> Module:
        """Cast floating parameters (and their grads) and buffers to `dtype` in place.

        The Parameter and buffer objects are kept, only their arrays replaced, so
        references held elsewhere (an optimizer's) stay valid.
        """
        for module in self.modules():
            tensors = [t for t in (*module._parameters.values(), *module._buffers.values())
                       if t is not None]
            for t in tensors:
                if np.issubdtype(t.dtype, np.floating) and t.dtype != dtype:
                    t.data = t.data.astype(dtype)
                    if t.grad is not None:
                        t.grad.data = t.grad.data.astype(dtype)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(tensor)``, in place.

        Only floating dtypes are accepted (TypeError otherwise), and they apply to floating
        parameters and buffers; integer buffers such as ``num_batches_tracked`` keep their
        dtype. The device is checked ('cpu' is the only one in this build).
        """
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            msg = f"to() got unexpected keyword arguments {sorted(kwargs)}"
            raise TypeError(msg)
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and not _is_dtype_name(a):
                device = a
            elif isinstance(a, bool):
                continue  # non_blocking given positionally
            else:
                dtype = a
        if device is not None:
            check_device(device)
        if dtype is not None:
            dt = np.dtype(dtype)
            if not np.issubdtype(dt, np.floating):
                msg = f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dt}"
                raise TypeError(msg)
            self._apply_dtype(dt)
        return self

    def float(self) -> Module:
        """Cast floating parameters and buffers to float32 (in place); returns self."""
        return self._apply_dtype(np.dtype(np.float32))

    def double(self) -> Module:
        """Cast floating parameters and buffers to float64 (in place); returns self."""
        return self._apply_dtype(np.dtype(np.float64))

    def cpu(self) -> Module:
        return self

    def cuda(self, device: Any = None) -> Module:  # noqa: ARG002
        check_device("cuda")
        return self

    # ---- repr ---------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text inside the parentheses of repr (one line per '\\n'); override it."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_addindent(repr(module), 2)}"
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"


def _shape_str(shape: tuple) -> str:
    """A shape in load_state_dict errors: a tuple ``(3, 4)`` (torch prints torch.Size)."""
    return str(tuple(int(s) for s in shape))
