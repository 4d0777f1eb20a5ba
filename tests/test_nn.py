"""fastconv.nn against torch.nn: forward/backward parity, state_dict, init, modes, repr.

Parity: each module is built with the same constructor arguments in both libraries, ours
loads the torch module's state_dict converted to NumPy, and both see the same input and
the same random upstream gradient. The reference is always torch in float64 (float32
values upcast), per STYLE §7. Tolerances come from conftest.tolerance with a reduction
length L per case (the longest sum in forward, backward_data or backward_weight) and the
scale S = max(1, max|x|)·max(1, max|w|)·max(1, max|dy|), which bounds every product term
of the three reductions; float64 also gets rtol = 1e-10.

Initialisation is checked by distribution (bounds, moments), never by comparing our
random numbers to torch's.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import assert_close, maxabs, tolerance, torch64

import fastconv as fc
from fastconv import nn
from fastconv.nn import init
from fastconv.nn.module import registered

TNN = torch.nn


def _torch_value(v):
    return torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v


def make_pair(name: str, args: tuple, kwargs: dict, dtype):
    """(ours, torch float64 reference) with the torch module's weights loaded into ours."""
    torch.manual_seed(0)
    ref = getattr(TNN, name)(*args, **{k: _torch_value(v) for k, v in kwargs.items()})
    ours = getattr(nn, name)(*args, **kwargs)
    result = ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    if np.dtype(dtype) == np.float64:
        ours.double()
    ref.double()
    return ours, ref


