"""Kernel benchmarks: fastconv against a peer measured in the same run.

Each case runs fastconv and its peer (NumPy/OpenBLAS for GEMM, PyTorch CPU for convolution
and pooling) on the same inputs, checks that the outputs agree, warms up, then times
``reps`` repetitions alternating ours/peer so that noise from the shared host hits both
alike. Reported: median ms, spread (min–max) and GFLOP/s (pooling: GB/s moved), and the
speed-up ``t_peer / t_ours``. Both sides run with the same thread count. All inputs fit in
cache after warm-up: figures are "hot cache".
"""

from __future__ import annotations

from fastconv.bench.harness import Case, Result, default_cases, format_table, run_cases

__all__ = ["Case", "Result", "default_cases", "format_table", "run_cases"]
