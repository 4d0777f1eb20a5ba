"""MNIST and CIFAR-10 read from their original files, validated, as uint8 NCHW arrays.

Both datasets live under one data root (:func:`resolve_root`): ``<root>/mnist/`` holds the
four IDX files, ``<root>/cifar10/cifar-10-batches-py/`` the seven python pickles of
``cifar-10-python.tar.gz``. Nothing is converted or cached: every load reads the original
files and checks them, so a corrupt or truncated file is an error naming the file, never a
silently shorter dataset.

Sources: the IDX format as published with MNIST (LeCun, Cortes and Burges,
http://yann.lecun.com/exdb/mnist/), the CIFAR-10 python version (Krizhevsky 2009,
https://www.cs.toronto.edu/~kriz/cifar.html); the file table and md5s are those of
torchvision's ``MNIST``/``CIFAR10`` and of ``shared/data/README.md``.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fastconv.data import _download
from fastconv.data._download import DatasetError, DatasetNotFoundError, DownloadError

__all__ = [
    "CIFAR10",
    "MNIST",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "resolve_root",
]

_ENV = "FASTCONV_DATA"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$FASTCONV_DATA``, else ``~/.cache/fastconv``.

    Parameters
    ----------
    root : str or path-like, optional
        Folder holding ``mnist/`` and ``cifar10/``; ``~`` is expanded.

    Returns
    -------
    pathlib.Path
        The root (it need not exist yet).
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fastconv"


class _ImageDataset:
    """Shared behaviour: ``data`` (N, C, H, W) uint8, ``targets`` (N,) int64, ``transform``."""

    data: np.ndarray
    targets: np.ndarray
    classes: list[str] | tuple[str, ...]
    transform: Callable | None
    root: Path
    train: bool

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """``(image, label)``: ``data[index]`` (C, H, W) through ``transform`` if set."""
        image = self.data[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        lines = [
            f"{type(self).__name__}(split={split!r}, root={str(self.root)!r})",
            f"    images: {self.data.shape} {self.data.dtype}, {len(self.classes)} classes",
        ]
        if self.transform is not None:
            lines.append(f"    transform: {self.transform!r}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# MNIST: IDX files
# ---------------------------------------------------------------------------------------

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_READ_CHUNK = 1 << 22


def _find_idx(folder: Path, name: str) -> Path | None:
    """``name.gz`` if present (the published file), else the decompressed ``name``."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _open_idx(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _read_exact(f: io.BufferedIOBase, n: int) -> bytearray:
    """Up to ``n`` bytes; fewer only at end of stream. Chunked, so a header claiming more
    data than the file holds never allocates the claimed size."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(n - len(buf), _READ_CHUNK))
        if not chunk:
            break
        buf += chunk
    return buf


def _read_idx(path: Path, magic: int, header_dims: int) -> tuple[list[int], bytearray]:
    """Check the IDX header and the payload length of ``path``; return (dims, payload).

    The payload length must be exactly the product of the header dimensions: a shorter
    file is truncated and a longer one has trailing bytes, both errors.
    """
    header_bytes = 4 + 4 * header_dims
    try:
        with _open_idx(path) as f:
            header = _read_exact(f, header_bytes)
            if len(header) < header_bytes:
                raise DatasetError(
                    f"{path}: file holds {len(header)} bytes, shorter than the "
                    f"{header_bytes}-byte IDX header (truncated?)"
                )
            values = [int.from_bytes(header[k:k + 4], "big") for k in range(0, header_bytes, 4)]
            if values[0] != magic:
                swapped = int.from_bytes(header[:4], "little")
                hint = " (byte-swapped: written little-endian?)" if swapped == magic else ""
                raise DatasetError(
                    f"{path}: bad IDX magic number {values[0]} (0x{values[0]:08x}), "
                    f"expected {magic} (0x{magic:08x}){hint}; not an MNIST "
                    f"{'image' if magic == _IDX_IMAGES_MAGIC else 'label'} file"
                )
            dims = values[1:]
            expected = math.prod(dims)
            payload = _read_exact(f, expected)
            trailing = f.read(1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: corrupt or truncated file ({type(e).__name__}: {e})") from e
    shape = " x ".join(map(str, dims))
    if len(payload) < expected:
        raise DatasetError(
            f"{path}: truncated: the header announces {shape} = {expected} bytes of data "
            f"but the file holds only {len(payload)}"
        )
    if trailing:
        raise DatasetError(
            f"{path}: the header announces {shape} = {expected} bytes of data but the file "
            f"holds more (trailing bytes): wrong counts in the header?"
        )
    return dims, payload


def _load_idx_images(path: Path) -> np.ndarray:
    (n, rows, cols), payload = _read_idx(path, _IDX_IMAGES_MAGIC, 3)
    if (rows, cols) != (28, 28):
        raise DatasetError(f"{path}: images are {rows} x {cols}, MNIST images are 28 x 28")
    # frombuffer on the bytearray: writable, no copy
    return np.frombuffer(payload, dtype=np.uint8).reshape(n, 1, rows, cols)


def _load_idx_labels(path: Path, num_classes: int) -> np.ndarray:
    (n,), payload = _read_idx(path, _IDX_LABELS_MAGIC, 1)
    labels = np.frombuffer(payload, dtype=np.uint8)
    if n and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DatasetError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range "
            f"0..{num_classes - 1}"
        )
    return labels.astype(np.int64)


class MNIST(_ImageDataset):
    """The MNIST handwritten digits, read from the four original IDX files.

    Parameters
    ----------
    root : str or path-like, optional
        Data root (see :func:`resolve_root`); the files are looked up in ``<root>/mnist/``
        as ``train-images-idx3-ubyte.gz`` etc., or decompressed without ``.gz``.
    train : bool
        The 60,000-image training set (default) or the 10,000-image test set (``t10k-*``).
    download : bool
        Fetch missing files from :attr:`mirrors` (in order), MD5-checked against
        :attr:`resources`, written atomically (default False).
    transform : callable, optional
        Applied to the image in ``__getitem__`` (a (1, 28, 28) uint8 array), and by
        :class:`~fastconv.data.DataLoader` to whole (N, 1, 28, 28) batches.

    Attributes
    ----------
    data : ndarray, uint8, shape (N, 1, 28, 28)
        Pixels, 0 = background, 255 = full ink; row-major as in the file.
    targets : ndarray, int64, shape (N,)
        Labels 0..9.
    classes : list of str
        ``['0 - zero', ..., '9 - nine']`` (torchvision's names).

    Raises
    ------
    DatasetNotFoundError
        A file is missing (``download=False``); the message lists the expected paths.
    DownloadError
        ``download=True`` and no mirror delivered a file with the published MD5.
    DatasetError
        A file is corrupt: bad magic number (2051 images, 2049 labels), images not 28 x 28,
        data shorter or longer than the header announces, image and label counts that
        disagree, a label outside 0..9, a damaged gzip stream. The message names the file.

    Notes
    -----
    IDX layout: big-endian u32 magic, u32 dimensions (N, rows, cols for images; N for
    labels), then the bytes, image after image, each row-major.
    """

    mirrors: tuple[str, ...] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )
    resources: tuple[tuple[str, str], ...] = (
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    )
    classes: tuple[str, ...] = (
        "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
        "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
    )  # fmt: skip

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        download: bool = False,
        transform: Callable | None = None,
    ) -> None:
        self.root = resolve_root(root)
        self.train = bool(train)
        self.transform = transform
        self.classes = list(type(self).classes)
        folder = self.root / "mnist"
        if download:
            self.download(self.root)
        prefix = "train" if self.train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        paths = [_find_idx(folder, name) for name in names]
        if None in paths:
            missing = [f"{folder / name}.gz (or {name} decompressed)"
                       for name, p in zip(names, paths) if p is None]
            raise DatasetNotFoundError(_missing_message("MNIST", missing, self.root, "mnist/"))
        images_path, labels_path = paths
        self.data = _load_idx_images(images_path)
        self.targets = _load_idx_labels(labels_path, len(self.classes))
        if self.data.shape[0] != self.targets.shape[0]:
            raise DatasetError(
                f"{images_path} holds {self.data.shape[0]} images but {labels_path} holds "
                f"{self.targets.shape[0]} labels: the counts must agree"
            )

    @classmethod
    def download(cls, root: str | os.PathLike | None = None) -> None:
        """Fetch the missing MNIST files (all four) into ``<root>/mnist/``.

        Raises
        ------
        DownloadError
            No mirror delivered a file with its published MD5; says where to put it by hand.
        """
        folder = resolve_root(root) / "mnist"
        for filename, md5 in cls.resources:
            plain = filename.removesuffix(".gz")
            if _find_idx(folder, plain) is None:
                _download.fetch(
                    [base + filename for base in cls.mirrors], folder / filename, md5,
                    env_hint=f"set ${_ENV} to a folder holding mnist/",
                )


# ---------------------------------------------------------------------------------------
# CIFAR-10: python pickles, read with a restricted unpickler
# ---------------------------------------------------------------------------------------

def _numpy_reconstruct() -> Callable:
    # numpy >= 2 moved numpy.core to numpy._core (the old name warns); the pickles name the
    # old one. ndarray.__reduce__ hands back the function under either numpy version.
    return np.empty(0).__reduce__()[0]


_RECONSTRUCT = _numpy_reconstruct()


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # ndarray.__reduce__ always writes _reconstruct(ndarray, (0,), b'b'); the real shape
    # and bytes follow in __setstate__ (which checks their lengths agree).
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise pickle.UnpicklingError(
            f"_reconstruct({subtype!r}, {shape!r}, ...) is not how numpy pickles an ndarray"
        )
    return _RECONSTRUCT(subtype, shape, dtype)


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is allowed only for str and latin1, got {encoding!r}")
    return text.encode("latin-1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR-10 batch file needs.

    The original files name ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
    ``numpy.dtype`` (numpy 2 writes ``numpy._core.multiarray``); a copy re-saved by Python 3
    with protocol 2 also needs ``_codecs.encode`` (its way of writing bytes), allowed for
    latin-1 only. Anything else (``os.system``, ``builtins.eval``, ...) is refused before it is
    looked up, so no code in the file runs.
    """

    _ALLOWED: dict[tuple[str, str], Any] = {  # noqa: RUF012
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a CIFAR-10 batch only needs numpy's "
                f"_reconstruct, ndarray and dtype"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"refused persistent id {pid!r}")


def _load_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with str keys (Python 2 pickles give bytes keys)."""
    try:
        with path.open("rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except DatasetError:
        raise
    except Exception as e:  # a hostile or damaged pickle can fail in many ways; all are data errors
        raise DatasetError(f"{path}: not a valid CIFAR-10 pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: holds a {type(obj).__name__}, expected a dict")
    out = {}
    for key, value in obj.items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")  # noqa: PLW2901
        if not isinstance(key, str):
            raise DatasetError(f"{path}: dict key {key!r} is not a string")
        out[key] = value
    return out


def _require(path: Path, batch: dict[str, Any], key: str) -> Any:
    if key not in batch:
        raise DatasetError(f"{path}: missing key {key!r} (keys: {sorted(batch)})")
    return batch[key]


class CIFAR10(_ImageDataset):
    """CIFAR-10, 32 x 32 RGB images in 10 classes, read from the original python pickles.

    Parameters
    ----------
    root : str or path-like, optional
        Data root (see :func:`resolve_root`); files in ``<root>/cifar10/cifar-10-batches-py/``:
        ``data_batch_1`` ... ``data_batch_5`` (train), ``test_batch``, ``batches.meta``.
    train : bool
        The 50,000 training images (batches 1..5 in order) or the 10,000 test images.
    download : bool
        Fetch ``cifar-10-python.tar.gz`` from :attr:`mirrors` if files are missing, check
        its MD5 (:attr:`tgz_md5`) and extract the seven files (default False).
    transform : callable, optional
        Applied to the image in ``__getitem__`` (a (3, 32, 32) uint8 array), and by
        :class:`~fastconv.data.DataLoader` to whole (N, 3, 32, 32) batches.

    Attributes
    ----------
    data : ndarray, uint8, shape (N, 3, 32, 32)
        RGB planes (the files store each row as R, G, B planes of 32 x 32, row-major).
    targets : ndarray, int64, shape (N,)
        Labels 0..9.
    classes : list of str
        From ``batches.meta``: ``['airplane', 'automobile', ..., 'truck']``.

    Raises
    ------
    DatasetNotFoundError
        A file is missing (``download=False``); the message lists the expected paths.
    DownloadError
        ``download=True`` and no mirror delivered a tarball with the published MD5.
    DatasetError
        A pickle refers to anything but numpy's array reconstruction (it is refused before
        any code in it runs), or a batch lacks ``data``/``labels``, ``data`` is not uint8
        of shape (10000, 3072), the labels are not 10000 integers in 0..9, or
        ``batches.meta`` does not name 10 classes. The message names the file.

    Notes
    -----
    The pickles are read with a restricted unpickler, never plain ``pickle.load``: a
    pickle can run arbitrary code, and these files come from disk. The class attribute
    ``images_per_batch`` (10000) is the batch size checked; train index i is row i % 10000
    of ``data_batch_{i // 10000 + 1}``.
    """

    mirrors: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)
    tgz_name = "cifar-10-python.tar.gz"
    tgz_md5 = "c58f30108f718f92721af3b95e74349a"
    folder_name = "cifar-10-batches-py"
    train_files: tuple[str, ...] = tuple(f"data_batch_{k}" for k in range(1, 6))
    test_files: tuple[str, ...] = ("test_batch",)
    meta_file = "batches.meta"
    images_per_batch = 10000

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        download: bool = False,
        transform: Callable | None = None,
    ) -> None:
        self.root = resolve_root(root)
        self.train = bool(train)
        self.transform = transform
        if download:
            self.download(self.root)
        folder = self.root / "cifar10" / self.folder_name
        names = [*(self.train_files if self.train else self.test_files), self.meta_file]
        missing = [str(folder / name) for name in names if not (folder / name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                _missing_message("CIFAR10", missing, self.root, f"cifar10/{self.folder_name}/")
            )
        self.classes = self._load_meta(folder / self.meta_file)
        images, labels = [], []
        for name in names[:-1]:
            x, y = self._load_batch(folder / name, len(self.classes))
            images.append(x)
            labels.append(y)
        data = images[0] if len(images) == 1 else np.concatenate(images)
        self.data = data.reshape(-1, 3, 32, 32)
        self.targets = np.concatenate(labels)

    @staticmethod
    def _load_meta(path: Path) -> list[str]:
        names = _require(path, _load_pickle(path), "label_names")
        if not isinstance(names, list) or len(names) != 10:
            raise DatasetError(f"{path}: 'label_names' must be a list of 10 names, got {names!r}")
        out = []
        for name in names:
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")  # noqa: PLW2901
            if not isinstance(name, str):
                raise DatasetError(f"{path}: class name {name!r} is not a string")
            out.append(name)
        return out

    @classmethod
    def _load_batch(cls, path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        batch = _load_pickle(path)
        data = _require(path, batch, "data")
        labels = _require(path, batch, "labels")
        n = cls.images_per_batch
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (n, 3072):
            what = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                    else type(data).__name__)
            raise DatasetError(f"{path}: 'data' is a {what}, expected uint8 of shape ({n}, 3072)")
        if isinstance(labels, np.ndarray):
            labels_array = labels
        elif isinstance(labels, list) and all(type(v) is int for v in labels):
            labels_array = np.array(labels, dtype=np.int64) if labels else np.zeros(0, np.int64)
        else:
            raise DatasetError(f"{path}: 'labels' must be a list of ints")
        if labels_array.dtype.kind not in "iu" or labels_array.shape != (n,):
            raise DatasetError(
                f"{path}: 'labels' holds {labels_array.shape} values of {labels_array.dtype}, "
                f"expected {n} integers (one per image)"
            )
        labels_array = labels_array.astype(np.int64)
        bad = (labels_array < 0) | (labels_array >= num_classes)
        if bad.any():
            k = int(np.argmax(bad))
            raise DatasetError(
                f"{path}: label {int(labels_array[k])} at index {k} is out of range "
                f"0..{num_classes - 1}"
            )
        return data, labels_array

    @classmethod
    def download(cls, root: str | os.PathLike | None = None) -> None:
        """Fetch and extract ``cifar-10-python.tar.gz`` into ``<root>/cifar10/`` if needed.

        Only the seven regular files ``cifar-10-batches-py/<name>`` are taken from the
        archive (each written atomically); every other member is skipped, so no member name
        can write outside the folder. The tarball is deleted afterwards.

        Raises
        ------
        DownloadError
            No mirror delivered the tarball with MD5 :attr:`tgz_md5`.
        DatasetError
            The archive is damaged or lacks one of the files.
        """
        base = resolve_root(root) / "cifar10"
        names = [*cls.train_files, *cls.test_files, cls.meta_file]
        folder = base / cls.folder_name
        if all((folder / name).is_file() for name in names):
            return
        tgz = base / cls.tgz_name
        _download.fetch(
            [url + cls.tgz_name for url in cls.mirrors], tgz, cls.tgz_md5,
            env_hint=f"set ${_ENV} to a folder holding cifar10/{cls.folder_name}/",
        )
        _download.extract_members(tgz, cls.folder_name, names, folder)
        tgz.unlink()


def _missing_message(dataset: str, missing: list[str], root: Path, sub: str) -> str:
    listing = "\n".join(f"  {m}" for m in missing)
    return (
        f"{dataset}: files not found under the data root {root}:\n{listing}\n"
        f"Get them with {dataset}(root, download=True), or put the original files in "
        f"<root>/{sub} and pass root=... or set ${_ENV} to that root "
        f"(the default root is ~/.cache/fastconv)."
    )
