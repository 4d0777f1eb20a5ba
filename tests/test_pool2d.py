"""2-D pooling (max, avg, adaptive; forward and backward) against PyTorch in float64.

Every kernel test runs once per ISA variant this CPU supports (``isa`` fixture) and per
dtype; float32 inputs are upcast for the torch reference, so both sides see the same
values. Max pooling must match exactly (values and indices, NaN and ties included);
averages within conftest's derived tolerance, with the window size as reduction length.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import DTYPES, GUARD_PAGES, assert_close, guarded, tolerance, torch64
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import _core
from fastconv import kernels as K

torch = pytest.importorskip("torch")
F = torch.nn.functional



@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _data(rng, shape, dtype):
    """Continuous random values (ties have probability ~0), exactly representable in dtype."""
    return rng.standard_normal(shape).astype(dtype)


def _check_max(what, y, idx, y_ref, idx_ref, dtype):
    """Exact agreement with torch: values (NaN where torch has NaN) and indices."""
    y_ref = y_ref.detach().numpy()
    idx_ref = idx_ref.numpy()
    assert y.dtype == dtype, f"{what}: dtype {y.dtype}"
    assert idx.dtype == np.int64, f"{what}: indices dtype {idx.dtype}"
    assert y.shape == y_ref.shape, f"{what}: shape {y.shape} != torch {y_ref.shape}"
    assert idx.shape == idx_ref.shape, f"{what}: indices shape {idx.shape}"
    bad = ~((y.astype(np.float64) == y_ref) | (np.isnan(y) & np.isnan(y_ref)))
    assert not bad.any(), (
        f"{what}: values differ at {np.argwhere(bad)[0].tolist()}: "
        f"ours={y[tuple(np.argwhere(bad)[0])]!r} torch={y_ref[tuple(np.argwhere(bad)[0])]!r}"
    )
    bad = idx != idx_ref
    assert not bad.any(), (
        f"{what}: indices differ at {np.argwhere(bad)[0].tolist()}: "
        f"ours={idx[tuple(np.argwhere(bad)[0])]} torch={idx_ref[tuple(np.argwhere(bad)[0])]}"
    )


def _check_values_only(what, x, k, s, p, d, ceil, y_ref):
    """The forward without indices (with_indices=False, inference) gives torch's values."""
    y, none = _core.max_pool2d_forward(x, *K.max_pool2d_args(k, s, p, d, ceil), False)
    assert none is None, what
    y_ref = y_ref.detach().numpy()
    assert y.shape == y_ref.shape, f"{what}: shape {y.shape} != torch {y_ref.shape}"
    bad = ~((y.astype(np.float64) == y_ref) | (np.isnan(y) & np.isnan(y_ref)))
    assert not bad.any(), f"{what} values only: differ at {np.argwhere(bad)[0].tolist()}"


def _run_max(x, k, s, p, d, ceil, rng, isa):
    """Our max_pool2d forward + backward against torch (forward exact, backward derived)."""
    what = f"max_pool2d[{isa}, {x.dtype}] x{x.shape} k={k} s={s} p={p} d={d} ceil={ceil}"
    y, idx = K.max_pool2d(x, k, s, p, d, ceil)
    xt = torch64(x).requires_grad_()
    y_ref, idx_ref = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    _check_max(what, y, idx, y_ref, idx_ref, x.dtype)
    _check_values_only(what, x, k, s, p, d, ceil, y_ref)

    g = _data(rng, y.shape, x.dtype)
    y_ref.backward(torch64(g))
    dx = K.max_pool2d_backward(g, idx, x.shape)
    assert dx.dtype == x.dtype
    assert dx.shape == x.shape
    kh, kw = _pair(k)
    assert_close(dx, xt.grad.numpy(), tolerance(x.dtype, kh * kw, np.abs(g).max(), 1.0),
                 what=what + " backward")


def _avg_scale(k, divisor_override):
    """Bound on |y| / max|x| for the tolerance: 1, or the window over a small divisor."""
    kh, kw = _pair(k)
    if divisor_override is None:
        return 1.0
    return max(1.0, kh * kw / abs(divisor_override))


def _run_avg(x, k, s, p, ceil, cip, div, rng, isa):
    """Our avg_pool2d forward + backward against torch, within the derived tolerance."""
    what = f"avg_pool2d[{isa}, {x.dtype}] x{x.shape} k={k} s={s} p={p} ceil={ceil} " \
        f"count_include_pad={cip} divisor_override={div}"
    kh, kw = _pair(k)
    y = K.avg_pool2d(x, k, s, p, ceil, cip, div)
    xt = torch64(x).requires_grad_()
    y_ref = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip,
                         divisor_override=div)
    assert y.dtype == x.dtype
    scale = _avg_scale(k, div)
    assert_close(y, y_ref.detach().numpy(),
                 tolerance(x.dtype, kh * kw, np.abs(x).max(), scale), what=what)

    g = _data(rng, y.shape, x.dtype)
    y_ref.backward(torch64(g))
    dx = K.avg_pool2d_backward(g, x.shape, k, s, p, ceil, cip, div)
    assert dx.dtype == x.dtype
    assert dx.shape == x.shape
    assert_close(dx, xt.grad.numpy(), tolerance(x.dtype, kh * kw, np.abs(g).max(), scale),
                 what=what + " backward")


