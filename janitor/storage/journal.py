"""The journal: one JSON line per action, appended to ``<logs root>/.janitor/journal.jsonl``.

Records: ``set-begin`` before a set's files are touched, one ``remove``/``trash`` line per
file (a ``trash`` line names its ``trash_path`` and the ``copy`` id, e.g. ``100#2``),
``set-end`` after; ``restore`` and ``trash-empty`` for the trash commands. A set with a
``set-begin`` and no ``set-end`` was interrupted (kill -9, power loss); the next prune
finishes it and says so. A torn last line (a write cut short) is tolerated and reported.

On a full disk (see docs/full-disk.md): a write that finds no room releases
``.janitor/reserve`` (room kept for the journal, made whenever there is room) and is tried
again; a set-begin that still finds none is kept as the name of an empty file in
``.janitor/begun/`` (``<number>.<run folder name>``: a name costs no data block) until its
line is written, and read back as that set-begin. Nothing else is ever written in place of a
line: a record that cannot be written is an error (``JournalError``) and stops the caller
before it removes anything more.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from janitor.domain.errors import oserror_text
from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem, disk_text

RESERVE_SIZE = 64 * 1024  # room for the records of ~75 sets: the journal's first writes

_LAST: list[tuple[int, str]] = [(-1, "")]  # the last millisecond formatted (read in one go)


def now_iso(ts: float | None = None) -> str:
    """``ts`` (default: now) as an ISO time to the millisecond; the records of a set are
    written within the same millisecond or a few, so the last one formatted is reused."""
    ms = int((time.time() if ts is None else ts) * 1000)
    last = _LAST[0]
    if last[0] != ms:
        moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
        last = _LAST[0] = (ms, moment.isoformat(timespec="milliseconds"))
    return last[1]


def _encoder():
    """``json.dumps(record, sort_keys=True, ensure_ascii=False)``, made once: dumps (and
    JSONEncoder.encode) build a new C encoder per call, and a prune writes a record per file."""
    slow = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python)
        return slow
    fast = make(None, None, json.encoder.encode_basestring, None, ": ", ", ", True, False, True)

    def encode(record: dict) -> str:
        try:
            return "".join(fast(record, 0))
        except (TypeError, ValueError):  # not plain JSON: let the full encoder say so
            return slow(record)

    return encode


_encode = _encoder()


SET_EVENTS = ("set-begin", "set-end")


def fold_unfinished(records: Iterable[dict], into: dict[str, set[int]]) -> dict[str, set[int]]:
    """Apply set-begin/set-end records to ``into`` (run path -> sets begun, not ended)."""
    for r in records:
        if r.get("event") == "set-begin":
            into.setdefault(r.get("run"), set()).add(r.get("number"))
        elif r.get("event") == "set-end":
            into.get(r.get("run"), set()).discard(r.get("number"))
    return into


def disk_full_text(path: str, exc: OSError) -> str:
    """``exc`` in a few words; for a full disk, which disk (a local ``path``'s mount point,
    its type, how much is free)."""
    text = oserror_text(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text += f" ({disk_text(path)})"
    return text


class JournalError(OSError):
    """The journal could not be written. ``filename`` is the journal, ``strerror`` (``text``)
    the cause in words (which disk, when it is full): one line as the CLI prints an OSError.
    Nothing was removed on the strength of the missing record."""

    def __init__(self, path: str, exc: OSError) -> None:
        self.path = path
        self.text = f"journal not written: {disk_full_text(path, exc)}"
        super().__init__(exc.errno, self.text, path)

    def __str__(self) -> str:
        return f"{self.path}: {self.text}"


def _full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class JournalWriter:
    def __init__(
        self, fs: FileSystem, path: str, mine: set[bytes] | None = None, by_name: bool = True
    ) -> None:
        self.fs, self.path = fs, path
        self.state = os.path.dirname(path)
        self.mine = mine  # receives the set-begin/set-end lines written (see set_records_since)
        # a disk of our own (not an object store): room is kept and set-begins may be names
        self.local = fs.local_path(path) is not None
        self.by_name = by_name and self.local
        self.pending: list[str] = []  # set-begin lines kept as names, written with the next
        self.pending_sets: set[tuple[str, int]] = set()
        self.named: dict[tuple[str, int], str] = {}  # (run, number) -> its file in begun/
        self.written: set[tuple[str, int]] = set()  # sets whose begin or end is a line now
        # A torn line from an earlier crash must not swallow our first record.
        try:
            _, last, size = fs.read_ends(path, 0, 1)
        except FileNotFoundError:
            last, size = b"", 0
        self.needs_newline = bool(size) and last != b"\n"
        try:
            self.out = fs.appender(path)
        except OSError as exc:
            raise JournalError(path, exc) from None
        if self.local:
            self.named = dict(begun_names(fs, self.state))
            self._keep_room()

    def append(self, *records: dict) -> None:
        """Whole lines in one write. Where the disk has no room even after the reserve is
        released, set-begin records are kept as names (``by_name``) and written with the
        next lines; any other record raises ``JournalError``."""
        lines = [_encode(r) + "\n" for r in records]
        if self.mine is not None:
            self.mine.update(
                line.encode("utf-8") for r, line in zip(records, lines, strict=True)
                if r.get("event") in SET_EVENTS
            )  # fmt: skip
        data = "".join(lines)
        try:
            self._write(data)
        except OSError as exc:
            if not (_full(exc) and self.local):
                raise JournalError(self.path, exc) from None
            self._release_room()
            try:
                self._write(data)
            except OSError as again:
                if not (_full(again) and self.by_name):
                    raise JournalError(self.path, again) from None
                if any(r.get("event") != "set-begin" for r in records):
                    raise JournalError(self.path, again) from None
                for r in records:
                    self._begin_by_name(r)
                self.pending.append(data)
                self.pending_sets.update((r.get("run"), r.get("number")) for r in records)
                return
        if self.named:  # a set kept as a name goes once its begin or end is a line
            self.written.update(
                (r.get("run"), r.get("number")) for r in records if r.get("event") in SET_EVENTS
            )

    def _write(self, data: str) -> None:
        text = "".join(self.pending) + data
        if self.needs_newline:
            text = "\n" + text
        self.needs_newline = True  # until the write is whole: a part may have landed
        self.out.write(text.encode("utf-8"))
        self.needs_newline = False
        self.written |= self.pending_sets
        self.pending.clear()
        self.pending_sets.clear()

    def _begin_by_name(self, record: dict) -> None:
        """A set-begin kept as an empty file's name: metadata, no data block."""
        run, number = record.get("run"), record.get("number")
        path = os.path.join(layout.begun_dir(self.state), f"{number}.{os.path.basename(str(run))}")
        try:
            self.fs.makedirs(layout.begun_dir(self.state))
            self.fs.write_atomic(path, b"")
        except OSError as exc:
            raise JournalError(self.path, exc) from None
        self.named[(run, number)] = path

    def _release_room(self) -> None:
        # none (never made, or another janitor released it first): the write is tried anyway
        with contextlib.suppress(OSError):
            self.fs.remove(layout.reserve_path(self.state))

    def _keep_room(self) -> None:
        """Make the reserve if it is missing and there is room; a disk without room is
        left as it is (the reserve is made by a later write)."""
        reserve = layout.reserve_path(self.state)
        if self.fs.exists(reserve):
            return
        # random bytes: a compressing file system (btrfs, ZFS) stores zeros in nothing
        with contextlib.suppress(OSError):
            self.fs.write_atomic(reserve, os.urandom(RESERVE_SIZE))

    def sync(self) -> None:
        try:
            self.out.sync()
        except OSError as exc:
            raise JournalError(self.path, exc) from None

    def close(self) -> None:
        """fsync and close; then the names of sets whose lines are now on disk go, and the
        reserve is made again if there is room."""
        try:
            self.out.close()
        except OSError as exc:
            raise JournalError(self.path, exc) from None
        for key in [k for k in self.named if k in self.written]:
            with contextlib.suppress(FileNotFoundError):
                self.fs.remove(self.named.pop(key))
        if self.local:
            self._keep_room()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def begun_names(fs: FileSystem, state: str) -> list[tuple[tuple[str, int], str]]:
    """((run path, set number), file) of each set-begin kept as a name in ``begun/``."""
    folder = layout.begun_dir(state)
    try:
        entries = fs.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    root = os.path.dirname(state)
    out = []
    for e in entries:
        number, _, name = e.name.partition(".")
        if e.kind != "file" or not name or not number.lstrip("-").isdigit():
            continue  # a temp file of a write that was stopped
        out.append(((os.path.join(root, name), int(number)), e.path))
    return out


