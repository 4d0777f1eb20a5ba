"""The benchmark harness (`fastconv bench`): FLOP and byte counts against hand-computed values,
shape tables against the real networks, the JSON against its documented schema, the
agreement check against a deliberately wrong kernel, and the runs without torch.

Timing figures themselves are never asserted (STYLE §7: speed lives in benchmarks).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time

import jsonschema
import numpy as np
import pytest

import fastconv as fc
from fastconv import models
from fastconv.bench import BENCH_JSON_SCHEMA, busy, harness, report, run_bench
from fastconv.bench import shapes as S
from fastconv.cli import main

# ---- FLOP and byte counts: hand-computed -----------------------------------------------------


def _layer(name: str):
    (layer,) = [l for l in S.all_layers() if l.name == name]
    return layer


@pytest.mark.parametrize(("name", "flops"), [
    # 2·N·K·(C/g)·R·S·OH·OW
    ("lenet5.conv1 b64", 2 * 64 * 6 * 1 * 5 * 5 * 28 * 28),            # 15_052_800
    ("lenet5.conv2 b64", 2 * 64 * 16 * 6 * 5 * 5 * 10 * 10),           # 30_720_000
    ("cifarnet.conv1 b64", 2 * 64 * 32 * 3 * 3 * 3 * 32 * 32),         # padding 1 keeps 32×32
    ("resnet18.stem7x7/2 b1", 2 * 1 * 64 * 3 * 7 * 7 * 112 * 112),      # 236_027_904
    ("resnet18.down1x1/2 56x56x64 b8", 2 * 8 * 128 * 64 * 1 * 1 * 28 * 28),
    ("mobilenet_v2.dw3x3 112x112x32 b1", 2 * 1 * 32 * 1 * 3 * 3 * 112 * 112),  # C/g = 1
    ("mobilenet_v2.dw3x3/2 56x56x144 b1", 2 * 144 * 9 * 28 * 28),
    ("deeplab.dilated3x3 d2 28x28x256 b1", 2 * 256 * 256 * 9 * 28 * 28),  # d2 p2: 28×28 out
])
def test_conv_flops_hand_computed(name, flops):
    layer = _layer(name)
    assert layer.flops("forward") == flops
    # backward_data and backward_weight do the same multiply-adds (STYLE §8)
    assert layer.flops("backward_data") == layer.flops("backward_weight") == flops


def test_conv_flops_grouped_and_output_size():
    layer = S.ConvShape("g", 2, 8, 10, 10, 4, 3, 3, stride=1, padding=1, groups=2)
    assert layer.w_shape == (4, 4, 3, 3)
    assert layer.y_shape == (2, 4, 10, 10)
    assert layer.flops() == 2 * 2 * 4 * 4 * 9 * 100 == 57_600
    strided = S.ConvShape("s", 1, 3, 224, 224, 64, 7, 7, stride=2, padding=3)
    assert strided.y_shape == (1, 64, 112, 112)
    dilated = S.ConvShape("d", 1, 1, 9, 9, 1, 3, 3, dilation=3)  # effective kernel 7
    assert dilated.y_shape == (1, 1, 3, 3)


def test_conv_bytes_hand_computed():
    layer = _layer("lenet5.conv1 b64")
    x, w, b, y = 64 * 32 * 32, 6 * 25, 6, 64 * 6 * 28 * 28
    assert layer.bytes("forward") == 4 * (x + w + b + y) == 1_466_992
    assert layer.bytes("backward_data") == 4 * (y + w + x)
    assert layer.bytes("backward_weight") == 4 * (y + x + w + b)


def test_conv_im2col_bytes_hand_computed():
    assert _layer("lenet5.conv1 b64").im2col_bytes() == 4 * (1 * 5 * 5) * (28 * 28) == 78_400
    assert (_layer("resnet18.conv3x3 7x7x512 b8").im2col_bytes()
            == 4 * (512 * 3 * 3) * (7 * 7) == 903_168)


def test_pool_bytes_hand_computed():
    mx = _layer("lenet5.pool1 b64 max2x2/2")
    assert mx.y_shape == (64, 6, 14, 14)
    x, y = 64 * 6 * 28 * 28, 64 * 6 * 14 * 14
    assert mx.bytes("forward") == 4 * (x + y) + 8 * y == 2_107_392  # int64 indices
    assert mx.flops("forward") == 0.0
    avg = _layer("lenet5.pool1 b64 avg2x2/2")
    assert avg.bytes("backward") == 4 * (x + y)
    p1 = _layer("resnet18.maxpool3x3/2p1 b8")
    assert p1.y_shape == (8, 64, 56, 56)  # floor((112 + 2 − 3)/2) + 1


def test_gemm_and_linear_flops_hand_computed():
    assert _layer("sgemm 1024").flops("gemm") == 2 * 1024**3 == 2_147_483_648
    fc1 = _layer("lenet5.fc1 b64")  # y[64,120] = x[64,400] @ W[120,400]^T
    assert fc1.gemm_mnk("forward") == (64, 120, 400)
    assert fc1.gemm_mnk("backward_data") == (64, 400, 120)   # dx = dy @ W
    assert fc1.gemm_mnk("backward_weight") == (120, 400, 64)  # dW = dy^T @ x
    for d in fc1.directions:
        assert fc1.flops(d) == 2 * 64 * 120 * 400 == 6_144_000
    assert fc1.bytes("forward") == 4 * (64 * 400 + 400 * 120 + 64 * 120)


def test_model_flops_hand_computed():
    # LeNet-5 at batch 64: conv1 + conv2 + fc1 + fc2 + fc3 (pooling and ReLU count nothing)
    expected = (15_052_800 + 30_720_000 + 2 * 64 * 120 * 400 + 2 * 64 * 84 * 120
                + 2 * 64 * 10 * 84)
    assert S.network("lenet5", 64).forward_flops() == expected == 53_314_560


# ---- the shape tables are the real networks ----------------------------------------------------


@pytest.mark.parametrize("net", S.SMALL_CNNS)
def test_small_cnn_tables_match_the_models(net):
    """Trace one forward pass of fastconv.models' network and compare every Conv2d and
    Linear call (input shape, weight shape, stride, padding) with the benchmark table."""
    model = models.get_model(net)
    calls = []
    for mod in model.modules():
        if isinstance(mod, (fc.nn.Conv2d, fc.nn.Linear)):
            def traced(x, _mod=mod, _fwd=mod.forward):
                calls.append((_mod, tuple(x.shape)))
                return _fwd(x)
            mod.forward = traced
    batch = 64
    model(fc.tensor(np.zeros((batch, *models.MODELS[net].input_shape), dtype=np.float32)))
    table = [l for l in S.small_cnn(net, batch) if not isinstance(l, S.PoolShape)]
    assert len(calls) == len(table)
    for (mod, x_shape), layer in zip(calls, table):
        if isinstance(layer, S.ConvShape):
            assert x_shape == layer.x_shape, layer.name
            assert mod.weight.shape == layer.w_shape, layer.name
            assert mod.stride == (layer.stride,) * 2, layer.name
            assert mod.padding == (layer.padding,) * 2, layer.name
        else:
            assert x_shape == (batch, layer.k), layer.name
            assert (mod.out_features, mod.in_features) == (layer.n, layer.k), layer.name


def test_duplicate_layers_are_merged_into_aliases():
    layers = S.all_layers()
    names = [l.name for l in layers]
    assert len(names) == len(set(names))
    conv2 = _layer("lenet5.conv2 b64")  # LeNet-5 and the tutorial net share conv2
    assert "tutorial.conv2 b64" in conv2.aliases
    assert "tutorial.conv2 b64" not in names
    keys = [S._key(l) for l in layers]
    assert len(keys) == len(set(keys))


# ---- the machine probes -----------------------------------------------------------------------


def test_fma_probe_counts_its_flops():
    """2 FLOPs per FMA lane: AVX-512 16 chains × 16 lanes, AVX2 12 × 8, ref 32 lanes."""
    per_iteration = {"avx512": 2 * 16 * 16, "avx2": 2 * 12 * 8, "ref": 2 * 32}
    isa = fc._core.current_isa()
    r = fc._core.probe_fma_peak(2, 1000)
    assert r["isa"] == isa
    assert r["flops"] == r["threads"] * 1000 * per_iteration[isa]
    assert r["gflops"] > 0
    assert r["seconds"] > 0
    c = fc._core.probe_copy_bandwidth(1, 1 << 20)
    assert c["bytes"] == 2 * (1 << 20)  # STREAM convention: read + write
    assert c["gbps"] > 0


@pytest.mark.parametrize(("fn", "kwargs", "arg"), [
    ("probe_fma_peak", {"threads": 0}, "threads"),
    ("probe_fma_peak", {"iterations": 0}, "iterations"),
    ("probe_copy_bandwidth", {"threads": 100_000}, "threads"),
    ("probe_copy_bandwidth", {"nbytes": 10}, "nbytes"),
])
def test_probe_arguments_are_validated(fn, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        getattr(fc._core, fn)(**kwargs)


# ---- agreement check, JSON, CLI ------------------------------------------------------------------

SMALL = r"sgemm 64 |lenet5\.conv1 b1 |lenet5\.pool1 b1 max2x2|lenet5\.fc3 b1 forward|lenet5 b1"


def test_rel_err():
    assert harness.rel_err([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert harness.rel_err([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25)
    assert harness.rel_err([1.0], [1.0, 2.0]) == math.inf
    assert harness.rel_err([np.nan, 2.0], [1.0, 2.0]) == math.inf


@pytest.mark.parametrize("threads", [1, 2])
def test_time_alternating_gives_each_side_reps_samples_in_turn(threads, monkeypatch):
    monkeypatch.setitem(harness.SETTLE_S, "torch", 0.0)
    calls = []
    samples = harness.time_alternating(lambda: calls.append("o"), lambda: calls.append("p"),
                                       reps=12, warmup=2, threads=threads)
    assert [len(s) for s in samples] == [12, 12]
    assert calls.count("o") == calls.count("p")
    # warmup - 1 untimed rounds, then blocks of one untimed and b timed calls per side,
    # sides alternating: b = 1 at one thread, BLOCK with more
    b = 1 if threads == 1 else harness.BLOCK
    assert calls[:2] == ["o", "p"]
    assert calls[2:2 + 2 * (b + 1)] == ["o"] * (b + 1) + ["p"] * (b + 1)
    assert len(calls) == 2 + 2 * (12 + -(-12 // b))


def test_time_alternating_warms_each_side_for_warm_s_after_the_settle(monkeypatch):
    """After the settle sleep, each block's timed calls start WARM_S after its first untimed
    call (the clock ramp), and one untimed call still precedes them when a call is slow."""
    monkeypatch.setitem(harness.SETTLE_S, "torch", 0.001)
    monkeypatch.setattr(harness, "WARM_S", 0.02)
    calls = []
    samples = harness.time_alternating(lambda: calls.append(("o", time.perf_counter())),
                                       lambda: calls.append(("p", time.perf_counter())),
                                       reps=10, warmup=1, threads=2)
    assert [len(s) for s in samples] == [10, 10]
    runs = [list(g) for _, g in itertools.groupby(calls, key=lambda c: c[0])]
    assert [r[0][0] for r in runs] == ["o", "p"] * 2  # 10 reps: two blocks of BLOCK a side
    for run in runs:
        first_timed = run[-harness.BLOCK]
        assert len(run) > harness.BLOCK + 1  # many untimed calls: each takes microseconds
        assert first_timed[1] - run[0][1] >= 0.02
    calls.clear()

    def slow(side):  # one call takes longer than WARM_S
        return lambda: (calls.append(side), time.sleep(0.03))

    harness.time_alternating(slow("o"), slow("p"), reps=3, warmup=1, threads=2)
    assert calls == ["o"] * (1 + 3) + ["p"] * (1 + 3)


def test_time_alternating_without_peer_times_one_hot_block():
    calls = []
    ours, peer = harness.time_alternating(lambda: calls.append("o"), None, reps=10, warmup=3)
    assert len(ours) == 10
    assert peer == []
    assert calls == ["o"] * (2 + 1 + 10)


def test_json_matches_schema_and_rows_agree():
    payload = run_bench(filter=SMALL, reps=10, warmup=1)
    jsonschema.validate(payload, BENCH_JSON_SCHEMA)
    json.dumps(payload, allow_nan=False)  # strict JSON: no NaN/inf
    rows = payload["results"]
    kinds = {r["kind"] for r in rows}
    assert kinds == {"gemm", "conv2d", "max_pool2d", "linear", "model"}
    for r in rows:
        assert r["status"] == "ok", r
        assert r["max_rel_err"] <= harness.AGREE_RTOL
        assert len(r["times_ms"]) == len(r["peer_times_ms"]) == 10
        assert r["ms"] == pytest.approx(float(np.median(r["times_ms"])))
        assert r["speedup"] == pytest.approx(r["peer_ms"] / r["ms"])
        if r["flops"]:
            assert r["gflops"] == pytest.approx(r["flops"] / r["ms"] / 1e6)
    conv = [r for r in rows if r["kind"] == "conv2d"]
    assert {r["direction"] for r in conv} == {"forward", "backward_data", "backward_weight"}
    for r in rows:  # scratch: conv calls need some, pooling none; only conv rows have a bound
        if r["kind"] == "conv2d":
            c = r["shape"]["x"][1]
            _, _, oh, ow = r["shape"]["y"]
            _, _, kh, kw = r["shape"]["weight"]
            assert r["workspace_bytes"] > 0
            assert r["workspace_bound_bytes"] == 4 * c * kh * kw * oh * ow * r["threads"]
        else:
            assert r["workspace_bound_bytes"] is None
        if r["kind"] == "max_pool2d":
            assert r["workspace_bytes"] == 0
    assert payload["machine"][0]["fma_gflops"] > 0


def test_channels_last_model_row_runs_torch_in_channels_last(monkeypatch):
    """The "torch-cl" model rows: torch's twin converted to channels_last (every conv input
    in NHWC memory order), the same loss as fastconv's NCHW step, a valid JSON row."""
    torch = pytest.importorskip("torch")
    layouts = []
    real = torch.nn.functional.conv2d

    def conv2d(x, *args, **kwargs):
        layouts.append((x.is_contiguous(memory_format=torch.channels_last),
                        args[0].is_contiguous(memory_format=torch.channels_last)))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", conv2d)
    rng = np.random.default_rng(0)
    for peer, expected in (("torch", False), ("torch-cl", True)):
        layouts.clear()
        case = harness.model_case("lenet5", 4, "train_step", rng, torch, peer)
        assert case.peer_name == peer
        assert case.shape["peer_memory_format"] == ("channels_last" if expected else "nchw")
        ours, theirs = float(case.ours().item()), float(case.peer().item())
        assert ours == pytest.approx(theirs, rel=1e-5)
        # conv2's input and weight (conv1's, with one channel, are contiguous in both)
        assert len(layouts) == 2
        assert layouts[1] == (expected, expected)
    monkeypatch.undo()
    payload = run_bench(filter=r"lenet5 b64 train_step channels_last", reps=10, warmup=1)
    jsonschema.validate(payload, BENCH_JSON_SCHEMA)
    (row,) = payload["results"]
    assert (row["peer"], row["status"], row["direction"]) == ("torch-cl", "ok", "train_step")
    assert row["speedup"] == pytest.approx(row["peer_ms"] / row["ms"])


