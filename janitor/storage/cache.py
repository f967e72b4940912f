"""The scan's verdict cache, kept as git's index keeps stat data: for each checkpoint file of
the runs in one logs root, its stat key (device, inode, size, mtime_ns, ctime_ns) and the
completeness verdict read from its ends. A file whose key is unchanged is not opened again.

One file per logs root, ``<root>/.janitor/verdicts.cache`` (``layout.verdict_cache``),
written whole through the storage seam (temp + fsync + rename), so two janitors writing at
once leave one of their two complete files. Whatever goes wrong means "read the file again",
never a wrong verdict: a missing, corrupt, truncated, foreign or other-version cache is an
empty one; a cache that cannot be written (read-only root) is simply not written.

Racy files (git's "racily clean" entries): a file changed in the same timestamp tick as it
was read keeps its mtime and ctime, so its key cannot tell. Entries whose mtime or ctime is
within ``RACY_NS`` of the start of the scan are not stored: they are read again next time.

Layout (little-endian): ``MAGIC``, u32 header length, a JSON header
``{"verdicts": [[complete, problem], ...], "folders": [[name, count, names_bytes], ...]}``,
then per folder its file names ("\\0"-joined UTF-8), ``count`` stat keys (40 bytes) and
``count`` verdict indexes (u16). A folder is decoded only when the scan reaches it.
"""

from __future__ import annotations

import errno
import json
import struct
import sys
import time
from array import array
from collections.abc import Callable
from typing import NamedTuple

from janitor.core.ziptail import COMPLETE, ZipCheck
from janitor.storage import layout
from janitor.storage.fs import KEY, FileSystem, StatKey, key_times

MAGIC = b"janitor-verdicts/1\n"  # the format's version: another one is read as empty
_HEAD = struct.Struct("<I")
RACY_NS = 3_000_000_000  # timestamp granularity to allow for: FAT has 2 s, NFS may lag
MAX_FILES = 1_000_000  # bound: ~60 MB; folders not seen in this scan are dropped first
_ENC = ("utf-8", "surrogateescape")
_BIG_ENDIAN = sys.byteorder == "big"  # indexes are stored little-endian

CacheEntry = tuple[str, StatKey, ZipCheck, bool]  # name, key, verdict, read in this scan


class Cached(NamedTuple):
    keys: dict[str, StatKey]
    verdicts: dict[str, ZipCheck]


class _Section(NamedTuple):
    count: int
    names: int  # bytes of its names
    data: bytes | memoryview  # names, keys, verdict indexes