# (id, module name, args, kwargs, input shape, target spec, L)
# target spec: None (no target), ("class", C), ("float",) — losses take (input, target).
CASES = [
    ("conv", "Conv2d", (3, 4, 3), {}, (2, 3, 7, 6), None, 40),
    ("conv_all_args", "Conv2d", (4, 6, (3, 2)),
     {"stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": False}, (2, 4, 9, 8), None,
     64),
    ("conv_same_dilated", "Conv2d", (2, 3, 4), {"padding": "same", "dilation": 2}, (1, 2, 8, 7),
     None, 64),
    ("conv_valid", "Conv2d", (2, 3, 3), {"padding": "valid"}, (2, 2, 5, 6), None, 32),
    ("conv_reflect", "Conv2d", (2, 3, 3), {"padding": (1, 2), "padding_mode": "reflect"},
     (2, 2, 6, 7), None, 128),
    ("conv_replicate", "Conv2d", (2, 3, 3),
     {"padding": 2, "padding_mode": "replicate", "stride": 2},
     (2, 2, 6, 7), None, 128),
    ("conv_circular", "Conv2d", (2, 3, (2, 3)), {"padding": (1, 1), "padding_mode": "circular"},
     (2, 2, 5, 6), None, 128),
    ("conv_same_reflect", "Conv2d", (2, 3, (3, 4)), {"padding": "same", "padding_mode": "reflect"},
     (1, 2, 6, 7), None, 64),
    ("conv_transpose", "ConvTranspose2d", (4, 6, 3),
     {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 5, 4), None, 64),
    ("conv_transpose_dilated", "ConvTranspose2d", (3, 2, (2, 3)),
     {"stride": (1, 2), "dilation": 2, "bias": False}, (2, 3, 4, 3), None, 64),
    ("maxpool", "MaxPool2d", (2,), {}, (2, 3, 8, 7), None, 1),
    ("maxpool_all_args", "MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True},
     (2, 3, 8, 7), None, 9),
    ("maxpool_dilated", "MaxPool2d", ((2, 3),), {"stride": 1, "dilation": 2}, (1, 2, 7, 9),
     None, 6),
    ("avgpool", "AvgPool2d", (2,), {}, (2, 3, 8, 7), None, 4),
    ("avgpool_all_args", "AvgPool2d", (3,),
     {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, (2, 3, 8, 7),
     None, 9),
    ("avgpool_divisor", "AvgPool2d", ((2, 3),), {"divisor_override": 5}, (1, 2, 6, 9), None, 6),
    ("adaptive_avgpool", "AdaptiveAvgPool2d", ((3, 5),), {}, (2, 3, 7, 9), None, 9),
    ("adaptive_maxpool", "AdaptiveMaxPool2d", (4,), {}, (2, 3, 7, 9), None, 9),
    ("linear", "Linear", (7, 5), {}, (4, 7), None, 7),
    ("linear_3d_nobias", "Linear", (7, 5), {"bias": False}, (2, 3, 7), None, 7),
    ("relu", "ReLU", (), {}, (2, 3, 4, 5), None, 1),
    ("leaky_relu", "LeakyReLU", (0.2,), {}, (2, 3, 4, 5), None, 1),
    ("sigmoid", "Sigmoid", (), {}, (2, 3, 4, 5), None, 1),
    ("tanh", "Tanh", (), {}, (2, 3, 4, 5), None, 1),
    ("softmax", "Softmax", (1,), {}, (3, 6, 2), None, 6),
    ("log_softmax", "LogSoftmax", (-1,), {}, (3, 7), None, 7),
    ("flatten", "Flatten", (), {}, (2, 3, 4, 5), None, 1),
    ("flatten_0_2", "Flatten", (0, 2), {}, (2, 3, 4, 5), None, 1),
    ("identity", "Identity", (), {}, (2, 3), None, 1),
    ("dropout_p0", "Dropout", (0.0,), {}, (2, 3), None, 1),
    ("batchnorm", "BatchNorm2d", (3,), {}, (4, 3, 5, 6), None, 120),
    ("batchnorm_no_affine", "BatchNorm2d", (3,), {"affine": False, "momentum": None},
     (4, 3, 5, 6), None, 120),
    ("batchnorm_no_bias", "BatchNorm2d", (3,), {"bias": False, "eps": 1e-3}, (4, 3, 5, 6),
     None, 120),
    ("cross_entropy", "CrossEntropyLoss", (), {}, (6, 5), ("class", 5), 30),
    ("cross_entropy_all_args", "CrossEntropyLoss", (),
     {"weight": np.array([0.5, 1.0, 2.0, 1.5, 0.25], dtype=np.float32), "ignore_index": 2,
          "label_smoothing": 0.1}, (6, 5), ("class", 5), 30),
    ("cross_entropy_spatial_sum", "CrossEntropyLoss", (), {"reduction": "sum"},
     (2, 4, 3, 3), ("class", 4), 72),
    ("cross_entropy_none", "CrossEntropyLoss", (), {"reduction": "none"}, (6, 5),
     ("class", 5), 5),
    ("nll", "NLLLoss", (), {"weight": np.array([1.0, 2.0, 0.5], dtype=np.float32)}, (5, 3),
     ("class", 3), 15),
    ("mse", "MSELoss", (), {}, (3, 4, 2), ("float",), 24),
    ("mse_sum", "MSELoss", (), {"reduction": "sum"}, (3, 4), ("float",), 12),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_module_matches_torch(case, dtype, rng):
    cid, name, args, kwargs, shape, target_spec, length = case
    ours, ref = make_pair(name, args, kwargs, dtype)
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch64(x).requires_grad_(True)
    xf = fc.tensor(x, requires_grad=True)
    extra_ours, extra_ref = (), ()
    if target_spec is not None and target_spec[0] == "class":
        tshape = (shape[0], *shape[2:])
        target = rng.integers(0, target_spec[1], tshape).astype(np.int64)
        extra_ours, extra_ref = (fc.tensor(target),), (torch.from_numpy(target),)
    elif target_spec is not None:
        target = rng.standard_normal(shape).astype(dtype)
        extra_ours, extra_ref = (fc.tensor(target),), (torch64(target),)
    out = ours(xf, *extra_ours)
    out_ref = ref(xt, *extra_ref)
    assert out.dtype == np.dtype(dtype), f"{cid}: output dtype {out.dtype}"
    dy = rng.standard_normal(tuple(out_ref.shape))
    params_ref = dict(ref.named_parameters())
    scale = (max(1.0, maxabs(x)) * max(1.0, maxabs(dy))
             * max([1.0] + [maxabs(p.detach().numpy()) for p in params_ref.values()]))
    atol = tolerance(dtype, length, scale, 1.0)
    rtol = 1e-10 if np.dtype(dtype) == np.float64 else 0.0
    assert_close(out.detach().numpy(), out_ref.detach().numpy(), atol, rtol=rtol,
                 what=f"{cid} forward {dtype.__name__}")
    out.backward(dy.astype(dtype))
    out_ref.backward(torch.from_numpy(dy))
    assert_close(xf.grad.numpy(), xt.grad.numpy(), atol, rtol=rtol,
                 what=f"{cid} input grad {dtype.__name__}")
    params = dict(ours.named_parameters())
    assert list(params) == list(params_ref)
    for pname, p in params.items():
        assert p.dtype == np.dtype(dtype)
        assert p.grad is not None, f"{cid}: no grad for {pname}"
        assert_close(p.grad.numpy(), params_ref[pname].grad.numpy(), atol, rtol=rtol,
                     what=f"{cid} grad of {pname} {dtype.__name__}")
    for bname, b in ref.named_buffers():  # BatchNorm's running statistics after one step
        assert_close(ours.get_buffer(bname).data, b.numpy(), atol, rtol=rtol,
                     what=f"{cid} buffer {bname}")


def test_maxpool_return_indices_matches_torch(rng):
    ours, ref = make_pair("MaxPool2d", (3,), {"stride": 2, "padding": 1, "return_indices": True},
                          np.float64)
    x = rng.standard_normal((2, 3, 7, 8))
    out, idx = ours(fc.tensor(x))
    out_ref, idx_ref = ref(torch64(x))
    assert_close(out.numpy(), out_ref.numpy(), 0.0, what="maxpool values")
    np.testing.assert_array_equal(np.asarray(idx), idx_ref.numpy())
    ours2, ref2 = make_pair("AdaptiveMaxPool2d", ((2, 3),), {"return_indices": True},
                            np.float64)
    out, idx = ours2(fc.tensor(x))
    out_ref, idx_ref = ref2(torch64(x))
    assert_close(out.numpy(), out_ref.numpy(), 0.0, what="adaptive maxpool values")
    np.testing.assert_array_equal(np.asarray(idx), idx_ref.numpy())


def test_conv_transpose_output_size_matches_torch(rng):
    ours, ref = make_pair("ConvTranspose2d", (2, 3, 3), {"stride": 3, "padding": 1}, np.float64)
    x = rng.standard_normal((1, 2, 4, 5))
    for size in [(10, 13), (12, 15), [1, 3, 11, 14]]:
        out = ours(fc.tensor(x), output_size=size)
        out_ref = ref(torch64(x), output_size=list(size))
        assert_close(out.detach().numpy(), out_ref.detach().numpy(),
                     tolerance(np.float64, 27, maxabs(x), 1.0),
                     rtol=1e-10, what=f"conv_transpose output_size={size}")
    with pytest.raises(ValueError, match="requested an output size of"):
        ours(fc.tensor(x), output_size=(9, 13))


def test_small_cnn_end_to_end_matches_torch(rng):
    """A nested Sequential (conv-bn-relu-pool, flatten, linear) and its loss, in float64."""

    def net(lib):
        return lib.Sequential(OrderedDict([
            ("features", lib.Sequential(lib.Conv2d(3, 8, 3, padding=1), lib.BatchNorm2d(8),
                                        lib.ReLU(), lib.MaxPool2d(2),
                                        lib.Conv2d(8, 4, 3, padding=1, padding_mode="reflect"),
                                        lib.LeakyReLU(0.1), lib.AdaptiveAvgPool2d(2))),
            ("flatten", lib.Flatten()),
            ("classifier", lib.Sequential(lib.Dropout(0.5), lib.Linear(16, 10))),
        ]))

    torch.manual_seed(0)
    ref = net(TNN).double()
    ours = net(nn)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    ours.double()
    ours.classifier[0].p = 0.0  # keep the comparison deterministic while in train mode
    ref.classifier[0].p = 0.0
    x = rng.standard_normal((4, 3, 8, 8))
    y = rng.integers(0, 10, 4)
    for _ in range(2):  # the second step sees updated running statistics
        ours.zero_grad()
        ref.zero_grad()
        loss = nn.CrossEntropyLoss()(ours(fc.tensor(x)), fc.tensor(y))
        loss_ref = TNN.CrossEntropyLoss()(ref(torch64(x)), torch.from_numpy(y))
        loss.backward()
        loss_ref.backward()
        scale = maxabs(x) * max(maxabs(p.detach().numpy()) for p in ref.parameters())
        atol = tolerance(np.float64, 4 * 8 * 8 * 9, scale, 1.0)
        assert_close(loss.item(), loss_ref.item(), atol, rtol=1e-10, what="cnn loss")
        for (name, p), (name_ref, p_ref) in zip(ours.named_parameters(), ref.named_parameters()):
            assert name == name_ref
            assert_close(p.grad.numpy(), p_ref.grad.numpy(), atol, rtol=1e-10,
                         what=f"cnn grad {name}")
    ours.eval()
    ref.eval()
    with fc.no_grad():
        out = ours(fc.tensor(x))
    with torch.no_grad():
        out_ref = ref(torch64(x))
    assert_close(out.numpy(), out_ref.numpy(), atol, rtol=1e-10, what="cnn eval logits")


# ---- state_dict --------------------------------------------------------------------------

STATE_CASES = [
    ("Conv2d", (3, 6, 5), {}), ("Conv2d", (3, 6, 5), {"bias": False}),
    ("ConvTranspose2d", (4, 6, 3), {"groups": 2}), ("Linear", (400, 120), {}),
    ("BatchNorm2d", (16,), {}), ("BatchNorm2d", (16,), {"affine": False}),
    ("BatchNorm2d", (16,), {"track_running_stats": False}), ("BatchNorm2d", (4,), {"bias": False}),
    ("MaxPool2d", (2,), {}), ("AvgPool2d", (2,), {}), ("AdaptiveAvgPool2d", (1,), {}),
    ("AdaptiveMaxPool2d", (1,), {}), ("ReLU", (), {}), ("LeakyReLU", (), {}), ("Sigmoid", (), {}),
    ("Tanh", (), {}), ("Softmax", (1,), {}), ("Flatten", (), {}), ("Dropout", (), {}),
    ("CrossEntropyLoss", (), {}), ("CrossEntropyLoss", (), {"weight": np.ones(3, np.float32)}),
    ("MSELoss", (), {}), ("Identity", (), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), STATE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(STATE_CASES)])
def test_state_dict_keys_shapes_dtypes_match_torch(name, args, kwargs):
    ours = getattr(nn, name)(*args, **kwargs)
    ref = getattr(TNN, name)(*args, **{k: _torch_value(v) for k, v in kwargs.items()})
    sd, sd_ref = ours.state_dict(), ref.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == list(sd_ref)
    for key, value in sd.items():
        assert isinstance(value, np.ndarray)
        assert value.shape == tuple(sd_ref[key].shape), key
        assert value.dtype == sd_ref[key].numpy().dtype, key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]


def lenet_like(lib):
    return lib.Sequential(OrderedDict([
        ("features", lib.Sequential(lib.Conv2d(1, 6, 5), lib.BatchNorm2d(6), lib.ReLU(),
                                    lib.MaxPool2d(2), lib.Conv2d(6, 16, 5), lib.ReLU(),
                                    lib.MaxPool2d(2))),
        ("flatten", lib.Flatten()),
        ("classifier", lib.Sequential(lib.Linear(400, 120), lib.ReLU(), lib.Dropout(0.5),
                                      lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10))),
        ("heads", lib.ModuleList([lib.Linear(10, 2), lib.Linear(10, 2), lib.Tanh()])),
    ]))


def test_nested_state_dict_and_names_match_torch():
    ours, ref = lenet_like(nn), lenet_like(TNN)
    sd, sd_ref = ours.state_dict(), ref.state_dict()
    assert list(sd) == list(sd_ref)
    assert [v.shape for v in sd.values()] == [tuple(v.shape) for v in sd_ref.values()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in ref.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in ref.named_children()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert len(list(ours.parameters())) == len(list(ref.parameters()))
    assert len(list(ours.modules())) == len(list(ref.modules()))
    assert [n for n, _ in ours.features.named_parameters(prefix="f")] == [
        n for n, _ in ref.features.named_parameters(prefix="f")]
    assert [n for n, _ in ours.named_parameters(recurse=False)] == []
    # load torch's values, then state_dict round-trips them exactly
    ours.load_state_dict({k: v.numpy() for k, v in sd_ref.items()})
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, sd_ref[key].numpy(), err_msg=key)
    # and back: torch loads ours
    ref2 = lenet_like(TNN)
    ref2.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for key, value in ref2.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), sd_ref[key].numpy(), err_msg=key)


