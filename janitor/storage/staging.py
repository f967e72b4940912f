"""A checkpoint on object storage, read as little as possible: a local stand-in for torch.

torch reads a checkpoint from a local file (``torch.load(mmap=True)`` maps it and touches
only the tensors it is asked for). For a file with no local path (``local_path`` is None) we
``stage`` it: a sparse local file of the object's size holding, at their true offsets, only
the zip's central directory and end records, every record's local header (torch reads each
one to find where its data begins, the optimizer's too), the whole records of the pickle and
torch's small marker files, and the whole records of the tensors the caller will read. The
rest (the optimizer state, two thirds of a G) stays a hole: never downloaded, never read.

Which tensors are needed comes from the pickle read torch-free by ``janitor.core.skeleton``,
whose allow-list refuses a pickle that would run code before anything else is fetched.
Every fetched record is checked against its CRC-32 in the directory (an object replaced
while we read is caught), and the same completeness check as on disk comes first.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from janitor.core.legacy import is_legacy
from janitor.core.skeleton import Refused, needed_keys, read_skeleton
from janitor.core.ziptail import (
    FAST_TAIL,
    HEAD,
    LOCAL_LEN,
    MAX_TAIL,
    REPLACED_HEADER,
    ZipRecord,
    directory_span,
    merge_ranges,
    read_directory,
    record_data,
    record_ends,
)
from janitor.storage.completeness import check_ends
from janitor.storage.fs import LOCAL, FileSystem

# Ranges close together are fetched as one request, the smallest gaps first, as long as
# the bytes read for nothing stay under this share of the object: a request costs tens of
# milliseconds, and the optimizer's small tensors (biases, Adam's step counters) between two
# headers are cheaper read than skipped.
WASTE = 0.01
BATCH = 64 << 20  # at most this many bytes asked for in one read_ranges call (held in memory)

Range = tuple[int, int]


class NotWhole(Exception):
    """Not a complete torch checkpoint (``problem``: why, as the completeness check says)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class Changed(Exception):
    """What was read does not fit together: the object was replaced (or damaged) meanwhile."""


@dataclass(frozen=True)
class Staged:
    path: str  # the local sparse stand-in
    size: int  # of the object (and of the stand-in)
    fetched: int  # bytes read from storage
    requests: int  # ranges asked for, after merging
    whole: bool  # every byte was fetched (a file this reader cannot take apart)


def stage(
    fs: FileSystem,
    path: str,
    folder: str,
    *,
    unread: Iterable[str] = (),
    extra: Iterable[str] = (),
    allow_replaced_header: bool = False,
    everything: bool = False,
) -> Staged:
    """Stage ``path`` of ``fs`` into ``folder`` (local, janitor's own) with the tensor data
    under the pickle's top-level entries ``unread`` left out. ``extra``: class names the
    caller allow-lists for torch's weights-only loader. NotWhole for an incomplete file,
    ``skeleton.Refused`` for a pickle naming anything else, Changed when the parts read do not
    match, OSError from storage. ``everything``: fetch all of it (a pickle this reader cannot
    take apart, left to torch's own loader to judge)."""
    head, tail, size = fs.read_ends(path, HEAD, FAST_TAIL)
    check = check_ends(fs, path, head, tail, size, allow_replaced_header)
    if not check.complete:
        raise NotWhole(check.problem or "incomplete")
    local = os.path.join(folder, os.path.basename(path) or "checkpoint.pth")
    if is_legacy(head):  # torch's legacy format has no records to pick from: all of it
        reader = _Reader(fs, path, size)
        ranges = [(at, min(at + BATCH, size)) for at in range(0, size, BATCH)]
        LOCAL.write_pieces(local, size, reader.pieces(ranges, [], {}))
        return Staged(local, size, reader.fetched, reader.requests, True)
    span = directory_span(tail, size)
    if span is None:  # an archive comment: the end records are further back
        _, tail, size = fs.read_ends(path, 0, MAX_TAIL)
        span = directory_span(tail, size)
        if span is None:
            raise Changed("its end records moved while reading")
    reader = _Reader(fs, path, size)
    cd_offset, cd_end = span
    [end] = reader.fetch([(cd_offset, size)])
    try:
        records = read_directory(end[: cd_end - cd_offset])
    except ValueError as exc:
        raise Changed(str(exc)) from None
    whole = everything or check is REPLACED_HEADER or not all(r.stored for r in records)
    if whole:  # read as a whole by torch (GPT-SoVITS's header) or compressed: all of it
        parts: Iterable[tuple[int, bytes]] = reader.pieces([(0, cd_offset)], [], {})
    else:
        parts = _needed_parts(reader, records, cd_offset, unread, extra)
    LOCAL.write_pieces(local, size, itertools.chain([(cd_offset, end)], parts))
    return Staged(local, size, reader.fetched, reader.requests, whole)


