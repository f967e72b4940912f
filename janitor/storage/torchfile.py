"""A torch checkpoint on a local disk read without torch (positional reads through the
storage seam's portable ``read_at``, of the records a command needs, each checked against
its CRC-32), and one written without torch
(``janitor.core.torchzip``) through a buffer, in one pass.

Refuses (:class:`~janitor.core.torchzip.Unsupported`, one line saying what) what this reader
has not been proven to read as torch does: big-endian files, compressed records, records over
4 GiB, torch's legacy (pre-zip) format.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from janitor.core.legacy import LEGACY, is_legacy
from janitor.core.skeleton import read_skeleton
from janitor.core.torchzip import LIMIT, Unsupported, write_checkpoint
from janitor.core.ziptail import FAST_TAIL, LOCAL_LEN, MAX_TAIL, ZipRecord, directory_span
from janitor.core.ziptail import read_directory as parse_directory
from janitor.storage.fs import LOCAL, open_nofollow, read_at

CHUNK = 8 << 20  # bytes of a record read (and CRC-checked) at a time


class TorchFile:
    """The records of one local torch zip checkpoint, read at their offsets."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._readers: dict[str, Callable[[int, int], bytes]] = {}
        # the file the path names (a link the user typed is followed; then none is)
        self.fd = open_nofollow(LOCAL.realpath(path), os.O_RDONLY)
        try:
            self.size = os.fstat(self.fd).st_size
            if is_legacy(self._pread(min(self.size, 32), 0)):
                raise Unsupported(LEGACY)
            self.records = self._directory()
            pkl = next((r for r in self.records.values() if r.name.endswith("/data.pkl")), None)
            if pkl is None:
                raise Unsupported("a zip archive without data.pkl (not a torch checkpoint)")
            self.prefix = pkl.name[: -len("data.pkl")]
            self.pickle = self.read_record(pkl.name)
            order = self.records.get(self.prefix + "byteorder")
            if order is not None and self.read_record(order.name) != b"little":
                raise Unsupported("a big-endian checkpoint")
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> TorchFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _pread(self, length: int, offset: int) -> bytes:
        data = read_at(self.fd, length, offset)
        if len(data) != length:
            raise OSError(f"short read at byte {offset} (the file shrank?)")
        return data

    def _directory(self) -> dict[str, ZipRecord]:
        tail_len = min(self.size, FAST_TAIL)
        span = directory_span(self._pread(tail_len, self.size - tail_len), self.size)
        if span is None:
            tail_len = min(self.size, MAX_TAIL)
            span = directory_span(self._pread(tail_len, self.size - tail_len), self.size)
        if span is None:
            raise Unsupported("no zip end records (not a complete torch checkpoint)")
        start, end = span
        records = parse_directory(self._pread(end - start, start))
        for r in records:
            if not r.stored:
                raise Unsupported(f"record {r.name} is compressed")
            if r.size >= LIMIT or r.offset >= LIMIT:
                raise Unsupported(f"record {r.name} is over 4 GiB")
        return {r.name: r for r in records}

    def skeleton(self, extra: Iterable[str] = ()) -> Any:
        return read_skeleton(self.pickle, extra)

    def storage(self, key: str) -> ZipRecord:
        record = self.records.get(f"{self.prefix}data/{key}")
        if record is None:
            raise Unsupported(f"no record data/{key} for a tensor's storage")
        return record

    def data_offset(self, record: ZipRecord) -> int:
        header = self._pread(LOCAL_LEN, record.offset)
        # (GPT-SoVITS replaces the first two bytes of its files with a version tag)
        if header[2:4] != b"\x03\x04" or (record.offset and header[:2] != b"PK"):
            raise Unsupported(f"{record.name}: no local header where the directory says")
        n = int.from_bytes(header[26:28], "little")
        m = int.from_bytes(header[28:30], "little")
        return record.offset + LOCAL_LEN + n + m

    def read_record(self, name: str) -> bytes:
        """A whole record, checked against its CRC-32."""
        record = self.records[name]
        data = self._pread(record.size, self.data_offset(record))
        if zlib.crc32(data) != record.crc:
            raise OSError(f"{name}: its bytes do not match its CRC-32 (changed while read?)")
        return data

    def reader(self, key: str) -> Callable[[int, int], bytes]:
        """``read(start, length)`` within storage ``key``'s record; the first call checks the
        whole record's CRC-32 (read once, in chunks), then hands out the part asked for."""
        if key not in self._readers:
            self._readers[key] = self._reader(key)
        return self._readers[key]

    def _reader(self, key: str) -> Callable[[int, int], bytes]:
        record = self.storage(key)
        at = self.data_offset(record)
        checked = False

        def read(start: int, length: int) -> bytes:
            nonlocal checked
            if start < 0 or start + length > record.size:
                raise Unsupported(f"a tensor reaches past its storage data/{key}")
            if not checked and (start, length) == (0, record.size):
                data = self._pread(length, at)
                if zlib.crc32(data) != record.crc:
                    raise OSError(f"{record.name}: its bytes do not match its CRC-32")
                checked = True
                return data
            if not checked:
                crc = 0
                for pos in range(0, record.size, CHUNK):
                    crc = zlib.crc32(self._pread(min(CHUNK, record.size - pos), at + pos), crc)
                if crc != record.crc:
                    raise OSError(f"{record.name}: its bytes do not match its CRC-32")
                checked = True
            return self._pread(length, at + start)

        return read


class _Buffered:
    """Small writes (headers, small tensors) gathered; tensors of ``direct`` bytes or more
    passed straight through."""

    def __init__(self, write: Callable[[Any], Any], size: int = 1 << 20) -> None:
        self.write_out, self.size, self.buf = write, size, bytearray()
        self.direct = 1 << 16

    def write(self, data: Any) -> None:
        if len(data) >= self.direct:
            self.flush()
            self.write_out(data)
            return
        self.buf += data
        if len(self.buf) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.write_out(self.buf)
            self.buf = bytearray()


def save(obj: Any, out: Any, archive: str) -> None:
    """``obj`` (tensors as ``torchzip.OutTensor``) written through ``out`` (an appender:
    ``write``), torch 2.13's layout, inner folder ``archive``."""
    buffered = _Buffered(out.write)
    write_checkpoint(obj, buffered.write, archive)
    buffered.flush()
