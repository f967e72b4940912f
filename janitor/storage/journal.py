"""The journal: one JSON line per action, appended to ``<logs root>/.janitor/journal.jsonl``.

Records: ``set-begin`` before a set's files are touched, one ``remove``/``trash`` line per
file (a ``trash`` line names its ``trash_path`` and the ``copy`` id, e.g. ``100#2``),
``set-end`` after; ``restore`` and ``trash-empty`` for the trash commands. A set with a
``set-begin`` and no ``set-end`` was interrupted (kill -9, power loss); the next prune
finishes it and says so. A torn last line (a write cut short) is tolerated and reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem

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


class JournalWriter:
    def __init__(self, fs: FileSystem, path: str, mine: set[bytes] | None = None) -> None:
        self.mine = mine  # receives the set-begin/set-end lines written (see set_records_since)
        # A torn line from an earlier crash must not swallow our first record.
        try:
            _, last, size = fs.read_ends(path, 0, 1)
        except FileNotFoundError:
            last, size = b"", 0
        self.needs_newline = bool(size) and last != b"\n"
        self.out = fs.appender(path)

    def append(self, *records: dict) -> None:
        lines = [_encode(r) + "\n" for r in records]
        if self.mine is not None:
            self.mine.update(
                line.encode("utf-8") for r, line in zip(records, lines, strict=True)
                if r.get("event") in SET_EVENTS
            )  # fmt: skip
        data = "".join(lines)
        if self.needs_newline:
            data, self.needs_newline = "\n" + data, False
        self.out.write(data.encode("utf-8"))

    def sync(self) -> None:
        self.out.sync()

    def close(self) -> None:
        self.out.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    def writer(self, mine: set[bytes] | None = None) -> JournalWriter:
        """An open journal for many records (an execution): each ``append`` is one ``write``,
        so a ``kill -9`` can tear at most the lines being written; fsync on ``sync``/close.
        ``mine`` collects the set-begin/set-end lines written (``set_records_since``)."""
        return JournalWriter(self.fs, self.path, mine)

    def read(self) -> JournalRead:
        records: list[dict] = []
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
        records: list[dict] = []
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
