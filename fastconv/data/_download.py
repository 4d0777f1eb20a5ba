"""Fetching dataset files: mirrors in order, MD5-checked, atomic writes, safe extraction.

Also home of the dataset exception classes (the lowest module of the package, so both
this file and ``datasets.py`` can raise them).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = ["DatasetError", "DatasetNotFoundError", "DownloadError", "extract_members", "fetch"]

# Seconds for the connection and for each read: a dead mirror fails quickly, and the next one
# is tried; a slow but live one keeps streaming.
TIMEOUT = 30.0
_CHUNK = 1 << 20
_USER_AGENT = "fastconv-data/1 (+https://github.com/)"


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or unsafe; the message names the file."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """Dataset files are missing; the message lists the expected paths and how to get them."""


class DownloadError(DatasetError):
    """No mirror delivered the file with the published MD5 (offline, moved, or corrupt)."""


def _write_temp(dest: Path, chunks: Iterable[bytes]) -> tuple[Path, str]:
    """Write ``chunks`` to a new temporary file beside ``dest``; return (its path, its MD5).

    The caller renames it onto ``dest`` (atomic on POSIX and Windows) once the content is
    known good, or deletes it: a crash or a bad download never leaves a half-written or
    wrong file under the final name. On error the temporary file is removed here.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    md5 = hashlib.md5()  # a checksum against the published value, not a security measure
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                md5.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, md5.hexdigest()


def _stream(response: IO[bytes]) -> Iterable[bytes]:
    while chunk := response.read(_CHUNK):
        yield chunk


def fetch(urls: Sequence[str], dest: Path, md5: str, *, env_hint: str = "") -> Path:
    """Download the first of ``urls`` that works and has MD5 ``md5`` to ``dest``, atomically.

    Parameters
    ----------
    urls : sequence of str
        Mirrors, tried in order; only ``http://`` and ``https://``.
    dest : pathlib.Path
        Final path; written only once a complete file with the right MD5 is on disk.
    md5 : str
        Published MD5 hex digest of the file.
    env_hint : str
        Extra advice for the offline message (e.g. the environment variable to set).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DownloadError
        Every mirror failed (unreachable, timed out after :data:`TIMEOUT` s per operation,
        HTTP error, or MD5 mismatch); the message lists each URL with its error and says
        where to put the file by hand.
    """
    errors = []
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            errors.append(f"{url}: only http(s) URLs are fetched")
            continue
        print(f"fastconv.data: downloading {url} -> {dest}", file=sys.stderr)
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                tmp, got = _write_temp(dest, _stream(response))
        except OSError as e:  # URLError, HTTPError, timeouts, resets are all OSErrors
            errors.append(f"{url}: {type(e).__name__}: {e}")
            continue
        if got != md5:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: md5 mismatch: got {got}, expected {md5}")
            continue
        tmp.replace(dest)
        return dest
    tried = "\n".join(f"  {e}" for e in errors) or "  (no mirrors configured)"
    hint = f", or {env_hint}" if env_hint else ""
    raise DownloadError(
        f"could not download {dest.name}; tried:\n{tried}\n"
        f"If this machine is offline, fetch {dest.name} (md5 {md5}) elsewhere and put it at "
        f"{dest}{hint}."
    )


def _safe_members(
    tar: tarfile.TarFile, folder: str, names: Sequence[str]
) -> Iterable[tuple[tarfile.TarInfo, str]]:
    """The member filter: only regular files named exactly ``<folder>/<name>``.

    Member names are matched against the fixed list and never used as paths, so absolute
    names, ``..``, links and device files in the archive cannot write anywhere.
    """
    wanted = set(names)
    for member in tar:
        parts = PurePosixPath(member.name).parts
        if parts[:1] == (".",):
            parts = parts[1:]
        if len(parts) == 2 and parts[0] == folder and parts[1] in wanted and member.isfile():
            yield member, parts[1]


def extract_members(archive: Path, folder: str, names: Sequence[str], dest: Path) -> None:
    """Extract ``<folder>/<name>`` for each of ``names`` from a .tar.gz into ``dest``.

    Each file is written atomically (temporary file + rename). Raises :class:`DatasetError`
    if the archive is damaged or lacks one of the files.
    """
    found = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member, name in _safe_members(tar, folder, names):
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source:
                    tmp, _ = _write_temp(dest / name, _stream(source))
                tmp.replace(dest / name)
                found.add(name)
    except (OSError, EOFError, tarfile.TarError) as e:
        raise DatasetError(f"{archive}: cannot extract ({type(e).__name__}: {e})") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetError(f"{archive}: lacks {', '.join(f'{folder}/{n}' for n in missing)}")
