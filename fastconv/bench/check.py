"""``fastconv check``: numerical parity of every public op and model against PyTorch.

Each case runs one op (or one model's forward and backward) in fastconv and in PyTorch on
the same random values and compares every result: the outputs, max-pool indices, the
updated batch-norm running statistics and the gradient of every input (backward of the
non-trivial loss ``(out * g).sum()`` with a fixed random ``g``; for a model, of its
cross-entropy loss).

The reference is PyTorch in **float64**. For a float32 row, fastconv runs in float32 and
torch in float64 on the same float32-rounded values upcast, so each row measures our
rounding error against an almost exact answer, not the difference of two float32 roundings.

Errors, per compared tensor:

- ``max_abs = max |ours − ref|`` (equal values, equal infinities and NaN against NaN count
  as exact; a NaN where the reference is finite makes it NaN, a failure);
- ``max_rel = max_abs / max(max |ref|, tiny)``: normwise, because an elementwise relative
  error is meaningless where the reference crosses zero (every conv output, gradient and
  logit has entries near 0).

A row passes when ``max_rel <= tol``: 1e-10 for float64 and 1e-5 for float32, the criteria
of the project's parity tests (tests/test_networks.py). A float32 reduction of K terms has
a normwise error of about ``sqrt(K)·2⁻²⁴``, at most 4e-6 for the longest reduction here
(K = 4096; the worst float32 row measures about 7e-7), so 1e-5 passes correct kernels
and catches wrong ones. Integer results (indices) must be equal. No op needs a bound of
its own at these sizes (docs/check.md).

Use :func:`run_check` from Python (it returns a :class:`CheckReport`), ``fastconv check``
from the shell (:func:`add_check_arguments`, :func:`run_check_cli`). torch is imported only
when a check runs: it is a test/bench extra, never a runtime dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import platform
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import fastconv as fc
from fastconv import functional as F
from fastconv import models
from fastconv.tensor import generator

__all__ = ["TOLERANCE", "CheckReport", "Row", "add_check_arguments", "all_cases", "format_report",
           "op_names", "run_check", "run_check_cli"]

SCHEMA = "fastconv-check/1"
DTYPES = ("float32", "float64")
# max_rel bounds (see the module docstring); integer results are compared exactly.
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
_TINY = np.finfo(np.float64).tiny
_MISSING_TORCH = ("fastconv check needs PyTorch as its reference, but `import torch` failed "
                  "({error}).\nInstall it with: pip install \"fastconv[test]\"  "
                  "(or pip install torch==2.13.0)")


# ---- results --------------------------------------------------------------------------------

@dataclass
class Row:
    """One compared tensor: `op` under `setting`, result `tensor`, in `dtype`.

    ``max_abs``/``max_rel`` are NaN when they cannot be measured (an exception, a shape
    mismatch, a missing gradient); ``error`` then says why. ``tol`` is 0 for exact rows.
    """

    op: str
    setting: str
    tensor: str
    dtype: str
    max_abs: float
    max_rel: float
    tol: float
    passed: bool
    error: str = ""


@dataclass
class CheckReport:
    """Rows of one check run plus the environment it ran in."""

    rows: list[Row] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if not r.passed]

    @property
    def passed(self) -> bool:
        """True when every row passed (an empty report does not pass)."""
        return bool(self.rows) and not self.failed

    def to_json(self) -> dict:
        """The ``fastconv-check/1`` document (see docs/check.md); NaN becomes null."""
        def finite(v: float) -> float | None:
            return v if math.isfinite(v) else None

        rows = [{**asdict(r), "max_abs": finite(r.max_abs), "max_rel": finite(r.max_rel)}
                for r in self.rows]
        return {"schema": SCHEMA, "environment": self.environment,
                "tolerance": {**TOLERANCE, "integer": 0,
                              "rule": "max_rel = max|ours - ref| / max|ref| <= tol[dtype]"},
                "rows": rows,
                "summary": {"checks": len(self.rows), "failed": len(self.failed),
                            "passed": self.passed, "seconds": round(self.seconds, 3)}}


def _compare(ours, ref, tol: float) -> tuple[float, float, bool, str]:
    """(max_abs, max_rel, passed, error) of `ours` against `ref` (module docstring)."""
    if ours is None or ref is None:
        missing = "fastconv" if ours is None else "the reference"
        return math.nan, math.nan, False, f"no value from {missing}"
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape:
        return math.nan, math.nan, False, f"shape {ours.shape} != reference {ref.shape}"
    if ref.dtype.kind in "iub":  # indices: exact
        diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
        max_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        return max_abs, max_abs / max(scale, 1.0), max_abs == 0.0, ""
    o, r = ours.astype(np.float64), ref.astype(np.float64)
    same = (o == r) | (np.isnan(o) & np.isnan(r))
    with np.errstate(invalid="ignore"):  # inf − inf where the infinities differ in sign
        err = np.where(same, 0.0, np.abs(o - r))
    max_abs = float(err.max()) if err.size else 0.0
    finite = np.abs(r[np.isfinite(r)])
    max_rel = max_abs / max(float(finite.max()) if finite.size else 0.0, _TINY)
    error = "NaN where the reference is finite" if np.isnan(err).any() else ""
    return max_abs, max_rel, bool(max_rel <= tol), error


# ---- the two libraries behind one interface ---------------------------------------------------

class _Ours:
    """fastconv at the dtype under test."""

    name = "fastconv"
    F = F

    @staticmethod
    def leaf(value: np.ndarray, grad: bool):
        return fc.tensor(value, requires_grad=grad)

    @staticmethod
    def const(value: np.ndarray):
        return value.copy()  # ops may update it in place (running statistics)

    @staticmethod
    def numpy(t) -> np.ndarray:
        return t.detach().numpy() if isinstance(t, fc.Tensor) else np.asarray(t)

    @staticmethod
    def gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
        return fc.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)

    @staticmethod
    def model(name: str, dtype: str):
        model = models.get_model(name)
        return model.double() if dtype == "float64" else model


class _Torch:
    """PyTorch in float64 on the same (already dtype-rounded) values."""

    name = "torch"

    def __init__(self) -> None:
        import torch
        import torch.nn.functional as TF

        self.torch, self.F = torch, TF

    def _tensor(self, value: np.ndarray):
        kind = np.float64 if value.dtype.kind == "f" else value.dtype
        return self.torch.from_numpy(np.array(value, dtype=kind))  # a copy, upcast

    def leaf(self, value: np.ndarray, grad: bool):
        return self._tensor(value).requires_grad_(grad)

    def const(self, value: np.ndarray):
        return self._tensor(value)

    def numpy(self, t) -> np.ndarray:
        return t.detach().numpy()

    def gemm(self, a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
        prod = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))
        return prod if c is None else prod + beta * c

    def model(self, name: str, dtype: str):  # noqa: ARG002 (the reference is always float64)
        return models.architecture(name, self.torch.nn, self.F).double()


# ---- cases ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arg:
    """A random tensor argument: 'grad' (float, differentiated), 'const' (float, not
    differentiated) or 'int' (int64 in [0, high)); `positive` draws floats in [0.5, 1.5)
    instead of N(0, 1) (divisors, variances)."""

    shape: tuple[int, ...]
    kind: str = "grad"
    high: int = 0
    positive: bool = False

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "int":
            return rng.integers(0, self.high, size=self.shape, dtype=np.int64)
        if self.positive:
            return rng.uniform(0.5, 1.5, size=self.shape)
        return rng.standard_normal(self.shape)


def A(*shape: int, positive: bool = False) -> Arg:
    """A differentiated float argument."""
    return Arg(shape, positive=positive)


def C(*shape: int, positive: bool = False) -> Arg:
    """A float argument without gradient."""
    return Arg(shape, "const", positive=positive)


def I(high: int, *shape: int) -> Arg:  # A/C/I: the argument kinds, short for the table
    """An int64 argument in [0, high)."""
    return Arg(shape, "int", high)


@dataclass
class Case:
    """One op setting: ``fn(lib, *args, **kwargs)`` (default ``lib.F.<op>``) in both libs.

    `args` maps argument names to :class:`Arg` (random tensors) or plain values, passed
    positionally in order; `outputs` names the results; `mutated` names const arguments the
    op updates in place (their final values are compared too). A model case sets `model`.
    """

    op: str
    args: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    fn: Callable | None = None
    label: str = ""
    outputs: tuple[str, ...] = ("out",)
    mutated: tuple[str, ...] = ()
    model: str | None = None

    @property
    def setting(self) -> str:
        parts = [self.label] if self.label else []
        for name, spec in self.args.items():
            if isinstance(spec, Arg):
                parts.append(f"{name}({','.join(map(str, spec.shape))})")
            else:
                parts.append(f"{name}={spec!r}")
        parts += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return " ".join(parts)

    @property
    def seed(self) -> int:
        """Per-case seed: the values do not depend on which other cases run (--filter)."""
        return zlib.crc32(f"{self.op}|{self.setting}".encode())


def _case(op: str, args: dict[str, Any], **kwargs) -> Case:
    return Case(op, args, kwargs)


def _cases_for(op: str, settings: Sequence[tuple[dict[str, Any], dict[str, Any]]],
               **extra) -> list[Case]:
    return [Case(op, args, kwargs, **extra) for args, kwargs in settings]


def _method(name: str, *margs) -> Callable:
    """fn calling the tensor method `name` (sum, mean, reshape) on the one argument."""
    return lambda lib, a, **kw: getattr(a, name)(*margs, **kw)  # noqa: ARG005


def _binary(op: Callable, scalar: float | None = None, reflected: bool = False) -> Callable:
    """fn applying an arithmetic operator to two tensors, or to a tensor and a scalar."""
    if scalar is None:
        return lambda lib, a, b: op(a, b)  # noqa: ARG005
    if reflected:
        return lambda lib, a: op(scalar, a)  # noqa: ARG005
    return lambda lib, a: op(a, scalar)  # noqa: ARG005


def _gemm(lib, a, b, c=None, **kw):
    return lib.gemm(a, b, c, **kw)


def _x(*shape: int) -> dict[str, Arg]:
    return {"input": A(*shape)}


def _conv_args(x: tuple, w: tuple, c_out: int, bias: bool = True) -> dict[str, Any]:
    """Conv input/weight/bias; `c_out` sizes the bias (conv_transpose: C_out = w[1]·groups)."""
    return {"input": A(*x), "weight": A(*w), "bias": A(c_out) if bias else None}


def _conv2d_cases() -> list[Case]:
    s = [
        ((2, 3, 8, 8), (4, 3, 3, 3), True, {}),
        ((2, 3, 9, 7), (5, 3, 3, 3), False, {"stride": 2, "padding": 1}),
        ((1, 2, 7, 8), (3, 2, 3, 2), True, {"padding": "same", "dilation": 2}),
        ((2, 2, 6, 7), (3, 2, 2, 4), True, {"padding": "same"}),
        ((2, 3, 6, 5), (2, 3, 2, 3), True, {"padding": "valid", "stride": (1, 2)}),
        ((2, 4, 6, 6), (6, 2, 3, 3), True, {"stride": (2, 1), "padding": (1, 0), "groups": 2}),
        ((2, 4, 7, 7), (4, 1, 3, 3), True, {"padding": 1, "groups": 4}),
        ((2, 3, 7, 6), (6, 1, 3, 3), False, {"stride": 2, "padding": 1, "groups": 3}),
        ((2, 5, 5, 5), (3, 5, 1, 1), True, {}),
        ((1, 3, 9, 9), (4, 3, 3, 2), True, {"stride": (1, 2), "padding": (2, 1),
                                            "dilation": (2, 1)}),
        ((2, 16, 10, 10), (24, 16, 3, 3), True, {"padding": 1}),
        ((2, 32, 12, 11), (40, 32, 3, 3), True, {"padding": (1, 2)}),  # several GEMM panels
        ((6, 5, 6), (4, 3, 3, 3), True, {"groups": 2, "padding": 1}),  # unbatched (C, H, W)
    ]
    return [Case("conv2d", _conv_args(x, w, w[0], bias), kw) for x, w, bias, kw in s]


def _conv_transpose2d_cases() -> list[Case]:
    s = [
        ((2, 4, 5, 5), (4, 3, 3, 3), True, {}),
        ((2, 3, 4, 5), (3, 2, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": 1}),
        ((2, 4, 4, 4), (4, 3, 3, 3), True, {"stride": 2, "groups": 2}),
        ((1, 2, 4, 4), (2, 3, 3, 3), True, {"stride": (2, 1), "padding": (1, 2),
                                            "output_padding": (1, 0), "dilation": 2}),
        ((2, 3, 5, 4), (3, 2, 2, 3), False, {"padding": (0, 1)}),
        ((2, 6, 4, 5), (6, 1, 3, 3), True, {"stride": 2, "padding": 1, "groups": 6}),
    ]
    return [Case("conv_transpose2d", _conv_args(x, w, w[1] * kw.get("groups", 1), bias), kw)
            for x, w, bias, kw in s]


def _pool_cases() -> list[Case]:
    x, odd = _x(2, 3, 8, 8), _x(2, 2, 8, 9)
    idx = {"outputs": ("out", "indices")}
    return [
        *_cases_for("max_pool2d", [
            (x, {"kernel_size": 2}),
            (x, {"kernel_size": 3, "stride": 2, "padding": 1}),
            (odd, {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
            (odd, {"kernel_size": (3, 2), "stride": 1, "padding": 1, "dilation": 2}),
        ]),
        *_cases_for("max_pool2d", [
            (odd, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                   "return_indices": True}),
            (x, {"kernel_size": 2, "dilation": (1, 2), "return_indices": True}),
        ], **idx),
        *_cases_for("avg_pool2d", [
            (x, {"kernel_size": 2}),
            (x, {"kernel_size": 3, "stride": 2, "padding": 1}),
            (x, {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
            (odd, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
            (odd, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                   "count_include_pad": False}),
            (odd, {"kernel_size": 2, "ceil_mode": True}),
            (x, {"kernel_size": 3, "padding": 1, "divisor_override": 3}),
            (odd, {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 0)}),
        ]),
        *_cases_for("adaptive_avg_pool2d", [
            (_x(2, 3, 7, 9), {"output_size": 3}),
            (_x(2, 3, 7, 9), {"output_size": (2, 4)}),
            (_x(2, 3, 7, 9), {"output_size": (None, 4)}),
            (x, {"output_size": 1}),
        ]),
        *_cases_for("adaptive_max_pool2d", [
            (_x(2, 3, 7, 9), {"output_size": 3}),
            (x, {"output_size": 1}),
        ]),
        *_cases_for("adaptive_max_pool2d", [
            (_x(2, 3, 7, 9), {"output_size": (3, 4), "return_indices": True}),
        ], **idx),
    ]


def _elementwise_cases() -> list[Case]:
    x = _x(3, 4, 5)
    return [
        _case("relu", x),
        _case("leaky_relu", x),
        _case("leaky_relu", x, negative_slope=0.2),
        _case("sigmoid", x),
        _case("tanh", x),
        _case("softmax", x, dim=1),
        _case("softmax", x, dim=-1),
        _case("log_softmax", x, dim=1),
        _case("log_softmax", x, dim=0),
        # Only the identity cases: a random mask is not comparable between two generators.
        _case("dropout", x, p=0.0, training=True),
        _case("dropout", x, p=0.5, training=False),
    ]


def _linear_pad_cases() -> list[Case]:
    x = _x(2, 3, 5, 6)
    return [
        *[_case("linear", {"input": A(*shape), "weight": A(4, 6),
                           "bias": A(4) if bias else None})
          for shape, bias in (((5, 6), True), ((5, 6), False), ((2, 3, 6), True), ((6,), True))],
        _case("pad", x, pad=(1, 2, 0, 3), value=0.5),
        _case("pad", x, pad=(-1, 2, 1, -2)),
        _case("pad", x, pad=(2, 1, 1, 3), mode="reflect"),
        _case("pad", x, pad=(1, 2, 3, 0), mode="replicate"),
        _case("pad", x, pad=(2, 1, 1, 2), mode="circular"),
    ]


def _loss_cases() -> list[Case]:
    ce = {"input": A(6, 5), "target": I(5, 6)}
    ce4 = {"input": A(2, 4, 3, 3), "target": I(4, 2, 3, 3)}  # (N, C, H, W) with (N, H, W)
    weighted = {**ce, "weight": C(5, positive=True)}
    return [
        *[_case("cross_entropy", ce, reduction=r) for r in ("mean", "sum", "none")],
        _case("cross_entropy", ce, label_smoothing=0.1),
        _case("cross_entropy", weighted),
        _case("cross_entropy", weighted, reduction="none", label_smoothing=0.2),
        _case("cross_entropy", ce4, ignore_index=1),
        _case("cross_entropy", {"input": A(4, 5), "target": C(4, 5, positive=True)}),
        *[_case("nll_loss", ce, reduction=r) for r in ("mean", "sum", "none")],
        _case("nll_loss", weighted),
        _case("nll_loss", ce4, ignore_index=2),
        *[_case("mse_loss", {"input": A(3, 4, 5), "target": A(3, 4, 5)}, reduction=r)
          for r in ("mean", "sum", "none")],
    ]


def _batch_norm_cases() -> list[Case]:
    def args(x: tuple, affine: bool = True) -> dict[str, Any]:
        c = x[1]
        return {"input": A(*x), "running_mean": C(c), "running_var": C(c, positive=True),
                "weight": A(c) if affine else None, "bias": A(c) if affine else None}

    stats = ("running_mean", "running_var")
    return _cases_for("batch_norm", [
        (args((4, 3, 5, 5)), {"training": True}),
        (args((4, 3, 5, 5)), {"training": True, "momentum": 0.3, "eps": 1e-3}),
        (args((4, 3, 5, 5), affine=False), {"training": True}),
        (args((6, 4)), {"training": True}),
        (args((4, 3, 5, 5)), {"training": False}),
    ], mutated=stats)


def _gemm_cases() -> list[Case]:
    def args(a: tuple, b: tuple, c: tuple | None = None) -> dict[str, Any]:
        return {"a": C(*a), "b": C(*b), **({"c": C(*c)} if c else {})}

    return _cases_for("gemm", [
        (args((5, 7), (7, 6)), {}),
        (args((7, 5), (7, 6)), {"trans_a": True}),
        (args((5, 7), (6, 7)), {"trans_b": True}),
        (args((7, 5), (6, 7)), {"trans_a": True, "trans_b": True}),
        (args((5, 7), (7, 6), (5, 6)), {"alpha": 0.5, "beta": 2.0}),
        (args((65, 129), (129, 70), (65, 70)), {"alpha": -1.5, "beta": 0.25}),
        (args((130, 33), (40, 130)), {"trans_a": True, "trans_b": True, "alpha": 2.0}),
    ], fn=_gemm)


def _tensor_cases() -> list[Case]:
    pairs = {
        "tensor.add": (operator.add, {"a": A(3, 4), "b": A(4)}, "a + b", 1.5),
        "tensor.sub": (operator.sub, {"a": A(2, 3, 4), "b": A(3, 1)}, "a - b", 0.25),
        "tensor.mul": (operator.mul, {"a": A(3, 1, 4), "b": A(5, 4)}, "a * b", -0.7),
        "tensor.div": (operator.truediv, {"a": A(3, 4), "b": A(3, 1, positive=True)}, "a / b",
                       3.0),
    }
    cases = []
    for op, (fn, args, label, scalar) in pairs.items():
        a = {"a": args["b"]}
        symbol = label.split()[1]
        cases += [Case(op, args, fn=_binary(fn), label=label),
                  Case(op, a, fn=_binary(fn, scalar), label=f"a {symbol} {scalar}"),
                  Case(op, a, fn=_binary(fn, scalar, reflected=True), label=f"{scalar} {symbol} a")]
    sum_mean = [(name, kw) for name in ("sum", "mean")
                for kw in ({}, {"dim": 1}, {"dim": (0, 2), "keepdim": True})]
    return [
        *cases,
        Case("tensor.matmul", {"a": A(3, 5), "b": A(5, 4)}, fn=_binary(operator.matmul),
             label="a @ b"),
        Case("tensor.matmul", {"a": A(2, 3, 5), "b": A(5, 4)}, fn=_binary(operator.matmul),
             label="a @ b"),
        Case("tensor.matmul", {"a": A(5), "b": A(5, 4)}, fn=_binary(operator.matmul),
             label="a @ b"),
        *[Case(f"tensor.{name}", {"a": A(3, 4, 5)}, kw, fn=_method(name), label=f"a.{name}()")
          for name, kw in sum_mean],
        Case("tensor.reshape", {"a": A(3, 4, 5)}, fn=_method("reshape", 4, -1),
             label="a.reshape(4, -1)"),
    ]


def _model_cases() -> list[Case]:
    return [Case(f"model.{name}", label="batch 4, cross_entropy", model=name)
            for name in models.MODELS]


def all_cases() -> list[Case]:
    """Every case of the check, grouped by op, in report order."""
    return [*_conv2d_cases(), *_conv_transpose2d_cases(), *_pool_cases(),
            *_linear_pad_cases(), *_elementwise_cases(), *_loss_cases(), *_batch_norm_cases(),
            *_gemm_cases(), *_tensor_cases(), *_model_cases()]


def op_names() -> list[str]:
    """The op names the check covers (functional ops, gemm, tensor.*, model.*)."""
    return list(dict.fromkeys(c.op for c in all_cases()))


# ---- running one case in one library ------------------------------------------------------------

# Stream tags: SeedSequence treats trailing zero words as absent, so (s, seed) and
# (s, seed, 0) would give the same stream (g equal to the input made batch_norm's input
# gradient vanish); a non-zero tag keeps the values and the upstream gradients apart.
_VALUES, _UPSTREAM = 1, 2


def _values(case: Case, seed: int, torch) -> dict[str, np.ndarray]:
    """Master values (float64 / int64) of the case's random arguments."""
    rng = np.random.default_rng((case.seed, seed, _VALUES))
    if case.model is None:
        return {name: spec.draw(rng) for name, spec in case.args.items()
                if isinstance(spec, Arg)}
    spec = models.MODELS[case.model]
    torch.manual_seed(case.seed + seed)  # torch's own initialisation gives realistic weights
    twin = models.architecture(case.model, torch.nn, torch.nn.functional)
    values = {k: v.detach().numpy().astype(np.float64) for k, v in twin.state_dict().items()}
    values["input"] = rng.standard_normal((4, *spec.input_shape))
    values["target"] = rng.integers(0, spec.num_classes, size=4, dtype=np.int64)
    return values


