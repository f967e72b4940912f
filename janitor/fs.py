"""The one narrow seam between janitor and storage: list, stat, read the ends of a file,
remove, rename.

Everything that touches the disk for scan, prune and watch goes through a ``FileSystem``;
policy code never sees it. Today there is one implementation, the local disk; object storage
(fsspec) can be added by implementing the same few methods.
Symlinks are never followed: listings report them as links, ``stat`` is ``lstat``.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass
from typing import Literal, Protocol

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


class FileSystem(Protocol):
    def listdir(self, path: str) -> list[Entry]: ...
    def stat(self, path: str) -> Entry: ...
    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]: ...
    def remove(self, path: str) -> None: ...
    def truncate(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def realpath(self, path: str) -> str: ...


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


class Without:
    """A read-only view of ``fs`` in which ``hidden`` paths do not exist: what a dry run
    scans to show the plan as it will be once those files are moved away."""

    def __init__(self, fs: FileSystem, hidden: frozenset[str]) -> None:
        self.fs = fs
        self.hidden = hidden

    def listdir(self, path: str) -> list[Entry]:
        return [e for e in self.fs.listdir(path) if e.path not in self.hidden]

    def stat(self, path: str) -> Entry:
        if path in self.hidden:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.fs.stat(path)

    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]:
        if path in self.hidden:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.fs.read_ends(path, head, tail)

    def realpath(self, path: str) -> str:
        return self.fs.realpath(path)