# ---- max_pool2d: fixed edge battery ---------------------------------------------------

# (shape, kernel_size, stride, padding, dilation, ceil_mode)
MAX_CASES = {
    "lenet_2x2s2": ((2, 6, 28, 28), 2, None, 0, 1, False),
    "3x3s2p1": ((2, 4, 13, 13), 3, 2, 1, 1, False),
    "3x3s2p1_ceil": ((2, 4, 14, 14), 3, 2, 1, 1, True),
    "ceil_grows_size": ((1, 3, 7, 7), 2, 2, 0, 1, True),
    "ceil_same_size": ((1, 3, 8, 8), 2, 2, 0, 1, True),
    "ceil_last_window_in_right_pad": ((1, 2, 5, 5), 2, 2, 1, 1, True),
    "ceil_last_window_in_right_pad_floor": ((1, 2, 5, 5), 2, 2, 1, 1, False),
    "dilation2": ((2, 3, 11, 9), 3, 1, 1, 2, False),
    "dilation_asym_ceil": ((1, 2, 12, 10), (3, 2), (2, 3), (1, 1), (2, 3), True),
    "pad_at_max_k5": ((1, 3, 9, 9), 5, 1, 2, 1, False),
    "pad_at_max_even_k4": ((1, 3, 10, 11), 4, 3, 2, 1, False),
    "stride_gt_kernel": ((2, 3, 11, 13), 2, 3, 0, 1, False),
    "stride_gt_kernel_asym": ((1, 2, 17, 19), (2, 3), (4, 5), (1, 1), 1, True),
    "kernel_eq_input": ((2, 3, 5, 7), (5, 7), None, 0, 1, False),
    "input_1x1": ((1, 1, 1, 1), 1, 1, 0, 1, False),
    "n1_h_ne_w": ((1, 5, 8, 13), 3, 2, 0, 1, False),
    "odd_channels": ((3, 7, 9, 9), 3, 3, 1, 1, False),
    "wide_s1": ((1, 2, 5, 67), 3, 1, 1, 1, False),
    "wide_s2": ((1, 2, 6, 71), 3, 2, 1, 1, True),
    "wide_s3": ((1, 2, 6, 70), 4, 3, 2, 1, False),
    "wide_s2_dil3": ((1, 1, 9, 83), 3, 2, 1, 3, False),
    "tall_narrow": ((1, 2, 40, 3), (3, 2), (2, 1), (1, 1), 1, False),
    "row_chunks_s1": ((1, 1, 3, 600), 3, 1, 1, 1, False),
    "row_chunks_s2_dil2": ((1, 1, 5, 1100), 3, 2, 1, 2, True),
    # 2x2 windows at stride 2 inside the plane: the AVX-512 float kernels that take several
    # output rows per vector (H = 2*OH, W = 2*OW, OW <= 16: blocks of 16 // OW rows, the
    # last one partial) or a row at a time (odd sizes, OW > 16: 16-column pieces).
    "2x2_rows_lenet_pool2": ((3, 5, 10, 10), 2, None, 0, 1, False),
    "2x2_rows_ow1": ((2, 3, 8, 2), 2, 2, 0, 1, False),
    "2x2_rows_ow3_oh7": ((2, 2, 14, 6), 2, 2, 0, 1, False),
    "2x2_rows_ow15": ((1, 3, 6, 30), 2, 2, 0, 1, False),
    "2x2_rows_ow16": ((2, 2, 4, 32), 2, 2, 0, 1, False),
    "2x2_any_ow17": ((1, 2, 4, 34), 2, 2, 0, 1, False),
    "2x2_any_odd_13x13": ((2, 3, 13, 13), 2, 2, 0, 1, False),
    "2x2_any_odd_w41": ((1, 2, 5, 41), 2, 2, 0, 1, False),
    "2x2_any_ow40": ((1, 1, 6, 80), 2, 2, 0, 1, False),
}


@pytest.mark.parametrize("case", list(MAX_CASES.values()), ids=list(MAX_CASES))
def test_max_pool2d_matches_torch(case, isa, dtype, rng):
    shape, k, s, p, d, ceil = case
    _run_max(_data(rng, shape, dtype), k, s, p, d, ceil, rng, isa)


