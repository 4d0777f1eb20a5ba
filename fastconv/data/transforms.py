"""Image transforms on NumPy arrays, torchvision-compatible, for one image or a whole batch.

Every transform takes an image ``(C, H, W)`` or a batch ``(N, C, H, W)`` and returns the
same layout. The work is vectorised over the batch (no Python loop over images); the random
transforms draw one set of parameters per image, all at once, from the ``rng`` argument
(a ``numpy.random.Generator``; ``None`` uses :func:`fastconv.tensor.generator`, which
:func:`fastconv.manual_seed` seeds). :class:`~fastconv.data.DataLoader` applies the
dataset's and its own transform to each batch with its own generator.

Semantics follow torchvision's tensor transforms
(https://pytorch.org/vision/stable/transforms.html): ``ToTensor`` divides uint8 by 255,
``Normalize`` computes ``(x − mean[c]) / std[c]``, ``Pad`` takes padding as torchvision does,
``RandomCrop`` pads first and then crops at a uniform offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastconv.tensor import generator

__all__ = [
    "Compose",
    "Normalize",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ToTensor",
    "Transform",
    "apply_transform",
]

_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


class Transform:
    """Base class of the fastconv transforms: ``t(x, rng=None)`` on (C, H, W) or (N, C, H, W).

    :func:`apply_transform` (used by :class:`Compose` and the DataLoader) passes ``rng`` to
    instances of this class and calls any other callable as ``t(x)``.
    """

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def _params(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"


def apply_transform(
    transform: Callable, x: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``transform(x, rng=rng)`` for a :class:`Transform`, else ``transform(x)``."""
    if isinstance(transform, Transform):
        return transform(x, rng=rng)
    return transform(x)


def _check_image(x: Any, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name}: expected an image (C, H, W) or a batch (N, C, H, W), got shape {x.shape}"
        )
    return x


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a sequence of 1 or 2 ints, got {value}")
    return value[0], value[1]


class ToTensor(Transform):
    """uint8 in [0, 255] → float32 in [0, 1] (``x / 255``); the layout is kept.

    Unlike torchvision's, no HWC → CHW transpose: the datasets already hold CHW.

    Parameters
    ----------
    x : ndarray, shape (C, H, W) or (N, C, H, W)
        uint8 is divided by 255 in float32 (exactly as ``img.float().div(255)``); floating
        point is converted to float32 unscaled.

    Raises
    ------
    TypeError
        For any other dtype (bool, other integers).
    """

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        del rng  # deterministic; the argument keeps every transform callable one way
        x = _check_image(x, "ToTensor")
        if x.dtype == np.uint8:
            out = x.astype(np.float32)
            out /= np.float32(255.0)
            return out
        if x.dtype.kind == "f":
            return x.astype(np.float32, copy=False)
        raise TypeError(f"ToTensor: expected uint8 or floating-point input, got {x.dtype}")


