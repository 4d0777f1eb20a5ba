"""Hostile arguments and environments: every case here once crashed, hung or returned a
wrong answer (found by review and fuzzing); each must now raise a clear error or give
torch's result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import assert_close, torch64

import fastconv as fc
from fastconv import functional as F
from fastconv import kernels as K

ONE = np.ones((1, 1, 1, 1), np.float32)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: K.conv2d(np.ones((1, 1, 17, 1), "f4"), np.ones((1, 1, 17, 1), "f4"),
                          dilation=(2**60 + 1, 1)), "dilation must be at most"),
        (lambda: K.conv2d(np.ones((1, 1, 5, 5), "f4"), np.ones((1, 1, 5, 5), "f4"),
                          dilation=2**62), "dilation must be at most"),
        (lambda: K.conv2d(np.ones((2, 4, 3, 3), "f4"), np.ones((4, 4, 1, 1), "f4"),
                          padding=2**63 - 1), "padding must be at most"),
        (lambda: K.conv2d(ONE, ONE, stride=(2**62, 1), padding=(0, 0, 0, 2**62)),
         "stride must be at most"),
        (lambda: K.conv_transpose2d(np.ones((1, 1, 9, 1), "f4"), ONE, stride=(2**61 + 1, 1)),
         "stride must be at most"),
        (lambda: K.conv_transpose2d_backward_data(np.ones((1, 1, 9, 1), "f4"), ONE,
                                                  (1, 1, 9, 1), stride=(2**61 + 1, 1)),
         "stride must be at most"),
        (lambda: K.avg_pool2d(ONE, (2**32, 2**32), 1, (2**31, 2**31)),
         "kernel_size must be at most"),
        (lambda: K.max_pool2d(ONE, (10**10, 1), 1, (10**10 // 2, 0)),
         "kernel_size must be at most"),
        (lambda: K.conv2d(ONE, ONE, groups=2**40), "groups must be at most"),
    ],
    ids=["conv-dilation-wrap", "conv-dilation-huge", "conv-padding-huge",
         "conv-stride-padding-huge", "transpose-stride", "transpose-bwd-stride",
         "avgpool-divisor", "maxpool-kernel", "groups"],
)
def test_huge_hyperparameters_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_set_num_threads_bounds():
    with pytest.raises(ValueError, match="set_num_threads"):
        fc.set_num_threads(100_000)
    with pytest.raises(ValueError, match="set_num_threads"):
        fc.set_num_threads(0)


def test_python_wrappers_refuse_non_integer_groups_and_padding():
    x, w = np.ones((1, 2, 4, 4), "f4"), np.ones((2, 1, 3, 3), "f4")
    with pytest.raises(TypeError, match="groups"):
        K.conv2d(x, w, groups=1.5)
    with pytest.raises(TypeError, match="padding"):
        K.conv2d(x, w, groups=2, padding=(1.5, 1, 1, 1))


def test_conv_with_huge_padding_relative_to_input_uses_bounded_workspace():
    """Padding far larger than the input: the result is torch's, computed without a padded
    input copy of (H + 2p) x (W + 2p) per thread."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    w = np.random.default_rng(1).standard_normal((4, 3, 2, 2))
    ours = K.conv2d(x, w, stride=500, padding=1000)
    ref = torch.nn.functional.conv2d(torch64(x), torch64(w), stride=500, padding=1000).numpy()
    assert_close(ours, ref, 1e-12, what="conv2d stride 500 padding 1000")


