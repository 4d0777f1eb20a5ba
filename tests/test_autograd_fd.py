"""The autograd layer against central finite differences in float64.

``check_grad(fn, *inputs)`` pushes ``fn``'s output through the non-trivial loss
``((out + 1) ** 2).mean()`` (so upstream gradients are not all ones), takes the analytic
gradient of every input by ``backward()`` and compares it with
``(L(x + ε·e_i) − L(x − ε·e_i)) / 2ε`` for every element i, ε = 1e-6. The difference
quotient has truncation error O(ε²·L''') ≈ 1e-12 and rounding error ≈ 1e-16·|L|/ε ≈ 1e-10,
hence ``rtol = 1e-6`` with an absolute floor of 1e-8 times the gradient's magnitude
(at least 1e-8). Inputs avoid the kinks of relu/max (random values, probability ~0 of
landing within ε of one). Covered: every differentiable op of fastconv.functional and
the basics of fastconv/_functions/basic.py, with broadcasting and tensor reuse.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F

EPS = 1e-6
RTOL = 1e-6


def _loss(out):
    return ((out + 1) ** 2).mean()


def check_grad(fn, *inputs, eps: float = EPS, rtol: float = RTOL, what: str = ""):
    """Compare backward() gradients of ((fn(*inputs) + 1)²).mean() with central differences.

    inputs: float64 arrays (all differentiated). fn takes Tensors, returns a Tensor.
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    tensors = [fc.tensor(a, requires_grad=True) for a in arrays]
    loss = _loss(fn(*tensors))
    loss.backward()

    def value() -> float:
        with fc.no_grad():
            return float(_loss(fn(*[fc.tensor(a) for a in arrays])).item())

    for i, (a, t) in enumerate(zip(arrays, tensors)):
        analytic = np.zeros_like(a) if t.grad is None else t.grad.numpy()
        assert analytic.shape == a.shape, f"{what}: grad {i} shape {analytic.shape} != {a.shape}"
        numeric = np.empty_like(a)
        flat = a.reshape(-1)  # a view: writing it perturbs the input in place
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            f_plus = value()
            flat[j] = orig - eps
            f_minus = value()
            flat[j] = orig
            numeric.reshape(-1)[j] = (f_plus - f_minus) / (2 * eps)
        atol = 1e-8 * max(1.0, float(np.abs(numeric).max(initial=0.0)))
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
        assert err.size == 0 or err[worst] <= 0, (
            f"{what}: input {i} {a.shape} worst index {list(worst)} analytic="
            f"{analytic[worst]!r} numeric={numeric[worst]!r}")


@pytest.fixture
def rng(request):
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def randn(rng, *shape):
    return rng.standard_normal(shape)


def positive(rng, *shape):
    return rng.uniform(0.5, 2.0, shape)


# ---- elementwise arithmetic with broadcasting ----------------------------------------------

@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize(("sa", "sb"), [((3, 4), (3, 4)), ((3, 1, 4), (2, 4)), ((4,), (2, 3, 1))],
                         ids=["same", "3x1x4_2x4", "4_2x3x1"])
def test_binary_broadcast(op, sa, sb, rng):
    a = randn(rng, *sa)
    b = positive(rng, *sb) if op == "div" else randn(rng, *sb)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    check_grad(fn, a, b, what=f"{op} {sa} {sb}")


@pytest.mark.parametrize("name", ["radd", "rsub", "rmul", "rdiv", "div_scalar", "neg",
                                  "ndarray_lhs"])
def test_scalar_operands(name, rng):
    fn = {"radd": lambda x: 2.0 + x, "rsub": lambda x: 3.0 - x, "rmul": lambda x: 2.5 * x,
          "rdiv": lambda x: 1.5 / x, "div_scalar": lambda x: x / 3.0, "neg": lambda x: -x,
          "ndarray_lhs": lambda x: np.arange(4.0) * x}[name]
    check_grad(fn, positive(rng, 3, 4), what=name)


@pytest.mark.parametrize("name", ["int_exponent", "float_exponent", "tensor_exponent",
                                  "rpow", "broadcast_exponent"])