class Normalize(Transform):
    """Per-channel ``(x − mean[c]) / std[c]``, as ``torchvision.transforms.Normalize``.

    Parameters
    ----------
    mean, std : float or sequence of float
        One value per channel, or one value for all channels.
    inplace : bool
        Overwrite the input array (default False: return a new one).

    Raises
    ------
    ValueError
        ``std`` contains a zero, or ``mean``/``std`` lengths differ from each other or from
        the number of channels C.
    TypeError
        The input is not floating point (apply :class:`ToTensor` first).

    Notes
    -----
    Computed in the input's dtype, subtract then divide, so float32 results are bitwise those
    of torchvision's ``tensor.sub_(mean).div_(std)``.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float],
                 inplace: bool = False) -> None:
        self.mean = tuple(float(m) for m in np.atleast_1d(mean))
        self.std = tuple(float(s) for s in np.atleast_1d(std))
        self.inplace = bool(inplace)
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(
                f"Normalize: mean has {len(self.mean)} values but std has {len(self.std)}"
            )
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero ({self.std}), leading to division by zero")

    def _params(self) -> str:
        return f"mean={self.mean}, std={self.std}"

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        del rng  # deterministic
        x = _check_image(x, "Normalize")
        if x.dtype.kind != "f":
            raise TypeError(
                f"Normalize: input must be floating point, got {x.dtype} (apply ToTensor first)"
            )
        channels = x.shape[-3]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(
                    f"Normalize: {name} has {len(values)} values for {channels} channels"
                )
        mean = np.asarray(self.mean, dtype=x.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=x.dtype).reshape(-1, 1, 1)
        out = np.subtract(x, mean, out=x if self.inplace else None)
        return np.divide(out, std, out=out)


def _parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """torchvision's padding argument → (left, top, right, bottom)."""
    if isinstance(padding, (int, np.integer)):
        pads = (int(padding),) * 4
    else:
        values = tuple(int(p) for p in padding)
        if len(values) == 1:
            pads = values * 4
        elif len(values) == 2:
            pads = (values[0], values[1], values[0], values[1])
        elif len(values) == 4:
            pads = values
        else:
            raise ValueError(
                f"Pad: padding must be an int or a sequence of 1, 2 or 4 ints, got {values}"
            )
    if min(pads) < 0:
        raise ValueError(f"Pad: padding must be non-negative, got {padding}")
    return pads  # type: ignore[return-value]


class Pad(Transform):
    """Pad the last two axes (H, W), as ``torchvision.transforms.Pad``.

    Parameters
    ----------
    padding : int or sequence of int
        ``p``: all four sides; ``(p_lr, p_tb)``: left/right and top/bottom;
        ``(left, top, right, bottom)``. Non-negative.
    fill : float or sequence of float
        Value of the new pixels for ``padding_mode='constant'`` (default 0), one for all
        channels or one per channel; it must be representable in the input's dtype.
    padding_mode : {'constant', 'edge', 'reflect', 'symmetric'}
        As ``numpy.pad`` (and torchvision): ``reflect`` mirrors without repeating the edge
        pixel (needs padding < size), ``symmetric`` with it (padding ≤ size).

    Returns
    -------
    ndarray
        Shape (…, C, H + top + bottom, W + left + right), the input's dtype.

    Raises
    ------
    ValueError
        Bad padding (length, negative), unknown mode, ``fill`` not representable, or a
        reflect/symmetric padding larger than the image.
    """

    def __init__(self, padding: int | Sequence[int], fill: float | Sequence[float] = 0,
                 padding_mode: str = "constant") -> None:
        self.padding = _parse_padding(padding)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Pad: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.fill = fill
        self.padding_mode = padding_mode

    def _params(self) -> str:
        return f"padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode!r}"

    def _fill_value(self, x: np.ndarray) -> np.ndarray:
        fill = np.asarray(self.fill)
        if x.dtype.kind in "iu" and fill.size and (
            fill.min() < np.iinfo(x.dtype).min or fill.max() > np.iinfo(x.dtype).max
            or not np.array_equal(fill, np.round(fill))
        ):
            raise ValueError(f"Pad: fill {self.fill} is not representable in {x.dtype}")
        fill = fill.astype(x.dtype)
        if fill.ndim == 0:
            return fill
        if fill.size not in (1, x.shape[-3]):
            raise ValueError(f"Pad: fill has {fill.size} values for {x.shape[-3]} channels")
        return fill.reshape(-1, 1, 1)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        del rng  # deterministic
        x = _check_image(x, "Pad")
        left, top, right, bottom = self.padding
        height, width = x.shape[-2:]
        if self.padding_mode != "constant":
            limit = 0 if self.padding_mode == "reflect" else 1
            if max(top, bottom) > height - 1 + limit or max(left, right) > width - 1 + limit:
                raise ValueError(
                    f"Pad: {self.padding_mode} padding {self.padding} is too large for an "
                    f"image of {height} x {width}"
                )
            widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
            return np.pad(x, widths, mode=self.padding_mode)
        fill = self._fill_value(x)
        out = np.empty((*x.shape[:-2], height + top + bottom, width + left + right), x.dtype)
        # write each output element once: the four borders, then the image
        out[..., :top, :] = fill
        out[..., top + height:, :] = fill
        out[..., top:top + height, :left] = fill
        out[..., top:top + height, left + width:] = fill
        out[..., top:top + height, left:left + width] = x
        return out