def test_max_pool2d_nan_and_inf(isa, dtype):
    """NaN propagates with the index of the last NaN in the window; -inf windows keep the
    index of their first tap (torch: `val > maxval || isnan(val)`, maxval starts at -inf)."""
    rng = np.random.default_rng(7)
    x = _data(rng, (2, 3, 9, 10), dtype)
    x[0, 0, 0:2, 0:2] = -np.inf  # a whole 2x2 window of -inf
    x[0, 1, 2:4, 2:4] = np.nan  # a window of NaN only
    x[0, 2, 4, 5] = np.nan  # single NaN
    x[1, 0, 6, 6] = np.nan
    x[1, 0, 7, 7] = np.nan  # two NaN in one window
    x[1, 1, :, 0] = -np.inf
    x[1, 2, 0, :] = np.inf
    for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 1, 1, 1, False), (3, 2, 1, 2, True),
                             ((2, 3), (3, 2), (1, 0), 1, True)]:
        _run_max(x, k, s, p, d, ceil, rng, isa)


def test_max_pool2d_ties_keep_first(isa, dtype, rng):
    """Many ties (few distinct values): torch keeps the first maximum in scan order."""
    x = rng.integers(0, 3, size=(2, 3, 11, 37)).astype(dtype)
    x[1, 2] = 1.0  # one constant plane
    for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 1, 1, 1, False), (3, 2, 1, 1, True),
                             (3, 3, 1, 2, False), ((4, 2), (1, 3), (2, 1), (1, 2), True)]:
        _run_max(x, k, s, p, d, ceil, rng, isa)


@pytest.mark.parametrize("shape", [(2, 9, 10, 10), (1, 16, 13, 13), (3, 3, 7, 9), (2, 5, 5, 14),
                                   (1, 9, 16, 15), (2, 4, 8, 8)], ids=str)
def test_max_pool2d_narrow_maps_nan_inf_ties(shape, isa, dtype, rng):
    """Maps whose output rows are at most a vector wide, eight planes and more (AVX2 float
    runs them with planes as lanes, the planes left over by rows; 16x15 at 3x3/2 fills the
    kernel's buffers exactly), on many ties, NaN (one, two in a window, a whole window),
    -inf windows and constant planes: torch's values, indices and gradient for windows
    with padding, dilation, ceil_mode and asymmetry."""
    x = rng.integers(0, 3, size=shape).astype(dtype)
    n, c = shape[0] - 1, shape[1] - 1
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 2:4, 2:4] = np.nan
    x[n, c, 0, 0] = x[n, c, 1, 1] = np.nan
    x[0, 2, 0:3, 0:3] = -np.inf
    x[n, 0] = 1.0
    x[n, 1, :, -1] = np.inf
    windows = [(3, 2, 1, 1, False), (3, 1, 1, 1, False), (3, 2, 1, 1, True), (3, 3, 0, 1, False),
               (3, 1, 1, 2, False), ((2, 3), (1, 2), (1, 1), 1, True), (2, 1, 0, 1, False)]
    for k, s, p, d, ceil in windows:
        _run_max(x, k, s, p, d, ceil, rng, isa)


@pytest.mark.parametrize("shape", [(2, 3, 10, 10), (1, 2, 12, 32), (2, 2, 6, 2), (1, 3, 7, 37),
                                   (2, 2, 9, 13)], ids=str)
def test_max_pool2d_2x2_stride2_nan_inf_ties(shape, isa, dtype, rng):
    """The 2x2 / stride 2 kernels (see MAX_CASES) on NaN, +-inf and many ties: torch's
    first maximum in scan order, the last NaN, and the first tap of an all -inf window."""
    x = rng.integers(0, 3, size=shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.15] = -np.inf
    x[u < 0.05] = np.nan
    x[u > 0.97] = np.inf
    x[0, 0, 0:2, 0:2] = -np.inf
    _run_max(x, 2, 2, 0, 1, False, rng, isa)
    _run_max(x, 2, 2, 0, 1, True, rng, isa)


# 3x3 windows at stride 2: the row-scan kernel (pool2d_impl.h, max_pool3x3s2). Its first
# and last blocks of a row read one or two columns of the neighbouring rows (or planes) and
# mask them as -inf; only row 0 of the first plane and row H - 1 of the last are copied.
# (H, W): one to several blocks of every vector width, odd and even sizes, ResNet-18's 112;
# rows of OW in [V/2, V) outputs as one wide block (e.g. W = 9 or 13 for 8 float lanes, 5
# or 7 for 4 lanes, 3 for 2 double lanes), whose lanes past OW read the next row.
POOL3X3S2_PLANES = [(3, 9), (4, 8), (5, 16), (7, 17), (8, 32), (9, 33), (12, 40), (13, 13),
                    (6, 71), (5, 112), (6, 5), (5, 7), (4, 3), (2, 11), (1, 9)]


def _edge_columns(x, left, right):
    """Every row's first and last columns set to left / right (above the 0..3 of the
    rest): a neighbouring row's column read in place of a padding tap would win."""
    x[..., 0] = left
    x[..., -1] = right
    return x


# (H, W) and padding with at least one window: H + 2 * ph >= 3, W + 2 * pw >= 3.
POOL3X3S2_CASES = [(hw, pad) for hw in POOL3X3S2_PLANES for pad in [(0, 0), (1, 1), (0, 1), (1, 0)]
                   if hw[0] + 2 * pad[0] >= 3 and hw[1] + 2 * pad[1] >= 3]


