"""Benchmark: max- and avg-pooling forward and backward on the networks' feature maps vs PyTorch.

Thin wrapper over fastconv.bench (the harness of ``fastconv bench``, method in docs/bench.md);
takes the same options and writes bench_pool2d.json unless --json is given.

    python benchmarks/bench_pool2d.py [--quick] [--threads 1,2] [--filter REGEX] [--plot out.png]
"""

from __future__ import annotations

import sys

from fastconv.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(r"^(max|avg)_pool2d ", "bench_pool2d.json"))