class RandomCrop(Transform):
    """Crop a random ``size`` window of each image, optionally after padding, as torchvision.

    Parameters
    ----------
    size : int or (int, int)
        Output (h, w).
    padding : int or sequence of int, optional
        Padded first with :class:`Pad` (``fill``, ``padding_mode``); CIFAR's usual recipe is
        ``RandomCrop(32, padding=4)``.
    pad_if_needed : bool
        Pad an image smaller than ``size`` up to it (by the shortfall on both sides of the
        short axis, as torchvision does).
    fill, padding_mode
        As :class:`Pad`.

    Returns
    -------
    ndarray
        Shape (…, C, h, w), the input's dtype.

    Raises
    ------
    ValueError
        The (padded) image is smaller than ``size``.

    Notes
    -----
    For a batch of N images of (padded) size H × W the offsets are drawn per image,
    ``i = rng.integers(0, H − h + 1, N)`` and then ``j = rng.integers(0, W − w + 1, N)``
    (uniform, as torchvision's ``get_params``), and the N windows gathered in one indexing
    operation over a sliding-window view. A single image is a batch of one. When the image
    already has the crop size nothing is drawn and the image is returned unchanged.
    """

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None,
                 pad_if_needed: bool = False, fill: float | Sequence[float] = 0,
                 padding_mode: str = "constant") -> None:
        self.size = _pair(size, "RandomCrop: size")
        if min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size must be positive, got {self.size}")
        self.padding = padding
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = fill
        self.padding_mode = padding_mode
        self._pad = Pad(padding, fill, padding_mode) if padding is not None else None
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"RandomCrop: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}"
            )

    def _params(self) -> str:
        return f"size={self.size}, padding={self.padding}"

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_image(x, "RandomCrop")
        batch = x if x.ndim == 4 else x[None]
        if self._pad is not None:
            batch = self._pad(batch)
        h, w = self.size
        height, width = batch.shape[-2:]
        if self.pad_if_needed and height < h:
            batch = Pad((0, h - height), self.fill, self.padding_mode)(batch)
        if self.pad_if_needed and width < w:
            batch = Pad((w - width, 0), self.fill, self.padding_mode)(batch)
        height, width = batch.shape[-2:]
        if height < h or width < w:
            raise ValueError(
                f"RandomCrop: crop size {(h, w)} is larger than the (padded) input "
                f"{(height, width)}"
            )
        if (height, width) == (h, w):
            return batch if x.ndim == 4 else batch[0]
        rng = generator() if rng is None else rng
        n = batch.shape[0]
        i = rng.integers(0, height - h + 1, size=n)
        j = rng.integers(0, width - w + 1, size=n)
        windows = sliding_window_view(batch, (h, w), axis=(-2, -1))  # (N, C, H−h+1, W−w+1, h, w)
        out = windows[np.arange(n), :, i, j]  # (N, C, h, w): a fresh contiguous array
        return out if x.ndim == 4 else out[0]


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (``x[..., ::-1]``) with probability ``p``.

    Parameters
    ----------
    p : float
        Flip probability in [0, 1] (default 0.5).

    Notes
    -----
    One draw per image, ``flip = rng.random(N) < p``, all at once; the result is always a
    new array.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def _params(self) -> str:
        return f"p={self.p}"

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_image(x, "RandomHorizontalFlip")
        batch = x if x.ndim == 4 else x[None]
        rng = generator() if rng is None else rng
        flip = rng.random(batch.shape[0]) < self.p
        out = np.where(flip[:, None, None, None], batch[..., ::-1], batch)
        return out if x.ndim == 4 else out[0]


class Compose(Transform):
    """Apply ``transforms`` in order, passing ``rng`` to each fastconv :class:`Transform`.

    Parameters
    ----------
    transforms : sequence of callables
        fastconv transforms, or any ``f(x) -> x`` (called without ``rng``).
    """

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = apply_transform(t, x, rng)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"