@pytest.mark.parametrize("ceil", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize(("hw", "pad"), POOL3X3S2_CASES, ids=str)
def test_max_pool2d_3x3_stride2_rows(hw, pad, ceil, isa, dtype, rng):
    """Values and indices exactly torch's on ties, NaN, +-inf, and edge columns that would
    betray a read of the neighbouring row (both orders); windows of output column 0 that
    hold -inf only report their first in-bounds tap."""
    shape = (2, 3, *hw)
    x = rng.integers(0, 4, size=shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.1] = -np.inf
    x[u < 0.03] = np.nan
    x[u > 0.98] = np.inf
    _run_max(x, 3, 2, pad, 1, ceil, rng, isa)
    for left, right in ((7.0, 9.0), (9.0, 7.0)):
        _run_max(_edge_columns(rng.integers(0, 4, size=shape).astype(dtype), left, right),
                 3, 2, pad, 1, ceil, rng, isa)
    x = rng.integers(0, 4, size=shape).astype(dtype)
    x[..., :2] = -np.inf  # output column 0: -inf in every real tap
    x[0, 1] = -np.inf  # and a whole plane
    _run_max(x, 3, 2, pad, 1, ceil, rng, isa)


@pytest.mark.skipif(not GUARD_PAGES, reason="needs mprotect (Linux)")
@pytest.mark.parametrize("at_end", [False, True], ids=["start", "end"])
def test_max_pool2d_3x3_stride2_next_to_unmapped_pages(at_end, isa, dtype, rng):
    """x starts (ends) on a page boundary: the edge blocks read no column before the first
    row or past the last one (they take those rows from -inf-padded copies)."""
    for hw, pad, ceil in [((13, 13), 1, False), ((8, 33), 1, True), ((6, 71), (0, 1), True),
                          ((7, 16), (1, 0), True), ((5, 9), 0, True), ((6, 5), 1, False),
                          ((4, 10), 0, False), ((5, 7), 1, False), ((4, 3), 1, False)]:
        x = guarded(_data(rng, (2, 3, *hw), dtype), at_end)
        _run_max(x, 3, 2, pad, 1, ceil, rng, isa)


def test_max_pool2d_window_without_input_tap(isa, dtype):
    """Dilation can leave a window with no tap inside the input: torch returns -inf and an
    index outside the plane; we match the forward and refuse that index in backward."""
    x = np.arange(1, 9, dtype=dtype).reshape(1, 1, 2, 4)
    y, idx = K.max_pool2d(x, 2, 1, 1, 3)
    y_ref, idx_ref = F.max_pool2d(torch64(x), 2, 1, 1, 3, return_indices=True)
    _check_max(f"max_pool2d[{isa}] empty window", y, idx, y_ref, idx_ref, x.dtype)
    _check_values_only(f"max_pool2d[{isa}] empty window", x, 2, 1, 1, 3, False, y_ref)
    assert (idx >= x.shape[2] * x.shape[3]).any()
    with pytest.raises(ValueError, match="indices"):
        K.max_pool2d_backward(np.ones_like(y), idx, x.shape)


# ---- avg_pool2d: fixed edge battery ---------------------------------------------------

# (shape, kernel_size, stride, padding, ceil_mode, divisor_override)
AVG_CASES = {
    "lenet_2x2s2": ((2, 6, 28, 28), 2, None, 0, False, None),
    "3x3s2p1": ((2, 4, 13, 13), 3, 2, 1, False, None),
    "3x3s2p1_ceil": ((2, 4, 14, 14), 3, 2, 1, True, None),
    "ceil_grows_size": ((1, 3, 7, 7), 2, 2, 0, True, None),
    # windows that tile the plane (kernel == stride, no padding): the backward writes each
    # input element once; the rows and columns past the last window must still get 0
    "tiles_uncovered_2x2": ((2, 3, 9, 11), 2, None, 0, False, None),
    "tiles_uncovered_3x2": ((2, 3, 11, 7), (3, 2), None, 0, False, 5),
    "tiles_uncovered_1x3": ((1, 2, 4, 14), (1, 3), None, 0, False, None),
    "ceil_last_window_in_right_pad": ((1, 2, 5, 5), 2, 2, 1, True, None),
    "ceil_window_past_pad": ((1, 2, 6, 8), 3, 2, 1, True, None),
    "pad_at_max_k5": ((1, 3, 9, 9), 5, 1, 2, False, None),
    "pad_at_max_even_k4": ((1, 3, 10, 11), 4, 3, 2, False, None),
    "stride_gt_kernel": ((2, 3, 11, 13), (2, 3), (4, 5), (1, 1), True, None),
    "kernel_eq_input": ((2, 3, 5, 7), (5, 7), None, 0, False, None),
    "input_1x1": ((1, 1, 1, 1), 1, 1, 0, False, None),
    "n1_h_ne_w_odd_c": ((1, 7, 8, 13), 3, 2, 0, False, None),
    "divisor_3": ((2, 3, 9, 9), 3, 2, 1, True, 3),
    "divisor_negative": ((1, 2, 8, 8), 2, 1, 1, False, -2),
    "wide_s1": ((1, 2, 5, 67), 3, 1, 1, False, None),
    "wide_s2": ((1, 2, 6, 71), 3, 2, 1, True, None),
    "wide_s3": ((1, 2, 6, 70), 4, 3, 2, False, None),
    # rows longer than the kernels' per-chunk scratch (several chunks), and a kernel too
    # wide for the backward row buffer (all-border fallback)
    "row_chunks_s1": ((1, 1, 3, 1500), (2, 5), 1, (1, 2), False, None),
    "row_chunks_s3": ((1, 1, 2, 3500), (1, 5), (1, 3), (0, 2), True, None),
    "kernel_wider_than_row_buffer": ((1, 2, 2, 700), (1, 300), (1, 7), 0, False, None),
    # 2x2 windows at stride 2 inside the plane: output rows over all planes in one pass,
    # rows of OW in [V/2, V) as one block of V whose lanes past OW read the next row
    # (OW = 5, 6 for 8 float lanes; 2, 3 for 4; 1 for 2 double lanes), the batch's last
    # row from a copy; divisors that are powers of two multiply by their exact reciprocal
    "2x2s2_10x10": ((3, 5, 10, 10), 2, None, 0, False, None),
    "2x2s2_13x13": ((2, 3, 13, 13), 2, None, 0, False, None),
    "2x2s2_ow2_ow3": ((2, 3, 5, 6), 2, None, 0, False, None),
    "2x2s2_ow1": ((2, 3, 4, 3), 2, None, 0, True, None),
    "2x2s2_ow16_odd_h": ((1, 3, 11, 33), 2, None, 0, True, None),
    "2x2s2_divisor_3": ((2, 3, 10, 10), 2, None, 0, False, 3),
    "2x2s2_divisor_8": ((2, 3, 12, 14), 2, None, 0, False, 8),
    "2x2s2_divisor_neg4": ((1, 2, 8, 20), 2, None, 0, False, -4),
}


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("case", list(AVG_CASES.values()), ids=list(AVG_CASES))
def test_avg_pool2d_matches_torch(case, count_include_pad, isa, dtype, rng):
    shape, k, s, p, ceil, div = case
    _run_avg(_data(rng, shape, dtype), k, s, p, ceil, count_include_pad, div, rng, isa)


# ---- adaptive pooling -----------------------------------------------------------------

# (input shape, output_size)
ADAPTIVE_CASES = {
    "7_to_3_non_dividing": ((2, 3, 7, 7), (3, 3)),
    "global": ((2, 5, 7, 7), 1),
    "global_wide": ((1, 2, 9, 130), (1, 1)),
    "8_to_4_uniform": ((1, 4, 8, 8), 4),
    "12_to_4_uniform_k3": ((1, 2, 12, 12), (4, 4)),
    "identity": ((1, 2, 6, 9), (6, 9)),
    "larger_than_input": ((1, 3, 3, 4), (7, 9)),
    "h_ne_w_mixed": ((2, 3, 5, 10), (2, 5)),
    "wide_uniform": ((1, 2, 10, 64), (3, 16)),
    "none_keeps_input": ((1, 2, 9, 9), (None, 4)),
    "1x1_input": ((1, 1, 1, 1), (2, 3)),
}


def _adaptive_window(n_in, n_out):
    """Longest adaptive window along one axis (the reduction length)."""
    return max(math.ceil((o + 1) * n_in / n_out) - (o * n_in) // n_out for o in range(n_out))


@pytest.mark.parametrize("case", list(ADAPTIVE_CASES.values()), ids=list(ADAPTIVE_CASES))
def test_adaptive_avg_pool2d_matches_torch(case, isa, dtype, rng):
    shape, out = case
    x = _data(rng, shape, dtype)
    what = f"adaptive_avg_pool2d[{isa}, {x.dtype}] x{x.shape} output_size={out}"
    y = K.adaptive_avg_pool2d(x, out)
    xt = torch64(x).requires_grad_()
    y_ref = F.adaptive_avg_pool2d(xt, out)
    oh, ow = y_ref.shape[2:]
    length = _adaptive_window(shape[2], oh) * _adaptive_window(shape[3], ow)
    assert y.dtype == x.dtype
    assert_close(y, y_ref.detach().numpy(), tolerance(x.dtype, length, np.abs(x).max(), 1.0),
                 what=what)
    g = _data(rng, y.shape, x.dtype)
    y_ref.backward(torch64(g))
    dx = K.adaptive_avg_pool2d_backward(g, x.shape)
    assert dx.dtype == x.dtype
    assert dx.shape == x.shape
    assert_close(dx, xt.grad.numpy(), tolerance(x.dtype, length, np.abs(g).max(), 1.0),
                 what=what + " backward")


@pytest.mark.parametrize("case", list(ADAPTIVE_CASES.values()), ids=list(ADAPTIVE_CASES))
def test_adaptive_max_pool2d_matches_torch(case, isa, dtype, rng):
    shape, out = case
    x = _data(rng, shape, dtype)
    what = f"adaptive_max_pool2d[{isa}, {x.dtype}] x{x.shape} output_size={out}"
    y, idx = K.adaptive_max_pool2d(x, out)
    xt = torch64(x).requires_grad_()
    y_ref, idx_ref = F.adaptive_max_pool2d(xt, out, return_indices=True)
    _check_max(what, y, idx, y_ref, idx_ref, x.dtype)
    g = _data(rng, y.shape, x.dtype)
    y_ref.backward(torch64(g))
    dx = K.adaptive_max_pool2d_backward(g, idx, x.shape)
    length = _adaptive_window(shape[2], y.shape[2]) * _adaptive_window(shape[3], y.shape[3])
    assert_close(dx, xt.grad.numpy(), tolerance(x.dtype, length, np.abs(g).max(), 1.0),
                 what=what + " backward")


def test_adaptive_max_pool2d_nan_and_ties(isa, dtype, rng):
    x = rng.integers(0, 3, size=(2, 3, 12, 13)).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 2] = np.nan
    x[1, 1, 5:8, :] = -np.inf
    for out in [(4, 13), (3, 5), (6, 6), (1, 1), (12, 13)]:
        y, idx = K.adaptive_max_pool2d(x, out)
        y_ref, idx_ref = F.adaptive_max_pool2d(torch64(x), out, return_indices=True)
        _check_max(f"adaptive_max_pool2d[{isa}] out={out}", y, idx, y_ref, idx_ref, x.dtype)


# ---- layouts, threads -----------------------------------------------------------------


def _views(x):
    """Non-contiguous and negative-stride views of the same 4-D shape family."""
    return {
        "flip_w": x[:, :, :, ::-1],
        "flip_h": x[:, :, ::-1],
        "transpose_hw": x.transpose(0, 1, 3, 2),
        "transpose_nc": x.transpose(1, 0, 2, 3),
        "strided": x[:, :, ::2, 1::2],
        "fortran": np.asfortranarray(x),
    }


def test_non_contiguous_inputs(isa, dtype, rng):
    base = _data(rng, (2, 3, 12, 14), dtype)
    for name, x in _views(base).items():
        _run_max(x, 3, 2, 1, 1, True, rng, f"{isa} {name}")
        _run_avg(x, 3, 2, 1, False, False, None, rng, f"{isa} {name}")
        ours = K.adaptive_avg_pool2d(x, (5, 4))
        ref = F.adaptive_avg_pool2d(torch64(x), (5, 4)).numpy()
        assert_close(ours, ref, tolerance(dtype, 16, np.abs(x).max(), 1.0),
                     what=f"adaptive_avg_pool2d[{isa} {name}]")


@pytest.mark.usefixtures("isa")
def test_non_contiguous_gradients(dtype, rng):
    x = _data(rng, (2, 3, 10, 10), dtype)
    y, idx = K.max_pool2d(x, 2)
    g = _data(rng, (2, 3, 5, 5), dtype)
    for view in (lambda a: a[:, :, ::-1, :], lambda a: a.transpose(0, 1, 3, 2)):
        dx = K.max_pool2d_backward(view(g), view(idx), x.shape)
        ref = K.max_pool2d_backward(np.ascontiguousarray(view(g)),
                                    np.ascontiguousarray(view(idx)), x.shape)
        np.testing.assert_array_equal(dx, ref)
        dx = K.avg_pool2d_backward(view(g), x.shape, 2)
        ref = K.avg_pool2d_backward(np.ascontiguousarray(view(g)), x.shape, 2)
        np.testing.assert_array_equal(dx, ref)
    assert y.flags.c_contiguous
    assert idx.flags.c_contiguous


def test_result_independent_of_thread_count(rng):
    x = _data(rng, (4, 16, 33, 33), np.float32)
    g = _data(rng, (4, 16, 17, 17), np.float32)
    before = fc.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            fc.set_num_threads(n)
            y, idx = K.max_pool2d(x, 3, 2, 1)
            results.append((y, idx, K.avg_pool2d(x, 3, 2, 1),
                            K.avg_pool2d_backward(g, x.shape, 3, 2, 1)))
    finally:
        fc.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- random configurations (hypothesis) -----------------------------------------------


@st.composite
def pool_configs(draw, dilation: bool):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 40))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    ceil = draw(st.booleans())
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil


