"""Small file-system helpers shared by every writer in the toolkit.

* :func:`atomic_path` / :func:`atomic_write` — write to a temporary name in the destination folder,
  ``fsync`` and ``os.replace`` on success, delete the temporary file on any failure. A process
  killed half-way never leaves a file under its final name.
* :class:`FileLock` — an exclusive, non-blocking ``flock`` on ``<path>.lock``; the kernel drops it
  when the holder dies (even by ``kill -9``), so there are no stale locks to clean up.
* :func:`remove_stale_temps` — delete the temporaries that killed writers left in a folder
  (call it while holding the folder's lock).
* :func:`sha256_file` — streaming SHA-256 of a file.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Union

from .errors import LockedError

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
def atomic_write(path: PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
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

    def __exit__(self, *exc) -> None:
        self.release()
