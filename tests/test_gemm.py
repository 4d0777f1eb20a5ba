"""fc.gemm against torch float64 (float32 operands upcast), on every ISA variant.

alpha·op(a)@op(b) + beta·c is checked with the derived tolerance of conftest.tolerance,
reduction length L = K (STYLE.md §7). Sizes walk the micro-kernel tiles (MR ∈ {4, 6, 8},
NR ∈ {8, 16, 32}, each −1/+0/+1), primes, 1, K = 0 and shapes past the cache blocks
(MC ≤ 680, KC ≤ 768, NC = 4096 for every variant). Strided operands are cut out of buffers
whose skipped elements are NaN, so a read outside the view poisons the result.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, assert_close, maxabs, misaligned, tolerance, torch64

import fastconv as fc

TRANS = [(False, False), (False, True), (True, False), (True, True)]
TRANS_IDS = ["NN", "NT", "TN", "TT"]




def _make(rng, M, N, K, dtype, trans_a, trans_b):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    return a, b


def _reference(a, b, c, alpha, beta, trans_a, trans_b):
    A, B = torch64(a), torch64(b)
    if trans_a:
        A = A.T
    if trans_b:
        B = B.T
    ref = alpha * (A @ B)
    if c is not None and beta != 0.0:
        ref = ref + beta * torch64(c)
    return ref.numpy()


def _check(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, *, isa, what=""):
    """Run fc.gemm and compare with torch float64; the tolerance is derived with L = K."""
    dtype = a.dtype
    c_before = None if c is None else c.copy()
    out = fc.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    ref = _reference(a, b, c, alpha, beta, trans_a, trans_b)
    K = a.shape[0] if trans_a else a.shape[1]
    label = (
        f"gemm {what} isa={isa} dtype={np.dtype(dtype).name} a{a.shape} b{b.shape} "
        f"trans=({trans_a},{trans_b}) alpha={alpha} beta={beta} M,N,K={(*ref.shape, K)}"
    )
    assert isinstance(out, np.ndarray), label
    assert out.dtype == dtype, f"{label}: output dtype {out.dtype}"
    atol = tolerance(dtype, K, abs(alpha) * maxabs(a), maxabs(b))
    if c is not None and beta != 0.0:
        atol += tolerance(dtype, 1, abs(beta), maxabs(c))
    assert_close(out, ref, atol, what=label)
    if c is not None:
        np.testing.assert_array_equal(c, c_before, err_msg=f"{label}: c was modified")
        assert not np.shares_memory(out, c), f"{label}: output aliases c"
    return out




# (M, N, K): 1, primes, the MR/NR tiles of every variant −1/+0/+1, several tiles.
SHAPES = [
    (1, 1, 1),
    (1, 1, 7),
    (1, 33, 97),
    (97, 1, 13),
    (7, 13, 31),
    (13, 97, 7),
    (97, 31, 13),
    (3, 7, 5),
    (4, 8, 4),
    (5, 9, 3),
    (6, 16, 8),
    (7, 15, 9),
    (8, 32, 16),
    (9, 33, 17),
    (5, 17, 2),
    (9, 31, 1),
    (12, 48, 64),
    (25, 65, 31),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_gemm_shapes(isa, rng, shape, trans_a, trans_b, dtype):
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    _check(a, b, trans_a=trans_a, trans_b=trans_b, isa=isa, what="shapes")


# Past the cache blocks: M > MC and K > KC for every variant, N > NC, and one large square-ish.
BIG = [(700, 40, 800), (3, 4100, 9), (515, 1027, 333)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", BIG, ids=[f"{m}x{n}x{k}" for m, n, k in BIG])
def test_gemm_beyond_cache_blocks(isa, rng, shape, dtype):
    M, N, K = shape
    trans_a, trans_b = (True, False) if M == 700 else (False, False)
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    c = rng.standard_normal((M, N)).astype(dtype)
    _check(a, b, c, alpha=0.75, beta=-1.25, trans_a=trans_a, trans_b=trans_b, isa=isa,
           what="big")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), [TRANS[1], TRANS[2]], ids=["NT", "TN"])
@pytest.mark.parametrize("shape", [(37, 70, 45), (8, 32, 1), (1, 5, 300), (130, 3, 20)],
                         ids=["37x70x45", "8x32x1", "1x5x300", "130x3x20"])
def test_gemm_threads(isa, rng, threads, shape, trans_a, trans_b, dtype):
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    c = rng.standard_normal((M, N)).astype(dtype)
    _check(a, b, c, alpha=1.5, beta=0.5, trans_a=trans_a, trans_b=trans_b, isa=isa,
           what=f"threads={threads}")


ALPHA_BETA = [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 2.0), (1.0, -1.0), (0.0, 3.0),
              (0.3, 0.7)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), [TRANS[0], TRANS[3]], ids=["NN", "TT"])
@pytest.mark.parametrize(("alpha", "beta"), ALPHA_BETA,
                         ids=[f"a{a}_b{b}" for a, b in ALPHA_BETA])
def test_gemm_alpha_beta(isa, rng, alpha, beta, trans_a, trans_b, dtype):
    M, N, K = 11, 19, 23
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    c = rng.standard_normal((M, N)).astype(dtype)
    _check(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, isa=isa,
           what="alpha/beta")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("shape", [(6, 16, 8), (13, 33, 7), (3, 5, 0)],
                         ids=["6x16x8", "13x33x7", "K0"])
def test_gemm_beta_zero_ignores_c(isa, rng, shape, poison, dtype):
    """BLAS: beta == 0 means c is not read, so NaN/Inf in c must not reach the output."""
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, False, False)
    c = np.full((M, N), poison, dtype=dtype)
    out = _check(a, b, c, alpha=1.0, beta=0.0, isa=isa, what="beta=0 poisoned c")
    assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (2.0, 1.5), (1.0, -1.0)],
                         ids=["a1_b0", "a2_b1.5", "a1_b-1"])
def test_gemm_k_zero(isa, rng, alpha, beta, trans_a, trans_b, dtype):
    """K = 0: op(a)@op(b) is the zero matrix, so the result is beta·c (zeros without c)."""
    M, N = 7, 9
    a, b = _make(rng, M, N, 0, dtype, trans_a, trans_b)
    c = rng.standard_normal((M, N)).astype(dtype)
    out = _check(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, isa=isa,
                 what="K=0")
    assert out.shape == (M, N)
    out = fc.gemm(a, b, alpha=alpha, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_array_equal(out, np.zeros((M, N), dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (0, 0, 0)], ids=["M0", "N0", "all0"])
def test_gemm_empty_output(isa, rng, shape, dtype):
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, False, False)
    out = fc.gemm(a, b)
    assert out.shape == (M, N), f"isa={isa}"
    assert out.dtype == dtype


def _layout(arr, kind):
    """A view with the values of `arr` (2-D) in the memory layout `kind`.

    Strided views are cut from NaN-filled buffers: reading a skipped element poisons the
    result, so a kernel that ignores a stride fails.
    """
    m, n = arr.shape
    if kind == "C":
        return np.ascontiguousarray(arr)
    if kind == "F":
        return np.asfortranarray(arr)
    if kind == "T":  # a.T of a C-ordered array
        return np.ascontiguousarray(arr.T).T
    if kind == "rows2":  # a[::2]
        base = np.full((2 * m, n), np.nan, dtype=arr.dtype)
        base[::2] = arr
        return base[::2]
    if kind == "colslice":  # a[:, 1:]: row-major with ld > cols
        base = np.full((m, n + 1), np.nan, dtype=arr.dtype)
        base[:, 1:] = arr
        return base[:, 1:]
    if kind == "negrows":  # a[::-1]
        return arr[::-1].copy()[::-1]
    if kind == "negcols":  # a[:, ::-1]
        return arr[:, ::-1].copy()[:, ::-1]
    if kind == "step2d":  # a[::2, ::3]
        base = np.full((2 * m, 3 * n), np.nan, dtype=arr.dtype)
        base[::2, ::3] = arr
        return base[::2, ::3]
    if kind == "Tslice":  # (b[:, 1:]).T: column-major with ld > rows
        base = np.full((n, m + 1), np.nan, dtype=arr.dtype)
        base[:, 1:] = arr.T
        return base[:, 1:].T
    raise AssertionError(kind)


LAYOUTS = ["C", "F", "T", "rows2", "colslice", "negrows", "negcols", "step2d", "Tslice"]


# Every layout for both operands at once, plus mixed pairs.
LAYOUT_PAIRS = sorted(
    {(lay, lay) for lay in LAYOUTS}
    | {("C", "step2d"), ("F", "negrows"), ("negcols", "T"), ("step2d", "Tslice"),
       ("rows2", "F"), ("Tslice", "colslice"), ("negrows", "C")}
)


# M <= backend_info()['gemm_small_m_max'] (4) runs the unpacked small-M kernel: both op(B)
# layouts (rows along N: axpy form; columns along K: dot products), N across its 4-column
# groups and row blocks (4 KiB; 16 KiB for M = 1), K long enough to split threads, and
# M = 5 on the packed side.
SMALL_M = [(m, n, k) for m in (1, 2, 3, 4, 5) for n, k in ((1, 1), (3, 300), (17, 5),
                                                            (1030, 9), (4100, 3), (130, 1100))]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("shape", SMALL_M, ids=[f"{m}x{n}x{k}" for m, n, k in SMALL_M])
def test_gemm_small_m(isa, rng, threads, shape, trans_a, trans_b, dtype):
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    c = rng.standard_normal((M, N)).astype(dtype)
    _check(a, b, c, alpha=0.75, beta=-1.5, trans_a=trans_a, trans_b=trans_b, isa=isa,
           what=f"small M, {threads} threads")
    _check(a, b, None, trans_a=trans_a, trans_b=trans_b, isa=isa, what="small M, no C")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize(("layout_a", "layout_b"), LAYOUT_PAIRS,
                         ids=[f"a_{x}-b_{y}" for x, y in LAYOUT_PAIRS])
@pytest.mark.parametrize("M", [9, 3], ids=["packed", "small_m"])
def test_gemm_strided_operands(isa, rng, M, layout_a, layout_b, trans_a, trans_b, dtype):
    N, K = 17, 13
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    a, b = _layout(a, layout_a), _layout(b, layout_b)
    c = _layout(rng.standard_normal((M, N)).astype(dtype), layout_a)
    _check(a, b, c, alpha=1.25, beta=0.5, trans_a=trans_a, trans_b=trans_b, isa=isa,
           what=f"layout a={layout_a} b={layout_b}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_gemm_broadcast_and_single_column(isa, rng, dtype):
    """Zero strides (np.broadcast_to) and a one-column slice of a wider matrix."""
    M, N, K = 6, 10, 5
    row = rng.standard_normal(K).astype(dtype)
    a = np.broadcast_to(row, (M, K))
    b = rng.standard_normal((K, N)).astype(dtype)
    _check(a, b, isa=isa, what="broadcast a")
    base = np.full((K, 7), np.nan, dtype=dtype)
    base[:, 3] = rng.standard_normal(K)
    _check(rng.standard_normal((M, K)).astype(dtype), base[:, 3:4], isa=isa,
           what="single-column b")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_gemm_misaligned_operands(isa, rng, dtype):
    """Contiguous arrays whose data pointer is not aligned to the element size."""
    M, N, K = 7, 19, 11
    a = misaligned(rng.standard_normal((M, K)).astype(dtype))
    b = misaligned(rng.standard_normal((K, N)).astype(dtype))
    c = misaligned(rng.standard_normal((M, N)).astype(dtype))
    _check(a, b, c, alpha=1.0, beta=1.0, isa=isa, what="misaligned")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("trans_a", "trans_b"), TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize(("alpha", "beta", "with_c"), [(1.0, 0.0, False), (2.0, 0.0, True),
                                                       (-0.5, 1.5, True)],
                         ids=["plain", "beta0-c", "alpha-beta-c"])
@pytest.mark.parametrize("shape", [(1, 120, 400), (64, 10, 84), (13, 33, 7), (5, 9, 0)],
                         ids=["fc1-b1", "fc3-b64", "13x33x7", "K0"])
def test_gemm_bias(isa, rng, shape, alpha, beta, with_c, trans_a, trans_b, dtype):
    """bias (N,) is added to every row, unscaled by alpha: Linear's x @ W.T + b."""
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, trans_a, trans_b)
    c = rng.standard_normal((M, N)).astype(dtype) if with_c else None
    bias = rng.standard_normal(N).astype(dtype)
    bias_before = bias.copy()
    out = fc.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, bias=bias)
    ref = _reference(a, b, c, alpha, beta, trans_a, trans_b) + torch64(bias).numpy()
    atol = tolerance(dtype, K, abs(alpha) * maxabs(a), maxabs(b)) + \
        tolerance(dtype, 2, 1.0, maxabs(bias) + abs(beta) * (maxabs(c) if with_c else 0.0))
    assert out.dtype == dtype
    assert_close(out, ref, atol, what=f"gemm bias isa={isa} {shape} alpha={alpha} beta={beta}")
    np.testing.assert_array_equal(bias, bias_before)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 7, 20), (3, 9, 5), (64, 128, 300)], ids=str)