def _torch_output_ok(shape, k, s, p, d, ceil):
    """Output >= 1 in both dims (torch raises otherwise; the error path is tested apart)."""
    for i in (0, 1):
        num = shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1 + (s[i] - 1 if ceil else 0)
        out = num // s[i] + 1
        if ceil and (out - 1) * s[i] >= shape[2 + i] + p[i]:
            out -= 1
        if out < 1:
            return False
    return True


HYPOTHESIS = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYPOTHESIS
@given(cfg=pool_configs(dilation=True), seed=st.integers(0, 2**32 - 1),
       special=st.sampled_from([0.0, 0.0, 0.3, 0.9]))
def test_max_pool2d_random_configs(cfg, seed, special, isa, dtype):
    """Random windows; with `special` > 0 that share of the input is -inf and a tenth of it
    NaN, so whole windows (border ones too, where the vector kernels pad with -inf) are
    -inf or hold NaN."""
    shape, k, s, p, d, ceil = cfg
    assume(_torch_output_ok(shape, k, s, p, d, ceil))
    rng = np.random.default_rng(seed)
    x = _data(rng, shape, dtype)
    if special:
        u = rng.random(shape)
        x[u < special] = -np.inf
        x[u < special / 10] = np.nan
    y, idx = K.max_pool2d(x, k, s, p, d, ceil)
    if (idx >= shape[2] * shape[3]).any():  # a window with no input tap (see above)
        y_ref, idx_ref = F.max_pool2d(torch64(x), k, s, p, d, ceil, return_indices=True)
        _check_max(f"max_pool2d[{isa}] {cfg}", y, idx, y_ref, idx_ref, x.dtype)
        _check_values_only(f"max_pool2d[{isa}] {cfg}", x, k, s, p, d, ceil, y_ref)
        return
    _run_max(x, k, s, p, d, ceil, rng, isa)


