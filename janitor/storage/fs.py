"""The one seam between janitor and storage. Every byte janitor reads or writes (checkpoints'
tails, janitor.toml, the journal, locks, trash moves, small models) goes through a
``FileSystem``; nothing above this layer calls ``os`` or ``open`` on user data.

Today there is one implementation, the local disk (``LocalFS``); object storage (fsspec) is
added by implementing the same methods. Code that needs a real local file (torch's mmap
loader, TensorBoard's event reader) asks ``local_path`` and gets ``None`` where there is none.
Symlinks are never followed: listings report them as links, ``stat`` is ``lstat``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as stat_mod
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["file", "dir", "link", "other"]


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    path: str
    kind: Kind
    size: int
    mtime: float
    ctime: float = 0.0  # inode change time: when a file was last renamed (moved to the trash)


def _kind(mode: int) -> Kind:
    if stat_mod.S_ISLNK(mode):
        return "link"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISREG(mode):
        return "file"
    return "other"


class Appender(Protocol):
    """An open append-only file: each ``write`` lands whole at the end; ``close`` syncs."""

    def write(self, data: bytes) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...


class FileSystem(Protocol):
    def listdir(self, path: str) -> list[Entry]: ...
    def stat(self, path: str) -> Entry: ...
    def exists(self, path: str) -> bool: ...
    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]: ...
    def read_bytes(self, path: str, offset: int = 0) -> bytes: ...
    def write_atomic(self, path: str, data: bytes) -> None: ...
    def appender(self, path: str) -> Appender: ...
    def remove(self, path: str) -> None: ...
    def truncate(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def realpath(self, path: str) -> str: ...
    def lock(self, path: str, timeout: float) -> contextlib.AbstractContextManager[Any]: ...
    def local_path(self, path: str) -> str | None: ...
    def temp_dir(self, folder: str, prefix: str) -> contextlib.AbstractContextManager[str]: ...
    def publish(self, tmp: str, final: str, *, replace: bool) -> bool: ...


class LockTimeout(Exception):
    """Another process holds the lock (``FileSystem.lock`` waited ``timeout`` seconds)."""


class _LocalAppender:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _CLOEXEC, 0o644)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self.fd)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class LocalFS:
    """The local disk. ``O_NOFOLLOW`` on every open: a link is never read through."""

    def listdir(self, path: str) -> list[Entry]:
        out: list[Entry] = []
        with os.scandir(path) as it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:  # vanished between listing and stat
                    continue
                out.append(
                    Entry(e.name, e.path, _kind(st.st_mode), st.st_size, st.st_mtime, st.st_ctime)
                )
        return out

    def stat(self, path: str) -> Entry:
        st = os.lstat(path)
        name = os.path.basename(path)
        return Entry(name, path, _kind(st.st_mode), st.st_size, st.st_mtime, st.st_ctime)

    def _open(self, path: str) -> int:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))

    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]:
        """The first ``head`` and last ``tail`` bytes and the size, from one open file (one
        read when the file is small)."""
        fd = self._open(path)
        try:
            size = os.fstat(fd).st_size
            if size <= head + tail:
                data = os.pread(fd, size, 0)
                return data[:head], data[-tail:] if tail else b"", size
            return os.pread(fd, head, 0), os.pread(fd, tail, size - tail), size
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def read_bytes(self, path: str, offset: int = 0) -> bytes:
        """The whole file, or everything after byte ``offset``."""
        with open(self._open(path), "rb", closefd=True) as fh:
            if offset:
                fh.seek(offset)
            return fh.read()

    def write_atomic(self, path: str, data: bytes) -> None:
        """Temp file in the same folder, fsync, ``os.replace``: never a half-written file."""
        folder = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".janitor-tmp-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def appender(self, path: str) -> Appender:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return _LocalAppender(path)

    @contextlib.contextmanager
    def lock(self, path: str, timeout: float) -> Iterator[None]:
        """An advisory lock file (``filelock``) shared by every janitor on this machine."""
        from filelock import FileLock, Timeout

        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = FileLock(path, timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise LockTimeout(path) from None
        try:
            yield
        finally:
            lock.release()

    def local_path(self, path: str) -> str | None:
        return path

    @contextlib.contextmanager
    def temp_dir(self, folder: str, prefix: str) -> Iterator[str]:
        """A private folder beside ``folder``'s files (same file system), removed afterwards."""
        tmp = tempfile.mkdtemp(prefix=prefix, dir=folder)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def publish(self, tmp: str, final: str, *, replace: bool) -> bool:
        """Move a finished temp file to ``final``: replacing it (``replace``), or only if
        nothing is there (False: something is, and it was left alone)."""
        if replace:
            os.replace(tmp, final)
            return True
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        os.unlink(tmp)
        return True

    def remove(self, path: str) -> None:
        os.unlink(path)

    def truncate(self, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def realpath(self, path: str) -> str:
        """Resolve links in a path the user typed (raises OSError on a link loop)."""
        os.stat(path)  # ELOOP / ENOENT surface here, with the errno intact
        return os.path.realpath(path)


LOCAL = LocalFS()
