"""Shared test fixtures: ISA walking, seeds, NaN poisoning and derived tolerances.

Tolerances follow STYLE.md §7: float64 paths use rtol=1e-10 with atol=1e-12·scale;
float32 paths use atol = c · L · 2⁻²³ · max|a| · max|b| where L is the reduction length
(XNNPACK's compute_sum_tolerance), because float32 rounding error grows with L.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import random
import sys
import zlib

import hypothesis
import numpy as np
import pytest
import torch  # the reference of every numeric test (test extra: torch==2.13.0)

import fastconv as fc
from fastconv import _core

# The torch reference ops are tiny; one torch thread keeps torch's OpenMP pool from
# spinning against fastconv's on small CI machines.
torch.set_num_threads(1)
# The 2-thread tests run on 2 threads even when another process keeps a core busy: the
# load-aware cap (fastconv.thread_load) would otherwise run them on one, at random.
_core.set_load_aware(False)

# Every variant compiled into the extension and runnable on this CPU. The ones compiled
# but unsupported are reported in the session header, never silently counted as covered.
COMPILED_ISAS = list(_core.compiled_isas())
SUPPORTED_ISAS = [isa for isa in COMPILED_ISAS if isa in _core.supported_isas()]

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]

FLOAT32_EPS = 2.0**-23
FLOAT32_C = 4.0  # small constant in the float32 bound; the bound is linear in L


# One seed for every hypothesis test of the run, printed in the header: a failure replays
# with FASTCONV_HYPOTHESIS_SEED=<seed> (hypothesis also prints the falsifying example).
HYPOTHESIS_SEED = int(os.environ.get("FASTCONV_HYPOTHESIS_SEED") or random.SystemRandom().randrange(2**32))


def pytest_collection_modifyitems(items):
    for item in items:
        function = getattr(item, "obj", None)
        if getattr(function, "is_hypothesis_test", False):
            hypothesis.seed(HYPOTHESIS_SEED)(function)


def pytest_report_header(config):  # noqa: ARG001
    unsupported = [isa for isa in COMPILED_ISAS if isa not in SUPPORTED_ISAS]
    return [
        f"hypothesis seed={HYPOTHESIS_SEED} (replay: FASTCONV_HYPOTHESIS_SEED={HYPOTHESIS_SEED})",
        (f"fastconv ISAs compiled={COMPILED_ISAS} tested={SUPPORTED_ISAS} "
        f"not runnable here={unsupported} default={fc.backend_info()['isa']}")
    ]


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Run the test once per ISA variant this machine supports, restoring the default."""
    default = _core.current_isa()
    _core._set_isa(request.param)
    try:
        yield request.param
    finally:
        _core._set_isa(default)


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def threads(request):
    """Run the test with fastconv using 1 and then 2 threads, restoring the setting."""
    old = fc.get_num_threads()
    fc.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        fc.set_num_threads(old)


@pytest.fixture
def rng(request):
    """A NumPy Generator seeded from the test's node id, so a failure replays exactly.

    crc32, not hash(): str hashes are salted per process and would not replay.
    """
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


def maxabs(a) -> float:
    """max |a| as a float (0 for an empty array): the magnitude in `tolerance`."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a).max()) if a.size else 0.0


def tolerance(dtype, reduction_length: int, max_a: float, max_b: float) -> float:
    """Absolute tolerance for a sum of `reduction_length` products of magnitudes ≤ max_a·max_b."""
    scale = max(float(max_a) * float(max_b), 1e-30)
    length = max(int(reduction_length), 1)
    if np.dtype(dtype) == np.float64:
        return 1e-12 * length * scale
    return FLOAT32_C * length * FLOAT32_EPS * scale


def assert_close(ours, ref, atol: float, *, what: str, rtol: float = 0.0) -> None:
    """Assert |ours - ref| <= atol + rtol·|ref| elementwise; report the worst index.

    NaN in `ours` always fails (it is how unwritten, poisoned outputs show up).
    """
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != reference {ref.shape}"
    if ours.size == 0:
        return
    nan = np.isnan(ours) & ~np.isnan(ref)
    assert not nan.any(), f"{what}: NaN at {np.argwhere(nan)[0].tolist()} (unwritten output?)"
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinities are exact matches
        err = np.abs(ours - ref)
    same = (ours == ref) | (np.isnan(ref) & np.isnan(ours))
    err = np.where(same, 0.0, err)
    # an array also for rtol = 0: the failure message indexes it
    bound = np.broadcast_to(atol + (rtol * np.abs(ref) if rtol else 0.0), err.shape)
    excess = err - bound
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    assert excess[worst] <= 0, (
        f"{what}: worst index {list(worst)} ours={ours[worst]!r} ref={ref[worst]!r} "
        f"err={err[worst]:.3e} > tol={bound[worst]:.3e}"
    )


def misaligned(values: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of `values` whose data pointer is not a multiple of its itemsize
    (kernels must not assume natural alignment)."""
    buf = np.zeros(values.size * values.itemsize + 1, dtype=np.uint8)
    out = buf[1:].view(values.dtype).reshape(values.shape)
    out[...] = values
    assert not out.flags.aligned
    return out


def guarded(values: np.ndarray, at_end: bool) -> np.ndarray:
    """A C-contiguous copy of `values` whose first element (last, `at_end`) touches a page
    with no access rights (Linux): a kernel that reads before its start or past its end,
    even into lanes it masks afterwards, faults instead of reading a neighbour's bytes."""
    page = mmap.PAGESIZE
    nbytes = values.size * values.itemsize
    npages = -(-nbytes // page)
    buf = mmap.mmap(-1, (npages + 2) * page)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for guard in (addr, addr + (npages + 1) * page):
        if libc.mprotect(guard, page, 0) != 0:  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect")
    offset = page + (npages * page - nbytes if at_end else 0)
    out = np.frombuffer(buf, values.dtype, values.size, offset).reshape(values.shape)
    out[...] = values
    return out


GUARD_PAGES = sys.platform.startswith("linux")


def torch64(a):
    """A float64 torch tensor with the same values."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
