"""What `fastconv bench` writes: the header, the JSON document and its schema, the plot.

The JSON layout is :data:`BENCH_JSON_SCHEMA` (JSON Schema draft 2020-12), documented field
by field in ``docs/bench.md``; ``schema`` names its version, bumped on any incompatible
change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

import fastconv as fc
from fastconv.bench.harness import MachinePeaks, Result, try_import

SCHEMA_ID = "fastconv-bench/4"

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR = {"type": "string"}
_SAMPLES = {"type": "array", "items": _NUM}

RESULT_SCHEMA = {
    "type": "object",
    "required": [f.name for f in dataclasses.fields(Result)],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["conv2d", "max_pool2d", "avg_pool2d", "gemm", "linear", "conv2d_pool",
                          "model"]},
        "name": _STR,
        "direction": {"enum": ["forward", "backward_data", "backward_weight", "backward",
                               "gemm", "train_step", "inference"]},
        "shape": {"type": "object"},
        "aliases": {"type": "array", "items": _STR},
        "threads": {"type": "integer", "minimum": 1},
        "isa": {"enum": ["ref", "avx2", "avx512"]},
        "algorithm": _STR,
        "flops": {"type": "number", "minimum": 0},
        "bytes": {"type": "number", "minimum": 0},
        "arithmetic_intensity": _NUM_OR_NULL,
        "ms": _NUM, "ms_min": _NUM, "ms_max": _NUM, "ms_q1": _NUM, "ms_q3": _NUM,
        "gflops": _NUM_OR_NULL,
        "gbps": _NUM_OR_NULL,
        "pct_peak": _NUM_OR_NULL,
        "peer": {"enum": ["torch", "torch-cl", "numpy"]},
        "peer_ms": _NUM_OR_NULL, "peer_ms_min": _NUM_OR_NULL, "peer_ms_max": _NUM_OR_NULL,
        "peer_gflops": _NUM_OR_NULL,
        "speedup": _NUM_OR_NULL,
        "max_rel_err": _NUM_OR_NULL,
        "status": {"enum": ["ok", "mismatch", "peer-missing", "error"]},
        "note": _STR,
        "times_ms": _SAMPLES,
        "peer_times_ms": _SAMPLES,
        "workspace_bytes": {"type": ["integer", "null"], "minimum": 0},
        "workspace_bound_bytes": {"type": ["integer", "null"], "minimum": 0},
    },
}

# One row of `fastconv bench --busy-core` (fastconv.bench.busy): each side's median ms at
# 1 thread and at `threads` with one core held by a busy loop; ratio = ms_n / ms_1.
BUSY_SCHEMA = {
    "type": "object",
    "required": ["kind", "name", "direction", "threads", "ms_1", "ms_n", "ratio", "peer",
                 "peer_ms_1", "peer_ms_n", "peer_ratio", "times_ms_1", "times_ms_n", "status",
                 "note"],
    "additionalProperties": False,
    "properties": {
        "kind": _STR, "name": _STR, "direction": _STR,
        "threads": {"type": "integer", "minimum": 2},
        "ms_1": _NUM_OR_NULL, "ms_n": _NUM_OR_NULL, "ratio": _NUM_OR_NULL, "peer": _STR,
        "peer_ms_1": _NUM_OR_NULL, "peer_ms_n": _NUM_OR_NULL, "peer_ratio": _NUM_OR_NULL,
        "times_ms_1": _SAMPLES, "times_ms_n": _SAMPLES,
        "status": {"enum": ["ok", "over", "error"]}, "note": _STR,
    },
}

BENCH_JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fastconv bench results",
    "type": "object",
    "required": ["schema", "created", "command", "environment", "settings", "machine",
                 "results", "missing_peers"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "created": _STR,
        "command": {"type": "array", "items": _STR},
        "environment": {
            "type": "object",
            "required": ["fastconv", "python", "numpy", "torch", "platform", "cpu",
                         "cpu_count", "caches", "isa", "backend_info"],
            "properties": {
                "fastconv": _STR, "python": _STR, "numpy": _STR,
                "torch": {"type": ["string", "null"]},
                "platform": _STR, "cpu": _STR, "cpu_count": {"type": ["integer", "null"]},
                "caches": {"type": "object", "additionalProperties": _STR},
                "isa": _STR, "backend_info": {"type": "object"},
            },
        },
        "settings": {
            "type": "object",
            "required": ["threads", "reps", "warmup", "quick", "filter", "seed", "cache",
                         "dtype", "agreement_rtol"],
            "properties": {
                "threads": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "reps": {"type": "integer", "minimum": 1},
                "warmup": {"type": "integer", "minimum": 0},
                "quick": {"type": "boolean"},
                "filter": {"type": ["string", "null"]},
                "seed": {"type": "integer"},
                "cache": {"const": "hot"},
                "dtype": {"const": "float32"},
                "agreement_rtol": _NUM,
                "busy_core": {"type": "boolean"},
            },
        },
        "machine": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["threads", "fma_gflops", "copy_gbps", "fma_gflops_after"],
                "additionalProperties": False,
                "properties": {"threads": {"type": "integer", "minimum": 1},
                               "fma_gflops": _NUM, "copy_gbps": _NUM,
                               "fma_gflops_after": _NUM_OR_NULL,
                               "capped_calls": {"type": ["integer", "null"], "minimum": 0}},
            },
        },
        "results": {"type": "array", "items": RESULT_SCHEMA},
        "busy_core": {"type": "array", "items": BUSY_SCHEMA},
        "missing_peers": {"type": "array", "items": _STR},
    },
}


def cpu_caches() -> dict[str, str]:
    """CPU 0's caches as Linux reports them, e.g. {'L1d': '32K', 'L2': '1024K'}; {} where
    /sys is not there."""
    out = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


def environment() -> dict:
    """Versions and machine identity recorded with every run."""
    info = fc.backend_info()
    torch = try_import("torch")
    return {
        "fastconv": info["version"],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch else None,
        "platform": platform.platform(),
        "cpu": info["cpu"] or platform.processor(),
        "cpu_count": os.cpu_count(),
        "caches": cpu_caches(),
        "isa": info["isa"],
        "backend_info": info,
    }


def after_run(p: MachinePeaks) -> str:
    """The line printed when a thread count's rows are done (FMA probe re-measured)."""
    line = (f"FMA probe after the {p.threads}-thread rows: {p.fma_gflops_after:.1f} GFLOP/s "
            f"(before: {p.fma_gflops:.1f})")
    if p.fma_gflops_after < 0.9 * p.fma_gflops:
        line += "  WARNING: the machine got slower during the run (another process?)"
    if p.capped_calls:
        line += (f"\n{p.capped_calls} kernel thread-count decisions ran on fewer threads than "
                 f"{p.threads}: another process held a core (fc.thread_load)")
    return line


