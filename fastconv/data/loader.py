"""DataLoader: whole NumPy batches, gathered and transformed in a background thread.

A batch is built in one piece: ``dataset.data[idx]`` (one fancy-indexing gather), then the
dataset's transform and the loader's transform, each applied to the whole (N, C, H, W)
batch. A worker thread keeps up to ``prefetch`` batches ready in a queue, so the training
loop (whose kernels release the GIL) never waits on Python; NumPy releases the GIL for the
gathers and arithmetic too.
"""

from __future__ import annotations

import math
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from fastconv.data.transforms import apply_transform

__all__ = ["DataLoader"]

Batch = tuple[np.ndarray, np.ndarray]

# How often a worker blocked on a full queue re-checks whether the consumer has gone.
_POLL_S = 0.05


class DataLoader:
    """Iterate over a dataset in (images, labels) batches, prepared in a background thread.

    Parameters
    ----------
    dataset : MNIST, CIFAR10 or any dataset
        With ``data`` (N, C, H, W) and ``targets`` (N,) arrays (the fast path: one gather
        per batch, then ``dataset.transform`` on the whole batch); otherwise any object with
        ``__len__`` and ``__getitem__(i) -> (image, label)``, whose images are stacked.
    batch_size : int
        Images per batch (default 1); the last batch may be smaller unless ``drop_last``.
    shuffle : bool
        A new random order every epoch (default False: dataset order).
    drop_last : bool
        Drop the last incomplete batch (default False).
    seed : int, optional
        Seeds both the shuffling and the random transforms; ``None`` draws fresh OS entropy
        (kept, so :meth:`epoch_order` still reproduces this loader's orders).
    transform : callable, optional
        Applied to each whole batch after the dataset's transform, e.g.
        ``Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])``. fastconv
        transforms receive the loader's generator as ``rng``; other callables get ``x``.
    prefetch : int
        Batches kept ready by the worker thread (default 2); 0 builds each batch in the
        consumer's thread instead (no thread).

    Yields
    ------
    images : ndarray, shape (B, C, H, W)
        C-contiguous; float32 when a transform converts (``ToTensor``), else the dataset's
        uint8 pixels as they are.
    labels : ndarray, int64, shape (B,)

    Raises
    ------
    ValueError
        ``batch_size`` < 1 or ``prefetch`` < 0.

    Notes
    -----
    Each ``iter(loader)`` is one epoch; ``loader.epoch`` counts them (set it to resume).
    Epoch k's order is the (k+1)-th ``permutation(len(dataset))`` drawn from
    ``np.random.default_rng(seed)`` (:meth:`epoch_order`); its transforms draw from
    ``default_rng(SeedSequence(seed, spawn_key=(k,)))``. Both are functions of (seed, k)
    alone, so two loaders with one seed give identical batches, whatever the prefetching.

    The worker stops when the iteration ends, when the iterator is dropped (``break`` out
    of the loop, garbage collection, interpreter exit), or on an exception, which is
    re-raised in the consumer at the batch where it happened.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        transform: Callable | None = None,
        prefetch: int = 2,
    ) -> None:
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if int(prefetch) != prefetch or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an integer >= 0, got {prefetch!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.transform = transform
        self.prefetch = int(prefetch)
        self.epoch = 0
        # default_rng(seed) is PCG64(SeedSequence(seed)); keeping the SeedSequence's entropy
        # makes seed=None reproducible within this loader too.
        self._entropy = np.random.SeedSequence(seed).entropy
        self._order_cache: tuple[int, dict] | None = None  # (next epoch, generator state)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The dataset indices of epoch ``epoch`` (0-based) in iteration order, int64 (N,).

        ``arange(N)`` without shuffling; with it, the (epoch+1)-th
        ``default_rng(seed).permutation(N)``.
        """
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        rng = np.random.default_rng(np.random.SeedSequence(self._entropy))
        start = 0
        if self._order_cache is not None and self._order_cache[0] <= epoch:
            start, state = self._order_cache
            rng.bit_generator.state = state
        for _ in range(start, epoch):
            rng.permutation(n)
        order = rng.permutation(n).astype(np.int64, copy=False)
        self._order_cache = (epoch + 1, rng.bit_generator.state)
        return order

    def _transform_rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._entropy, spawn_key=(epoch,)))

    def _batch_indices(self, order: np.ndarray) -> list[np.ndarray]:
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        return [order[k:min(k + self.batch_size, stop)] for k in range(0, stop, self.batch_size)]

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        batches = self._batch_indices(self.epoch_order(epoch))
        build = _BatchBuilder(self.dataset, self.transform, self._transform_rng(epoch))
        if self.prefetch == 0:
            return (build(idx) for idx in batches)
        return _PrefetchIterator(build, batches, self.prefetch)

    def __repr__(self) -> str:
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
            f"transform={self.transform!r}, prefetch={self.prefetch})"
        )


