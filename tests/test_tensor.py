"""fc.Tensor and the autograd engine: construction, dtypes, grad mode, graph semantics.

Numbers are checked against torch (float64) or against values fixed by definition (a
gradient of ones, an accumulated sum); finite-difference checks of every op are in
test_autograd_fd.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close

import fastconv as fc


def test_tensor_copies_and_default_dtypes():
    a = np.arange(3.0)
    t = fc.tensor(a)
    a[0] = 99.0
    assert t.data[0] == 0.0  # fc.tensor copies, like torch.tensor
    assert t.dtype == np.float64  # NumPy input keeps its dtype
    assert fc.tensor([1.0, 2.0]).dtype == np.float32  # Python floats: torch's default float32
    assert fc.tensor([1, 2]).dtype == np.int64
    assert fc.tensor(1.5).shape == ()
    assert fc.tensor([1, 2], dtype=fc.float64).dtype == np.float64
    assert fc.Tensor(a).data is a  # the constructor wraps without copying


def test_requires_grad_only_for_floating_point():
    with pytest.raises(RuntimeError, match="floating point"):
        fc.tensor([1, 2], requires_grad=True)


def test_backward_scalar_and_explicit_gradient():
    x = fc.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    assert_close(x.grad.data, 2 * np.array([1.0, -2.0, 3.0]), 0.0, what="d sum(x^2)")
    y = x * 3.0
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        y.backward(np.ones(2))
    x.grad = None
    y.backward(np.array([1.0, 10.0, 100.0]))
    assert_close(x.grad.data, [3.0, 30.0, 300.0], 0.0, what="explicit grad")


def test_gradients_accumulate_across_backward_calls_and_reuse():
    x = fc.tensor(np.array([2.0]), requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    assert x.grad.data.tolist() == [5.0]  # 2x + 1
    (x * 4.0).sum().backward()
    assert x.grad.data.tolist() == [9.0]  # accumulated, as torch


def test_leaf_gradients_never_share_memory():
    """Fresh kernel outputs become .grad without a copy (Conv2d, Linear: fresh_grads);
    every other gradient is copied. Either way no two leaves' gradients share memory, nor
    does a gradient share memory with an array the caller passed in, and a second
    backward adds instead of overwriting."""
    rng = np.random.default_rng(0)
    a = fc.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = fc.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    (a + b).sum().backward()  # the same upstream array reaches both
    assert not np.shares_memory(a.grad.data, b.grad.data)
    w = fc.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    bias = fc.tensor(rng.standard_normal(5), requires_grad=True)
    x = fc.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    fc.nn.functional.linear(x, w, bias).sum().backward()
    grads = [x.grad.data, w.grad.data, bias.grad.data]
    for i, gi in enumerate(grads):
        for gj in grads[i + 1:]:
            assert not np.shares_memory(gi, gj)
    first = w.grad.data.copy()
    fc.nn.functional.linear(x, w, bias).sum().backward()
    assert_close(w.grad.data, 2 * first, 1e-12, what="accumulated dW")
    g = np.ones((2, 3, 4, 4))
    k = fc.tensor(rng.standard_normal((3, 3, 3, 3)), requires_grad=True)
    img = fc.tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    fc.nn.functional.conv2d(img, k, padding=1).backward(g)
    assert not np.shares_memory(img.grad.data, g)
    assert not np.shares_memory(img.grad.data, k.grad.data)


def test_second_backward_through_freed_graph_raises():
    x = fc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_no_grad_detach_and_requires_grad_propagation():
    x = fc.tensor(np.ones(3), requires_grad=True)
    c = fc.tensor(np.ones(3))
    assert (x + c).requires_grad
    assert not (c + c).requires_grad
    with fc.no_grad():
        z = x * 2.0
        assert not fc.is_grad_enabled()
    assert fc.is_grad_enabled()
    assert not z.requires_grad
    assert z.is_leaf
    d = x.detach()
    assert not d.requires_grad
    assert d.data is x.data

    @fc.no_grad()
    def f(t):
        return t * 2.0

    assert not f(x).requires_grad


def test_numpy_refuses_tensors_that_require_grad():
    x = fc.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert np.asarray(x.detach()).tolist() == [1.0, 1.0]


def test_ndarray_operand_defers_to_tensor():
    x = fc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = np.array([10.0, 20.0]) - x
    assert isinstance(y, fc.Tensor)
    y.sum().backward()
    assert x.grad.data.tolist() == [-1.0, -1.0]


def test_broadcast_gradient_matches_torch():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 1, 4)), rng.standard_normal((2, 4))
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ((ta * tb + tb / (ta * ta + 1)) ** 2).mean().backward()
    fa, fb = fc.tensor(a, requires_grad=True), fc.tensor(b, requires_grad=True)
    ((fa * fb + fb / (fa * fa + 1)) ** 2).mean().backward()
    assert_close(fa.grad.data, ta.grad.numpy(), 1e-12, what="broadcast grad a")
    assert_close(fb.grad.data, tb.grad.numpy(), 1e-12, what="broadcast grad b")


def test_max_with_dim_returns_values_and_indices_like_torch():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5))
    values, indices = fc.tensor(a).max(dim=1)
    tv, ti = torch.tensor(a).max(dim=1)
    assert_close(values.data, tv.numpy(), 0.0, what="max values")
    assert indices.data.tolist() == ti.tolist()
    assert fc.tensor(a).argmax(dim=0).data.tolist() == torch.tensor(a).argmax(dim=0).tolist()


def test_to_dtype_is_differentiable_and_device_errors():
    x = fc.tensor(np.array([1.5, 2.5], dtype=np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    assert x.grad.data.tolist() == [3.0, 5.0]
    assert x.to("cpu") is x
    with pytest.raises(RuntimeError, match="CUDA"):
        x.to("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        fc.tensor([1.0], device="tpu")
    assert fc.cuda.is_available() is False


def test_cat_stack_and_setitem():
    a = fc.tensor(np.ones((2, 3)), requires_grad=True)
    b = fc.tensor(np.full((1, 3), 2.0), requires_grad=True)
    c = fc.cat([a, b], dim=0)
    assert c.shape == (3, 3)
    (c * fc.tensor(np.arange(9.0).reshape(3, 3))).sum().backward()
    assert b.grad.data.tolist() == [[6.0, 7.0, 8.0]]
    s = fc.stack([a, a], dim=1)
    assert s.shape == (2, 2, 3)
    t = fc.zeros(2, 2)
    t[0, 1] = 5.0
    assert t.data.tolist() == [[0.0, 5.0], [0.0, 0.0]]
    with pytest.raises(RuntimeError, match="in-place"):
        a[0, 0] = 1.0


def test_repr_and_item():
    assert repr(fc.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(fc.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert fc.tensor([[3.5]]).item() == 3.5
    with pytest.raises(RuntimeError, match="cannot be converted"):
        fc.tensor([1.0, 2.0]).item()


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (0, 3, 4), (2, 0, 4), (3,), ()])
def test_flatten_matches_torch_including_zero_size(shape):
    """Every valid (start_dim, end_dim), also on tensors with a zero-size axis (where a -1
    in the target shape could not be inferred), against torch.flatten; forward and grad."""
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    ndim = max(len(shape), 1)
    for start in range(-ndim, ndim):
        for end in range(-ndim, ndim):
            if start % ndim > end % ndim:
                continue
            t = fc.tensor(x, requires_grad=True)
            y = t.flatten(start, end)
            ref = torch.from_numpy(x).flatten(start, end)
            assert y.shape == tuple(ref.shape), (shape, start, end)
            assert np.array_equal(y.detach().numpy(), ref.numpy())
            y.sum().backward()
            assert t.grad.shape == shape


def test_flatten_errors():
    t = fc.tensor(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(IndexError, match="dimension out of range"):
        t.flatten(3)
    with pytest.raises(IndexError, match="dimension out of range"):
        t.flatten(0, -4)
    with pytest.raises(ValueError, match=r"start_dim \(2\) cannot come after end_dim \(1\)"):
        t.flatten(2, 1)