@pytest.mark.skipif(not GUARD_PAGES, reason="needs mprotect (Linux)")
@pytest.mark.parametrize("at_end", [False, True], ids=["start", "end"])
def test_avg_pool2d_2x2_stride2_next_to_unmapped_pages(at_end, isa, dtype, rng):
    """x starts (ends) on a page boundary: the blocks wider than a row read no column past
    the last row (the batch's last output row comes from a copy)."""
    for shape in [(2, 3, 10, 10), (2, 3, 5, 6), (1, 2, 8, 20), (2, 1, 4, 3), (1, 1, 2, 14)]:
        x = guarded(_data(rng, shape, dtype), at_end)
        _run_avg(x, 2, 2, 0, False, True, None, rng, isa)


@pytest.mark.parametrize("shape", [(1, 2, 4, 40), (1, 2, 5, 9)], ids=["wide", "narrow"])
@pytest.mark.usefixtures("isa")
def test_avg_pool2d_signed_zero_as_torch(shape, dtype):
    """-0 inputs and gradients: PyTorch sums from +0 (forward and the backward's
    scatter-add), so its results are +0; ours must be too (the 2x2 forward blocks and the
    tiled backward write each value without a zero-fill)."""
    x = np.full(shape, -0.0, dtype)
    y = K.avg_pool2d(x, 2)
    xt = torch64(x).requires_grad_()
    y_ref = F.avg_pool2d(xt, 2)
    g = np.full(y.shape, -0.0, dtype)
    y_ref.backward(torch64(g))
    dx = K.avg_pool2d_backward(g, x.shape, 2)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref.detach().numpy()))
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(xt.grad.numpy()))


