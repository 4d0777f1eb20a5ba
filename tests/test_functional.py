"""fastconv.functional forward and backward against torch.nn.functional in float64.

Every op runs in float32 and float64 on the same values as a torch float64 reference
(float32 inputs upcast), with autograd on both sides and a random upstream gradient.
Tolerances are conftest.tolerance with each direction's reduction length L and operand
magnitudes (STYLE.md §7); float64 adds rtol=1e-10. Also here: the kernel-skipping rule
(no backward_data for an input that needs no gradient), dropout statistics, and one test
per argument rule that functional.py adds (exception type and the argument named).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import DTYPE_IDS, DTYPES, assert_close, maxabs, tolerance, torch64

import fastconv as fc
import fastconv.functional as F
from fastconv import _core
from fastconv.tensor import Tensor


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)


def _t64(a):
    """torch float64 copy of a (0-d stays 0-d, unlike conftest.torch64)."""
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def check(what, ours, ref, inputs, rng, *, fwd, bwd):
    """Run ours(*Tensors) and ref(*torch64 tensors); compare output and input gradients.

    inputs: arrays; floating ones require grad on both sides (integer ones are passed as
    they are). fwd: (L, scale) for the forward tolerance; bwd: one (L, scale) per input
    (None where no gradient is compared); the backward tolerance multiplies scale by
    max|upstream gradient|. Returns (our output, torch output) for further checks.
    """
    dtype = next(a.dtype for a in inputs if np.issubdtype(a.dtype, np.floating))
    rtol = 1e-10 if dtype == np.float64 else 0.0
    floating = [np.issubdtype(a.dtype, np.floating) for a in inputs]
    ts = [fc.tensor(a, requires_grad=f) for a, f in zip(inputs, floating)]
    tt = [torch64(a).requires_grad_() if f else torch.from_numpy(a)
          for a, f in zip(inputs, floating)]
    y, y_ref = ours(*ts), ref(*tt)
    assert isinstance(y, Tensor), f"{what}: returned {type(y).__name__}"
    assert y.dtype == dtype, f"{what}: dtype {y.dtype} != {dtype}"
    assert_close(y.detach().numpy(), y_ref.detach().numpy(),
                 tolerance(dtype, fwd[0], fwd[1], 1.0), rtol=rtol, what=what)
    g = _randn(rng, y.shape, dtype)
    y.backward(g)
    y_ref.backward(_t64(g))
    for i, (t, r, tol) in enumerate(zip(ts, tt, bwd)):
        if tol is None:
            continue
        assert t.grad is not None, f"{what}: no gradient for input {i}"
        assert t.grad.dtype == dtype, f"{what}: grad {i} dtype {t.grad.dtype}"
        assert t.grad.shape == t.shape, f"{what}: grad {i} shape {t.grad.shape}"
        assert_close(t.grad.numpy(), r.grad.numpy(),
                     tolerance(dtype, tol[0], tol[1], maxabs(g)), rtol=rtol,
                     what=f"{what} grad[{i}]")
    return y, y_ref


# ---- conv2d ---------------------------------------------------------------------------

# (x shape, weight shape, bias, stride, padding, dilation, groups)
CONV_CASES = {
    "k3": ((2, 3, 7, 8), (4, 3, 3, 3), True, 1, 0, 1, 1),
    "s2p1": ((2, 3, 9, 9), (5, 3, 3, 3), True, 2, 1, 1, 1),
    "pair_args": ((1, 2, 8, 11), (3, 2, 3, 2), True, (2, 1), (1, 2), (1, 2), 1),
    "dilation2": ((2, 2, 9, 9), (3, 2, 3, 3), False, 1, 2, 2, 1),
    "groups2": ((2, 4, 6, 7), (6, 2, 3, 3), True, 1, 1, 1, 2),
    "depthwise": ((2, 5, 7, 7), (5, 1, 3, 3), True, 2, 1, 1, 5),
    "same_odd": ((2, 3, 6, 7), (4, 3, 3, 3), True, 1, "same", 1, 1),
    "same_even_dil": ((1, 2, 7, 6), (3, 2, 4, 2), True, 1, "same", (2, 3), 1),
    "valid": ((2, 3, 6, 6), (2, 3, 5, 5), True, 1, "valid", 1, 1),
    "1x1": ((2, 6, 5, 4), (3, 6, 1, 1), True, 1, 0, 1, 1),
    "unbatched": ((3, 7, 6), (4, 3, 3, 3), True, 1, 1, 1, 1),
    "kernel_eq_input_s3": ((1, 2, 5, 5), (3, 2, 5, 5), True, 3, 0, 1, 1),
}


# torch's reference warns that it copies the input for 'same' with an even kernel
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("case", list(CONV_CASES.values()), ids=list(CONV_CASES))
def test_conv2d(case, dtype, rng):
    xs, ws, has_bias, s, p, d, g = case
    x, w = _randn(rng, xs, dtype), _randn(rng, ws, dtype)
    inputs = [x, w] + ([_randn(rng, ws[0], dtype)] if has_bias else [])
    k_out, cg, kh, kw = ws
    y_shape = TF.conv2d(torch64(x), torch64(w), None, s, p, d, g).shape
    nohw = math.prod(y_shape) // k_out  # N·OH·OW (unbatched: OH·OW)

    def ours(*a):
        return F.conv2d(a[0], a[1], a[2] if has_bias else None, stride=s, padding=p,
                        dilation=d, groups=g)

    def ref(*a):
        return TF.conv2d(a[0], a[1], a[2] if has_bias else None, stride=s, padding=p,
                         dilation=d, groups=g)

    mx, mw = maxabs(x), maxabs(w)
    bwd = [(k_out // g * kh * kw, mw), (nohw, mx), (nohw, 1.0)]
    y, _ = check(f"conv2d{case}", ours, ref, inputs, rng,
                 fwd=(cg * kh * kw + 1, max(mx * mw, 1.0)), bwd=bwd)
    assert y.shape == tuple(y_shape)


def test_conv2d_accepts_numpy_and_tensor_mix(rng):
    x = _randn(rng, (2, 3, 6, 6), np.float32)
    w = fc.tensor(_randn(rng, (4, 3, 3, 3), np.float32), requires_grad=True)
    y = F.conv2d(x, w)  # ndarray input, Tensor weight
    assert isinstance(y, Tensor)
    assert y.requires_grad
    y.sum().backward()
    assert w.grad.shape == w.shape
    z = F.conv2d(x, w.detach().numpy())  # both arrays: a Tensor outside the graph
    assert isinstance(z, Tensor)
    assert not z.requires_grad


# ---- conv_transpose2d -------------------------------------------------------------------

# (x shape, weight shape (C_in, C_out/g, KH, KW), bias, stride, padding, output_padding,
#  groups, dilation)
CONVT_CASES = {
    "k3": ((2, 3, 5, 4), (3, 4, 3, 3), True, 1, 0, 0, 1, 1),
    "s2p1_op1": ((2, 3, 4, 5), (3, 2, 3, 3), True, 2, 1, 1, 1, 1),
    "pairs": ((1, 2, 4, 6), (2, 3, 2, 3), False, (2, 3), (0, 1), (1, 2), 1, 1),
    "groups2_dil2": ((2, 4, 5, 5), (4, 3, 3, 3), True, 1, 1, 0, 2, 2),
    "unbatched": ((3, 4, 4), (3, 2, 3, 3), True, 2, 0, 0, 1, 1),
}


@pytest.mark.parametrize("case", list(CONVT_CASES.values()), ids=list(CONVT_CASES))
def test_conv_transpose2d(case, dtype, rng):
    xs, ws, has_bias, s, p, op, g, d = case
    x, w = _randn(rng, xs, dtype), _randn(rng, ws, dtype)
    c_in, cg_out, kh, kw = ws
    inputs = [x, w] + ([_randn(rng, cg_out * g, dtype)] if has_bias else [])
    y_shape = TF.conv_transpose2d(torch64(x), torch64(w), None, s, p, op, g, d).shape
    nohw = math.prod(y_shape) // (cg_out * g)
    nhw = math.prod(xs) // c_in

    def ours(*a):
        return F.conv_transpose2d(a[0], a[1], a[2] if has_bias else None, stride=s,
                                  padding=p, output_padding=op, groups=g, dilation=d)

    def ref(*a):
        return TF.conv_transpose2d(a[0], a[1], a[2] if has_bias else None, stride=s,
                                   padding=p, output_padding=op, groups=g, dilation=d)

    mx, mw = maxabs(x), maxabs(w)
    bwd = [(cg_out * kh * kw, mw), (nhw, mx), (nohw, 1.0)]
    y, _ = check(f"conv_transpose2d{case}", ours, ref, inputs, rng,
                 fwd=(c_in // g * kh * kw + 1, max(mx * mw, 1.0)), bwd=bwd)
    assert y.shape == tuple(y_shape)


# ---- backward kernels are skipped for inputs that need no gradient ------------------------

def _forbid(monkeypatch, module, name):
    def boom(*_args, **_kwargs):
        msg = f"{name} must not run here"
        raise AssertionError(msg)

    monkeypatch.setattr(module, name, boom)


def test_conv2d_first_layer_skips_backward_data(monkeypatch, rng):
    """The input image needs no gradient: backward_data must not run (it would raise)."""
    x = _randn(rng, (2, 3, 8, 8), np.float64)
    w = fc.tensor(_randn(rng, (4, 3, 3, 3), np.float64), requires_grad=True)
    b = fc.tensor(_randn(rng, 4, np.float64), requires_grad=True)
    _forbid(monkeypatch, _core, "conv2d_backward_data")
    y = F.conv2d(x, w, b, padding=1)
    saved_x, saved_w = y._node.ctx.saved
    # Forward kept the input (dW reads it) but not the weight (only dx would read it).
    assert saved_x is not None
    assert saved_w is None
    ((y + 1) ** 2).mean().backward()
    wt, bt = torch64(w.detach().numpy()).requires_grad_(), torch64(b.detach().numpy()).requires_grad_()
    ((TF.conv2d(torch64(x), wt, bt, padding=1) + 1) ** 2).mean().backward()
    assert_close(w.grad.numpy(), wt.grad.numpy(), 1e-10, what="dW")
    assert_close(b.grad.numpy(), bt.grad.numpy(), 1e-10, what="db")


def test_conv2d_frozen_weight_skips_backward_weight(monkeypatch, rng):
    x = fc.tensor(_randn(rng, (2, 3, 6, 6), np.float64), requires_grad=True)
    w = _randn(rng, (4, 3, 3, 3), np.float64)
    _forbid(monkeypatch, _core, "conv2d_backward_weight")
    _forbid(monkeypatch, _core, "conv2d_backward_bias")
    y = F.conv2d(x, w)
    assert y._node.ctx.saved[0] is None  # x is not kept when W needs no gradient
    y.sum().backward()
    xt = torch64(x.detach().numpy()).requires_grad_()
    TF.conv2d(xt, torch64(w)).sum().backward()
    assert_close(x.grad.numpy(), xt.grad.numpy(), 1e-10, what="dx")


def test_conv_transpose2d_skips_unneeded_kernels(monkeypatch, rng):
    x = _randn(rng, (1, 3, 4, 4), np.float64)
    w = fc.tensor(_randn(rng, (3, 2, 3, 3), np.float64), requires_grad=True)
    _forbid(monkeypatch, _core, "conv_transpose2d_backward_data")
    F.conv_transpose2d(x, w, stride=2).sum().backward()
    assert w.grad.shape == w.shape


def test_conv_and_pool_run_the_cpp_kernels(monkeypatch, rng):
    """Forward and backward go through the compiled kernels (counted by wrapping them). The
    conv's weight gradient comes from the pooled gradient (the pool cuts positions 4-fold);
    its data gradient from the scattered one."""
    calls = []
    for name in ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
                 "conv2d_backward_bias", "conv2d_backward_weight_pooled", "max_pool2d_forward",
                 "max_pool2d_backward"):
        original = getattr(_core, name)

        def wrapped(*args, _f=original, _n=name, **kwargs):
            calls.append(_n)
            return _f(*args, **kwargs)

        monkeypatch.setattr(_core, name, wrapped)
    x = fc.tensor(_randn(rng, (2, 1, 8, 8), np.float32), requires_grad=True)
    w = fc.tensor(_randn(rng, (2, 1, 3, 3), np.float32), requires_grad=True)
    F.max_pool2d(F.conv2d(x, w, padding=1), 2).sum().backward()
    assert sorted(calls) == sorted(["conv2d_forward", "max_pool2d_forward",
                                    "max_pool2d_backward", "conv2d_backward_data",
                                    "conv2d_backward_weight_pooled"])


def _record_gemm(monkeypatch):
    calls = []
    original = _core.gemm

    def gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, bias=None):
        calls.append((trans_a, trans_b))
        return original(a, b, c, alpha, beta, trans_a, trans_b, bias)

    monkeypatch.setattr(_core, "gemm", gemm)
    return calls


def test_linear_gemm_calls(monkeypatch, rng):
    """Forward x·Wᵀ (trans_b); backward dW = dyᵀ·x (trans_a) and dx = dy·W, the latter only
    when x needs a gradient."""
    calls = _record_gemm(monkeypatch)
    x = _randn(rng, (5, 4), np.float32)
    w = fc.tensor(_randn(rng, (3, 4), np.float32), requires_grad=True)
    F.linear(x, w).sum().backward()
    assert calls == [(False, True), (True, False)]
    calls.clear()
    xt = fc.tensor(x, requires_grad=True)
    F.linear(xt, w).sum().backward()
    assert sorted(calls) == sorted([(False, True), (False, False), (True, False)])
    calls.clear()
    F.linear(xt, w.detach()).sum().backward()  # frozen weight: no dW product
    assert sorted(calls) == sorted([(False, True), (False, False)])


# ---- pooling -------------------------------------------------------------------------------

# (shape, kernel_size, stride, padding, dilation, ceil_mode)
MAXPOOL_CASES = {
    "k2": ((2, 3, 8, 8), 2, None, 0, 1, False),
    "k3s2p1_ceil": ((2, 2, 9, 8), 3, 2, 1, 1, True),
    "dilation2": ((1, 2, 9, 10), 3, 1, 1, 2, False),
    "pairs": ((2, 2, 10, 9), (3, 2), (2, 3), (1, 1), (1, 2), True),
    "unbatched": ((3, 7, 7), 3, 2, 1, 1, False),
}


@pytest.mark.parametrize("return_indices", [False, True], ids=["values", "indices"])
@pytest.mark.parametrize("case", list(MAXPOOL_CASES.values()), ids=list(MAXPOOL_CASES))
def test_max_pool2d(case, return_indices, dtype, rng):
    shape, k, s, p, d, ceil = case
    x = _randn(rng, shape, dtype)

    def ours(a):
        out = F.max_pool2d(a, k, s, p, d, ceil_mode=ceil, return_indices=return_indices)
        if return_indices:
            out, idx = out
            _, idx_ref = TF.max_pool2d(torch64(x), k, s, p, d, ceil_mode=ceil,
                                       return_indices=True)
            assert isinstance(idx, Tensor)
            assert idx.dtype == np.int64
            assert not idx.requires_grad
            np.testing.assert_array_equal(idx.numpy(), idx_ref.numpy())
        return out

    def ref(a):
        return TF.max_pool2d(a, k, s, p, d, ceil_mode=ceil)

    check(f"max_pool2d{case}", ours, ref, [x], rng, fwd=(1, 0.0), bwd=[(4, 1.0)])


@pytest.mark.parametrize("case", list(MAXPOOL_CASES.values()), ids=list(MAXPOOL_CASES))
def test_max_pool2d_of_relu(case, dtype, rng):
    """max_pool2d(relu(a)) records one op of a (the ReLU's backward folded into the
    pooling's); a's gradient as torch's through both ops, with windows all <= 0, tied
    maxima, and the ReLU output used again (its gradient adding through the ReLU node)."""
    shape, k, s, p, d, ceil = case
    x = _randn(rng, shape, dtype)
    x[..., :3, :4] = -np.abs(x[..., :3, :4])  # windows with no positive element
    x[..., 0, 0] = 0.0
    x[..., -2, -3:] = 1.5  # positive ties inside windows
    x[..., 1, 1] = x[..., 1, 2] = 0.0  # zero ties

    def ours(a):
        r = F.relu(a)
        y = F.max_pool2d(r, k, s, p, d, ceil_mode=ceil)
        assert y.grad_fn.inputs[0] is a  # the fused record (a regression here is only speed)
        return y + F.max_pool2d(r * r, k, s, p, d, ceil_mode=ceil)

    def ref(a):
        r = TF.relu(a)
        return (TF.max_pool2d(r, k, s, p, d, ceil_mode=ceil)
                + TF.max_pool2d(r * r, k, s, p, d, ceil_mode=ceil))

    m = maxabs(x)
    check(f"max_pool2d(relu){case}", ours, ref, [x], rng, fwd=(2, m * (1.0 + m)),
          bwd=[(9, 1.0 + 2.0 * m)])


# conv (x shape, w shape, stride, padding, dilation, groups) -> [relu] -> max_pool2d
# (kernel, stride, padding, ceil_mode): the conv's weight and bias gradients come from the
# pooled gradient (conv2d_backward_weight_pooled) wherever the pool cuts positions 4-fold.
CONV_POOL_CASES = {
    "lenet": (((2, 3, 12, 12), (4, 3, 5, 5), 1, 0, 1, 1), (2, 2, 0, False)),
    "cifar_same": (((2, 3, 8, 8), (5, 3, 3, 3), 1, 1, 1, 1), (2, 2, 0, False)),
    "overlap_groups": (((2, 4, 12, 12), (6, 2, 3, 3), 1, 1, 1, 2), (3, 2, 1, False)),
    "strided_dilated": (((1, 2, 19, 15), (3, 2, 3, 3), 2, 2, 2, 1), (2, 2, 0, True)),
}


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no_relu"])
@pytest.mark.parametrize("case", list(CONV_POOL_CASES.values()), ids=list(CONV_POOL_CASES))
def test_conv_max_pool2d_pooled_gradient(case, relu, dtype, rng, monkeypatch):
    """max_pool2d([relu](conv2d(x, w, b))): x, w and b gradients as torch's, with the
    dense weight and bias kernels forbidden (so the pooled path ran)."""
    (xs, ws, s, p, d, grp), (pk, ps, pp, ceil) = case
    x, w, b = _randn(rng, xs, dtype), _randn(rng, ws, dtype), _randn(rng, ws[0], dtype)
    _forbid(monkeypatch, _core, "conv2d_backward_weight")
    _forbid(monkeypatch, _core, "conv2d_backward_bias")

    def ours(x, w, b):
        y = F.conv2d(x, w, b, s, p, d, grp)
        return F.max_pool2d(F.relu(y) if relu else y, pk, ps, pp, ceil_mode=ceil)

    def ref(x, w, b):
        y = TF.conv2d(x, w, b, s, p, d, grp)
        return TF.max_pool2d(TF.relu(y) if relu else y, pk, ps, pp, ceil_mode=ceil)

    m = maxabs(x) * maxabs(w) * ws[1] * ws[2] * ws[3] + maxabs(b)
    n_out = xs[0] * 4 * xs[2] * xs[3]  # the most terms any weight-gradient entry adds
    check(f"conv->pool{case}", ours, ref, [x, w, b], rng, fwd=(ws[1] * ws[2] * ws[3], m),
          bwd=[(ws[0] * ws[2] * ws[3], maxabs(w)), (n_out, maxabs(x)), (n_out, 1.0)])


def test_conv_relu_max_pool_frozen_weight_bias_gradient(dtype, rng):
    """Only the bias needs a gradient: the sum of the pooled gradient through the ReLU's
    mask (no weight kernel), as torch's."""
    x, w = _randn(rng, (2, 3, 8, 8), dtype), _randn(rng, (4, 3, 3, 3), dtype)
    b = fc.tensor(_randn(rng, 4, dtype), requires_grad=True)
    out = F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2)
    g = _randn(rng, out.shape, dtype)
    out.backward(fc.tensor(g))
    tb = torch64(b.data).requires_grad_()
    ref = TF.max_pool2d(TF.relu(TF.conv2d(torch64(x), torch64(w), tb, padding=1)), 2)
    (ref * torch64(g)).sum().backward()
    assert_close(b.grad.numpy(), tb.grad.numpy(), tolerance(dtype, 32, 1.0, maxabs(g)),
                 what="db")


