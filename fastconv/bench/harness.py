"""Benchmark harness: build each case from a named shape, check ours against the peer, then
time both alternately.

Method (STYLE §8): fastconv and the peer get the same float32 inputs and the same thread
count; their outputs must agree (normwise relative error ≤ 1e-3) before anything is timed;
after ``warmup`` untimed rounds, ours and the peer are timed alternately, ``reps`` calls
each, so that noise on a shared host hits both alike. Reported: median, min, max and
quartiles of each side, GFLOP/s (pooling: GB/s), the share of the machine's measured peak,
and the speed-up ``peer ms / our ms``. Inputs stay resident between repetitions and every
timed call follows an untimed one of the same side (time_alternating): every figure is
"hot cache".

Peers are imported lazily: PyTorch CPU for convolution, pooling and whole models, NumPy
(OpenBLAS) for GEMM and Linear. Without torch the conv/pool/model rows still carry our
figures, with the peer reported missing.
"""

from __future__ import annotations

import contextlib
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

import fastconv as fc
from fastconv import kernels as K
from fastconv.bench import shapes as S

AGREE_RTOL = 1e-3  # float32 vs float32: both sides round; 1e-3 of the max is far above that


@dataclass
class Case:
    """One timed row: `ours()` and `peer()` compute the same result from the same inputs."""

    kind: str  # conv2d | max_pool2d | avg_pool2d | gemm | linear | model
    name: str
    direction: str
    ours: Callable[[], object]
    peer: Callable[[], object] | None
    peer_name: str  # 'torch' | 'torch-cl' (torch, channels_last model rows) | 'numpy'
    flops: float = 0.0
    bytes: float = 0.0
    algorithm: str = ""
    shape: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # Workspace bound per thread (conv rows: one image's im2col matrix), or 0 for none.
    workspace_bound_per_thread: float = 0.0


@dataclass
class Result:
    """Every figure of one row; ``dataclasses.asdict`` of it is one entry of the JSON."""

    kind: str
    name: str
    direction: str
    shape: dict
    aliases: list
    threads: int
    isa: str
    algorithm: str
    flops: float
    bytes: float
    arithmetic_intensity: float | None
    ms: float
    ms_min: float
    ms_max: float
    ms_q1: float
    ms_q3: float
    gflops: float | None
    gbps: float | None
    pct_peak: float | None
    peer: str
    peer_ms: float | None
    peer_ms_min: float | None
    peer_ms_max: float | None
    peer_gflops: float | None
    speedup: float | None
    max_rel_err: float | None
    status: str  # ok | mismatch | peer-missing | error
    note: str
    times_ms: list
    peer_times_ms: list
    # Scratch memory one call of ours needed at once (fastconv._core.workspace_stats), and
    # the bound it is held to (threads x one image's im2col; conv rows only).
    workspace_bytes: int | None
    workspace_bound_bytes: int | None


@dataclass
class MachinePeaks:
    """Measured denominators for '% of peak' at one thread count."""

    threads: int
    fma_gflops: float
    copy_gbps: float
    # The FMA probe again once this thread count's rows are done: a drop means another
    # process took a core during the run, and the rows' figures are suspect.
    fma_gflops_after: float | None = None
    # Kernel thread-count decisions during this thread count's rows that load-aware
    # threading (fc.thread_load) cut below the request: another process held a core.
    capped_calls: int | None = None


# ---- peers, threads, timing ---------------------------------------------------------------

def try_import(name: str):
    """The module, or None if it is not installed (peers are optional)."""
    try:
        return __import__(name)
    except ImportError:
        return None


@contextlib.contextmanager
def same_threads(threads: int):
    """Run fastconv, torch and OpenBLAS with `threads` threads, restoring them afterwards."""
    old_fc = fc.get_num_threads()
    fc.set_num_threads(threads)
    torch = try_import("torch")
    old_torch = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    limiter = None
    tp = try_import("threadpoolctl")
    if tp:
        limiter = tp.threadpool_limits(limits=threads, user_api="blas")
    try:
        yield
    finally:
        fc.set_num_threads(old_fc)
        if torch:
            torch.set_num_threads(old_torch)
        if limiter is not None:
            limiter.restore_original_limits()


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


