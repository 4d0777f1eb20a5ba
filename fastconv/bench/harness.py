"""Benchmark harness: named cases, alternating timing, agreement check, table output.

The peers (torch, threadpoolctl for OpenBLAS's thread count) are imported lazily; without
torch the conv/pool rows still print our figures and name the missing peer.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import fastconv as fc
from fastconv import kernels as K


@dataclass
class Case:
    """One benchmark: `ours()` and `peer()` compute the same thing; `flops` or `bytes` sizes it."""

    name: str
    direction: str
    ours: Callable[[], object]
    peer: Callable[[], object] | None
    peer_name: str
    flops: float = 0.0
    bytes: float = 0.0
    algorithm: str = ""
    check: Callable[[object, object], float] | None = None  # returns max relative error


@dataclass
class Result:
    name: str
    direction: str
    ms: float
    ms_min: float
    ms_max: float
    peer_ms: float | None
    peer_name: str
    gflops: float | None
    gbps: float | None
    speedup: float | None
    max_rel_err: float | None
    algorithm: str
    threads: int
    isa: str
    note: str = ""
    times_ms: list = field(default_factory=list)
    peer_times_ms: list = field(default_factory=list)


def _rel_err(ours, ref) -> float:
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-30)
    return float(np.max(np.abs(ours - ref))) / scale if ref.size else 0.0


def _to_numpy(out):
    if isinstance(out, tuple):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().numpy()
    return np.asarray(out)


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def time_alternating(ours, peer, reps: int, warmup: int) -> tuple[list[float], list[float]]:
    """Median-ready samples (ms): warm-up both, then `reps` rounds of ours-then-peer."""
    for _ in range(warmup):
        ours()
        if peer is not None:
            peer()
    t_ours, t_peer = [], []
    for _ in range(reps):
        t_ours.append(_time_once(ours))
        if peer is not None:
            t_peer.append(_time_once(peer))
    return t_ours, t_peer


@contextlib.contextmanager
def same_threads(threads: int):
    """Run fastconv, torch and OpenBLAS with `threads` threads, restoring them afterwards."""
    old_fc = fc.get_num_threads()
    fc.set_num_threads(threads)
    torch = _try_import("torch")
    old_torch = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    limiter = None
    tp = _try_import("threadpoolctl")
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


def _try_import(name):
    try:
        return __import__(name)
    except ImportError:
        return None


# ---- cases -------------------------------------------------------------------------------

def gemm_case(n: int, rng) -> Case:
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return Case(f"sgemm {n}x{n}x{n}", "gemm", lambda: fc.gemm(a, b), lambda: a @ b, "numpy",
                flops=2.0 * n**3, algorithm="packed-gemm")


def conv_cases(name: str, x_shape, w_shape, stride, padding, rng, torch) -> list[Case]:
    """Forward, backward_data and backward_weight of one conv layer (float32)."""
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    y_shape = K.conv2d_output_shape(x_shape, w_shape, stride, padding)
    dy = rng.standard_normal(y_shape, dtype=np.float32)
    n, k, oh, ow = y_shape
    flops = 2.0 * n * k * w_shape[1] * w_shape[2] * w_shape[3] * oh * ow
    algo = fc._core.conv2d_choose_algorithm(x, w, (stride, stride),
                                            (padding, padding, padding, padding), (1, 1), 1)
    peers = {"forward": None, "backward_data": None, "backward_weight": None}
    if torch is not None:
        tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x, w, b, dy))
        aten = torch.ops.aten

        def t_bwd(mask):
            return aten.convolution_backward(tdy, tx, tw, [k], [stride] * 2, [padding] * 2,
                                             [1, 1], False, [0, 0], 1, mask)

        peers = {
            "forward": lambda: torch.nn.functional.conv2d(tx, tw, tb, stride, padding),
            "backward_data": lambda: t_bwd([True, False, False])[0],
            "backward_weight": lambda: t_bwd([False, True, True])[1],
        }
    ours = {
        "forward": lambda: K.conv2d(x, w, b, stride, padding),
        "backward_data": lambda: K.conv2d_backward_data(dy, w, x_shape, stride, padding),
        "backward_weight": lambda: (K.conv2d_backward_weight(dy, x, w_shape, stride, padding),
                                    K.conv2d_backward_bias(dy))[0],
    }
    return [Case(name, d, ours[d], peers[d], "torch", flops=flops, algorithm=algo)
            for d in ("forward", "backward_data", "backward_weight")]


def pool_cases(name: str, x_shape, k: int, s: int, p: int, rng, torch) -> list[Case]:
    x = rng.standard_normal(x_shape, dtype=np.float32)
    y, idx = K.max_pool2d(x, k, s, p)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    moved = 4.0 * (x.size + y.size) + 8.0 * y.size  # read x, write y and int64 indices
    moved_bwd = 4.0 * (x.size + dy.size) + 8.0 * dy.size
    peer_f = peer_b = None
    if torch is not None:
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        tidx = torch.from_numpy(idx)
        peer_f = lambda: torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
        peer_b = lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            tdy, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx)
    return [
        Case(name, "max_pool fwd", lambda: K.max_pool2d(x, k, s, p), peer_f, "torch",
             bytes=moved, algorithm="direct"),
        Case(name, "max_pool bwd", lambda: K.max_pool2d_backward(dy, idx, x_shape), peer_b,
             "torch", bytes=moved_bwd, algorithm="direct"),
    ]


def default_cases(quick: bool = False, seed: int = 0) -> list[Case]:
    """GEMM squares vs NumPy; LeNet-5 conv/pool layers at batch 64 and ResNet-18 3x3 vs torch."""
    rng = np.random.default_rng(seed)
    torch = _try_import("torch")
    sizes = (256, 512, 1024) if quick else (256, 512, 1024, 2048)
    cases = [gemm_case(n, rng) for n in sizes]
    cases += conv_cases("lenet5.conv1 b64", (64, 1, 32, 32), (6, 1, 5, 5), 1, 0, rng, torch)
    cases += conv_cases("lenet5.conv2 b64", (64, 6, 14, 14), (16, 6, 5, 5), 1, 0, rng, torch)
    cases += conv_cases("resnet18.conv3x3 56x56x64 b1", (1, 64, 56, 56), (64, 64, 3, 3), 1, 1,
                        rng, torch)
    if not quick:
        cases += conv_cases("resnet18.conv3x3 14x14x256 b8", (8, 256, 14, 14), (256, 256, 3, 3),
                            1, 1, rng, torch)
    cases += pool_cases("lenet5.pool1 b64", (64, 6, 28, 28), 2, 2, 0, rng, torch)
    cases += pool_cases("lenet5.pool2 b64", (64, 16, 10, 10), 2, 2, 0, rng, torch)
    return cases


def run_cases(cases: list[Case], threads: int = 1, reps: int = 10, warmup: int = 2) -> list[Result]:
    """Time every case (alternating ours/peer) with `threads` threads on both sides."""
    results = []
    isa = fc.backend_info()["isa"]
    with same_threads(threads):
        for c in cases:
            err = None
            note = ""
            if c.peer is not None:
                err = _rel_err(_to_numpy(c.ours()), _to_numpy(c.peer()))
                if err > 1e-3:
                    note = f"MISMATCH rel err {err:.1e}"
            else:
                note = f"peer {c.peer_name} missing"
            t_ours, t_peer = time_alternating(c.ours, c.peer, reps, warmup)
            med = statistics.median(t_ours)
            peer_med = statistics.median(t_peer) if t_peer else None
            results.append(Result(
                name=c.name, direction=c.direction, ms=med, ms_min=min(t_ours),
                ms_max=max(t_ours), peer_ms=peer_med, peer_name=c.peer_name,
                gflops=c.flops / med / 1e6 if c.flops else None,
                gbps=c.bytes / med / 1e6 if c.bytes else None,
                speedup=peer_med / med if peer_med else None, max_rel_err=err,
                algorithm=c.algorithm, threads=threads, isa=isa, note=note,
                times_ms=t_ours, peer_times_ms=t_peer))
    return results


def format_table(results: list[Result]) -> str:
    """A fixed-width table: case, direction, ms (min–max), GFLOP/s or GB/s, peer ms, ratio."""
    head = (f"{'case':32s} {'direction':16s} {'ms':>9s} {'(min-max)':>17s} {'GFLOP/s|GB/s':>12s} "
            f"{'peer':>6s} {'peer ms':>9s} {'peer/ours':>9s} {'algorithm':>11s} {'isa':>6s} {'thr':>3s}")
    lines = [head, "-" * len(head)]
    for r in results:
        rate = f"{r.gflops:9.1f} GF" if r.gflops else (f"{r.gbps:9.2f} GB" if r.gbps else "")
        peer_ms = f"{r.peer_ms:9.3f}" if r.peer_ms is not None else f"{'-':>9s}"
        ratio = f"{r.speedup:8.2f}x" if r.speedup is not None else f"{'-':>9s}"
        spread = f"({r.ms_min:.3f}-{r.ms_max:.3f})"
        lines.append(f"{r.name:32s} {r.direction:16s} {r.ms:9.3f} {spread:>17s} {rate:>12s} "
                     f"{r.peer_name:>6s} {peer_ms} {ratio} {r.algorithm:>11s} {r.isa:>6s} "
                     f"{r.threads:3d}" + (f"  {r.note}" if r.note else ""))
    return "\n".join(lines)
