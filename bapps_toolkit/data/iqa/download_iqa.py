"""Download helpers for the benchmarks next to BAPPS, on the toolkit's resumable machinery.

* Public archives (KADID-10k, CSIQ, NIGHTS, TID2013) are fetched with
  :func:`bapps_toolkit._download.download_file` (HTTP Range resume, length and free-space checks,
  atomic rename) into ``<root>/<set>/``; ``.zip`` archives are checked member by member before
  anything is unpacked (:func:`check_zip_members`: absolute names, ``..`` components, NUL bytes,
  symbolic links and any non-regular member refuse the whole archive), unpacked into a temporary
  folder and renamed into place, then a marker records the archive's SHA-256 so a rerun skips it.
* **TID2013** ships as ``.rar``: no well-kept pure-Python RAR extractor exists (``rarfile`` needs an
  external ``unrar``/``bsdtar`` binary, and Debian's ``unrar-free`` reads RAR 2 only), so the
  archive is downloaded and verified, and the helper says how to unpack it (``bsdtar -xf`` from
  libarchive-tools, or ``unar``) and where.
* **LIVE** (registration form, password-protected zip), **PieAPP** (terms of use: non-commercial,
  educational) and **PIPAL** (Google Drive) are not fetched: :func:`instructions` says what to do
  and where to put the files so that the loaders find them.

The URLs are those documented by the data sets' authors (see the reference notes); their sizes and
digests are not published, so the server's ``Content-Length`` is the length reference and no
SHA-256 is pinned (the one measured is recorded in the marker).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import zipfile
from pathlib import Path

from ..._download import check_free_space, download_file
from ..._io import PathLike, sha256_file, write_text_atomic
from ...errors import DataError, DownloadError
from .registry import Benchmark, Remote, benchmarks, get_benchmark

EXTRACT_TMP_PREFIX = ".bapps_extract-"


def instructions(name: str, root: PathLike) -> str:
    """What to do by hand for a set that cannot be fetched (registration, terms, Google Drive).

    Raises:
        DownloadError: the set has no such instructions (it is fetched, or unknown).
    """
    bench = _benchmark(name)
    if not bench.manual:
        manual = [n for n, b in benchmarks().items() if b.manual]
        raise DownloadError(f"no manual instructions for {name!r}; known: {', '.join(manual)}")
    return bench.manual.format(dest=Path(root) / name)


def _benchmark(name: str) -> Benchmark:
    try:
        return get_benchmark(name)
    except DataError:
        raise DownloadError(f"unknown data set {name!r}; known: {', '.join(benchmarks())}") from None


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_zip_members(archive: PathLike, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse the whole archive on any unsafe member (raise :class:`DownloadError` naming it)."""
    for info in infos:
        name = info.filename
        why = None
        parts = name.replace("\\", "/").split("/")
        if "\x00" in name:
            why = "has a NUL byte in its name"
        elif name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            why = "has an absolute path"
        elif ".." in parts:
            why = "has a '..' component (path traversal)"
        elif _zip_is_symlink(info):
            why = "is a symbolic link"
        elif stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG, stat.S_IFDIR):
            why = "is a special file (device, FIFO or socket)"
        if why:
            raise DownloadError(f"refusing to extract {archive}: member {name!r} {why}; nothing was extracted")


def safe_extract_zip(archive: PathLike, dest: PathLike) -> list[Path]:
    """Safely unpack an archive into ``dest``; return the top-level entries placed.

    Every member is checked, the archive is unpacked into a temporary folder inside ``dest``, and
    each top-level entry is renamed into place (an existing entry of that name is replaced whole).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive} is not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        check_zip_members(archive, infos)
        tops = sorted({p.replace("\\", "/").split("/")[0] for p in zf.namelist()} - {""})
        if not tops:
            raise DownloadError(f"{archive} is empty; nothing was extracted")
        dest.mkdir(parents=True, exist_ok=True)
        check_free_space(dest, int(sum(i.file_size for i in infos) * 1.05) + (1 << 20), f"unpacking {archive.name}")
        tmp = dest / f"{EXTRACT_TMP_PREFIX}{archive.name}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            try:
                zf.extractall(tmp)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DownloadError(f"{archive}: extraction failed ({exc}); nothing was placed in {dest}") from None
            placed = []
            for top in tops:
                final = dest / top
                if final.exists() or final.is_symlink():
                    os.replace(final, tmp / f".old-{top}")
                os.replace(tmp / top, final)
                placed.append(final)
            return placed
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _marker(dest: Path, remote: Remote) -> Path:
    return dest / f".bapps_extracted.{remote.name}.json"


def download_benchmark(name: str, root: PathLike, *, base_url: str | None = None, progress: bool = True,
                       keep_archives: bool = False) -> dict[str, dict[str, str]]:
    """Fetch (and unpack) set ``name`` into ``<root>/<name>/``; returns per file its status.

    ``base_url``: a mirror holding the same file names (the tests use a 127.0.0.1 server). A set
    that needs registration raises :class:`DownloadError` carrying :func:`instructions`.
    """
    bench = _benchmark(name)
    if not bench.sources:
        raise DownloadError(instructions(name, root))
    dest = Path(root) / name
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str]] = {}
    for remote in bench.sources:
        url = base_url.rstrip("/") + "/" + remote.name if base_url else remote.url
        marker = _marker(dest, remote)
        if remote.unpack and marker.exists():
            out[remote.name] = {"status": "already unpacked", "dest": str(dest)}
            continue
        path = download_file(url, dest / remote.name, progress=progress)
        sha = sha256_file(path)
        if remote.unpack:
            safe_extract_zip(path, dest)
            write_text_atomic(marker, json.dumps({"archive": remote.name, "url": url, "sha256": sha}) + "\n")
            if not keep_archives:
                path.unlink()
            out[remote.name] = {"status": "unpacked", "dest": str(dest), "sha256": sha}
        else:
            out[remote.name] = {"status": "downloaded", "dest": str(path), "sha256": sha}
    if bench.after_download:
        out[bench.sources[-1].name]["todo"] = bench.after_download.format(dest=dest)
    return out
