"""Containers: Sequential (a chain of modules) and ModuleList (a registered list)."""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from fastconv import functional as F
from fastconv._functions import misc as _misc
from fastconv._functions import pool as _pool
from fastconv.autograd import _mode
from fastconv.nn.module import Module, _addindent
from fastconv.nn.modules.activation import ReLU
from fastconv.nn.modules.conv import Conv2d
from fastconv.nn.modules.flatten import Flatten
from fastconv.nn.modules.linear import Linear
from fastconv.nn.modules.pooling import MaxPool2d
from fastconv.tensor import Tensor, _flattened_shape

_ndarray = np.ndarray
_from_op = Tensor._from_op

__all__ = ["ModuleList", "Sequential"]


def _abs_index(idx: Any, size: int) -> int:
    idx = operator.index(idx)
    if not -size <= idx < size:
        msg = f"index {idx} is out of range"
        raise IndexError(msg)
    return idx % size


class Sequential(Module):
    """Modules applied in order: ``forward(x)`` is ``m_n(...m_1(x))``, as torch.nn.Sequential.

    ``Sequential(m1, m2, ...)`` names the children '0', '1', ... (so state_dict keys read
    ``0.weight``); ``Sequential(OrderedDict([('conv', m1), ...]))`` uses the given names.
    Supports indexing (negative and slices; a slice is a Sequential keeping the names),
    assignment, deletion (renumbering), len, iteration, ``+``, append, insert, extend, pop.

    A ReLU directly followed by a MaxPool2d (exact types, without return_indices, on a
    Tensor) runs as the max pool with the ReLU applied to its output: the same values and
    gradients (max and ReLU commute) without a ReLU pass over the full map. Dilated pools
    keep the order (a window with no input element is -inf, as torch). Preceded by a
    Conv2d (zero padding) on a batched NumPy input, the three run as one kernel call that
    pools the conv output where it is computed (``_core.conv2d_max_pool2d_forward``): the
    same values and gradients, bit for bit. A Linear directly followed by a ReLU runs as
    one GEMM call with a ReLU epilogue (``_core.gemm(..., relu=True)``), also bit for bit.
    Only modules whose forward is not replaced on the instance are fused, so a wrapper
    installed there still sees its call. With grad mode off (``no_grad``) on a NumPy-backed
    Tensor, those blocks, Linear and Flatten hand plain arrays from kernel to kernel, with
    no Tensor between them: the same calls and results, less Python per module (CifarNet at
    batch 1, alternated in one process: 125.6 -> 120.2 us).
    """

    def __init__(self, *args: Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)

    def _key(self, idx: Any) -> str:
        keys = list(self._modules)
        return keys[_abs_index(idx, len(keys))]

    def __getitem__(self, idx: int | slice) -> Module:
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, self._key(idx), module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)[idx] if isinstance(idx, slice) else [self._key(idx)]
        for key in keys:
            delattr(self, key)
        # renumber so the names stay 0..n-1, as torch
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            msg = ("add operator supports only objects of Sequential class, but "
                   f"{type(other)} is given.")
            raise ValueError(msg)  # noqa: TRY004  (torch's exception type)
        out = Sequential()
        for module in (*self, *other):
            out.append(module)
        return out

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        if not isinstance(module, Module):
            msg = f"module should be of type: {Module}"
            raise TypeError(msg)
        n = len(self._modules)
        if not -n <= index <= n:
            msg = f"Index out of range: {index}"
            raise IndexError(msg)
        if index < 0:
            index += n
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))
        return self

    def extend(self, sequential: Iterable[Module]) -> Sequential:
        for module in sequential:
            self.append(module)
        return self

    def pop(self, key: int | slice) -> Module:
        v = self[key]
        del self[key]
        return v

    def forward(self, input: Any) -> Any:
        modules = tuple(self._modules.values())
        if not _mode.enabled and type(input) is Tensor and type(input.data) is _ndarray:
            return _infer(modules, input.data)
        return _forward(modules, 0, input)


def _forward(modules: tuple, i: int, input: Any) -> Any:
    """Sequential.forward from modules[i] on, one _step at a time."""
    n = len(modules)
    while i < n:
        input, i = _step(modules, i, input)
    return input


