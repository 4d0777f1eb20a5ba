"""fc.save / fc.load: state dicts in NumPy ``.npz`` files, with no pickle either way.

File layout: one ``.npy`` member per array, named by the entry's key path joined with
``/`` (a model's ``conv1.weight`` stays ``conv1.weight``; an optimizer's
``state[0]['momentum_buffer']`` becomes ``state/0/momentum_buffer``), so
``numpy.load(path, allow_pickle=False)`` reads every tensor by a readable name. One more
member, ``__fastconv__``, holds a JSON description of the nesting (dict/OrderedDict,
list, tuple; str or int keys) and of each leaf's type tag, which ``load`` uses to rebuild
the object exactly. Python scalars are stored as 0-d arrays (bool, int64, float64, str), a
list or tuple of numbers of one kind as a 1-d array; None has a tag and no array. Loading
a plain ``np.savez`` file (no ``__fastconv__`` member) returns a dict of its arrays.

Nothing is ever unpickled, so loading an untrusted file cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from fastconv.tensor import Tensor

__all__ = ["load", "save"]

SEPARATOR = "/"
META_KEY = "__fastconv__"
FORMAT_VERSION = 1

_SCALAR_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}
_ARRAY_KINDS = "biufcU"  # bool, ints, floats, complex, unicode: all load without pickle


class _Writer:
    """Walks the object, collecting arrays by member name and the JSON structure."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _add(self, path: tuple, arr: np.ndarray) -> str:
        name = SEPARATOR.join(str(k) for k in path)
        if name == META_KEY or name in self.arrays:
            msg = (f"save: key {_show(path)} collides with another entry as file member "
                   f"{name!r} (keys must not contain {SEPARATOR!r} or be {META_KEY!r})")
            raise ValueError(msg)
        self.arrays[name] = arr
        return name

    def node(self, value: Any, path: tuple) -> dict:
        if isinstance(value, Tensor):
            value = value.data
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _ARRAY_KINDS:
                msg = (f"save: unsupported array dtype {value.dtype} at key {_show(path)} "
                       "(numeric, bool or str arrays only; object arrays would need pickle)")
                raise TypeError(msg)
            return {"t": "array", "k": self._add(path, value)}
        if isinstance(value, np.generic):
            arr = np.asarray(value)
            if arr.dtype.kind not in _ARRAY_KINDS:
                msg = (f"save: unsupported NumPy scalar type {type(value).__name__} at key "
                       f"{_show(path)}")
                raise TypeError(msg)
            return {"t": "npscalar", "k": self._add(path, arr)}
        if value is None:
            return {"t": "none"}
        tag = _SCALAR_TYPES.get(type(value))
        if tag is not None:
            try:
                arr = np.asarray(value, dtype=np.int64) if tag == "int" else np.asarray(value)
            except OverflowError:
                msg = f"save: int at key {_show(path)} does not fit in int64"
                raise TypeError(msg) from None
            return {"t": tag, "k": self._add(path, arr)}
        if isinstance(value, Mapping):
            items = []
            for key, child in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    msg = (f"save: unsupported key {key!r} ({type(key).__name__}) under "
                           f"{_show(path)}; keys must be str or int")
                    raise TypeError(msg)
                key_type = "str" if isinstance(key, str) else "int"
                items.append([key, key_type, self.node(child, (*path, key))])
            return {"t": "odict" if isinstance(value, OrderedDict) else "dict", "items": items}
        if isinstance(value, (list, tuple)):
            tag = "list" if isinstance(value, list) else "tuple"
            kinds = {type(v) for v in value}
            if value and len(kinds) == 1 and kinds <= {bool, int, float}:
                # numbers of one kind: one 1-d array (bool, int64 or float64)
                kind = _SCALAR_TYPES[kinds.pop()]
                try:
                    arr = np.asarray(value, dtype=np.int64 if kind == "int" else None)
                except OverflowError:
                    msg = f"save: int in list at key {_show(path)} does not fit in int64"
                    raise TypeError(msg) from None
                return {"t": tag + "_of_" + kind, "k": self._add(path, arr)}
            return {"t": tag, "items": [self.node(v, (*path, i)) for i, v in enumerate(value)]}
        msg = (f"save: unsupported value of type {type(value).__name__} at key {_show(path)}; "
               "expected an array/Tensor, a number, bool, str, None, or a dict/list/tuple of them")
        raise TypeError(msg)