def _needed_parts(
    reader: _Reader,
    records: list[ZipRecord],
    cd_offset: int,
    unread: Iterable[str],
    extra: Iterable[str],
) -> Iterator[tuple[int, bytes]]:
    ends = record_ends(records, cd_offset)
    pkl = next((r for r in records if r.name.endswith("/data.pkl")), None)
    if pkl is None:
        raise NotWhole("a zip archive, but not a torch checkpoint (no data.pkl)")
    prefix = pkl.name[: -len("data.pkl")] + "data/"
    storages = {r.name[len(prefix) :]: r for r in records if r.name.startswith(prefix)}
    others = [r for r in records if not r.name.startswith(prefix)]
    # 1. the pickle and torch's small records (version, byteorder, ...), whole
    budget = int(WASTE * reader.size)
    others_at = merge_ranges([(r.offset, ends[r.name]) for r in others], budget // 4)
    got = list(reader.pieces(others_at, others, ends))
    yield from got
    pickle_bytes = _record(pkl, got, ends)
    try:
        needed = needed_keys(read_skeleton(pickle_bytes, extra), unread)
    except Refused:  # a name outside the allow-list: nothing more is fetched
        raise
    except Exception:  # noqa: BLE001 - a pickle this reader cannot take apart: all of it,
        needed = None  # and torch's own weights-only loader judges it

    # 2. the needed tensors whole; of the others only the local header; none twice
    wanted = [r for key, r in storages.items() if needed is None or key in needed]
    ranges = [(r.offset, ends[r.name]) for r in wanted]
    ranges += [(r.offset, r.offset + LOCAL_LEN + r.name_len)
               for key, r in storages.items() if not (needed is None or key in needed)]  # fmt: skip
    had = [(start, start + len(blob)) for start, blob in got]

    def fetched(start: int, end: int) -> bool:
        return any(a <= start and end <= b for a, b in had)

    for r in wanted:
        if fetched(r.offset, ends[r.name]):
            _record(r, got, ends)  # came with the pickle: checked now
    todo = [r for r in wanted if not fetched(r.offset, ends[r.name])]
    ranges = [r for r in ranges if not fetched(*r)]
    yield from reader.pieces(merge_ranges(ranges, budget), todo, ends)


def _record(record: ZipRecord, got: list[tuple[int, bytes]], ends: dict[str, int]) -> bytes:
    """The verified data of ``record`` from fetched (offset, bytes) pieces."""
    for start, blob in got:
        if start <= record.offset and ends[record.name] <= start + len(blob):
            try:
                return record_data(record, blob[record.offset - start : ends[record.name] - start])
            except ValueError as exc:
                raise Changed(str(exc)) from None
    raise Changed(f"{record.name}: not where the directory says")


class _Reader:
    """Ranged reads of one object, counted; each batch checked before it is written."""

    def __init__(self, fs: FileSystem, path: str, size: int) -> None:
        self.fs, self.path, self.size = fs, path, size
        self.fetched = self.requests = 0

    def fetch(self, ranges: list[Range]) -> list[bytes]:
        blobs = self.fs.read_ranges(self.path, ranges)
        self.requests += len(ranges)
        self.fetched += sum(len(b) for b in blobs)
        for (start, end), blob in zip(ranges, blobs, strict=True):
            if len(blob) != end - start:
                raise NotWhole(f"truncated: {len(blob)} bytes at {start}, expected {end - start}")
        return blobs

    def pieces(
        self, ranges: list[Range], verify: list[ZipRecord], ends: dict[str, int]
    ) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of each sorted range, fetched ``BATCH`` bytes at a time; the
        records in ``verify`` (each inside one range, ``ends``: where each ends) are checked
        against their CRC-32 before their batch is handed on."""
        todo = sorted(verify, key=lambda r: r.offset)
        batch: list[Range] = []
        total = 0
        for i, (start, end) in enumerate(ranges):
            batch.append((start, end))
            total += end - start
            if total < BATCH and i + 1 < len(ranges):
                continue
            got = list(zip((s for s, _ in batch), self.fetch(batch), strict=True))
            while todo and todo[0].offset < end:
                _record(todo.pop(0), got, ends)
            yield from got
            batch, total = [], 0


def upload(fs: FileSystem, local: str, final: str, *, replace: bool) -> bool:
    """Put the finished local file ``local`` at ``final`` on ``fs`` (a store without local
    paths), as ``FileSystem.publish`` does on disk: False, and nothing written, when something
    is there already and not ``replace``. The store's own atomic put: a reader sees the old
    object or the new one, never a part."""
    return fs.publish(local, final, replace=replace)  # a store: a conditional put
