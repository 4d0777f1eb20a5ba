"""fastconv.data: datasets on the real files, error paths on synthetic ones, download through
a local HTTP server, transforms against their definitions, and the DataLoader's contract.

Real-data tests read $FASTCONV_DATA (CI points it at shared/data) and are skipped, with the
reason, only when it is unset. Every expected number is a published one (shared/data/
README.md: class counts, md5s of the decompressed IDX files, CIFAR-10's channel means and
stds). torchvision is not a dependency: each transform is checked against its definition
((x − m)/s, numpy.pad, slices of the padded input, x[..., ::-1]).
"""

from __future__ import annotations

import functools
import gc
import gzip
import hashlib
import http.server
import io
import math
import os
import pickle
import socket
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastconv.data as D
from fastconv.data import _download
from fastconv.tensor import manual_seed

# ---------------------------------------------------------------------------------------
# published facts (shared/data/README.md)
# ---------------------------------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# md5 of the decompressed IDX files: pins every pixel and label, in order
MNIST_IDX_MD5 = {
    ("train", "images"): "6bbc9ace898e44ae57da46a324031adb",
    ("train", "labels"): "a25bea736e30d166cdddb491f175f624",
    ("t10k", "images"): "2646ac647ad5339dbf082846283269ea",
    ("t10k", "labels"): "27ae3e4e09519cfbb04c329615203637",
}
CIFAR_BATCH_COUNTS = {
    0: [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981],
    4: [1014, 1014, 952, 1016, 997, 1025, 980, 977, 1003, 1022],
}
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]  # fmt: skip
# per-channel mean and std of pixel/255 over the whole set, given to 4 decimals
CIFAR_TRAIN_MEAN, CIFAR_TRAIN_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR_TEST_MEAN, CIFAR_TEST_STD = (0.4942, 0.4851, 0.4504), (0.2467, 0.2429, 0.2616)
MNIST_TRAIN_MEAN, MNIST_TRAIN_STD = 0.1307, 0.3081
ROUNDING = 0.5e-4 + 1e-9  # a value published to 4 decimals is within half a unit of the last


@pytest.fixture(scope="module")
def data_root() -> Path:
    root = os.environ.get("FASTCONV_DATA")
    if not root:
        pytest.skip("FASTCONV_DATA is not set: real-data tests need the MNIST/CIFAR-10 files "
                    "(CI sets it to shared/data)")
    return Path(root)


@pytest.fixture(scope="module")
def mnist_train(data_root):
    del data_root
    return D.MNIST(train=True)  # root from $FASTCONV_DATA


@pytest.fixture(scope="module")
def mnist_test(data_root):
    return D.MNIST(data_root, train=False)


@pytest.fixture(scope="module")
def cifar_train(data_root):
    del data_root
    return D.CIFAR10(train=True)


@pytest.fixture(scope="module")
def cifar_test(data_root):
    return D.CIFAR10(data_root, train=False)