def begun_records(fs: FileSystem, state: str) -> list[dict]:
    """The set-begin records kept as names (read before the journal's lines)."""
    return [
        {"event": "set-begin", "run": run, "number": number, "kept": "name"}
        for (run, number), _ in begun_names(fs, state)
    ]


@dataclass(frozen=True)
class JournalRead:
    records: tuple[dict, ...]
    torn_lines: tuple[int, ...]  # 1-based line numbers that were not valid JSON


class Journal:
    def __init__(self, state_dir: str, fs: FileSystem = LOCAL) -> None:
        self.fs = fs
        self.path = layout.journal_path(state_dir)

    def _read(self, offset: int = 0) -> bytes:
        try:
            return self.fs.read_bytes(self.path, offset)
        except FileNotFoundError:
            return b""

    def append(self, *records: dict) -> None:
        """Append whole lines and fsync (one-off actions: restore, trash empty)."""
        with self.writer() as w:
            w.append(*records)

    def writer(self, mine: set[bytes] | None = None, by_name: bool = True) -> JournalWriter:
        """An open journal for many records (an execution): each ``append`` is one ``write``,
        so a ``kill -9`` can tear at most the lines being written; fsync on ``sync``/close.
        ``mine`` collects the set-begin/set-end lines written (``set_records_since``);
        ``by_name``: on a disk with no room, set-begins may be kept as names (see above)."""
        return JournalWriter(self.fs, self.path, mine, by_name)

    def _begun(self) -> list[dict]:
        if self.fs.local_path(self.path) is None:
            return []
        return begun_records(self.fs, os.path.dirname(self.path))

    def read(self) -> JournalRead:
        records: list[dict] = self._begun()
        torn: list[int] = []
        text = self._read().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                torn.append(number)
        return JournalRead(tuple(records), tuple(torn))

    def set_records_since(
        self, offset: int, mine: set[bytes] | None = None
    ) -> tuple[list[dict], int, bool]:
        """set-begin/set-end records in whole lines appended after byte ``offset``; the new
        offset; and whether the file ends in a torn line (no newline, not JSON). A line still
        being written by another janitor is left for the next call. Lines in ``mine`` (this
        process wrote them, and already knows what they say: each set it began, it ended)
        are skipped unparsed, and dropped from ``mine``."""
        records: list[dict] = self._begun() if offset == 0 else []
        data = self._read(offset)
        if not data:
            return records, offset, False
        end = data.rfind(b"\n") + 1
        tail = data[end:]
        for line in data[:end].splitlines(keepends=True):
            if b'"set-' not in line:
                continue
            if mine and line in mine:
                mine.discard(line)
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") in SET_EVENTS:
                records.append(record)
        torn = False
        if tail.strip():
            try:
                json.loads(tail)
            except ValueError:
                torn = True
        return records, offset + end, torn

    def unfinished_sets(self, run_path: str, read: JournalRead | None = None) -> set[int]:
        """Numbers of this run's sets whose removal began and never ended."""
        return fold_unfinished((read or self.read()).records, {}).get(run_path, set())