def _upstream(case: Case, seed: int, k: int, shape: tuple, dtype: str) -> np.ndarray:
    """The fixed random g of the loss (out_k * g).sum(), identical in both libraries."""
    rng = np.random.default_rng((case.seed, seed, _UPSTREAM, k))
    return rng.standard_normal(shape).astype(dtype)


def _run_function(case: Case, lib, values: dict, dtype: str, seed: int) -> dict[str, Any]:
    tensors, args = {}, []
    for name, spec in case.args.items():
        if isinstance(spec, Arg):
            v = values[name]
            tensors[name] = lib.leaf(v, True) if spec.kind == "grad" else lib.const(v)
            args.append(tensors[name])
        else:
            args.append(spec)
    fn = case.fn or (lambda lib, *a, **kw: getattr(lib.F, case.op)(*a, **kw))
    out = fn(lib, *args, **case.kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    results = {name: lib.numpy(o) for name, o in zip(case.outputs, outs)}
    results.update({name: lib.numpy(tensors[name]) for name in case.mutated})
    leaves = {n: t for n, t in tensors.items() if case.args[n].kind == "grad"}
    if leaves:
        loss = sum((o * lib.const(_upstream(case, seed, k, tuple(o.shape), dtype))).sum()
                   for k, o in enumerate(outs) if results[case.outputs[k]].dtype.kind == "f")
        loss.backward()
        results.update({f"grad_{n}": None if t.grad is None else lib.numpy(t.grad)
                        for n, t in leaves.items()})
    return results


def _run_model(case: Case, lib, values: dict, dtype: str,
               seed: int) -> dict[str, Any]:  # noqa: ARG001 (the loss is the model's)
    model = lib.model(case.model, dtype)
    model.load_state_dict({k: lib.const(values[k]) for k in model.state_dict()})
    logits = model(lib.leaf(values["input"], False))
    loss = lib.F.cross_entropy(logits, lib.const(values["target"]))
    loss.backward()
    results = {"logits": lib.numpy(logits), "loss": lib.numpy(loss)}
    results.update({f"grad {k}": None if p.grad is None else lib.numpy(p.grad)
                    for k, p in model.named_parameters()})
    return results


def _check_case(case: Case, dtype: str, seed: int, master: dict, libs: tuple) -> list[Row]:
    """Rows of one case in one dtype; an exception becomes a failing row, not a crash."""
    values = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in master.items()}
    run = _run_model if case.model else _run_function
    tol = TOLERANCE[dtype]
    results = []
    for lib in libs:  # the reference first
        try:
            with warnings.catch_warnings():
                if lib is libs[0]:  # torch's performance notes ('same' with even kernels)
                    warnings.simplefilter("ignore")
                results.append(run(case, lib, values, dtype, seed))
        except Exception as e:  # noqa: BLE001 (reported as a FAIL row)
            error = f"{lib.name} raised {type(e).__name__}: {e}"
            return [Row(case.op, case.setting, "-", dtype, math.nan, math.nan, tol, False, error)]
    ref, ours = results
    rows = []
    for name in dict.fromkeys([*ref, *ours]):
        max_abs, max_rel, passed, error = _compare(ours.get(name), ref.get(name), tol)
        exact = ref.get(name) is not None and np.asarray(ref[name]).dtype.kind in "iub"
        rows.append(Row(case.op, case.setting, name, dtype, max_abs, max_rel,
                        0.0 if exact else tol, passed, error))
    return rows


