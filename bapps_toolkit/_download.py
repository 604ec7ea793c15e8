"""One resumable, verified HTTP download, shared by the BAPPS archives and the network weights.

:func:`download_file` fetches ``url`` into ``dest`` with the standard library only (urllib):

* bytes go to ``<dest>.part``; an interrupted transfer (connection cut, timeout, ``kill -9``)
  leaves the ``.part`` in place and the next call resumes it with an HTTP ``Range`` request.
  A server that ignores ``Range`` (answers ``200`` instead of ``206``) restarts the file from
  byte 0 — nothing is ever appended to the wrong offset. ``<dest>.part.json`` remembers the
  total size and the ETag/Last-Modified of the file being fetched; the resume request carries
  ``If-Range``, and a file that changed on the server (new validator or new size) restarts
  from byte 0 instead of being spliced onto the old bytes;
* the total length is cross-checked between ``expected_size``, the server's
  ``Content-Length``/``Content-Range`` and the bytes actually received; a short body is reported
  as a cut connection (the ``.part`` is kept for a resume), a ``.part`` longer than expected is
  deleted;
* the SHA-256 (full digest or a prefix, as in torch.hub file names) is checked;
* only after every check does ``os.replace`` move the ``.part`` to ``dest``, so nothing
  half-downloaded or unverified ever sits under the final name;
* free disk space is checked before any byte is written (:func:`shutil.disk_usage`);
* a ``dest`` that already exists and verifies is returned without any network request;
* two processes downloading into the same folder serialise on an ``flock`` of the folder (the
  second waits, then finds the file done).

Every failure raises :class:`~bapps_toolkit.errors.DownloadError` naming the URL.
"""
from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tqdm import tqdm

from ._io import PathLike, sha256_file
from ._version import __version__
from .errors import DownloadError

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def part_path(dest: PathLike) -> Path:
    """The temporary name a download of ``dest`` is written to."""
    d = Path(dest)
    return d.with_name(d.name + ".part")


def _verify_file(path: Path, expected_size: int | None, sha256: str | None,
                 sha256_prefix: str | None) -> str | None:
    """``None`` when ``path`` passes the checks, else a sentence saying what is wrong."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"it has {size} bytes, expected {expected_size}"
    if sha256 or sha256_prefix:
        digest = sha256_file(path)
        if sha256 and digest != sha256.lower():
            return f"its SHA-256 is {digest}, expected {sha256.lower()}"
        if sha256_prefix and not digest.startswith(sha256_prefix.lower()):
            return (f"its SHA-256 is {digest}, which does not start with "
                    f"{sha256_prefix.lower()} as expected")
    return None


def check_free_space(folder: PathLike, needed: int, what: str) -> None:
    """Raise :class:`DownloadError` unless ``folder``'s file system has ``needed`` bytes free."""
    if needed <= 0:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(
            f"not enough free disk space in {folder} for {what}: {_gb(needed)} needed, only "
            f"{_gb(free)} free; free some space or choose another folder")


@contextlib.contextmanager
def _download_lock(dest: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``dest``'s folder and yield whether it is held.

    The kernel releases it if the holder dies; locking the folder leaves no lock file behind, and
    downloads into one folder run one at a time. ``wait=False``: yield ``False`` instead of waiting
    for another holder. File systems without ``flock`` on folders run unlocked (``False``).
    """
    try:
        fd = os.open(dest.parent, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        held = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait:
                print(f"waiting for another process that is downloading into {dest.parent} ...",
                      file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                held = False
        except OSError:
            held = False  # no flock here (some network file systems)
        yield held
    finally:
        os.close(fd)


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool) -> tqdm[Any]:
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not (enabled and sys.stderr.isatty()), leave=False)


def _open(url: str, offset: int, timeout: float, validator: str | None = None) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"bapps-toolkit/{__version__}", "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            # RFC 9110 If-Range: the server sends the rest only if the file is unchanged, else
            # the whole (new) file with 200.
            headers["If-Range"] = validator
    req = urllib.request.Request(url, headers=headers)  # noqa: S310
    # download() refuses every scheme but http and https before any request is made.
    return cast(http.client.HTTPResponse, urllib.request.urlopen(req, timeout=timeout))  # noqa: S310


def _response_total(resp: http.client.HTTPResponse, url: str, offset: int) -> tuple[bool, int | None]:
    """``(resuming, total_size)`` from a 200/206 response; ``total`` is ``None`` if unknown."""
    status = resp.status
    length = resp.headers.get("Content-Length")
    body_len = int(length) if length is not None and length.strip().isdigit() else None
    if status == 206 and offset > 0:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            raise DownloadError(
                f"{url}: the server answered a resume request at byte {offset} with "
                f"Content-Range {resp.headers.get('Content-Range')!r}")
        total = int(m.group(3)) if m.group(3) != "*" else None
        if body_len is not None and total is not None and offset + body_len != total:
            raise DownloadError(
                f"{url}: inconsistent lengths from the server (Content-Range "
                f"{resp.headers.get('Content-Range')!r}, Content-Length {body_len})")
        return True, total
    if status == 200:
        return False, body_len
    raise DownloadError(f"{url}: unexpected HTTP status {status} {resp.reason}")


def _validator(resp: http.client.HTTPResponse) -> str | None:
    """A strong validator for If-Range: the ETag (weak ones do not qualify) or Last-Modified."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified")


