"""The journal: one JSON line per action, appended to ``<logs root>/.janitor/journal.jsonl``.

Records: ``set-begin`` before a set's files are touched, one ``remove``/``trash`` line per
file (a ``trash`` line names its ``trash_path`` and the ``copy`` id, e.g. ``100#2``),
``set-end`` after; ``restore`` and ``trash-empty`` for the trash commands. A set with a
``set-begin`` and no ``set-end`` was interrupted (kill -9, power loss); the next prune
finishes it and says so. A torn last line (a write cut short) is tolerated and reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem


def now_iso(ts: float | None = None) -> str:
    moment = datetime.now(timezone.utc) if ts is None else datetime.fromtimestamp(ts, timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def fold_unfinished(records: Iterable[dict], into: dict[str, set[int]]) -> dict[str, set[int]]:
    """Apply set-begin/set-end records to ``into`` (run path -> sets begun, not ended)."""
    for r in records:
        if r.get("event") == "set-begin":
            into.setdefault(r.get("run"), set()).add(r.get("number"))
        elif r.get("event") == "set-end":
            into.get(r.get("run"), set()).discard(r.get("number"))
    return into


class JournalWriter:
    def __init__(self, fs: FileSystem, path: str) -> None:
        # A torn line from an earlier crash must not swallow our first record.
        try:
            _, last, size = fs.read_ends(path, 0, 1)
        except FileNotFoundError:
            last, size = b"", 0
        self.needs_newline = bool(size) and last != b"\n"
        self.out = fs.appender(path)

    def append(self, *records: dict) -> None:
        data = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)
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

    def writer(self) -> JournalWriter:
        """An open journal for many records (an execution): each record is one ``write``, so
        a ``kill -9`` can tear at most the line being written; fsync on ``sync``/close."""
        return JournalWriter(self.fs, self.path)

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

    def set_records_since(self, offset: int) -> tuple[list[dict], int, bool]:
        """set-begin/set-end records in whole lines appended after byte ``offset``; the new
        offset; and whether the file ends in a torn line (no newline, not JSON). A line still
        being written by another janitor is left for the next call."""
        records: list[dict] = []
        data = self._read(offset)
        if not data:
            return records, offset, False
        end = data.rfind(b"\n") + 1
        tail = data[end:]
        for line in data[:end].splitlines():
            if b'"set-' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") in ("set-begin", "set-end"):
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