@contextlib.contextmanager
def _quiet_rngs(torch) -> Iterator[None]:
    """Leave torch's and fastconv's global generators and torch's threads as found."""
    state = generator().bit_generator.state
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny reference ops: a torch thread pool would only contend
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)
        generator().bit_generator.state = state


def _environment(torch) -> dict:
    """Versions and backend of this run (the report header and the JSON 'environment')."""
    info = fc.backend_info()
    return {"fastconv": info["version"], "isa": info["isa"], "threads": info["num_threads"],
            "cpu": info["cpu"], "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def run_check(filter: str | None = None, dtypes: Sequence[str] = DTYPES,
              seed: int = 0) -> CheckReport:
    """Compare every op and model (or those whose name contains `filter`) with PyTorch.

    Parameters
    ----------
    filter : str, optional
        Run only the ops whose name contains this substring (e.g. ``'conv'``,
        ``'model.'``, ``'tensor.'``); see :func:`op_names`.
    dtypes : sequence of {'float32', 'float64'}, default both
    seed : int, default 0
        Mixed into every case's seed; the same seed gives the same values and rows.

    Returns
    -------
    CheckReport
        One :class:`Row` per (op, setting, result tensor, dtype); ``.passed`` is True when
        all pass.

    Raises
    ------
    ImportError
        torch is not installed.
    ValueError
        An unknown dtype.

    Notes
    -----
    Errors and tolerances: see the module docstring and docs/check.md.
    """
    import torch

    unknown = [d for d in dtypes if d not in TOLERANCE]
    if unknown:
        msg = f"run_check: dtypes must be among {DTYPES}, got {unknown}"
        raise ValueError(msg)
    cases = [c for c in all_cases() if filter is None or filter in c.op]
    libs = (_Torch(), _Ours())
    report = CheckReport(environment={**_environment(torch), "seed": seed})
    start = time.perf_counter()
    masters: dict[int, dict] = {}  # per case, shared by the dtypes
    with _quiet_rngs(torch):
        for op in dict.fromkeys(c.op for c in cases):
            for dtype in dtypes:
                for i, case in enumerate(cases):
                    if case.op != op:
                        continue
                    if i not in masters:
                        masters[i] = _values(case, seed, torch)
                    report.rows += _check_case(case, dtype, seed, masters[i], libs)
    report.seconds = time.perf_counter() - start
    return report