def test_state_dict_is_a_copy_and_keep_vars_gives_tensors():
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    before = sd["weight"].copy()
    m.weight.data += 1
    np.testing.assert_array_equal(sd["weight"], before)
    kv = m.state_dict(keep_vars=True)
    assert kv["weight"] is m.weight
    assert isinstance(kv["bias"], nn.Parameter)
    assert list(m.state_dict(prefix="lin.")) == ["lin.weight", "lin.bias"]


def test_non_persistent_buffer_and_shared_parameters():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = self.a  # shared module: parameters once, state_dict keys twice (torch)
            self.register_buffer("scratch", fc.zeros(3), persistent=False)
            self.register_buffer("kept", np.arange(3.0))

    m = M()
    assert list(m.state_dict()) == ["kept", "a.weight", "a.bias", "b.weight", "b.bias"]
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias"]
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == [
        "a.weight", "a.bias", "b.weight", "b.bias"]
    assert [n for n, _ in m.named_buffers()] == ["scratch", "kept"]
    assert [n for n, _ in m.named_modules()] == ["", "a"]
    assert isinstance(m.kept, fc.Tensor)


# ---- load_state_dict ---------------------------------------------------------------------

def test_load_state_dict_copies_in_place_keeping_dtype_and_identity():
    m = nn.BatchNorm2d(3)
    w = m.weight
    w_array = m.weight.data
    m.load_state_dict({"weight": fc.tensor([1.0, 2.0, 3.0], dtype=np.float64),
                       "bias": [0.5, 0.25, 0.125],  # anything np.asarray takes
                       "running_mean": torch.tensor([1.0, 1.0, 1.0]),
                       "running_var": np.full(3, 2.0),
                       "num_batches_tracked": np.array([7.0])})  # 1-d into 0-d, as torch
    assert m.weight is w
    assert m.weight.data is w_array
    assert m.weight.dtype == np.float32
    assert m.running_var.dtype == np.float32
    assert m.num_batches_tracked.dtype == np.int64
    assert int(m.num_batches_tracked.item()) == 7
    np.testing.assert_array_equal(m.weight.data, [1, 2, 3])
    np.testing.assert_array_equal(m.bias.data, [0.5, 0.25, 0.125])
    # a Parameter that requires grad (e.g. from state_dict(keep_vars=True)) loads too
    m2 = nn.BatchNorm2d(3)
    m2.load_state_dict(m.state_dict(keep_vars=True))
    np.testing.assert_array_equal(m2.weight.data, [1, 2, 3])


def test_load_state_dict_strict_errors_like_torch():
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    good = m.state_dict()
    bad = dict(good)
    del bad["0.bias"]
    bad["extra"] = np.zeros(1)
    bad["2.weight"] = np.zeros((2, 2))
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Sequential:\n\t")
    lines = msg.split("\n\t")[1:]
    assert lines[0] == 'Missing key(s) in state_dict: "0.bias". '
    assert lines[1] == 'Unexpected key(s) in state_dict: "extra". '
    assert lines[2].startswith("size mismatch for 2.weight: copying a param with shape (2, 2)")
    # same message lines as torch (torch writes shapes as torch.Size([...]))
    ref = TNN.Sequential(TNN.Linear(3, 2), TNN.ReLU(), TNN.Linear(2, 1))
    with pytest.raises(RuntimeError) as info_ref:
        ref.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in bad.items()})
    ref_lines = str(info_ref.value).split("\n\t")
    assert ref_lines[:3] == msg.split("\n\t")[:3]
    # nothing was copied by the failing call
    np.testing.assert_array_equal(m.state_dict()["0.weight"], good["0.weight"])


def test_load_state_dict_non_strict_returns_keys():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    sd = m.state_dict()
    partial = {"0.weight": np.ones((2, 3)), "head.weight": np.zeros(2)}
    result = m.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"]
    assert result.unexpected_keys == ["head.weight"]
    assert result == (["0.bias", "1.weight", "1.bias"], ["head.weight"])
    np.testing.assert_array_equal(m[0].weight.data, np.ones((2, 3)))
    np.testing.assert_array_equal(m[1].weight.data, sd["1.weight"])
    assert repr(m.load_state_dict(sd)) == "<All keys matched successfully>"
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        m.load_state_dict({"0.weight": np.ones((3, 3))}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([("0.weight", np.ones((2, 3)))])
    with pytest.raises(RuntimeError, match=r'While copying the parameter named "0\.bias"'):
        m.load_state_dict({**sd, "0.bias": "abc"})


def test_batchnorm_missing_num_batches_tracked_is_not_an_error():
    ref = TNN.BatchNorm2d(2)
    sd = {k: v.numpy() for k, v in ref.state_dict().items() if k != "num_batches_tracked"}
    m = nn.BatchNorm2d(2)
    assert m.load_state_dict(sd) == ([], [])
    assert ref.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}) == ([], [])


# ---- default initialisation --------------------------------------------------------------

def _check_uniform(values, bound: float, what: str) -> None:
    """values look like U(−bound, bound): inside the bounds, reaching them, right moments."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    assert np.abs(np.asarray(values)).max() <= np.float32(bound), f"{what}: outside ±{bound}"
    # P(max|v| < b(1 − t)) = (1 − t)^n ≈ exp(−tn): t = 20/n fails with probability e^−20
    assert np.abs(v).max() >= bound * (1 - min(0.5, 20 / n)), f"{what}: never near ±{bound}"
    var = bound**2 / 3
    assert abs(v.mean()) <= 6 * math.sqrt(var / n), f"{what}: mean {v.mean()}"
    # the sample variance of U(−b, b) has standard error √(4b⁴/(45n)); 6 sigma
    assert abs(v.var() - var) <= 6 * math.sqrt(4 * bound**4 / (45 * n)), (
        f"{what}: var {v.var()} vs {var}")


def _check_normal(values, std: float, what: str, mean: float = 0.0) -> None:
    """values look like N(mean, std²): mean, variance and (zero) excess kurtosis."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    assert abs(v.mean() - mean) <= 6 * std / math.sqrt(n), f"{what}: mean {v.mean()}"
    assert abs(v.var() - std**2) <= 6 * std**2 * math.sqrt(2 / n), f"{what}: var {v.var()}"
    kurt = np.mean((v - v.mean()) ** 4) / v.var() ** 2 - 3  # uniform would give −1.2
    assert abs(kurt) <= 6 * math.sqrt(24 / n), f"{what}: excess kurtosis {kurt}"


def test_default_init_linear_conv_follow_torch_bounds():
    fc.manual_seed(1234)
    lin = nn.Linear(1024, 512)
    _check_uniform(lin.weight.data, 1 / math.sqrt(1024), "Linear weight")
    _check_uniform(lin.bias.data, 1 / math.sqrt(1024), "Linear bias")
    conv = nn.Conv2d(16, 64, 5)
    _check_uniform(conv.weight.data, 1 / math.sqrt(16 * 25), "Conv2d weight")
    _check_uniform(conv.bias.data, 1 / math.sqrt(16 * 25), "Conv2d bias")
    grouped = nn.Conv2d(16, 64, 3, groups=4)
    _check_uniform(grouped.weight.data, 1 / math.sqrt(4 * 9), "grouped Conv2d weight")
    # ConvTranspose2d: weight (C_in, C_out/groups, KH, KW), torch takes fan_in from dim 1
    tconv = nn.ConvTranspose2d(64, 12, 3, groups=2)
    assert tconv.weight.shape == (64, 6, 3, 3)
    _check_uniform(tconv.weight.data, 1 / math.sqrt(6 * 9), "ConvTranspose2d weight")
    _check_uniform(tconv.bias.data, 1 / math.sqrt(6 * 9), "ConvTranspose2d bias")
    for m in (lin, conv, tconv):
        assert m.weight.dtype == np.float32
        assert m.weight.requires_grad
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64


