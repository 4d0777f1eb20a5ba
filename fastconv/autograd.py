"""Reverse-mode automatic differentiation: Function, graph recording, backward.

Every differentiable op is a :class:`Function` subclass with ``forward(ctx, *args)`` and
``backward(ctx, grad_output)`` next to each other (the pattern of PyTorch's
``torch.autograd.Function`` and teenygrad's mlops). ``Function.apply`` runs ``forward`` on
raw arrays, wraps the result in a :class:`~fastconv.tensor.Tensor` and, when grad mode is
on and an input requires grad, records a :class:`Node` on it. ``backward`` walks the
recorded graph in reverse topological order and accumulates gradients: ``+=`` into a leaf's
``.grad``, summed where a tensor is used more than once.

Backward functions receive and return raw arrays (never Tensors), so the backward pass
records nothing. A backward returns one gradient per positional input of ``forward`` (None
for inputs that need none); ``ctx.needs_input_grad[i]`` tells whether input i needs one, so
an op can skip, for instance, conv's backward_data for an input image.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

__all__ = [
    "Context",
    "Function",
    "LazyGrad",
    "Node",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()

# fastconv.tensor.Tensor, bound by that module once the class exists: it imports this
# module, so this one cannot import it at load time (and an import inside apply would cost
# a sys.modules look-up on every op).
Tensor: Any = None

_ndarray = np.ndarray
_new_object = object.__new__


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for backward (per thread, as in torch)."""
    return _mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator setting grad mode on or off for its body."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = True

    def __enter__(self) -> None:
        self.prev = _mode.enabled
        _mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.prev


class no_grad(set_grad_enabled):
    """Disable graph recording, as ``torch.no_grad()``: results have requires_grad=False."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Re-enable graph recording inside a no_grad block."""

    def __init__(self) -> None:
        super().__init__(True)


class Context:
    """Per-call scratch of a Function: saved arrays and whatever forward wants to keep."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved: tuple = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays


class LazyGrad:
    """A gradient held in a compact form that only some Functions read as it is.

    A backward may return one for an input; the engine hands it unchanged to the backward
    of that input's Function if the Function's ``lazy_grad_ok`` is true and no other
    gradient was summed into it, and calls :meth:`dense` (the full array) everywhere
    else: another contribution to add, a leaf's ``.grad``, any other Function. The one kind
    today is max pooling's gradient as the pooled gradient plus argmax indices
    (``fastconv._functions.pool.PooledGrad``), which Conv2d's backward reads directly.
    """

    __slots__ = ()

    def dense(self) -> Any:
        raise NotImplementedError


def _dense(g):
    return g.dense() if isinstance(g, LazyGrad) else g


class Node:
    """A recorded application of a Function: how to send an output gradient to inputs."""

    __slots__ = ("ctx", "fn", "inputs")

    def __init__(self, fn: type[Function], ctx: Context, inputs: tuple) -> None:
        self.fn = fn
        self.ctx = ctx
        # The Tensor inputs (None for non-tensor or no-grad positions), aligned with the
        # positional arguments of forward and the gradients backward returns.
        self.inputs = inputs


class Function:
    """Base class of differentiable ops; subclasses define static forward and backward.

    ``forward(ctx, *arrays_and_args, **kwargs) -> ndarray`` and
    ``backward(ctx, grad) -> tuple`` (one entry per positional argument of forward, an
    ndarray or None). Call ``SubClass.apply(*args, **kwargs)`` with Tensors, arrays or
    Python values; it returns a Tensor. An op may also define a static
    ``infer(*arrays_and_args, **kwargs) -> ndarray`` returning what forward returns; apply
    runs it instead of forward when nothing is recorded (grad mode off, or no input
    requiring grad), with no Context: at batch 1 the Context and forward's saves cost as
    much as a small kernel.
    """

    infer: Any = None  # optional static infer (see the class docstring)
    lazy_grad_ok = False  # whether backward reads a LazyGrad as it is (see LazyGrad)
    # Whether backward's gradients are new arrays that nothing else refers to (kernel
    # outputs), so a leaf can keep one as its .grad without a copy: CifarNet's parameter
    # gradients are 2.2 MB a step.
    fresh_grads = False

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any):
        # One pass over the arguments, and the result Tensor built here rather than by
        # Tensor._from_op: this runs on every op of every forward, and a small model at
        # batch 1 spends more time in it than in its kernels (~0.2 us saved per op).
        raw = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                if a.requires_grad:
                    record = True
                raw.append(a.data)
            else:
                raw.append(a)
        if record and _mode.enabled:
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            ctx = Context(needs)
            out = cls.forward(ctx, *raw, **kwargs)
            inputs = tuple(a if n else None for a, n in zip(args, needs))
            return Tensor._from_op(out, Node(cls, ctx, inputs))
        # Nothing to record (grad mode off, or no input requires grad): no Node, and
        # infer when the op has one, else forward with needs_input_grad all False.
        infer = cls.infer
        if infer is not None:
            out = infer(*raw, **kwargs)
        else:
            out = cls.forward(Context((False,) * len(args)), *raw, **kwargs)
        if type(out) is not _ndarray:  # a NumPy scalar or a CuPy array: _from_op's rules
            return Tensor._from_op(out, None)
        t = _new_object(Tensor)
        t.data = out
        t.grad = None
        t._node = None
        t.requires_grad = False
        return t


def _topological_order(root) -> list:
    """Tensors with a Node reachable from root, each after every tensor that uses it."""
    order: list = []
    visited: set[int] = set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        node = tensor._node
        if node is not None:
            for parent in node.inputs:
                if parent is not None and parent._node is not None and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()  # root first
    return order


def backward(root, grad) -> None:
    """Propagate `grad` (an array shaped like root) through the graph recorded on root.

    Leaf tensors that require grad get it accumulated into ``.grad`` (a Tensor); the graph
    is freed as it is consumed (a second backward through it raises), as torch does without
    ``retain_graph``.
    """
    if root._node is None:
        if root.requires_grad:
            root._accumulate(grad)
        return
    grads: dict[int, Any] = {id(root): grad}
    with no_grad():
        for tensor in _topological_order(root):
            node = tensor._node
            g = grads.pop(id(tensor), None)
            if g is None or node is None:
                continue
            if isinstance(g, LazyGrad) and not node.fn.lazy_grad_ok:
                g = g.dense()
            if node.ctx is None:
                msg = ("Trying to backward through the graph a second time; the saved "
                       "arrays were freed after the first backward")
                raise RuntimeError(msg)
            input_grads = node.fn.backward(node.ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            node.ctx = None  # free saved arrays
            for parent, pg in zip(node.inputs, input_grads):
                if parent is None or pg is None:
                    continue
                if parent._node is None:  # leaf
                    parent._accumulate(_dense(pg), node.fn.fresh_grads)
                else:
                    key = id(parent)
                    prev = grads.get(key)
                    grads[key] = pg if prev is None else _dense(prev) + _dense(pg)