def missing_peers() -> list[str]:
    return [] if try_import("torch") else ["torch"]


def header(env: dict, peaks: list[MachinePeaks], reps: int, warmup: int) -> str:
    """The lines printed above the table."""
    lines = [
        (f"fastconv {env['fastconv']} bench   python {env['python']}, numpy {env['numpy']}, "
         f"torch {env['torch'] or 'MISSING (conv/pool/model rows have no peer)'}"),
        (f"cpu: {env['cpu']} ({env['cpu_count']} logical cpus; "
         f"{', '.join(f'{k} {v}' for k, v in env['caches'].items())})   isa: {env['isa']}"),
        (f"float32, hot cache, "
         f"{reps} timed reps alternating ours/peer after {warmup} warm-up"),
    ]
    one = next((p.fma_gflops for p in peaks if p.threads == 1), None)
    for p in peaks:
        line = (f"measured peak, {p.threads} thread(s): {p.fma_gflops:.1f} GFLOP/s "
                f"(FMA probe), {p.copy_gbps:.1f} GB/s (copy probe, 64 MiB)")
        if p.threads > 1 and one:
            line += f"; {p.fma_gflops / one:.2f}x the 1-thread FMA rate"
        lines.append(line)
        if p.threads > 1 and one and p.fma_gflops < 0.9 * p.threads * one:
            lines.append(f"WARNING: {p.threads} threads give only {p.fma_gflops / one:.2f}x "
                         "one thread's FMA rate: some core is busy, distrust these rows")
    if not try_import("threadpoolctl"):
        lines.append("WARNING: threadpoolctl is missing, so OpenBLAS runs the numpy rows on every "
                     "core: their peer/ours is not at the row's thread count "
                     "(pip install threadpoolctl, or the [bench] extra)")
    lines.append("%peak: GFLOP/s over the FMA peak; pooling: GB/s over the copy bandwidth. "
                 "peer/ours > 1 means fastconv is faster.")
    return "\n".join(lines)