def test_default_init_batchnorm_and_seeding():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.data, np.ones(5, np.float32))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(5, np.float32))
    np.testing.assert_array_equal(bn.running_mean.data, np.zeros(5, np.float32))
    np.testing.assert_array_equal(bn.running_var.data, np.ones(5, np.float32))
    assert bn.num_batches_tracked.dtype == np.int64
    assert bn.num_batches_tracked.shape == ()
    assert int(bn.num_batches_tracked.item()) == 0
    fc.manual_seed(7)
    a = nn.Linear(5, 4).weight.data.copy()
    fc.manual_seed(7)
    b = nn.Linear(5, 4).weight.data.copy()
    np.testing.assert_array_equal(a, b)


def test_init_functions_distributions():
    fc.manual_seed(99)
    t = fc.zeros(300, 200)
    init.xavier_uniform_(t, gain=2.0)
    _check_uniform(t.data, 2.0 * math.sqrt(6 / 500), "xavier_uniform_")
    init.xavier_normal_(t)
    _check_normal(t.data, math.sqrt(2 / 500), "xavier_normal_")
    w = fc.zeros(64, 32, 3, 3, dtype=np.float64)
    init.kaiming_uniform_(w)
    _check_uniform(w.data, math.sqrt(6 / (32 * 9)), "kaiming_uniform_")
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    _check_normal(w.data, math.sqrt(2) / math.sqrt(64 * 9), "kaiming_normal_ fan_out")
    init.kaiming_normal_(w, a=0.2, nonlinearity="leaky_relu")
    _check_normal(w.data, math.sqrt(2 / 1.04) / math.sqrt(32 * 9), "kaiming_normal_ leaky")
    assert w.dtype == np.float64
    init.uniform_(t, -3.0, 5.0)
    assert t.data.min() >= -3
    assert t.data.max() < 5
    assert abs(t.data.mean() - 1) < 0.1
    init.normal_(t, 2.0, 0.5)
    _check_normal(t.data, 0.5, "normal_", mean=2.0)
    init.constant_(t, 0.25)
    assert np.all(t.data == 0.25)
    init.ones_(t)
    assert np.all(t.data == 1)
    p = nn.Parameter(np.ones(4, np.float32))
    assert init.zeros_(p) is p
    assert np.all(p.data == 0)
    assert p.requires_grad


def test_init_helpers_match_torch_formulas():
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.3),
                        ("leaky_relu", math.sqrt(5)), ("selu", None), ("conv_transpose2d", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            TNN.init.calculate_gain(name, param), rel=1e-15)
    for shape in [(5, 3), (6, 4, 3, 2), (2, 7, 1)]:
        ours = init._calculate_fan_in_and_fan_out(fc.zeros(*shape))
        assert ours == TNN.init._calculate_fan_in_and_fan_out(torch.zeros(shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(fc.zeros(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(fc.zeros(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity softplus"):
        init.calculate_gain("softplus")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(fc.zeros(0, 3))


# ---- train / eval, Dropout, BatchNorm running statistics ---------------------------------

def test_train_eval_recurse_and_change_dropout():
    m = lenet_like(nn)
    assert all(sub.training for sub in m.modules())
    assert m.eval() is m
    assert not any(sub.training for sub in m.modules())
    m.train()
    assert all(sub.training for sub in m.modules())
    m.features.train(False)
    assert not m.features[1].training
    assert m.classifier[2].training
    assert m.training
    with pytest.raises(ValueError, match="boolean"):
        m.train("yes")

    drop = nn.Dropout(0.25)
    x = np.ones((200, 100), np.float32)
    fc.manual_seed(0)
    y = drop(fc.tensor(x)).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    # fraction dropped ~ Binomial(20000, 0.25): 6 standard deviations
    assert abs((~kept).mean() - 0.25) <= 6 * math.sqrt(0.25 * 0.75 / x.size)
    drop.eval()
    np.testing.assert_array_equal(drop(fc.tensor(x)).numpy(), x)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None], ids=["m0.1", "m0.3", "cumulative"])
def test_batchnorm_running_stats_match_torch(momentum, rng):
    ours, ref = make_pair("BatchNorm2d", (4,), {"momentum": momentum}, np.float64)
    for step in range(4):
        x = rng.standard_normal((3, 4, 5, 2)) * (step + 1) + step
        out = ours(fc.tensor(x))
        out_ref = ref(torch64(x))
        atol = tolerance(np.float64, 30, maxabs(x), 1.0)
        assert_close(out.detach().numpy(), out_ref.detach().numpy(), atol, rtol=1e-10,
                     what=f"bn step {step}")
    for name, b in ref.named_buffers():
        assert_close(ours.get_buffer(name).data, b.numpy(), atol, rtol=1e-10,
                     what=f"bn {name} momentum={momentum}")
    assert int(ours.num_batches_tracked.item()) == 4
    ours.eval()
    ref.eval()
    x = rng.standard_normal((2, 4, 3, 3))
    before = ours.state_dict()
    assert_close(ours(fc.tensor(x)).detach().numpy(), ref(torch64(x)).detach().numpy(), atol,
                 rtol=1e-10, what="bn eval output")
    for key, value in ours.state_dict().items():  # eval does not update statistics
        np.testing.assert_array_equal(value, before[key])


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval(rng):
    ours, ref = make_pair("BatchNorm2d", (3,), {"track_running_stats": False}, np.float64)
    ours.eval()
    ref.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    assert_close(ours(fc.tensor(x)).detach().numpy(), ref(torch64(x)).detach().numpy(),
                 tolerance(np.float64, 32, maxabs(x), 1.0), rtol=1e-10, what="bn no stats")
    with pytest.raises(ValueError, match="expected 4D input"):
        ours(fc.tensor(x[0]))


# ---- repr --------------------------------------------------------------------------------

REPR_CASES = [
    ("Conv2d", (1, 6, 5), {}),
    ("Conv2d", (3, 6, (5, 3)), {"stride": 2, "padding": 1, "bias": False}),
    ("Conv2d", (4, 8, 3),
     {"padding": "same", "dilation": 2, "groups": 4, "padding_mode": "circular"}),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "output_padding": 1, "groups": 2}),
    ("Linear", (400, 120), {}), ("Linear", (3, 1), {"bias": False}),
    ("MaxPool2d", (2, 2), {}), ("MaxPool2d", ((3, 2),), {"padding": 1, "ceil_mode": True}),
    ("AvgPool2d", (3,), {"stride": 1}), ("AdaptiveAvgPool2d", ((1, 1),), {}),
    ("AdaptiveMaxPool2d", (2,), {}), ("ReLU", (), {}), ("ReLU", (), {"inplace": True}),
    ("LeakyReLU", (), {}), ("LeakyReLU", (0.2, True), {}), ("Sigmoid", (), {}), ("Tanh", (), {}),
    ("Softmax", (), {"dim": 1}), ("LogSoftmax", (-1,), {}), ("Flatten", (), {}),
    ("Flatten", (0, 2), {}), ("Dropout", (), {}), ("Dropout", (0.2,), {}),
    ("BatchNorm2d", (16,), {}),
    ("BatchNorm2d", (8,), {"eps": 1e-3, "momentum": None, "affine": False}),
    ("CrossEntropyLoss", (), {}), ("MSELoss", (), {}), ("NLLLoss", (), {}), ("Identity", (), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), REPR_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(REPR_CASES)])
def test_repr_matches_torch(name, args, kwargs):
    assert repr(getattr(nn, name)(*args, **kwargs)) == repr(getattr(TNN, name)(*args, **kwargs))


def test_nested_repr_matches_torch():
    assert repr(lenet_like(nn)) == repr(lenet_like(TNN))
    assert repr(nn.Sequential()) == repr(TNN.Sequential()) == "Sequential()"
    assert repr(nn.ModuleList()) == repr(TNN.ModuleList())

    class Net(nn.Module):
        def __init__(self, lib):
            super().__init__()
            self.conv = lib.Conv2d(1, 2, 3)
            self.body = lib.Sequential(lib.Linear(2, 2), lib.ReLU())

    class TNet(TNN.Module):
        def __init__(self, lib):
            super().__init__()
            self.conv = lib.Conv2d(1, 2, 3)
            self.body = lib.Sequential(lib.Linear(2, 2), lib.ReLU())

    TNet.__name__ = "Net"
    assert repr(Net(nn)) == repr(TNet(TNN))


# ---- zero_grad, dtype conversion, parameters ---------------------------------------------

def test_zero_grad(rng):
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    m(fc.tensor(rng.standard_normal((5, 3)).astype(np.float32))).sum().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None for g in grads)
    m.zero_grad(set_to_none=False)
    for p, g in zip(m.parameters(), grads):
        assert p.grad is g
        assert not np.any(p.grad.data)
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_double_float_and_to_convert_in_place(rng):
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    params = list(m.parameters())
    m(fc.tensor(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))).sum().backward()
    assert m.double() is m
    assert [p is q for p, q in zip(m.parameters(), params)] == [True] * 4
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert m[1].running_mean.dtype == np.float64
    assert m[1].running_var.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    assert all(v.dtype == np.float64 for k, v in m.state_dict().items()
               if not k.endswith("num_batches_tracked"))
    out = m(fc.tensor(rng.standard_normal((2, 1, 5, 5))))
    assert out.dtype == np.float64
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())
    m.to(np.float64)
    assert m[0].weight.dtype == np.float64
    m.to("cpu", dtype=np.float32)
    assert m[0].weight.dtype == np.float32
    m.to(fc.zeros(1, dtype=np.float64))
    assert m[0].weight.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(np.int64)
    with pytest.raises(ValueError, match="unknown device"):
        m.to("tpu")


