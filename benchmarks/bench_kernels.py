"""Kernel benchmark: GEMM vs NumPy, LeNet-5 / ResNet-18 conv and pooling layers vs PyTorch.

Thin wrapper over fastconv.bench (the same harness as ``fastconv bench``): fastconv and the
peer run on the same inputs with the same thread count, timed alternately, medians reported.

    python benchmarks/bench_kernels.py [--threads 1] [--reps 10] [--quick] [--json out.json]
"""

from __future__ import annotations

import sys

from fastconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