class VerdictCache:
    """The verdicts of one logs root's run folders (keyed by the run folder's name)."""

    def __init__(self, fs: FileSystem, state: str, started_ns: int | None = None) -> None:
        self.fs = fs
        self.path = layout.verdict_cache(state)
        self.state = state
        self.cutoff = (time.time_ns() if started_ns is None else started_ns) - RACY_NS
        self.table: list[ZipCheck] = [COMPLETE]
        self.index: dict[ZipCheck, int] = {COMPLETE: 0}
        self.sections: dict[str, _Section] = {}  # as loaded, then as recorded
        self.seen: set[str] = set()  # folders recorded in this scan
        self.dirty = False
        self._load()

    # ---------------------------------------------------------------- reading

    def _load(self) -> None:
        try:
            data = self.fs.read_bytes(self.path)
        except OSError:
            return
        try:
            self._parse(memoryview(data))
        except Exception:  # corrupt, truncated, foreign: an empty cache, rewritten later
            self.table, self.sections = [COMPLETE], {}
            self.dirty = True
        self.index = {v: i for i, v in enumerate(self.table)}

    def _parse(self, data: memoryview) -> None:
        if bytes(data[: len(MAGIC)]) != MAGIC:
            raise ValueError("not a verdict cache of this version")
        at = len(MAGIC)
        (hlen,) = _HEAD.unpack_from(data, at)
        at += _HEAD.size
        header = json.loads(bytes(data[at : at + hlen]))
        at += hlen
        table = [
            ZipCheck(bool(c), p if isinstance(p, str) else None) for c, p in header["verdicts"]
        ]
        if not table or table[0] != COMPLETE:
            raise ValueError("verdict table")
        sections = {}
        for name, count, nbytes in header["folders"]:
            size = nbytes + count * (KEY.size + 2)
            if not isinstance(name, str) or count < 0 or nbytes < 0 or at + size > len(data):
                raise ValueError("folder section")
            sections[name] = _Section(count, nbytes, data[at : at + size])
            at += size
        if at != len(data):
            raise ValueError("trailing bytes")
        self.table, self.sections = table, sections

    def folder(self, name: str) -> Cached | None:
        """The cached keys and verdicts of one run folder (by its name), or None."""
        section = self.sections.get(name)
        if section is None:
            return None
        count, nbytes, data = section
        try:
            names = bytes(data[:nbytes]).decode(*_ENC).split("\0") if count else []
            blob = bytes(data[nbytes : nbytes + count * KEY.size])
            keys = [blob[i : i + KEY.size] for i in range(0, len(blob), KEY.size)]
            indexes = array("H")
            indexes.frombytes(data[nbytes + count * KEY.size :])
            if _BIG_ENDIAN:
                indexes.byteswap()
            if len(names) != count or len(indexes) != count:
                raise ValueError("folder section")
            if max(indexes, default=0) >= len(self.table):
                raise ValueError("verdict index")
            verdicts = map(self.table.__getitem__, indexes)
            return Cached(dict(zip(names, keys, strict=True)),
                          dict(zip(names, verdicts, strict=True)))  # fmt: skip
        except (ValueError, UnicodeDecodeError):
            del self.sections[name]
            self.dirty = True
            return None

    # ---------------------------------------------------------------- writing

    def record(
        self,
        name: str,
        hits: int,
        judged: list[CacheEntry],
        entries: Callable[[], list[CacheEntry]],
    ) -> None:
        """The checkpoint files of run folder ``name`` as this scan found them: ``hits`` of
        them came from the cache unchanged, ``judged`` were read (or are small models taken
        from the cache), ``entries()`` lists them all."""
        changed = self.changed(name, hits, judged, entries)
        self.seen.add(name)
        if changed is not None:
            self.store(name, changed)

    def changed(
        self,
        name: str,
        hits: int,
        judged: list[CacheEntry],
        entries: Callable[[], list[CacheEntry]],
    ) -> list[CacheEntry] | None:
        """The entries of a folder whose files were found so (``record``) if its section
        must be written again (it has none, or a file was read, or a cached one is gone),
        else None."""
        old = self.sections.get(name)
        if old is not None and hits == old.count and not any(e[3] for e in judged):
            return None
        return entries()

    def store(self, name: str, entries: list[CacheEntry]) -> None:
        """Run folder ``name``'s section, from every file judged in this scan (``record``);
        racy ones, changed in the same timestamp tick as the scan began, are left out: read
        again next time."""
        self.seen.add(name)
        cutoff = self.cutoff
        keep = [e for e in entries if not e[3] or max(key_times(e[1])) < cutoff]
        index = self.index
        table = self.table
        for e in keep:
            if e[2] not in index:
                index[e[2]] = len(table)
                table.append(e[2])
        names = "\0".join(e[0] for e in keep).encode(*_ENC)
        indexes = array("H", (index[e[2]] for e in keep))
        if _BIG_ENDIAN:
            indexes.byteswap()
        data = b"".join((names, *(e[1] for e in keep), indexes.tobytes()))
        self.sections[name] = _Section(len(keep), len(names), data)
        self.dirty = True

    def forget_unseen(self) -> None:
        """Drop run folders this scan did not meet (after a walk of the whole root)."""
        for name in [n for n in self.sections if n not in self.seen]:
            del self.sections[name]
            self.dirty = True

    def save(self) -> bool:
        """Write the cache if anything changed; False if it could not be (read-only root)."""
        if not self.dirty:
            return True
        if len(self.table) > 0xFFFF:
            return False  # more distinct problems than indexes: not worth caching
        folders, parts, total = [], [], 0
        # folders met in this scan first: the bound drops the others
        order = sorted(self.sections, key=lambda n: n not in self.seen)
        for name in order:
            count, nbytes, data = self.sections[name]
            if total + count > MAX_FILES:
                continue
            total += count
            folders.append([name, count, nbytes])
            parts.append(data)
        if not total and not self.fs.exists(self.path):
            return True  # nothing worth keeping yet (every file racy): no file at all
        verdicts = [[v.complete, v.problem] for v in self.table]
        header = json.dumps({"verdicts": verdicts, "folders": folders}).encode()
        data = b"".join((MAGIC, _HEAD.pack(len(header)), header, *parts))
        try:
            self.fs.makedirs(self.state)
            self.fs.write_atomic(self.path, data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                _warn_full_once(self.path, exc)
            return False
        self.dirty = False
        return True


_WARNED: list[bool] = [False]


def _warn_full_once(path: str, exc: OSError) -> None:
    """A cache not saved for want of room never fails the command: one line on stderr, once
    per process (a read-only root stays silent: it is expected there)."""
    if _WARNED[0]:
        return
    _WARNED[0] = True
    from janitor.storage.journal import disk_full_text

    print(
        f"janitor: warning: verdict cache {path} not saved: {disk_full_text(path, exc)}; "
        "the next scan reads the files again",
        file=sys.stderr,
    )