def test_parameter_is_a_tensor():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    assert isinstance(p, fc.Tensor)
    assert p.requires_grad
    assert p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")
    t = fc.tensor([1.0, 2.0])
    q = nn.Parameter(t)
    assert q.data is t.data  # shares the array, as torch shares storage
    assert not nn.Parameter(np.ones(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(np.arange(3))
    r = (p * 2).sum()
    assert type(r) is fc.Tensor


def test_registration_and_attribute_rules():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.ones(2, np.float32))
            self.sub = nn.Linear(2, 2)
            self.register_buffer("buf", fc.zeros(2))
            self.plain = fc.zeros(1)  # a plain Tensor attribute is not registered

        def forward(self, x):
            return self.sub(x * self.w)

    m = M()
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    assert list(m.state_dict()) == ["w", "buf", "sub.weight", "sub.bias"]
    assert "w" in dir(m)
    assert "sub" in dir(m)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = fc.ones(2)
    with pytest.raises(TypeError, match="as child module 'sub'"):
        m.sub = 3
    with pytest.raises(TypeError, match="as buffer 'buf'"):
        m.buf = "abc"
    m.buf = np.ones(2)  # an array assigned to a buffer name becomes the buffer
    assert isinstance(m.buf, fc.Tensor)
    assert m.buf.data.sum() == 2
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", fc.zeros(1))
    with pytest.raises(KeyError, match=r'contain "\."'):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError, match=r"fastconv\.nn\.Parameter or None required"):
        m.register_parameter("q", fc.zeros(1))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = m.nope
    m.w = None
    assert "w" not in m.state_dict()
    m.sub = nn.Linear(2, 3)  # replace a child keeps its position
    assert [n for n, _ in m.named_children()] == ["sub"]
    m.extra = nn.ReLU()
    del m.extra
    assert [n for n, _ in m.named_children()] == ["sub"]
    m.sub = nn.Parameter(np.ones(1, np.float32))  # re-registering under another kind
    assert [n for n, _ in m.named_parameters()] == ["sub"]
    assert list(m.children()) == []
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1, np.float32))

    with pytest.raises(AttributeError, match=r"before Module\.__init__"):
        Bad()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)
    assert m.get_submodule("") is m


def test_declared_members_resolve_as_attribute_access_does(rng):
    """Linear/Conv2d/BatchNorm2d declare weight, bias, ... on the class (nn.module.registered) so
    forward reads them without a failed look-up; every attribute rule stays the same."""
    lin = nn.Linear(3, 2)
    assert lin.weight is lin._parameters["weight"]
    assert lin.bias is lin._parameters["bias"]
    assert nn.Linear(3, 2, bias=False).bias is None
    bn = nn.BatchNorm2d(2, track_running_stats=False)
    assert bn.running_mean is None
    assert bn.weight is bn._parameters["weight"]
    # Replacing the parameter, or the parameter by None, is seen by the next forward.
    x = fc.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    lin.weight = nn.Parameter(np.zeros((2, 3), np.float32))
    lin.bias = None
    np.testing.assert_array_equal(lin(x).detach().numpy(), np.zeros((4, 2), np.float32))
    # torch's re-parametrisation idiom: delete the parameter, then set a plain attribute.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    del conv.weight
    with pytest.raises(AttributeError, match="has no attribute 'weight'"):
        _ = conv.weight
    conv.weight = fc.tensor(np.full((1, 1, 1, 1), 2.0, np.float32))
    assert [n for n, _ in conv.named_parameters()] == []
    x = fc.tensor(np.ones((1, 1, 2, 2), np.float32))
    np.testing.assert_array_equal(conv(x).numpy(), np.full((1, 1, 2, 2), 2.0, np.float32))
    with pytest.raises(KeyError, match="already exists"):
        conv.register_parameter("weight", None)


def test_registration_declares_the_name_on_the_class():
    """Registering a child, parameter or buffer under a new name gives the class a
    `registered` entry (no failed look-up on each forward); attribute rules stay torch's."""

    class Net(nn.Module):
        def __init__(self, with_head=True):
            super().__init__()
            self.body = nn.Linear(2, 2)
            if with_head:
                self.head = nn.Linear(2, 1)
            self.register_buffer("scale", np.ones(1, np.float32))

    net = Net()
    assert isinstance(Net.__dict__["body"], registered)
    assert isinstance(Net.__dict__["scale"], registered)
    assert net.body is net._modules["body"]
    assert net.scale is net._buffers["scale"]
    # Another instance without the member: AttributeError, as for any missing attribute.
    bare = Net(with_head=False)
    assert not hasattr(bare, "head")
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'head'"):
        _ = bare.head
    # Replaced, set to None, deleted, or shadowed by a plain instance attribute.
    new_head = nn.Linear(2, 3)
    net.head = new_head
    assert net.head is new_head
    net.head = None
    assert net.head is None
    del net.head
    with pytest.raises(AttributeError):
        _ = net.head
    net.head = 5  # a plain attribute once the child is gone
    assert net.head == 5
    assert "head" not in net._modules
    # A parameter named like a child of another instance resolves from _parameters.
    bare.head = nn.Parameter(np.zeros(1, np.float32))
    assert bare.head is bare._parameters["head"]

    class Lazy(nn.Module):  # a subclass __getattr__ still sees names the instance lacks
        def __getattr__(self, name):
            if name == "body":
                return "fallback"
            return super().__getattr__(name)

    lazy = Lazy()
    lazy.body = nn.Linear(1, 1)
    assert isinstance(lazy.body, nn.Linear)
    assert Lazy().body == "fallback"


def test_module_hyperparameters_changed_after_construction_are_used(rng):
    """Modules normalise stride/padding/... on every call, so assigning them takes effect."""
    conv = nn.Conv2d(1, 1, 3)
    pool = nn.MaxPool2d(2)
    x = fc.tensor(rng.standard_normal((1, 1, 8, 8)).astype(np.float32))
    assert conv(x).shape == (1, 1, 6, 6)
    conv.padding = (1, 1)
    conv.stride = 2
    assert conv(x).shape == (1, 1, 4, 4)
    conv.dilation = 2
    assert conv(x).shape == (1, 1, 3, 3)
    # A list is normalised on every call (nn.Conv2d keeps only immutable values), so
    # changing it in place takes effect too.
    conv.stride, conv.dilation, conv.padding = 1, 1, [1, 1]
    assert conv(x).shape == (1, 1, 8, 8)
    conv.padding[0] = 0
    assert conv(x).shape == (1, 1, 6, 8)
    pool.stride = 1
    assert pool(x).shape == (1, 1, 7, 7)


