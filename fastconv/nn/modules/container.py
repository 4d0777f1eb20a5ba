"""Containers: Sequential (a chain of modules) and ModuleList (a registered list)."""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from fastconv import functional as F
from fastconv.nn.module import Module, _addindent
from fastconv.nn.modules.activation import ReLU
from fastconv.nn.modules.conv import Conv2d
from fastconv.nn.modules.linear import Linear
from fastconv.nn.modules.pooling import MaxPool2d
from fastconv.tensor import Tensor

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
    installed there still sees its call.
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
        # A ReLU followed by a max pool (the classic conv blocks) runs as the pool then the
        # ReLU on the pooled map: max and ReLU commute, the ReLU's output is never seen
        # here (modules have no hooks), and the pass over the full map is saved
        # (F._relu_max_pool2d). Preceded by a Conv2d on a batched NumPy input, the three
        # run as one kernel call that pools the conv output where it is computed
        # (F._conv2d_relu_max_pool2d). A Linear followed by a ReLU runs as one GEMM call
        # with a ReLU epilogue (F._linear_relu). Exact types only, whose forward is not
        # replaced on the instance: a subclass or a wrapper may change what the call does.
        modules = tuple(self._modules.values())
        i, n = 0, len(modules)
        while i < n:
            module = modules[i]
            if (type(module) is Conv2d and i + 2 < n and _plain_relu_pool(modules, i + 1)
                    and module.padding_mode == "zeros" and "forward" not in module.__dict__
                    and isinstance(input, Tensor) and type(input.data) is np.ndarray
                    and input.data.ndim == 4):
                pool = modules[i + 2]
                try:
                    out = F._conv2d_relu_max_pool2d(
                        input, module.weight, module.bias, module._core_args(module.weight),
                        pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                        pool.ceil_mode)
                except (TypeError, ValueError):  # the modules' own errors, one by one
                    out = pool(modules[i + 1](module(input)))
                if out is not None:
                    input = out
                    i += 3
                    continue
            if (type(module) is Linear and i + 1 < n and type(modules[i + 1]) is ReLU
                    and "forward" not in module.__dict__
                    and "forward" not in modules[i + 1].__dict__):
                try:
                    input = F._linear_relu(input, module.weight, module.bias)
                except (TypeError, ValueError):  # the modules' own errors
                    input = modules[i + 1](module(input))
                i += 2
                continue
            if (type(module) is ReLU and i + 1 < n and _plain_relu_pool(modules, i)
                    and isinstance(input, Tensor)):
                pool = modules[i + 1]
                input = F._relu_max_pool2d(input, pool.kernel_size, pool.stride, pool.padding,
                                           pool.dilation, pool.ceil_mode)
                i += 2
                continue
            input = module(input)
            i += 1
        return input


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
