"""ConvTranspose2d forward, backward_data and backward_weight against torch float64.

Reference: ``torch.nn.functional.conv_transpose2d`` in float64 with autograd and a random
upstream gradient, on the same values. Every case runs on every ISA, float32 and float64,
under each applicable algorithm (the transposed convolution runs on the Conv2d drivers,
with conv C = C_out and conv K = C_in). Tolerances: conftest.tolerance with reduction
length C_in/g·KH·KW (forward), C_out/g·KH·KW (backward_data), N·H·W (backward_weight).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch.nn.functional as F
from conftest import DTYPE_IDS, DTYPES, assert_close, maxabs, tolerance, torch64

from fastconv import kernels as K


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _poison_heap(shape, dtype) -> None:
    """Allocate and free a NaN block of this size: the next allocation likely reuses it."""
    block = np.full(shape, np.nan, dtype=dtype)
    del block


@dataclass(frozen=True)
class TCase:
    id: str
    N: int
    C_in: int
    H: int
    W: int
    C_out: int
    kh: int
    kw: int
    stride: int | tuple = 1
    padding: int | tuple = 0
    output_padding: int | tuple = 0
    groups: int = 1
    dilation: int | tuple = 1
    bias: bool = True

    @property
    def hyper(self):
        return {"stride": self.stride, "padding": self.padding,
                "output_padding": self.output_padding, "groups": self.groups,
                "dilation": self.dilation}

    def algorithms(self):
        algos = ["auto", "im2col", "ref", "direct"]
        h_out = ((self.H - 1) * _pair(self.stride)[0] - 2 * _pair(self.padding)[0]
                 + _pair(self.dilation)[0] * (self.kh - 1) + _pair(self.output_padding)[0] + 1)
        w_out = ((self.W - 1) * _pair(self.stride)[1] - 2 * _pair(self.padding)[1]
                 + _pair(self.dilation)[1] * (self.kw - 1) + _pair(self.output_padding)[1] + 1)
        if ((self.kh, self.kw) == (1, 1) and _pair(self.stride) == (1, 1)
                and _pair(self.padding) == (0, 0) and (h_out, w_out) == (self.H, self.W)):
            algos.append("direct_1x1")
        if self.groups == self.C_out and self.groups > 1:
            algos.append("depthwise")
        return algos


CASES = [
    TCase("s1_k3", 2, 3, 5, 6, 4, 3, 3),
    TCase("s2_p1", 2, 4, 5, 5, 3, 3, 3, stride=2, padding=1),
    TCase("s2_p1_op1", 2, 3, 4, 5, 2, 3, 3, stride=2, padding=1, output_padding=1),
    TCase("s3_p1_op2", 1, 2, 4, 4, 3, 3, 3, stride=3, padding=1, output_padding=2),
    TCase("stride_gt_kernel_k2s3", 2, 3, 4, 3, 4, 2, 2, stride=3),
    TCase("op_ge_stride_s1_d3_op2", 2, 3, 5, 5, 2, 3, 3, output_padding=2, dilation=3),
    TCase("stride_2x3_op_1x2", 2, 3, 4, 5, 4, 3, 3, stride=(2, 3), padding=(1, 0),
          output_padding=(1, 2)),
    TCase("padding2", 2, 3, 6, 7, 4, 3, 3, padding=2),
    TCase("groups2_s2", 2, 4, 5, 5, 6, 3, 3, stride=2, padding=1, groups=2),
    TCase("groups3_nobias", 2, 6, 4, 6, 3, 2, 3, groups=3, bias=False),
    TCase("dilation2", 2, 3, 5, 6, 4, 3, 3, padding=2, dilation=2),
    TCase("dilation_2x1_s2", 1, 2, 4, 5, 3, 3, 2, stride=2, dilation=(2, 1)),
    TCase("nonsquare_k2x4_h4w7", 2, 3, 4, 7, 5, 2, 4, stride=(1, 2)),
    TCase("N1_nobias", 1, 5, 6, 6, 6, 3, 3, bias=False),
    TCase("image1x1", 2, 4, 1, 1, 3, 3, 3),
    TCase("pointwise", 2, 8, 5, 6, 5, 1, 1),
    TCase("pointwise_s2", 2, 8, 5, 6, 5, 1, 1, stride=2, output_padding=1),
    TCase("depthwise_s2_op1", 2, 4, 5, 5, 4, 3, 3, stride=2, padding=1, output_padding=1,
          groups=4),
    TCase("depthwise_m2", 2, 8, 5, 6, 4, 3, 3, padding=1, groups=4),
    TCase("dcgan_16_8_k4s2p1", 2, 16, 4, 4, 8, 4, 4, stride=2, padding=1),
    TCase("channels_17_9", 1, 17, 3, 4, 9, 3, 3, stride=2),
]

ALGO_PARAMS = [
    pytest.param(case, algo, id=f"{case.id}-{algo}") for case in CASES
    for algo in case.algorithms()
]


def torch_conv_transpose2d(x, w, b, dy, case: TCase):
    X = torch64(x).requires_grad_()
    W = torch64(w).requires_grad_()
    B = None if b is None else torch64(b).requires_grad_()
    Y = F.conv_transpose2d(X, W, B, **case.hyper)
    Y.backward(torch64(dy))
    db = (B.grad if B is not None else torch64(dy).sum(dim=(0, 2, 3))).numpy()
    return Y.detach().numpy(), X.grad.numpy(), W.grad.numpy(), db


@functools.cache
def _case_data(case: TCase, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{case.id}/{np.dtype(dtype).name}".encode()))
    x = rng.standard_normal((case.N, case.C_in, case.H, case.W)).astype(dtype)
    w = rng.standard_normal((case.C_in, case.C_out // case.groups, case.kh, case.kw)).astype(dtype)
    b = rng.standard_normal(case.C_out).astype(dtype) if case.bias else None
    out_shape = F.conv_transpose2d(torch64(x), torch64(w), None, **case.hyper).shape
    dy = rng.standard_normal(tuple(out_shape)).astype(dtype)
    ref = torch_conv_transpose2d(x, w, b, dy, case)
    for arr in (x, w, b, dy):
        if arr is not None:
            arr.setflags(write=False)
    return x, w, b, dy, ref


def _run(x, w, b, dy, ref, case: TCase, algorithm, what):
    y_ref, dx_ref, dw_ref, db_ref = ref
    dtype = np.asarray(w).dtype
    g, kk = case.groups, case.kh * case.kw
    tol_f = tolerance(dtype, case.C_in // g * kk, maxabs(x), maxabs(w))
    if b is not None:
        tol_f += tolerance(dtype, 1, maxabs(b), 1.0)
    tol_d = tolerance(dtype, case.C_out // g * kk, maxabs(dy), maxabs(w))
    tol_w = tolerance(dtype, case.N * case.H * case.W, maxabs(dy), maxabs(x))
    tol_b = tolerance(dtype, dy.shape[0] * dy.shape[2] * dy.shape[3], maxabs(dy), 1.0)

    _poison_heap(y_ref.shape, dtype)
    y = K.conv_transpose2d(x, w, b, algorithm=algorithm, **case.hyper)
    assert y.dtype == dtype
    assert_close(y, y_ref, tol_f, what=f"{what} forward")

    _poison_heap(dx_ref.shape, dtype)
    dx = K.conv_transpose2d_backward_data(dy, w, x.shape, algorithm=algorithm, **case.hyper)
    assert dx.dtype == dtype
    assert_close(dx, dx_ref, tol_d, what=f"{what} backward_data")

    _poison_heap(dw_ref.shape, dtype)
    dw = K.conv_transpose2d_backward_weight(dy, x, w.shape, algorithm=algorithm, **case.hyper)
    assert dw.dtype == dtype
    assert_close(dw, dw_ref, tol_w, what=f"{what} backward_weight")

    db = K.conv2d_backward_bias(dy)
    assert_close(db, db_ref, tol_b, what=f"{what} bias gradient")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("case", "algorithm"), ALGO_PARAMS)
def test_conv_transpose2d(isa, case, algorithm, dtype):
    x, w, b, dy, ref = _case_data(case, dtype)
    what = (f"conv_transpose2d[{case.id}] isa={isa} algo={algorithm} "
            f"dtype={np.dtype(dtype).name} x{x.shape} w{w.shape}")
    _run(x, w, b, dy, ref, case, algorithm, what)


def _view4(arr, kind):
    if arr is None:
        return None
    arr = np.array(arr)
    if arr.ndim == 1:
        return arr[::-1].copy()[::-1]
    if kind == "flipW":
        return arr[..., ::-1].copy()[..., ::-1]
    if kind == "nhwc":
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if kind == "stepC":
        base = np.full((arr.shape[0], 2 * arr.shape[1], *arr.shape[2:]), np.nan, dtype=arr.dtype)
        base[:, ::2] = arr
        return base[:, ::2]
    raise AssertionError(kind)


VIEW_CASES = [c for c in CASES if c.id in ("s2_p1_op1", "groups2_s2", "depthwise_m2")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["flipW", "nhwc", "stepC"])
@pytest.mark.parametrize("case", VIEW_CASES, ids=[c.id for c in VIEW_CASES])
def test_conv_transpose2d_strided_views(isa, case, kind, dtype):
    x, w, b, dy, ref = _case_data(case, dtype)
    xv, wv, bv, dyv = (_view4(a, kind) for a in (x, w, b, dy))
    assert not xv.flags.c_contiguous
    for algo in case.algorithms():
        _run(xv, wv, bv, dyv, ref, case, algo,
             f"conv_transpose2d[{case.id}] views={kind} isa={isa} algo={algo}")


# ---- validation -----------------------------------------------------------------------

_X = np.ones((2, 4, 5, 5), np.float32)
_W = np.ones((4, 3, 3, 3), np.float32)  # C_in=4, C_out=3
_DY = np.ones((2, 3, 7, 7), np.float32)  # stride 1, padding 0: 5 + 2 = 7

ERRORS = [
    ("input-list", lambda: K.conv_transpose2d(_X.tolist(), _W), TypeError,
     r"\binput\b.*numpy\.ndarray"),
    ("weight-int", lambda: K.conv_transpose2d(_X, _W.astype(np.int32)), TypeError,
     r"\bweight\b.*float32 or float64"),
    ("mixed", lambda: K.conv_transpose2d(_X, _W.astype(np.float64)), TypeError,
     r"\binput and weight\b.*same dtype"),
    ("input-3d", lambda: K.conv_transpose2d(_X[0], _W), ValueError, r"\binput\b.*4-D"),
    ("output_padding-eq-stride", lambda: K.conv_transpose2d(_X, _W, stride=2, output_padding=2),
     ValueError, r"output_padding=\(2, 2\)"),
    ("output_padding-ge-stride-and-dilation",
     lambda: K.conv_transpose2d(_X, _W, stride=1, dilation=2, output_padding=(0, 2)),
     ValueError, r"output_padding=\(0, 2\)"),
    ("output_padding-negative", lambda: K.conv_transpose2d(_X, _W, output_padding=-1),
     ValueError, r"\boutput_padding\b.*non-negative"),
    ("channel-mismatch", lambda: K.conv_transpose2d(_X[:, :3], _W), ValueError,
     r"\binput\b.*to have 4 channels, but got 3"),
    ("groups-divide", lambda: K.conv_transpose2d(np.ones((1, 3, 4, 4), np.float32),
                                                 np.ones((3, 2, 3, 3), np.float32), groups=2),
     ValueError, r"groups=2.*divisible by 2"),
    ("output-too-small", lambda: K.conv_transpose2d(np.ones((1, 4, 1, 1), np.float32),
                                                    np.ones((4, 3, 1, 1), np.float32),
                                                    padding=1),
     ValueError, r"[Oo]utput size"),
    ("bias-shape", lambda: K.conv_transpose2d(_X, _W, np.ones(4, np.float32)), ValueError,
     r"\bbias\b of shape \(3,\)"),
    ("stride-0", lambda: K.conv_transpose2d(_X, _W, stride=0), ValueError,
     r"\bstride\b.*positive"),
    ("dilation-0", lambda: K.conv_transpose2d(_X, _W, dilation=(0, 1)), ValueError,
     r"\bdilation\b.*positive"),
    ("padding-negative", lambda: K.conv_transpose2d(_X, _W, padding=(-1, 0)), ValueError,
     r"\bpadding\b.*non-negative"),
    ("padding-string", lambda: K.conv_transpose2d(_X, _W, padding="same"), TypeError,
     r"\bpadding\b"),
    ("unknown-algorithm", lambda: K.conv_transpose2d(_X, _W, algorithm="gemm"), ValueError,
     r"algorithm 'gemm'"),
    ("depthwise-on-groups1", lambda: K.conv_transpose2d(_X, _W, algorithm="depthwise"),
     ValueError, r"'depthwise'"),
    ("bd-grad_output-shape",
     lambda: K.conv_transpose2d_backward_data(_DY[:, :, 1:], _W, _X.shape), ValueError,
     r"\bgrad_output\b of shape \(2, 3, 7, 7\)"),
    ("bd-input_shape-3", lambda: K.conv_transpose2d_backward_data(_DY, _W, (4, 5, 5)),
     ValueError, r"\binput_shape\b"),
    ("bw-grad_output-shape",
     lambda: K.conv_transpose2d_backward_weight(_DY[:, :, :, :6], _X, _W.shape), ValueError,
     r"\bgrad_output\b of shape \(2, 3, 7, 7\)"),
    ("bw-weight_shape-mismatch",
     lambda: K.conv_transpose2d_backward_weight(_DY, _X, (4, 3, 2, 3)), ValueError,
     r"\bweight_shape\b|\bgrad_output\b"),
    ("bw-weight_shape-channels",
     lambda: K.conv_transpose2d_backward_weight(_DY, _X, (4, 2, 3, 3)), ValueError,
     r"\bweight_shape\b"),
    ("bw-groups-divide",
     lambda: K.conv_transpose2d_backward_weight(_DY, _X, _W.shape, groups=2), ValueError,
     r"divisible by groups \(2\)"),
    ("bw-mixed",
     lambda: K.conv_transpose2d_backward_weight(_DY.astype(np.float64), _X, _W.shape),
     TypeError, r"\bgrad_output and input\b.*same dtype"),
]


@pytest.mark.parametrize(("call", "exc", "match"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_conv_transpose2d_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_conv_transpose2d_backward_data_input_shape_must_agree():
    """input_shape's C must match weight.shape[0]; the result would have another shape."""
    with pytest.raises(ValueError, match=r"input_shape|input"):
        K.conv_transpose2d_backward_data(_DY, _W, (2, 5, 5, 5))
