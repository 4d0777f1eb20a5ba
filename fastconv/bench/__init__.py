"""Kernel benchmarks and the parity check: what ``fastconv bench`` and ``fastconv check`` run.

- :mod:`fastconv.bench.shapes`: named layer shapes from real networks, FLOP and byte counts.
- :mod:`fastconv.bench.harness`: cases, agreement check, alternating timing, the table.
- :mod:`fastconv.bench.report`: header, JSON document and schema, plot.
- :mod:`fastconv.bench.command`: ``fastconv bench`` arguments and driver.
- :mod:`fastconv.bench.check`: ``fastconv check``, every op against PyTorch in float64.

Each case runs fastconv and its peer (NumPy/OpenBLAS for GEMM and Linear, PyTorch CPU for
convolution, pooling and whole models) on the same inputs with the same thread count,
checks that the outputs agree, warms up, then times repetitions alternating ours/peer so
that noise on a shared host hits both alike. Inputs stay resident and each timed call
follows an untimed call of the same side: figures are "hot cache".
"""

from __future__ import annotations

from fastconv.bench.command import run_bench
from fastconv.bench.harness import Case, Result, run_cases, select_cases
from fastconv.bench.report import BENCH_JSON_SCHEMA

__all__ = ["BENCH_JSON_SCHEMA", "Case", "Result", "run_bench", "run_cases", "select_cases"]
