"""Benchmark: GEMM squares and the networks' Linear layers (forward, backward_data, backward_weight) vs NumPy.

Thin wrapper over fastconv.bench (the harness of ``fastconv bench``, method in docs/bench.md);
takes the same options and writes bench_gemm.json unless --json is given.

    python benchmarks/bench_gemm.py [--quick] [--threads 1,2] [--filter REGEX] [--plot out.png]
"""

from __future__ import annotations

import sys

from fastconv.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(r"^(gemm|linear) ", "bench_gemm.json"))