def test_conv_output_used_twice_gets_the_sum_of_both_gradients(dtype, rng, monkeypatch):
    """The conv output feeds the pool and something else: the pooled gradient is then
    scattered and added (the dense kernels run), as torch's sum."""
    x, w = _randn(rng, (2, 3, 8, 8), dtype), _randn(rng, (4, 3, 3, 3), dtype)
    _forbid(monkeypatch, _core, "conv2d_backward_weight_pooled")

    def ours(x, w):
        y = F.conv2d(x, w, padding=1)
        return F.max_pool2d(F.relu(y), 2) + F.avg_pool2d(y * y, 2)

    def ref(x, w):
        y = TF.conv2d(x, w, padding=1)
        return TF.max_pool2d(TF.relu(y), 2) + TF.avg_pool2d(y * y, 2)

    m = 27 * maxabs(x) * maxabs(w)
    check("conv used twice", ours, ref, [x, w], rng, fwd=(27, m * (1 + m)),
          bwd=[(36, maxabs(w) * (1 + m)), (2 * 64, maxabs(x) * (1 + m))])


def test_pool_that_keeps_most_positions_uses_the_dense_weight_gradient(rng, monkeypatch):
    """3x3 windows at stride 1 keep almost every position: no pooled path."""
    x = fc.tensor(_randn(rng, (2, 3, 8, 8), np.float64))
    w = fc.tensor(_randn(rng, (4, 3, 3, 3), np.float64), requires_grad=True)
    _forbid(monkeypatch, _core, "conv2d_backward_weight_pooled")
    F.max_pool2d(F.relu(F.conv2d(x, w)), 3, 1).sum().backward()
    tw = torch64(w.detach().numpy()).requires_grad_()
    TF.max_pool2d(TF.relu(TF.conv2d(torch64(x.numpy()), tw)), 3, 1).sum().backward()
    assert_close(w.grad.numpy(), tw.grad.numpy(), 1e-10, what="dw")


