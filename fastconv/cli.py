"""Command line: ``fastconv`` / ``python -m fastconv``.

- ``fastconv info``: backend_info() in readable form.
- ``fastconv bench [--quick] [--threads N] [--reps R] [--json FILE]``: kernel benchmark table,
  fastconv against NumPy (GEMM) and PyTorch (conv, pooling) in the same run.
- no sub-command: ``info`` followed by ``bench --quick``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict

import numpy as np

import fastconv as fc


def _print_info() -> None:
    info = fc.backend_info()
    print(f"fastconv {info['version']}  (numpy {np.__version__}, python {platform.python_version()})")
    print(f"  cpu:            {info['cpu'] or platform.processor()}")
    print(f"  isa:            {info['isa']}  (compiled: {', '.join(info['compiled_isas'])}; "
          f"supported here: {', '.join(info['supported_isas'])})")
    tiles = info["gemm_tile_mr_nr"]
    print(f"  gemm tile MRxNR: float32 {tiles['float32'][0]}x{tiles['float32'][1]}, "
          f"float64 {tiles['float64'][0]}x{tiles['float64'][1]}")
    print(f"  threads:        {info['num_threads']}  (OpenMP: {info['openmp']})")
    print(f"  compiler:       {info['compiler']}")
    print(f"  cuda built:     {info['cuda_built']}")


def _bench(args) -> int:
    from fastconv.bench import default_cases, format_table, run_cases

    try:
        import torch

        peer = f"torch {torch.__version__}"
    except ImportError:
        peer = "torch not installed: conv/pool rows show fastconv only"
    print(f"benchmark: threads={args.threads}, reps={args.reps}, float32, hot cache; "
          f"peers: numpy {np.__version__} (GEMM), {peer}")
    results = run_cases(default_cases(quick=args.quick), threads=args.threads, reps=args.reps)
    print(format_table(results))
    if args.json:
        payload = {"backend": fc.backend_info(), "numpy": np.__version__,
                   "results": [asdict(r) for r in results]}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="print backend_info()")
    bench = sub.add_parser("bench", help="kernel benchmarks against numpy/torch")
    bench.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    bench.add_argument("--threads", type=int, default=1, help="threads for both sides (default 1)")
    bench.add_argument("--reps", type=int, default=10, help="timed repetitions per side (>= 10)")
    bench.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    if args.command == "info":
        _print_info()
        return 0
    if args.command == "bench":
        return _bench(args)
    _print_info()
    print()
    return _bench(argparse.Namespace(quick=True, threads=1, reps=10, json=None))


if __name__ == "__main__":
    sys.exit(main())
