"""CUDA device helpers. This build has no CUDA kernels: nothing is available.

``is_available()`` tells whether tensors can be moved to 'cuda'; it is False unless the
extension was built with CUDA support (``fc.backend_info()['cuda_built']``) and a device is
present, and code can branch on it exactly as on ``torch.cuda.is_available()``.
"""

from __future__ import annotations

from fastconv import _core

__all__ = ["device_count", "is_available"]


def is_available() -> bool:
    """True when a CUDA device can be used (never in a build without CUDA)."""
    return bool(_core.backend_info()["cuda_built"]) and device_count() > 0


def device_count() -> int:
    """Number of usable CUDA devices (0 in a build without CUDA)."""
    return 0
