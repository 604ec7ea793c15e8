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
from dataclasses import dataclass
from pathlib import Path

from ..._download import check_free_space, download_file
from ..._io import PathLike, sha256_file, write_text_atomic
from ...errors import DownloadError

EXTRACT_TMP_PREFIX = ".bapps_extract-"


@dataclass(frozen=True)
class Remote:
    """A file to fetch: ``url`` into ``<root>/<set>/<name>``; ``unpack``: a .zip to extract there."""

    url: str
    name: str
    unpack: bool


PUBLIC: dict[str, tuple[Remote, ...]] = {
    "kadid10k": (Remote("https://datasets.vqa.mmsp-kn.de/archives/kadid10k.zip", "kadid10k.zip", True),),
    "csiq": (Remote("https://s2.smu.edu/~eclarson/csiq/csiq.DMOS.xlsx", "csiq.DMOS.xlsx", False),
             Remote("https://s2.smu.edu/~eclarson/csiq/src_imgs.zip", "src_imgs.zip", True),
             Remote("https://s2.smu.edu/~eclarson/csiq/dst_imgs.zip", "dst_imgs.zip", True)),
    "nights": (Remote("https://data.csail.mit.edu/nights/nights.zip", "nights.zip", True),),
    "tid2013": (Remote("http://www.ponomarenko.info/tid2013/tid2013.rar", "tid2013.rar", False),),
}

MANUAL: dict[str, str] = {
    "live": ("LIVE Release 2 needs the registration form at https://live.ece.utexas.edu/research/quality/ ; "
             "you receive the password of databaserelease2.zip. Unpack it so that {dest}/databaserelease2/ "
             "holds jp2k/ jpeg/ wn/ gblur/ fastfading/ refimgs/ dmos.mat dmos_realigned.mat refnames_all.mat."),
    "pieapp": ("PieAPP may be used for non-commercial, educational purposes only (TERMS_OF_USE.pdf). After "
               "reading the terms, download all_data_PieAPP_dataset_CVPR_2018.zip from "
               "https://web.ece.ucsb.edu/~ekta/projects/PieAPPv0.1/ and unpack it so that "
               "{dest}/PieAPP_dataset_CVPR_2018/ holds reference_images/ distorted_images/ labels/."),
    "pipal": ("PIPAL is distributed through the Google Drive links of https://github.com/HaomingCai/PIPAL-dataset ; "
              "download the training part and put Train_Ref/, Distortion_1..4/ (or Train_Dist/) and "
              "Train_Label/ into {dest}/."),
}
TID_UNPACK = ("TID2013 is a .rar archive, which this toolkit does not unpack (no well-kept pure-Python "
              "extractor). Unpack {archive} with `bsdtar -xf` (Debian package libarchive-tools) or `unar` "
              "into {dest}/ so that it holds reference_images/ distorted_images/ mos_with_names.txt.")
DATASETS = (*PUBLIC, *MANUAL)


def instructions(name: str, root: PathLike) -> str:
    """What to do by hand for a set that cannot be fetched (registration, terms, Google Drive)."""
    if name not in MANUAL:
        raise DownloadError(f"no manual instructions for {name!r}; known: {', '.join(MANUAL)}")
    return MANUAL[name].format(dest=Path(root) / name)


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
    """Check every member, unpack into a temporary folder inside ``dest``, rename each top-level
    entry into place (an existing entry of that name is replaced whole); return those entries."""
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
    if name in MANUAL:
        raise DownloadError(instructions(name, root))
    if name not in PUBLIC:
        raise DownloadError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    dest = Path(root) / name
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str]] = {}
    for remote in PUBLIC[name]:
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
    if name == "tid2013":
        out["tid2013.rar"]["todo"] = TID_UNPACK.format(archive=dest / "tid2013.rar", dest=dest)
    return out