def channel_stats(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and population std of data/255, from 256-bin histograms."""
    values = np.arange(256, dtype=np.float64) / 255
    means, stds = [], []
    for c in range(data.shape[1]):
        hist = np.bincount(data[:, c].ravel(), minlength=256).astype(np.float64)
        n = hist.sum()
        mean = hist @ values / n
        means.append(mean)
        stds.append(math.sqrt(hist @ (values - mean) ** 2 / n))
    return np.array(means), np.array(stds)


# ---------------------------------------------------------------------------------------
# real files
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_mnist_real(mnist_train, mnist_test, train):
    ds = mnist_train if train else mnist_test
    n, counts = (60000, MNIST_TRAIN_COUNTS) if train else (10000, MNIST_TEST_COUNTS)
    assert ds.data.shape == (n, 1, 28, 28)
    assert ds.data.dtype == np.uint8
    assert ds.targets.shape == (n,)
    assert ds.targets.dtype == np.int64
    assert len(ds) == n
    assert np.bincount(ds.targets, minlength=10).tolist() == counts
    assert ds.classes[0] == "0 - zero"
    assert len(ds.classes) == 10
    # the decompressed files' published md5s, rebuilt from what we loaded: every byte right
    prefix = "train" if train else "t10k"
    images = (2051).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28))
    images += ds.data.tobytes()
    labels = (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + ds.targets.astype(np.uint8).tobytes()
    assert hashlib.md5(images).hexdigest() == MNIST_IDX_MD5[(prefix, "images")]
    assert hashlib.md5(labels).hexdigest() == MNIST_IDX_MD5[(prefix, "labels")]
    first = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4] if train else [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert ds.targets[:10].tolist() == first
    image, label = ds[0]
    assert image.shape == (1, 28, 28)
    assert label == first[0]
    assert isinstance(label, int)


def test_mnist_real_pixel_stats(mnist_train):
    mean, std = channel_stats(mnist_train.data)
    assert abs(mean[0] - MNIST_TRAIN_MEAN) <= ROUNDING, mean
    assert abs(std[0] - MNIST_TRAIN_STD) <= ROUNDING, std


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_cifar_real(cifar_train, cifar_test, train):
    ds = cifar_train if train else cifar_test
    n = 50000 if train else 10000
    assert ds.data.shape == (n, 3, 32, 32)
    assert ds.data.dtype == np.uint8
    assert ds.targets.shape == (n,)
    assert ds.targets.dtype == np.int64
    assert len(ds) == n
    assert ds.classes == CIFAR_CLASSES
    assert np.bincount(ds.targets, minlength=10).tolist() == [n // 10] * 10
    if train:  # batches concatenated in order 1..5
        for batch, counts in CIFAR_BATCH_COUNTS.items():
            rows = ds.targets[batch * 10000:(batch + 1) * 10000]
            assert np.bincount(rows, minlength=10).tolist() == counts
    assert int(ds.targets[0]) == (6 if train else 3)  # train[0] is a frog, test[0] a cat
    mean, std = channel_stats(ds.data)
    ref_mean, ref_std = (CIFAR_TRAIN_MEAN, CIFAR_TRAIN_STD) if train else (CIFAR_TEST_MEAN, CIFAR_TEST_STD)
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=ROUNDING)
    np.testing.assert_allclose(std, ref_std, rtol=0, atol=ROUNDING)


def test_real_loader_one_epoch(mnist_test):
    mean, std = MNIST_TRAIN_MEAN, MNIST_TRAIN_STD
    ds = D.MNIST(mnist_test.root, train=False,
                 transform=D.Compose([D.Pad(2), D.ToTensor(), D.Normalize(mean, std)]))
    loader = D.DataLoader(ds, batch_size=1000, shuffle=True, seed=0)
    order = loader.epoch_order(0)
    labels = []
    for k, (images, y) in enumerate(loader):
        assert images.shape == (1000, 1, 32, 32)
        assert images.dtype == np.float32
        idx = order[k * 1000:(k + 1) * 1000]
        expected = (np.pad(mnist_test.data[idx], ((0, 0), (0, 0), (2, 2), (2, 2))) / 255 - mean) / std
        np.testing.assert_allclose(images, expected, rtol=0, atol=1e-5)
        labels.append(y)
    assert np.bincount(np.concatenate(labels), minlength=10).tolist() == MNIST_TEST_COUNTS


# ---------------------------------------------------------------------------------------
# data root
# ---------------------------------------------------------------------------------------

def test_resolve_root(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "env"))
    assert D.resolve_root(tmp_path / "arg") == tmp_path / "arg"
    assert D.resolve_root() == tmp_path / "env"
    monkeypatch.delenv("FASTCONV_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.resolve_root() == tmp_path / "home" / ".cache" / "fastconv"


# ---------------------------------------------------------------------------------------
# synthetic MNIST files
# ---------------------------------------------------------------------------------------

def idx_images(images: np.ndarray, magic: int = 2051, count: int | None = None) -> bytes:
    n, rows, cols = images.shape
    header = [magic, n if count is None else count, rows, cols]
    return b"".join(v.to_bytes(4, "big") for v in header) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 2049, count: int | None = None) -> bytes:
    header = [magic, len(labels) if count is None else count]
    return b"".join(v.to_bytes(4, "big") for v in header) + labels.astype(np.uint8).tobytes()


def write_mnist(root: Path, images_bytes: bytes, labels_bytes: bytes, *, gz: bool = True,
                prefix: str = "train") -> tuple[Path, Path]:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, payload in (("images-idx3", images_bytes), ("labels-idx1", labels_bytes)):
        path = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(payload) if gz else payload)
        paths.append(path)
    return paths[0], paths[1]


def small_mnist(rng, n=5):
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_mnist_synthetic_roundtrip(tmp_path, rng, gz):
    images, labels = small_mnist(rng)
    write_mnist(tmp_path, idx_images(images), idx_labels(labels), gz=gz)
    flip = D.RandomHorizontalFlip(p=1.0)
    ds = D.MNIST(tmp_path, train=True, transform=flip)
    np.testing.assert_array_equal(ds.data[:, 0], images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert ds.data.flags.writeable
    image, label = ds[3]
    np.testing.assert_array_equal(image[0], images[3][:, ::-1])
    assert label == labels[3]
    assert len(ds) == 5
    assert "MNIST" in repr(ds)


def test_mnist_test_split_files(tmp_path, rng):
    images, labels = small_mnist(rng, 3)
    write_mnist(tmp_path, idx_images(images), idx_labels(labels), prefix="t10k")
    ds = D.MNIST(tmp_path, train=False)
    np.testing.assert_array_equal(ds.targets, labels)
    with pytest.raises(D.DatasetNotFoundError, match="train-images-idx3-ubyte"):
        D.MNIST(tmp_path, train=True)


def _mnist_error(tmp_path, rng, case, gz):
    images, labels = small_mnist(rng)
    img, lab = idx_images(images), idx_labels(labels)
    if case == "images magic":
        img = idx_images(images, magic=2049)
    elif case == "labels magic":
        lab = idx_labels(labels, magic=2051)
    elif case == "byte-swapped magic":
        img = (2051).to_bytes(4, "little") + img[4:]
    elif case == "image size":
        img = idx_images(rng.integers(0, 256, (5, 28, 27), dtype=np.uint8))
    elif case == "truncated images":
        img = img[:-100]
    elif case == "count larger than data":
        img = idx_images(images, count=6)
    elif case == "trailing bytes":
        lab = idx_labels(labels, count=4)
    elif case == "short header":
        img = img[:10]
    elif case == "count mismatch":
        lab = idx_labels(np.concatenate([labels, [1]]))
    elif case == "label range":
        lab = idx_labels(np.array([1, 2, 10, 3, 4]))
    return write_mnist(tmp_path, img, lab, gz=gz)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize(("case", "which", "pattern"), [
    ("images magic", 0, r"bad IDX magic number 2049 .*expected 2051"),
    ("labels magic", 1, r"bad IDX magic number 2051 .*expected 2049"),
    ("byte-swapped magic", 0, r"byte-swapped"),
    ("image size", 0, r"28 x 27, MNIST images are 28 x 28"),
    ("truncated images", 0, r"truncated: .*5 x 28 x 28 = 3920 bytes .*only 3820"),
    ("count larger than data", 0, r"truncated: .*6 x 28 x 28"),
    ("trailing bytes", 1, r"trailing bytes"),
    ("short header", 0, r"shorter than the 16-byte IDX header"),
    ("count mismatch", 1, r"holds 5 images but .* holds 6 labels"),
    ("label range", 1, r"label 10 at index 2 is out of range 0..9"),
])
def test_mnist_corrupt_files(tmp_path, rng, case, which, pattern, gz):
    paths = _mnist_error(tmp_path, rng, case, gz)
    with pytest.raises(D.DatasetError, match=pattern) as info:
        D.MNIST(tmp_path)
    assert str(paths[which]) in str(info.value), "the message must name the file"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "crc"])
def test_mnist_corrupt_gzip(tmp_path, rng, damage):
    images, labels = small_mnist(rng)
    image_path, _ = write_mnist(tmp_path, idx_images(images), idx_labels(labels))
    blob = image_path.read_bytes()
    if damage == "garbage":
        blob = b"this is not a gzip stream" * 10
    elif damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:  # flip a bit of the stored CRC32 (trailer bytes -8..-4)
        blob = blob[:-8] + bytes([blob[-8] ^ 1]) + blob[-7:]
    image_path.write_bytes(blob)
    with pytest.raises(D.DatasetError, match="corrupt or truncated") as info:
        D.MNIST(tmp_path)
    assert str(image_path) in str(info.value)


def test_mnist_missing_files_message(tmp_path):
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.MNIST(tmp_path / "nowhere")
    message = str(info.value)
    folder = tmp_path / "nowhere" / "mnist"
    assert str(folder / "train-images-idx3-ubyte.gz") in message
    assert str(folder / "train-labels-idx1-ubyte.gz") in message
    assert "download=True" in message
    assert "FASTCONV_DATA" in message
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------------------
# synthetic CIFAR-10 files
# ---------------------------------------------------------------------------------------

CIFAR_SMALL = 4  # images per synthetic batch (the real files hold 10000)


@pytest.fixture
def small_cifar(monkeypatch):
    monkeypatch.setattr(D.CIFAR10, "images_per_batch", CIFAR_SMALL)


def cifar_batch(rng, n=CIFAR_SMALL, label: str = "batch"):
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{k}.png".encode() for k in range(n)],
    }


CIFAR_META = {b"num_cases_per_batch": CIFAR_SMALL,
              b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}


def cifar_files(rng, protocol: int = 2) -> dict[str, bytes]:
    """The seven files of cifar-10-batches-py, small, pickled with protocol 2 as the originals."""
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    files = {name: pickle.dumps(cifar_batch(rng, label=name), protocol=protocol) for name in names}
    files["batches.meta"] = pickle.dumps(CIFAR_META, protocol=protocol)
    return files


def write_cifar(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


@pytest.mark.usefixtures("small_cifar")
@pytest.mark.parametrize(("protocol", "numpy_module"), [
    (2, "numpy._core.multiarray"), (2, "numpy.core.multiarray"), (4, "numpy._core.multiarray"),
])
def test_cifar_synthetic_roundtrip(tmp_path, rng, protocol, numpy_module):
    files = cifar_files(rng, protocol)
    # protocol 2 names globals as text, so the module name can be swapped in place: the real
    # files (numpy 1 era) say numpy.core, numpy 2 writes numpy._core; both must load
    for name, blob in files.items():
        files[name] = blob.replace(b"numpy._core.multiarray", numpy_module.encode()).replace(
            b"numpy.core.multiarray", numpy_module.encode())
    write_cifar(tmp_path, files)
    train = D.CIFAR10(tmp_path, train=True)
    test = D.CIFAR10(tmp_path, train=False)
    batches = [pickle.loads(files[f"data_batch_{k}"]) for k in range(1, 6)]
    np.testing.assert_array_equal(
        train.data, np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(train.targets, np.concatenate([b[b"labels"] for b in batches]))
    assert test.data.shape == (CIFAR_SMALL, 3, 32, 32)
    assert train.classes == CIFAR_CLASSES
    # channel-planar rows: the first 1024 bytes of a row are the red plane
    np.testing.assert_array_equal(test.data[1, 0].ravel(), pickle.loads(files["test_batch"])[b"data"][1, :1024])


class _Evil:
    """Pickles as a call to ``func(*args)``: what a malicious pickle does on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.usefixtures("small_cifar")
@pytest.mark.parametrize("target", ["os.system", "builtins.exec", "numpy.load"])
def test_cifar_malicious_pickle_refused(tmp_path, rng, target):
    marker = tmp_path / "pwned"
    func = {"os.system": os.system, "builtins.exec": exec, "numpy.load": np.load}[target]
    arg = {"os.system": f"touch {marker}",
           "builtins.exec": f"open({str(marker)!r}, 'w').close()",
           "numpy.load": str(marker)}[target]
    files = cifar_files(rng)
    batch = cifar_batch(rng, label="test_batch")
    batch[b"labels"] = _Evil(func, arg)
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    folder = write_cifar(tmp_path, files)
    with pytest.raises(D.DatasetError, match=r"refused global") as info:
        D.CIFAR10(tmp_path, train=False)
    assert str(folder / "test_batch") in str(info.value)
    assert not marker.exists(), "the pickle's payload ran"


@pytest.mark.usefixtures("small_cifar")
def test_cifar_reconstruct_other_subtype_refused(tmp_path, rng):
    files = cifar_files(rng)
    batch = cifar_batch(rng)
    batch[b"data"] = np.ma.masked_array(batch[b"data"])  # _reconstruct(MaskedArray, ...)
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    write_cifar(tmp_path, files)
    with pytest.raises(D.DatasetError, match=r"refused global|not how numpy pickles"):
        D.CIFAR10(tmp_path, train=False)


@pytest.mark.usefixtures("small_cifar")
@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda b: b.pop(b"data"), r"missing key 'data'"),
    (lambda b: b.pop(b"labels"), r"missing key 'labels'"),
    (lambda b: b.__setitem__(b"data", b[b"data"][:, :3071]), r"uint8 array of shape \(4, 3071\)"),
    (lambda b: b.__setitem__(b"data", b[b"data"].astype(np.int16)), r"'data' is a int16 array"),
    (lambda b: b.__setitem__(b"data", b[b"data"][:3]), r"shape \(3, 3072\), expected uint8 of shape \(4, 3072\)"),
    (lambda b: b.__setitem__(b"labels", b[b"labels"][:3]), r"'labels' holds \(3,\) values"),
    (lambda b: b.__setitem__(b"labels", [0, 1, 2, 10]), r"label 10 at index 3 is out of range"),
    (lambda b: b.__setitem__(b"labels", [0, 1, -1, 2]), r"label -1 at index 2 is out of range"),
    (lambda b: b.__setitem__(b"labels", [0, 1, 2.5, 2]), r"'labels' must be a list of ints"),
], ids=["no-data", "no-labels", "row-length", "dtype", "rows", "label-count", "label-high",
        "label-negative", "label-float"])