def info_path(dest: PathLike) -> Path:
    """Side file describing a ``.part`` (total size and validator of the file it belongs to)."""
    d = Path(dest)
    return d.with_name(d.name + ".part.json")


@dataclass(frozen=True)
class _PartInfo:
    """What the side file of a ``.part`` remembers of the file being downloaded."""

    total: int | None = None
    validator: str | None = None


def _read_info(dest: Path) -> _PartInfo:
    """The side file of ``dest``'s ``.part``; fields that are missing or of another type are None."""
    try:
        data = json.loads(info_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _PartInfo()
    if not isinstance(data, dict):
        return _PartInfo()
    total, validator = data.get("total"), data.get("validator")
    return _PartInfo(total=total if isinstance(total, int) and not isinstance(total, bool) else None,
                     validator=validator if isinstance(validator, str) else None)


def _drop_part(dest: Path) -> None:
    for p in (part_path(dest), info_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _drop_orphan_info(dest: Path) -> None:
    """Delete a ``<dest>.part.json`` whose ``.part`` is gone (call under the download lock).

    The ``.part`` is renamed to ``dest`` before its side file is removed; a run killed between
    the two leaves the side file, which describes nothing any more.
    """
    if not part_path(dest).exists():
        with contextlib.suppress(FileNotFoundError):
            info_path(dest).unlink()


def download_file(url: str, dest: PathLike, *, expected_size: int | None = None,
                  sha256: str | None = None, sha256_prefix: str | None = None,
                  resume: bool = True, progress: bool = True, timeout: float = 60,
                  min_free_bytes: int | None = None) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    Args:
        url: an ``http://`` or ``https://`` address.
        dest: the final file name; bytes are written to ``<dest>.part`` first.
        expected_size: exact size in bytes, checked against the server's declared length and
            the bytes received. ``None``: the server's ``Content-Length`` is the reference.
        sha256: the file's full hex SHA-256 digest.
        sha256_prefix: the digest's first hex characters (torch.hub style).
        resume: continue an existing ``.part`` with an HTTP ``Range`` request (else restart).
        progress: a tqdm bar on stderr (shown only when stderr is a terminal).
        timeout: seconds of socket inactivity before the attempt fails (the ``.part`` is kept).
        min_free_bytes: free space required in ``dest``'s folder before starting; default: the
            bytes still to download, when known.

    Raises:
        DownloadError: naming ``url`` (network error, HTTP error, cut connection, wrong length,
        checksum mismatch, not enough disk space).
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: only http:// and https:// addresses can be downloaded")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and _verify_file(dest, expected_size, sha256, sha256_prefix) is None:
        if info_path(dest).exists():
            # Tidy up only if no other download into the folder is running right now.
            with _download_lock(dest, wait=False) as held:
                if held:
                    _drop_orphan_info(dest)
        return dest
    with _download_lock(dest):
        # Another process may have finished the file while we waited for the lock.
        if dest.exists():
            problem = _verify_file(dest, expected_size, sha256, sha256_prefix)
            if problem is None:
                _drop_orphan_info(dest)
                return dest
            print(f"{dest} exists but {problem}; downloading it again", file=sys.stderr)
        _download_locked(url, dest, expected_size=expected_size, sha256=sha256,
                         sha256_prefix=sha256_prefix, resume=resume, progress=progress,
                         timeout=timeout, min_free_bytes=min_free_bytes)
    return dest


def _download_locked(url: str, dest: Path, *, expected_size: int | None, sha256: str | None,
                     sha256_prefix: str | None, resume: bool, progress: bool, timeout: float,
                     min_free_bytes: int | None) -> None:
    part = part_path(dest)
    if not resume or not part.exists():
        _drop_part(dest)
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        _drop_part(dest)
        offset = 0
    if min_free_bytes is not None:
        check_free_space(dest.parent, min_free_bytes, url)
    elif expected_size is not None:
        check_free_space(dest.parent, expected_size - offset, url)

    if expected_size is not None and offset == expected_size:
        total: int | None = expected_size  # complete .part from an interrupted run
    else:
        total = _fetch(url, dest, offset, expected_size=expected_size, progress=progress,
                       timeout=timeout, check_space=min_free_bytes is None and expected_size is None)

    received = part.stat().st_size
    if expected_size is not None and received > expected_size:
        _drop_part(dest)
        raise DownloadError(f"{url}: received {received} bytes, more than the expected "
                            f"{expected_size}; the partial file was removed")
    if total is not None and received < total:
        raise DownloadError(
            f"{url}: the connection was cut after {received} of {total} bytes; the partial file "
            f"{part} was kept — run the same command again to resume")
    if expected_size is not None and received != expected_size:
        raise DownloadError(
            f"{url}: the connection was cut after {received} of {expected_size} bytes; the "
            f"partial file {part} was kept — run the same command again to resume")
    problem = _verify_file(part, None, sha256, sha256_prefix)
    if problem is not None:
        _drop_part(dest)
        raise DownloadError(f"{url}: the downloaded file is corrupt or not the expected one: "
                            f"{problem}. It was deleted; nothing was written to {dest}")
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, dest)
    with contextlib.suppress(FileNotFoundError):
        info_path(dest).unlink()


def _connect(url: str, dest: Path, offset: int,
             timeout: float) -> tuple[http.client.HTTPResponse | None, bool, int | None]:
    """Open the response for ``<dest>.part`` from ``offset``.

    The download restarts when the partial file does not fit the server's file. Returns ``(resp,
    resuming, total)``, or ``(None, True, offset)`` when the ``.part`` already holds the whole file.
    """
    info = _read_info(dest) if offset > 0 else _PartInfo()
    for _attempt in range(3):
        try:
            resp = _open(url, offset, timeout, info.validator)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset > 0:
                m = _UNSATISFIED_RANGE.match(exc.headers.get("Content-Range", "") or "")
                exc.close()
                if m and int(m.group(1)) == offset and info.total in (None, offset):
                    return None, True, offset  # the .part already holds the whole file
                # The .part does not fit this file (longer, or the server cannot say): restart.
                _drop_part(dest)
                offset, info = 0, _PartInfo()
                continue
            raise DownloadError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"{url}: cannot connect ({reason}); check the address and the "
                                f"network connection") from None
        try:
            resuming, total = _response_total(resp, url, offset)
        except DownloadError:
            resp.close()
            raise
        if resuming and info.total is not None and total is not None and total != info.total:
            # The file changed size on the server since the .part was started: start over.
            resp.close()
            _drop_part(dest)
            offset, info = 0, _PartInfo()
            continue
        return resp, resuming, total
    raise DownloadError(f"{url}: the server keeps rejecting resume requests; delete "
                        f"{part_path(dest)} and try again")