# How long each library's idle worker threads keep spinning after a call, measured here
# (CPU time burned while the caller sleeps): OpenBLAS ~100 ms, libgomp (ours and torch's)
# ~10 ms. With several threads a spinning pool steals a core from the other side's next
# call (a 256³ sgemm: 0.19 ms alone, 4-15 ms right after NumPy), so multi-threaded timing
# waits this long between the two sides.
SETTLE_S = {"numpy": 0.15, "torch": 0.03, "torch-cl": 0.03}
BLOCK = 5  # timed calls per block when multi-threaded
# The sleep has its own cost: the cores come back from it slow and take 5-10 ms of work to
# reach their steady speed again (clock ramp; measured here on CifarNet b1 inference at 2
# threads, the k-th call after 30 ms of sleep: 0.68, 0.28, 0.27, 0.25, 0.24 ... 0.19 ms,
# against 0.15-0.16 in a busy loop). A single untimed call is not enough when a call takes
# well under a millisecond: the timed calls of the faster side would land on the ramp, the
# slower side's mostly after it. So after a sleep each side runs untimed calls for WARM_S
# (at least one) before its block: with 10 ms, the block's calls were 0.155-0.159 ms.
WARM_S = 0.010


def _warm(fn, seconds: float) -> None:
    """Untimed calls of `fn`: at least one, and more until `seconds` have passed."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def time_alternating(ours, peer, reps: int, warmup: int, threads: int = 1,
                     peer_name: str = "torch") -> tuple[list[float], list[float]]:
    """Samples in ms of `reps` calls of each side, alternating ours and the peer.

    Blocks of timed calls, ours and peer blocks alternating, each block after one untimed
    call of the same side, so that every timed call finds its code, data and branch
    history in cache (hot cache): right after the other library's call, a LeNet-5 batch-1
    inference took 79 us instead of 55 and torch's 229 us instead of 199. `warmup` counts
    the untimed calls before the first block, that block's own included.

    One thread: blocks of one timed call, which spreads a noisy neighbour over both sides.
    Several threads: blocks of ``BLOCK`` timed calls, with ``SETTLE_S[peer_name]`` of sleep
    before each block so the other side's spinning workers are idle again, and the block's
    untimed calls repeated for ``WARM_S`` after that sleep (the cores' clock ramp). No peer:
    one block of `reps` calls.
    """
    t_ours: list[float] = []
    t_peer: list[float] = []
    sides = ((ours, t_ours),) if peer is None else ((ours, t_ours), (peer, t_peer))
    for _ in range(max(warmup - 1, 0)):
        for fn, _samples in sides:
            fn()
    block, settle = 1, 0.0
    if peer is None:
        block = reps
    elif threads > 1:
        block, settle = BLOCK, SETTLE_S.get(peer_name, 0.15)
    while len(t_ours) < reps:
        n = min(block, reps - len(t_ours))
        for fn, samples in sides:
            if settle:
                time.sleep(settle)
                _warm(fn, WARM_S)
            else:
                fn()
            samples.extend(_time_once(fn) for _ in range(n))
    return t_ours, t_peer


def measure_peaks(threads: int, tries: int = 5) -> MachinePeaks:
    """Best of `tries` runs of the extension's FMA-throughput probe and of its copy probe.

    The FMA probe runs each thread's independent FMA chains for about 0.1 s at the active
    ISA's vector width; the copy probe moves a 64 MiB buffer (far above L2/L3 per core)."""
    copy = max(fc._core.probe_copy_bandwidth(threads, 64 << 20)["gbps"] for _ in range(tries))
    return MachinePeaks(threads, fma_peak(threads, tries), copy)


def fma_peak(threads: int, tries: int = 5) -> float:
    """GFLOP/s: best of `tries` runs of the FMA probe (about 0.1 s each)."""
    return max(fc._core.probe_fma_peak(threads, 4_000_000)["gflops"] for _ in range(tries))


def rel_err(ours, ref) -> float:
    """Normwise relative error max|ours − ref| / max|ref| (inf if shapes differ or NaN)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return math.inf
    if ref.size == 0:
        return 0.0
    err = float(np.max(np.abs(ours - ref)))
    return err / max(float(np.max(np.abs(ref))), 1e-30) if not math.isnan(err) else math.inf


def _to_numpy(out):
    if isinstance(out, tuple):
        out = out[0]
    if hasattr(out, "detach"):  # torch.Tensor
        out = out.detach().numpy()
    return np.asarray(out)


# ---- cases from shapes ----------------------------------------------------------------------

_CONV_ALGO = {  # the driver's choice, and what it means in each direction
    "im2col": {"forward": "im2col+gemm", "backward_data": "gemm+col2im",
               "backward_weight": "im2col+gemm"},
    "direct_1x1": {"forward": "gemm_1x1", "backward_data": "gemm_1x1",
                   "backward_weight": "gemm_1x1"},
    "direct": {"forward": "direct", "backward_data": "direct", "backward_weight": "direct-corr"},
    "winograd": {"forward": "winograd F(2x2,3x3)", "backward_data": "flip+winograd",
                 "backward_weight": "winograd wgrad"},
    "winograd4": {"forward": "winograd F(4x4,3x3)", "backward_data": "flip+winograd F(4x4)",
                  "backward_weight": "winograd wgrad"},
}


def conv_case(layer: S.ConvShape, direction: str, rng, torch) -> Case:
    """Forward, backward_data or backward_weight (+ bias) of one Conv2d layer."""
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32) * 0.1
    b = rng.standard_normal(layer.k, dtype=np.float32)
    dy = rng.standard_normal(layer.y_shape, dtype=np.float32)
    kw = {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation,
          "groups": layer.groups}
    ours = {
        "forward": lambda: K.conv2d(x, w, b, **kw),
        "backward_data": lambda: K.conv2d_backward_data(dy, w, layer.x_shape, **kw),
        "backward_weight": lambda: K.conv2d_backward_weight(dy, x, layer.w_shape, **kw,
                                                            with_bias=True)[0],
    }[direction]
    peer = None
    if torch is not None:
        tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x, w, b, dy))
        s, p, d = [layer.stride] * 2, [layer.padding] * 2, [layer.dilation] * 2

        def t_bwd(mask):
            return torch.ops.aten.convolution_backward(tdy, tx, tw, [layer.k], s, p, d, False,
                                                       [0, 0], layer.groups, mask)

        peer = {
            "forward": lambda: torch.nn.functional.conv2d(tx, tw, tb, **kw),
            "backward_data": lambda: t_bwd([True, False, False])[0],
            "backward_weight": lambda: t_bwd([False, True, True])[1],
        }[direction]
    hyper = ((layer.stride,) * 2, (layer.padding,) * 4, (layer.dilation,) * 2, layer.groups)
    algo = fc._core.conv2d_choose_algorithm(x, w, *hyper, direction)
    label = _CONV_ALGO.get(algo, {}).get(direction, algo)
    if (algo == "im2col" and direction == "backward_data"
            and fc._core.conv2d_backward_data_as_forward(x, w, *hyper)):
        label = "flip+im2col"  # the forward of dy with flipped weights, no col2im
    if (algo == "direct" and direction == "backward_data"
            and fc._core.conv2d_backward_data_by_rows(x, w, *hyper)):
        label = "flip+direct"  # the forward by rows of dy with flipped weights
    return Case(layer.kind, layer.name, direction, ours, peer, "torch",
                flops=layer.flops(direction), bytes=layer.bytes(direction),
                algorithm=label, shape=layer.describe(),
                aliases=layer.aliases, workspace_bound_per_thread=layer.im2col_bytes())


def conv_pool_case(layer: S.ConvShape, first: bool, direction: str, rng, torch) -> Case:
    """A conv -> ReLU -> 2x2/2 max-pool block as training runs it. Forward: ours is one
    kernel call that pools the conv output where it is computed and applies the ReLU to the
    pooled values (``_core.conv2d_max_pool2d_forward``, what nn.Sequential runs); torch
    runs conv2d, relu, max_pool2d with indices. Backward, from the pooled gradient: ours
    takes dW and db from the pooled argmaxes
    (``_core.conv2d_backward_weight_pooled``) and, unless the conv is its net's first
    layer, dX from the scattered gradient; torch scatters (max-pool backward), then runs
    ``convolution_backward``. Both get the same pooled gradient, already masked by the
    ReLU."""
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32) * 0.1
    b = rng.standard_normal(layer.w_shape[0], dtype=np.float32) * 0.1
    hyper = ((layer.stride,) * 2, (layer.padding,) * 4, (layer.dilation,) * 2, layer.groups)
    pool = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    y = fc._core.conv2d_forward(x, w, None, *hyper)
    r = np.maximum(y, 0)
    pooled, idx = K.max_pool2d(r, 2, 2, 0)
    shape = {**layer.describe(), "pool": {"kernel": 2, "stride": 2, "y": list(pooled.shape),
                                          "y_conv": list(y.shape)},
             "input_grad": not first}
    name = f"{layer.name} +relu+max2x2/2"
    if direction == "forward":
        def ours():
            return fc._core.conv2d_max_pool2d_forward(x, w, b, *hyper, *pool, relu=True)[0]

        peer = None
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(v) for v in (x, w, b))
            kw = {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation,
                  "groups": layer.groups}

            def peer():
                t = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, **kw))
                return torch.nn.functional.max_pool2d(t, 2, 2, return_indices=True)[0]

        algo = fc._core.conv2d_choose_algorithm(x, w, *hyper, "forward")
        return Case("conv2d_pool", name, "forward", ours, peer, "torch",
                    flops=layer.flops("forward"), bytes=layer.bytes("forward"),
                    algorithm=_CONV_ALGO.get(algo, {}).get("forward", algo) + "+pool",
                    shape=shape)
    g = np.where(pooled > 0, rng.standard_normal(pooled.shape, dtype=np.float32), 0)
    g = g.astype(np.float32)

    def ours():
        dw, _ = fc._core.conv2d_backward_weight_pooled(g, idx, x, (layer.r, layer.s), *hyper)
        if not first:
            dy = K.max_pool2d_backward(g, idx, y.shape)
            fc._core.conv2d_backward_data(dy, w, layer.x_shape, *hyper)
        return dw

    peer = None
    if torch is not None:
        tx, tw, tr, tg = (torch.from_numpy(v) for v in (x, w, r, g))
        tidx = torch.from_numpy(idx)
        s, p, d = [layer.stride] * 2, [layer.padding] * 2, [layer.dilation] * 2
        aten = torch.ops.aten

        def peer():
            dy = aten.max_pool2d_with_indices_backward(tg, tr, [2, 2], [2, 2], [0, 0], [1, 1],
                                                       False, tidx)
            return aten.convolution_backward(dy, tx, tw, [layer.k], s, p, d, False, [0, 0],
                                             layer.groups, [not first, True, True])[1]

    flops = layer.flops() * (1.0 if first else 2.0)  # the dense backward's work
    words = layer.bytes("backward_weight") + (0.0 if first else layer.bytes("backward_data"))
    return Case("conv2d_pool", name, "backward", ours, peer, "torch", flops=flops, bytes=words,
                algorithm="pooled dW" if first else "pooled dW+dX", shape=shape)


def pool_case(layer: S.PoolShape, direction: str, rng, torch) -> Case:
    """Max- or avg-pool forward or backward on one feature map."""
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    dy = rng.standard_normal(layer.y_shape, dtype=np.float32)
    k, s, p = layer.kernel, layer.stride, layer.padding
    if layer.op == "max_pool2d":
        _, idx = K.max_pool2d(x, k, s, p)
        ours = {"forward": lambda: K.max_pool2d(x, k, s, p),
                "backward": lambda: K.max_pool2d_backward(dy, idx, layer.x_shape)}[direction]
    else:
        ours = {"forward": lambda: K.avg_pool2d(x, k, s, p),
                "backward": lambda: K.avg_pool2d_backward(dy, layer.x_shape, k, s, p)}[direction]
    peer = None
    if torch is not None:
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        aten = torch.ops.aten
        if layer.op == "max_pool2d":
            tidx = torch.from_numpy(idx)
            peer = {
                "forward": lambda: torch.nn.functional.max_pool2d(tx, k, s, p,
                                                                  return_indices=True),
                "backward": lambda: aten.max_pool2d_with_indices_backward(
                    tdy, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx),
            }[direction]
        else:
            peer = {
                "forward": lambda: torch.nn.functional.avg_pool2d(tx, k, s, p),
                "backward": lambda: aten.avg_pool2d_backward(tdy, tx, [k, k], [s, s], [p, p],
                                                             False, True, None),
            }[direction]
    return Case(layer.kind, layer.name, direction, ours, peer, "torch",
                bytes=layer.bytes(direction), algorithm="direct", shape=layer.describe(),
                aliases=layer.aliases)


def gemm_case(layer: S.GemmShape, direction: str, rng) -> Case:
    """A GEMM square, or one of a Linear layer's three GEMMs, against NumPy's matmul."""
    m, n, k = layer.gemm_mnk(direction)
    if direction in ("gemm", "backward_data"):  # C = A @ B
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ours, peer = (lambda: fc.gemm(a, b)), (lambda: a @ b)
    elif direction == "forward":  # y = x @ W^T, W stored (out, in)
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k), dtype=np.float32)
        ours, peer = (lambda: fc.gemm(a, b, trans_b=True)), (lambda: a @ b.T)
    else:  # backward_weight: dW = dy^T @ x, dy stored (batch, out)
        a = rng.standard_normal((k, m), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ours, peer = (lambda: fc.gemm(a, b, trans_a=True)), (lambda: a.T @ b)
    small = m <= fc.backend_info()["gemm_small_m_max"]
    return Case(layer.kind, layer.name, direction, ours, peer, "numpy",
                flops=layer.flops(direction), bytes=layer.bytes(direction),
                algorithm="small-m" if small else "packed-gemm", shape={**layer.describe(), "gemm_mnk": [m, n, k]},
                aliases=layer.aliases)


# (net, batch, mode, peer): peer "torch" runs torch's twin in NCHW, "torch-cl" the same twin
# converted to channels_last (NHWC, oneDNN's preferred layout on CPU), the second
# bar for training steps. fastconv itself is always NCHW.
MODEL_ROWS = (("lenet5", 64, "train_step", "torch"), ("lenet5", 64, "inference", "torch"),
              ("lenet5", 1, "inference", "torch"), ("cifarnet", 64, "train_step", "torch"),
              ("cifarnet", 64, "inference", "torch"), ("cifarnet", 1, "inference", "torch"),
              ("lenet5", 64, "train_step", "torch-cl"),
              ("cifarnet", 64, "train_step", "torch-cl"))


def model_case(net: str, batch: int, mode: str, rng, torch, peer_name: str = "torch") -> Case:
    """A whole network: a training step (forward, cross-entropy, backward, SGD with momentum
    0.9 at lr 0.01) or inference (eval mode, no autograd), on torch's twin with the same
    weights as the peer: in NCHW (`peer_name` "torch") or with the twin's parameters and
    the input in channels_last memory format ("torch-cl")."""
    from fastconv import functional as F
    from fastconv import models

    spec = models.MODELS[net]
    model = models.get_model(net)
    x = rng.standard_normal((batch, *spec.input_shape), dtype=np.float32)
    y = rng.integers(0, spec.num_classes, size=batch).astype(np.int64)
    peer = None
    if torch is not None:
        tmodel = models.architecture(net, torch.nn, torch.nn.functional)
        model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
        tx = torch.from_numpy(x)
        if peer_name == "torch-cl":  # 4-D parameters and the input; torch's flatten copies
            tmodel = tmodel.to(memory_format=torch.channels_last)
            tx = tx.contiguous(memory_format=torch.channels_last)
        peer = _model_step(tmodel, tx, torch.from_numpy(y), mode, torch.optim.SGD,
                           torch.nn.functional.cross_entropy, torch.no_grad)
    ours = _model_step(model, fc.tensor(x), fc.tensor(y), mode, fc.optim.SGD,
                       F.cross_entropy, fc.no_grad)
    layers = S.network(net, batch)
    flops = layers.forward_flops() * (3.0 if mode == "train_step" else 1.0)
    shape = {"input": [batch, *spec.input_shape],
             "peer_memory_format": "channels_last" if peer_name == "torch-cl" else "nchw"}
    return Case("model", f"{net} b{batch}", mode, ours, peer, peer_name, flops=flops,
                algorithm="model", shape=shape)


def _model_step(model, x, y, mode: str, sgd, cross_entropy, no_grad):
    """The same step for torch and fastconv (both APIs agree): returns the loss or logits."""
    if mode == "inference":
        model.eval()

        def infer():
            with no_grad():
                return model(x)

        return infer
    model.train()
    opt = sgd(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


# ---- selection and running -------------------------------------------------------------------

def _matches(pattern: re.Pattern | None, *texts: str) -> bool:
    return pattern is None or any(pattern.search(t) for t in texts)


def select_cases(quick: bool = False, filter: str | None = None, seed: int = 0,
                 models_rows: bool = True) -> Iterable[Case]:
    """Yield the cases of the shape tables (built lazily: one case's inputs live at a time).

    `filter` is a case-insensitive regular expression searched in "kind name direction" and
    in each alias; `quick` keeps the layers marked quick and the batch-64 model rows.
    """
    pattern = re.compile(filter, re.IGNORECASE) if filter else None
    torch = try_import("torch")
    rng = np.random.default_rng(seed)
    for layer in S.all_layers():
        if quick and not layer.quick:
            continue
        for direction in layer.directions:
            names = (layer.name, *layer.aliases)
            if not _matches(pattern, *(f"{layer.kind} {n} {direction}" for n in names)):
                continue
            if isinstance(layer, S.ConvShape):
                yield conv_case(layer, direction, rng, torch)
            elif isinstance(layer, S.PoolShape):
                yield pool_case(layer, direction, rng, torch)
            else:
                yield gemm_case(layer, direction, rng)
    for layer, first in S.conv_pool_blocks():
        if quick and not layer.name.startswith("lenet5"):
            continue
        for direction in ("forward", "backward"):
            if _matches(pattern, f"conv2d_pool {layer.name} +relu+max2x2/2 {direction}"):
                yield conv_pool_case(layer, first, direction, rng, torch)
    if not models_rows:
        return
    for net, batch, mode, peer_name in MODEL_ROWS:
        if quick and net != "lenet5":
            continue
        fmt = " channels_last" if peer_name == "torch-cl" else ""
        if _matches(pattern, f"model {net} b{batch} {mode}{fmt}"):
            yield model_case(net, batch, mode, rng, torch, peer_name)


def _summary(xs: list[float]) -> tuple[float, float, float, float, float]:
    """(median, min, max, first quartile, third quartile); all NaN for no samples."""
    if not xs:
        return (math.nan,) * 5
    q1, q3 = statistics.quantiles(xs, n=4)[::2] if len(xs) > 1 else (xs[0], xs[0])
    return statistics.median(xs), min(xs), max(xs), q1, q3


def run_case(c: Case, threads: int, peaks: MachinePeaks, reps: int, warmup: int) -> Result:
    """Check agreement, then time `c` alternately; returns the row. A case whose own call
    raises is an 'error' row, never timed."""
    err, status, note = None, "ok", ""
    t_ours: list[float] = []
    t_peer: list[float] = []
    workspace = None
    try:
        fc._core.workspace_stats(reset=True)
        out = _to_numpy(c.ours())
        workspace = int(fc._core.workspace_stats(reset=True)["call_bytes"])
    except Exception as e:  # noqa: BLE001 - a failing case is reported, not fatal
        status, note = "error", f"{type(e).__name__}: {e}"
    else:
        if c.peer is not None:
            err = rel_err(out, _to_numpy(c.peer()))
            if not err <= AGREE_RTOL:
                status, note = "mismatch", f"MISMATCH: rel err {err:.1e} > {AGREE_RTOL:g}"
        else:
            status, note = "peer-missing", f"peer {c.peer_name} not installed"
        t_ours, t_peer = time_alternating(c.ours, c.peer, reps, warmup, threads, c.peer_name)
    med, lo, hi, q1, q3 = _summary(t_ours)
    peer_med, peer_lo, peer_hi, _, _ = _summary(t_peer)
    timed = bool(t_ours)
    peer_timed = bool(t_peer)
    gflops = c.flops / med / 1e6 if (timed and c.flops) else None
    gbps = c.bytes / med / 1e6 if (timed and c.bytes and not c.flops) else None
    pct = (100.0 * gflops / peaks.fma_gflops if gflops else
           100.0 * gbps / peaks.copy_gbps if gbps else None)
    return Result(
        kind=c.kind, name=c.name, direction=c.direction, shape=c.shape, aliases=list(c.aliases),
        threads=threads, isa=fc.backend_info()["isa"], algorithm=c.algorithm, flops=c.flops,
        bytes=c.bytes,
        arithmetic_intensity=c.flops / c.bytes if (timed and c.flops and c.bytes) else None,
        ms=med, ms_min=lo, ms_max=hi, ms_q1=q1, ms_q3=q3,
        gflops=gflops, gbps=gbps, pct_peak=pct, peer=c.peer_name,
        peer_ms=peer_med if peer_timed else None, peer_ms_min=peer_lo if peer_timed else None,
        peer_ms_max=peer_hi if peer_timed else None,
        peer_gflops=c.flops / peer_med / 1e6 if (c.flops and peer_timed) else None,
        speedup=peer_med / med if peer_timed else None, max_rel_err=err, status=status,
        note=note, times_ms=t_ours, peer_times_ms=t_peer, workspace_bytes=workspace,
        workspace_bound_bytes=(int(threads * c.workspace_bound_per_thread)
                               if c.workspace_bound_per_thread else None))


def run_cases(cases: Iterable[Case], threads: int = 1, reps: int = 10, warmup: int = 2,
              peaks: MachinePeaks | None = None,
              on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Time every case with `threads` threads on both sides; `on_result` sees each row as
    soon as it is measured (the CLI prints rows as they come)."""
    if reps < 1:
        raise ValueError(f"run_cases: reps must be >= 1, got {reps}")
    results = []
    with same_threads(threads):
        peaks = peaks or measure_peaks(threads)
        for c in cases:
            r = run_case(c, threads, peaks, reps, warmup)
            results.append(r)
            if on_result:
                on_result(r)
    return results


# ---- the table ---------------------------------------------------------------------------------

_COLUMNS = (("case", 42, "<"), ("direction", 15, "<"), ("ms", 9, ">"), ("(min-max)", 17, ">"),
            ("GFLOP/s", 9, ">"), ("%peak", 6, ">"), ("peer", 8, ">"), ("peer ms", 9, ">"),
            ("peer/ours", 9, ">"), ("isa", 6, ">"), ("algorithm", 12, ">"), ("thr", 3, ">"))


def table_header() -> str:
    head = " ".join(f"{t:{a}{w}}" for t, w, a in _COLUMNS)
    return head + "\n" + "-" * len(head)


def format_row(r: Result) -> str:
    """One fixed-width line; pooling rows show GB/s (marked 'GB') in the GFLOP/s column and
    their share of the copy bandwidth in %peak."""
    def f(v, spec, suffix=""):
        return "-" if v is None or math.isnan(v) else f"{v:{spec}}{suffix}"

    rate = f(r.gflops, ".1f") if r.gflops else f(r.gbps, ".2f", " GB")
    cells = (r.name, r.direction, f(r.ms, ".3f"), f"({r.ms_min:.3f}-{r.ms_max:.3f})"
             if r.times_ms else "-", rate, f(r.pct_peak, ".0f"), r.peer, f(r.peer_ms, ".3f"),
             f(r.speedup, ".2f", "x"), r.isa, r.algorithm, str(r.threads))
    line = " ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, _COLUMNS))
    return line + (f"  {r.note}" if r.note else "")


def format_table(results: list[Result]) -> str:
    return "\n".join([table_header(), *(format_row(r) for r in results)])
