"""The compiled ReLU kernels (_core.relu_forward / relu_backward) against torch in float64.

ReLU is exact (a select), so results must equal torch's bit for bit: values, NaN
propagation, the gradient at exactly 0, the threaded block split (sizes around the
16384-element block and its multiples, at 1 and 2 threads), every ISA's kernels (vector
bodies and remainders), non-contiguous inputs, and the binding's errors. F.relu's autograd is covered with the other activations in
test_functional.py; here also the fallbacks F.relu takes for dtypes the kernels do not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DTYPE_IDS, DTYPES

import fastconv as fc
import fastconv.functional as F
from fastconv import _core

SIZES = [0, 1, 15, 16383, 16384, 16385, 3 * 16384 + 7, 301_056]


def _torch_relu(x):
    """torch's forward and input gradient for upstream g, in float64."""
    t = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    return t, torch.relu(t)


@pytest.mark.usefixtures("threads", "isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", SIZES)
def test_relu_kernels_equal_torch(n, dtype):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(dtype)
    x[: min(n, 5)] = 0.0  # the kink: torch's gradient at exactly 0 is 0
    if n > 9:
        x[7], x[9] = np.nan, -np.inf
    g = rng.standard_normal(n).astype(dtype)
    t, ty = _torch_relu(x)
    ty.backward(torch.from_numpy(g.astype(np.float64)))

    y = _core.relu_forward(x)
    assert y.dtype == dtype
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, ty.detach().numpy().astype(dtype))  # NaN == NaN here
    dx = _core.relu_backward(g, y)
    assert dx.dtype == dtype
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx, t.grad.numpy().astype(dtype))


def test_relu_kernels_keep_shape_and_read_non_contiguous_inputs():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6, 20, 30)).astype(np.float32)
    x = base[:, ::2, :, ::3]  # strided view
    g = rng.standard_normal((4, 3, 20, 10)).astype(np.float32).transpose(0, 1, 3, 2)
    y = _core.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    yt = np.ascontiguousarray(y.transpose(0, 1, 3, 2))
    np.testing.assert_array_equal(_core.relu_backward(g, yt), np.where(yt > 0, g, 0))
    assert np.shares_memory(base, x)
    assert not np.shares_memory(y, x)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: _core.relu_forward([1.0, -1.0]), TypeError, "input to be a numpy.ndarray"),
        (lambda: _core.relu_forward(np.ones(3, np.int32)), TypeError, "float32 or float64"),
        (lambda: _core.relu_backward(np.ones(3), np.ones(4)), ValueError,
         r"same shape, got \(3,\) and \(4,\)"),
        (lambda: _core.relu_backward(np.ones(3), np.ones(3, np.float32)), TypeError,
         "grad_output and output to have the same dtype"),
        (lambda: _core.relu_backward(np.ones(3), None), TypeError, "output to be a numpy"),
    ],
)
def test_relu_kernel_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_functional_relu_falls_back_for_integer_dtypes(dtype):
    x = np.array([[-2, 0, 3], [4, -5, 6]], dtype=dtype)
    y = F.relu(fc.tensor(x)).numpy()
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, torch.relu(torch.from_numpy(x)).numpy())


def test_functional_relu_falls_back_for_float16_with_torchs_gradient():
    x = np.array([-2.0, 0.0, 3.0, np.nan, -np.inf], np.float16)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float16)
    t = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    torch.relu(t).backward(torch.from_numpy(g.astype(np.float64)))
    ours = fc.tensor(x, requires_grad=True)
    y = F.relu(ours)
    y.backward(fc.tensor(g))
    assert y.dtype == np.float16
    assert ours.grad.dtype == np.float16
    np.testing.assert_array_equal(y.detach().numpy(),
                                  torch.relu(t).detach().numpy().astype(np.float16))
    np.testing.assert_array_equal(ours.grad.numpy(), t.grad.numpy().astype(np.float16))


def test_functional_relu_uses_the_kernels_for_float_arrays(monkeypatch):
    calls = []
    real_fwd, real_bwd = _core.relu_forward, _core.relu_backward
    monkeypatch.setattr(_core, "relu_forward", lambda a: calls.append("fwd") or real_fwd(a))
    monkeypatch.setattr(_core, "relu_backward",
                        lambda g, y: calls.append("bwd") or real_bwd(g, y))
    x = fc.tensor(np.linspace(-1, 1, 7, dtype=np.float32), requires_grad=True)
    F.relu(x).sum().backward()
    assert calls == ["fwd", "bwd"]
    np.testing.assert_array_equal(x.grad.numpy(), (np.linspace(-1, 1, 7) > 0).astype(np.float32))


# ---- the SGD step kernel (fastconv.optim.SGD's compiled path) -----------------------------

SGD_RULES = {
    "plain": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "decay_maximize": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.1,
                       "nesterov": False, "maximize": True},
    "momentum": {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "dampening_decay": {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05,
                        "nesterov": False},
    "nesterov_decay": {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01,
                       "nesterov": True},
}