def test_pow(name, rng):
    if name == "int_exponent":
        check_grad(lambda x: x ** 3, randn(rng, 3, 4), what=name)
    elif name == "float_exponent":
        check_grad(lambda x: x ** 2.5, positive(rng, 3, 4), what=name)
    elif name == "tensor_exponent":
        check_grad(lambda x, y: x ** y, positive(rng, 3, 4), randn(rng, 3, 4), what=name)
    elif name == "rpow":
        check_grad(lambda x: 2.0 ** x, randn(rng, 3, 4), what=name)
    else:
        check_grad(lambda x, y: x.pow(y), positive(rng, 3, 1, 4), randn(rng, 2, 4), what=name)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "clone"])
def test_unary(name, rng):
    x = positive(rng, 3, 5) if name in ("log", "sqrt") else randn(rng, 3, 5)
    check_grad(lambda t: getattr(t, name)(), x, what=name)


# ---- matmul ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("sa", "sb"), [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                        ((4,), (4,)),
                                        ((2, 3, 4), (4, 5)),
                                        ((2, 1, 3, 4), (3, 4, 2)), ((4,), (2, 4, 3))],
                         ids=["2d", "1d_2d", "2d_1d", "1d_1d", "batched", "batch_broadcast",
                              "1d_batched"])
def test_matmul(sa, sb, rng):
    check_grad(lambda a, b: a @ b, randn(rng, *sa), randn(rng, *sb), what=f"matmul {sa}@{sb}")


# ---- reductions ------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["sum", "mean", "amax"])
@pytest.mark.parametrize(("dim", "keepdim"), [(None, False), (1, False), (-1, True),
                                              ((0, 2), False), ((0, 2), True)],
                         ids=["all", "dim1", "dim-1_keep", "dims02", "dims02_keep"])
def test_reductions(reduction, dim, keepdim, rng):
    x = randn(rng, 3, 4, 5)
    check_grad(lambda t: getattr(t, reduction)(dim=dim, keepdim=keepdim), x,
               what=f"{reduction} dim={dim} keepdim={keepdim}")


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_with_dim(keepdim, rng):
    check_grad(lambda t: t.max(dim=1, keepdim=keepdim)[0], randn(rng, 3, 4, 2),
               what="max(dim)")
    check_grad(lambda t: t.max(), randn(rng, 3, 4), what="max()")


# ---- shape ops and indexing ------------------------------------------------------------------

