"""The array-module abstraction: ops compute with the module of their input arrays.

A CuPy array is recognised by the package its type comes from. CuPy is not installed here,
so a stand-in array type from a 'cupy' package and a fake ``cupy`` module (injected into
``sys.modules``) check that ops route their array functions through that module: the
stand-in refuses conversion to NumPy, as a real CuPy array does, so an op that still calls
NumPy on it fails.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import fastconv as fc
from fastconv import functional as F
from fastconv._array import array_module, get_array_module, scatter_add
from fastconv._functions import activation as act
from fastconv._functions import basic as B
from fastconv.autograd import Context
from fastconv.tensor import Tensor


class FakeDeviceArray:
    """Stands in for cupy.ndarray: NumPy values behind a type of the 'cupy' package."""

    def __init__(self, values):
        self.values = np.asarray(values)

    shape = property(lambda self: self.values.shape)
    dtype = property(lambda self: self.values.dtype)
    ndim = property(lambda self: self.values.ndim)

    def __array__(self, *args, **kwargs):
        msg = "Implicit conversion to a NumPy array is not allowed."
        raise TypeError(msg)

    def __gt__(self, other):
        return FakeDeviceArray(self.values > other)

    def __mul__(self, other):
        other = other.values if isinstance(other, FakeDeviceArray) else other
        return FakeDeviceArray(self.values * other)

    def __getitem__(self, index):
        return FakeDeviceArray(self.values[index])


FakeDeviceArray.__module__ = "cupy._core.core"


def _unwrap(a):
    return a.values if isinstance(a, FakeDeviceArray) else a


@pytest.fixture
def fake_cupy(monkeypatch):
    """A fake ``cupy`` (and ``cupyx``) whose functions record their calls."""
    calls: list[str] = []

    def routed(name):
        def fn(*args, **kwargs):
            calls.append(name)
            return FakeDeviceArray(getattr(np, name)(*map(_unwrap, args), **kwargs))
        return fn

    cupy = types.ModuleType("cupy")
    cupy.ndarray = FakeDeviceArray
    cupy.asarray = lambda a: a if isinstance(a, FakeDeviceArray) else FakeDeviceArray(a)
    for name in ("maximum", "exp", "where", "zeros"):
        setattr(cupy, name, routed(name))
    cupyx = types.ModuleType("cupyx")

    def cupyx_scatter_add(out, index, values):
        calls.append("scatter_add")
        np.add.at(out.values, index, _unwrap(values))

    cupyx.scatter_add = cupyx_scatter_add
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    cupy.calls = calls
    return cupy


def _device_tensor(values) -> Tensor:
    # _from_op wraps the array as it is (Tensor() would convert through NumPy).
    return Tensor._from_op(FakeDeviceArray(np.asarray(values, dtype=np.float32)), None)


# ---- NumPy path -------------------------------------------------------------------------

def test_numpy_arrays_scalars_and_mixtures_give_numpy(monkeypatch):
    # No CuPy import on the NumPy path: an import of 'cupy' would raise here.
    monkeypatch.setitem(sys.modules, "cupy", None)
    a = np.ones((2, 3), dtype=np.float32)
    assert get_array_module() is np
    assert get_array_module(a) is np
    assert get_array_module(np.float64(1.5), np.int64(2), 3, 2.5, True, 1j, None) is np
    assert get_array_module(a, 2.0, None, np.zeros(3, dtype=np.int64)) is np
    assert get_array_module([1.0, 2.0], (3,)) is np
    assert array_module("cpu") is np
    with pytest.raises(RuntimeError, match="CUDA"):
        array_module("cuda")


def test_scatter_add_numpy_accumulates_repeats():
    out = np.zeros(4)
    scatter_add(np, out, np.array([0, 2, 2]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out, [1.0, 0.0, 5.0, 0.0])


def test_numpy_tensors_are_cpu_and_factories_take_a_device():
    t = fc.tensor([1.0, -2.0])
    assert t.device == "cpu"
    assert F.relu(t).device == "cpu"
    assert isinstance(t.numpy(), np.ndarray)
    for make in (fc.zeros, fc.ones, fc.randn, fc.rand):
        z = make(2, 3, device="cpu")
        assert z.device == "cpu"
        assert z.shape == (2, 3)
        assert z.dtype == np.float32
        with pytest.raises(RuntimeError, match="CUDA"):
            make(2, device="cuda")


# ---- a CuPy-like array is routed to its module ------------------------------------------

def test_cupy_like_arrays_select_the_cupy_module(fake_cupy):
    d = FakeDeviceArray([1.0])
    assert get_array_module(d) is fake_cupy
    assert get_array_module(np.ones(2), 3.0, d) is fake_cupy  # any device array wins


def test_relu_computes_with_the_inputs_module(fake_cupy):
    x = _device_tensor([-1.0, 0.0, 2.0])
    assert x.device == "cuda"
    y = F.relu(x)
    assert fake_cupy.calls == ["maximum"]
    assert isinstance(y.data, FakeDeviceArray)
    assert y.device == "cuda"
    np.testing.assert_array_equal(y.data.values, [0.0, 0.0, 2.0])


def test_exp_computes_with_the_inputs_module(fake_cupy):
    y = _device_tensor([0.0, 1.0]).exp()
    assert fake_cupy.calls == ["exp"]
    np.testing.assert_allclose(y.data.values, np.exp(np.float32([0.0, 1.0])))


def test_backward_uses_the_module_kept_on_ctx(fake_cupy):
    x = FakeDeviceArray(np.float32([-2.0, 3.0]))
    ctx = Context((True,))
    y = act.LeakyReLU.forward(ctx, x, negative_slope=0.5)
    (dx,) = act.LeakyReLU.backward(ctx, FakeDeviceArray(np.float32([1.0, 1.0])))
    assert fake_cupy.calls == ["where", "where"]
    np.testing.assert_array_equal(y.values, [-1.0, 3.0])
    np.testing.assert_array_equal(dx.values, [0.5, 1.0])


def test_indexing_backward_scatters_with_cupyx(fake_cupy):
    x = FakeDeviceArray(np.float32([1.0, 2.0, 3.0]))
    index = np.array([0, 2, 2])
    ctx = Context((True, False))
    B.GetItem.forward(ctx, x, index)
    (dx, _) = B.GetItem.backward(ctx, FakeDeviceArray(np.float32([1.0, 1.0, 1.0])))
    assert fake_cupy.calls == ["zeros", "scatter_add"]
    np.testing.assert_array_equal(dx.values, [1.0, 0.0, 2.0])


@pytest.mark.usefixtures("fake_cupy")
def test_numpy_on_a_device_tensor_raises_torchs_error():
    x = _device_tensor([1.0])
    with pytest.raises(TypeError, match=r"can't convert cuda tensor to numpy\. Use "
                       r"Tensor\.cpu\(\) to copy the tensor to host memory first\."):
        x.numpy()
