"""Fetch and unpack the official BAPPS archives (Zhang et al., CVPR 2018), safely and resumably.

Layout (as the official ``scripts/download_dataset.sh`` unpacks it)::

    jnd.tar.gz           (~0.2 GB)  members jnd/val/...    unpacked into <root>/
    twoafc_val.tar.gz    (~1.1 GB)  members val/...        unpacked into <root>/2afc/
    twoafc_train.tar.gz  (~5.3 GB)  members train/...      unpacked into <root>/2afc/

giving ``<root>/jnd/val/<category>/{p0,p1,same}`` and
``<root>/2afc/{train,val}/<category>/{ref,p0,p1,judge}``.

Integrity. The authors publish no checksums and we could not fetch the archives here, so
:data:`ARCHIVES` carries ``sha256=None`` and approximate sizes only. What is checked:

* the length of every download against the server's ``Content-Length`` / ``Content-Range``
  (a cut connection is detected and resumed with HTTP ``Range``);
* the SHA-256 of each archive as first downloaded is recorded in ``<root>/.bapps_download.json``
  and every later run (a re-download, or a kept archive) must match it;
* the members of each archive must have the official top-level folder (``jnd``, ``val``,
  ``train``), so an HTML error page or a wrong file is refused before anything is unpacked.

Extraction (:func:`safe_extract`) checks every member first — absolute paths, ``..``, links that
leave the destination, device files and FIFOs are refused and then nothing at all is extracted —
and extracts with tarfile's ``data`` filter where Python has it. It unpacks into a temporary folder
inside the destination and renames the finished tree into place, then writes a per-archive
completion marker ``<root>/.bapps_extracted.<archive>.json``; reruns skip archives with a marker,
so a killed run is finished by simply running the same command again.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from .._download import check_free_space, download_file, info_path, part_path
from .._io import TMP_MARK, FileLock, PathLike, remove_stale_temps, sha256_file, write_text_atomic
from ..errors import DownloadError
from .extract import (
    EXTRACT_TMP_PREFIX,
    check_layout,
    check_members,
    member_parts,
    read_members,
    safe_extract,
)

#: Where the official scripts fetch the archives from.
BASE_URL = "https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset/"
MANIFEST_NAME = ".bapps_download.json"
MARKER_PREFIX = ".bapps_extracted."
#: Room needed to unpack an archive, as a multiple of its size. The archives hold small PNGs that
#: gzip barely shrinks; the margin covers file-system blocks of ~10 kB files.
UNPACK_FACTOR = 1.3


@dataclass(frozen=True)
class ArchiveSpec:
    """One official BAPPS archive."""

    name: str                 #: file name under the base URL
    top: str                  #: the single top-level folder of its members
    subdir: str               #: folder under the root it is unpacked into ("" = the root)
    approx_bytes: int         #: approximate size (for the free-disk check only)
    sha256: str | None     #: published SHA-256; None: unknown, see the module docstring
    val: bool                 #: part of the validation data (downloaded with val_only)

    def dest(self, root: PathLike) -> Path:
        """The folder under ``root`` this archive is unpacked into."""
        return Path(root) / self.subdir if self.subdir else Path(root)

    def marker(self, root: PathLike) -> Path:
        """The completion marker this archive's extraction writes into ``root``."""
        return Path(root) / f"{MARKER_PREFIX}{self.name}.json"


#: The three official archives, in download order.
ARCHIVES: tuple[ArchiveSpec, ...] = (
    ArchiveSpec("jnd.tar.gz", "jnd", "", 200_000_000, None, True),
    ArchiveSpec("twoafc_val.tar.gz", "val", "2afc", 1_100_000_000, None, True),
    ArchiveSpec("twoafc_train.tar.gz", "train", "2afc", 5_300_000_000, None, False),
)
ARCHIVES_BY_NAME: dict[str, ArchiveSpec] = {a.name: a for a in ARCHIVES}


class DownloadResult(TypedDict):
    """What :func:`download_bapps` reports for one archive."""

    status: str               #: "already extracted", "extracted" or "extracted from archive"
    sha256: str | None        #: the archive's SHA-256 (None: never recorded)
    size: int | None          #: the archive's size in bytes (None: never recorded)
    dest: str                 #: the folder it was unpacked into


class _ManifestEntry(TypedDict, total=False):
    """One archive's record in ``<root>/.bapps_download.json`` (read from disk: unchecked)."""

    sha256: str
    size: int
    source: str
    time: str


class _Manifest(TypedDict):
    """The download manifest: one entry per archive name."""

    archives: dict[str, _ManifestEntry]


def _say(msg: str, enabled: bool = True) -> None:
    if enabled:
        print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# archives, manifest, markers