def test_conv_pool_block_rows_agree_with_torch():
    """The conv -> ReLU -> 2x2/2 max-pool backward rows: one per b64 conv a max pool follows
    (LeNet-5's conv2 also stands for the tutorial's), first layers without the data
    gradient, our pooled weight gradient agreeing with torch's dense one."""
    names = {(layer.name, first) for layer, first in S.conv_pool_blocks()}
    assert names == {("lenet5.conv1 b64", True), ("lenet5.conv2 b64", False),
                     ("tutorial.conv1 b64", True), ("keras.conv1 b64", True),
                     ("keras.conv2 b64", False), ("cifarnet.conv1 b64", True),
                     ("cifarnet.conv2 b64", False)}
    payload = run_bench(filter=r"conv2d_pool lenet5\.conv", reps=10, warmup=1,
                        models_rows=False)
    jsonschema.validate(payload, BENCH_JSON_SCHEMA)
    rows = {(r["name"], r["direction"]): r for r in payload["results"]}
    assert set(rows) == {(f"lenet5.conv{i} b64 +relu+max2x2/2", d) for i in (1, 2)
                         for d in ("forward", "backward")}
    for r in rows.values():
        assert (r["kind"], r["status"]) == ("conv2d_pool", "ok")
        assert r["max_rel_err"] <= harness.AGREE_RTOL
    assert rows["lenet5.conv1 b64 +relu+max2x2/2", "backward"]["shape"]["input_grad"] is False
    conv2 = rows["lenet5.conv2 b64 +relu+max2x2/2", "backward"]
    assert conv2["shape"]["input_grad"] is True
    assert conv2["flops"] == pytest.approx(2 * 30_720_000)  # backward_data + backward_weight
    forward = rows["lenet5.conv1 b64 +relu+max2x2/2", "forward"]
    assert forward["flops"] == pytest.approx(15_052_800)  # the conv's
    assert forward["algorithm"] == "direct+pool"  # the forward by rows, pooled per image