SHAPE_OPS = {
    "reshape": lambda t: t.reshape(4, 6),
    "view_tuple": lambda t: t.view((2, 12)),
    "reshape_infer": lambda t: t.reshape(-1, 3),
    "permute": lambda t: t.permute(2, 0, 1),
    "transpose": lambda t: t.transpose(0, 2),
    "flatten": lambda t: t.flatten(),
    "flatten_1": lambda t: t.flatten(1),
    "T": lambda t: t.T,
    "unsqueeze_squeeze": lambda t: t.unsqueeze(1).squeeze(1) * t.unsqueeze(0).squeeze(),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops(name, rng):
    check_grad(SHAPE_OPS[name], randn(rng, 2, 3, 4), what=name)


INDEXES = {
    "int": lambda t: t[1],
    "slices": lambda t: t[:, 1:3, ::2],
    "negative_step": lambda t: t[::-1, :, 1],
    "ellipsis_none": lambda t: t[..., None, 2],
    "repeated_advanced": lambda t: t[[0, 0, 2, 0]],
    "two_advanced_repeats": lambda t: t[np.array([0, 2, 0]), :, np.array([1, 1, 3])],
    "boolean_mask": lambda t: t[t.detach().numpy() > 0],
    "tensor_index": lambda t: t[fc.tensor(np.array([1, 1, 0]))],
}


@pytest.mark.parametrize("name", list(INDEXES))
def test_getitem(name, rng):
    check_grad(INDEXES[name], randn(rng, 3, 4, 5), what=name)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack(dim, rng):
    a, b, c = randn(rng, 2, 3), randn(rng, 2, 3), randn(rng, 2, 3)
    check_grad(lambda x, y, z: fc.cat([x, y, z], dim=dim), a, b, c, what=f"cat dim={dim}")
    check_grad(lambda x, y: fc.stack([x, y, x], dim=dim), a, b, what=f"stack dim={dim}")


def test_cat_unequal_sizes(rng):
    check_grad(lambda x, y: fc.cat([x, y], dim=1), randn(rng, 2, 1), randn(rng, 2, 4),
               what="cat unequal")


# ---- graph structure: reuse and branches -----------------------------------------------------

def test_reuse_square_plus_self(rng):
    check_grad(lambda x: x * x + x, randn(rng, 3, 4), what="x*x + x")


def test_two_branches(rng):
    def fn(x, w):
        h = x @ w  # h feeds both branches
        return h.exp() * h + (h * 2).sum(dim=0, keepdim=True) - h.mean()

    check_grad(fn, randn(rng, 3, 4) * 0.3, randn(rng, 4, 2) * 0.3, what="branches")


def test_deep_chain_with_broadcast_reuse(rng):
    def fn(x, b):
        y = x + b  # (3,1,4) + (2,4) -> (3,2,4)
        return (y * b).tanh() + y.sigmoid() * x

    check_grad(fn, randn(rng, 3, 1, 4), randn(rng, 2, 4), what="chain")


# ---- functional: convolution, pooling, linear -------------------------------------------------

@pytest.mark.parametrize(("xs", "ws", "kwargs"), [
    ((2, 2, 5, 5), (3, 2, 3, 3), {}),
    ((1, 2, 6, 5), (2, 2, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 4, 5, 5), (4, 2, 3, 3), {"groups": 2, "dilation": 2, "padding": 2}),
    ((1, 2, 5, 4), (2, 2, 2, 3), {"padding": "same"}),
    ((4, 4, 5), (4, 2, 3, 3), {"groups": 2}),
], ids=["basic", "strided", "groups_dilation", "same", "unbatched"])
def test_conv2d(xs, ws, kwargs, rng):
    check_grad(lambda x, w, b: F.conv2d(x, w, b, **kwargs), randn(rng, *xs) * 0.5,
               randn(rng, *ws) * 0.5, randn(rng, ws[0]), what=f"conv2d {kwargs}")


@pytest.mark.parametrize(("xs", "ws", "kwargs"), [
    ((1, 2, 3, 3), (2, 3, 3, 3), {}),
    ((1, 2, 3, 4), (2, 1, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 4, 3), (2, 2, 2, 2), {"groups": 1, "dilation": 2}),
], ids=["basic", "strided", "unbatched_dilated"])
def test_conv_transpose2d(xs, ws, kwargs, rng):
    c_out = ws[1] * kwargs.get("groups", 1)
    check_grad(lambda x, w, b: F.conv_transpose2d(x, w, b, **kwargs), randn(rng, *xs) * 0.5,
               randn(rng, *ws) * 0.5, randn(rng, c_out), what=f"conv_transpose2d {kwargs}")


@pytest.mark.parametrize("kwargs", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2,
                                                        "padding": 1, "ceil_mode": True},
                                    {"kernel_size": 2, "dilation": 2}],
                         ids=["k2", "k3s2p1_ceil", "dilated"])
def test_max_pool2d(kwargs, rng):
    check_grad(lambda x: F.max_pool2d(x, **kwargs), randn(rng, 2, 2, 6, 6),
               what=f"max_pool2d {kwargs}")


@pytest.mark.parametrize("kwargs", [{"kernel_size": 2},
                                    {"kernel_size": 3, "stride": 2, "padding": 1,
                                     "ceil_mode": True, "count_include_pad": False},
                                    {"kernel_size": (3, 2), "padding": 1,
                                     "divisor_override": 3}],
                         ids=["k2", "ceil_exclude_pad", "divisor"])
def test_avg_pool2d(kwargs, rng):
    check_grad(lambda x: F.avg_pool2d(x, **kwargs), randn(rng, 2, 2, 5, 6),
               what=f"avg_pool2d {kwargs}")


@pytest.mark.parametrize("size", [(2, 3), (4, 7), 1])
def test_adaptive_pools(size, rng):
    x = randn(rng, 1, 2, 5, 6)
    check_grad(lambda t: F.adaptive_avg_pool2d(t, size), x, what=f"adaptive_avg {size}")
    check_grad(lambda t: F.adaptive_max_pool2d(t, size), x, what=f"adaptive_max {size}")


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 2, 3), (3,)])
def test_linear(x_shape, rng):
    check_grad(F.linear, randn(rng, *x_shape), randn(rng, 2, 3),
               randn(rng, 2), what=f"linear {x_shape}")
    check_grad(F.linear, randn(rng, *x_shape), randn(rng, 2, 3),
               what=f"linear no bias {x_shape}")