def test_apply_requires_grad_children_get_submodule():
    m = lenet_like(nn)
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    ref_seen = []
    lenet_like(TNN).apply(lambda mod: ref_seen.append(type(mod).__name__))
    assert seen == ref_seen
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    assert all(p.requires_grad for p in m.parameters())
    assert m.get_submodule("features.4") is m.features[4]
    with pytest.raises(AttributeError):
        m.get_submodule("features.99")
    assert [type(c).__name__ for c in m.children()] == ["Sequential", "Flatten", "Sequential",
                                                        "ModuleList"]


def test_sequential_container_ops(rng):
    a, b, c = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)
    s = nn.Sequential(a, b)
    assert len(s) == 2
    assert s[0] is a
    assert s[-1] is b
    assert list(s) == [a, b]
    s.append(c)
    assert [n for n, _ in s.named_children()] == ["0", "1", "2"]
    x = fc.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    np.testing.assert_array_equal(s(x).detach().numpy(), c(b(a(x))).detach().numpy())
    head = s[1:]
    assert isinstance(head, nn.Sequential)
    assert [n for n, _ in head.named_children()] == ["1", "2"]
    del s[0]
    assert [n for n, _ in s.named_children()] == ["0", "1"]
    assert s[0] is b
    s[1] = nn.Tanh()
    assert isinstance(s[1], nn.Tanh)
    s.insert(0, a)
    assert s[0] is a
    assert len(s) == 3
    assert s.pop(0) is a
    assert len(s) == 2
    assert len(s + nn.Sequential(a)) == 3
    with pytest.raises(IndexError, match="out of range"):
        s[5]
    named = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 1, 1)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["conv.weight", "conv.bias"]
    assert named[0] is named.conv
    ml = nn.ModuleList([a, b])
    ml += [c]
    ml.insert(1, nn.Tanh())
    assert len(ml) == 4
    assert ml[-1] is c
    assert isinstance(ml[1], nn.Tanh)
    del ml[1]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2"]
    assert ml[1] is b


# Sequential's ReLU then MaxPool2d runs as the ReLU of the pooled map (never forming the
# ReLU's output): the cases below pin it to the unfused modules and to torch.
RELU_POOL_CASES = {
    "conv_block": ({"kernel_size": 2}, (3, 4, 12, 12)),
    "overlap_pad_ceil": ({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                         (2, 4, 11, 9)),
    "unbatched": ({"kernel_size": 2}, (4, 10, 10)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(RELU_POOL_CASES.values()), ids=list(RELU_POOL_CASES))
def test_sequential_relu_max_pool_matches_unfused_and_torch(case, dtype, rng, monkeypatch):
    pool_kw, xs = case
    conv = nn.Conv2d(xs[-3], 5, 3, padding=1)
    for p in conv.parameters():
        p.data = p.data.astype(dtype)
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(**pool_kw), nn.Flatten(0) if len(xs) == 3
                          else nn.Flatten())
    x = rng.standard_normal(xs).astype(dtype)
    x[..., 0, :2] = -np.abs(x[..., 0, :2]) - 10  # windows whose maximum is negative
    seen = _spy(monkeypatch, "relu_forward")
    xt = fc.tensor(x, requires_grad=True)
    out = model(xt)
    assert all(len(shape) < len(xs) or shape[-1] < xs[-1] for shape in seen), seen  # fused
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(fc.tensor(g))
    grads = [xt.grad.numpy(), conv.weight.grad.numpy(), conv.bias.grad.numpy()]
    # The unfused modules, one after another, give the same bits.
    xt2 = fc.tensor(x, requires_grad=True)
    for p in conv.parameters():
        p.grad = None
    ref = model[3](model[2](model[1](conv(xt2))))
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    ref.backward(fc.tensor(g))
    for ours, unfused in zip(grads, [xt2.grad.numpy(), conv.weight.grad.numpy(),
                                     conv.bias.grad.numpy()]):
        np.testing.assert_array_equal(ours, unfused)
    # And torch float64.
    tx = torch64(x).requires_grad_()
    w, b = conv.weight.data, conv.bias.data
    tw, tb = torch64(w).requires_grad_(), torch64(b).requires_grad_()
    ty = torch.nn.functional.max_pool2d(
        torch.relu(torch.nn.functional.conv2d(tx, tw, tb, padding=1)), **pool_kw).flatten(-3)
    (ty * torch64(g)).sum().backward()
    atol = tolerance(dtype, 9 * xs[-3], maxabs(x), maxabs(w))
    assert_close(out.detach().numpy(), ty.detach().numpy(), atol, what="y")
    for ours, t, what in zip(grads, (tx, tw, tb), ("dx", "dw", "db")):
        assert_close(ours, t.grad.numpy(), 50 * atol * maxabs(g), what=what)
    with fc.no_grad():  # inference: the same bits
        np.testing.assert_array_equal(model(fc.tensor(x)).numpy(), out.detach().numpy())


def test_sequential_relu_max_pool_fusion_keeps_module_semantics(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    tx = torch.from_numpy(x)
    # NaN propagates through the fused pair as through torch's relu then max_pool2d.
    out = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(fc.tensor(x)).numpy()
    ref = torch.nn.functional.max_pool2d(torch.relu(tx), 2).numpy()
    np.testing.assert_array_equal(out, ref)  # array_equal: NaN positions must agree
    assert np.isnan(out[0, 0, 0, 0])

    class Doubled(nn.ReLU):  # a subclass's forward is its own: not fused
        def forward(self, input):
            return super().forward(input) * 2

    out = nn.Sequential(Doubled(), nn.MaxPool2d(2))(fc.tensor(x)).numpy()
    np.testing.assert_array_equal(out, 2 * ref)
    # return_indices: the pool's own output, a (values, indices) pair.
    vals, idx = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))(fc.tensor(x))
    tv, ti = torch.nn.functional.max_pool2d(torch.relu(tx), 2, return_indices=True)
    np.testing.assert_array_equal(vals.numpy(), tv.numpy())
    np.testing.assert_array_equal(idx.numpy(), ti.numpy())
    # Dilated windows that hold no input element: -inf from pool(relu(x)), as torch.
    xd = rng.standard_normal((1, 2, 2, 4)).astype(np.float32)
    out = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, stride=1, padding=1, dilation=3))(
        fc.tensor(xd)).numpy()
    ref = torch.nn.functional.max_pool2d(torch.relu(torch.from_numpy(xd)), 2, stride=1,
                                         padding=1, dilation=3).numpy()
    assert np.isneginf(ref).any()
    np.testing.assert_array_equal(out, ref)


def _spy(monkeypatch, name):
    """The shapes of the first argument of every later fc._core.<name> call."""
    calls = []
    real = getattr(fc._core, name)
    monkeypatch.setattr(fc._core, name, lambda *a: calls.append(a[0].shape) or real(*a))
    return calls


def _train_and_infer(model, x, x_grad):
    """(input Tensor, output with a graph, the no-grad output as an array)."""
    xt = fc.tensor(x, requires_grad=x_grad)
    out = model(xt)
    with fc.no_grad():
        inferred = model(fc.tensor(x)).numpy()
    return xt, out, inferred