# ---- report -------------------------------------------------------------------------------------

def _num(v: float) -> str:
    return f"{v:9.2e}" if math.isfinite(v) else f"{'n/a':>9}"


def _row_line(r: Row) -> str:
    verdict = "PASS" if r.passed else "FAIL"
    line = (f"  {r.op:<20} {r.dtype:<8} {r.tensor:<20} {_num(r.max_abs)} {_num(r.max_rel)} "
            f"{r.tol:8.0e}  {verdict}  {r.setting}")
    return f"{line}  [{r.error}]" if r.error else line


def format_report(report: CheckReport, verbose: bool = False) -> str:
    """Header, one line per (op, dtype) (per row with `verbose`), failures, the total."""
    env = report.environment
    lines = [
        (f"fastconv check: fastconv {env['fastconv']} (isa {env['isa']}, {env['threads']} "
         f"threads) vs torch {env['torch']} in float64; numpy {env['numpy']}, "
         f"python {env['python']}, seed {env['seed']}"),
        ("error per tensor: max_abs = max|ours - ref|, max_rel = max_abs / max|ref| "
         "(normwise; float32 rows: ref = torch float64 on the same float32 values)"),
        (f"pass: max_rel <= tol (float32 {TOLERANCE['float32']:.0e}, float64 "
         f"{TOLERANCE['float64']:.0e}); indices exact; NaN where ref is finite fails"),
        "",
        (f"  {'op':<20} {'dtype':<8} {'cases':>5} {'checks':>6} {'max_abs':>9} {'max_rel':>9} "
         f"{'tol':>8}  result"),
    ]
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in report.rows:
        groups.setdefault((r.op, r.dtype), []).append(r)
    for (op, dtype), rows in groups.items():
        def worst(key: str, rows: list[Row] = rows) -> float:
            values = [getattr(r, key) for r in rows]
            return math.nan if any(map(math.isnan, values)) else max(values)

        cases = len({r.setting for r in rows})
        verdict = "PASS" if all(r.passed for r in rows) else "FAIL"
        lines.append(f"  {op:<20} {dtype:<8} {cases:>5} {len(rows):>6} {_num(worst('max_abs'))} "
                     f"{_num(worst('max_rel'))} {TOLERANCE[dtype]:8.0e}  {verdict}")
        if verbose:
            lines += [f"  {_row_line(r)}" for r in rows]
    if report.failed:
        lines += ["", "failed:"] + [_row_line(r) for r in report.failed]
    lines += ["", f"{report.seconds:.1f} s",
              f"{len(report.rows)} checks, {len(report.failed)} failed"]
    return "\n".join(lines)


