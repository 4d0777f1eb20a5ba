"""Benchmark: every Conv2d layer of the shape tables, forward and backward, vs PyTorch.

Thin wrapper over fastconv.bench (the harness of ``fastconv bench``, method in docs/bench.md);
takes the same options and writes bench_conv2d.json unless --json is given.

    python benchmarks/bench_conv2d.py [--quick] [--threads 1,2] [--filter REGEX] [--plot out.png]
"""

from __future__ import annotations

import sys

from fastconv.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(r"^conv2d ", "bench_conv2d.json"))
