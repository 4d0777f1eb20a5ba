"""Losses as fused Functions: cross-entropy, negative log-likelihood, mean squared error.

CrossEntropy is one Function (log-softmax, NLL, label smoothing, class weights,
ignore_index and the reduction together) rather than a chain of small ops: its backward
is the closed form ``dL/dx = (softmax(x) · Σ_c a_c − a) · upstream`` where ``a_c`` is the
weight the loss puts on ``−log p_c`` (for a class-index target
``a = (1 − ε)·w_y·onehot(y) + (ε/C)·w``). The semantics, including the denominator of
'mean' (the summed weight of the non-ignored targets), are PyTorch's
(``aten/src/ATen/native/LossNLL.cpp``: ``cross_entropy_loss_label_smoothing``,
``cross_entropy_loss_prob_target``, ``nll_loss_nd``).

The class dimension is axis 1 of an (N, C, d1, ...) input, or axis 0 of an unbatched (C,)
input; internally every loss works on rows of shape (M, C), M = N·d1·..., and the
per-element losses are reshaped back to the target's shape for reduction='none'.

Array functions come from the inputs' array module (``xp``, from
:func:`fastconv._array.get_array_module` at the top of forward and kept on ``ctx.xp``), so
the losses run unchanged on NumPy or CuPy arrays; ``np.errstate`` and dtype checks stay
NumPy's.
"""

from __future__ import annotations

import numpy as np

from fastconv._array import get_array_module
from fastconv._functions.basic import unbroadcast
from fastconv.autograd import Context, Function

__all__ = ["CrossEntropy", "MSELoss", "NLLLoss"]