def _clean(v):
    """JSON has no NaN/inf: those become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def to_json(results: list[Result], peaks: list[MachinePeaks], settings: dict,
            argv: list[str] | None = None) -> dict:
    """The whole run as one JSON-ready dict matching :data:`BENCH_JSON_SCHEMA`."""
    rows = []
    for r in results:
        row = _clean(dataclasses.asdict(r))
        for key in ("ms", "ms_min", "ms_max", "ms_q1", "ms_q3"):  # error rows: never timed
            row[key] = -1.0 if row[key] is None else row[key]
        rows.append(row)
    return {
        "schema": SCHEMA_ID,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv if argv is None else argv),
        "environment": _clean(environment()),
        "settings": settings,
        "machine": [dataclasses.asdict(p) for p in peaks],
        "results": rows,
        "missing_peers": missing_peers(),
    }


def plot(payload: dict, path: str) -> None:
    """One PNG: on top, GFLOP/s against arithmetic intensity (log–log) under the roofline
    min(FMA peak, copy bandwidth × intensity) of each thread count; below, the speed-up
    peer/ours of every row as horizontal bars on a log axis with the 1.0 (parity) line,
    one bar per thread count.

    Raises ImportError naming matplotlib when it is not installed (``pip install
    "fastconv[bench]"``)."""
    try:
        import matplotlib as mpl
    except ImportError as e:
        raise ImportError('--plot needs matplotlib: pip install "fastconv[bench]"') from e
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in payload["results"] if r["status"] != "error"]
    threads = sorted({r["threads"] for r in rows}) or [1]
    colors = dict(zip(threads, ("tab:blue", "tab:orange", "tab:green", "tab:purple")))
    cases = list(dict.fromkeys((r["name"], r["direction"], r["peer"]) for r in rows
                               if r["speedup"]))
    ratio = {(r["name"], r["direction"], r["peer"], r["threads"]): r["speedup"] for r in rows}
    bar_h = 0.14 * len(cases) * len(threads) ** 0.5 + 1.0
    fig = plt.figure(figsize=(14, 7.5 + bar_h))
    # hspace is a fraction of the mean axes height: about 1.3 inches between the panels
    grid = fig.add_gridspec(2, 1, height_ratios=[6.5, bar_h], hspace=2.6 / (6.5 + bar_h))
    ax_roof, ax_bar = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])

    markers = {"forward": "o", "backward_data": "s", "backward_weight": "^", "gemm": "D",
               "train_step": "P", "inference": "X"}
    for t in threads:
        for direction, marker in markers.items():
            pts = [r for r in rows if r["threads"] == t and r["direction"] == direction
                   and r["gflops"] and r["arithmetic_intensity"]]
            if pts:
                ax_roof.scatter([r["arithmetic_intensity"] for r in pts],
                                [r["gflops"] for r in pts], marker=marker, color=colors[t],
                                alpha=0.6, s=22, label=f"{direction}, {t} thread(s)")
    ai = np.logspace(-1, 3, 200)
    for p in payload["machine"]:
        ax_roof.plot(ai, np.minimum(p["fma_gflops"], p["copy_gbps"] * ai), linestyle="--",
                     color=colors.get(p["threads"], "black"),
                     label=f"roofline {p['threads']} thread(s): {p['fma_gflops']:.0f} GFLOP/s "
                           f"FMA peak, {p['copy_gbps']:.0f} GB/s copy")
    ax_roof.set_xscale("log")
    ax_roof.set_yscale("log")
    ax_roof.set_xlabel("arithmetic intensity (FLOP per byte of minimum traffic, float32)")
    ax_roof.set_ylabel("fastconv GFLOP/s")
    ax_roof.set_title("roofline: measured FMA peak and copy bandwidth")
    ax_roof.grid(which="both", alpha=0.3)
    ax_roof.legend(fontsize=7, loc="lower right", ncol=2)

    height = 0.8 / len(threads)
    ys = np.arange(len(cases))
    values = [v for v in ratio.values() if v]
    for i, t in enumerate(threads):
        vals = [ratio.get((*case, t)) or np.nan for case in cases]
        offs = ys - 0.4 + height * (i + 0.5)
        ax_bar.barh(offs, vals, height=height, color=colors[t], label=f"{t} thread(s)")
        for y, v in zip(offs, vals):
            if not math.isnan(v):
                ax_bar.text(v, y, f" {v:.2f}", va="center", fontsize=5)
    ax_bar.axvline(1.0, color="black", linewidth=1.0)
    ax_bar.set_xscale("log")
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
             if min(values, default=1) / 2 <= t <= max(values, default=1) * 2]
    ax_bar.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax_bar.minorticks_off()
    ax_bar.set_yticks(ys, [f"{name} {d}" + (" vs torch channels_last" if peer == "torch-cl"
                                              else "") for name, d, peer in cases], fontsize=6)
    ax_bar.set_ylim(len(cases) - 0.5, -0.5)
    ax_bar.set_xlabel("speed-up = peer ms / fastconv ms (log scale; right of the 1.0 line: "
                      "fastconv faster)")
    ax_bar.set_title("fastconv vs peer, same run (torch: conv, pooling, models; NumPy: GEMM, "
                     "Linear)")
    ax_bar.grid(axis="x", alpha=0.3)
    ax_bar.legend(loc="upper right", fontsize=8)
    ax_bar.xaxis.set_tick_params(labeltop=True)

    env = payload["environment"]
    fig.suptitle(f"fastconv bench: {env['cpu']}, isa {env['isa']}, torch {env['torch']}, "
                 f"{payload['created']}", fontsize=10, y=1 - 0.25 / (7.5 + bar_h))
    fig.subplots_adjust(left=0.25, right=0.97, top=1 - 0.9 / (7.5 + bar_h),
                        bottom=0.6 / (7.5 + bar_h))
    fig.savefig(path, dpi=100)
    plt.close(fig)
