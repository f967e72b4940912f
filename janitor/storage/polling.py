"""Listing-based ``stat``/``listdir`` for watchdog's polling observer on storage that has no
change events of its own (object stores): one listing per folder per poll, and the stat of
each entry answered from that listing, not by a request per object."""

from __future__ import annotations

import stat as stat_mod
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from janitor.storage.fs import DirEntry, FileSystem


class _Name(NamedTuple):
    name: str  # all that watchdog's snapshot reads of a directory entry


class ListingStat:
    """``listdir`` and ``stat`` for ``watchdog.observers.polling.PollingObserverVFS``."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self.listed: dict[str, DirEntry] = {}

    def listdir(self, path: str | None) -> Iterator[_Name]:
        entries = self.fs.listdir(path or "")
        for e in entries:
            self.listed[e.path] = e
        return iter([_Name(e.name) for e in entries])

    def stat(self, path: str):
        import os

        e = self.listed.pop(path, None) or self.fs.stat(path)
        mode = (stat_mod.S_IFDIR | 0o755) if e.kind == "dir" else (stat_mod.S_IFREG | 0o644)
        ino = zlib.crc32(path.encode("utf-8", "surrogateescape"))
        return os.stat_result((mode, ino, 0, 1, 0, 0, e.size, e.mtime, e.mtime, e.ctime))