@pytest.mark.parametrize(("mode", "pad"), [("constant", (1, 2, 0, 1)), ("constant", (-1, 1, 2, -1)),
                                           ("reflect", (2, 1, 1, 2)), ("reflect", (-1, 2, 0, 1)),
                                           ("replicate", (3, 0, 1, 2)), ("circular", (2, 1, 1, 3)),
                                           ("circular", (2, -1, 0, 1))],
                         ids=["const", "const_crop", "reflect", "reflect_crop", "replicate",
                              "circular", "circular_crop"])
def test_pad(mode, pad, rng):
    check_grad(lambda x: F.pad(x, pad, mode), randn(rng, 1, 2, 3, 4), what=f"pad {mode} {pad}")


# ---- functional: activations, dropout ---------------------------------------------------------

ACTS = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax_1": lambda x: F.softmax(x, 1),
    "softmax_-1": lambda x: F.softmax(x, -1),
    "log_softmax_0": lambda x: F.log_softmax(x, 0),
    "log_softmax_2": lambda x: F.log_softmax(x, 2),
}


@pytest.mark.parametrize("name", list(ACTS))
def test_activations(name, rng):
    check_grad(ACTS[name], randn(rng, 2, 3, 4) * 2, what=name)


def test_dropout_fixed_mask(rng):
    def fn(x):
        fc.manual_seed(11)  # the same mask on every evaluation
        return F.dropout(x, 0.4)

    check_grad(fn, randn(rng, 4, 5), what="dropout")


# ---- functional: losses and batch norm --------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("weighted", "label_smoothing"), [(False, 0.0), (True, 0.0),
                                                           (False, 0.2), (True, 0.3)],
                         ids=["plain", "weighted", "smoothed", "weighted_smoothed"])
def test_cross_entropy(weighted, label_smoothing, reduction, rng):
    target = np.array([1, 0, 3, -100, 3], dtype=np.int64)
    w = rng.uniform(0.5, 2.0, 4) if weighted else None
    check_grad(lambda x: F.cross_entropy(x, target, weight=w, reduction=reduction,
                                         label_smoothing=label_smoothing),
               randn(rng, 5, 4), what=f"cross_entropy {reduction} w={weighted}")


def test_cross_entropy_spatial_and_probabilities(rng):
    target = rng.integers(0, 3, (2, 2, 3))
    check_grad(lambda x: F.cross_entropy(x, target, label_smoothing=0.1),
               randn(rng, 2, 3, 2, 3), what="cross_entropy NCHW")
    w = rng.uniform(0.5, 2.0, 3)
    check_grad(lambda x, t: F.cross_entropy(x, t, weight=w, label_smoothing=0.2,
                                            reduction="none"),
               randn(rng, 4, 3), rng.dirichlet(np.ones(3), 4), what="cross_entropy probs")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction, rng):
    target = np.array([2, 0, -100, 1], dtype=np.int64)
    check_grad(lambda x: F.nll_loss(x, target, weight=np.array([0.5, 1.0, 2.0]),
                                    reduction=reduction),
               randn(rng, 4, 3), what=f"nll_loss {reduction}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, rng):
    check_grad(lambda x, t: F.mse_loss(x, t, reduction=reduction), randn(rng, 3, 4),
               randn(rng, 3, 4), what=f"mse {reduction}")
    check_grad(lambda x, t, w: F.mse_loss(x, t, reduction=reduction, weight=w),
               randn(rng, 3, 4), randn(rng, 3, 4), positive(rng, 3, 4),
               what=f"mse weighted {reduction}")


@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")
def test_mse_loss_broadcast(rng):
    check_grad(F.mse_loss, randn(rng, 3, 1, 4), randn(rng, 2, 4),
               what="mse broadcast")


@pytest.mark.parametrize("shape", [(4, 3, 2, 2), (5, 2)], ids=["NCHW", "NC"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm(training, shape, rng):
    c = shape[1]
    rm, rv = randn(rng, c), positive(rng, c)

    def fn(x, w, b):
        stats = (None, None) if training else (rm, rv)
        return F.batch_norm(x, *stats, w, b, training=training)

    check_grad(fn, randn(rng, *shape), randn(rng, c), randn(rng, c),
               what=f"batch_norm training={training}")
    check_grad(lambda x: F.batch_norm(x, rm.copy(), rv.copy(), training=training),
               randn(rng, *shape), what=f"batch_norm no affine training={training}")