# --------------------------------------------------------------------------------------------
def detect_archive(archive: PathLike, *,
                   members: Sequence[tarfile.TarInfo] | None = None) -> ArchiveSpec:
    """Which official archive ``archive`` is, from its members' top-level folder.

    The file name is only used in the error message: a renamed download is still recognised.
    ``members`` (from :func:`read_members`) saves reading the archive again.
    """
    archive = Path(archive)
    if members is None:
        members = read_members(archive)
    tops = {p[0] for p in (member_parts(m.name) for m in members) if p}
    for spec in ARCHIVES:
        if tops == {spec.top}:
            return spec
    hint = ""
    by_name = ARCHIVES_BY_NAME.get(archive.name)
    if by_name is not None:
        hint = f" (its name says {by_name.name}, whose members are under '{by_name.top}/')"
    raise DownloadError(
        f"{archive} is not one of the BAPPS archives{hint}: its top-level entries are "
        f"{sorted(tops)[:5]}, expected exactly one of "
        f"{', '.join(repr(a.top + '/') for a in ARCHIVES)}")


def _read_manifest(root: Path) -> _Manifest:
    path = root / MANIFEST_NAME
    if not path.exists():
        return _Manifest(archives={})
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DownloadError(f"download manifest {path} is unreadable ({exc}); delete it to "
                            f"start the bookkeeping afresh") from None
    if not isinstance(data, dict) or not isinstance(data.get("archives"), dict):
        raise DownloadError(f"download manifest {path} is not in the expected format; delete "
                            f"it to start the bookkeeping afresh")
    return cast(_Manifest, data)


