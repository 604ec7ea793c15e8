"""Small file-system helpers shared by every writer in the toolkit.

* :func:`atomic_path` / :func:`atomic_write` — write to a temporary name in the destination folder,
  ``fsync`` and ``os.replace`` on success, delete the temporary file on any failure. A process
  killed half-way never leaves a file under its final name.
* :class:`FileLock` — an exclusive, non-blocking ``flock`` on ``<path>.lock``; the kernel drops it
  when the holder dies (even by ``kill -9``), so there are no stale locks to clean up.
* :func:`remove_stale_temps` — delete the temporaries that killed writers left in a folder
  (call it while holding the folder's lock).
* :func:`sha256_file` — streaming SHA-256 of a file.
* :func:`path_inside` — the path of a file a writer names from data (an item id, a stem, a set
  key), resolved and refused when it would land outside the writer's output folder.
* :func:`csv_cell` / :func:`csv_row` / :func:`csv_frame` / :func:`csv_raw` — CSV cells from data neutralised against
  spreadsheet formula injection, and the raw value back (rule below).

CSV cells (OWASP's CSV-injection guidance): a text cell that begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return would be run as a formula by a spreadsheet, so every CSV the
toolkit writes from data gets a single quote ``'`` prepended to such a cell (a plain number
such as ``-0.25`` or ``+1e-3`` is left as it is). A cell that begins with ``'`` is prefixed too,
so the rule can be undone exactly: **a reader gets the raw value back by dropping one leading
``'``** from any cell that starts with it (:func:`csv_raw`; in pandas
``df[col].str.removeprefix("'")``). Spreadsheets show such a cell as text, without the quote.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Union

from .errors import DataError, LockedError

PathLike = Union[str, "os.PathLike[str]"]

TMP_MARK = ".tmp-"


def temp_name_for(path: PathLike) -> Path:
    """A unique temporary path beside ``path`` (same folder, so the final rename is atomic)."""
    p = Path(path)
    return p.with_name(f".{p.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path; on normal exit it is renamed to ``path``, on error it is removed.

    Use it for libraries that want a file name (h5py, torch.save, safetensors)::

        with atomic_path("out.h5") as tmp:
            with h5py.File(tmp, "w") as f: ...
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name_for(final)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; rename it to ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def remove_stale_temps(folder: PathLike, pattern: str = f".*{TMP_MARK}*") -> list[Path]:
    """Delete the temporaries that writers killed mid-write (even by ``kill -9``) left in ``folder``.

    Call it only while holding the lock that every writer of those temporaries takes: then no
    live writer owns one of them, and whatever matches is a leftover of a dead run. The default
    ``pattern`` matches every name :func:`temp_name_for` makes (``.<name>.tmp-<pid>-<hex>``); a
    caller that shares the folder with writers under other locks narrows it, e.g.
    ``"." + glob.escape(name) + TMP_MARK + "*"`` for one final name. The pattern must name hidden
    entries (start with ``.``), so a careless pattern cannot reach ordinary files. Files and
    links are unlinked, folders (temporary extraction trees) removed with their contents;
    symbolic links are never followed. Entries that vanish meanwhile or cannot be removed are
    skipped. Returns the paths removed.
    """
    if not pattern.startswith(".") or not pattern.strip(".*?"):
        raise ValueError(f"remove_stale_temps: pattern {pattern!r} must name hidden temporaries "
                         f"(start with '.' and hold more than wildcards)")
    base = Path(folder)
    if not base.is_dir():
        return []
    removed: list[Path] = []
    for stale in sorted(base.glob(pattern)):
        try:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except OSError:  # gone already, or not ours to remove
            continue
        removed.append(stale)
    return removed


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class FileLock:
    """Exclusive lock on ``<target>.lock`` so two runs cannot write the same output.

    >>> with FileLock("runs/alex-lin"):      # second process gets LockedError at once
    ...     train(...)
    """

    def __init__(self, target: PathLike, what: str = "output"):
        self.target = Path(target)
        self.lock_path = self.target.with_name(self.target.name + ".lock")
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = ""
                with contextlib.suppress(OSError, ValueError):
                    holder = os.pread(fd, 64, 0).decode().strip()
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    who = f" (pid {holder})" if holder else ""
                    raise LockedError(
                        f"another bapps process{who} is already writing {self.what} {self.target} "
                        f"(lock file {self.lock_path}); wait for it to finish or pick another output"
                    ) from None
                raise
            if self._still_linked(fd):
                break
            # The holder we waited behind unlinked the file on release: lock the new one.
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def _still_linked(self, fd: int) -> bool:
        """Whether the locked file is still the one at :attr:`lock_path` (same inode)."""
        try:
            st = os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def release(self) -> None:
        # The file is unlinked while still locked, so no lock file stays behind. A process that
        # opened the old file meanwhile gets its lock after we release, sees that the path no
        # longer names that inode (acquire's re-check) and retries on a fresh file.
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                if self._still_linked(self._fd):
                    os.unlink(self.lock_path)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def path_inside(folder: PathLike, *parts: str, source: str = "") -> Path:
    """``folder / parts…`` resolved (symbolic links followed), refused outside ``folder``.

    Every writer that names a file or sub-folder from data (an item id, a stem, a set key read
    from a manifest, a packed file or a study database) builds the path with this function, so
    an absolute name (``/etc/x``), a ``..`` or a link placed in the output folder cannot make it
    write anywhere else. ``folder`` itself is what the user typed and is trusted.

    Args:
        folder: the output folder (need not exist yet).
        *parts: path components below it, taken from data.
        source: where the names came from, for the message (``"study database s.sqlite"``).

    Returns:
        The resolved path, inside the resolved ``folder`` and not equal to it.

    Raises:
        DataError: the path resolves outside ``folder`` (or to ``folder`` itself); the message
            names the parts, their source and the folder.

    Example:
        >>> path_inside("/tmp/out", "2afc", "x.png").name
        'x.png'
    """
    base = Path(folder).resolve()
    try:
        target = base.joinpath(*parts).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, too long, a link loop
        raise DataError(f"refusing to write {'/'.join(map(repr, parts))}{' from ' + source if source else ''}: "
                        f"not a usable path below {base} ({exc})") from None
    if target == base or not target.is_relative_to(base):
        raise DataError(f"refusing to write {target}: the name {'/'.join(map(repr, parts))}"
                        f"{' from ' + source if source else ''} leads outside the output folder {base}")
    return target


#: First characters that make a spreadsheet read a cell as a formula (OWASP), plus ``'`` itself
#: so that the neutralisation can be undone exactly (module docstring).
CSV_TRIGGERS = frozenset("=+-@\t\r'")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.IGNORECASE)


def csv_cell(value: object) -> object:
    """``value`` made safe for a CSV cell (no spreadsheet formula).

    A string beginning with ``= + - @``, a tab, a carriage return or ``'`` gets a ``'`` prepended,
    unless it is a plain number; anything that is not a string is returned unchanged (so numbers
    keep their formatting). Undo with :func:`csv_raw`.

    Example:
        >>> csv_cell("=HYPERLINK(0)"), csv_cell("-0.5"), csv_cell(3)
        ("'=HYPERLINK(0)", '-0.5', 3)
    """
    if isinstance(value, str) and value[:1] in CSV_TRIGGERS and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_row(cells: Iterable[object]) -> list[object]:
    """:func:`csv_cell` of every cell of a row."""
    return [csv_cell(c) for c in cells]


def csv_frame(frame: Any) -> Any:
    """A copy of a pandas ``DataFrame`` whose text columns went through :func:`csv_cell`.

    Meant for ``frame.to_csv``; number columns are untouched (their ``float_format`` still applies).
    """
    text = [c for c in frame.columns if getattr(frame[c].dtype, "kind", "") == "O"]  # object, str, category
    out = frame.copy()
    for c in text:
        out[c] = frame[c].map(csv_cell)
    return out


def csv_raw(cell: str) -> str:
    """The raw value of a cell that :func:`csv_cell` wrote: one leading ``'`` dropped.

    Example:
        >>> csv_raw("'=1+1"), csv_raw("-0.5")
        ('=1+1', '-0.5')
    """
    return cell[1:] if cell.startswith("'") else cell
