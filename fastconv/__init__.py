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
    "set_num_threads",
    "stack",
    "tensor",
    "zeros",
    "zeros_like",
]


def backend_info() -> dict:
    """What the compiled core was built with and is running now.

    Returns
    -------
    dict with keys ``compiled_isas`` (list of 'ref'/'avx2'/'avx512' in this build),
    ``supported_isas`` (those this CPU and OS can run, by CPUID and XGETBV), ``isa`` (the
    variant in use), ``num_threads``, ``openmp``, ``compiler``, ``cuda_built``, ``cpu``
    (brand string), ``gemm_tile_mr_nr`` (micro-kernel tile per dtype) and ``version``.
    """
    return dict(_core.backend_info())


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel may use (>= 1; ValueError otherwise).

    The default is OpenMP's (``OMP_NUM_THREADS``, else the number of cores). Results of
    conv backward_weight are reproducible for a fixed thread count; see
    :func:`fastconv.kernels.conv2d_backward_weight`.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        msg = f"set_num_threads: n must be an int, got {type(n).__name__}"
        raise TypeError(msg)
    _core.set_num_threads(n)