class _BatchBuilder:
    """Builds one batch from its indices; owned by one thread at a time (it holds the rng)."""

    def __init__(self, dataset: Any, transform: Callable | None, rng: np.random.Generator):
        self.dataset = dataset
        self.transform = transform
        self.rng = rng

    def __call__(self, idx: np.ndarray) -> Batch:
        data = getattr(self.dataset, "data", None)
        targets = getattr(self.dataset, "targets", None)
        if isinstance(data, np.ndarray) and isinstance(targets, np.ndarray):
            images = data[idx]
            labels = targets[idx].astype(np.int64, copy=False)
            dataset_transform = getattr(self.dataset, "transform", None)
            if dataset_transform is not None:
                images = apply_transform(dataset_transform, images, self.rng)
        else:
            items = [self.dataset[int(i)] for i in idx]
            images = np.stack([np.asarray(image) for image, _ in items])
            labels = np.array([int(label) for _, label in items], dtype=np.int64)
        if self.transform is not None:
            images = apply_transform(self.transform, images, self.rng)
        return np.ascontiguousarray(images), labels


class _PrefetchIterator:
    """Consumer end of the worker thread; dropping it stops the thread (weakref.finalize)."""

    def __init__(self, build: Callable[[np.ndarray], Batch], batches: Sequence[np.ndarray],
                 prefetch: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._remaining = len(batches)
        # the thread must not reference self, or dropping the iterator could not stop it
        self._thread = threading.Thread(
            target=_worker, args=(build, batches, self._queue, self._stop),
            name="fastconv-DataLoader", daemon=True,
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._thread, self._queue, self._stop)

    def __iter__(self) -> _PrefetchIterator:
        return self

    def __len__(self) -> int:
        return self._remaining

    def __next__(self) -> Batch:
        if not self._finalizer.alive:
            raise StopIteration
        kind, payload = self._queue.get()
        if kind == "batch":
            self._remaining -= 1
            return payload
        self.close()
        if kind == "error":
            raise payload
        raise StopIteration

    def close(self) -> None:
        """Stop the worker thread and wait for it (idempotent)."""
        self._finalizer()


def _put(q: queue.Queue, item: tuple[str, Any], stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
        except queue.Full:
            continue
        return True
    return False


def _worker(build: Callable[[np.ndarray], Batch], batches: Sequence[np.ndarray],
            q: queue.Queue, stop: threading.Event) -> None:
    try:
        for idx in batches:
            if stop.is_set() or not _put(q, ("batch", build(idx)), stop):
                return
        _put(q, ("done", None), stop)
    except BaseException as e:  # noqa: BLE001 — handed to the consumer, re-raised there
        _put(q, ("error", e), stop)


def _shutdown(thread: threading.Thread, q: queue.Queue, stop: threading.Event) -> None:
    stop.set()
    while True:  # free the ready batches now
        try:
            q.get_nowait()
        except queue.Empty:
            break
    # a collection triggered inside the worker itself may run this finalizer there
    if thread is not threading.current_thread():
        thread.join()
