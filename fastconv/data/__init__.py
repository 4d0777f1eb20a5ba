"""fastconv.data: MNIST and CIFAR-10 from their original files, transforms, DataLoader.

``MNIST(root)`` and ``CIFAR10(root)`` read the published files under a data root (the
argument, else ``$FASTCONV_DATA``, else ``~/.cache/fastconv``) into uint8 NCHW arrays,
validating every header, shape and count; ``download=True`` fetches them, MD5-checked.
Transforms (``ToTensor``, ``Normalize``, ``Pad``, ``RandomCrop``, ``RandomHorizontalFlip``,
``Compose``) work on one image or a whole batch; :class:`DataLoader` yields (images, labels)
NumPy batches prepared in a background thread::

    from fastconv.data import MNIST, DataLoader, Compose, Pad, ToTensor, Normalize

    train = MNIST(train=True, transform=Compose([Pad(2), ToTensor(), Normalize(0.1307, 0.3081)]))
    for images, labels in DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...  # images: float32 (64, 1, 32, 32); labels: int64 (64,)
"""

from __future__ import annotations

from fastconv.data import transforms
from fastconv.data.datasets import (
    CIFAR10,
    MNIST,
    DatasetError,
    DatasetNotFoundError,
    DownloadError,
    resolve_root,
)
from fastconv.data.loader import DataLoader
from fastconv.data.transforms import (
    Compose,
    Normalize,
    Pad,
    RandomCrop,
    RandomHorizontalFlip,
    ToTensor,
    Transform,
)

__all__ = [
    "CIFAR10",
    "MNIST",
    "Compose",
    "DataLoader",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "Normalize",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ToTensor",
    "Transform",
    "resolve_root",
    "transforms",
]