# (shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVGPOOL_CASES = {
    "k2": ((2, 3, 8, 8), 2, None, 0, False, True, None),
    "k3s2p1_ceil": ((2, 2, 9, 8), 3, 2, 1, True, True, None),
    "exclude_pad": ((2, 2, 9, 8), 3, 2, 1, True, False, None),
    "divisor": ((1, 2, 7, 9), (3, 2), (2, 1), (1, 1), False, True, 4),
    "divisor_ceil_excl": ((1, 2, 7, 9), 3, 2, 1, True, False, 5),
    "unbatched": ((3, 6, 7), 3, 1, 1, False, False, None),
}


@pytest.mark.parametrize("case", list(AVGPOOL_CASES.values()), ids=list(AVGPOOL_CASES))
def test_avg_pool2d(case, dtype, rng):
    shape, k, s, p, ceil, cip, div = case
    x = _randn(rng, shape, dtype)
    kh, kw = _pair(k)
    scale = 1.0 if div is None else kh * kw / div
    check(f"avg_pool2d{case}",
          lambda a: F.avg_pool2d(a, k, s, p, ceil, cip, div),
          lambda a: TF.avg_pool2d(a, k, s, p, ceil, cip, div),
          [x], rng, fwd=(kh * kw, maxabs(x) * scale), bwd=[(kh * kw, scale)])