def _show(path: tuple) -> str:
    return "".join(f"[{k!r}]" for k in path) if path else "<root>"


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    # What np.savez does, minus its keyword-argument quirks (a key named 'file' or
    # 'allow_pickle' would clash) and with pickling refused.
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def save(obj: Mapping[str, Any], path: str | os.PathLike | IO[bytes]) -> None:
    """Save a state dict (or a nested dict such as an optimizer's) to an ``.npz`` file.

    Parameters
    ----------
    obj : Mapping
        str (or int) keys; values are ndarrays, Tensors (their data is saved), NumPy
        scalars, bool/int/float/str/None, lists and tuples, and nested mappings of those.
    path : str, os.PathLike or binary file object
        Written as given (no ``.npz`` suffix is added, unlike ``np.savez``). A path is
        written to a temporary file in the same folder and then renamed over `path`, so
        an interrupted save never leaves a truncated checkpoint.

    Raises
    ------
    TypeError
        If `obj` is not a Mapping, or for a value or key of an unsupported type (object
        arrays, arbitrary objects); the message names the key.
    ValueError
        If two keys map to the same file member (a key containing '/').
    """
    if not isinstance(obj, Mapping):
        msg = f"save: expected a Mapping (a state dict), got {type(obj).__name__}"
        raise TypeError(msg)
    writer = _Writer()
    tree = writer.node(obj, ())
    meta = json.dumps({"format": "fastconv", "version": FORMAT_VERSION, "tree": tree})
    arrays = {**writer.arrays, META_KEY: np.asarray(meta)}
    if hasattr(path, "write"):
        _write_npz(path, arrays)
        return
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=".fastconv-save-", suffix=".tmp",
                                    dir=target.resolve().parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_SCALAR_FROM = {"bool": bool, "int": int, "float": float, "str": str}


def _build(node: dict, npz: Any) -> Any:
    t = node["t"]
    if t == "array":
        return npz[node["k"]]
    if t == "npscalar":
        return npz[node["k"]][()]
    if t == "none":
        return None
    if t in _SCALAR_FROM:
        return _SCALAR_FROM[t](npz[node["k"]][()])
    if t in ("dict", "odict"):
        out = OrderedDict() if t == "odict" else {}
        for key, key_type, child in node["items"]:
            out[int(key) if key_type == "int" else key] = _build(child, npz)
        return out
    if t in ("list", "tuple"):
        items = [_build(child, npz) for child in node["items"]]
        return items if t == "list" else tuple(items)
    seq, _, kind = t.partition("_of_")
    if seq in ("list", "tuple") and kind in _SCALAR_FROM:
        items = [_SCALAR_FROM[kind](v) for v in npz[node["k"]].tolist()]
        return items if seq == "list" else tuple(items)
    msg = f"load: unknown entry type {t!r} in file (written by a newer fastconv?)"
    raise ValueError(msg)


def load(path: str | os.PathLike | IO[bytes]) -> dict:
    """Load what :func:`save` wrote (or any ``.npz`` of numeric arrays), without pickle.

    Returns
    -------
    dict (OrderedDict where one was saved, e.g. a ``state_dict()``) with the saved
    nesting; tensors come back as ndarrays with their saved dtype and shape, Python
    scalars, None, lists and tuples as they were saved. A plain ``.npz`` without
    fastconv's metadata gives {member name: ndarray}.

    Raises
    ------
    ValueError
        If the file is not an ``.npz`` archive, needs pickle (object arrays), or its
        metadata is malformed.
    """
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        msg = f"load: {path!r} is a single .npy array, not an .npz state dict"
        raise ValueError(msg)  # noqa: TRY004  (bad file content, not a bad argument type)
    with npz:
        if META_KEY not in npz.files:
            return {name: npz[name] for name in npz.files}
        meta = json.loads(str(npz[META_KEY][()]))
        if not isinstance(meta, dict) or meta.get("format") != "fastconv" or "tree" not in meta:
            msg = f"load: malformed {META_KEY} metadata in {path!r}"
            raise ValueError(msg)
        if meta.get("version", 0) > FORMAT_VERSION:
            msg = (f"load: {path!r} has format version {meta['version']}, newer than this "
                   f"fastconv's {FORMAT_VERSION}")
            raise ValueError(msg)
        return _build(meta["tree"], npz)