def test_cifar_invalid_batch(tmp_path, rng, edit, pattern):
    files = cifar_files(rng)
    batch = cifar_batch(rng)
    edit(batch)
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    folder = write_cifar(tmp_path, files)
    with pytest.raises(D.DatasetError, match=pattern) as info:
        D.CIFAR10(tmp_path, train=False)
    assert str(folder / "test_batch") in str(info.value)


@pytest.mark.usefixtures("small_cifar")
@pytest.mark.parametrize(("blob", "pattern"), [
    (b"\x80\x02}q\x00(U\x04data", r"not a valid CIFAR-10 pickle"),  # truncated
    (b"garbage", r"not a valid CIFAR-10 pickle"),
    (pickle.dumps([1, 2, 3], protocol=2), r"holds a list, expected a dict"),
], ids=["truncated", "garbage", "not-a-dict"])
def test_cifar_corrupt_pickle(tmp_path, rng, blob, pattern):
    files = cifar_files(rng)
    files["data_batch_3"] = blob
    folder = write_cifar(tmp_path, files)
    with pytest.raises(D.DatasetError, match=pattern) as info:
        D.CIFAR10(tmp_path, train=True)
    assert str(folder / "data_batch_3") in str(info.value)


@pytest.mark.usefixtures("small_cifar")
def test_cifar_bad_meta(tmp_path, rng):
    files = cifar_files(rng)
    files["batches.meta"] = pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2)
    write_cifar(tmp_path, files)
    with pytest.raises(D.DatasetError, match=r"batches.meta: 'label_names' must be a list of 10"):
        D.CIFAR10(tmp_path, train=False)


