"""``fastconv bench --busy-core``: each side's N-thread time against its own 1-thread time
while another process keeps one core busy.

Issue 6's bound: with one core held by another process, a 2-thread call takes at most 1.5x
its 1-thread time (torch's libgomp workers spin-wait on the shared core and collapse). A
Python busy loop pinned to the last CPU of this process's affinity mask plays the other
process; each case is then timed in alternated blocks, 1 thread and N threads, for ours and
for the peer.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import fastconv as fc
from fastconv.bench.harness import (
    BLOCK,
    SETTLE_S,
    WARM_S,
    Case,
    _summary,
    _time_once,
    _warm,
    try_import,
)

BOUND = 1.5  # issue 6: a 2-thread call under a busy core <= 1.5x its 1-thread time
SPIN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass\n"
# Kernels sample the load every 25 ms over >= 0.1 s (fc.thread_load): time to see the loop.
DETECT_S = 0.4


@contextlib.contextmanager
def busy_core():
    """A busy-loop process pinned to one CPU of our affinity mask, for the with-block.

    Yields the CPU it holds. Raises RuntimeError where that cannot be arranged (fewer than
    two CPUs, or no sched_setaffinity: not Linux)."""
    if not hasattr(os, "sched_getaffinity"):
        raise RuntimeError("--busy-core needs os.sched_setaffinity (Linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise RuntimeError(f"--busy-core needs two CPUs, this process may use {len(cpus)}")
    spin = subprocess.Popen([sys.executable, "-c", SPIN, str(cpus[-1])])
    threads = fc.get_num_threads()
    try:
        fc.set_num_threads(2)  # a kernel asking for 2+ threads samples the load
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < DETECT_S:
            fc.thread_load()
            time.sleep(0.01)
        fc.set_num_threads(threads)
        yield cpus[-1]
    finally:
        fc.set_num_threads(threads)
        spin.kill()
        spin.wait()


def _setter(side: str, peer_name: str):
    """A function n -> None setting the thread count of one side, or None if it cannot."""
    if side == "ours":
        return fc.set_num_threads
    if peer_name.startswith("torch"):
        torch = try_import("torch")
        return torch.set_num_threads if torch else None
    tp = try_import("threadpoolctl")  # numpy: OpenBLAS's threads
    return (lambda n: tp.threadpool_limits(limits=n, user_api="blas")) if tp else None


def run_case(c: Case, threads: int, reps: int, warmup: int) -> dict:
    """time_case's row, or an 'error' row (never timed) if a call raises."""
    try:
        return time_case(c, threads, reps, warmup)
    except Exception as e:  # noqa: BLE001 - a failing case is reported, not fatal
        return {"kind": c.kind, "name": c.name, "direction": c.direction, "threads": threads,
                "ms_1": None, "ms_n": None, "ratio": None, "peer": c.peer_name,
                "peer_ms_1": None, "peer_ms_n": None, "peer_ratio": None, "times_ms_1": [],
                "times_ms_n": [], "status": "error", "note": f"{type(e).__name__}: {e}"}


def time_case(c: Case, threads: int, reps: int, warmup: int) -> dict:
    """One row: each side's median ms at 1 and at `threads` threads and their ratio.

    Blocks of ``BLOCK`` timed calls after untimed ones, cycling ours at 1 thread, ours
    at `threads`, the peer at 1, the peer at `threads`, with ``SETTLE_S`` of sleep before
    each peer block and after it (its idle workers spin that long). Untimed calls: one, or
    ``WARM_S`` of them after a sleep (the cores' clock ramp, harness.time_alternating)."""
    sides = [("ours", c.ours)] + ([("peer", c.peer)] if c.peer is not None else [])
    configs = [(side, fn, n, _setter(side, c.peer_name)) for side, fn in sides
               for n in (1, threads)]
    configs = [cfg for cfg in configs if cfg[3] is not None]  # ours is always there
    samples: dict[tuple[str, int], list[float]] = {(s, n): [] for s, _, n, _ in configs}
    settle = SETTLE_S.get(c.peer_name, 0.15)
    try:
        for _side, fn, n, set_threads in configs:
            set_threads(n)
            for _ in range(max(warmup, 1)):
                fn()
        slept = False
        while len(samples[("ours", 1)]) < reps:
            for side, fn, n, set_threads in configs:
                set_threads(n)
                if side == "peer":
                    time.sleep(settle)
                    slept = True
                if slept:
                    _warm(fn, WARM_S)
                else:
                    fn()
                k = min(BLOCK, reps - len(samples[(side, n)]))
                samples[(side, n)].extend(_time_once(fn) for _ in range(k))
                slept = side == "peer"
                if slept:
                    time.sleep(settle)
    finally:
        for _side, _fn, _n, set_threads in configs:
            set_threads(threads)

    def med(side: str, n: int) -> float | None:
        xs = samples.get((side, n))
        return _summary(xs)[0] if xs else None

    row = {"kind": c.kind, "name": c.name, "direction": c.direction, "threads": threads,
           "ms_1": med("ours", 1), "ms_n": med("ours", threads), "peer": c.peer_name,
           "peer_ms_1": med("peer", 1), "peer_ms_n": med("peer", threads),
           "times_ms_1": samples[("ours", 1)], "times_ms_n": samples[("ours", threads)]}
    row["ratio"] = row["ms_n"] / row["ms_1"]
    row["peer_ratio"] = (row["peer_ms_n"] / row["peer_ms_1"]
                         if row["peer_ms_1"] and row["peer_ms_n"] else None)
    row["status"] = "ok" if row["ratio"] <= BOUND else "over"
    row["note"] = "" if row["status"] == "ok" else f"over the {BOUND}x bound"
    return row


_COLUMNS = (("case", 42, "<"), ("direction", 15, "<"), ("ms 1t", 9, ">"), ("ms Nt", 9, ">"),
            ("Nt/1t", 6, ">"), ("peer", 8, ">"), ("peer 1t", 9, ">"), ("peer Nt", 9, ">"),
            ("Nt/1t", 6, ">"), ("thr", 3, ">"))


def table_header() -> str:
    head = " ".join(f"{t:{a}{w}}" for t, w, a in _COLUMNS)
    return (f"one core held by a busy loop; each side at N threads over itself at 1 thread "
            f"(bound: ours <= {BOUND})\n{head}\n" + "-" * len(head))


def format_row(r: dict) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    cells = (r["name"], r["direction"], f(r["ms_1"], ".3f"), f(r["ms_n"], ".3f"),
             f(r["ratio"], ".2f"), r["peer"], f(r["peer_ms_1"], ".3f"), f(r["peer_ms_n"], ".3f"),
             f(r["peer_ratio"], ".2f"), str(r["threads"]))
    line = " ".join(f"{v:{a}{w}}" for v, (_, w, a) in zip(cells, _COLUMNS, strict=True))
    return line + ("" if r["status"] == "ok" else f"  {r['status'].upper()}: {r['note']}")
