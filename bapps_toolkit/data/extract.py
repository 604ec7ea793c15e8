"""Safe extraction of untrusted tar archives.

Every member is checked before anything is written (absolute paths, ``..``, links leaving the
destination, device files and FIFOs refuse the whole archive). Extraction uses tarfile's ``data``
filter where Python has it, into a temporary folder inside the destination whose finished
entries are renamed into place.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sys
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from .._download import check_free_space
from .._io import PathLike
from ..errors import DownloadError

EXTRACT_TMP_PREFIX = ".bapps_extract-"


def member_parts(name: str) -> tuple[str, ...]:
    """Path components of a member name without ``.`` entries (``./a//b`` -> ``(a, b)``)."""
    return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def _is_absolute(name: str) -> bool:
    n = name.replace("\\", "/")
    return n.startswith("/") or (len(n) >= 2 and n[1] == ":" and n[0].isalpha())


def _link_target_parts(member: tarfile.TarInfo) -> tuple[str, ...] | None:
    """Components of a link's target relative to the archive root, ``None`` if it leaves it."""
    link = member.linkname
    if not link or _is_absolute(link):
        return None
    if member.issym():  # relative to the folder holding the link
        base = list(member_parts(member.name)[:-1])
    else:               # hard links are relative to the archive root
        base = []
    for part in link.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not base:
                return None
            base.pop()
        else:
            base.append(part)
    return tuple(base)


def check_members(archive: PathLike, members: Sequence[tarfile.TarInfo]) -> None:
    """Refuse an archive with any unsafe member (raise :class:`DownloadError`, naming it).

    Refused: absolute names, ``..`` components, symbolic or hard links whose target is absolute
    or leaves the archive root, members (or link targets) whose path goes through a symbolic link
    of the archive, device files, FIFOs and any other special type.
    """
    def refuse(m: tarfile.TarInfo, why: str) -> DownloadError:
        return DownloadError(f"refusing to extract {archive}: member {m.name!r} {why}; "
                             f"nothing was extracted")

    symlinks = {member_parts(m.name) for m in members if m.issym()}

    def through_symlink(parts: tuple[str, ...]) -> bool:
        return any(parts[:i] in symlinks for i in range(1, len(parts)))

    for m in members:
        problem = _name_problem(m.name)
        if problem:
            raise refuse(m, problem)
        parts = member_parts(m.name)
        if not parts:
            if m.isdir():
                continue  # the archive's own "./" entry
            raise refuse(m, "has an empty name")
        if through_symlink(parts):
            raise refuse(m, "would be written through a symbolic link of the archive")
        problem = _type_problem(m, symlinks, through_symlink)
        if problem:
            raise refuse(m, problem)


def _name_problem(name: str) -> str | None:
    """Why member name ``name`` is unsafe (NUL byte, absolute, ``..``), or ``None``."""
    if "\x00" in name:
        return "has a NUL byte in its name"
    if _is_absolute(name):
        return "has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "has a '..' component (path traversal)"
    return None


def _type_problem(m: tarfile.TarInfo, symlinks: set[tuple[str, ...]],
                  through_symlink: Callable[[tuple[str, ...]], bool]) -> str | None:
    """Why the type of member ``m`` is unsafe (an unsafe link, a device, a FIFO...), or ``None``."""
    if m.isreg() or m.isdir():
        return None
    if m.issym() or m.islnk():
        return _link_problem(m, symlinks, through_symlink)
    if m.ischr() or m.isblk():
        return "is a device file"
    if m.isfifo():
        return "is a FIFO (named pipe)"
    return f"has an unsupported type {m.type!r}"


def _link_problem(m: tarfile.TarInfo, symlinks: set[tuple[str, ...]],
                  through_symlink: Callable[[tuple[str, ...]], bool]) -> str | None:
    """Why link member ``m`` is unsafe, or ``None`` when it is safe.

    Unsafe: its target leaves the archive or goes through a symbolic link of the archive.
    """
    kind = "symbolic link" if m.issym() else "hard link"
    target = _link_target_parts(m)
    if target is None:
        return f"is a {kind} to {m.linkname!r}, outside the destination"
    if m.islnk() and (target in symlinks or through_symlink(target)):
        return f"is a hard link to {m.linkname!r}, which goes through a symbolic link"
    if m.issym() and through_symlink(target):
        return f"is a symbolic link to {m.linkname!r}, which goes through another symbolic link"
    return None


def check_layout(archive: PathLike, members: Sequence[tarfile.TarInfo], top: str) -> None:
    """Every member must lie under the folder ``top`` (raise :class:`DownloadError` if not)."""
    for m in members:
        parts = member_parts(m.name)
        if parts and parts[0] != top:
            raise DownloadError(f"{archive} is not the expected archive: member {m.name!r} is "
                                f"not under '{top}/'; nothing was extracted")
    if not any(member_parts(m.name) for m in members):
        raise DownloadError(f"{archive} is empty; nothing was extracted")


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise DownloadError(f"archive {archive} does not exist") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DownloadError(f"{archive} is not a readable tar archive ({exc})") from None


def read_members(archive: PathLike) -> list[tarfile.TarInfo]:
    """Every member of ``archive`` (reads the whole file: a truncated archive is detected)."""
    archive = Path(archive)
    with _open_tar(archive) as tar:
        try:
            return tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DownloadError(f"{archive} is corrupt or truncated ({exc}); delete it and "
                                f"download it again") from None


def _extract_all(tar: tarfile.TarFile, members: list[tarfile.TarInfo], into: Path,
                 progress: bool, desc: str) -> None:
    use_filter = hasattr(tarfile, "data_filter")
    bar = tqdm(members, desc=desc, unit="file", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    for m in bar:
        if use_filter:
            tar.extract(m, into, filter="data")
        else:  # Python without extraction filters: our checks above are the guard
            if m.isreg() or m.isdir():
                m.mode &= 0o755
            tar.extract(m, into, set_attrs=not (m.issym() or m.islnk()))


def safe_extract(archive: PathLike, dest: PathLike, *, progress: bool = True,
                 expected_top: str | None = None,
                 members: list[tarfile.TarInfo] | None = None) -> list[Path]:
    """Unpack ``archive`` into ``dest`` safely; return the top-level paths placed in ``dest``.

    1. Every member is checked first (:func:`check_members`); one bad member refuses the whole
       archive and nothing is extracted. With ``expected_top``, every member must lie under that
       single top-level folder.
    2. The members are extracted, with tarfile's ``data`` filter where available, into a
       temporary folder ``<dest>/.bapps_extract-*`` (same file system, so renames are atomic).
    3. Each finished top-level entry is renamed into ``dest``; an entry of the same name already
       there is first moved aside into the temporary folder, so ``dest`` always shows either the
       old entry or the complete new one, never a half-written tree.

    ``members`` (from :func:`read_members` on the same file) saves one pass over the archive.

    Raises:
        DownloadError: naming the archive (and the member) on any unsafe, corrupt or unexpected
        content, or when ``dest``'s disk lacks room for the unpacked files.
    """
    archive = Path(archive)
    dest = Path(dest)
    if members is None:
        members = read_members(archive)
    check_members(archive, members)
    if expected_top is not None:
        check_layout(archive, members, expected_top)
    tops = sorted({member_parts(m.name)[0] for m in members if member_parts(m.name)})
    if not tops:
        raise DownloadError(f"{archive} is empty; nothing was extracted")
    dest.mkdir(parents=True, exist_ok=True)
    check_free_space(dest, int(sum(m.size for m in members if m.isreg()) * 1.05) + (1 << 20),
                     f"unpacking {archive.name}")
    tmp = dest / f"{EXTRACT_TMP_PREFIX}{archive.name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        with _open_tar(archive) as tar:
            try:
                _extract_all(tar, members, tmp, progress, f"unpacking {archive.name}")
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise DownloadError(f"{archive}: extraction failed ({exc}); nothing was "
                                    f"placed in {dest}") from None
        placed: list[Path] = []
        for top in tops:
            final = dest / top
            new = tmp / top
            if final.exists() or final.is_symlink():
                os.replace(final, tmp / f".old-{top}")
            os.replace(new, final)
            placed.append(final)
        return placed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