def _write_manifest(root: Path, manifest: _Manifest) -> None:
    write_text_atomic(root / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _install(spec: ArchiveSpec, archive: Path, root: Path, sha: str, source: str,
             progress: bool, members: list[tarfile.TarInfo] | None = None) -> None:
    """Unpack one verified archive and write its completion marker (last)."""
    placed = safe_extract(archive, spec.dest(root), progress=progress, expected_top=spec.top,
                          members=members)
    marker = {"archive": spec.name, "sha256": sha, "size": archive.stat().st_size,
              "source": source, "extracted_to": [str(p) for p in placed], "time": _now()}
    write_text_atomic(spec.marker(root), json.dumps(marker, indent=2, sort_keys=True) + "\n")


def _clean_stale_temps(root: Path) -> None:
    """Remove what killed runs of :func:`download_bapps` left in ``root`` (call under its lock).

    That is: extraction folders ``.bapps_extract-*`` (in ``root`` and ``root/2afc``) and the
    atomic-write temporaries of the manifest and the completion markers. Other files' temporaries
    are left alone: ``root`` may also receive, say, a packed file written under a lock of its own.
    """
    for folder in (root, root / "2afc"):
        remove_stale_temps(folder, EXTRACT_TMP_PREFIX + "*")
    remove_stale_temps(root, f".{MANIFEST_NAME}{TMP_MARK}*")
    remove_stale_temps(root, f".{MARKER_PREFIX}*{TMP_MARK}*")


def _drop_download_leftovers(root: Path, spec: ArchiveSpec, keep_archive: bool) -> None:
    """Once ``spec`` is extracted, delete its download leftovers.

    That is its ``.part``/``.part.json`` (a run killed between publishing the archive and
    removing its side file leaves the latter) and, unless ``keep_archive``, the archive itself.
    """
    archive = root / spec.name
    leftovers = [part_path(archive), info_path(archive)] + ([] if keep_archive else [archive])
    for leftover in leftovers:
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def download_bapps(root: PathLike, *, val_only: bool = False, base_url: str | None = None,
                   from_archive: PathLike | None = None, progress: bool = True,
                   keep_archives: bool = False) -> dict[str, DownloadResult]:
    """Download and unpack BAPPS into ``root`` (or unpack one archive fetched another way).

    Args:
        root: the dataset root; ends up holding ``jnd/`` and ``2afc/``.
        val_only: only ``jnd.tar.gz`` and ``twoafc_val.tar.gz`` (≈1.3 GB instead of 6.6 GB).
        base_url: a mirror holding the three archive names (default :data:`BASE_URL`).
        from_archive: unpack this local archive (recognised from its members) and download
            nothing.
        progress: progress bars and one-line status messages on stderr.
        keep_archives: keep each ``.tar.gz`` in ``root`` after unpacking (default: delete it).

    Returns:
        ``{archive name: {"status": ..., "sha256": ..., "size": ..., "dest": ...}}`` where
        status is ``"already extracted"``, ``"extracted"`` or ``"extracted from archive"``.

    Reruns are idempotent (archives with a completion marker are skipped without any network
    request) and finish what a killed run left: a ``.part`` download resumes, an interrupted
    extraction starts over. A second process on the same root stops with
    :class:`~bapps_toolkit.errors.LockedError`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = (base_url or BASE_URL).rstrip("/") + "/"
    with FileLock(root / ".bapps_download", "a BAPPS download into"):
        _clean_stale_temps(root)
        manifest = _read_manifest(root)
        if from_archive is not None:
            return _unpack_local(root, Path(from_archive), manifest, progress)
        wanted = [a for a in ARCHIVES if a.val or not val_only]
        _check_room(root, [a for a in wanted if not a.marker(root).exists()])
        return {spec.name: _fetch_and_install(root, spec, base, manifest, progress, keep_archives)
                for spec in wanted}


def _result(status: str, sha: str | None, size: int | None, dest: Path) -> DownloadResult:
    return DownloadResult(status=status, sha256=sha, size=size, dest=str(dest))


def _unpack_local(root: Path, archive: Path, manifest: _Manifest,
                  progress: bool) -> dict[str, DownloadResult]:
    """Unpack one archive fetched another way (recognised from its members); download nothing."""
    if not archive.is_file():
        raise DownloadError(f"archive to unpack {archive}: no such file")
    members = read_members(archive)
    spec = detect_archive(archive, members=members)
    sha = sha256_file(archive)
    if spec.marker(root).exists():
        try:
            done = json.loads(spec.marker(root).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            done = {}
        if isinstance(done, dict) and done.get("sha256") == sha:
            _say(f"{spec.name}: {archive} is already extracted, skipping", progress)
            return {spec.name: _result("already extracted", sha, archive.stat().st_size, spec.dest(root))}
        spec.marker(root).unlink()
    known = spec.sha256 or manifest["archives"].get(spec.name, {}).get("sha256")
    if known and known != sha:
        _say(f"note: {archive} has SHA-256 {sha}, not the {known} recorded for "
             f"{spec.name}; unpacking it anyway as you asked", progress)
    _say(f"{spec.name}: unpacking {archive} into {spec.dest(root)}", progress)
    _install(spec, archive, root, sha, str(archive.resolve()), progress, members)
    manifest["archives"][spec.name] = {"sha256": sha, "size": archive.stat().st_size,
                                       "source": str(archive.resolve()), "time": _now()}
    _write_manifest(root, manifest)
    return {spec.name: _result("extracted from archive", sha, archive.stat().st_size, spec.dest(root))}


def _check_room(root: Path, todo: list[ArchiveSpec]) -> None:
    """Refuse up front when ``root``'s disk cannot hold what ``todo`` still needs.

    That is the rest of each download (after a kept archive or ``.part``) plus its unpacked files.
    """
    if not todo:
        return
    need = 0
    for a in todo:
        have = root / a.name
        got = have.stat().st_size if have.exists() else (
            part_path(have).stat().st_size if part_path(have).exists() else 0)
        need += max(a.approx_bytes - got, 0) + int(a.approx_bytes * UNPACK_FACTOR)
    check_free_space(root, need, "the BAPPS archives " + ", ".join(a.name for a in todo)
                     + " and their unpacked files")


def _fetch_and_install(root: Path, spec: ArchiveSpec, base: str, manifest: _Manifest,
                       progress: bool, keep_archives: bool) -> DownloadResult:
    """One official archive: skip it if its marker exists, else download, check, record, unpack."""
    marker = spec.marker(root)
    entry = manifest["archives"].get(spec.name, {})
    if marker.exists():
        _say(f"{spec.name}: already extracted (marker {marker.name}), skipping", progress)
        # a run killed between its marker and its clean-up
        _drop_download_leftovers(root, spec, keep_archives)
        return _result("already extracted", entry.get("sha256"), entry.get("size"), spec.dest(root))
    url = base + spec.name
    archive = root / spec.name
    known_sha = spec.sha256 or entry.get("sha256")
    _say(f"{spec.name}: downloading {url}", progress)
    _download_archive(url, archive, entry, known_sha, root / MANIFEST_NAME, progress)
    try:
        members = read_members(archive)
        check_layout(archive, members, spec.top)
        check_members(archive, members)
    except DownloadError as exc:
        archive.unlink()
        raise DownloadError(f"{exc}. The downloaded file was deleted; check the address "
                            f"{url}") from None
    sha = known_sha or sha256_file(archive)
    manifest["archives"][spec.name] = {"sha256": sha, "size": archive.stat().st_size,
                                       "source": url, "time": _now()}
    _write_manifest(root, manifest)
    _say(f"{spec.name}: unpacking into {spec.dest(root)}", progress)
    _install(spec, archive, root, sha, url, progress, members)
    _drop_download_leftovers(root, spec, keep_archives)
    return _result("extracted", sha, manifest["archives"][spec.name]["size"], spec.dest(root))


def _download_archive(url: str, archive: Path, entry: _ManifestEntry, known_sha: str | None,
                      manifest_path: Path, progress: bool) -> None:
    """Fetch ``url`` to ``archive`` against the size and SHA-256 recorded in the manifest entry.

    A mismatch with a recorded entry says where the record lives.
    """
    try:
        download_file(url, archive, expected_size=entry.get("size"), sha256=known_sha,
                      progress=progress)
    except DownloadError as exc:
        if entry and ("SHA-256" in str(exc) or "announces" in str(exc)):
            raise DownloadError(
                f"{exc}. The size and SHA-256 were recorded in {manifest_path} "
                f"when {archive.name} was first downloaded; if the archive was "
                f"legitimately replaced upstream, remove its entry from that "
                f"file") from None
        raise