@pytest.mark.parametrize(("shape", "size"), [((2, 3, 7, 9), (3, 4)), ((2, 2, 5, 6), 2),
                                              ((1, 2, 6, 5), (None, 3)),
                                              ((2, 4, 5), (7, 2))],
                         ids=["3x4", "int", "none_entry", "unbatched_upsample"])
def test_adaptive_pools(shape, size, dtype, rng):
    x = _randn(rng, shape, dtype)
    area = shape[-1] * shape[-2]
    check(f"adaptive_avg_pool2d{shape}->{size}", lambda a: F.adaptive_avg_pool2d(a, size),
          lambda a: TF.adaptive_avg_pool2d(a, size), [x], rng, fwd=(area, maxabs(x)),
          bwd=[(area, 1.0)])
    check(f"adaptive_max_pool2d{shape}->{size}", lambda a: F.adaptive_max_pool2d(a, size),
          lambda a: TF.adaptive_max_pool2d(a, size), [x], rng, fwd=(1, 0.0), bwd=[(area, 1.0)])
    _y, idx = F.adaptive_max_pool2d(x, size, return_indices=True)
    _, idx_ref = TF.adaptive_max_pool2d(torch64(x), size, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), idx_ref.numpy())


# ---- linear --------------------------------------------------------------------------------

@pytest.mark.parametrize(("x_shape", "bias"), [((6, 5), True), ((2, 3, 5), True),
                                               ((5,), True), ((4, 5), False),
                                               ((2, 1, 3, 5), False)],
                         ids=["2d", "3d", "1d", "nobias", "4d_nobias"])
def test_linear(x_shape, bias, dtype, rng):
    out_f, in_f = 4, x_shape[-1]
    x, w = _randn(rng, x_shape, dtype), _randn(rng, (out_f, in_f), dtype)
    inputs = [x, w] + ([_randn(rng, out_f, dtype)] if bias else [])
    m = math.prod(x_shape[:-1])
    mx, mw = maxabs(x), maxabs(w)
    y, _ = check(f"linear{x_shape}", F.linear, TF.linear,
                 inputs, rng, fwd=(in_f + 1, max(mx * mw, 1.0)),
                 bwd=[(out_f, mw), (m, mx), (m, 1.0)])
    assert y.shape == (*x_shape[:-1], out_f)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_wide_weight(bias, dtype, rng, monkeypatch):
    """A weight with more rows than the batch and >= 2^18 entries (CifarNet fc1): forward as
    y^T = W x^T (W read in place, x packed), then transposed into a C-contiguous y."""
    first_operands = []
    original = _core.gemm
    monkeypatch.setattr(_core, "gemm", lambda a, b, *rest: first_operands.append(a.shape)
                        or original(a, b, *rest))
    x, w = _randn(rng, (20, 4096), dtype), _randn(rng, (64, 4096), dtype)
    inputs = [x, w] + ([_randn(rng, 64, dtype)] if bias else [])
    mx, mw = maxabs(x), maxabs(w)
    y, _ = check("linear wide weight", F.linear, TF.linear, inputs, rng,
                 fwd=(4097, max(mx * mw, 1.0)), bwd=[(64, mw), (20, mx), (20, 1.0)])
    assert first_operands[0] == (64, 4096)  # W first: the product is y^T
    assert y.shape == (20, 64)
    assert F.linear(x, w).numpy().flags.c_contiguous


def test_linear_noncontiguous_input(rng):
    x = _randn(rng, (5, 6), np.float64)[:, ::2]  # a strided view
    w = _randn(rng, (2, 3), np.float64)
    assert_close(F.linear(x, w).numpy(), x @ w.T, 1e-12, what="linear strided input")


# ---- pad -----------------------------------------------------------------------------------

PADS = {
    "constant": [(1, 2), (1, 2, 3, 0), (2, -1, 0, 1), (-1, -1, -2, 1), (1, 0, 2, 1, 1, 1)],
    "reflect": [(1, 2), (2, 3, 1, 0), (-1, 2, 3, 1), (0, 0, 2, 2)],
    "replicate": [(1, 2), (3, 1, 4, 0), (-2, 3, 1, -1)],
    "circular": [(1, 2), (2, 4, 1, 3), (2, -1, -1, 3)],
}
PAD_CASES = [(mode, p) for mode, pads in PADS.items() for p in pads]


@pytest.mark.parametrize(("mode", "pad"), PAD_CASES, ids=[f"{m}{p}" for m, p in PAD_CASES])
def test_pad(mode, pad, dtype, rng):
    shape = (2, 3, 4, 5) if len(pad) == 4 or mode == "constant" else (2, 3, 5)
    x = _randn(rng, shape, dtype)
    check(f"pad {mode} {pad}", lambda a: F.pad(a, pad, mode),
          lambda a: TF.pad(a, pad, mode), [x], rng, fwd=(1, 0.0), bwd=[(9, 1.0)])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_unbatched_3d(mode, dtype, rng):
    x = _randn(rng, (3, 4, 5), dtype)
    check(f"pad unbatched {mode}", lambda a: F.pad(a, (1, 2, 3, 1), mode),
          lambda a: TF.pad(a, (1, 2, 3, 1), mode), [x], rng, fwd=(1, 0.0), bwd=[(9, 1.0)])


def test_pad_constant_value(dtype, rng):
    x = _randn(rng, (1, 2, 3, 3), dtype)
    check("pad value", lambda a: F.pad(a, (1, 1, 2, 0), value=-2.5),
          lambda a: TF.pad(a, (1, 1, 2, 0), value=-2.5), [x], rng, fwd=(1, 0.0),
          bwd=[(1, 1.0)])


# ---- activations ---------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (F.relu, TF.relu, 1),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu, 1),
    "leaky_relu_0.3": (lambda a: F.leaky_relu(a, 0.3), lambda a: TF.leaky_relu(a, 0.3), 1),
    "sigmoid": (F.sigmoid, torch.sigmoid, 4),
    "tanh": (F.tanh, torch.tanh, 4),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(name, dtype, rng):
    ours, ref, length = ACTIVATIONS[name]
    x = _randn(rng, (3, 4, 5), dtype) * 3
    x[0, 0, :3] = 0.0  # the kink: relu/leaky_relu gradients at exactly 0 follow torch
    x[1, 1, :2] = [40.0, -40.0]  # saturation (exp(40) would overflow float32 in 1/(1+e^-x))
    check(name, ours, ref, [x], rng, fwd=(length, 1.0 + maxabs(x) * (length == 1)),
          bwd=[(length, 1.0)])