@pytest.mark.usefixtures("threads")
def test_gemm_relu_epilogue(isa, rng, shape, dtype):
    """relu=True is relu_forward of the product (+ bias, + beta * c): the same bits, NaN
    passing through; a Linear and its ReLU in one call (nn.Sequential's fusion)."""
    M, N, K = shape
    a, b = _make(rng, M, N, K, dtype, False, True)
    a[0, 0] = np.nan  # row 0 all NaN
    c = rng.standard_normal((M, N)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    for args in ((None, 1.0, 0.0, False, True, bias), (c, 0.5, 2.0, False, True, None)):
        plain = fc._core.gemm(a, b, *args)
        fused = fc._core.gemm(a, b, *args, True)
        np.testing.assert_array_equal(fused, fc._core.relu_forward(plain))
        assert np.isnan(fused[0]).all()
        ref = np.maximum(_reference(a[1:], b, None if args[0] is None else c[1:], args[1],
                                    args[2], False, True)
                         + (0 if args[5] is None else torch64(bias).numpy()), 0)
        atol = tolerance(dtype, K, args[1] * maxabs(a[1:]), maxabs(b)) + \
            tolerance(dtype, 2, 1.0, maxabs(bias) + args[2] * maxabs(c))
        assert_close(fused[1:], ref, atol, what=f"gemm relu isa={isa} {shape}")
        assert (fused[1:] >= 0).all()


# ---- validation: each rule raises the right type and names the argument -------------------

_F32 = np.ones((3, 4), dtype=np.float32)
_F32B = np.ones((4, 5), dtype=np.float32)

ERRORS = [
    ("a-list", lambda: fc.gemm([[1.0, 2.0]], _F32B[:2]), TypeError, r"\ba\b.*numpy\.ndarray"),
    ("b-list", lambda: fc.gemm(_F32, [[1.0]] * 4), TypeError, r"\bb\b.*numpy\.ndarray"),
    ("c-list", lambda: fc.gemm(_F32, _F32B, [[0.0] * 5] * 3, beta=1.0), TypeError,
     r"\bc\b.*numpy\.ndarray"),
    ("a-int", lambda: fc.gemm(_F32.astype(np.int32), _F32B), TypeError,
     r"\ba\b.*float32 or float64"),
    ("b-int64", lambda: fc.gemm(_F32, _F32B.astype(np.int64)), TypeError,
     r"\bb\b.*float32 or float64"),
    ("a-float16", lambda: fc.gemm(_F32.astype(np.float16), _F32B.astype(np.float16)), TypeError,
     r"\ba\b.*float32 or float64"),
    ("mixed-a-b", lambda: fc.gemm(_F32, _F32B.astype(np.float64)), TypeError,
     r"\ba and b\b.*same dtype"),
    ("mixed-a-c", lambda: fc.gemm(_F32, _F32B, np.zeros((3, 5)), beta=1.0), TypeError,
     r"\ba and c\b.*same dtype"),
    ("a-1d", lambda: fc.gemm(np.ones(4, np.float32), _F32B), ValueError, r"\ba\b.*2-D"),
    ("b-3d", lambda: fc.gemm(_F32, np.ones((4, 5, 1), np.float32)), ValueError, r"\bb\b.*2-D"),
    ("c-1d", lambda: fc.gemm(_F32, _F32B, np.zeros(5, np.float32), beta=1.0), ValueError,
     r"\bc\b.*2-D"),
    ("inner", lambda: fc.gemm(_F32, _F32B[:3]), ValueError, r"inner dimensions"),
    ("inner-trans", lambda: fc.gemm(_F32, _F32B, trans_a=True), ValueError, r"inner dimensions"),
    ("c-shape", lambda: fc.gemm(_F32, _F32B, np.zeros((5, 3), np.float32), beta=1.0),
     ValueError, r"\bc\b of shape \(3, 5\)"),
    ("c-shape-beta0", lambda: fc.gemm(_F32, _F32B, np.zeros((3, 4), np.float32)),
     ValueError, r"\bc\b of shape \(3, 5\)"),
    ("bias-list", lambda: fc.gemm(_F32, _F32B, bias=[0.0] * 5), TypeError,
     r"\bbias\b.*numpy\.ndarray"),
    ("bias-dtype", lambda: fc.gemm(_F32, _F32B, bias=np.zeros(5)), TypeError,
     r"\ba and bias\b.*same dtype"),
    ("bias-shape", lambda: fc.gemm(_F32, _F32B, bias=np.zeros(3, np.float32)), ValueError,
     r"\bbias\b of shape \(5,\)"),
    ("bias-2d", lambda: fc.gemm(_F32, _F32B, bias=np.zeros((1, 5), np.float32)), ValueError,
     r"\bbias\b of shape \(5,\)"),
]


@pytest.mark.parametrize(("call", "exc", "match"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_gemm_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