# (conv kwargs, pool kwargs, input shape): Sequential's Conv2d, ReLU, MaxPool2d as one kernel
CONV_BLOCK_CASES = {
    "winograd": ({"in_channels": 16, "out_channels": 24, "kernel_size": 3, "padding": 1},
                 {"kernel_size": 2}, (2, 16, 14, 18)),
    "rows": ({"in_channels": 3, "out_channels": 6, "kernel_size": 5}, {"kernel_size": 2},
             (3, 3, 20, 20)),
    "rows_overlap_ceil": ({"in_channels": 1, "out_channels": 5, "kernel_size": 5, "padding": 2},
                          {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                          (2, 1, 28, 26)),
    "strided_no_bias": ({"in_channels": 4, "out_channels": 5, "kernel_size": 3, "stride": 2,
                         "padding": 1, "bias": False}, {"kernel_size": 2}, (2, 4, 13, 11)),
    # windows that cut the positions less than 4-fold: the scattered gradient
    "pool_stride1": ({"in_channels": 4, "out_channels": 6, "kernel_size": 3, "padding": 1},
                     {"kernel_size": 2, "stride": 1}, (2, 4, 9, 9)),
}


@pytest.mark.parametrize("x_grad", [True, False], ids=["x_grad", "first_layer"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CONV_BLOCK_CASES.values()), ids=list(CONV_BLOCK_CASES))
def test_sequential_conv_relu_max_pool_is_one_kernel(case, dtype, x_grad, rng, monkeypatch):
    conv_kw, pool_kw, xs = case
    conv = nn.Conv2d(**conv_kw)
    for p in conv.parameters():
        p.data = p.data.astype(dtype)
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(**pool_kw), nn.Flatten())
    x = rng.standard_normal(xs).astype(dtype)
    x[..., 0, :3] = -np.abs(x[..., 0, :3]) - 10  # windows whose maximum is negative
    calls = _spy(monkeypatch, "conv2d_forward")
    xt, out, inferred = _train_and_infer(model, x, x_grad)
    assert not calls  # the conv ran inside the fused kernel, in training and inference
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(fc.tensor(g))
    params = list(conv.parameters())
    grads = [p.grad.numpy() for p in params] + ([xt.grad.numpy()] if x_grad else [])
    assert x_grad or xt.grad is None
    # The modules one after another: the same bits (forward, inference, every gradient).
    for p in params:
        p.grad = None
    xt2 = fc.tensor(x, requires_grad=x_grad)
    ref = model[3](model[2](model[1](conv(xt2))))
    assert calls  # (unfused: Conv2d's own kernel)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    np.testing.assert_array_equal(inferred, ref.detach().numpy())
    ref.backward(fc.tensor(g))
    for ours, unfused in zip(grads, [p.grad.numpy() for p in params]
                             + ([xt2.grad.numpy()] if x_grad else [])):
        np.testing.assert_array_equal(ours, unfused)
    # And torch float64.
    tx = torch64(x).requires_grad_(x_grad)
    tparams = [torch64(p.data).requires_grad_() for p in params]
    tb = tparams[1] if len(tparams) > 1 else None
    ty = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(
        tx, tparams[0], tb, conv_kw.get("stride", 1), conv_kw.get("padding", 0))),
        **pool_kw).flatten(1)
    (ty * torch64(g)).sum().backward()
    atol = tolerance(dtype, 25 * xs[1], maxabs(x), maxabs(params[0].data))
    assert_close(out.detach().numpy(), ty.detach().numpy(), atol, what="y")
    for ours, t in zip(grads, tparams + ([tx] if x_grad else [])):
        assert_close(ours, t.grad.numpy(), 50 * atol * maxabs(g), what="grad")


@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
def test_sequential_conv_relu_max_pool_fusion_keeps_module_semantics(grad_mode, rng,
                                                                      monkeypatch):
    # no_grad: Sequential's inference path (arrays between the kernels) keeps them too.
    monkeypatch.setattr(fc.autograd._mode, "enabled", grad_mode)
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    calls = _spy(monkeypatch, "conv2d_forward")

    def run(conv, pool=None, inp=x):
        pool = pool or nn.MaxPool2d(2)
        calls.clear()
        out = nn.Sequential(conv, nn.ReLU(), pool)(fc.tensor(inp)).detach().numpy()
        t = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=conv.padding_mode)
        t.weight.data, t.bias.data = torch.from_numpy(conv.weight.data), torch.from_numpy(
            conv.bias.data)
        ref = torch.nn.functional.max_pool2d(torch.relu(t(torch.from_numpy(inp))),
                                             pool.kernel_size, pool.stride, pool.padding,
                                             pool.dilation)
        assert_close(out, ref.detach().numpy(), 1e-5, what="y")
        return bool(calls)  # whether Conv2d's own kernel ran: not fused

    assert not run(nn.Conv2d(3, 4, 3, padding=1))
    # NaN reaches the output through the fused kernel as through torch.
    xn = x.copy()
    xn[0, 0, 4, 4] = np.nan
    assert not run(nn.Conv2d(3, 4, 3, padding=1), inp=xn)
    # Not fused: unbatched input, another padding mode, a subclass, a forward replaced on
    # the instance (the wrapper sees its call), a dilated pool (empty windows are -inf).
    assert run(nn.Conv2d(3, 4, 3, padding=1), inp=x[0])
    assert run(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"))

    class Conv(nn.Conv2d):
        pass

    assert run(Conv(3, 4, 3, padding=1))
    conv = nn.Conv2d(3, 4, 3, padding=1)
    seen = []
    forward = conv.forward
    conv.forward = lambda inp: seen.append(inp.shape) or forward(inp)
    run(conv)
    assert seen == [(2, 3, 10, 10)]
    assert run(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2, stride=1, padding=1, dilation=3))
    # A bad input raises the Conv2d module's own error.
    block = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
    with pytest.raises(ValueError, match="channels") as fused_error:
        block(fc.tensor(x))
    with pytest.raises(ValueError, match="channels") as module_error:
        block[0](fc.tensor(x))
    assert str(fused_error.value) == str(module_error.value)


# (Linear kwargs, input shape): Sequential's Linear, ReLU as one GEMM call
LINEAR_RELU_CASES = {
    "batch": ({"in_features": 20, "out_features": 7}, (5, 20)),
    "batch1": ({"in_features": 20, "out_features": 7}, (1, 20)),
    "no_bias_3d": ({"in_features": 9, "out_features": 6, "bias": False}, (2, 3, 9)),
    # 16 <= rows < out_features with a large weight: y^T = w @ x.T, then the ReLU
    "weight_first": ({"in_features": 2048, "out_features": 160}, (16, 2048)),
}