@HYPOTHESIS
@given(cfg=pool_configs(dilation=False), seed=st.integers(0, 2**32 - 1),
       cip=st.booleans(), div=st.sampled_from([None, None, 1, 2, 5, -3]))
def test_avg_pool2d_random_configs(cfg, seed, cip, div, isa, dtype):
    shape, k, s, p, d, ceil = cfg
    assume(_torch_output_ok(shape, k, s, p, d, ceil))
    rng = np.random.default_rng(seed)
    _run_avg(_data(rng, shape, dtype), k, s, p, ceil, cip, div, rng, isa)


# ---- validation: each rule raises the right type and names the argument ---------------

X = np.zeros((1, 2, 6, 6), np.float32)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: K.max_pool2d([[[[1.0]]]], 1), TypeError, "x.*numpy.ndarray"),
        (lambda: K.max_pool2d(X.astype(np.int32), 2), TypeError, "x.*float32 or float64"),
        (lambda: K.avg_pool2d(X.astype(np.float16), 2), TypeError, "x.*float32 or float64"),
        (lambda: K.max_pool2d(X[0], 2), ValueError, "x.*4-D"),
        (lambda: K.avg_pool2d(np.zeros((1, 0, 4, 4)), 2), ValueError, "x.*non-zero size"),
        (lambda: K.adaptive_avg_pool2d(np.zeros((1, 1, 0, 4)), 2), ValueError,
         "x.*non-zero size"),
        (lambda: K.max_pool2d(X, 0), ValueError, "kernel_size must be positive"),
        (lambda: K.avg_pool2d(X, (2, -1)), ValueError, "kernel_size must be positive"),
        (lambda: K.max_pool2d(X, 2, 0), ValueError, "stride must be positive"),
        (lambda: K.avg_pool2d(X, 2, (1, 0)), ValueError, "stride must be positive"),
        (lambda: K.max_pool2d(X, 2, 1, 0, 0), ValueError, "dilation must be positive"),
        (lambda: K.max_pool2d(X, 2, 1, -1), ValueError, "padding must be non-negative"),
        (lambda: K.max_pool2d(X, 3, 1, 2), ValueError, "padding should be at most half"),
        (lambda: K.avg_pool2d(X, (4, 3), 1, (1, 2)), ValueError,
         "padding should be at most half"),
        (lambda: K.max_pool2d(X, 7), ValueError, "Output size is too small.*kernel_size"),
        (lambda: K.avg_pool2d(X, 2, 1, 1, divisor_override=0), ValueError,
         "divisor_override"),
        (lambda: K.avg_pool2d(X, 2, divisor_override=1.5), TypeError, "divisor_override"),
        (lambda: K.max_pool2d(X, 2.0), TypeError, "kernel_size"),
        (lambda: K.max_pool2d(X, (2, 2, 2)), ValueError, "kernel_size"),
        (lambda: K.avg_pool2d(X, 2, (1, 1, 1)), ValueError, "stride"),
        (lambda: K.max_pool2d(X, 2**61, 1, 0, 8), ValueError, "kernel_size must be at most"),
        (lambda: K.adaptive_avg_pool2d(X, 0), ValueError, "output_size must be positive"),
        (lambda: K.adaptive_max_pool2d(X, (3, -1)), ValueError, "output_size must be positive"),
        (lambda: K.adaptive_max_pool2d(X, 2.5), TypeError, "output_size"),
        (lambda: K.adaptive_avg_pool2d(X, (2, 2, 2)), ValueError, "output_size"),
    ],
)
def test_forward_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