def _step(modules: tuple, i: int, input: Any) -> tuple[Any, int]:
    """modules[i] applied to input, or modules[i] and the next one or two fused; returns the
    output and the index of the next module.

    A ReLU followed by a max pool (the classic conv blocks) runs as the pool then the ReLU
    on the pooled map: max and ReLU commute, the ReLU's output is never seen here (modules
    have no hooks), and the pass over the full map is saved (F._relu_max_pool2d). Preceded
    by a Conv2d on a batched NumPy input, the three run as one kernel call that pools the
    conv output where it is computed (F._conv2d_relu_max_pool2d). A Linear followed by a
    ReLU runs as one GEMM call with a ReLU epilogue (F._linear_relu). Exact types only, whose
    forward is not replaced on the instance: a subclass or a wrapper may change what the
    call does.
    """
    module = modules[i]
    if (_conv_block(modules, i) and isinstance(input, Tensor)
            and type(input.data) is np.ndarray and input.data.ndim == 4):
        pool = modules[i + 2]
        try:
            out = F._conv2d_relu_max_pool2d(
                input, module.weight, module.bias, module._core_args(module.weight),
                pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
        except (TypeError, ValueError):  # the modules' own errors, one by one
            out = pool(modules[i + 1](module(input)))
        if out is not None:
            return out, i + 3
    if type(module) is Linear and "forward" not in module.__dict__ and _relu_after(modules, i):
        try:
            return F._linear_relu(input, module.weight, module.bias), i + 2
        except (TypeError, ValueError):  # the modules' own errors
            return modules[i + 1](module(input)), i + 2
    if (type(module) is ReLU and i + 1 < len(modules) and _plain_relu_pool(modules, i)
            and isinstance(input, Tensor)):
        pool = modules[i + 1]
        return F._relu_max_pool2d(input, pool.kernel_size, pool.stride, pool.padding,
                                  pool.dilation, pool.ceil_mode), i + 2
    return module(input), i + 1


def _infer(modules: tuple, x: np.ndarray) -> Any:
    """Sequential.forward with grad mode off on a NumPy-backed Tensor (its array x): the
    conv blocks, Linear (+ ReLU) and Flatten run their Functions' infer on the arrays
    directly, with no Tensor between them and the pool's arguments normalised once
    (MaxPool2d._core_args). At batch 1 the Tensor path spent ~17 us of CifarNet's ~126 us
    outside the kernels; this path ~12. The same kernel calls as _step's, so the same
    bits. Every other module, and any call that raises, runs as _step runs it, so errors
    and results are the modules' own; a module whose output is not a NumPy-backed Tensor
    hands the rest to _forward."""
    i, n = 0, len(modules)
    while i < n:
        done = _array_step(modules, i, x)
        if done is not None:
            x, i = done
            continue
        out, i = _step(modules, i, _from_op(x, None))
        if type(out) is not Tensor or type(out.data) is not _ndarray:
            return _forward(modules, i, out)
        x = out.data
    return _from_op(x, None)


def _array_step(modules: tuple, i: int, x: np.ndarray) -> tuple[np.ndarray, int] | None:
    """_step's conv block, Linear (+ ReLU) or Flatten at modules[i] on the array x, with grad
    mode off: (output array, next index), or None for another module or for a call that
    raised (_step then runs it and raises its own error)."""
    module = modules[i]
    kind = type(module)
    if kind is Conv2d:
        if not (_conv_block(modules, i) and x.ndim == 4):
            return None
        try:
            pool_args = modules[i + 2]._core_args()
            if pool_args[3] != (1, 1):  # dilated: F._conv2d_relu_max_pool2d declines it too
                return None
            w, b = module.weight, module.bias
            y = _pool.Conv2dReLUMaxPool2d.infer(
                x, w.data, None if b is None else b.data, (module._core_args(w), pool_args))
        except Exception:  # noqa: BLE001  (_step runs the modules and raises their error)
            return None
        return y, i + 3
    if kind is Linear:
        if "forward" in module.__dict__:
            return None
        fused = _relu_after(modules, i)
        try:
            w, b = module.weight, module.bias
            y = (_misc.LinearReLU if fused else _misc.Linear).infer(
                x, w.data, None if b is None else b.data)
        except Exception:  # noqa: BLE001
            return None
        return y, i + (2 if fused else 1)
    if kind is Flatten and "forward" not in module.__dict__:
        try:
            return x.reshape(_flattened_shape(x.shape, module.start_dim, module.end_dim)), i + 1
        except Exception:  # noqa: BLE001
            return None
    return None


def _conv_block(modules: tuple, i: int) -> bool:
    """Whether modules[i:i + 3] are a Conv2d (zero padding), a ReLU and a MaxPool2d that
    Sequential may run as one kernel call: exact types, no forward replaced on the instance
    (_plain_relu_pool for the other two)."""
    conv = modules[i]
    return (type(conv) is Conv2d and i + 2 < len(modules) and _plain_relu_pool(modules, i + 1)
            and conv.padding_mode == "zeros" and "forward" not in conv.__dict__)


def _relu_after(modules: tuple, i: int) -> bool:
    """Whether modules[i + 1] is a ReLU that the Linear at modules[i] may take into its GEMM:
    exact type, no forward replaced on the instance."""
    return (i + 1 < len(modules) and type(modules[i + 1]) is ReLU
            and "forward" not in modules[i + 1].__dict__)


def _plain_relu_pool(modules: tuple, i: int) -> bool:
    """Whether modules[i], modules[i + 1] are a ReLU and a MaxPool2d that Sequential may fuse:
    exact types (a subclass may change forward), no forward replaced on the instance (a
    wrapper must see its call), the pool's output a Tensor (no return_indices)."""
    relu, pool = modules[i], modules[i + 1]
    return (type(relu) is ReLU and type(pool) is MaxPool2d and not pool.return_indices
            and "forward" not in relu.__dict__ and "forward" not in pool.__dict__)


class ModuleList(Module):
    """A list of registered submodules (named '0', '1', ...), as torch.nn.ModuleList.

    It has no forward; index it, iterate it, append/extend/insert/pop, ``+=``.
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Module | ModuleList:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_abs_index(idx, len(self)))]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, str(_abs_index(idx, len(self))), module)

    def __delitem__(self, idx: int | slice) -> None:
        if isinstance(idx, slice):
            for k in range(len(self._modules))[idx]:
                delattr(self, str(k))
        else:
            delattr(self, str(_abs_index(idx, len(self))))
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:  # noqa: PYI034
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules = OrderedDict()
        self.extend(modules)

    def pop(self, key: int | slice) -> Module:
        v = self[key]
        del self[key]
        return v

    def __repr__(self) -> str:
        # Runs of identical children print once, as torch: "(0-2): 3 x Linear(...)".
        reprs = [repr(m) for m in self]
        if not reprs:
            return self._get_name() + "()"
        blocks: list[list] = []  # [start, end, repr]
        for i, r in enumerate(reprs):
            if blocks and blocks[-1][2] == r:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, r])
        lines = []
        for start, end, r in blocks:
            head = f"({start})" if start == end else f"({start}-{end}): {end - start + 1} x"
            lines.append(_addindent(f"{head}: {r}" if start == end else f"{head} {r}", 2))
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"
