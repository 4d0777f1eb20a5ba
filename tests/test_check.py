"""`fastconv check`: the parity report passes on the real build and catches wrong kernels.

The wrong kernels are injected through the one seam the Python layer has: it looks up the
compiled entry points (``fastconv._core.conv2d_forward`` ...) at call time, so monkeypatching
one with a wrapper that nudges its result changes every op built on it. A nudge of 1e-3 of
the output's magnitude must fail exactly the rows that read that kernel; a nudge well under
the tolerance must not fail anything, which shows the bound is neither vacuous nor loose.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from fastconv import _core, cli
from fastconv.bench import check

FUNCTIONAL_OPS = {
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "dropout", "cross_entropy", "nll_loss", "mse_loss", "batch_norm", "pad",
}
TENSOR_OPS = {f"tensor.{name}" for name in
              ("add", "sub", "mul", "div", "matmul", "sum", "mean", "reshape")}
MODEL_OPS = {"model.lenet5", "model.tutorial", "model.keras", "model.cifarnet"}
ALL_OPS = FUNCTIONAL_OPS | TENSOR_OPS | MODEL_OPS | {"gemm"}


@pytest.fixture(scope="module")
def report() -> check.CheckReport:
    return check.run_check()


def _failures(report: check.CheckReport) -> str:
    return "\n".join(f"{r.op} {r.dtype} {r.tensor} rel={r.max_rel:.2e} {r.setting} {r.error}"
                     for r in report.failed)


def _patch(monkeypatch, name: str, edit) -> None:
    """Replace _core.<name> by a wrapper that applies `edit` to its (first) result array."""
    original = getattr(_core, name)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        edit(out[0] if isinstance(out, tuple) else out)
        return out

    monkeypatch.setattr(_core, name, wrapper)


def _nudge(rel: float):
    """An edit adding rel·max|a| to the first element."""
    def edit(a: np.ndarray) -> None:
        a.flat[0] += rel * np.abs(a).max()
    return edit


# ---- the real build -------------------------------------------------------------------------

def test_every_row_passes_in_both_dtypes(report):
    assert report.passed, _failures(report)
    assert {r.dtype for r in report.rows} == {"float32", "float64"}
    for r in report.rows:
        assert np.isfinite(r.max_abs), r
        assert r.max_rel <= r.tol, r
        assert r.tol == (0.0 if r.tensor == "indices" else check.TOLERANCE[r.dtype]), r


def test_covers_every_public_op_and_model(report):
    assert {r.op for r in report.rows} == ALL_OPS
    assert set(check.op_names()) == ALL_OPS


def test_forward_and_backward_rows_for_every_differentiable_op(report):
    tensors: dict[str, set[str]] = {}
    for r in report.rows:
        tensors.setdefault(r.op, set()).add(r.tensor)
    for op in FUNCTIONAL_OPS:
        assert {"out", "grad_input"} <= tensors[op], op
    for op in ("conv2d", "conv_transpose2d", "linear", "batch_norm"):
        assert {"grad_weight", "grad_bias"} <= tensors[op], op
    assert {"indices"} <= tensors["max_pool2d"] & tensors["adaptive_max_pool2d"]
    assert {"running_mean", "running_var"} <= tensors["batch_norm"]
    assert "grad_target" in tensors["mse_loss"]
    for op in TENSOR_OPS:
        assert {"out", "grad_a"} <= tensors[op], op
    for op in MODEL_OPS:
        assert {"logits", "loss"} <= tensors[op], op
        assert any(t.startswith("grad ") and t.endswith(".weight") for t in tensors[op]), op


def test_settings_include_the_listed_parameters(report):
    settings = " ".join({r.setting for r in report.rows})
    for fragment in ("groups=2", "groups=4", "dilation=2", "padding='same'", "padding='valid'",
                     "output_padding=1", "ceil_mode=True", "count_include_pad=False",
                     "divisor_override=3", "return_indices=True", "label_smoothing=0.1",
                     "mode='reflect'", "mode='replicate'", "mode='circular'", "training=False",
                     "trans_a=True", "trans_b=True", "beta=2.0", "reduction='none'"):
        assert fragment in settings, fragment


# ---- deliberately wrong kernels ----------------------------------------------------------------

def test_wrong_conv2d_forward_fails_its_rows_only(monkeypatch, capsys):
    _patch(monkeypatch, "conv2d_forward", _nudge(1e-3))
    rows = check.run_check(filter="conv2d").rows
    conv = [r for r in rows if r.op == "conv2d"]
    assert conv
    assert all(not r.passed for r in conv if r.tensor == "out")
    assert all(r.passed for r in conv if r.tensor != "out"), "backward does not read the output"
    assert min(r.max_rel for r in conv if r.tensor == "out") >= 5e-4
    assert check.run_check(filter="relu").passed

    assert cli.main(["check", "--filter", "conv2d"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "failed:" in out
    assert out.rstrip().splitlines()[-1].endswith(f"{sum(not r.passed for r in rows)} failed")


def test_wrong_conv2d_forward_fails_every_model(monkeypatch):
    def scale(a: np.ndarray) -> None:  # one nudged element can vanish behind ReLU/pooling
        a *= 1 + 1e-3

    _patch(monkeypatch, "conv2d_forward", scale)
    _patch(monkeypatch, "conv2d_max_pool2d_forward", scale)  # nn.Sequential's conv blocks
    report = check.run_check(filter="model.")
    assert {r.op for r in report.failed} == MODEL_OPS
    assert {r.tensor for r in report.failed} >= {"logits", "loss"}


def test_wrong_fused_conv_pool_fails_the_sequential_models(monkeypatch):
    # Sequential's Conv2d, ReLU, MaxPool2d run as one kernel: the models built that way
    # read it, the functional ones (LeNet-5, the tutorial's net) do not.
    _patch(monkeypatch, "conv2d_max_pool2d_forward", lambda a: a.__imul__(1 + 1e-3))
    report = check.run_check(filter="model.")
    assert {r.op for r in report.failed} == {"model.keras", "model.cifarnet"}


@pytest.mark.parametrize(("kernel", "ops"), [
    ("conv2d_backward_weight", "conv2d"),
    ("max_pool2d_backward", "max_pool2d"),  # also behind adaptive_max_pool2d
])
def test_wrong_backward_kernel_fails_the_gradient_rows_only(monkeypatch, kernel, ops):
    _patch(monkeypatch, kernel, _nudge(1e-3))
    report = check.run_check(filter=ops)
    failed = {(r.op, r.tensor) for r in report.failed}
    expected = {"conv2d_backward_weight": {("conv2d", "grad_weight")},
                "max_pool2d_backward": {("max_pool2d", "grad_input"),
                                        ("adaptive_max_pool2d", "grad_input")}}[kernel]
    assert failed == expected
    gradient = {t for _, t in expected}
    assert all(not r.passed for r in report.rows if r.tensor in gradient)


@pytest.mark.parametrize(("dtype", "rel", "caught"), [
    ("float64", 1e-13, False),  # 1000x under the float64 bound: must pass
    ("float64", 1e-9, True),
    ("float32", 1e-6, False),
    ("float32", 1e-4, True),
])
def test_tolerance_separates_rounding_from_errors(monkeypatch, dtype, rel, caught):
    _patch(monkeypatch, "conv2d_forward", _nudge(rel))
    rows = [r for r in check.run_check(filter="conv2d", dtypes=(dtype,)).rows
            if r.op == "conv2d" and r.tensor == "out"]
    assert all(r.passed != caught for r in rows), [(r.max_rel, r.setting) for r in rows]
    # the nudge is visible in the error, so a pass is not a missed perturbation
    assert max(r.max_rel for r in rows) >= 0.5 * rel


def test_nan_and_exceptions_are_fail_rows(monkeypatch):
    def nan(a: np.ndarray) -> None:
        a.flat[0] = np.nan

    _patch(monkeypatch, "avg_pool2d_forward", nan)
    failed = check.run_check(filter="avg_pool2d", dtypes=("float64",)).failed
    assert failed
    assert all(r.tensor == "out" and "NaN" in r.error for r in failed)

    def boom(*_args, **_kwargs):
        msg = "injected failure"
        raise RuntimeError(msg)

    monkeypatch.setattr(_core, "conv_transpose2d_forward", boom)
    report = check.run_check(filter="conv_transpose2d", dtypes=("float32",))
    assert report.rows
    assert not any(r.passed for r in report.rows)
    assert all("fastconv raised RuntimeError: injected failure" in r.error for r in report.rows)


# ---- command line -----------------------------------------------------------------------------

def test_without_torch_exits_2_naming_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert "torch" in err
    assert "pip install" in err


def test_json_report_and_text_summary(tmp_path, capsys):
    path = tmp_path / "check.json"
    assert cli.main(["check", "--json", str(path)]) == 0
    text = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["schema"] == "fastconv-check/1"
    assert set(data) == {"schema", "environment", "tolerance", "rows", "summary"}
    for key in ("fastconv", "isa", "torch", "numpy", "seed"):
        assert key in data["environment"]
    assert data["tolerance"]["float32"] == 1e-5
    assert data["tolerance"]["float64"] == 1e-10
    types = {"op": str, "setting": str, "tensor": str, "dtype": str, "max_abs": float,
             "max_rel": float, "tol": float, "passed": bool, "error": str}
    for row in data["rows"]:
        assert {k: type(v) for k, v in row.items()} == types, row
    summary = data["summary"]
    assert summary["failed"] == 0
    assert summary["passed"] is True
    assert summary["checks"] == len(data["rows"])
    assert {r["op"] for r in data["rows"]} == ALL_OPS
    env = data["environment"]
    assert f"fastconv {env['fastconv']}" in text
    assert f"isa {env['isa']}" in text
    assert f"torch {env['torch']}" in text
    assert "max_rel = max_abs / max|ref|" in text
    assert text.rstrip().splitlines()[-1] == f"{summary['checks']} checks, 0 failed"


def test_filter_dtype_and_verbose(capsys):
    assert cli.main(["check", "--filter", "pad", "--dtype", "float64", "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.startswith("    pad ")]
    assert rows
    assert all(row[1] == "float64" and "PASS" in row for row in rows)
    assert not any("float32" in line for line in lines if line.startswith("  pad "))
    assert cli.main(["check", "--filter", "no_such_op"]) == 2
    assert "no op name contains" in capsys.readouterr().err