G = np.zeros((1, 2, 3, 3), np.float32)
IDX = np.zeros((1, 2, 3, 3), np.int64)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: K.max_pool2d_backward(G.astype(np.int64), IDX, X.shape), TypeError,
         "grad_output.*float32 or float64"),
        (lambda: K.max_pool2d_backward(G, IDX.astype(np.int32), X.shape), TypeError,
         "indices.*int64"),
        (lambda: K.max_pool2d_backward(G, IDX.tolist(), X.shape), TypeError,
         "indices.*numpy.ndarray"),
        (lambda: K.max_pool2d_backward(G, IDX[:, :, :2], X.shape), ValueError,
         "indices.*same shape as grad_output"),
        (lambda: K.max_pool2d_backward(G, IDX + 36, X.shape), ValueError,
         r"indices\[0, 0, 0, 0\] = 36 is out of range"),
        (lambda: K.max_pool2d_backward(G, IDX - 1, X.shape), ValueError, "indices.*out of range"),
        (lambda: K.max_pool2d_backward(G, IDX, (1, 2, 0, 6)), ValueError,
         "input_size must be positive"),
        (lambda: K.max_pool2d_backward(G, IDX, (1, 2, 6)), ValueError, "input_shape"),
        (lambda: K.max_pool2d_backward(G, IDX, (1, 3, 6, 6)), ValueError, "input_shape"),
        (lambda: K.max_pool2d_backward(G, IDX, 6), TypeError, "input_shape"),
        (lambda: K.adaptive_max_pool2d_backward(G, IDX + 99, X.shape), ValueError,
         "indices.*out of range"),
        (lambda: K.avg_pool2d_backward(G, X.shape, 3), ValueError,
         r"grad_output of shape \(1, 2, 2, 2\)"),
        (lambda: K.avg_pool2d_backward(G, X.shape, 2, 2, 0, divisor_override=0), ValueError,
         "divisor_override"),
        (lambda: K.avg_pool2d_backward(G, X.shape, 2, 1, 2), ValueError, "padding"),
        (lambda: K.avg_pool2d_backward(G, (1, 2, 1, 1), 2), ValueError,
         "Output size is too small"),
        (lambda: K.avg_pool2d_backward(G[0], X.shape, 2), ValueError, "grad_output.*4-D"),
        (lambda: K.adaptive_avg_pool2d_backward(G, (1, 2, 6, 0)), ValueError,
         "input_size must be positive"),
        (lambda: K.adaptive_avg_pool2d_backward(np.zeros((1, 2, 0, 3)), X.shape), ValueError,
         "grad_output.*non-zero size"),
    ],
)
def test_backward_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_validation_messages_name_op_and_shapes():
    with pytest.raises(ValueError,
                       match=r"max_pool2d_forward: expected x to be 4-D .* \(2, 6, 6\)"):
        _core.max_pool2d_forward(X[0], (2, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match=r"Given input size: \(2, 6, 6\)\. Calculated output "
                       r"size: \(2, 0, 0\)\. Output size is too small"):
        _core.avg_pool2d_forward(X, (7, 7), (7, 7), (0, 0), False, True, None)