def _rows(x: np.ndarray, xp) -> np.ndarray:
    """(N, C, d1, ...) → (M, C) with the class axis last; (C,) → (1, C); (N, C) as is."""
    if x.ndim == 2:
        return x
    if x.ndim == 1:
        return x[None]
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(rows: np.ndarray, shape: tuple, xp) -> np.ndarray:
    """Inverse of _rows for an input of `shape`."""
    if len(shape) == 2:
        return rows
    if len(shape) == 1:
        return rows[0]
    return xp.moveaxis(rows.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


def _index_target(target: np.ndarray, n_classes: int, ignore_index: int, op: str, xp):
    """Flat targets, their validity mask and a clamped copy safe for indexing."""
    t = target.reshape(-1)
    valid = t != ignore_index
    tc = xp.where(valid, t, 0) if not valid.all() else t
    if tc.size and (tc.min() < 0 or tc.max() >= n_classes):
        bad = tc[(tc < 0) | (tc >= n_classes)][0]
        msg = (f"{op}: target {int(bad)} is out of bounds for {n_classes} classes "
               f"(ignore_index={ignore_index})")
        raise ValueError(msg)
    return tc, valid


def _reduce(losses: np.ndarray, reduction: str, denom, out_shape: tuple, dtype, xp):
    """Apply the reduction to per-row losses; the 'mean' denominator is `denom`."""
    if reduction == "none":
        return losses.reshape(out_shape)
    total = losses.sum()
    if reduction == "sum":
        return xp.asarray(total, dtype=dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: 0/0 = nan, as torch
        return xp.asarray(total / denom, dtype=dtype)


def _upstream(g: np.ndarray, reduction: str, denom, m: int, dtype) -> np.ndarray:
    """The gradient reaching each row's loss, as an (M, 1) column (or a scalar)."""
    if reduction == "none":
        return g.reshape(m, 1)
    if reduction == "sum":
        return g
    with np.errstate(invalid="ignore", divide="ignore"):
        return (g / denom).astype(dtype, copy=False)


def _log_softmax_rows(x: np.ndarray, xp) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    z -= xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    return z


class CrossEntropy(Function):
    """cross_entropy(x, target): class indices (integer target) or class probabilities."""

    @staticmethod
    def forward(ctx: Context, x, target, *, weight, ignore_index, reduction, label_smoothing):
        ctx.xp = xp = get_array_module(x, target, weight)
        rows = _rows(x, xp)
        m, c = rows.shape
        eps = label_smoothing
        logp = _log_softmax_rows(rows, xp)
        ctx.x_shape, ctx.reduction, ctx.eps, ctx.weight = x.shape, reduction, eps, weight
        if np.issubdtype(target.dtype, np.integer):
            tc, valid = _index_target(target, c, ignore_index, "cross_entropy", xp)
            ar = xp.arange(m)
            # w_t: the weight of each row's target class (0 for ignored rows)
            w_t = valid.astype(x.dtype) if weight is None else weight[tc] * valid
            losses = -logp[ar, tc] * w_t
            if eps:
                smooth = -(logp.sum(axis=1) if weight is None else logp @ weight)
                losses = (1 - eps) * losses + (eps / c) * (smooth * valid)
            denom = w_t.sum()
            ctx.index = (ar, tc, valid, w_t)
            out_shape = target.shape
        else:
            t = _rows(target, xp)
            if eps:
                t = t * (1 - eps) + eps / c
            a = t if weight is None else t * weight
            losses = -(logp * a).sum(axis=1)
            denom = m
            ctx.index = None
            ctx.a = a
            out_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        ctx.denom = denom
        ctx.save_for_backward(logp)
        return _reduce(losses, reduction, denom, out_shape, x.dtype, xp)

    @staticmethod
    def backward(ctx: Context, g):
        (logp,) = ctx.saved
        m, c = logp.shape
        up = _upstream(g, ctx.reduction, ctx.denom, m, logp.dtype)
        need_x, need_t = ctx.needs_input_grad
        eps, weight, xp = ctx.eps, ctx.weight, ctx.xp
        dx = dt = None
        if ctx.index is not None:
            ar, tc, valid, w_t = ctx.index
            # Σ_c a_c per row: (1 − ε)·w_y + (ε/C)·Σ w over valid rows
            rowsum = (1 - eps) * w_t
            if eps:
                wsum = c if weight is None else weight.sum()
                rowsum = rowsum + (eps / c) * wsum * valid
            grad = xp.exp(logp)
            grad *= rowsum[:, None]
            grad[ar, tc] -= (1 - eps) * w_t
            if eps:
                grad -= (eps / c) * (valid[:, None] if weight is None
                                     else weight * valid[:, None])
        else:
            a = ctx.a
            grad = xp.exp(logp) * a.sum(axis=1, keepdims=True) - a
            if need_t:
                s = (1 - eps) * up
                dt = -(logp if weight is None else logp * weight) * s
                dt = _unrows(dt.astype(logp.dtype, copy=False), ctx.x_shape, xp)
        if need_x:
            grad *= up
            dx = _unrows(grad, ctx.x_shape, xp)
        return dx, dt


class NLLLoss(Function):
    """nll_loss(x, target) with x holding log-probabilities and integer class targets."""

    @staticmethod
    def forward(ctx: Context, x, target, *, weight, ignore_index, reduction):
        ctx.xp = xp = get_array_module(x, target, weight)
        rows = _rows(x, xp)
        m, c = rows.shape
        tc, valid = _index_target(target, c, ignore_index, "nll_loss", xp)
        ar = xp.arange(m)
        w_t = valid.astype(x.dtype) if weight is None else weight[tc] * valid
        losses = -rows[ar, tc] * w_t
        ctx.index, ctx.x_shape, ctx.reduction = (ar, tc, w_t), x.shape, reduction
        ctx.denom, ctx.dtype = w_t.sum(), x.dtype
        return _reduce(losses, reduction, ctx.denom, target.shape, x.dtype, xp)

    @staticmethod
    def backward(ctx: Context, g):
        ar, tc, w_t = ctx.index
        m = ar.size
        shape = ctx.x_shape
        up = _upstream(g, ctx.reduction, ctx.denom, m, ctx.dtype)
        xp = ctx.xp
        grad = xp.zeros((m, shape[1] if len(shape) > 1 else shape[0]), dtype=ctx.dtype)
        grad[ar, tc] = -w_t * (up[:, 0] if np.ndim(up) == 2 else up)
        return _unrows(grad, shape, xp), None


class MSELoss(Function):
    """mean/sum/none of (x − t)² (broadcast), optionally weighted as torch 2.x's mse_loss."""

    @staticmethod
    def forward(ctx: Context, x, t, weight=None, *, reduction):
        xp = get_array_module(x, t, weight)
        d = xp.subtract(x, t)
        sq = d * d
        ctx.shapes, ctx.reduction = (np.shape(x), np.shape(t)), reduction
        if weight is not None:
            sq_w = sq * weight
            denom = weight.sum()
        else:
            sq_w, denom = sq, sq.size
        if reduction == "none":
            out = sq_w
        elif reduction == "sum":
            out = xp.asarray(sq_w.sum(), dtype=sq_w.dtype)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = xp.asarray(sq_w.sum() / denom, dtype=sq_w.dtype)
        ctx.denom = denom
        ctx.save_for_backward(d, weight, sq if ctx.needs_input_grad[2] else None, out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        d, weight, sq, out = ctx.saved
        need_x, need_t, need_w = ctx.needs_input_grad
        scale = g if ctx.reduction != "mean" else g / ctx.denom
        dx = dt = dw = None
        if need_x or need_t:
            gd = 2 * d * scale
            if weight is not None:
                gd *= weight
            gd = gd.astype(d.dtype, copy=False)
            dx = unbroadcast(gd, ctx.shapes[0]) if need_x else None
            dt = unbroadcast(-gd, ctx.shapes[1]) if need_t else None
        if need_w:
            # mean: L = Σ w·sq / Σ w, so dL/dw = (sq − L) / Σ w
            dw = sq * scale if ctx.reduction != "mean" else (sq - out) * scale
            dw = unbroadcast(dw.astype(d.dtype, copy=False), weight.shape)
        return dx, dt, dw
