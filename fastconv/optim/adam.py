"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay.

Sources: https://pytorch.org/docs/stable/generated/torch.optim.Adam.html and
https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html (the single-tensor,
``foreach=False``, non-capturable algorithm, operation for operation); Kingma & Ba 2015,
Loshchilov & Hutter 2019 (AdamW), Reddi et al. 2018 (AMSGrad).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fastconv.optim.optimizer import Optimizer, _new_step

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam``.

    Parameters
    ----------
    params : iterable
        Tensors or param-group dicts (see :class:`Optimizer`).
    lr : float
        Learning rate γ ≥ 0 (default 1e-3).
    betas : (float, float)
        Decay rates (β₁, β₂) of the first- and second-moment averages, each in [0, 1)
        (default (0.9, 0.999)).
    eps : float
        ε ≥ 0 added to the denominator (default 1e-8).
    weight_decay : float
        λ ≥ 0 (default 0): an L2 term added to the gradient, or with
        ``decoupled_weight_decay`` a shrink of θ itself (AdamW).
    amsgrad : bool
        Normalise by the running maximum of the second moment (AMSGrad).
    maximize : bool
        Ascend the objective (keyword only).
    decoupled_weight_decay : bool
        Apply weight decay as AdamW does (keyword only; ``AdamW`` sets it).

    Raises
    ------
    ValueError
        ``Invalid learning rate: {lr}``, ``Invalid epsilon value: {eps}``,
        ``Invalid beta parameter at index 0: {b}`` (and index 1),
        ``Invalid weight_decay value: {wd}``, ``betas must be either both floats or both
        Tensors`` (a beta given as an int).

    Notes
    -----
    For each parameter θ with a gradient, at step t (``state['step']``, a 0-d float32
    array as torch keeps it)::

        g ← −∇θ if maximize else ∇θ
        θ ← θ·(1 − γλ)        if λ ≠ 0 and decoupled      (AdamW)
        g ← g + λθ            if λ ≠ 0 and not decoupled   (Adam's L2)
        m ← lerp(m, g, 1 − β₁)          = m + (1 − β₁)(g − m)
        v ← β₂·v + (1 − β₂)·g·g
        v̂max ← max(v̂max, v)             if amsgrad (and v̂max replaces v below)
        denom ← √v / √(1 − β₂ᵗ) + ε
        θ ← θ − (γ / (1 − β₁ᵗ))·m / denom

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad,
    ``max_exp_avg_sq``; moments have θ's dtype.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if not lr >= 0.0:  # NaN fails too, as torch's `not 0.0 <= lr`
            msg = f"Invalid learning rate: {lr}"
            raise ValueError(msg)
        if not eps >= 0.0:
            msg = f"Invalid epsilon value: {eps}"
            raise ValueError(msg)
        if not 0.0 <= betas[0] < 1.0:
            msg = f"Invalid beta parameter at index 0: {betas[0]}"
            raise ValueError(msg)
        if not 0.0 <= betas[1] < 1.0:
            msg = f"Invalid beta parameter at index 1: {betas[1]}"
            raise ValueError(msg)
        if not weight_decay >= 0.0:
            msg = f"Invalid weight_decay value: {weight_decay}"
            raise ValueError(msg)
        if not (isinstance(betas[0], float) and isinstance(betas[1], float)):
            msg = "betas must be either both floats or both Tensors"
            raise ValueError(msg)  # noqa: TRY004 - torch's type and message
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _setstate_fixups(self) -> None:
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", False)
            for p in group["params"]:
                state = self.state.get(p)
                if state and not isinstance(state.get("step"), np.ndarray):
                    step = _new_step()
                    step[...] = float(state["step"])
                    state["step"] = step

    def step(self, closure: Callable[[], Any] | None = None):
        """One Adam step over every parameter that has a gradient (see the class Notes)."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            weight_decay = group["weight_decay"]
            eps = group["eps"]
            amsgrad = group["amsgrad"]
            maximize = group["maximize"]
            decoupled = group["decoupled_weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                theta = p.data
                state = self.state[p]
                if len(state) == 0:  # lazy init: moments in θ's dtype
                    state["step"] = _new_step()
                    state["exp_avg"] = np.zeros_like(theta)
                    state["exp_avg_sq"] = np.zeros_like(theta)
                    if amsgrad:
                        state["max_exp_avg_sq"] = np.zeros_like(theta)
                self._update(theta, p.grad.data, state, lr, beta1, beta2, eps, weight_decay,
                             amsgrad, maximize, decoupled)
        return loss

    def _update(self, theta: np.ndarray, grad: np.ndarray, state: dict[str, Any], lr: float,
                beta1: float, beta2: float, eps: float, weight_decay: float, amsgrad: bool,
                maximize: bool, decoupled: bool) -> None:
        exp_avg = state["exp_avg"]
        exp_avg_sq = state["exp_avg_sq"]
        step_t = state["step"]
        step_t += 1  # in place on the 0-d array, as torch's step_t += 1
        step = float(step_t)

        g, owned = grad, False  # owned: g is scratch slot 0 and may be overwritten
        if maximize:
            g, owned = self._scratch(theta, 0), True
            np.negative(grad, out=g)
        if weight_decay != 0:
            if decoupled:
                np.multiply(theta, 1 - lr * weight_decay, out=theta)
            elif owned:  # g = −∇ in slot 0: add λθ through slot 1
                t = self._scratch(theta, 1)
                np.multiply(theta, weight_decay, out=t)
                np.add(g, t, out=g)
            else:
                d = self._scratch(theta, 0)
                np.multiply(theta, weight_decay, out=d)
                np.add(grad, d, out=d)
                g, owned = d, True

        # v ← β₂v + ((1 − β₂)·g)·g: torch's addcmul evaluates value·t1·t2 left to right
        tmp = self._scratch(theta, 1)
        np.multiply(g, 1 - beta2, out=tmp)
        np.multiply(tmp, g, out=tmp)
        np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
        np.add(exp_avg_sq, tmp, out=exp_avg_sq)

        # m ← lerp(m, g, w): torch's lerp uses m + w(g − m) for |w| < 0.5, else
        # g − (g − m)(1 − w), both with w in θ's dtype
        weight = theta.dtype.type(1 - beta1)
        np.subtract(g, exp_avg, out=tmp)
        if abs(weight) < 0.5:
            np.multiply(tmp, weight, out=tmp)
            np.add(exp_avg, tmp, out=exp_avg)
        else:
            np.multiply(tmp, weight - theta.dtype.type(1), out=tmp)
            np.add(g, tmp, out=exp_avg)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = math.sqrt(bias_correction2)

        if amsgrad:
            max_exp_avg_sq = state["max_exp_avg_sq"]
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            second = max_exp_avg_sq
        else:
            second = exp_avg_sq
        denom = tmp
        np.sqrt(second, out=denom)
        np.divide(denom, bias_correction2_sqrt, out=denom)
        np.add(denom, eps, out=denom)

        # θ ← θ + ((−step_size)·m) / denom, torch's addcdiv order
        upd = self._scratch(theta, 0)
        np.multiply(exp_avg, -step_size, out=upd)
        np.divide(upd, denom, out=upd)
        np.add(theta, upd, out=theta)


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Same parameters, rule and state as :class:`Adam` with ``decoupled_weight_decay=True``
    (θ ← θ·(1 − γλ) before the moment updates, λ never enters m or v), and a default
    ``weight_decay`` of 1e-2.

    Source: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def _setstate_fixups(self) -> None:
        super()._setstate_fixups()
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