def test_activation_tensor_methods(rng):
    x = fc.tensor(_randn(rng, (2, 3), np.float64))
    assert_close(x.relu().numpy(), np.maximum(x.numpy(), 0), 0.0, what="Tensor.relu")
    assert_close(x.sigmoid().numpy(), 1 / (1 + np.exp(-x.numpy())), 1e-15, what="sigmoid")
    assert_close(x.softmax(1).numpy(), F.softmax(x, 1).numpy(), 0.0, what="softmax")


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax(fn, dim, dtype, rng):
    x = _randn(rng, (3, 4, 5), dtype) * 4
    x[0, 0, 0] = 80.0  # exp would overflow float32 without the max subtraction
    n = x.shape[dim]
    scale = 1.0 if fn == "softmax" else maxabs(x) + math.log(n)
    check(f"{fn}(dim={dim})", lambda a: getattr(F, fn)(a, dim),
          lambda a: getattr(TF, fn)(a, dim), [x], rng, fwd=(n, scale), bwd=[(n, 1.0)])


def test_softmax_dtype_argument(rng):
    x = fc.tensor(_randn(rng, (2, 3), np.float32), requires_grad=True)
    y = F.log_softmax(x, dim=1, dtype=np.float64)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_softmax_implicit_dim_warns_like_torch(rng):
    x = _randn(rng, (2, 3, 4), np.float64)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(x)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y_ref = TF.softmax(torch64(x))
    assert_close(y.numpy(), y_ref.numpy(), 1e-15, what="implicit dim")


# ---- dropout -------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p, dtype):
    """Zero fraction within a 5-sigma binomial bound; kept values scaled by 1/(1 − p)."""
    fc.manual_seed(1234)
    x = np.ones((200, 250), dtype=dtype)
    y = F.dropout(x, p=p).numpy()
    n = x.size
    zeros = int((y == 0).sum())
    assert abs(zeros - n * p) <= 5 * math.sqrt(n * p * (1 - p)), f"{zeros} zeros of {n}, p={p}"
    kept = y[y != 0]
    np.testing.assert_allclose(kept, np.float64(1) / (1 - p), rtol=1e-6 if dtype == np.float32 else 1e-15)
    assert y.dtype == dtype


def test_dropout_gradient_is_the_mask(dtype, rng):
    fc.manual_seed(7)
    x = fc.tensor(_randn(rng, (40, 30), dtype), requires_grad=True)
    p = 0.3
    y = F.dropout(x, p)
    g = _randn(rng, y.shape, dtype)
    y.backward(g)
    mask = (y.detach().numpy() != 0).astype(dtype) / np.asarray(1 - p, dtype)
    assert_close(y.detach().numpy(), x.detach().numpy() * mask, tolerance(dtype, 1, maxabs(x.detach()), 2),
                 what="dropout y")
    assert_close(x.grad.numpy(), g * mask, tolerance(dtype, 1, maxabs(g), 2), what="dropout grad")


def test_dropout_reproducible_with_seed(rng):
    x = _randn(rng, (10, 10), np.float32)
    fc.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    fc.manual_seed(3)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)


def test_dropout_identity_cases(rng):
    x = fc.tensor(_randn(rng, (4, 5), np.float32), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    arr = x.detach().numpy()
    y = F.dropout(arr, 0.5, training=False)
    assert isinstance(y, Tensor)
    assert y.numpy() is arr
    z = F.dropout(x, 1.0)
    np.testing.assert_array_equal(z.detach().numpy(), 0)
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


# ---- losses --------------------------------------------------------------------------------

def _ce_case(rng, shape, dtype, n_ignored):
    x = _randn(rng, shape, dtype) * 2
    c = shape[1] if len(shape) > 1 else shape[0]
    t_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, c, size=t_shape).astype(np.int64)
    if n_ignored and t.ndim:
        t.reshape(-1)[:n_ignored] = -100
    return x, t, c


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", [(7, 5), (2, 4, 3, 2)], ids=["NC", "NCHW"])
def test_cross_entropy(shape, weighted, label_smoothing, reduction, dtype, rng):
    x, t, c = _ce_case(rng, shape, dtype, n_ignored=2)
    w = rng.random(c).astype(dtype) + 0.5 if weighted else None
    m = t.size

    def ours(a, b):
        return F.cross_entropy(a, b, weight=w, reduction=reduction,
                               label_smoothing=label_smoothing)

    def ref(a, b):
        return TF.cross_entropy(a, b, weight=None if w is None else torch64(w),
                                reduction=reduction, label_smoothing=label_smoothing)

    scale = (maxabs(x) + math.log(c) + 1) * (1.5 if weighted else 1.0)
    check(f"cross_entropy {shape} w={weighted} ls={label_smoothing} {reduction}", ours, ref,
          [x, t], rng, fwd=(m * c, scale), bwd=[(c, 1.5), None])


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_ignore_index(ignore_index, dtype, rng):
    x = _randn(rng, (8, 4), dtype)
    t = np.array([0, 2, 1, 2, 3, -100 if ignore_index == -100 else 0, 2, 1], dtype=np.int64)
    check(f"cross_entropy ignore_index={ignore_index}",
          lambda a, b: F.cross_entropy(a, b, ignore_index=ignore_index, label_smoothing=0.1),
          lambda a, b: TF.cross_entropy(a, b, ignore_index=ignore_index, label_smoothing=0.1),
          [x, t], rng, fwd=(32, maxabs(x) + 3), bwd=[(4, 1.0), None])


def test_cross_entropy_all_ignored_mean_is_nan(rng):
    x = fc.tensor(_randn(rng, (3, 4), np.float64), requires_grad=True)
    t = np.full(3, -100, dtype=np.int64)
    loss = F.cross_entropy(x, t)
    assert np.isnan(loss.item())
    assert np.isnan(TF.cross_entropy(torch64(x.detach().numpy()), torch.from_numpy(t)).item())
    assert F.cross_entropy(x, t, reduction="sum").item() == 0.0


def test_cross_entropy_unbatched(dtype, rng):
    x = _randn(rng, (6,), dtype)
    t = np.array(4, dtype=np.int64)
    for reduction in ("mean", "none"):
        check(f"cross_entropy unbatched {reduction}",
              lambda a, b, r=reduction: F.cross_entropy(a, b, reduction=r, label_smoothing=0.2),
              lambda a, b, r=reduction: TF.cross_entropy(a, b, reduction=r, label_smoothing=0.2),
              [x, t], rng, fwd=(6, maxabs(x) + 3), bwd=[(6, 1.0), None])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 2, 2)], ids=["NC", "NCHW"])