def test_dilated_max_pool_window_without_input_elements_backpropagates():
    """k=2, d=3, p=1 on a 2x4 plane: some windows hold no input element (torch: -inf)."""
    x = np.random.default_rng(2).standard_normal((1, 1, 2, 4))
    t = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(t, 2, 1, 1, 3)
    ours = fc.tensor(x, requires_grad=True)
    y = F.max_pool2d(ours, 2, 1, 1, 3)
    assert_close(y.detach().numpy(), ty.detach().numpy(), 0.0, what="forward")
    finite = torch.isfinite(ty)
    (ty.masked_fill(~finite, 0.0) * 1.0).sum().backward()
    g = np.where(finite.numpy(), 1.0, 0.0)
    y.backward(g)
    assert_close(ours.grad.numpy(), t.grad.numpy(), 0.0, what="input gradient")


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_smaller_openmp_team_than_requested_gives_correct_results():
    """OMP_DYNAMIC / OMP_THREAD_LIMIT may grant fewer threads than asked for."""
    code = """
        import numpy as np, fastconv as fc, fastconv.kernels as K
        fc.set_num_threads(2)
        y = K.conv2d(np.ones((1, 1, 8, 40)), np.ones((1, 1, 1, 1)), padding=1)
        assert np.allclose(y[:, :, 1:-1, 1:-1], 1.0), "conv2d interior"
        dw = K.conv2d_backward_weight(np.ones((4, 3, 3, 3)), np.ones((4, 2, 5, 5)), (3, 2, 3, 3))
        assert np.allclose(dw, 36.0), np.unique(dw)
        print("ok")
    """
    for env in ({"OMP_DYNAMIC": "true"}, {"OMP_THREAD_LIMIT": "1"}):
        r = _run_python(code, **env)
        assert r.returncode == 0, (env, r.stdout, r.stderr)
        assert "ok" in r.stdout, (env, r.stdout, r.stderr)


def test_allocation_failure_inside_threads_raises_memory_error():
    """A scratch allocation that fails on a worker thread must surface as MemoryError in the
    caller, not abort the process (exceptions cannot cross an OpenMP region)."""
    code = """
        import os, resource, numpy as np, fastconv as fc, fastconv.kernels as K
        fc.set_num_threads(2)
        K.conv2d(np.ones((4, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32))  # team up
        w = np.ones((4, 256, 7, 7), np.float32)
        dy = np.ones((4, 4, 90, 90), np.float32)
        # GEMM + col2im needs a 256*49 x 90*90 column matrix (406 MB) per thread; cap the
        # address space 200 MB above what is mapped now so that allocation fails.
        vm = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vm + 200 * 2**20, resource.RLIM_INFINITY))
        try:
            K.conv2d_backward_data(dy, w, (4, 256, 96, 96), algorithm="im2col")
        except MemoryError:
            print("memory error")
    """
    r = _run_python(code)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "memory error" in r.stdout


def test_bindings_take_ready_arrays_as_they_are_and_convert_or_refuse_the_rest(rng):
    """The bindings use a C-contiguous, aligned, native-order array in place and read
    anything else through a copy (or refuse it): a foreign byte order is a TypeError naming
    the dtype, int64 indices spelled 'q' instead of 'l' are converted, and the result
    never aliases an input."""
    from fastconv import _core

    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    swapped = x.astype(">f4")
    for call in (lambda a: _core.conv2d_forward(a, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1),
                 _core.relu_forward,
                 lambda a: _core.gemm(a[0, 0], a[0, 0]),
                 lambda a: _core.max_pool2d_forward(a, (2, 2), (2, 2), (0, 0), (1, 1), False)):
        with pytest.raises(TypeError, match=r"float32 or float64, got >f4"):
            call(swapped)
    # A native and a foreign weight together: the foreign one is named.
    with pytest.raises(TypeError, match=r"weight to have dtype float32 or float64, got >f4"):
        _core.conv2d_forward(x, w.astype(">f4"), None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    y = _core.relu_forward(x)
    assert not np.shares_memory(y, x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    _, idx = _core.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    dy = rng.standard_normal(idx.shape).astype(np.float32)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    torch.nn.functional.max_pool2d(tx, 2).backward(torch.from_numpy(dy.astype(np.float64)))
    for spelled in (idx, idx.astype("q")):
        dx = _core.max_pool2d_backward(dy, spelled, (6, 6))
        assert_close(dx, tx.grad.numpy(), 1e-6,
                     what=f"max_pool2d_backward, indices of dtype char {spelled.dtype.char!r}")