def test_cifar_missing_files_message(tmp_path, rng):
    files = cifar_files(rng)
    del files["data_batch_4"]
    folder = write_cifar(tmp_path, files)
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.CIFAR10(tmp_path, train=True)
    message = str(info.value)
    assert str(folder / "data_batch_4") in message
    assert "data_batch_3" not in message
    assert "download=True" in message
    assert "FASTCONV_DATA" in message


# ---------------------------------------------------------------------------------------
# download, through a local HTTP server
# ---------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        del format, args


@pytest.fixture
def http_server(tmp_path):
    """(folder served, base URL) of an HTTP server on 127.0.0.1, stopped afterwards."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def dead_mirrors():
    """Two mirrors that fail: a closed port (refused) and one that never answers (timeout)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()  # accepts connections (backlog) but never replies
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        yield [f"http://127.0.0.1:{closed_port}/", f"http://127.0.0.1:{silent.getsockname()[1]}/"]
    finally:
        silent.close()


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setattr(_download, "TIMEOUT", 0.5)


def serve_mnist(served: Path, rng, n=6):
    """gzip IDX files for both splits under served/mnist/; returns (resources, arrays)."""
    folder = served / "mnist"
    folder.mkdir()
    resources, arrays = [], {}
    for prefix in ("train", "t10k"):
        images, labels = small_mnist(rng, n)
        arrays[prefix] = images, labels
        for kind, payload in (("images-idx3", idx_images(images)), ("labels-idx1", idx_labels(labels))):
            name = f"{prefix}-{kind}-ubyte.gz"
            blob = gzip.compress(payload)
            (folder / name).write_bytes(blob)
            resources.append((name, hashlib.md5(blob).hexdigest()))
    return resources, arrays