def test_raising_case_is_an_error_row_and_never_timed():
    def boom():
        raise RuntimeError("kernel exploded")

    calls = []
    case = harness.Case("gemm", "broken", "gemm", boom, lambda: calls.append(1), "numpy",
                        flops=10.0, bytes=4.0)
    (r,) = harness.run_cases([case], reps=10,
                             peaks=harness.MachinePeaks(1, 100.0, 10.0))
    assert r.status == "error"
    assert "RuntimeError: kernel exploded" in r.note
    assert r.times_ms == r.peer_times_ms == []
    assert not calls  # the peer never ran either
    assert math.isnan(r.ms)
    assert r.speedup is None
    assert r.gflops is None


def test_wrong_kernel_is_a_mismatch(monkeypatch):
    real = fc._core.conv2d_forward

    def perturbed(*args, **kwargs):
        y = real(*args, **kwargs)
        y.flat[0] += 0.01 * float(np.max(np.abs(y)))  # 1 % of the max: above 1e-3
        return y

    monkeypatch.setattr(fc._core, "conv2d_forward", perturbed)
    payload = run_bench(filter=r"lenet5\.conv1 b1 ", reps=10, warmup=0, models_rows=False)
    by_dir = {r["direction"]: r for r in payload["results"]}
    assert by_dir["forward"]["status"] == "mismatch"
    assert "MISMATCH" in by_dir["forward"]["note"]
    assert by_dir["backward_data"]["status"] == "ok"
    assert main(["bench", "--filter", r"lenet5\.conv1 b1 forward"]) == 1