# ---- command line -------------------------------------------------------------------------------

def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fastconv check`` to `parser` (its sub-command parser)."""
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON "
                        f"(schema {SCHEMA}, see docs/check.md)")
    parser.add_argument("--filter", metavar="SUBSTR",
                        help="only ops whose name contains SUBSTR (e.g. conv, pool, model.)")
    parser.add_argument("--dtype", choices=[*DTYPES, "all"], default="all",
                        help="dtype(s) to check (default all)")
    parser.add_argument("--seed", type=int, default=0, help="random values (default 0)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="one line per (op, setting, tensor, dtype)")


def run_check_cli(args: argparse.Namespace) -> int:
    """Run ``fastconv check`` with parsed `args`; print the report.

    Returns
    -------
    int
        0 when every check passes, 1 when any fails, 2 when torch is missing or
        ``--filter`` matches no op (the message goes to stderr).
    """
    try:
        import torch  # noqa: F401 (only whether it imports)
    except ImportError as e:
        print(_MISSING_TORCH.format(error=e), file=sys.stderr)
        return 2
    if args.filter is not None and not any(args.filter in op for op in op_names()):
        print(f"fastconv check: no op name contains {args.filter!r}; ops: "
              f"{', '.join(op_names())}", file=sys.stderr)
        return 2
    dtypes = DTYPES if args.dtype == "all" else (args.dtype,)
    report = run_check(filter=args.filter, dtypes=dtypes, seed=args.seed)
    if args.json:  # before the table, whose last line is the verdict
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=1, allow_nan=False)
        print(f"wrote {args.json}")
    print(format_report(report, verbose=args.verbose))
    return 0 if report.passed else 1
