"""fastconv: fast CPU Conv2d, pooling and GEMM kernels under a PyTorch-like API.

The compiled core (``fastconv._core``) holds AVX2/AVX-512 kernels chosen at import from
CPUID (override with ``FASTCONV_ISA=ref|avx2|avx512``) and threaded with OpenMP
(``set_num_threads``). ``fastconv.kernels`` exposes convolution and pooling, forward and
backward, on NumPy arrays; :func:`gemm` is BLAS-style matrix multiply.

On top of them, the PyTorch-shaped layer: :class:`Tensor` with reverse-mode autograd,
``fastconv.functional`` (``F``), ``fastconv.nn`` modules, ``fastconv.optim`` optimisers and
schedulers, and :func:`save` / :func:`load` for state dicts (.npz, no pickle).
"""

from __future__ import annotations

from fastconv import _core, cuda, data, functional, kernels, models, nn, optim
from fastconv._core import get_num_threads
from fastconv.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from fastconv.kernels import gemm
from fastconv.serialization import load, save
from fastconv.tensor import (
    Tensor,
    cat,
    float32,
    float64,
    int64,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    stack,
    tensor,
    zeros,
    zeros_like,
)

__version__ = _core.backend_info()["version"]

__all__ = [
    "Tensor",
    "__version__",
    "backend_info",
    "cat",
    "cuda",
    "data",
    "enable_grad",
    "float32",
    "float64",
    "functional",
    "gemm",
    "get_num_threads",
    "int64",
    "is_grad_enabled",
    "kernels",
    "load",
    "manual_seed",
    "models",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "randn",
    "save",
    "set_grad_enabled",
    "set_load_aware",
    "set_num_threads",
    "stack",
    "tensor",
    "thread_load",
    "zeros",
    "zeros_like",
]


def backend_info() -> dict:
    """What the compiled core was built with and is running now.

    Returns
    -------
    dict with keys ``compiled_isas`` (list of 'ref'/'avx2'/'avx512' in this build),
    ``supported_isas`` (those this CPU and OS can run, by CPUID and XGETBV), ``isa`` (the
    variant in use), ``num_threads`` (the requested count), ``load_aware``
    (:func:`set_load_aware`), ``openmp``, ``compiler``, ``cuda_built``, ``cpu`` (brand
    string), ``gemm_tile_mr_nr`` (micro-kernel tile per dtype) and ``version``.
    """
    return dict(_core.backend_info())


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel may use (>= 1; ValueError otherwise).

    The default is OpenMP's (``OMP_NUM_THREADS``, else the number of cores). Results of
    conv backward_weight are reproducible for a fixed thread count; see
    :func:`fastconv.kernels.conv2d_backward_weight`. Kernels may run on fewer threads than
    this while other processes keep cores busy, or on one in a process forked after
    kernels ran on several (:func:`thread_load`); their results stay those of `n`.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        msg = f"set_num_threads: n must be an int, got {type(n).__name__}"
        raise TypeError(msg)
    _core.set_num_threads(n)


def set_load_aware(enabled: bool) -> None:
    """Turn load-aware threading on (the default) or off.

    On, a kernel runs on at most the cores other processes left free: the CPUs this process
    may use, less the CPU time other processes (and the hypervisor's steal) took over the
    last ~0.1 s, from ``/proc/stat`` (Linux; elsewhere nothing is measured), rounded to whole
    cores and never below 1. A parallel region waits for its slowest thread, so a thread
    sharing a core with a busy process holds up the whole call: on a 2-core machine with a
    busy loop on one core, a 512^3 GEMM took 3.3-6.7x its 1-thread time at 2 threads, and
    1.0x with this on (``fastconv bench --busy-core``). Results do not depend on it: work whose bits depend on the split is
    split by :func:`get_num_threads`. ``FASTCONV_LOAD_AWARE=0`` turns it off at import.
    """
    if not isinstance(enabled, bool):
        msg = f"set_load_aware: enabled must be a bool, got {type(enabled).__name__}"
        raise TypeError(msg)
    _core.set_load_aware(enabled)


def thread_load() -> dict:
    """Load-aware threading's state (see :func:`set_load_aware`).

    Returns
    -------
    dict with ``load_aware`` (bool), ``requested`` (:func:`get_num_threads`), ``threads``
    (what a kernel gets now), ``other_cpus`` (CPUs other processes took over the last
    ~0.1 s; -1.0 before the first measurement, which kernels asking for 2+ threads take),
    ``free_cpus`` (``cpus`` less ``other_cpus``, rounded, >= 1; None before), ``cpus``
    (this process's affinity mask), ``capped_calls`` (thread-count decisions below the
    request since import) and ``forked_single`` (this process was forked after kernels ran
    on 2+ threads: its kernels run on one, since GNU OpenMP cannot restart its threads in a
    forked child, where a 2-thread call never returned; torch does the same).
    """
    return dict(_core.thread_load())
