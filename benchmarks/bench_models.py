"""Benchmark: LeNet-5 and CifarNet training step and inference, fastconv vs PyTorch.

Thin wrapper over fastconv.bench (the harness of ``fastconv bench``, method in docs/bench.md);
takes the same options and writes bench_models.json unless --json is given.

    python benchmarks/bench_models.py [--quick] [--threads 1,2] [--filter REGEX] [--plot out.png]
"""

from __future__ import annotations

import sys

from fastconv.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(r"^model ", "bench_models.json"))