@pytest.mark.usefixtures("short_timeout")
def test_mnist_download(tmp_path, rng, http_server, dead_mirrors, monkeypatch, capsys):
    served, url = http_server
    resources, arrays = serve_mnist(served, rng)
    monkeypatch.setattr(D.MNIST, "resources", resources)
    # the dead mirrors come first: each file is fetched from the third
    monkeypatch.setattr(D.MNIST, "mirrors", [*dead_mirrors, url + "mnist/"])
    root = tmp_path / "root"
    ds = D.MNIST(root, train=True, download=True)
    np.testing.assert_array_equal(ds.data[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(ds.targets, arrays["train"][1])
    test = D.MNIST(root, train=False)  # all four files were fetched
    np.testing.assert_array_equal(test.targets, arrays["t10k"][1])
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(n for n, _ in resources)
    assert "downloading" in capsys.readouterr().err
    # present files are not fetched again: with no mirror at all, download=True still works
    monkeypatch.setattr(D.MNIST, "mirrors", [])
    D.MNIST(root, train=True, download=True)


def test_download_md5_mismatch(tmp_path, rng, http_server, monkeypatch):
    served, url = http_server
    resources, _ = serve_mnist(served, rng)
    resources[0] = (resources[0][0], "0" * 32)
    monkeypatch.setattr(D.MNIST, "resources", resources)
    monkeypatch.setattr(D.MNIST, "mirrors", [url + "mnist/"])
    root = tmp_path / "root"
    with pytest.raises(D.DownloadError, match=r"md5 mismatch: got [0-9a-f]{32}, expected 0{32}"):
        D.MNIST(root, download=True)
    # nothing under the final name, no temporary left behind
    assert not any((root / "mnist").iterdir())


@pytest.mark.usefixtures("short_timeout")
def test_download_unreachable(tmp_path, dead_mirrors, monkeypatch):
    monkeypatch.setattr(D.MNIST, "mirrors", [*dead_mirrors, "ftp://example.invalid/"])
    root = tmp_path / "root"
    start = time.monotonic()
    with pytest.raises(D.DownloadError) as info:
        D.MNIST(root, download=True)
    assert time.monotonic() - start < 30, "the timeout must bound a dead mirror"
    message = str(info.value)
    for mirror in dead_mirrors:
        assert mirror + "train-images-idx3-ubyte.gz" in message
    assert "only http(s)" in message
    assert "offline" in message
    assert str(root / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "FASTCONV_DATA" in message


def test_download_http_404_then_next_mirror(tmp_path, rng, http_server, monkeypatch):
    served, url = http_server
    resources, _ = serve_mnist(served, rng)
    monkeypatch.setattr(D.MNIST, "resources", resources)
    monkeypatch.setattr(D.MNIST, "mirrors", [url + "missing/", url + "mnist/"])
    assert len(D.MNIST(tmp_path / "root", download=True)) == 6


def make_cifar_tarball(path: Path, files: dict[str, bytes]) -> None:
    """A cifar-10-python.tar.gz lookalike, with hostile members the extraction must skip."""
    def add(tar, name, blob=b"", kind=tarfile.REGTYPE, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, len(blob)
        tar.addfile(info, io.BytesIO(blob) if blob else None)

    with tarfile.open(path, "w:gz") as tar:
        add(tar, "cifar-10-batches-py", kind=tarfile.DIRTYPE)
        add(tar, "../escape.txt", b"escaped")
        add(tar, "/tmp/fastconv-absolute-escape.txt", b"escaped")
        add(tar, "cifar-10-batches-py/batches.meta", kind=tarfile.SYMTYPE, link="/etc/passwd")
        for name, blob in files.items():
            add(tar, f"cifar-10-batches-py/{name}", blob)
        add(tar, "cifar-10-batches-py/readme.html", b"<html></html>")


@pytest.mark.usefixtures("small_cifar")
def test_cifar_download(tmp_path, rng, http_server, monkeypatch):
    served, url = http_server
    files = cifar_files(rng)
    tarball = served / "cifar-10-python.tar.gz"
    make_cifar_tarball(tarball, files)
    monkeypatch.setattr(D.CIFAR10, "mirrors", [url + "nothing-here/", url])
    monkeypatch.setattr(D.CIFAR10, "tgz_md5", hashlib.md5(tarball.read_bytes()).hexdigest())
    root = tmp_path / "a" / "root"
    ds = D.CIFAR10(root, train=False, download=True)
    np.testing.assert_array_equal(
        ds.data.reshape(CIFAR_SMALL, -1), pickle.loads(files["test_batch"])[b"data"])
    folder = root / "cifar10" / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert (folder / "batches.meta").read_bytes() == files["batches.meta"]  # not the symlink
    assert sorted(p.name for p in (root / "cifar10").iterdir()) == ["cifar-10-batches-py"]
    assert not (tmp_path / "a" / "escape.txt").exists()
    assert not (root / "escape.txt").exists()
    assert not Path("/tmp/fastconv-absolute-escape.txt").exists()
    assert len(D.CIFAR10(root, train=True)) == 5 * CIFAR_SMALL


def test_cifar_download_md5_mismatch(tmp_path, rng, http_server, monkeypatch):
    served, url = http_server
    make_cifar_tarball(served / "cifar-10-python.tar.gz", cifar_files(rng))
    monkeypatch.setattr(D.CIFAR10, "mirrors", [url])
    with pytest.raises(D.DownloadError, match="md5 mismatch") as info:
        D.CIFAR10(tmp_path, download=True)
    assert "c58f30108f718f92721af3b95e74349a" in str(info.value)
    assert not (tmp_path / "cifar10" / "cifar-10-batches-py").exists()


# ---------------------------------------------------------------------------------------
# transforms vs their definitions
# ---------------------------------------------------------------------------------------

F32_ROUNDING = 4 * 2.0**-23  # a few float32 roundings, relative


def test_to_tensor(rng):
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = D.ToTensor()(x)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, x.astype(np.float32) / np.float32(255))
    assert out.min() == 0.0
    assert out.max() == 1.0
    batch = rng.integers(0, 256, (3, 2, 5, 4), dtype=np.uint8)
    np.testing.assert_array_equal(D.ToTensor()(batch), batch.astype(np.float32) / np.float32(255))
    floats = rng.random((2, 3, 3))
    np.testing.assert_array_equal(D.ToTensor()(floats), floats.astype(np.float32))
    with pytest.raises(TypeError, match="ToTensor: expected uint8"):
        D.ToTensor()(np.zeros((1, 2, 2), np.int32))
    with pytest.raises(ValueError, match=r"ToTensor: expected an image .* got shape \(2, 2\)"):
        D.ToTensor()(np.zeros((2, 2), np.uint8))


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 3, 5, 7)], ids=["image", "batch"])
def test_normalize(rng, shape):
    x = rng.random(shape, dtype=np.float32)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ref = (x.astype(np.float64) - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    out = D.Normalize(mean, std)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=F32_ROUNDING, atol=F32_ROUNDING * np.abs(ref).max())
    np.testing.assert_array_equal(x, x.copy())  # input untouched
    # one value for all channels
    np.testing.assert_allclose(D.Normalize(0.5, 0.25)(x), (x.astype(np.float64) - 0.5) / 0.25,
                               rtol=F32_ROUNDING, atol=F32_ROUNDING * 4)
    y = x.copy()
    assert D.Normalize(mean, std, inplace=True)(y) is y