def test_without_torch_rows_show_ours_and_name_the_missing_peer(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    payload = run_bench(filter=r"lenet5\.conv1 b1 forward|sgemm 64 |lenet5 b1", reps=10,
                        warmup=0)
    jsonschema.validate(payload, BENCH_JSON_SCHEMA)
    assert payload["missing_peers"] == ["torch"]
    assert payload["environment"]["torch"] is None
    rows = {r["kind"]: r for r in payload["results"]}
    for kind in ("conv2d", "model"):
        assert rows[kind]["status"] == "peer-missing"
        assert rows[kind]["peer_ms"] is None
        assert rows[kind]["ms"] > 0
    assert rows["gemm"]["status"] == "ok"  # NumPy is always there
    assert main(["bench", "--filter", r"lenet5\.conv1 b1 forward"]) == 0
    out = capsys.readouterr().out
    assert "torch MISSING" in out
    assert "peers missing: torch" in out


def test_header_warns_when_openblas_threads_cannot_be_limited(monkeypatch, capsys):
    # without threadpoolctl the numpy rows run on every core: the header must say so
    assert main(["bench", "--filter", r"sgemm 64 "]) == 0
    assert "threadpoolctl is missing" not in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import -> ImportError
    assert main(["bench", "--filter", r"sgemm 64 "]) == 0
    assert "WARNING: threadpoolctl is missing" in capsys.readouterr().out


def test_cli_writes_json_and_plot(tmp_path, capsys):
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    assert main(["bench", "--filter", SMALL, "--threads", "1,2", "--json", str(out_json),
                 "--plot", str(out_png)]) == 0
    payload = json.loads(out_json.read_text())
    jsonschema.validate(payload, BENCH_JSON_SCHEMA)
    assert payload["settings"]["threads"] == [1, 2]
    assert {r["threads"] for r in payload["results"]} == {1, 2}
    assert [m["threads"] for m in payload["machine"]] == [1, 2]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "measured peak, 1 thread(s)" in text
    assert "sgemm 64" in text


@pytest.mark.parametrize("argv", [["--reps", "5"], ["--threads", "0"], ["--threads", "a"]])
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", *argv])
    assert e.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_cli_filter_without_match(capsys):
    assert main(["bench", "--filter", "no-such-case"]) == 2
    assert "no case matches" in capsys.readouterr().err


def test_after_run_reports_load_capped_calls():
    """A thread count's rows that load-aware threading ran on fewer threads say so."""
    capped = harness.MachinePeaks(2, 100.0, 10.0, fma_gflops_after=99.0, capped_calls=7)
    assert "7 kernel thread-count decisions ran on fewer threads than 2" in report.after_run(capped)
    free = harness.MachinePeaks(2, 100.0, 10.0, fma_gflops_after=99.0, capped_calls=0)
    assert "fewer threads" not in report.after_run(free)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_busy_core_rows_time_each_side_against_itself(tmp_path):
    threads_before = fc.get_num_threads()
    fc.set_num_threads(3)  # not the 2 the rows use: it must come back
    out_json = tmp_path / "busy.json"
    try:
        assert main(["bench", "--busy-core", "--filter", r"sgemm 64 |lenet5\.conv1 b1 forward",
                     "--json", str(out_json)]) == 0
        assert fc.get_num_threads() == 3
    finally:
        fc.set_num_threads(threads_before)
    payload = json.loads(out_json.read_text())
    jsonschema.validate(payload, BENCH_JSON_SCHEMA)
    assert payload["results"] == []
    assert payload["settings"]["busy_core"] is True
    rows = payload["busy_core"]
    assert {(r["name"], r["peer"]) for r in rows} == {("sgemm 64", "numpy"),
                                                      ("lenet5.conv1 b1", "torch")}
    for r in rows:
        assert r["threads"] == 2
        assert len(r["times_ms_1"]) == len(r["times_ms_n"]) == 10
        assert r["ms_1"] == pytest.approx(float(np.median(r["times_ms_1"])))
        assert r["ratio"] == pytest.approx(r["ms_n"] / r["ms_1"])
        assert r["peer_ratio"] == pytest.approx(r["peer_ms_n"] / r["peer_ms_1"])
        assert r["status"] == ("ok" if r["ratio"] <= busy.BOUND else "over")


def test_busy_core_error_row_and_plot_refused():
    def boom():
        raise RuntimeError("kernel failed")

    case = harness.Case("gemm", "boom", "gemm", boom, None, "numpy")
    row = busy.run_case(case, 2, reps=10, warmup=1)
    assert row["status"] == "error"
    assert "RuntimeError: kernel failed" in row["note"]
    assert row["ms_1"] is None
    assert main(["bench", "--busy-core", "--plot", "x.png"]) == 2
