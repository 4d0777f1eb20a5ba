"""``fastconv bench``: arguments and driver (the CLI module only wires this in)."""

from __future__ import annotations

import argparse
import json
import sys

import fastconv as fc
from fastconv.bench import busy, harness, report

MIN_REPS = 10


def _thread_list(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(
            f"--threads takes positive integers separated by commas (e.g. 1 or 1,2), got {text!r}")
    return out


def _reps(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < MIN_REPS:
        raise argparse.ArgumentTypeError(f"--reps must be an integer >= {MIN_REPS}, got {text!r}")
    return n


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="a representative subset (under 2 minutes on 2 cores)")
    p.add_argument("--filter", metavar="REGEX",
                   help="only cases whose 'kind name direction' matches (case-insensitive), "
                        "e.g. 'conv2d.*resnet', 'lenet5', 'backward_weight', '^gemm'")
    p.add_argument("--threads", type=_thread_list, default=[1], metavar="N[,N...]",
                   help="thread counts, each a full run with both sides at that count "
                        "(default 1)")
    p.add_argument("--reps", type=_reps, default=MIN_REPS,
                   help=f"timed repetitions per side, >= {MIN_REPS} (default {MIN_REPS})")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", metavar="FILE", help="write every figure and the environment")
    p.add_argument("--plot", metavar="FILE.png",
                   help="bar chart of peer/ours and roofline plot (needs matplotlib)")
    p.add_argument("--busy-core", action="store_true",
                   help="hold one core with a busy loop and time each side at every --threads "
                        "count > 1 (default 2) against itself at 1 thread")


def run_bench(quick: bool = False, filter: str | None = None, threads: list[int] | None = None,
              reps: int = MIN_REPS, warmup: int = 2, seed: int = 0, out=None,
              models_rows: bool = True, busy_core: bool = False) -> dict:
    """Run the benchmark, print header and rows to `out` (None: silent) as they are measured,
    and return the JSON document (:data:`fastconv.bench.report.BENCH_JSON_SCHEMA`).

    busy_core: instead of ours against the peer, each side at every thread count > 1
    (default 2) against itself at 1 thread while a busy loop holds one core
    (:mod:`fastconv.bench.busy`); the rows go to the document's ``busy_core`` list and
    ``results`` stays empty. RuntimeError if one core cannot be held (fewer than 2 CPUs)."""
    if busy_core:
        threads = [t for t in threads or [] if t > 1] or [2]
    threads = threads or [1]
    env = report.environment()
    # always 1 thread too: the header's scaling check (are the cores free?) divides by it
    measured = {t: harness.measure_peaks(t) for t in sorted({1, *threads})}
    peaks = [measured[t] for t in threads]

    def emit(text: str) -> None:
        if out is not None:
            print(text, file=out, flush=True)

    emit(report.header(env, list(measured.values()), reps, warmup))
    settings = {"threads": threads, "reps": reps, "warmup": warmup, "quick": quick,
                "filter": filter, "seed": seed, "cache": "hot", "dtype": "float32",
                "agreement_rtol": harness.AGREE_RTOL, "busy_core": busy_core}
    if busy_core:
        rows = []
        with busy.busy_core() as cpu:
            emit(f"\nbusy loop on CPU {cpu}")
            for t in threads:
                emit("")
                emit(busy.table_header())
                cases = harness.select_cases(quick=quick, filter=filter, seed=seed,
                                             models_rows=models_rows)
                with harness.same_threads(t):
                    for c in cases:
                        rows.append(busy.run_case(c, t, reps, warmup))
                        emit(busy.format_row(rows[-1]))
        payload = report.to_json([], peaks, settings)
        payload["busy_core"] = rows
        return payload
    results = []
    for t, pk in zip(threads, peaks):
        emit("")
        emit(harness.table_header())
        cases = harness.select_cases(quick=quick, filter=filter, seed=seed,
                                     models_rows=models_rows)
        capped = fc.thread_load()["capped_calls"]
        results += harness.run_cases(cases, threads=t, reps=reps, warmup=warmup, peaks=pk,
                                     on_result=lambda r: emit(harness.format_row(r)))
        pk.capped_calls = fc.thread_load()["capped_calls"] - capped
        pk.fma_gflops_after = harness.fma_peak(t)
        emit(report.after_run(pk))
    return report.to_json(results, peaks, settings)


def run_bench_cli(args: argparse.Namespace) -> int:
    """Exit status: 0 all rows ok (or peer missing), 1 a mismatch or error, 2 nothing matched
    --filter or an unusable option."""
    if args.warmup < 0:
        print("fastconv bench: --warmup must be >= 0", file=sys.stderr)
        return 2
    if args.busy_core and args.plot:
        print("fastconv bench: --plot draws the peer rows, not --busy-core's", file=sys.stderr)
        return 2
    try:
        payload = run_bench(quick=args.quick, filter=args.filter, threads=args.threads,
                            reps=args.reps, warmup=args.warmup, seed=args.seed, out=sys.stdout,
                            busy_core=args.busy_core)
    except RuntimeError as e:  # --busy-core: no second CPU to hold
        if not args.busy_core:
            raise
        print(f"fastconv bench: {e}", file=sys.stderr)
        return 2
    rows = payload.get("busy_core") or payload["results"]
    if not rows:
        print(f"fastconv bench: no case matches --filter {args.filter!r}", file=sys.stderr)
        return 2
    if payload["missing_peers"]:
        print(f"\npeers missing: {', '.join(payload['missing_peers'])} "
              '(pip install "fastconv[bench]"): those rows show fastconv only')
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        report.plot(payload, args.plot)
        print(f"wrote {args.plot}")
    bad = [r for r in rows if r["status"] in ("mismatch", "error")]
    for r in bad:
        print(f"FAILED: {r['name']} {r['direction']} ({r['threads']} thread(s)): {r['note']}",
              file=sys.stderr)
    return 1 if bad else 0


def script_main(filter: str | None, default_json: str, argv: list[str] | None = None) -> int:
    """Entry point of the ``benchmarks/bench_<op>.py`` scripts: ``fastconv bench`` restricted
    to `filter` (a user ``--filter`` narrows it further), writing `default_json` unless
    ``--json`` is given."""
    from fastconv.cli import main

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--json" not in argv:
        argv += ["--json", default_json]
    if filter and "--filter" in argv:
        i = argv.index("--filter") + 1
        argv[i] = f"(?=.*(?:{filter}))(?=.*(?:{argv[i]}))"  # both must match
    elif filter:
        argv += ["--filter", filter]
    return main(["bench", *argv])