@pytest.mark.parametrize("x_grad", [True, False], ids=["x_grad", "first_layer"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(LINEAR_RELU_CASES.values()), ids=list(LINEAR_RELU_CASES))
def test_sequential_linear_relu_is_one_gemm(case, dtype, x_grad, rng, monkeypatch):
    lin_kw, xs = case
    lin = nn.Linear(**lin_kw)
    for p in lin.parameters():
        p.data = p.data.astype(dtype)
    model = nn.Sequential(lin, nn.ReLU())
    x = rng.standard_normal(xs).astype(dtype)
    if x.ndim == 2:
        x[0, :2] = np.nan  # NaN passes through the ReLU
    relu_calls = _spy(monkeypatch, "relu_forward")
    xt, out, inferred = _train_and_infer(model, x, x_grad)
    weight_first = xs == (16, 2048)
    # The ReLU ran in the GEMM (or, weight first, once after it): no ReLU module call.
    assert len(relu_calls) == (2 if weight_first else 0)
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(fc.tensor(g))
    params = list(lin.parameters())
    grads = [p.grad.numpy() for p in params] + ([xt.grad.numpy()] if x_grad else [])
    for p in params:
        p.grad = None
    xt2 = fc.tensor(x, requires_grad=x_grad)
    ref = model[1](lin(xt2))  # the modules one after the other: the same bits
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    np.testing.assert_array_equal(inferred, ref.detach().numpy())
    ref.backward(fc.tensor(g))
    for ours, unfused in zip(grads, [p.grad.numpy() for p in params]
                             + ([xt2.grad.numpy()] if x_grad else []), strict=True):
        np.testing.assert_array_equal(ours, unfused)
    # And torch float64.
    tx = torch64(x).requires_grad_(x_grad)
    tparams = [torch64(p.data).requires_grad_() for p in params]
    ty = torch.relu(torch.nn.functional.linear(tx, *tparams))
    (ty * torch64(g)).sum().backward()
    atol = tolerance(dtype, xs[-1], maxabs(x[~np.isnan(x)]), maxabs(params[0].data))
    ours_y = out.detach().numpy()
    np.testing.assert_array_equal(np.isnan(ours_y), np.isnan(ty.detach().numpy()))
    finite = ~np.isnan(ty.detach().numpy())
    assert_close(ours_y[finite], ty.detach().numpy()[finite], atol, what="y")


@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
def test_sequential_linear_relu_fusion_keeps_module_semantics(grad_mode, rng, monkeypatch):
    monkeypatch.setattr(fc.autograd._mode, "enabled", grad_mode)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    seen = []

    class Lin(nn.Linear):
        def forward(self, input):
            seen.append("subclass")
            return super().forward(input)

    nn.Sequential(Lin(5, 4), nn.ReLU())(fc.tensor(x))
    assert seen == ["subclass"]  # a subclass is not fused
    lin, relu = nn.Linear(5, 4), nn.ReLU()
    forward = relu.forward
    relu.forward = lambda inp: seen.append("relu") or forward(inp)
    nn.Sequential(lin, relu)(fc.tensor(x))
    assert seen[-1] == "relu"  # nor a ReLU whose forward is replaced
    forward = lin.forward
    lin.forward = lambda inp: seen.append("linear") or forward(inp)
    del seen[:]
    nn.Sequential(lin, nn.ReLU())(fc.tensor(x))
    nn.Sequential(lin)(fc.tensor(x))
    assert seen == ["linear", "linear"]  # nor a Linear whose forward is replaced
    # A bad input raises the Linear module's own error.
    block = nn.Sequential(nn.Linear(6, 4), nn.ReLU())
    with pytest.raises(ValueError, match="inner dimensions") as fused_error:
        block(fc.tensor(x))
    with pytest.raises(ValueError, match="inner dimensions") as module_error:
        block[0](fc.tensor(x))
    assert str(fused_error.value) == str(module_error.value)


class _ToArray(nn.Module):
    """Returns its input's array: a module whose output is not a Tensor."""

    def forward(self, input):
        return input.detach().numpy()


def _apply_spy(monkeypatch):
    """The Function classes of every later Function.apply call."""
    calls = []
    real = fc.autograd.Function.apply.__func__
    monkeypatch.setattr(fc.autograd.Function, "apply",
                        classmethod(lambda cls, *a, **k: calls.append(cls) or real(cls, *a, **k)))
    return calls


def test_sequential_inference_passes_arrays(rng, monkeypatch):
    """With grad mode off, Sequential runs its conv blocks, Linear (+ ReLU) and Flatten on
    the arrays (no Function.apply, no Tensor between them) and every other module as with
    grad mode on: bitwise the outputs of the grad-mode path, and torch's within tolerance."""
    model = fc.models.get_model("cifarnet")
    model.eval()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with_grad = model(fc.tensor(x))
    assert with_grad.requires_grad
    calls = _apply_spy(monkeypatch)
    with fc.no_grad():
        out = model(fc.tensor(x, requires_grad=True))
    assert calls == []  # every module ran on the arrays
    assert type(out) is fc.Tensor
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), with_grad.detach().numpy())
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(4096, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10)).double()
    tmodel.load_state_dict({k: torch64(v) for k, v in model.state_dict().items()})
    ref = tmodel(torch64(x)).detach().numpy()
    assert_close(out.numpy(), ref, 1e-4 * maxabs(ref), what="logits")

    # Other modules run as modules, a Tensor each, and the arrays go on after them.
    mixed = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3), nn.Tanh(), nn.Flatten(2), nn.Dropout(0.5), nn.Flatten(),
        nn.Linear(4 * 36, 8), nn.Linear(8, 3))
    mixed.eval()
    xm = x[:, :, :16, :16]
    with_grad = mixed(fc.tensor(xm)).detach().numpy()
    calls.clear()
    with fc.no_grad():
        out = mixed(fc.tensor(xm))
    np.testing.assert_array_equal(out.numpy(), with_grad)
    assert fc._functions.activation.Tanh in calls  # a module
    assert fc._functions.misc.Linear not in calls  # the arrays after it
    # A module's output that is not a Tensor goes on to the next module as it is.
    handed = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), _ToArray(),
                           nn.Flatten(), nn.Linear(4 * 49, 5))
    with fc.no_grad():
        out = handed(fc.tensor(xm))
    np.testing.assert_array_equal(out.numpy(), handed(fc.tensor(xm)).detach().numpy())

    # return_indices: the pool's (values, indices) pair is the result, as with grad mode on.
    pair = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2, return_indices=True))
    with fc.no_grad():
        vals, idx = pair(fc.tensor(xm))
    v2, i2 = pair(fc.tensor(xm))
    np.testing.assert_array_equal(vals.numpy(), v2.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), i2.numpy())


@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
def test_sequential_pool_and_flatten_attributes_take_effect(grad_mode, rng, monkeypatch):
    """A pool's rebound attributes apply on the next call (MaxPool2d._core_args keeps the
    normalised ones only until then), bad ones and bad Flatten dims raise the modules' own
    errors, in both of Sequential's paths."""
    monkeypatch.setattr(fc.autograd._mode, "enabled", grad_mode)
    x = rng.standard_normal((1, 2, 12, 12)).astype(np.float32)
    pool = nn.MaxPool2d(2)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), pool, nn.Flatten())
    assert model(fc.tensor(x)).shape == (1, 3 * 6 * 6)
    pool.kernel_size = 3  # the stride stays 2
    assert model(fc.tensor(x)).shape == (1, 3 * 5 * 5)
    pool.stride = [4, 4]  # a list: normalised on every call
    assert model(fc.tensor(x)).shape == (1, 3 * 3 * 3)
    pool.stride[0] = 6
    assert model(fc.tensor(x)).shape == (1, 3 * 2 * 3)
    t = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(
        torch64(x), torch64(model[0].weight.data), torch64(model[0].bias.data), padding=1)),
        3, (6, 4)).flatten(1)
    assert_close(model(fc.tensor(x)).detach().numpy(), t.detach().numpy(), 1e-5, what="y")
    pool.padding = 2  # more than half the kernel
    with pytest.raises(ValueError, match="at most half") as seq_error:
        model(fc.tensor(x))
    with pytest.raises(ValueError, match="at most half") as pool_error:
        pool(fc.tensor(x))
    assert str(seq_error.value) == str(pool_error.value)
    model = nn.Sequential(nn.Linear(12, 4), nn.Flatten(4))
    with pytest.raises(IndexError, match="dimension out of range") as seq_error:
        model(fc.tensor(x))
    with pytest.raises(IndexError) as flat_error:
        model[1](model[0](fc.tensor(x)))
    assert str(seq_error.value) == str(flat_error.value)


def test_module_deepcopy_is_independent():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm2d(2))
    m2 = copy.deepcopy(m)
    m2[0].weight.data += 1
    assert not np.array_equal(m[0].weight.data, m2[0].weight.data)
    assert isinstance(m2[0].weight, nn.Parameter)
    assert m2[0].weight.requires_grad
    assert list(m2.state_dict()) == list(m.state_dict())


def test_constructor_errors_like_torch():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        nn.Conv2d(4, 6, 3, groups=0)
    with pytest.raises(ValueError, match="Invalid padding string 'full'"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(TypeError, match="floating dtype"):
        nn.Linear(2, 2, dtype=np.int32)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nn.MSELoss(size_average=False).reduction == "sum"


def test_softmax_without_dim_warns_and_picks_torchs_legacy_dim(rng):
    x = rng.standard_normal((3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        ours = nn.Softmax()(fc.tensor(x)).numpy()
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        ref = TNN.Softmax()(torch64(x)).numpy()
    assert_close(ours, ref, tolerance(np.float64, 4, maxabs(x), 1.0), rtol=1e-10,
                 what="Softmax(dim=None)")


def test_conv2d_module_errors_name_the_argument():
    """nn.Conv2d runs F.conv2d's checks only after the kernel refuses a call; the errors
    are still F.conv2d's, naming the argument and the shape."""
    conv = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError,
                       match=r"conv2d: expected input to be 3-D .* got shape \(2, 5\)"):
        conv(fc.tensor(np.zeros((2, 5), np.float32)))
    with pytest.raises(TypeError, match=r"conv2d: input must be a fastconv\.Tensor"):
        conv([[[[0.0] * 5] * 5] * 2])
    with pytest.raises(ValueError, match="channels"):  # the kernel's message stands
        conv(fc.tensor(np.zeros((1, 4, 5, 5), np.float32)))
    conv.weight = None
    with pytest.raises(TypeError, match=r"conv2d: weight must be a fastconv\.Tensor"):
        conv(fc.tensor(np.zeros((1, 2, 5, 5), np.float32)))
