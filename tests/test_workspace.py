"""Kernel scratch memory: the accounting behind the benchmark's ``workspace_bytes`` and the
performance issue's rule that steady-state training allocates no new large buffers.

The kernels keep one reused 64-byte-aligned buffer per thread and purpose
(``src/cpp/common/aligned_buffer.h``); ``_core.workspace_stats`` reports what the calls
since the last reset needed at once (``call_bytes``) and what the buffers hold
(``held_bytes``). The steady-state check counts minor page faults (``getrusage``): a
megabyte buffer mapped afresh each step would fault about 256 pages per step.
"""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

import fastconv as fc
from fastconv import functional as F
from fastconv import kernels as K
from fastconv import models

_core = fc._core


@pytest.fixture
def one_thread():
    before = fc.get_num_threads()
    fc.set_num_threads(1)
    yield
    fc.set_num_threads(before)


def _conv_calls(rng, n, c, hw, k, r, **kw):
    x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((k, c // kw.get("groups", 1), r, r), dtype=np.float32)
    y = K.conv2d(x, w, None, **kw)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return [lambda: K.conv2d(x, w, None, **kw),
            lambda: K.conv2d_backward_data(dy, w, x.shape, **kw),
            lambda: K.conv2d_backward_weight(dy, x, w.shape, **kw)]


@pytest.mark.usefixtures("one_thread")
def test_stats_window_counts_the_calls_since_reset():
    rng = np.random.default_rng(0)
    # 3x3 on 16 channels with padding: the im2col path packs weights and column panels.
    fwd, bwd_data, bwd_weight = _conv_calls(rng, 2, 16, 12, 8, 3, padding=1)
    _core.workspace_stats(reset=True)
    assert _core.workspace_stats()["call_bytes"] == 0  # nothing called in this window yet
    fwd()
    first = _core.workspace_stats()["call_bytes"]
    # At least the packed weights (8 x 144 floats) and one column panel of 144 rows.
    assert first >= 4 * (8 * 144 + 144)
    fwd()  # the same buffers at the same sizes: the window's peak does not grow
    assert _core.workspace_stats()["call_bytes"] == first
    assert _core.workspace_stats(reset=True)["call_bytes"] == first  # reset reports, then
    assert _core.workspace_stats()["call_bytes"] == 0  # starts a new window
    bwd_data()
    bwd_weight()
    # backward_data materialises one image's column matrix: 144 x 144 floats.
    assert _core.workspace_stats(reset=True)["call_bytes"] >= 4 * 144 * 144


@pytest.mark.usefixtures("one_thread")
def test_pooling_uses_no_scratch():
    x = np.random.default_rng(1).standard_normal((4, 8, 32, 32), dtype=np.float32)
    _core.workspace_stats(reset=True)
    y, idx = K.max_pool2d(x, 3, 2, 1)
    K.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    K.avg_pool2d(x, 2, 2)
    assert _core.workspace_stats(reset=True)["call_bytes"] == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_repeated_calls_reuse_the_scratch_buffers(threads):
    before = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        rng = np.random.default_rng(2)
        calls = [*_conv_calls(rng, 4, 6, 14, 16, 5),
                 *_conv_calls(rng, 2, 32, 16, 32, 3, padding=1),
                 *_conv_calls(rng, 2, 16, 16, 16, 3, padding=1, groups=16)]
        for f in calls:
            f()
        held = _core.workspace_stats()["held_bytes"]
        assert held > 0
        for _ in range(3):
            for f in calls:
                f()
        assert _core.workspace_stats()["held_bytes"] == held
    finally:
        fc.set_num_threads(before)


@pytest.mark.parametrize("net", ["lenet5", "cifarnet"])
def test_steady_state_training_step_faults_no_new_pages(net):
    """Forward, cross-entropy, backward and SGD at batch 64 after a warm-up: the steps reuse
    every large buffer (kernel scratch and, via the malloc tuning at import, the arrays of
    the step), so they page-fault almost nothing. Measured: 0.3 faults per step for both
    networks; a fresh 1 MB buffer per step would cost ~256."""
    spec = models.MODELS[net]
    model = models.get_model(net)
    model.train()
    rng = np.random.default_rng(3)
    x = fc.tensor(rng.standard_normal((64, *spec.input_shape), dtype=np.float32))
    y = fc.tensor(rng.integers(0, spec.num_classes, 64).astype(np.int64))
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    held = _core.workspace_stats()["held_bytes"]
    steps = 10
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert faults / steps < 16, f"{faults / steps:.1f} minor page faults per step"
    assert _core.workspace_stats()["held_bytes"] == held


_TASKS = Path("/proc/self/task")


def _thread_ids():
    return {t.name for t in _TASKS.iterdir()}


@pytest.mark.skipif(not _TASKS.is_dir(), reason="needs Linux's /proc")
def test_regions_of_every_size_keep_the_thread_pool():
    """A LeNet-5 training step at 8 threads runs regions of many sizes (6 output channels,
    16, the batch, tiles...). GNU OpenMP ends the pool's surplus threads whenever a region
    asks for fewer threads than the last one, so each region asks for the whole team
    (parallel.h, team_for): after a warm-up no thread is created and no thread's scratch
    is freed. Before, 10 steps at 16 threads created 36 threads and faulted 74 pages a step
    on a 2-core host, 163 on a 16-core one. Thread ids are new for every thread created."""
    before = fc.get_num_threads()
    fc.set_num_threads(8)  # more than this host's cores: the team size is what matters
    try:
        spec = models.MODELS["lenet5"]
        model = models.get_model("lenet5")
        model.train()
        rng = np.random.default_rng(4)
        x = fc.tensor(rng.standard_normal((64, *spec.input_shape), dtype=np.float32))
        y = fc.tensor(rng.integers(0, spec.num_classes, 64).astype(np.int64))
        opt = fc.optim.SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        step()
        seen = _thread_ids()
        held = [_core.workspace_stats()["held_bytes"]]
        new = set()
        for _ in range(6):
            step()
            now = _thread_ids()
            new |= now - seen
            seen |= now
            held.append(_core.workspace_stats()["held_bytes"])
    finally:
        fc.set_num_threads(before)
    assert not new, f"{len(new)} threads created after the first step"
    # Buffers only grow (a thread's first larger task); a thread's exit would free its own.
    assert held == sorted(held), held