def test_cross_entropy_probability_targets(shape, reduction, dtype, rng):
    x = _randn(rng, shape, dtype)
    t = TF.softmax(torch64(_randn(rng, shape, dtype)), 1).numpy().astype(dtype)
    w = rng.random(shape[1]).astype(dtype) + 0.5
    c = shape[1]
    check(f"cross_entropy probs {shape} {reduction}",
          lambda a, b: F.cross_entropy(a, b, weight=w, reduction=reduction, label_smoothing=0.1),
          lambda a, b: TF.cross_entropy(a, b, weight=torch64(w), reduction=reduction,
                                        label_smoothing=0.1),
          [x, t], rng, fwd=(x.size, (maxabs(x) + 3) * 1.5),
          bwd=[(c, 1.5), (c, (maxabs(x) + 3) * 1.5)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", [(7, 5), (2, 4, 3, 2), (5,)], ids=["NC", "NCHW", "C"])
def test_nll_loss(shape, weighted, reduction, dtype, rng):
    x, t, c = _ce_case(rng, shape, dtype, n_ignored=1)
    w = rng.random(c).astype(dtype) + 0.5 if weighted else None
    check(f"nll_loss {shape} {reduction} w={weighted}",
          lambda a, b: F.nll_loss(a, b, weight=w, reduction=reduction),
          lambda a, b: TF.nll_loss(a, b, weight=None if w is None else torch64(w),
                                   reduction=reduction),
          [x, t], rng, fwd=(max(t.size, 1), maxabs(x) * 1.5), bwd=[(1, 1.5), None])


def test_nll_of_log_softmax_equals_cross_entropy(rng):
    x = fc.tensor(_randn(rng, (5, 3), np.float64), requires_grad=True)
    t = rng.integers(0, 3, 5)
    a = F.nll_loss(F.log_softmax(x, 1), t)
    b = F.cross_entropy(x, t)
    assert abs(a.item() - b.item()) < 1e-14


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, dtype, rng):
    x, t = _randn(rng, (3, 4, 5), dtype), _randn(rng, (3, 4, 5), dtype)
    s = maxabs(x) + maxabs(t)
    check(f"mse_loss {reduction}", lambda a, b: F.mse_loss(a, b, reduction=reduction),
          lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, t], rng,
          fwd=(x.size, s * s), bwd=[(2, 2 * s), (2, 2 * s)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_weighted(reduction, dtype, rng):
    x, t = _randn(rng, (4, 5), dtype), _randn(rng, (4, 5), dtype)
    w = rng.random((4, 5)).astype(dtype)
    s = maxabs(x) + maxabs(t)
    check(f"mse_loss weighted {reduction}",
          lambda a, b, c: F.mse_loss(a, b, reduction=reduction, weight=c),
          lambda a, b, c: TF.mse_loss(a, b, reduction=reduction, weight=c), [x, t, w], rng,
          fwd=(x.size, s * s), bwd=[(2, 2 * s), (2, 2 * s), (x.size, s * s)])


def test_mse_loss_broadcast_warns_and_reduces_gradient(dtype, rng):
    x, t = _randn(rng, (3, 1, 4), dtype), _randn(rng, (2, 4), dtype)
    s = maxabs(x) + maxabs(t)
    with pytest.warns(UserWarning, match="different to the input size"):
        check("mse_loss broadcast", F.mse_loss,
              TF.mse_loss, [x, t], rng, fwd=(24, s * s),
              bwd=[(4, 2 * s), (6, 2 * s)])


def test_legacy_size_average_reduce(rng):
    x = _randn(rng, (4, 3), np.float64)
    t = rng.integers(0, 3, 4)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        a = F.cross_entropy(x, t, size_average=False)
    assert abs(a.item() - F.cross_entropy(x, t, reduction="sum").item()) < 1e-14
    with pytest.warns(UserWarning, match="reduction='none'"):
        b = F.nll_loss(x, t, reduce=False)
    assert b.shape == (4,)
    with pytest.warns(UserWarning, match="reduction='mean'"):
        F.mse_loss(x, x, size_average=True)


# ---- batch_norm ----------------------------------------------------------------------------

@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 4)], ids=["NCHW", "NC"])
def test_batch_norm(shape, training, affine, dtype, rng):
    c = shape[1]
    x = (_randn(rng, shape, dtype) * 2 + 0.5).astype(dtype)
    rm, rv = _randn(rng, c, dtype), (rng.random(c) + 0.5).astype(dtype)
    rm_ref, rv_ref = torch64(rm), torch64(rv)
    rm_ours, rv_ours = rm.copy(), rv.copy()
    inputs = [x] + ([_randn(rng, c, dtype), _randn(rng, c, dtype)] if affine else [])
    m = x.size // c
    momentum = 0.3

    def ours(a, *wb):
        return F.batch_norm(a, rm_ours, rv_ours, *wb, training=training, momentum=momentum)

    def ref(a, *wb):
        return TF.batch_norm(a, rm_ref, rv_ref, *wb, training=training, momentum=momentum)

    axes = (0, *range(2, x.ndim))
    var = x.astype(np.float64).var(axis=axes) if training else rv.astype(np.float64)
    mean = x.astype(np.float64).mean(axis=axes) if training else rm.astype(np.float64)
    invstd = 1 / np.sqrt(var + 1e-5)
    xhat = maxabs((x - mean.reshape((1, c) + (1,) * (x.ndim - 2))) * invstd.reshape((1, c) + (1,) * (x.ndim - 2)))
    mw = maxabs(inputs[1]) if affine else 1.0
    mb = maxabs(inputs[2]) if affine else 0.0
    bwd = [(m, 3 * max(xhat, 1) * mw * maxabs(invstd)), (m, xhat), (m, 1.0)]
    check(f"batch_norm {shape} training={training} affine={affine}", ours, ref, inputs, rng,
          fwd=(m, max(xhat, 1) * mw + mb), bwd=bwd)
    # running statistics: updated in place in training (unbiased var), untouched in eval
    tol = tolerance(dtype, m, maxabs(x) ** 2 + 1, 1.0)
    assert_close(rm_ours, rm_ref.numpy(), tol, what="running_mean")
    assert_close(rv_ours, rv_ref.numpy(), tol, what="running_var")
    if not training:
        np.testing.assert_array_equal(rm_ours, rm)


def test_batch_norm_updates_tensor_buffers_in_place(rng):
    x = _randn(rng, (5, 2, 3, 3), np.float32)
    rm, rv = fc.zeros(2), fc.ones(2)
    arr_m, arr_v = rm.data, rv.data
    F.batch_norm(x, rm, rv, training=True)
    assert rm.data is arr_m
    assert rv.data is arr_v
    assert_close(rm.numpy(), 0.1 * x.mean(axis=(0, 2, 3)), 1e-6, what="running_mean")
    assert_close(rv.numpy(), 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), 1e-6,
                 what="running_var")
    with fc.no_grad():  # statistics update regardless of grad mode, as torch
        F.batch_norm(x, rm, rv, training=True)
    assert not np.allclose(rm.numpy(), 0.1 * x.mean(axis=(0, 2, 3)))


def test_batch_norm_training_without_running_stats(rng):
    x = _randn(rng, (4, 3, 2, 2), np.float64)
    y = F.batch_norm(x, None, None, training=True)
    y_ref = TF.batch_norm(torch64(x), None, None, training=True)
    assert_close(y.numpy(), y_ref.numpy(), 1e-12, what="batch_norm no running stats")


# ---- output types and graph recording ------------------------------------------------------

def test_no_grad_records_nothing(rng):
    x = fc.tensor(_randn(rng, (2, 3, 6, 6), np.float32), requires_grad=True)
    w = fc.tensor(_randn(rng, (2, 3, 3, 3), np.float32), requires_grad=True)
    with fc.no_grad():
        y = F.relu(F.conv2d(x, w))
    assert not y.requires_grad
    assert y.grad_fn is None


def test_no_grad_forward_saves_nothing_and_builds_no_node(monkeypatch, rng):
    """Function.apply's no-record path: with grad mode off, an op with ``infer`` (conv2d,
    relu, linear) runs it and builds no Context at all; an op without one (sigmoid) runs
    forward with needs_input_grad all False. The result carries no Node."""
    seen = []
    original = fc.autograd.Context.save_for_backward

    def spy(ctx, *arrays):
        seen.append((ctx.needs_input_grad, arrays))
        original(ctx, *arrays)

    monkeypatch.setattr(fc.autograd.Context, "save_for_backward", spy)
    x = fc.tensor(_randn(rng, (2, 3, 6, 6), np.float32), requires_grad=True)
    w = fc.tensor(_randn(rng, (2, 3, 3, 3), np.float32), requires_grad=True)
    with fc.no_grad():
        y = F.linear(F.relu(F.conv2d(x, w)).flatten(1), fc.tensor(np.ones((4, 32), np.float32)))
        assert seen == []
        z = F.sigmoid(y)
    for t in (y, z):
        assert t.grad_fn is None
        assert not t.requires_grad
    assert len(seen) == 1
    assert seen[0][0] == (False,)