def _copy_body(resp: http.client.HTTPResponse, url: str, part: Path, offset: int, resuming: bool, total: int | None,
               expected_size: int | None, progress: bool) -> None:
    """Append (or write) the response body to ``part``, stopping past ``expected_size``."""
    mode = "ab" if resuming else "wb"
    label = part.name.removesuffix(".part")
    with open(part, mode) as out, _progress_bar(total, offset, label, progress) as bar:
        if resuming and out.tell() != offset:
            raise DownloadError(f"{url}: {part} changed size during the download")
        try:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                bar.update(len(block))
                if expected_size is not None and out.tell() > expected_size:
                    break
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            out.flush()
            raise DownloadError(
                f"{url}: the connection failed after {out.tell()} bytes ({exc}); the partial "
                f"file {part} was kept — run the same command again to resume") from None


def _fetch(url: str, dest: Path, offset: int, *, expected_size: int | None, progress: bool,
           timeout: float, check_space: bool) -> int | None:
    """Stream the body into ``<dest>.part`` (appending from ``offset`` or restarting); the declared size or None."""
    part = part_path(dest)
    resp, resuming, total = _connect(url, dest, offset, timeout)
    if resp is None:
        return total
    with resp:
        if not resuming:
            offset = 0  # 200: the server sends the whole file, whatever we asked for
        if expected_size is not None and total is not None and total != expected_size:
            if part.exists() and part.stat().st_size > expected_size:
                _drop_part(dest)
            raise DownloadError(f"{url}: the server announces {total} bytes, expected "
                                f"{expected_size}; the download was refused")
        if check_space and total is not None:
            check_free_space(dest.parent, total - offset, url)
        if not resuming:
            _drop_part(dest)
            info_path(dest).write_text(json.dumps({"url": url, "total": total,
                                                   "validator": _validator(resp)}),
                                       encoding="utf-8")
        _copy_body(resp, url, part, offset, resuming, total, expected_size, progress)
    return total
