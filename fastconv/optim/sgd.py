"""SGD: stochastic gradient descent with optional momentum, dampening, Nesterov and L2 decay.

Source: https://pytorch.org/docs/stable/generated/torch.optim.SGD.html (the single-tensor,
``foreach=False`` algorithm, operation for operation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fastconv import _core
from fastconv.optim.optimizer import Optimizer

__all__ = ["SGD"]


def _in_place(a) -> bool:
    """Whether _core.sgd_step can update `a` in place: a writeable, C-contiguous,
    native-order float32/float64 ndarray."""
    return (type(a) is np.ndarray and a.dtype.char in "fd" and a.dtype.isnative
            and a.flags.c_contiguous and a.flags.aligned and a.flags.writeable)


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    Parameters
    ----------
    params : iterable
        Tensors or param-group dicts (see :class:`Optimizer`).
    lr : float
        Learning rate γ ≥ 0 (default 1e-3).
    momentum : float
        Momentum factor μ ≥ 0 (default 0: no momentum buffer is kept).
    dampening : float
        Dampening τ for momentum (default 0).
    weight_decay : float
        L2 penalty λ ≥ 0 added to the gradient (default 0).
    nesterov : bool
        Nesterov momentum (needs μ > 0 and τ = 0).
    maximize : bool
        Ascend the objective instead of descending (keyword only).

    Raises
    ------
    ValueError
        ``Invalid learning rate: {lr}``, ``Invalid momentum value: {momentum}``,
        ``Invalid weight_decay value: {weight_decay}`` for negative values;
        ``Nesterov momentum requires a momentum and zero dampening``.

    Notes
    -----
    For each parameter θ with a gradient, at step t::

        g ← −∇θ if maximize else ∇θ
        g ← g + λ·θ                         if λ ≠ 0
        if μ ≠ 0:
            b ← g  (t = 1: the buffer starts as the gradient, not undamped zeros)
            b ← μ·b + (1 − τ)·g              (t > 1)
            g ← g + μ·b if nesterov else b
        θ ← θ − γ·g

    The momentum buffer is ``state[p]['momentum_buffer']`` (same dtype as θ). Note this
    is PyTorch's form, v ← μv + g, θ ← θ − γv, not Sutskever et al.'s v ← μv + γg.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            msg = f"Invalid learning rate: {lr}"
            raise ValueError(msg)
        if momentum < 0.0:
            msg = f"Invalid momentum value: {momentum}"
            raise ValueError(msg)
        if weight_decay < 0.0:
            msg = f"Invalid weight_decay value: {weight_decay}"
            raise ValueError(msg)
        if nesterov and (momentum <= 0 or dampening != 0):
            msg = "Nesterov momentum requires a momentum and zero dampening"
            raise ValueError(msg)
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening,
            "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _setstate_fixups(self) -> None:
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)

    def step(self, closure: Callable[[], Any] | None = None):
        """One SGD step over every parameter that has a gradient (see the class Notes)."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr = group["lr"]
            momentum = group["momentum"]
            dampening = group["dampening"]
            weight_decay = group["weight_decay"]
            nesterov = group["nesterov"]
            maximize = group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._update(p, p.data, p.grad.data, lr, momentum, dampening, weight_decay,
                             nesterov, maximize)
        return loss

    def _update(self, p, theta: np.ndarray, grad: np.ndarray, lr: float, momentum: float,
                dampening: float, weight_decay: float, nesterov: bool, maximize: bool) -> None:
        if _in_place(theta) and type(grad) is np.ndarray and grad.dtype == theta.dtype:
            # The compiled step: one pass over θ, ∇ and the buffer, not 3-5 ufunc calls.
            buf, first = None, False
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf, first = np.empty_like(theta), True
                elif not (_in_place(buf) and buf.dtype == theta.dtype):
                    buf = False  # a loaded buffer the kernel cannot update in place
            if buf is not False:
                _core.sgd_step(theta, grad, buf, lr, momentum, dampening, weight_decay,
                               nesterov, maximize, first)
                if first:
                    state["momentum_buffer"] = buf
                return
        # `g` is the gradient itself until the rule needs a modified copy; copies live in the
        # scratch slots (`owned`), so p.grad is never written (torch builds new tensors too).
        g, owned = grad, False
        if weight_decay != 0:
            g, owned = self._scratch(theta, 0), True
            np.multiply(theta, weight_decay, out=g)
            if maximize:
                np.subtract(g, grad, out=g)  # −∇ + λθ
            else:
                np.add(grad, g, out=g)
        elif maximize:
            g, owned = self._scratch(theta, 0), True
            np.negative(grad, out=g)

        if momentum != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = np.array(g, dtype=theta.dtype, copy=True)
                state["momentum_buffer"] = buf
            else:
                np.multiply(buf, momentum, out=buf)
                if dampening == 0:
                    np.add(buf, g, out=buf)
                else:  # nesterov excludes dampening: g is not needed after this
                    scaled = g if owned else self._scratch(theta, 0)
                    np.multiply(g, 1 - dampening, out=scaled)
                    np.add(buf, scaled, out=buf)
            if nesterov:
                d = self._scratch(theta, 1)
                np.multiply(buf, momentum, out=d)
                np.add(g, d, out=d)
                g, owned = d, True
            else:
                g, owned = buf, False

        step = g if owned else self._scratch(theta, 1)
        np.multiply(g, lr, out=step)
        np.subtract(theta, step, out=theta)