@pytest.mark.parametrize("case", ["conv2d", "conv2d unbatched", "linear 3-D", "max_pool2d",
                                  "max_pool2d unbatched", "max_pool2d indices", "relu",
                                  "flatten"])
def test_infer_matches_recorded_forward(rng, case):
    """The ops' infer (the no-record path) returns bitwise what their forward returns."""
    x4 = _randn(rng, (2, 3, 7, 7), np.float32)
    w = fc.tensor(_randn(rng, (4, 3, 3, 3), np.float32), requires_grad=True)
    b = fc.tensor(_randn(rng, (4,), np.float32), requires_grad=True)
    lw = fc.tensor(_randn(rng, (5, 7), np.float32), requires_grad=True)
    lb = fc.tensor(_randn(rng, (5,), np.float32), requires_grad=True)
    ops = {
        "conv2d": (x4, lambda t: F.conv2d(t, w, b, padding=1)),
        "conv2d unbatched": (x4[0], lambda t: F.conv2d(t, w, b, stride=2)),
        "linear 3-D": (x4[0], lambda t: F.linear(t, lw, lb)),
        "max_pool2d": (x4, lambda t: F.max_pool2d(t, 2)),
        "max_pool2d unbatched": (x4[1], lambda t: F.max_pool2d(t, 3, 2, 1)),
        "max_pool2d indices": (x4, lambda t: F.max_pool2d(t, 2, return_indices=True)),
        "relu": (x4, F.relu),
        "flatten": (x4, lambda t: t.flatten(1)),
    }
    data, op = ops[case]
    recorded = op(fc.tensor(data, requires_grad=True))
    with fc.no_grad():
        plain = op(fc.tensor(data))
    if isinstance(recorded, tuple):
        assert np.array_equal(plain[1].numpy(), recorded[1].numpy())
        recorded, plain = recorded[0], plain[0]
    assert recorded.grad_fn is not None
    assert plain.grad_fn is None
    assert plain.shape == recorded.shape
    assert np.array_equal(plain.numpy(), recorded.detach().numpy())


def test_grad_mode_off_and_on_give_the_same_values(rng):
    """The no-record path runs the same forward: LeNet-5 and CifarNet logits agree bitwise."""
    for name in ("lenet5", "cifarnet"):
        model = fc.models.get_model(name)
        x = fc.tensor(_randn(rng, (2, *fc.models.MODELS[name].input_shape), np.float32))
        recorded = model(x)
        assert recorded.grad_fn is not None
        with fc.no_grad():
            plain = model(x)
        assert plain.grad_fn is None
        np.testing.assert_array_equal(plain.numpy(), recorded.detach().numpy())


def test_grad_recorded_when_only_some_inputs_require_it(rng):
    """The recording path still runs when just one input needs a gradient."""
    x = _randn(rng, (1, 2, 5, 5), np.float64)
    w = fc.tensor(_randn(rng, (3, 2, 3, 3), np.float64), requires_grad=True)
    y = F.max_pool2d(F.conv2d(x, w, padding=1), 2)
    assert y.requires_grad
    assert y.grad_fn.ctx.needs_input_grad == (True, False, False)  # input, args, indices_out
    y.sum().backward()
    wt = torch64(w.detach().numpy()).requires_grad_()
    TF.max_pool2d(TF.conv2d(torch64(x), wt, padding=1), 2).sum().backward()
    assert_close(w.grad.numpy(), wt.grad.numpy(), 1e-10, what="dW")


# ---- argument errors -----------------------------------------------------------------------

X4 = np.zeros((1, 2, 4, 4), np.float32)
W4 = np.zeros((3, 2, 3, 3), np.float32)
LOGITS = np.zeros((3, 4), np.float32)
TARGET = np.array([0, 1, 3])

ERRORS = {
    "conv2d_input_type": (lambda: F.conv2d(X4.tolist(), W4), TypeError, "input"),
    "conv2d_bias_type": (lambda: F.conv2d(X4, W4, bias=[1.0, 2.0, 3.0]), TypeError, "bias"),
    "conv2d_input_ndim": (lambda: F.conv2d(X4[0, 0], W4), ValueError, "input"),
    "conv_transpose2d_input_ndim": (lambda: F.conv_transpose2d(X4[0, 0], W4), ValueError,
                                    "input"),
    "max_pool2d_input_ndim": (lambda: F.max_pool2d(X4[0, 0], 2), ValueError, "input"),
    "avg_pool2d_input_type": (lambda: F.avg_pool2d(1.0, 2), TypeError, "input"),
    "adaptive_input_ndim": (lambda: F.adaptive_avg_pool2d(X4[None], 2), ValueError, "input"),
    "linear_weight_ndim": (lambda: F.linear(LOGITS, np.zeros(4, np.float32)), ValueError,
                           "weight"),
    "linear_bias_shape": (lambda: F.linear(LOGITS, np.zeros((2, 4), np.float32),
                                           np.zeros(3, np.float32)), ValueError, "bias"),
    "linear_bias_dtype": (lambda: F.linear(LOGITS, np.zeros((2, 4), np.float32),
                                           np.zeros(2, np.float64)), TypeError, "bias"),
    "pad_odd": (lambda: F.pad(X4, (1, 1, 1)), ValueError, "pad"),
    "pad_too_long": (lambda: F.pad(X4, (1,) * 10), ValueError, "pad"),
    "pad_not_ints": (lambda: F.pad(X4, (1.5, 1)), TypeError, "pad"),
    "pad_mode": (lambda: F.pad(X4, (1, 1), mode="mirror"), ValueError, "mode"),
    "pad_value_reflect": (lambda: F.pad(X4, (1, 1, 1, 1), mode="reflect", value=1.0),
                          ValueError, "value"),
    "pad_reflect_too_big": (lambda: F.pad(X4, (4, 0, 0, 0), mode="reflect"), ValueError,
                            "pad"),
    "pad_reflect_too_big_h": (lambda: F.pad(X4, (0, 0, 0, 5), mode="reflect"), ValueError,
                              "pad"),
    "pad_circular_wraps_twice": (lambda: F.pad(X4, (5, 0, 0, 0), mode="circular"),
                                 ValueError, "pad"),
    "pad_unsupported_length": (lambda: F.pad(X4, (1, 1), mode="replicate"), ValueError,
                               "pad"),
    "pad_replicate_empty": (lambda: F.pad(np.zeros((1, 1, 0, 3)), (1, 1, 1, 1),
                                          mode="replicate"), ValueError, "pad"),
    "pad_negative_size": (lambda: F.pad(X4, (-3, -2)), ValueError, "pad"),
    "leaky_relu_slope": (lambda: F.leaky_relu(X4, "0.1"), TypeError, "negative_slope"),
    "softmax_dim_range": (lambda: F.softmax(LOGITS, 2), ValueError, "dim"),
    "softmax_dim_type": (lambda: F.log_softmax(LOGITS, 1.0), TypeError, "dim"),
    "dropout_p_high": (lambda: F.dropout(X4, 1.5), ValueError, "p"),
    "dropout_p_negative": (lambda: F.dropout(X4, -0.1), ValueError, "p"),
    "dropout_p_type": (lambda: F.dropout(X4, "half"), TypeError, "p"),
    "ce_reduction": (lambda: F.cross_entropy(LOGITS, TARGET, reduction="avg"), ValueError,
                     "reduction"),
    "ce_label_smoothing": (lambda: F.cross_entropy(LOGITS, TARGET, label_smoothing=1.5),
                           ValueError, "label_smoothing"),
    "ce_target_shape": (lambda: F.cross_entropy(LOGITS, TARGET[:2]), ValueError, "target"),
    "ce_target_range": (lambda: F.cross_entropy(LOGITS, np.array([0, 4, 1])), ValueError,
                        "target"),
    "ce_target_negative": (lambda: F.cross_entropy(LOGITS, np.array([0, -1, 1])),
                           ValueError, "target"),
    "ce_target_dtype": (lambda: F.cross_entropy(LOGITS, TARGET.astype(bool)), TypeError,
                        "target"),
    "ce_prob_target_shape": (lambda: F.cross_entropy(LOGITS, np.zeros((3, 3), np.float32)),
                             ValueError, "target"),
    "ce_prob_target_dtype": (lambda: F.cross_entropy(LOGITS, np.zeros((3, 4))), TypeError,
                             "target"),
    "ce_weight_shape": (lambda: F.cross_entropy(LOGITS, TARGET, weight=np.ones(3)),
                        ValueError, "weight"),
    "ce_target_type": (lambda: F.cross_entropy(LOGITS, [0, 1, 2]), TypeError, "target"),
    "nll_target_float": (lambda: F.nll_loss(LOGITS, TARGET.astype(np.float32)), TypeError,
                         "target"),
    "nll_target_range": (lambda: F.nll_loss(LOGITS, np.array([0, 9, 1])), ValueError,
                         "target"),
    "nll_reduction": (lambda: F.nll_loss(LOGITS, TARGET, reduction=None), ValueError,
                      "reduction"),
    "mse_weight_shape": (lambda: F.mse_loss(LOGITS, LOGITS, weight=np.ones(4)), ValueError,
                         "weight"),
    "mse_reduction": (lambda: F.mse_loss(LOGITS, LOGITS, reduction="all"), ValueError,
                      "reduction"),
    "bn_input_ndim": (lambda: F.batch_norm(np.zeros(3), None, None, training=True),
                      ValueError, "input"),
    "bn_stat_shape": (lambda: F.batch_norm(X4, np.zeros(3), np.ones(3)), ValueError,
                      "running_mean"),
    "bn_weight_shape": (lambda: F.batch_norm(X4, None, None, np.ones(3, np.float32),
                                             training=True), ValueError, "weight"),
    "bn_weight_dtype": (lambda: F.batch_norm(X4, None, None, np.ones(2), training=True),
                        TypeError, "weight"),
    "bn_eval_needs_stats": (lambda: F.batch_norm(X4, None, None), ValueError, "running_mean"),
    "bn_one_value_per_channel": (lambda: F.batch_norm(np.zeros((1, 3)), None, None,
                                                      training=True), ValueError,
                                 "per channel"),
    "bn_momentum_type": (lambda: F.batch_norm(X4, None, None, training=True, momentum=None),
                         TypeError, "momentum"),
}