def _sgd_reference(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    """torch.optim.SGD's single-tensor rule on float64 copies: (new p, new buf)."""
    d = -g if maximize else g.copy()
    if weight_decay != 0:
        d = d + weight_decay * p
    if momentum != 0:
        buf = d.copy() if first else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


@pytest.mark.usefixtures("threads", "isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [0, 1, 15, 16385, 3 * 16384 + 7])
@pytest.mark.parametrize("rule", list(SGD_RULES), ids=list(SGD_RULES))
def test_sgd_step_kernel(rule, n, dtype):
    """Two steps (the buffer's first and a later one) against the rule in float64; each
    operation rounds once in the kernel (or fuses a multiply-add), so a step is within a few
    ulps of the magnitudes involved."""
    kw = {"maximize": False, **SGD_RULES[rule]}
    rng = np.random.default_rng(n)
    p = rng.standard_normal(n).astype(dtype)
    buf = np.empty_like(p) if kw["momentum"] else None
    ref_p, ref_buf = p.astype(np.float64), None
    eps = np.finfo(dtype).eps
    for first in (True, False):
        g = rng.standard_normal(n).astype(dtype)
        lr = 0.1
        _core.sgd_step(p, g, buf, lr, kw["momentum"], kw["dampening"], kw["weight_decay"],
                       kw["nesterov"], kw["maximize"], first)
        ref_p, ref_buf = _sgd_reference(ref_p, g.astype(np.float64), ref_buf, lr,
                                        first=first, **kw)
        # the float64 reference starts from our rounded values each step
        scale = 1.0 + np.abs(ref_p).max(initial=0.0) + (
            0.0 if ref_buf is None else np.abs(ref_buf).max(initial=0.0))
        np.testing.assert_allclose(p, ref_p, rtol=0, atol=8 * eps * scale)
        if buf is not None:
            np.testing.assert_allclose(buf, ref_buf, rtol=0, atol=8 * eps * scale)
            ref_buf = buf.astype(np.float64)
        ref_p = p.astype(np.float64)


def test_sgd_step_reads_strided_grad():
    rng = np.random.default_rng(3)
    p = rng.standard_normal((6, 5)).astype(np.float32)
    g = rng.standard_normal((5, 6)).astype(np.float32).T  # a transposed view
    expect = p - np.float32(0.5) * g
    _core.sgd_step(p, g, None, 0.5, 0.0, 0.0, 0.0, False, False, False)
    np.testing.assert_array_equal(p, expect)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((np.ones(3), np.ones(4), None), ValueError, r"same shape, got \(3,\) and \(4,\)"),
        ((np.ones(3), np.ones(3, np.float32), None), TypeError, "param and grad"),
        ((np.ones(3, np.int64), np.ones(3, np.int64), None), TypeError, "float32 or float64"),
        ((np.ones(3), [1.0, 2.0, 3.0], None), TypeError, "grad to be a numpy.ndarray"),
        ((np.ones((3, 4))[:, ::2], np.ones((3, 2)), np.ones((3, 2))), ValueError,
         "param to be a writeable"),
        ((np.ones(3), np.ones(3), np.ones(3, np.float32)), TypeError, "momentum_buffer"),
        ((np.ones(3), np.ones(3), np.ones(4)), ValueError, "momentum_buffer to have shape"),
    ],
)
def test_sgd_step_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        _core.sgd_step(*args, 0.1, 0.9, 0.0, 0.0, False, False, False)


def test_sgd_step_refuses_read_only_param_overlap_and_missing_buffer():
    p = np.ones(4)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="param to be a writeable"):
        _core.sgd_step(p, np.ones(4), None, 0.1, 0.0, 0.0, 0.0, False, False, False)
    q = np.ones(4)
    with pytest.raises(ValueError, match="overlap"):
        _core.sgd_step(q, np.ones(4), q, 0.1, 0.9, 0.0, 0.0, False, False, False)
    with pytest.raises(ValueError, match="needs a momentum_buffer"):
        _core.sgd_step(q, np.ones(4), None, 0.1, 0.9, 0.0, 0.0, False, False, False)
    np.testing.assert_array_equal(q, np.ones(4))  # nothing written on refusal


def test_sgd_step_grad_sharing_param_memory():
    """A gradient that is the parameter itself is read before the update (from a copy)."""
    p = np.arange(1.0, 40.0, dtype=np.float32)
    expect = p - np.float32(0.25) * p
    _core.sgd_step(p, p, None, 0.25, 0.0, 0.0, 0.0, False, False, False)
    np.testing.assert_array_equal(p, expect)
    q = np.arange(1.0, 40.0)
    shifted = q[1:].copy()
    _core.sgd_step(q[:-1], q[1:], None, 1.0, 0.0, 0.0, 0.0, False, False, False)
    np.testing.assert_array_equal(q[:-1], np.arange(1.0, 39.0) - shifted)
