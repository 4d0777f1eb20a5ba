"""Conv2d forward, backward_data, backward_weight and backward_bias against torch float64.

Every case runs on every ISA variant, in float32 and float64, under every algorithm that
applies to it ('auto', 'im2col', 'ref'; 'direct_1x1' for 1×1/stride-1/no-padding kernels;
'depthwise' for groups == C > 1). The reference is ``torch.nn.functional.conv2d`` in
float64 with autograd on the same values and a random upstream gradient. Tolerances come
from conftest.tolerance with the reduction length of each direction (STYLE.md §7):
C/g·KH·KW (forward), K/g·KH·KW (backward_data), N·OH·OW (backward_weight and bias).

Outputs are allocated by the kernels; before each call a NaN-filled block of the output's
size is freed so that an allocator handing the same block back exposes unwritten elements.
"""

from __future__ import annotations

import functools
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch.nn.functional as F
from conftest import (
    DTYPE_IDS,
    DTYPES,
    GUARD_PAGES,
    assert_close,
    guarded,
    maxabs,
    misaligned,
    tolerance,
    torch64,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import _core
from fastconv import kernels as K

# ---- reference and helpers ---------------------------------------------------------------




def _poison_heap(shape, dtype) -> None:
    """Allocate and free a NaN block of this size: the next allocation likely reuses it."""
    block = np.full(shape, np.nan, dtype=dtype)
    del block


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _rule_args(case):
    """(input, weight, stride, padding, dilation, groups) of `case` for the shape-rule
    bindings (conv2d_choose_algorithm, conv2d_backward_data_as_forward / _by_rows): zero
    arrays, as the rules read only shapes."""
    x = np.zeros((case.N, case.C, case.H, case.W), np.float32)
    w = np.zeros((case.K, case.C // case.groups, case.kh, case.kw), np.float32)
    return x, w, _pair(case.stride), case.pads, _pair(case.dilation), case.groups


def _pads(padding, kh, kw, dilation):
    """(top, bottom, left, right) for int / pair / 'same' / 'valid' (torch semantics)."""
    dh, dw = _pair(dilation)
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(padding)
    return ph, ph, pw, pw


def torch_conv2d(x, w, b, dy, stride, padding, dilation, groups):
    """torch float64 forward output and input/weight/bias gradients for upstream dy."""
    X = torch64(x).requires_grad_()
    W = torch64(w).requires_grad_()
    B = None if b is None else torch64(b).requires_grad_()
    with warnings.catch_warnings():
        # torch warns that 'same' with an even kernel copies the input; not our concern.
        warnings.simplefilter("ignore")
        Y = F.conv2d(X, W, B, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if dy is None:
            return Y.detach().numpy(), None, None, None
        Y.backward(torch64(dy))
    db = B.grad if B is not None else torch64(dy).sum(dim=(0, 2, 3))  # bias-free: dL/db anyway
    return Y.detach().numpy(), X.grad.numpy(), W.grad.numpy(), db.numpy()


@dataclass(frozen=True)
class Case:
    id: str
    N: int
    C: int
    H: int
    W: int
    K: int
    kh: int
    kw: int
    stride: int | tuple = 1
    padding: int | tuple | str = 0
    dilation: int | tuple = 1
    groups: int = 1
    bias: bool = True

    @property
    def pads(self):
        return _pads(self.padding, self.kh, self.kw, self.dilation)

    @property
    def out_hw(self):
        top, bottom, left, right = self.pads
        (sh, sw), (dh, dw) = _pair(self.stride), _pair(self.dilation)
        oh = (self.H + top + bottom - dh * (self.kh - 1) - 1) // sh + 1
        ow = (self.W + left + right - dw * (self.kw - 1) - 1) // sw + 1
        return oh, ow

    def algorithms(self):
        algos = ["auto", "im2col", "ref", "direct"]
        if (self.kh, self.kw) == (1, 1) and _pair(self.stride) == (1, 1) and self.pads == (
            0, 0, 0, 0,
        ):
            algos.append("direct_1x1")
        if self.groups == self.C and self.groups > 1:
            algos.append("depthwise")
        if (self.kh, self.kw) == (3, 3) and _pair(self.stride) == (1, 1) and (
            _pair(self.dilation) == (1, 1) or self.dilation_phases()
        ):
            algos += ["winograd", "winograd4"]
        return algos

    def dilation_phases(self) -> bool:
        """Whether Winograd takes this dilated layer as its dilation phases: the dilation
        divides the input and output sizes and the top and left padding."""
        (dh, dw), (oh, ow) = _pair(self.dilation), self.out_hw
        top, _, left, _ = self.pads
        return (dh, dw) != (1, 1) and all(
            v % d == 0 for v, d in ((self.H, dh), (self.W, dw), (oh, dh), (ow, dw),
                                    (top, dh), (left, dw)))


CASES = [
    Case("lenet5_conv1", 4, 1, 32, 32, 6, 5, 5),
    Case("lenet5_conv2", 4, 6, 14, 14, 16, 5, 5),
    # direct's forward by output rows on every ISA: two column tiles (the last partial),
    # a last channel block of 1 (12 + 1 on AVX-512), padding and dilation per axis.
    Case("direct_rows_wide", 2, 3, 9, 40, 13, 3, 3, padding=(1, 2), dilation=(1, 2)),
    # ... at stride > 1 through the column-phase copies: the 7x7/2 stem's form (34 columns,
    # the split's plain and masked vectors), stride 3 across the row with a dilation of 2
    # (phases 0 and 2 only: kw*d % s), an 11x11/4 layer (phase planes past the input row).
    Case("direct_rows_stem_s2", 2, 3, 11, 67, 13, 7, 7, stride=2, padding=3),
    Case("direct_rows_s1x3_dil2", 1, 4, 8, 100, 7, 3, 3, stride=(1, 3), padding=(0, 2),
         dilation=(1, 2), bias=False),
    Case("direct_rows_k11_s4", 2, 2, 15, 139, 5, 11, 11, stride=4, padding=2),
    # ... with the output channels in the lanes (<= 16 in, 32 out: whole tiles on AVX2 and
    # the baseline; AVX-512 takes the columns or the shifted planes): 15 columns in pieces
    # (3 x 5 with the tile's 6), LeNet-5's conv2 form at stride 2 with a dilation, one
    # column.
    Case("direct_oc_15_columns", 2, 6, 9, 15, 32, 3, 3, padding=(0, 1)),
    Case("direct_oc_s2_dil2", 2, 16, 17, 23, 32, 5, 5, stride=2, padding=2, dilation=(2, 1),
         bias=False),
    Case("direct_oc_one_column", 3, 5, 7, 3, 32, 3, 3, padding=(1, 0)),
    # direct's backward_data as the forward by rows of dy with the flipped weights (stride
    # 1, padding <= dilation*(k - 1)): the flipped forward in the output-channel tile (32
    # channels out of 5) with a dilation and padding per axis; the stride-1 cases above
    # take its column tile, the strided ones and padding_gt_kernel_k2p3 the shifted planes.
    Case("direct_rows_bd_oc", 2, 32, 7, 13, 5, 3, 3, padding=(1, 2), dilation=(1, 2)),
    Case("resnet_3x3_p1", 2, 16, 14, 14, 32, 3, 3, padding=1),
    Case("stride2_p1", 2, 3, 9, 9, 4, 3, 3, stride=2, padding=1),
    Case("stride2_floor", 2, 3, 10, 10, 4, 3, 3, stride=2),
    Case("stride_1x2", 2, 3, 8, 9, 4, 3, 3, stride=(1, 2), padding=1),
    Case("stride_3x1", 2, 3, 10, 6, 4, 2, 3, stride=(3, 1)),
    # col2im with a row stride and unit column stride over >= 4 planes (the tap table).
    Case("stride_2x1_planes", 2, 5, 9, 11, 4, 3, 3, stride=(2, 1), padding=(1, 0)),
    Case("stride_gt_kernel_k2s3", 2, 3, 10, 11, 5, 2, 2, stride=3),
    Case("dilation2", 2, 3, 11, 11, 4, 3, 3, padding=2, dilation=2),
    Case("dilation_2x3", 2, 2, 12, 13, 3, 3, 3, padding=(1, 2), dilation=(2, 3)),
    Case("kernel_3x5", 2, 3, 9, 12, 4, 3, 5, padding=(1, 2)),
    Case("kernel_5x2_nobias", 2, 3, 9, 7, 4, 5, 2, bias=False),
    Case("image_5x17", 2, 2, 5, 17, 3, 3, 3),
    Case("image_17x4_s2", 1, 2, 17, 4, 3, 3, 3, stride=2, padding=1),
    Case("padding_pair", 2, 3, 8, 7, 4, 3, 3, padding=(2, 0)),
    Case("padding_max_k3p2", 2, 3, 4, 4, 4, 3, 3, padding=2),
    Case("padding_gt_kernel_k2p3", 2, 2, 4, 5, 3, 2, 2, padding=3),
    Case("same_odd_k3", 2, 3, 9, 8, 4, 3, 3, padding="same"),
    Case("same_even_k4x2", 2, 3, 9, 8, 4, 4, 2, padding="same"),
    Case("same_even_dil_k2d3", 2, 3, 9, 10, 2, 2, 4, padding="same", dilation=(3, 2)),
    Case("valid_k3", 2, 3, 8, 8, 4, 3, 3, padding="valid"),
    Case("kernel_eq_input", 2, 3, 5, 6, 4, 5, 6),
    Case("kernel_eq_padded_input", 2, 3, 3, 4, 4, 5, 6, padding=1),
    Case("image1x1_k1", 2, 3, 1, 1, 4, 1, 1),
    Case("pointwise_8_16", 2, 8, 7, 9, 16, 1, 1),
    Case("pointwise_nobias_N1", 1, 5, 6, 6, 7, 1, 1, bias=False),
    Case("pointwise_same", 2, 4, 5, 5, 6, 1, 1, padding="same"),
    Case("pointwise_stride2", 2, 8, 7, 9, 5, 1, 1, stride=2),
    Case("pointwise_pad1", 2, 4, 5, 6, 3, 1, 1, padding=1),
    Case("pointwise_dil2", 2, 4, 5, 6, 3, 1, 1, dilation=2),
    Case("groups2", 2, 4, 8, 8, 6, 3, 3, padding=1, groups=2),
    Case("groups3_s2", 2, 6, 7, 9, 9, 3, 3, stride=2, groups=3),
    Case("groups2_pointwise", 2, 6, 5, 7, 4, 1, 1, groups=2),
    Case("depthwise_m1", 2, 8, 7, 7, 8, 3, 3, padding=1, groups=8),
    Case("depthwise_m2", 2, 5, 6, 7, 10, 3, 3, padding=1, groups=5),
    Case("depthwise_s2", 2, 6, 9, 10, 6, 3, 3, stride=2, padding=1, groups=6),
    Case("depthwise_m2_s2_nobias", 1, 3, 9, 8, 6, 3, 3, stride=2, padding=1, groups=3,
         bias=False),
    Case("depthwise_dil2", 2, 4, 9, 9, 4, 3, 3, padding=2, dilation=2, groups=4),
    Case("depthwise_k5_wide", 1, 16, 13, 37, 16, 5, 5, padding=2, groups=16),
    # 3x3 at stride 1, streamed down the rows (depthwise_column3): plain vectors between
    # masked edge vectors on every ISA, two outputs per channel (backward_data
    # accumulates); rows past the input at both ends.
    Case("depthwise_3x3_wide_m2", 2, 4, 11, 37, 8, 3, 3, padding=1, groups=4),
    Case("depthwise_3x3_wide_p2x0", 1, 3, 8, 40, 3, 3, 3, padding=(2, 0), groups=3),
    # No padding, W = 17 (15 outputs a row): the last vector (of 8, 4 or 16 lanes) runs past
    # the output row while only its last tap leaves the input row; its store stays masked.
    Case("depthwise_3x3_w17", 2, 3, 6, 17, 3, 3, 3, groups=3),
    # 3x3 at stride 2, read in place (depthwise_column3_s2): W = 69 gives a masked first
    # column, plain ones and a last column moved back to end with the row whose last load
    # leaves it, on every ISA's lane count; padding 0 and (2, 1) move the rows and columns
    # the loads reach.
    Case("depthwise_3x3_s2_w69_m2", 2, 3, 13, 69, 6, 3, 3, stride=2, padding=1, groups=3),
    Case("depthwise_3x3_s2_p0_w40", 1, 2, 10, 40, 2, 3, 3, stride=2, groups=2),
    Case("depthwise_3x3_s2_p2x1_w48", 1, 2, 12, 48, 2, 3, 3, stride=2, padding=(2, 1), groups=2),
    Case("depthwise_k1", 2, 3, 5, 6, 3, 1, 1, groups=3),
    # Stride 2 with one tap per row: backward_data's odd column phase is reached by no tap.
    Case("depthwise_k1_s2", 2, 4, 7, 18, 4, 1, 1, stride=2, groups=4),
    Case("depthwise_k2x3_same", 2, 4, 6, 9, 8, 2, 3, padding="same", groups=4),
    Case("N1", 1, 5, 6, 6, 6, 3, 3),
    Case("odd_channels_7_5", 2, 7, 9, 9, 5, 3, 3, padding=1),
    Case("channels_7_9", 2, 7, 6, 6, 9, 3, 3, padding=1),
    Case("channels_9_15", 2, 9, 6, 5, 15, 3, 3, padding=1, bias=False),
    Case("channels_15_17", 2, 15, 5, 6, 17, 3, 3, padding=1),
    Case("channels_17_31", 1, 17, 6, 6, 31, 3, 3, padding=1),
    Case("channels_32_33", 1, 32, 5, 5, 33, 3, 3, padding=1, bias=False),
    Case("channels_33_8", 2, 33, 5, 4, 8, 3, 3),
    Case("channels_16_16_pointwise", 2, 16, 6, 6, 16, 1, 1),
    # One image, few output columns: im2col's GEMM reads the weights in place (no packA)
    # over several K blocks (C*KH*KW = 540 and 576 > KC = 512), with a 4-row edge (K = 20),
    # and weights over 512 KiB applied K block by K block (K = 256).
    Case("weights_in_place_k_blocks", 1, 60, 5, 6, 20, 3, 3, padding=1),
    Case("weights_in_place_by_block", 1, 64, 4, 5, 256, 3, 3, padding=1, bias=False),
    # 'same' layers with >= 32 channels per group and N > 1: backward_data runs as the
    # forward convolution of dy with the flipped weights (backward_data_as_forward).
    Case("same32_k3", 2, 32, 6, 7, 8, 3, 3, padding=1),
    Case("same32_even_k2x4", 3, 32, 5, 6, 5, 2, 4, padding="same", bias=False),
    Case("same64_dil2_groups2", 2, 64, 7, 6, 10, 3, 3, padding=2, dilation=2, groups=2),
    Case("same40_dil_3x2_k2x3", 2, 40, 6, 9, 3, 2, 3, padding="same", dilation=(3, 2)),
    # Big enough for the automatic choice to take Winograd F(2x2, 3x3) in forward and
    # backward_data (>= 16 channels, >= 192 tiles, >= 4 tiles per row); an odd W leaves part
    # tiles at the right, and the rows split across the 32-tile panels.
    Case("winograd_auto", 3, 16, 18, 19, 24, 3, 3, padding=1),
    Case("winograd_auto_valid", 2, 20, 22, 30, 16, 3, 3, bias=False),
    # >= 64 channels: auto takes Winograd for the weight gradient too (odd 9-tile rows,
    # 243 tiles: blocks of 128 split inside rows and images).
    Case("winograd_auto_wgrad", 3, 64, 18, 18, 64, 3, 3, padding=1),
    # Rows of 3 and 2 tiles (6x6 and 4x4 outputs): auto takes Winograd in every direction
    # of the first (16 images: 144 tiles, 90 % of the 160 lanes used) and for the weight
    # gradient of the second (32 images: 128 tiles).
    Case("winograd_auto_narrow_6x6", 16, 64, 6, 6, 64, 3, 3, padding=1),
    Case("winograd_narrow_4x4_wgrad", 32, 64, 6, 6, 64, 3, 3),
    # 160 input channels: the weight gradient's GEMMs meet more than 4 panels of V^T and
    # pack dZ (fewer: they read it in place).
    Case("winograd_wgrad_160_channels", 1, 160, 5, 6, 8, 3, 3, padding=1, bias=False),
    # Few channels, 576 tiles: the weight gradient sums its blocks in fixed chunks.
    Case("winograd_wgrad_chunks", 9, 8, 16, 16, 8, 3, 3, padding=1),
    # Rows of 39 tiles (OW = 77, odd): the transforms take a vector's worth of tiles at a
    # time along a row (16 float, 8 double) with a part-filled last one, and the left
    # padding of 2 masks the first lanes.
    Case("winograd_wide_rows", 2, 3, 6, 75, 4, 3, 3, padding=(1, 2)),
    # Dilated 3x3 layers that Winograd runs as their dilation phases (space-to-batch): 2x2
    # phases through the column-phase kernels, and 2x3 (d_w = 3) through plain copies, with
    # different padding per side; the 'auto' one takes Winograd in every direction.
    Case("winograd_dilated2", 2, 5, 12, 14, 7, 3, 3, padding=(2, 4), dilation=2),
    Case("winograd_dilated_2x3", 1, 4, 10, 12, 6, 3, 3, padding=(0, 3), dilation=(2, 3),
         bias=False),
    Case("winograd_auto_dilated", 2, 64, 16, 16, 64, 3, 3, padding=2, dilation=2),
    # Over 256 tiles, so U is not cached: with V of all the tiles within 4 MiB, each (group,
    # MR block of 35 output channels: a part-filled last one) transforms its U right before
    # its GEMMs (F(2x2) 867 tiles, F(4x4) 324); with more V (8 MB, 5 MB in float), U is
    # transformed whole first and the tiles go in blocks.
    Case("winograd_fused_u_groups", 3, 16, 34, 34, 70, 3, 3, padding=1, groups=2),
    Case("winograd_whole_u_large_v", 1, 96, 72, 72, 8, 3, 3, padding=1),
]

ALGO_PARAMS = [
    pytest.param(case, algo, id=f"{case.id}-{algo}") for case in CASES
    for algo in case.algorithms()
]


def _case_seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@functools.cache
def _case_data(case: Case, dtype):
    """Inputs (in `dtype`) and the torch float64 results, once per case and dtype."""
    rng = np.random.default_rng(_case_seed(case.id, np.dtype(dtype).name))
    x = rng.standard_normal((case.N, case.C, case.H, case.W)).astype(dtype)
    w = rng.standard_normal((case.K, case.C // case.groups, case.kh, case.kw)).astype(dtype)
    b = rng.standard_normal(case.K).astype(dtype) if case.bias else None
    oh, ow = case.out_hw
    dy = rng.standard_normal((case.N, case.K, oh, ow)).astype(dtype)
    ref = torch_conv2d(x, w, b, dy, case.stride, case.padding, case.dilation, case.groups)
    for arr in (x, w, b, dy):
        if arr is not None:
            arr.setflags(write=False)
    return x, w, b, dy, ref


def _tolerances(dtype, x, w, b, dy, groups, reduce_spatial):
    """Derived atol for (forward, backward_data, backward_weight, bias)."""
    N, C = x.shape[:2]
    Kout, _, kh, kw = w.shape
    fwd = tolerance(dtype, C // groups * kh * kw, maxabs(x), maxabs(w))
    if b is not None:
        fwd += tolerance(dtype, 1, maxabs(b), 1.0)
    bwd_data = tolerance(dtype, Kout // groups * kh * kw, maxabs(dy), maxabs(w))
    bwd_weight = tolerance(dtype, N * reduce_spatial, maxabs(dy), maxabs(x))
    bias = tolerance(dtype, N * reduce_spatial, maxabs(dy), 1.0)
    return fwd, bwd_data, bwd_weight, bias


def run_all_directions(x, w, b, dy, ref, *, stride, padding, dilation, groups, algorithm,
                       what, check_bias=True, tol_x=None):
    """Our four kernels on (possibly strided) inputs vs the torch results in `ref`
    (tolerances from `tol_x` in place of x where given: x holding values no window reads)."""
    y_ref, dx_ref, dw_ref, db_ref = ref
    dtype = np.asarray(w).dtype
    inputs = [a for a in (x, w, b, dy) if a is not None]
    before = [np.array(a, copy=True) for a in inputs]
    oh, ow = y_ref.shape[2:]
    tol_f, tol_d, tol_w, tol_b = _tolerances(dtype, x if tol_x is None else tol_x, w, b, dy,
                                             groups, oh * ow)
    if algorithm == "winograd4" and min(w.shape[0] // groups, w.shape[1]) < 16:
        # F(4x4)'s transform error does not shrink with the channels, this bound does:
        # under 16 channels per group the layer is outside winograd4's documented bound
        # (docs/performance.md; auto never picks it there). N(0,1) data measured up to
        # 1.2x the allowance (a depthwise layer), so 2x here.
        tol_f, tol_d = 2 * tol_f, 2 * tol_d
    hyper = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}

    _poison_heap(y_ref.shape, dtype)
    y = K.conv2d(x, w, b, algorithm=algorithm, **hyper)
    assert y.dtype == dtype, f"{what} forward: dtype {y.dtype}"
    assert_close(y, y_ref, tol_f, what=f"{what} forward")

    _poison_heap(dx_ref.shape, dtype)
    dx = K.conv2d_backward_data(dy, w, x.shape, algorithm=algorithm, **hyper)
    assert dx.dtype == dtype, f"{what} backward_data: dtype {dx.dtype}"
    assert_close(dx, dx_ref, tol_d, what=f"{what} backward_data")

    _poison_heap(dw_ref.shape, dtype)
    dw = K.conv2d_backward_weight(dy, x, w.shape, algorithm=algorithm, **hyper)
    assert dw.dtype == dtype, f"{what} backward_weight: dtype {dw.dtype}"
    assert_close(dw, dw_ref, tol_w, what=f"{what} backward_weight")

    if check_bias:
        _poison_heap(y_ref.shape[1], dtype)
        db = K.conv2d_backward_bias(dy)
        assert db.dtype == dtype, f"{what} backward_bias: dtype {db.dtype}"
        assert_close(db, db_ref, tol_b, what=f"{what} backward_bias")
        # Weight and bias gradients in one call: the same bits as the two calls.
        _poison_heap(dw_ref.shape, dtype)
        dw2, db2 = K.conv2d_backward_weight(dy, x, w.shape, algorithm=algorithm,
                                            with_bias=True, **hyper)
        np.testing.assert_array_equal(dw2, dw, err_msg=f"{what} backward_weight with_bias: dw")
        np.testing.assert_array_equal(db2, db, err_msg=f"{what} backward_weight with_bias: db")
        assert db2.dtype == dtype, f"{what} backward_weight with_bias: db dtype {db2.dtype}"

    for a, a0 in zip(inputs, before):
        np.testing.assert_array_equal(a, a0, err_msg=f"{what}: an input was modified")
    return y, dx, dw


# ---- the edge battery ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("case", "algorithm"), ALGO_PARAMS)
def test_conv2d_battery(isa, case, algorithm, dtype):
    x, w, b, dy, ref = _case_data(case, dtype)
    what = f"conv2d[{case.id}] isa={isa} algo={algorithm} dtype={np.dtype(dtype).name} " \
           f"x{x.shape} w{w.shape}"
    run_all_directions(x, w, b, dy, ref, stride=case.stride, padding=case.padding,
                       dilation=case.dilation, groups=case.groups, algorithm=algorithm,
                       what=what)


@pytest.mark.parametrize(
    ("case", "direction", "expected"),
    [
        (Case("a", 1, 4, 5, 5, 3, 1, 1), "forward", "direct_1x1"),
        (Case("b", 1, 4, 5, 5, 3, 1, 1, stride=2), "forward", "im2col"),
        # 7 output columns: im2col, but direct by rows where a row tile is at most 14 columns
        # wide (the baseline build's 8: rows_forward_applies, below).
        (Case("c", 1, 4, 5, 5, 3, 1, 1, padding=1), "forward",
         {"ref": "direct", "other": "im2col"}),
        (Case("d", 1, 4, 5, 5, 4, 3, 3, groups=4), "forward", "depthwise"),
        (Case("e", 1, 4, 5, 5, 4, 3, 3, groups=2), "forward", "im2col"),
        (Case("f", 1, 1, 5, 5, 4, 3, 3, groups=1), "forward", "im2col"),
        # backward_weight: direct only for first layers (<= 4 input channels) with >= 25 taps
        # when a block sums >= 512 positions (LeNet-5 conv1 at batch 64); im2col for the rest
        # (56x56x64, 3x3 first layers, 7x7 maps, tiny inputs).
        (Case("g", 64, 1, 32, 32, 6, 5, 5), "backward_weight", "direct"),
        (Case("h", 1, 64, 56, 56, 64, 3, 3, padding=1), "backward_weight", "winograd"),
        (Case("p", 64, 3, 32, 32, 32, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("q", 8, 3, 224, 224, 64, 7, 7, stride=2, padding=3), "backward_weight", "direct"),
        (Case("i", 1, 512, 7, 7, 512, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("j", 1, 1, 5, 5, 4, 3, 3), "backward_weight", "im2col"),
        # forward: direct by output rows for first layers (<= 4 input channels, any
        # stride, ungrouped, rows of >= 16 columns); im2col with more channels or narrow
        # maps, unless the output channels fill the lanes (k2; below).
        (Case("k", 64, 1, 32, 32, 6, 5, 5), "forward", "direct"),
        (Case("k1", 1, 3, 32, 32, 32, 3, 3, padding=1), "forward", "direct"),
        (Case("k2", 64, 5, 32, 32, 32, 3, 3, padding=1), "forward",
         {"avx512": "im2col", "other": "direct"}),
        (Case("k3", 8, 3, 224, 224, 64, 7, 7, stride=2, padding=3), "forward", "direct"),
        (Case("k3b", 1, 3, 224, 224, 64, 11, 11, stride=4, padding=2), "forward", "direct"),
        (Case("k3c", 8, 32, 32, 32, 32, 3, 3, stride=2, padding=1), "forward", "im2col"),
        # ... and, with the output channels in the lanes, <= 16 input and <= 32 output
        # channels in whole tiles of the ISA (AVX2 16, baseline 8; not offered on
        # AVX-512): LeNet-5's conv2, any map width (stride 2 too).
        (Case("k3d", 64, 6, 14, 14, 16, 5, 5), "forward",
         {"avx512": "im2col", "other": "direct"}),
        (Case("k3e", 8, 16, 32, 32, 32, 3, 3, stride=2, padding=1), "forward",
         {"avx512": "im2col", "other": "direct"}),
        (Case("k3f", 64, 16, 6, 6, 32, 3, 3), "forward", {"avx512": "im2col", "other": "direct"}),
        (Case("k3g", 64, 6, 14, 14, 24, 5, 5), "forward", {"ref": "direct", "other": "im2col"}),
        (Case("k3h", 64, 6, 14, 14, 64, 5, 5), "forward", "im2col"),
        (Case("k3i", 64, 17, 14, 14, 32, 5, 5), "forward", "im2col"),
        # Rows "wide enough" means >= half a row tile of the ISA (32 columns with AVX-512,
        # 16 with AVX2, 8 in the baseline build): 13 columns are on AVX2 and the baseline.
        (Case("k4", 64, 1, 17, 17, 6, 5, 5), "forward", {"avx512": "im2col", "other": "direct"}),
        (Case("k5", 64, 4, 32, 32, 8, 3, 3, padding=1, groups=2), "forward", "im2col"),
        # backward_data: direct (the forward by rows of dy with the flipped weights) for
        # stride-1 ungrouped layers of <= 16 output and >= 3 input channels where dx has at
        # most 1.5x the positions of dy and the flipped forward's rows fill a row tile
        # (or, not on AVX-512, its output channels the channel tile): the tutorial's conv1,
        # not LeNet-5's (1 channel), its conv2 (dx 14x14 from 10x10) or the 32-channel
        # CifarNet conv1; not strided or grouped layers; Winograd's 3x3 layers first.
        (Case("bd1", 64, 3, 32, 32, 6, 5, 5), "backward_data", "direct"),
        (Case("bd2", 64, 3, 32, 32, 32, 3, 3, padding=1), "backward_data", "im2col"),
        (Case("bd3", 64, 1, 32, 32, 6, 5, 5), "backward_data", "im2col"),
        (Case("bd4", 64, 6, 14, 14, 16, 5, 5), "backward_data", "im2col"),
        (Case("bd5", 8, 3, 224, 224, 16, 7, 7, stride=2, padding=3), "backward_data", "im2col"),
        (Case("bd6", 64, 4, 32, 32, 8, 3, 3, padding=1, groups=2), "backward_data", "im2col"),
        (Case("bd7", 64, 16, 12, 12, 16, 5, 5, padding=2), "backward_data",
         {"avx512": "im2col", "other": "direct"}),
        (Case("bd8", 64, 32, 6, 6, 16, 3, 3), "backward_data", "im2col"),
        (Case("bd9", 64, 128, 16, 16, 8, 3, 3), "backward_data", "direct"),
        (Case("bd10", 8, 16, 16, 16, 16, 3, 3, padding=1), "backward_data", "winograd4"),
        # Otherwise the GEMM path (W^T packed once);
        # Winograd on 3x3 layers with enough channels and tiles, as the forward (7x7 maps:
        # 77 % of the tiles' outputs used, enough with >= 64 channels; one image's 16 tiles
        # fill AVX2's and the baseline's 16-column NR panel, half of AVX-512's).
        (Case("l", 8, 512, 7, 7, 512, 3, 3, padding=1), "backward_data", "winograd"),
        (Case("m", 1, 512, 7, 7, 512, 3, 3, padding=1), "backward_data",
         {"avx512": "im2col", "other": "winograd"}),
        (Case("n", 8, 64, 56, 56, 64, 3, 3, padding=1), "backward_data", "winograd4"),
        # forward: Winograd F(2x2, 3x3) for 3x3/stride 1 with >= 16 channels per group in
        # and out, rows of >= 4 tiles and >= 85 % of the outputs it computes used (odd
        # sizes drop part of the edge tiles, a last panel of NR tiles can be part-empty:
        # 13x13 b64 86 %, 13x13 b1 66 %), or >= 75 % with >= 64 channels (7x7 b2/b4/b8
        # 77 %, b3 77 % with NR = 16 and 57 % with AVX-512's 32; 14x14 b1 77 %). The weight gradient also needs >= 128 tiles, and
        # its small-dU mode (32 -> 64) every tile output used, or >= 85 % with >= 1024
        # tiles (13x13 b64 86 % with 3136 tiles, b8 with 392).
        (Case("w1", 64, 32, 16, 16, 64, 3, 3, padding=1), "forward", "winograd4"),
        (Case("w2", 1, 64, 56, 56, 64, 3, 3, padding=1), "forward", "winograd4"),
        # AVX2 takes F(4x4) wherever its own rule holds (>= 16 tiles, >= 60 % used), at any
        # channel count (its weight transform vectorised, U transformed inside the GEMM loop)
        (Case("w3", 1, 256, 14, 14, 256, 3, 3, padding=1), "forward",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("w4", 64, 3, 32, 32, 32, 3, 3, padding=1), "forward", "direct"),
        # F(4x4) takes maps with 60 % of its outputs used on AVX2, 80 % elsewhere (66 % here).
        (Case("w5", 64, 32, 15, 15, 64, 3, 3), "forward",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("w5b", 64, 32, 15, 15, 64, 3, 3), "backward_weight", "winograd"),
        (Case("w5b2", 8, 32, 15, 15, 64, 3, 3), "backward_weight", "im2col"),
        (Case("w5c", 8, 512, 7, 7, 512, 3, 3, padding=1), "forward", "winograd"),
        (Case("w5d", 8, 512, 7, 7, 512, 3, 3, padding=1), "backward_weight", "winograd"),
        (Case("w5e", 8, 32, 7, 7, 32, 3, 3, padding=1), "forward", "im2col"),
        (Case("w5f", 4, 512, 7, 7, 512, 3, 3, padding=1), "forward", "winograd"),
        (Case("w5g", 3, 512, 7, 7, 512, 3, 3, padding=1), "forward",
         {"avx512": "im2col", "other": "winograd"}),
        # F(2x2) turns Keras conv2 b1 down (66 % used); AVX2 takes F(4x4) there, whose own
        # rule holds (16 tiles, 66 %, 32 x 64 channels).
        (Case("w5h", 1, 32, 15, 15, 64, 3, 3), "forward",
         {"avx2": "winograd4", "other": "im2col"}),
        (Case("w5h2", 1, 32, 15, 15, 64, 3, 3), "backward_data",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("w5h3", 1, 8, 15, 15, 64, 3, 3), "forward", "im2col"),
        # 16 tiles fill AVX2's 16-column NR panel: F(4x4) there (AVX-512's NR is 32).
        (Case("w5i", 1, 32, 16, 16, 64, 3, 3, padding=1), "forward",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("w5j", 1, 32, 16, 16, 64, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("w5k", 4, 512, 7, 7, 512, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("w6", 64, 64, 6, 6, 64, 3, 3), "forward", "im2col"),
        # Rows of 2-3 tiles: Winograd with >= 64 channels, every output used, padding <= 1
        # and >= 64 tiles; 2 tiles also need >= 128 channels, except in the weight gradient
        # (which needs >= 128 tiles); the backward_data of an unpadded layer pads by 2.
        (Case("w6b", 64, 64, 6, 6, 64, 3, 3), "backward_weight", "winograd"),
        (Case("w6c", 64, 64, 6, 6, 64, 3, 3), "backward_data", "im2col"),
        (Case("w6d", 64, 64, 6, 6, 64, 3, 3, padding=1), "forward", "winograd"),
        (Case("w6e", 64, 64, 6, 6, 64, 3, 3, padding=1), "backward_data", "winograd"),
        (Case("w6f", 1, 64, 6, 6, 64, 3, 3, padding=1), "forward", "im2col"),
        (Case("w6g", 16, 128, 4, 4, 128, 3, 3, padding=1), "forward", "winograd"),
        (Case("w6h", 8, 256, 4, 4, 256, 3, 3, padding=1), "forward", "im2col"),
        (Case("w6i", 64, 32, 6, 6, 32, 3, 3), "backward_weight", "im2col"),
        (Case("w7", 64, 32, 16, 16, 64, 3, 3, padding=1, stride=2), "forward", "im2col"),
        # backward_weight: Winograd where the forward rule holds with >= 64 channels per
        # group in and out, or >= 32 and a dU of <= 128 KiB (the chunked mode).
        (Case("w8", 64, 32, 16, 16, 64, 3, 3, padding=1), "backward_weight", "winograd"),
        (Case("w8b", 64, 32, 16, 16, 128, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("w8c", 64, 16, 16, 16, 64, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("w9", 8, 128, 28, 28, 128, 3, 3, padding=1), "backward_weight", "winograd"),
        (Case("w10", 1, 256, 14, 14, 256, 3, 3, padding=1), "backward_weight", "im2col"),
        (Case("w11", 8, 64, 56, 56, 64, 3, 3, padding=1, groups=2), "backward_weight",
         "im2col"),
        (Case("o", 4, 4, 5, 5, 4, 3, 3, groups=4), "backward_weight", "depthwise"),
        # Dilated 3x3: Winograd on the dilation phases when the dilation divides the sizes
        # and the top/left padding and the phases' layer qualifies (DeepLab 28x28x256 d2
        # as 4 images of 14x14); im2col otherwise (an odd map, a padding of 1).
        (Case("d1", 1, 256, 28, 28, 256, 3, 3, padding=2, dilation=2), "forward", "winograd"),
        (Case("d2", 1, 256, 28, 28, 256, 3, 3, padding=2, dilation=2), "backward_data",
         "winograd"),
        (Case("d3", 1, 256, 28, 28, 256, 3, 3, padding=2, dilation=2), "backward_weight",
         "winograd"),
        (Case("d4", 1, 256, 27, 27, 256, 3, 3, padding=2, dilation=2), "forward", "im2col"),
        (Case("d5", 1, 256, 28, 28, 256, 3, 3, padding=1, dilation=2), "forward", "im2col"),
        # F(4x4, 3x3) where F(2x2, 3x3) would run with >= 128 tiles (rows padded to groups of
        # 4 tiles), >= 80 % (AVX2: 60 %) of the outputs computed used and <= 128 x 128
        # channels per group.
        (Case("f1", 64, 32, 16, 16, 64, 3, 3, padding=1), "backward_data", "winograd4"),
        (Case("f2", 8, 32, 16, 16, 64, 3, 3, padding=1), "forward", "winograd4"),
        (Case("f3", 8, 256, 14, 14, 256, 3, 3, padding=1), "forward",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("f4", 8, 64, 56, 56, 64, 3, 3, padding=1), "forward", "winograd4"),
        (Case("f5", 64, 32, 15, 15, 64, 3, 3, padding=1), "backward_data", "winograd4"),
        (Case("f6", 64, 64, 32, 32, 64, 3, 3, padding=1), "forward", "winograd4"),
        (Case("f7", 2, 256, 56, 56, 256, 3, 3, padding=2, dilation=2), "forward", "winograd"),
        (Case("f8", 8, 128, 28, 28, 128, 3, 3, padding=1), "backward_data", "winograd4"),
        (Case("f9", 1, 128, 28, 28, 128, 3, 3, padding=1), "forward",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("f10", 1, 256, 56, 56, 256, 3, 3, padding=1), "forward",
         {"avx2": "winograd4", "other": "winograd"}),
        (Case("f11", 8, 64, 7, 7, 64, 3, 3, padding=1), "forward", "winograd"),
    ],
    ids=["1x1s1p0", "1x1s2", "1x1p1", "depthwise", "groups2", "C1", "bw-lenet1-b64",
         "bw-56x56", "bw-cifarnet1-b64", "bw-stem-b8", "bw-7x7x512", "bw-tiny", "fw-lenet1-b64",
         "fw-cifarnet1-b1", "fw-C5", "fw-stem-b8", "fw-alexnet1", "fw-C32-stride2", "fw-lenet2-b64", "fw-C16-K32-stride2",
         "fw-C16-4x4", "fw-K24", "fw-K64", "fw-C17", "fw-13-columns", "fw-groups2",
         "bd-tutorial1-b64", "bd-cifarnet1-b64", "bd-lenet1-b64", "bd-lenet2-b64", "bd-stem-b8",
         "bd-groups2", "bd-16-16-5x5", "bd-32-16-6x6", "bd-128-8",
         "bd-16-16-3x3-b8", "bd-7x7x512-b8", "bd-7x7x512-b1",
         "bd-56x56-b8", "fw-cifarnet2-b64", "fw-56x56-b1", "fw-14x14x256-b1", "fw-C3",
         "fw-odd-13x13", "bw-odd-13x13", "bw-odd-13x13-b8", "fw-7x7x512-b8", "bw-7x7x512-b8", "fw-7x7x32-b8",
         "fw-7x7x512-b4", "fw-7x7x512-b3", "fw-keras2-b1", "bd-keras2-b1", "fw-C8-keras2-b1",
         "fw-cifarnet2-b1",
         "bw-cifarnet2-b1", "bw-7x7x512-b4", "fw-4x4-out", "bw-4x4-out", "bd-4x4-out",
         "fw-6x6-same", "bd-6x6-same", "fw-6x6-same-b1", "fw-4x4x128-b16", "fw-4x4x256-b8",
         "bw-4x4x32", "fw-stride2", "bw-cifarnet2-b64", "bw-32-128-b64",
         "bw-16-64-b64", "bw-28x28x128-b8",
         "bw-14x14x256-b1", "bw-56x56-groups2", "bw-depthwise", "fw-dilated2-28x28x256",
         "bd-dilated2-28x28x256", "bw-dilated2-28x28x256", "fw-dilated2-odd-map",
         "fw-dilated2-pad1", "bd-cifarnet2-b64-f4", "fw-cifarnet2-b8-f4", "fw-14x14x256-b8-f2",
         "fw-56x56-b8-f4", "bd-15x15-b64-f4", "fw-32x32-b64-f4", "fw-dilated2-f2",
         "bd-28x28x128-b8-f4", "fw-28x28x128-b1-f2", "fw-56x56x256-b1-f2", "fw-7x7x64-b8-f2"],
)
@pytest.mark.usefixtures("isa")
def test_auto_algorithm_choice(case, direction, expected):
    """The automatic rule's choice on every ISA; `expected` maps ISA names ("other": the
    rest) where the choice depends on the ISA's tile sizes."""
    if isinstance(expected, dict):
        expected = expected.get(_core.current_isa(), expected["other"])
    args = _rule_args(case)
    got = _core.conv2d_choose_algorithm(*args, direction)
    assert got == expected
    if direction == "forward":  # the default direction
        assert _core.conv2d_choose_algorithm(*args) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        *((c, True) for c in CASES if c.id.startswith("same") and c.C // c.groups >= 32),
        (Case("same32_N1", 1, 32, 6, 7, 8, 3, 3, padding=1), False),
        (Case("same3", 2, 3, 6, 7, 8, 3, 3, padding=1), False),
        (Case("valid32", 2, 32, 6, 7, 8, 3, 3), False),
        (Case("stride2_32", 2, 32, 6, 7, 8, 3, 3, stride=2, padding=1), False),
    ],
    ids=lambda v: v.id if isinstance(v, Case) else str(v),
)
def test_backward_data_as_forward_rule(case, expected):
    """Which layers' im2col backward_data runs as the forward of dy with flipped weights; the
    'same' battery cases are there to exercise that path, so they must take it."""
    args = _rule_args(case)
    got = _core.conv2d_backward_data_as_forward(*args)
    assert got is expected


@pytest.mark.parametrize(
    ("case_id", "expected"),
    [("lenet5_conv1", True), ("direct_rows_bd_oc", True), ("direct_rows_wide", True),
     ("stride2_p1", False), ("padding_gt_kernel_k2p3", False), ("stride_1x2", False)],
)
def test_backward_data_by_rows_rule(case_id, expected):
    """Which battery cases' direct backward_data runs as the forward by rows of dy with the
    flipped weights (stride 1, ungrouped, padding <= dilation*(k - 1)) and which by shifted
    streams: the battery must exercise both."""
    case = next(c for c in CASES if c.id == case_id)
    args = _rule_args(case)
    got = _core.conv2d_backward_data_by_rows(*args)
    assert got is expected


def test_choose_algorithm_rejects_unknown_direction():
    x, w = np.zeros((1, 1, 5, 5), np.float32), np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="direction 'sideways'"):
        _core.conv2d_choose_algorithm(x, w, (1, 1), (0, 0, 0, 0), (1, 1), 1, "sideways")


# ---- (left, right, top, bottom) padding: against torch F.pad + conv2d --------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("pad4", [(0, 2, 1, 0), (3, 0, 0, 2), (1, 1, 2, 2)],
                         ids=["l0r2t1b0", "l3r0t0b2", "l1r1t2b2"])
def test_conv2d_four_sided_padding(isa, rng, pad4, dtype):
    x = rng.standard_normal((2, 3, 6, 7)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    X, W, B = (torch64(a).requires_grad_() for a in (x, w, b))
    Y = F.conv2d(F.pad(X, pad4), W, B, stride=(2, 1))
    dy = rng.standard_normal(tuple(Y.shape)).astype(dtype)
    Y.backward(torch64(dy))
    ref = (Y.detach().numpy(), X.grad.numpy(), W.grad.numpy(), B.grad.numpy())
    for algo in ("auto", "im2col", "ref"):
        run_all_directions(x, w, b, dy, ref, stride=(2, 1), padding=pad4, dilation=1, groups=1,
                           algorithm=algo, what=f"conv2d pad4={pad4} isa={isa} algo={algo}")


# ---- strided, negative-stride and transposed views ----------------------------------------


def _view4(arr, kind):
    """A view with the values of the 4-D (or 1-D bias) `arr` in memory layout `kind`."""
    if arr is None:
        return None
    arr = np.array(arr)  # writable copy
    if arr.ndim == 1:
        if kind in ("C", "F", "nhwc"):
            return arr
        if kind.startswith("step"):
            base = np.full(2 * arr.size, np.nan, dtype=arr.dtype)
            base[::2] = arr
            return base[::2]
        return arr[::-1].copy()[::-1]
    if kind == "C":
        return arr
    if kind == "F":
        return np.asfortranarray(arr)
    if kind == "flipW":  # x[:, :, :, ::-1]
        return arr[..., ::-1].copy()[..., ::-1]
    if kind == "flipH":  # x[:, :, ::-1]
        return arr[:, :, ::-1].copy()[:, :, ::-1]
    if kind == "flipNC":
        return arr[::-1, ::-1].copy()[::-1, ::-1]
    if kind == "nhwc":  # np.transpose of an NHWC buffer
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if kind == "stepW":  # x[..., ::2] of a wider buffer whose skipped columns are NaN
        base = np.full((*arr.shape[:3], 2 * arr.shape[3]), np.nan, dtype=arr.dtype)
        base[..., ::2] = arr
        return base[..., ::2]
    if kind == "stepC":  # x[:, ::2]
        base = np.full((arr.shape[0], 2 * arr.shape[1], *arr.shape[2:]), np.nan, dtype=arr.dtype)
        base[:, ::2] = arr
        return base[:, ::2]
    raise AssertionError(kind)


VIEW_KINDS = ["F", "flipW", "flipH", "flipNC", "nhwc", "stepW", "stepC"]
VIEW_CASES = [c for c in CASES if c.id in (
    "stride2_p1", "pointwise_8_16", "depthwise_m2", "groups2", "same_even_k4x2")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("case", VIEW_CASES, ids=[c.id for c in VIEW_CASES])
def test_conv2d_strided_views(isa, case, kind, dtype):
    x, w, b, dy, ref = _case_data(case, dtype)
    xv, wv, bv, dyv = (_view4(a, kind) for a in (x, w, b, dy))
    assert not xv.flags.c_contiguous
    for algo in case.algorithms():
        run_all_directions(xv, wv, bv, dyv, ref, stride=case.stride, padding=case.padding,
                           dilation=case.dilation, groups=case.groups, algorithm=algo,
                           what=f"conv2d[{case.id}] views={kind} isa={isa} algo={algo}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_misaligned_inputs(isa, dtype):
    """C-contiguous arrays whose data pointer is not a multiple of the element size."""
    case = next(c for c in CASES if c.id == "pointwise_8_16")
    x, w, b, dy, ref = _case_data(case, dtype)
    xm, wm, bm, dym = (misaligned(a) for a in (x, w, b, dy))
    for algo in case.algorithms():
        run_all_directions(xm, wm, bm, dym, ref, stride=1, padding=0, dilation=1, groups=1,
                           algorithm=algo, what=f"conv2d misaligned isa={isa} algo={algo}")


# Depthwise 3x3 at stride 1 and 2 loads a vector whose lanes leave the row plainly (masking them
# after the load) only where the load stays inside the plane; padding 2 brings the masked
# columns to the first and last rows of the plane, next to unmapped memory here. At padding
# 1 a row's partial last column meets the last dy row in the backward_weight's plain steps.
GUARDED_CASES = [
    Case("depthwise_3x3_p1_w13", 1, 3, 6, 13, 3, 3, 3, padding=1, groups=3),
    Case("depthwise_3x3_p2_w21", 1, 3, 9, 21, 3, 3, 3, padding=2, groups=3),
    Case("depthwise_3x3_p2x1_w16_m2", 2, 2, 7, 16, 4, 3, 3, padding=(2, 1), groups=2),
    Case("depthwise_3x3_s2_p2_w37", 1, 3, 9, 37, 3, 3, 3, stride=2, padding=2, groups=3),
    Case("depthwise_3x3_s2_p1_w41", 1, 2, 10, 41, 2, 3, 3, stride=2, padding=1, groups=2),
]


@pytest.mark.skipif(not GUARD_PAGES, reason="needs mprotect (Linux)")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("at_end", [False, True], ids=["start", "end"])
@pytest.mark.parametrize("case", GUARDED_CASES, ids=[c.id for c in GUARDED_CASES])
def test_conv2d_inputs_next_to_unmapped_pages(isa, case, at_end, dtype):
    """x and dy start (end) on a page boundary: no read before (after) them."""
    x, w, b, dy, ref = _case_data(case, dtype)
    xg, dyg = guarded(x, at_end), guarded(dy, at_end)
    for algo in case.algorithms():
        run_all_directions(xg, w, b, dyg, ref, stride=case.stride, padding=case.padding,
                           dilation=case.dilation, groups=case.groups, algorithm=algo,
                           what=f"conv2d[{case.id}] guarded at_end={at_end} isa={isa} "
                                f"algo={algo}")


# Inputs no window reads: the last rows / columns of a strided layer whose windows stop
# short, the gaps of a dilated layer whose output is narrower than the dilation. Kernels
# may still load them (vector lanes past an output row, phase planes copied whole); a NaN
# there must reach no result, since torch's results are those of the input without it.
UNREAD_CASES = [
    Case("depthwise_3x3_s2_p0_10x10", 2, 3, 10, 10, 3, 3, 3, stride=2, groups=3),
    Case("depthwise_3x3_s2_p0_12x40_m2", 1, 2, 12, 40, 4, 3, 3, stride=2, groups=2),
    Case("depthwise_5x5_s2_p0_13x16", 2, 4, 13, 16, 4, 5, 5, stride=2, groups=4),
    Case("depthwise_3x3_d4_10x11", 1, 3, 10, 11, 3, 3, 3, dilation=4, groups=3),
    Case("conv_3x3_s2_p0_9x12", 2, 3, 9, 12, 5, 3, 3, stride=2),
    Case("conv_3x5_s3x2_d2_p1_14x19", 2, 2, 14, 19, 3, 3, 5, stride=(3, 2), padding=1,
         dilation=2),
    Case("conv_2x3_d3_8x9_g2", 1, 4, 8, 9, 4, 2, 3, dilation=(3, 4), groups=2),
]


def unread_mask(case: Case) -> np.ndarray:
    """[H, W] bool: True where no window of the layer reads the input (from the definition
    of the windows, independent of every kernel)."""
    top, _, left, _ = case.pads
    (sh, sw), (dh, dw) = _pair(case.stride), _pair(case.dilation)
    oh, ow = case.out_hw
    rows = {o * sh - top + k * dh for o in range(oh) for k in range(case.kh)}
    cols = {o * sw - left + k * dw for o in range(ow) for k in range(case.kw)}
    read_rows = np.isin(np.arange(case.H), sorted(rows))
    read_cols = np.isin(np.arange(case.W), sorted(cols))
    return ~(read_rows[:, None] & read_cols[None, :])


UNREAD_RUNS = [(c, a) for c in UNREAD_CASES for a in c.algorithms()]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("case", "algo"), UNREAD_RUNS, ids=[f"{c.id}-{a}" for c, a in UNREAD_RUNS])
def test_conv2d_unread_inputs_reach_no_result(isa, case, dtype, algo):
    """NaN at every input position no window of the layer reads."""
    x, w, b, dy, ref = _case_data(case, dtype)
    unread = unread_mask(case)
    assert unread.any(), f"{case.id}: every input is read"
    xn = np.array(x, copy=True)
    xn[:, :, unread] = np.nan
    run_all_directions(xn, w, b, dy, ref, stride=case.stride, padding=case.padding,
                       dilation=case.dilation, groups=case.groups, algorithm=algo,
                       what=f"conv2d[{case.id}] NaN unread isa={isa} algo={algo}", tol_x=x)


# ---- threads: backward_weight splits images over threads ------------------------------




THREAD_CASES = [
    Case("t_N4_3x3", 4, 3, 9, 8, 5, 3, 3, padding=1),
    Case("t_N3_s2_g2", 3, 4, 9, 9, 6, 3, 3, stride=2, groups=2),
    Case("t_N5_pointwise", 5, 8, 6, 5, 7, 1, 1),
    Case("t_N2_depthwise", 2, 6, 7, 7, 12, 3, 3, padding=1, groups=6),
    Case("t_N1_lenet2", 1, 6, 14, 14, 16, 5, 5),
    Case("t_N4_lenet1", 4, 1, 32, 32, 6, 5, 5),
    # 7x7 maps: the forward GEMM puts several images side by side in N, with a shorter
    # last chunk (9 = 8 + 1 or 4 + 4 + 1 images).
    Case("t_N9_7x7_images_per_gemm", 9, 16, 7, 7, 24, 3, 3, padding=1),
    Case("t_N7_5x5_g2_images_per_gemm", 7, 8, 10, 10, 6, 3, 3, stride=2, padding=1, groups=2),
    # Winograd with fewer blocks of tiles than threads (one panel): the (group, MR block of
    # output channels) pairs are split over the threads too.
    Case("t_N1_g2_winograd_channel_split", 1, 8, 6, 6, 40, 3, 3, padding=1, groups=2),
]
THREAD_PARAMS = [
    pytest.param(case, algo, id=f"{case.id}-{algo}") for case in THREAD_CASES
    for algo in case.algorithms()
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("case", "algorithm"), THREAD_PARAMS)
def test_conv2d_threads(isa, threads, case, algorithm, dtype):
    x, w, b, dy, ref = _case_data(case, dtype)
    what = f"conv2d[{case.id}] threads={threads} isa={isa} algo={algorithm}"
    hyper = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation,
             "groups": case.groups}
    _, _, dw = run_all_directions(x, w, b, dy, ref, algorithm=algorithm, what=what, **hyper)
    # Same thread count, same bits (fixed chunking and a fixed-order reduction).
    for _ in range(2):
        again = K.conv2d_backward_weight(dy, x, w.shape, algorithm=algorithm, **hyper)
        assert np.array_equal(again, dw), f"{what}: backward_weight not bitwise reproducible"


@pytest.mark.parametrize("algorithm", ["winograd4", "winograd"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(3, 16, 16, 16, 24), (9, 8, 16, 16, 8), (2, 16, 14, 22, 24),
                                   (5, 32, 30, 30, 16), (1, 16, 8, 8, 40), (1, 96, 72, 72, 8)],
                         ids=str)
@pytest.mark.usefixtures("isa")
def test_winograd_same_bits_for_any_thread_count(shape, dtype, algorithm, rng):
    """F(4x4, 3x3)'s and F(2x2, 3x3)'s forward, backward_data and fused max pool: every
    output is written by one thread in a fixed order, so 1, 2 and 3 threads give the same
    bits (blocks of tiles that cut a panel or end in a half-width one, rows padded to groups
    of 4, gathered; one panel of 8 tiles, its output channels split over the threads; over
    256 tiles, U transformed inside the GEMM loop, one block whose input channels and then
    (group, MR block) pairs are split over the threads; with over 4 MiB of V, in blocks)."""
    N, C, H, W, K_ = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K_, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(K_).astype(dtype)
    conv = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    old = fc.get_num_threads()
    try:
        got = []
        for n in (1, 2, 3):
            fc.set_num_threads(n)
            y = _core.conv2d_forward(x, w, b, *conv, algorithm)
            dx = _core.conv2d_backward_data(y, w, x.shape, *conv, algorithm)
            p, i = _core.conv2d_max_pool2d_forward(x, w, b, *conv, (2, 2), (2, 2), (0, 0), (1, 1),
                                                   False, True, True, algorithm)
            got.append((y, dx, p, i))
    finally:
        fc.set_num_threads(old)
    for n, outs in zip((2, 3), got[1:]):
        for what, a, b_ in zip(("y", "dx", "pooled", "indices"), got[0], outs):
            assert np.array_equal(a, b_), f"{what}: {n} threads differ from 1"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("case", "algorithm"), [
    (THREAD_CASES[0], "direct"), (THREAD_CASES[1], "direct"), (THREAD_CASES[5], "direct"),
    (THREAD_CASES[0], "winograd"), (THREAD_CASES[6], "winograd"),
    (next(c for c in CASES if c.id == "winograd_auto_wgrad"), "winograd"),
    (next(c for c in CASES if c.id == "winograd_wgrad_chunks"), "winograd"),
], ids=lambda v: getattr(v, "id", v))
@pytest.mark.usefixtures("isa")
def test_backward_weight_same_bits_for_any_thread_count(case, algorithm, dtype):
    # The direct and Winograd weight gradients sum each entry on one thread in a fixed order.
    x, w, _, dy, _ = _case_data(case, dtype)
    hyper = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation,
             "groups": case.groups}
    old = fc.get_num_threads()
    try:
        got = []
        for n in (1, 2, 3):
            fc.set_num_threads(n)
            got.append(K.conv2d_backward_weight(dy, x, w.shape, algorithm=algorithm, **hyper))
    finally:
        fc.set_num_threads(old)
    assert np.array_equal(got[0], got[1])
    assert np.array_equal(got[0], got[2])


@pytest.mark.parametrize("requested", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_reductions_keep_their_bits_when_the_load_caps_threads(requested, dtype, rng):
    """The weight gradients that add per-slice partial sums (im2col backward_weight, the
    pooled weight gradient) split the batch by the requested thread count: a busy core
    that leaves fewer threads (here forced: _set_thread_cap) gives the same bits."""
    case = THREAD_CASES[0]  # N = 4
    x, w, _, dy, _ = _case_data(case, dtype)
    hyper = {"stride": case.stride, "padding": case.padding, "dilation": case.dilation,
             "groups": case.groups}
    xs, ws, stride, pad, dil, groups, pk, ps, pp = POOLED_CASES["lenet_conv2"]
    xp, g, idx, _, _, _ = _pooled_reference((8, *xs[1:]), ws, stride, pad, dil, groups, pk,
                                            ps, pp, dtype, rng)
    phyper = (ws[2:], _pair(stride), (pad,) * 4, _pair(dil), groups)
    old = fc.get_num_threads()
    got = {}
    try:
        fc.set_num_threads(requested)
        for cap in (0, 1, 2):
            _core._set_thread_cap(cap)
            got[cap] = (K.conv2d_backward_weight(dy, x, w.shape, algorithm="im2col", **hyper),
                        *_core.conv2d_backward_weight_pooled(g, idx, xp, *phyper))
    finally:
        _core._set_thread_cap(0)
        fc.set_num_threads(old)
    for cap in (1, 2):
        for a, b in zip(got[0], got[cap], strict=True):
            assert np.array_equal(a, b), f"cap {cap} of {requested} threads changed the bits"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(3, 600, 2, 3), (2, 5, 70, 70), (64, 16, 10, 10)], ids=str)
def test_backward_bias_blocks_and_threads(shape, dtype):
    """The bias gradient reads dy image by image over blocks of 256 channels (600: three
    blocks, split between threads), each channel summed on one thread in image order: the
    float64 sum within the tolerance, and the same bits at any thread count."""
    dy = np.random.default_rng(len(shape) + shape[1]).standard_normal(shape).astype(dtype)
    ref = dy.astype(np.float64).sum(axis=(0, 2, 3))
    old = fc.get_num_threads()
    try:
        got = []
        for n in (1, 2, 3):
            fc.set_num_threads(n)
            got.append(K.conv2d_backward_bias(dy))
    finally:
        fc.set_num_threads(old)
    length = shape[0] * shape[2] * shape[3]
    assert_close(got[0], ref, tolerance(dtype, length, maxabs(dy), 1.0), what=f"db {shape}")
    assert np.array_equal(got[0], got[1])
    assert np.array_equal(got[0], got[2])


# ---- weight gradient from a max-pooled gradient ------------------------------------------

# (x shape, weight shape, stride, padding, dilation, groups, pool kernel, stride, padding)
POOLED_CASES = {
    "lenet_conv1": ((3, 1, 28, 28), (6, 1, 5, 5), 1, 0, 1, 1, 2, 2, 0),  # half-width vectors
    "lenet_conv2": ((3, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, 1, 2, 2, 0),
    "cifar_conv1": ((2, 3, 32, 32), (32, 3, 3, 3), 1, 1, 1, 1, 2, 2, 0),  # col^T
    "cifar_conv2_wide": ((2, 32, 16, 16), (70, 32, 3, 3), 1, 1, 1, 1, 2, 2, 0),
    "overlap_s2_groups": ((2, 4, 15, 13), (6, 2, 3, 3), 2, 1, 1, 2, 3, 2, 1),
    "dilated_rect": ((2, 4, 15, 13), (8, 1, 3, 2), 1, 2, 2, 4, (2, 3), (2, 3), 0),
    "big_padding": ((2, 3, 4, 4), (3, 3, 3, 3), 8, 10, 1, 1, 2, 2, 0),  # im2col fallback
    "rows_big_padding": ((2, 2, 4, 4), (3, 2, 3, 3), 1, 3, 1, 1, 2, 2, 0),
    "rows_column_chunks": ((2, 64, 6, 6), (5, 64, 3, 3), 1, 1, 1, 1, 2, 2, 0),  # 12 vectors
    "rows_8x8": ((2, 8, 12, 12), (3, 8, 8, 8), 1, 2, 1, 1, 2, 2, 0),  # 8 rows, 4 vectors
    "col_t_9x9": ((2, 2, 12, 12), (4, 2, 9, 9), 1, 2, 1, 1, 2, 2, 0),  # > 8 kernel rows
}


def _pooled_reference(xs, ws, stride, pad, dil, groups, pk, ps, pp, dtype, rng):
    """Inputs and torch float64's dW, db of sum(g * max_pool2d(relu(conv(x)))), with the
    pooled gradient masked as the fused ReLU's backward masks it."""
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    tw = torch64(w).requires_grad_()
    tb = torch64(np.zeros(ws[0])).requires_grad_()
    y = F.conv2d(torch64(x), tw, tb, stride, pad, dil, groups)
    pooled, idx = F.max_pool2d(F.relu(y), pk, ps, pp, return_indices=True)
    g = rng.standard_normal(pooled.shape).astype(dtype)
    (pooled * torch64(g)).sum().backward()
    g = np.where(pooled.detach().numpy() > 0, g, 0).astype(dtype)
    return x, g, idx.numpy(), tw.grad.numpy(), tb.grad.numpy(), y.shape[2] * y.shape[3]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(POOLED_CASES.values()), ids=list(POOLED_CASES))
@pytest.mark.usefixtures("isa", "threads")
def test_backward_weight_pooled(case, dtype, rng):
    """conv2d_backward_weight_pooled against torch float64 through relu and max_pool2d
    (overlapping windows, groups, stride, dilation; the NHWC segments read in place, in
    half-width vectors, in column chunks, with 8 kernel rows; col^T packed from the padded
    input or through the im2col fallback), and the same bits for the same thread count."""
    xs, ws, stride, pad, dil, groups, pk, ps, pp = case
    x, g, idx, dw_ref, db_ref, _ = _pooled_reference(xs, ws, stride, pad, dil, groups, pk, ps,
                                                     pp, dtype, rng)
    hyper = (ws[2:], _pair(stride), (pad,) * 4, _pair(dil), groups)
    dw, db = _core.conv2d_backward_weight_pooled(g, idx, x, *hyper)
    assert dw.dtype == db.dtype == dtype
    length = g[:, 0].size
    assert_close(dw, dw_ref, tolerance(dtype, length, maxabs(x), maxabs(g)), what="dw")
    assert_close(db, db_ref, tolerance(dtype, length, 1.0, maxabs(g)), what="db")
    again = _core.conv2d_backward_weight_pooled(g, idx, x, *hyper)
    assert np.array_equal(dw, again[0])
    assert np.array_equal(db, again[1])


# (x shape, pooled shape, padding, bad indices in the order set: (position, value)); each
# error names the first bad index in address order among those set so far
POOLED_BAD_INDEX_CASES = {
    # NHWC segments read in place; the output plane is 6 x 6
    "rows": ((2, 3, 8, 8), (2, 4, 3, 3), 0, [((1, 2, 0, 1), 36), ((1, 2, 0, 1), -1)]),
    # col^T (3x3 on > 27 channels of 3), channels in blocks: a later block and position of
    # the second image, then an earlier block; the output plane is 16 x 16
    "col_t": ((2, 3, 16, 16), (2, 40, 8, 8), 1, [((1, 37, 5, 6), 256), ((1, 2, 7, 7), -3)]),
}


@pytest.mark.parametrize("case", list(POOLED_BAD_INDEX_CASES.values()),
                         ids=list(POOLED_BAD_INDEX_CASES))
def test_backward_weight_pooled_bad_index(case):
    xs, gs, pad, bad_indices = case
    x, g = np.zeros(xs, np.float32), np.ones(gs, np.float32)
    bad = np.zeros(gs, np.int64)
    for at, value in bad_indices:
        bad[at] = value
        where = ", ".join(map(str, at))
        with pytest.raises(ValueError, match=rf"indices\[{where}\] = {value} is out of range"):
            _core.conv2d_backward_weight_pooled(g, bad, x, (3, 3), (1, 1), (pad,) * 4, (1, 1), 1)


def test_backward_weight_pooled_errors():
    x = np.zeros((2, 3, 8, 8), np.float32)
    g = np.ones((2, 4, 3, 3), np.float32)
    idx = np.zeros((2, 4, 3, 3), np.int64)
    hyper = ((3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    call = _core.conv2d_backward_weight_pooled
    with pytest.raises(TypeError, match="indices to have dtype int64"):
        call(g, idx.astype(np.int32), x, *hyper)
    with pytest.raises(ValueError, match="same shape as pooled_grad"):
        call(g, idx[:, :, :2], x, *hyper)
    with pytest.raises(ValueError, match="same batch size"):
        call(g[:1], idx[:1], x, *hyper)
    with pytest.raises(TypeError, match="dtype"):
        call(g.astype(np.float64), idx, x, *hyper)
    with pytest.raises(ValueError, match="divisible by groups"):
        call(g, idx, x, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 3)
    # an empty batch is a zero gradient
    dw, db = call(g[:0], idx[:0], x[:0], *hyper)
    assert dw.shape == (4, 3, 3, 3)
    assert not dw.any()
    assert not db.any()


# ---- forward with the max pool fused ----------------------------------------------------

# (x shape, weight shape, conv padding, algorithm, pool kernel, stride, padding, ceil_mode
#  [, groups])
FUSED_POOL_CASES = {
    # Winograd, each 2x2 tile a window: two tile rows to a vector (float32 up to 8 tiles a
    # row, float64 up to 4), a vector per row, rows longer than a vector, odd maps whose
    # last row and column no window reads
    "winograd_pairs": ((2, 16, 12, 12), (20, 16, 3, 3), 1, "winograd", 2, 2, 0, False),
    "winograd_row": ((2, 16, 14, 18), (24, 16, 3, 3), 1, "winograd", 2, 2, 0, False),
    "winograd_long_rows": ((1, 16, 6, 40), (17, 16, 3, 3), 1, "winograd", 2, 2, 0, False),
    "winograd_odd": ((2, 16, 15, 37), (9, 16, 3, 3), 1, "winograd", 2, 2, 0, False),
    "winograd_odd_small": ((3, 5, 7, 9), (3, 5, 3, 3), 1, "winograd", 2, 2, 0, False),
    "winograd_groups": ((2, 32, 14, 18), (32, 16, 3, 3), 1, "winograd", 2, 2, 0, False, 2),
    # Winograd with windows that are not its tiles: through a temporary conv output
    "winograd_ceil": ((2, 16, 15, 13), (8, 16, 3, 3), 1, "winograd", 2, 2, 0, True),
    "winograd_overlap": ((2, 16, 12, 12), (8, 16, 3, 3), 1, "winograd", 3, 2, 1, False),
    # the forward by rows, each image pooled from a per-thread buffer: any window
    "rows": ((3, 3, 20, 20), (6, 3, 5, 5), 0, "direct", 2, 2, 0, False),
    "rows_overlap_ceil": ((2, 1, 28, 26), (5, 1, 5, 5), 2, "direct", 3, 2, 1, True),
    # the other algorithms: the conv output of a chunk of images (<= 256 KB, >= 1 image)
    "im2col": ((2, 4, 11, 11), (5, 4, 3, 3), 1, "im2col", 2, 2, 0, False),
    "ref": ((2, 2, 9, 9), (3, 2, 3, 3), 0, "ref", 2, 1, 0, False),
    "im2col_chunks": ((3, 4, 33, 33), (64, 4, 3, 3), 1, "im2col", 3, 2, 1, True),  # 1 image
    "winograd_overlap_chunks": ((3, 16, 36, 36), (64, 16, 3, 3), 1, "winograd", 3, 2, 1, False),
    # F(4x4, 3x3), each 4x4 tile 2x2 windows: rows of whole groups of 4 tiles (one and two
    # groups a row, a tile row starting a panel past the image's first), rows that are not
    # (gathered), odd maps whose last tile is partly outside, groups, and windows that are
    # not the tiles'
    "winograd4_groups": ((2, 16, 16, 16), (20, 16, 3, 3), 1, "winograd4", 2, 2, 0, False),
    "winograd4_group_rows": ((1, 8, 32, 32), (9, 8, 3, 3), 1, "winograd4", 2, 2, 0, False),
    "winograd4_gathered": ((2, 16, 14, 22), (24, 16, 3, 3), 1, "winograd4", 2, 2, 0, False),
    "winograd4_odd": ((2, 16, 15, 30), (9, 16, 3, 3), 1, "winograd4", 2, 2, 0, False),
    "winograd4_odd_small": ((3, 5, 7, 9), (3, 5, 3, 3), 1, "winograd4", 2, 2, 0, False),
    "winograd4_groups2": ((2, 32, 16, 16), (32, 16, 3, 3), 1, "winograd4", 2, 2, 0, False, 2),
    "winograd4_ceil": ((2, 16, 15, 13), (8, 16, 3, 3), 1, "winograd4", 2, 2, 0, True),
    # Over 256 tiles: U transformed per (group, MR block) inside the GEMM loop (F(2x2) and
    # F(4x4)), or whole first with over 4 MiB of V (F(2x2), float64)
    "winograd_fused_u": ((3, 32, 34, 34), (40, 16, 3, 3), 1, "winograd", 2, 2, 0, False, 2),
    "winograd4_fused_u": ((3, 16, 34, 34), (40, 16, 3, 3), 1, "winograd4", 2, 2, 0, False),
    "winograd_whole_u": ((1, 96, 72, 72), (8, 96, 3, 3), 1, "winograd", 2, 2, 0, False),
}


@pytest.mark.parametrize("relu", [False, True], ids=["pool", "pool_relu"])
@pytest.mark.parametrize("values", ["normal", "ties", "nan"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(FUSED_POOL_CASES.values()), ids=list(FUSED_POOL_CASES))
@pytest.mark.usefixtures("isa", "threads")
def test_conv2d_max_pool2d_forward(case, dtype, values, relu, rng):
    """conv2d_max_pool2d_forward against torch float64's max_pool2d(conv2d) (of its ReLU,
    with relu), and bitwise max_pool2d_forward(conv2d_forward) (then relu_forward) with the
    same algorithm: values and argmax, with exact ties (small integers: the first maximum
    in scan order), NaN (it wins) and the ReLU's zeros."""
    xs, ws, pad, algo, pk, ps, pp, ceil, *groups = case
    groups = groups[0] if groups else 1
    if values == "ties":
        x = rng.integers(-1, 2, xs).astype(dtype)
        w = rng.integers(0, 2, ws).astype(dtype)
    else:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
    if values == "nan":
        x.flat[rng.choice(x.size, 3, replace=False)] = np.nan
    b = (rng.integers(-2, 3, ws[0]) if values == "ties" else rng.standard_normal(ws[0]))
    b = b.astype(dtype)
    conv = ((1, 1), (pad,) * 4, (1, 1), groups)
    pool = ((pk, pk), (ps, ps), (pp, pp), (1, 1), ceil)
    y, idx = _core.conv2d_max_pool2d_forward(x, w, b, *conv, *pool, True, relu, algo)
    ref_y, ref_idx = _core.max_pool2d_forward(_core.conv2d_forward(x, w, b, *conv, algo), *pool)
    if relu:
        ref_y = _core.relu_forward(ref_y)
        assert (y == 0).any()
    assert y.dtype == dtype
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(y, ref_y)  # NaN where the reference has NaN
    np.testing.assert_array_equal(idx, ref_idx)
    values_only, none = _core.conv2d_max_pool2d_forward(x, w, b, *conv, *pool, False, relu,
                                                        algo)
    assert none is None
    np.testing.assert_array_equal(values_only, y)
    ty = F.conv2d(torch64(x), torch64(w), torch64(b), padding=pad, groups=groups)
    ty, tidx = F.max_pool2d(ty, pk, ps, pp, ceil_mode=ceil, return_indices=True)
    if relu:
        ty = F.relu(ty)
    if values == "ties" and algo != "winograd4":  # exact: the same windows' first maxima
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
    elif values == "ties":  # F(4x4, 3x3)'s 1/6, 1/12, 1/24 round: near ties may differ
        assert_close(y, ty.numpy(), 4 * tolerance(dtype, ws[1] * 9, maxabs(x), maxabs(w)),
                     what="y")
    else:
        finite = np.isfinite(ty.numpy())
        if algo == "winograd4":
            # A NaN input makes its whole 4x4 tile NaN, all 4 windows (docs/performance.md).
            assert np.isnan(y[~finite]).all()
            finite &= ~np.isnan(y)
        else:
            np.testing.assert_array_equal(np.isnan(y), ~finite)
        assert_close(np.where(finite, y, 0), np.where(finite, ty.numpy(), 0),
                     tolerance(dtype, ws[1] * 9, maxabs(np.nan_to_num(x)), maxabs(w)), what="y")


def test_conv2d_max_pool2d_forward_errors():
    x = np.zeros((2, 3, 8, 8), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    conv = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    call = _core.conv2d_max_pool2d_forward
    with pytest.raises(ValueError, match=r"conv2d_max_pool2d: .*kernel_size"):
        call(x, w, None, *conv, (0, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match="padding should be at most half of kernel_size"):
        call(x, w, None, *conv, (2, 2), (2, 2), (2, 0), (1, 1), False)
    with pytest.raises(ValueError, match=r"Output size is too small"):  # the conv map is 6 x 6
        call(x, w, None, *conv, (7, 7), (1, 1), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match=r"conv2d_max_pool2d: expected bias of shape \(4,\)"):
        call(x, w, np.zeros(3, np.float32), *conv, (2, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match=r"expected input.*to have 6 channels"):
        call(x, np.zeros((4, 6, 3, 3), np.float32), None, *conv, (2, 2), (2, 2), (0, 0), (1, 1),
             False)
    with pytest.raises(ValueError, match="algorithm 'winograd' needs a 3x3 kernel"):
        call(x, np.zeros((4, 3, 5, 5), np.float32), None, *conv, (2, 2), (2, 2), (0, 0), (1, 1),
             False, True, True, "winograd")
    with pytest.raises(TypeError, match="dtype"):
        call(x, w.astype(np.float64), None, *conv, (2, 2), (2, 2), (0, 0), (1, 1), False)
    y, idx = call(x[:0], w, None, *conv, (2, 2), (2, 2), (0, 0), (1, 1), False)  # empty batch
    assert y.shape == idx.shape == (0, 4, 3, 3)


# ---- empty batch -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ["auto", "im2col", "ref", "depthwise", "direct"])
def test_conv2d_empty_batch(isa, algorithm, dtype):
    """N = 0: torch returns an empty output, an empty dx and all-zero dw / db."""
    groups = 3 if algorithm == "depthwise" else 1
    x = np.zeros((0, 3, 6, 6), dtype)
    w = np.ones((6, 3 // groups, 3, 3), dtype)
    dy = np.zeros((0, 6, 4, 4), dtype)
    ref = torch_conv2d(x, w, np.ones(6, dtype), dy, 1, 0, 1, groups)
    run_all_directions(x, w, np.ones(6, dtype), dy, ref, stride=1, padding=0, dilation=1,
                       groups=groups, algorithm=algorithm,
                       what=f"conv2d N=0 isa={isa} algo={algorithm}")


# ---- random configurations (hypothesis) --------------------------------------------------


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    return {
        "N": draw(st.integers(1, 3)),
        "groups": groups,
        "C": groups * draw(st.integers(1, 4)),
        "K": groups * draw(st.integers(1, 4)),
        "H": draw(st.integers(1, 12)),
        "W": draw(st.integers(1, 12)),
        "kh": draw(st.integers(1, 4)),
        "kw": draw(st.integers(1, 4)),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        "dilation": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=conv_configs())
def test_conv2d_hypothesis(isa, cfg):
    seed = cfg.pop("seed")
    case = Case("hypothesis", **cfg)
    oh, ow = case.out_hw
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.N, case.C, case.H, case.W))
    w = rng.standard_normal((case.K, case.C // case.groups, case.kh, case.kw))
    b = rng.standard_normal(case.K) if case.bias else None
    dy = rng.standard_normal((case.N, case.K, oh, ow))
    ref = torch_conv2d(x, w, b, dy, case.stride, case.padding, case.dilation, case.groups)
    for algo in case.algorithms():
        run_all_directions(x, w, b, dy, ref, stride=case.stride, padding=case.padding,
                           dilation=case.dilation, groups=case.groups, algorithm=algo,
                           what=f"conv2d {case} isa={isa} algo={algo}")


# ---- validation: each rule raises the right type and names the argument -------------------

_X = np.ones((2, 4, 6, 6), np.float32)
_W = np.ones((6, 4, 3, 3), np.float32)
_B = np.ones(6, np.float32)
_DY = np.ones((2, 6, 4, 4), np.float32)
_W1 = np.ones((6, 4, 1, 1), np.float32)

CONV_ERRORS = [
    # conv2d forward
    ("input-list", lambda: K.conv2d(_X.tolist(), _W), TypeError, r"\binput\b.*numpy\.ndarray"),
    ("weight-list", lambda: K.conv2d(_X, _W.tolist()), TypeError, r"\bweight\b.*numpy\.ndarray"),
    ("bias-list", lambda: K.conv2d(_X, _W, _B.tolist()), TypeError, r"\bbias\b.*numpy\.ndarray"),
    ("input-int", lambda: K.conv2d(_X.astype(np.int32), _W), TypeError,
     r"\binput\b.*float32 or float64"),
    ("weight-int", lambda: K.conv2d(_X, _W.astype(np.int64)), TypeError,
     r"\bweight\b.*float32 or float64"),
    ("bias-int", lambda: K.conv2d(_X, _W, _B.astype(np.int32)), TypeError,
     r"\bbias\b.*float32 or float64"),
    ("mixed-input-weight", lambda: K.conv2d(_X, _W.astype(np.float64)), TypeError,
     r"\binput and weight\b.*same dtype"),
    ("mixed-input-bias", lambda: K.conv2d(_X, _W, _B.astype(np.float64)), TypeError,
     r"\binput and bias\b.*same dtype"),
    ("input-3d", lambda: K.conv2d(_X[0], _W), ValueError, r"\binput\b.*4-D"),
    ("input-5d", lambda: K.conv2d(_X[None], _W), ValueError, r"\binput\b.*4-D"),
    ("weight-3d", lambda: K.conv2d(_X, _W[0]), ValueError, r"\bweight\b.*4-D"),
    ("channels-vs-weight", lambda: K.conv2d(_X, _W[:, :3]), ValueError,
     r"\binput\b.*to have 3 channels, but got 4"),
    ("channels-vs-groups", lambda: K.conv2d(_X, _W[:, :3], groups=2), ValueError,
     r"groups=2.*\binput\b.*to have 6 channels, but got 4"),
    ("K-mod-groups", lambda: K.conv2d(_X, np.ones((5, 2, 3, 3), np.float32), groups=2),
     ValueError, r"groups=2.*\bweight\b.*divisible by 2"),
    ("groups-0", lambda: K.conv2d(_X, _W, groups=0), ValueError, r"\bgroups\b.*positive"),
    ("bias-shape", lambda: K.conv2d(_X, _W, np.ones(5, np.float32)), ValueError,
     r"\bbias\b of shape \(6,\)"),
    ("bias-2d", lambda: K.conv2d(_X, _W, np.ones((6, 1), np.float32)), ValueError,
     r"\bbias\b of shape \(6,\)"),
    ("stride-0", lambda: K.conv2d(_X, _W, stride=0), ValueError, r"\bstride\b.*positive"),
    ("stride-pair-neg", lambda: K.conv2d(_X, _W, stride=(1, -1)), ValueError,
     r"\bstride\b.*positive"),
    ("stride-float", lambda: K.conv2d(_X, _W, stride=1.5), TypeError, r"\bstride\b"),
    ("stride-triple", lambda: K.conv2d(_X, _W, stride=(1, 1, 1)), ValueError, r"\bstride\b"),
    ("dilation-0", lambda: K.conv2d(_X, _W, dilation=0), ValueError, r"\bdilation\b.*positive"),
    ("padding-negative", lambda: K.conv2d(_X, _W, padding=-1), ValueError,
     r"\bpadding\b.*non-negative"),
    ("padding-pair-negative", lambda: K.conv2d(_X, _W, padding=(0, -2)), ValueError,
     r"\bpadding\b.*non-negative"),
    ("padding-bad-string", lambda: K.conv2d(_X, _W, padding="full"), ValueError,
     r"\bpadding\b.*'full'"),
    ("same-stride2", lambda: K.conv2d(_X, _W, stride=2, padding="same"), ValueError,
     r"padding='same'.*strided"),
    ("kernel-gt-input", lambda: K.conv2d(_X, np.ones((6, 4, 7, 3), np.float32)), ValueError,
     r"Kernel size"),
    ("kernel-gt-padded-input-dilated",
     lambda: K.conv2d(_X, _W, padding=1, dilation=4), ValueError, r"Kernel size"),
    ("weight-zero-dim", lambda: K.conv2d(_X, np.ones((6, 4, 0, 3), np.float32)), ValueError,
     r"\bweight\b.*zero-sized"),
    ("input-zero-H", lambda: K.conv2d(np.ones((2, 4, 0, 6), np.float32), _W), ValueError,
     r"\binput\b.*non-zero"),
    ("unknown-algorithm", lambda: K.conv2d(_X, _W, algorithm="fft"), ValueError,
     r"algorithm 'fft'.*winograd"),
    ("winograd-on-strided", lambda: K.conv2d(_X, _W, stride=2, algorithm="winograd"),
     ValueError, r"'winograd'.*3x3 kernel, stride 1 and dilation 1"),
    ("winograd-on-5x5", lambda: K.conv2d_backward_data(
        _DY, np.ones((6, 4, 5, 5), np.float32), _X.shape, padding=1, algorithm="winograd"),
     ValueError, r"'winograd'"),
    ("direct_1x1-on-3x3", lambda: K.conv2d(_X, _W, algorithm="direct_1x1"), ValueError,
     r"'direct_1x1'.*1x1"),
    ("direct_1x1-on-strided-1x1", lambda: K.conv2d(_X, _W1, stride=2, algorithm="direct_1x1"),
     ValueError, r"'direct_1x1'.*stride 1"),
    ("depthwise-on-groups1", lambda: K.conv2d(_X, _W, algorithm="depthwise"), ValueError,
     r"'depthwise'.*groups"),
    # backward_data
    ("bd-grad_output-list", lambda: K.conv2d_backward_data(_DY.tolist(), _W, _X.shape),
     TypeError, r"\bgrad_output\b.*numpy\.ndarray"),
    ("bd-grad_output-int", lambda: K.conv2d_backward_data(_DY.astype(np.int32), _W, _X.shape),
     TypeError, r"\bgrad_output\b.*float32 or float64"),
    ("bd-mixed", lambda: K.conv2d_backward_data(_DY, _W.astype(np.float64), _X.shape),
     TypeError, r"\bgrad_output and weight\b.*same dtype"),
    ("bd-grad_output-3d", lambda: K.conv2d_backward_data(_DY[0], _W, _X.shape), ValueError,
     r"\bgrad_output\b.*4-D"),
    ("bd-grad_output-shape", lambda: K.conv2d_backward_data(_DY[:, :, :3], _W, _X.shape),
     ValueError, r"\bgrad_output\b of shape \(2, 6, 4, 4\)"),
    ("bd-grad_output-channels", lambda: K.conv2d_backward_data(_DY[:, :5], _W, _X.shape),
     ValueError, r"\bgrad_output\b of shape \(2, 6, 4, 4\)"),
    ("bd-input_shape-3", lambda: K.conv2d_backward_data(_DY, _W, (4, 6, 6)), ValueError,
     r"\binput_shape\b"),
    ("bd-stride-0", lambda: K.conv2d_backward_data(_DY, _W, _X.shape, stride=0), ValueError,
     r"\bstride\b.*positive"),
    ("bd-unknown-algorithm", lambda: K.conv2d_backward_data(_DY, _W, _X.shape, algorithm="x"),
     ValueError, r"algorithm 'x'"),
    ("bd-direct_1x1-on-3x3",
     lambda: K.conv2d_backward_data(_DY, _W, _X.shape, algorithm="direct_1x1"), ValueError,
     r"'direct_1x1'"),
    ("bd-depthwise-on-groups1",
     lambda: K.conv2d_backward_data(_DY, _W, _X.shape, algorithm="depthwise"), ValueError,
     r"'depthwise'"),
    # backward_weight
    ("bw-input-list", lambda: K.conv2d_backward_weight(_DY, _X.tolist(), _W.shape), TypeError,
     r"\binput\b.*numpy\.ndarray"),
    ("bw-mixed", lambda: K.conv2d_backward_weight(_DY, _X.astype(np.float64), _W.shape),
     TypeError, r"\bgrad_output and input\b.*same dtype"),
    ("bw-input-3d", lambda: K.conv2d_backward_weight(_DY, _X[0], _W.shape), ValueError,
     r"\binput\b.*4-D"),
    ("bw-grad_output-shape", lambda: K.conv2d_backward_weight(_DY[:, :, :, :3], _X, _W.shape),
     ValueError, r"\bgrad_output\b of shape \(2, 6, 4, 4\)"),
    ("bw-grad_output-batch", lambda: K.conv2d_backward_weight(_DY[:1], _X, _W.shape),
     ValueError, r"\bgrad_output\b of shape \(2, 6, 4, 4\)"),
    ("bw-weight_shape-mismatch",
     lambda: K.conv2d_backward_weight(_DY, _X, (6, 3, 3, 3)), ValueError, r"\bweight_shape\b"),
    ("bw-weight_shape-3", lambda: K.conv2d_backward_weight(_DY, _X, (6, 4, 3)), ValueError,
     r"\bweight_shape\b"),
    ("bw-groups-divide", lambda: K.conv2d_backward_weight(_DY, _X, (6, 4, 3, 3), groups=4),
     ValueError, r"divisible by groups \(4\)"),
    ("bw-kernel-0", lambda: K.conv2d_backward_weight(_DY, _X, (6, 4, 0, 3)), ValueError,
     r"kernel_size|weight_shape"),
    ("bw-dilation-0", lambda: K.conv2d_backward_weight(_DY, _X, _W.shape, dilation=(1, 0)),
     ValueError, r"\bdilation\b.*positive"),
    ("bw-depthwise-on-groups1",
     lambda: K.conv2d_backward_weight(_DY, _X, _W.shape, algorithm="depthwise"), ValueError,
     r"'depthwise'"),
    ("bw-unknown-algorithm",
     lambda: K.conv2d_backward_weight(_DY, _X, _W.shape, algorithm="fft"), ValueError,
     r"algorithm 'fft'"),
    ("bw-with_bias-str", lambda: K.conv2d_backward_weight(_DY, _X, _W.shape, with_bias="yes"),
     TypeError, r"\bwith_bias\b must be a bool"),
    ("bw-with_bias-mismatch",
     lambda: K.conv2d_backward_weight(_DY, _X, (6, 3, 3, 3), with_bias=True), ValueError,
     r"\bweight_shape\b"),
    # backward_bias
    ("bb-list", lambda: K.conv2d_backward_bias(_DY.tolist()), TypeError,
     r"\bgrad_output\b.*numpy\.ndarray"),
    ("bb-int", lambda: K.conv2d_backward_bias(_DY.astype(np.int16)), TypeError,
     r"\bgrad_output\b.*float32 or float64"),
    ("bb-2d", lambda: K.conv2d_backward_bias(_DY[0, 0]), ValueError, r"\bgrad_output\b.*4-D"),
]


@pytest.mark.parametrize(("call", "exc", "match"), [e[1:] for e in CONV_ERRORS],
                         ids=[e[0] for e in CONV_ERRORS])
def test_conv2d_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "input_shape", [(2, 5, 6, 6), (3, 4, 6, 6)], ids=["wrong-C", "wrong-N"]
)
def test_conv2d_backward_data_input_shape_must_agree(input_shape):
    """input_shape's N and C must agree with grad_output and weight (the result has that shape).

    torch.nn.grad.conv2d_input rejects such a shape; silently returning another shape
    would hand autograd a gradient of the wrong shape.
    """
    with pytest.raises(ValueError, match=r"input_shape|input"):
        K.conv2d_backward_data(_DY, _W, input_shape)


@pytest.mark.parametrize("case", [c for c in CASES if c.id.startswith("winograd_auto")],
                         ids=lambda c: c.id)
@pytest.mark.parametrize("direction", ["forward", "backward_data"])
def test_winograd_battery_cases_take_winograd_automatically(case, direction):
    """The battery's 'auto' runs of these cases must exercise Winograd, not im2col (F(2x2);
    with AVX2 F(4x4) for the unpadded case, 87 % of its 4x4 tiles' outputs used)."""
    args = _rule_args(case)
    got = _core.conv2d_choose_algorithm(*args, direction)
    f4 = _core.current_isa() == "avx2" and case.id == "winograd_auto_valid"
    assert got == ("winograd4" if f4 else "winograd")


@pytest.mark.parametrize("case_id", ["winograd_auto_wgrad", "winograd_auto_dilated",
                                     "winograd_auto_narrow_6x6", "winograd_narrow_4x4_wgrad"])
def test_winograd_wgrad_battery_case_takes_winograd_automatically(case_id):
    """The battery's 'auto' backward_weight of these cases must exercise Winograd."""
    case = next(c for c in CASES if c.id == case_id)
    args = _rule_args(case)
    got = _core.conv2d_choose_algorithm(*args, "backward_weight")
    assert got == "winograd"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.usefixtures("isa")
def test_winograd_transformed_weights_follow_the_weights(dtype, rng):
    """Small Winograd calls keep the transformed weights for the next call on the same
    weights (same address and values): repeated calls, weights edited in place, more weight
    arrays in turn than the cache holds, and backward_data's flipped weights must each give
    the result of a fresh transform (a copy at a new address) and torch's (float64)."""
    x = rng.standard_normal((1, 32, 8, 8)).astype(dtype)
    dy = rng.standard_normal((1, 64, 8, 8)).astype(dtype)
    ws = [rng.standard_normal((64, 32, 3, 3)).astype(dtype) for _ in range(6)]
    args = ((1, 1), (1, 1, 1, 1), (1, 1), 1, "winograd")

    def check(w):
        y = _core.conv2d_forward(x, w, None, *args)
        dx = _core.conv2d_backward_data(dy, w, x.shape, *args)
        fresh = w.copy()  # a new address: transformed anew
        assert np.array_equal(y, _core.conv2d_forward(x, fresh, None, *args))
        assert np.array_equal(dx, _core.conv2d_backward_data(dy, fresh, x.shape, *args))
        ref = F.conv2d(torch64(x), torch64(w), padding=1).numpy()
        assert_close(y, ref, tolerance(dtype, 32 * 9, maxabs(x), maxabs(w)), what="y")
        return y

    first = check(ws[0])
    assert np.array_equal(check(ws[0]), first)  # a hit
    ws[0][5, 7, 1, 2] += 1.0  # in place: same address, new values
    assert not np.array_equal(check(ws[0]), first)
    for _ in range(2):  # 6 arrays in turn through 4 entries, then again
        for w in ws:
            check(w)
    # Another ISA transforms with other kernels (other roundings): its own entry.
    current = _core.current_isa()
    try:
        for other in _core.supported_isas():
            _core._set_isa(other)
            check(ws[1])
    finally:
        _core._set_isa(current)