# Hyperparameters are normalised once in F (kernels.conv2d_args, max_pool2d_args, ...) and
# the Functions call _core with them as given: bad values must still fail there, by name.
HYPERPARAMETER_ERRORS = {
    "conv2d_stride_float": (lambda: F.conv2d(X4, W4, stride=1.5), TypeError, "stride"),
    "conv2d_stride_bool": (lambda: F.conv2d(X4, W4, stride=True), TypeError, "stride"),
    "conv2d_stride_bools": (lambda: F.conv2d(X4, W4, stride=(True, 1)), ValueError, "stride"),
    "conv2d_stride_triple": (lambda: F.conv2d(X4, W4, stride=(1, 1, 1)), ValueError, "stride"),
    "conv2d_stride_zero": (lambda: F.conv2d(X4, W4, stride=0), ValueError, "stride"),
    "conv2d_dilation_str": (lambda: F.conv2d(X4, W4, dilation="1"), TypeError, "dilation"),
    "conv2d_padding_float": (lambda: F.conv2d(X4, W4, padding=0.5), TypeError, "padding"),
    "conv2d_padding_negative": (lambda: F.conv2d(X4, W4, padding=-1), ValueError, "padding"),
    "conv2d_groups_float": (lambda: F.conv2d(X4, W4, groups=1.0), TypeError, "groups"),
    "conv2d_weight_ndim": (lambda: F.conv2d(X4, W4[0]), ValueError, "weight"),
    "conv_transpose2d_output_padding": (
        lambda: F.conv_transpose2d(X4, W4.transpose(1, 0, 2, 3), output_padding=(1, 2, 3)),
        ValueError, "output_padding"),
    "max_pool2d_kernel_float": (lambda: F.max_pool2d(X4, 2.0), TypeError, "kernel_size"),
    "max_pool2d_stride_list3": (lambda: F.max_pool2d(X4, 2, [1, 1, 1]), ValueError, "stride"),
    "max_pool2d_dilation_zero": (lambda: F.max_pool2d(X4, 2, dilation=0), ValueError,
                                 "dilation"),
    "avg_pool2d_padding_str": (lambda: F.avg_pool2d(X4, 2, padding="1"), TypeError, "padding"),
    "avg_pool2d_divisor_float": (lambda: F.avg_pool2d(X4, 2, divisor_override=2.0), TypeError,
                                 "divisor_override"),
    "adaptive_output_size_float": (lambda: F.adaptive_max_pool2d(X4, 2.5), TypeError,
                                   "output_size"),
}


@pytest.mark.parametrize("name", list(HYPERPARAMETER_ERRORS))
def test_hyperparameter_errors_name_the_argument(name):
    call, exc, match = HYPERPARAMETER_ERRORS[name]
    with pytest.raises(exc, match=match):
        call()


def test_hyperparameters_accept_numpy_ints_and_lists(rng):
    """The exact-type fast path of the pair normalisation is not the only accepted form."""
    x = _randn(rng, (1, 2, 7, 7), np.float64)
    w = _randn(rng, (3, 2, 3, 3), np.float64)
    ref = F.conv2d(x, w, stride=2, padding=1).numpy()
    for stride, padding in ((np.int64(2), [1, 1]), ([2], (np.int32(1), 1)), ((2, 2), 1)):
        assert_close(F.conv2d(x, w, stride=stride, padding=padding).numpy(), ref, 0,
                     what=f"stride={stride!r} padding={padding!r}")
    assert_close(F.max_pool2d(x, [3], np.int64(2), (1,)).numpy(),
                 F.max_pool2d(x, 3, 2, 1).numpy(), 0, what="max_pool2d list/np args")


@pytest.mark.parametrize("name", list(ERRORS))
def test_argument_errors(name):
    call, exc, match = ERRORS[name]
    with pytest.raises(exc, match=match):
        call()


KERNEL_ERRORS = {
    "conv2d_dtype_mismatch": (lambda: F.conv2d(X4, W4.astype(np.float64)), TypeError),
    "conv2d_same_strided": (lambda: F.conv2d(X4, W4, padding="same", stride=2), ValueError),
    "conv2d_bad_padding_string": (lambda: F.conv2d(X4, W4, padding="full"), ValueError),
    "conv2d_channels": (lambda: F.conv2d(X4, np.zeros((3, 3, 3, 3), np.float32)), ValueError),
    "max_pool2d_padding": (lambda: F.max_pool2d(X4, 2, padding=2), ValueError),
    "linear_in_features": (lambda: F.linear(LOGITS, np.zeros((2, 5), np.float32)), ValueError),
}


@pytest.mark.parametrize("name", list(KERNEL_ERRORS))
def test_kernel_errors_come_through(name):
    """Validation done by fastconv.kernels / the GEMM binding is not repeated but surfaces."""
    call, exc = KERNEL_ERRORS[name]
    with pytest.raises(exc):
        call()