def test_normalize_errors():
    with pytest.raises(ValueError, match="std evaluated to zero"):
        D.Normalize((0.5, 0.5), (1.0, 0.0))
    with pytest.raises(ValueError, match="mean has 2 values for 3 channels"):
        D.Normalize((0.5, 0.5), (1.0, 1.0))(np.zeros((3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="apply ToTensor first"):
        D.Normalize(0.5, 0.5)(np.zeros((3, 2, 2), np.uint8))


@pytest.mark.parametrize(("padding", "np_widths"), [
    (2, ((2, 2), (2, 2))),
    ((1, 3), ((3, 3), (1, 1))),  # (left/right, top/bottom)
    ((1, 2, 3, 4), ((2, 4), (1, 3))),  # (left, top, right, bottom)
    ([0], ((0, 0), (0, 0))),
])
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("batched", [False, True], ids=["image", "batch"])
def test_pad_vs_numpy(rng, padding, np_widths, mode, batched):
    x = rng.integers(0, 256, (2, 3, 5, 6) if batched else (3, 5, 6), dtype=np.uint8)
    widths = [(0, 0)] * (x.ndim - 2) + list(np_widths)
    kwargs = {"constant_values": 7} if mode == "constant" else {}
    out = D.Pad(padding, fill=7, padding_mode=mode)(x)
    np.testing.assert_array_equal(out, np.pad(x, widths, mode=mode, **kwargs))
    assert out.dtype == x.dtype


def test_pad_per_channel_fill_and_errors(rng):
    x = rng.random((2, 3, 4, 4)).astype(np.float32)
    out = D.Pad(1, fill=(1.0, 2.0, 3.0))(x)
    for c in range(3):
        np.testing.assert_array_equal(out[:, c], np.pad(x[:, c], ((0, 0), (1, 1), (1, 1)),
                                                        constant_values=c + 1.0))
    with pytest.raises(ValueError, match="Pad: padding must be an int or a sequence of 1, 2 or 4"):
        D.Pad((1, 2, 3))
    with pytest.raises(ValueError, match="Pad: padding must be non-negative"):
        D.Pad(-1)
    with pytest.raises(ValueError, match="Pad: padding_mode must be one of"):
        D.Pad(1, padding_mode="wrap")
    with pytest.raises(ValueError, match="not representable in uint8"):
        D.Pad(1, fill=300)(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"reflect padding .* too large"):
        D.Pad(4, padding_mode="reflect")(np.zeros((1, 4, 4), np.uint8))


def _replay_offsets(seed, n, positions_h, positions_w):
    """The documented draws of RandomCrop: i for all N, then j for all N."""
    g = np.random.default_rng(seed)
    return g.integers(0, positions_h, size=n), g.integers(0, positions_w, size=n)


@pytest.mark.parametrize(("size", "padding"), [(32, 4), ((5, 7), None), ((28, 30), (1, 2, 3, 0))])
def test_random_crop_is_a_slice_at_the_drawn_offsets(rng, size, padding):
    n = 16
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    h, w = (size, size) if isinstance(size, int) else size
    out = D.RandomCrop(size, padding=padding)(x, rng=np.random.default_rng(5))
    if padding is None:
        padded = x
    else:
        left, top, right, bottom = (padding,) * 4 if isinstance(padding, int) else padding
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    assert out.shape == (n, 3, h, w)
    assert out.dtype == np.uint8
    i, j = _replay_offsets(5, n, padded.shape[2] - h + 1, padded.shape[3] - w + 1)
    for k in range(n):
        np.testing.assert_array_equal(out[k], padded[k, :, i[k]:i[k] + h, j[k]:j[k] + w])


def test_random_crop_offsets_uniform_and_single_image(rng):
    # each of the 9 offsets per axis is drawn with probability 1/9: counts within 5 sigma
    n = 4500
    x = np.broadcast_to(np.arange(40, dtype=np.float32), (n, 1, 40, 40)).copy()
    x += np.arange(40, dtype=np.float32)[:, None] * 100  # value = 100 row + col
    out = D.RandomCrop(32)(x, rng=rng)
    rows, cols = (out[:, 0, 0, 0] // 100).astype(int), (out[:, 0, 0, 0] % 100).astype(int)
    for offsets in (rows, cols):
        counts = np.bincount(offsets, minlength=9)
        assert counts.size == 9
        sigma = math.sqrt(n * (1 / 9) * (8 / 9))
        assert np.all(np.abs(counts - n / 9) <= 5 * sigma), counts
    # a single image is a batch of one, with the same draws
    image = x[0]
    single = D.RandomCrop(32, padding=2)(image, rng=np.random.default_rng(1))
    batch = D.RandomCrop(32, padding=2)(image[None], rng=np.random.default_rng(1))
    np.testing.assert_array_equal(single, batch[0])
    assert single.shape == (1, 32, 32)


def test_random_crop_edges(rng):
    x = rng.integers(0, 256, (2, 3, 6, 6), dtype=np.uint8)
    np.testing.assert_array_equal(D.RandomCrop(6)(x, rng=rng), x)  # nothing to choose
    with pytest.raises(ValueError, match=r"crop size \(8, 8\) is larger than the \(padded\) input \(6, 6\)"):
        D.RandomCrop(8)(x, rng=rng)
    out = D.RandomCrop(8, pad_if_needed=True, fill=255)(x, rng=rng)
    assert out.shape == (2, 3, 8, 8)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_random_horizontal_flip(rng, p):
    n = 4000
    x = rng.integers(0, 256, (n, 2, 3, 5), dtype=np.uint8)
    x[..., 0] = 0  # left column 0, right column 255: flipped and unflipped always differ
    x[..., -1] = 255
    out = D.RandomHorizontalFlip(p)(x, rng=np.random.default_rng(7))
    flipped = out[:, 0, 0, 0] == 255
    np.testing.assert_array_equal(out[flipped], x[flipped][..., ::-1])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(flipped.sum() - n * p) <= 5 * sigma + 1e-9
    np.testing.assert_array_equal(flipped, np.random.default_rng(7).random(n) < p)  # documented draw
    single = D.RandomHorizontalFlip(1.0)(x[0])
    np.testing.assert_array_equal(single, x[0][..., ::-1])
    with pytest.raises(ValueError, match="p must be in"):
        D.RandomHorizontalFlip(1.5)


def test_compose_passes_rng_and_plain_callables(rng):
    x = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    steps = [D.RandomCrop(32, padding=4), D.RandomHorizontalFlip(), lambda a: a + 0,
             D.ToTensor(), D.Normalize(0.5, 0.5)]
    out = D.Compose(steps)(x, rng=np.random.default_rng(3))
    g = np.random.default_rng(3)
    expected = x
    for t in steps:
        expected = t(expected, rng=g) if isinstance(t, D.Transform) else t(expected)
    np.testing.assert_array_equal(out, expected)
    assert "RandomCrop" in repr(D.Compose(steps))


def test_random_transforms_default_to_fastconv_generator(rng):
    x = rng.integers(0, 256, (8, 1, 10, 10), dtype=np.uint8)
    t = D.Compose([D.RandomCrop(8), D.RandomHorizontalFlip()])
    manual_seed(11)
    first = t(x)
    manual_seed(11)
    np.testing.assert_array_equal(t(x), first)


# ---------------------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------------------

class ArrayDataset:
    """data (N, 1, 2, 2) whose pixels encode the index, targets = index: order is visible."""

    def __init__(self, n: int, transform=None):
        pixels = (np.arange(n) % 256).astype(np.uint8)
        self.data = np.broadcast_to(pixels[:, None, None, None], (n, 1, 2, 2)).copy()
        self.targets = np.arange(n, dtype=np.int64)
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], int(self.targets[i])


class ItemDataset:
    """No data/targets arrays: only __len__/__getitem__ (the per-item fallback)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 2, 2), i, np.float32), i


def epoch_labels(loader) -> list[np.ndarray]:
    return [labels for _, labels in loader]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("n", "batch_size", "drop_last"), [(10, 3, False), (10, 3, True),
                                                             (12, 4, True), (5, 8, False)])
@pytest.mark.parametrize("prefetch", [0, 2])
def test_loader_each_sample_once(shuffle, n, batch_size, drop_last, prefetch):
    loader = D.DataLoader(ArrayDataset(n), batch_size=batch_size, shuffle=shuffle,
                          drop_last=drop_last, seed=1, prefetch=prefetch)
    expected_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    assert len(loader) == expected_batches
    for epoch in range(2):
        batches = list(loader)
        assert len(batches) == expected_batches
        labels = np.concatenate([y for _, y in batches]) if batches else np.zeros(0, np.int64)
        for images, y in batches:
            assert images.dtype == np.uint8  # no transform converts: returned as is
            assert images.shape[1:] == (1, 2, 2)
            assert y.dtype == np.int64
            np.testing.assert_array_equal(images[:, 0, 0, 0], y)  # image and label together
        assert all(len(y) == batch_size for y in [b[1] for b in batches[:-1]])
        order = loader.epoch_order(epoch)
        np.testing.assert_array_equal(labels, order[:len(labels)])
        if drop_last:
            assert len(labels) == expected_batches * batch_size
            assert len(np.unique(labels)) == len(labels)
        else:
            np.testing.assert_array_equal(np.sort(labels), np.arange(n))
        if not shuffle:
            np.testing.assert_array_equal(labels, np.arange(len(labels)))


def test_loader_seed_determinism_and_epoch_orders():
    def run(seed, epochs=3, prefetch=2):
        t = D.Compose([D.RandomHorizontalFlip(), D.ToTensor()])
        ds = ArrayDataset(50)
        ds.data = np.random.default_rng(0).integers(0, 256, (50, 1, 2, 3), dtype=np.uint8)
        loader = D.DataLoader(ds, batch_size=7, shuffle=True, seed=seed, transform=t, prefetch=prefetch)
        return [[(x.copy(), y.copy()) for x, y in loader] for _ in range(epochs)]

    a, b, c = run(123), run(123, prefetch=0), run(124)
    for epoch_a, epoch_b in zip(a, b):
        assert len(epoch_a) == len(epoch_b)
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    orders = [np.concatenate([y for _, y in epoch]) for epoch in a]
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.concatenate([y for _, y in c[0]]))
    # epoch k's order is the (k+1)-th permutation of default_rng(seed)
    g = np.random.default_rng(123)
    for order in orders:
        np.testing.assert_array_equal(order, g.permutation(50))
    loader = D.DataLoader(ArrayDataset(50), batch_size=7, shuffle=True, seed=123)
    np.testing.assert_array_equal(loader.epoch_order(2), orders[2])  # random access
    np.testing.assert_array_equal(loader.epoch_order(0), orders[0])


def test_loader_seed_none_is_random_but_self_consistent():
    a = D.DataLoader(ArrayDataset(100), batch_size=100, shuffle=True)
    b = D.DataLoader(ArrayDataset(100), batch_size=100, shuffle=True)
    (_, ya), = list(a)
    (_, yb), = list(b)
    assert not np.array_equal(ya, yb)
    np.testing.assert_array_equal(ya, a.epoch_order(0))


def test_loader_transform_order(rng):
    """dataset.transform first, then the loader's, on whole batches."""
    ds = ArrayDataset(9, transform=D.ToTensor())
    ds.data = rng.integers(0, 256, (9, 3, 4, 4), dtype=np.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    loader = D.DataLoader(ds, batch_size=4, transform=D.Normalize(mean, std))
    images, _ = next(iter(loader))
    ref = (ds.data[:4] / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert images.dtype == np.float32
    assert images.flags.c_contiguous
    np.testing.assert_allclose(images, ref, rtol=0, atol=F32_ROUNDING * np.abs(ref).max())


def test_loader_item_fallback():
    loader = D.DataLoader(ItemDataset(7), batch_size=3)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [3, 3, 1]
    np.testing.assert_array_equal(batches[1][0][:, 0, 0, 0], [3, 4, 5])


def wait_for_threads(count: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_loader_early_break_stops_thread():
    baseline = threading.active_count()
    loader = D.DataLoader(ArrayDataset(100), batch_size=2, prefetch=2)
    for k, _ in enumerate(loader):
        assert threading.active_count() == baseline + 1
        if k == 3:
            break
    assert wait_for_threads(baseline) == baseline
    # an exhausted loader has stopped its thread too, and the next epoch still works
    assert len(epoch_labels(loader)) == 50
    assert wait_for_threads(baseline) == baseline


def test_loader_garbage_collected_stops_thread():
    baseline = threading.active_count()
    loader = D.DataLoader(ArrayDataset(100), batch_size=2)
    it = iter(loader)
    next(it)
    assert threading.active_count() == baseline + 1
    del it, loader
    gc.collect()
    assert wait_for_threads(baseline) == baseline


def test_loader_exception_propagates():
    baseline = threading.active_count()
    calls = []

    def failing(x):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom in batch 3")
        return x

    loader = D.DataLoader(ArrayDataset(20), batch_size=2, transform=failing)
    it = iter(loader)
    seen = [next(it), next(it)]
    with pytest.raises(RuntimeError, match="boom in batch 3"):
        next(it)
    assert len(seen) == 2  # the two good batches first, then the error where it happened
    assert wait_for_threads(baseline) == baseline


def test_loader_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        D.DataLoader(ArrayDataset(3), batch_size=0)
    with pytest.raises(ValueError, match="prefetch must be an integer >= 0"):
        D.DataLoader(ArrayDataset(3), prefetch=-1)
    assert len(D.DataLoader(ArrayDataset(0), batch_size=4)) == 0
    assert list(D.DataLoader(ArrayDataset(0), batch_size=4)) == []
