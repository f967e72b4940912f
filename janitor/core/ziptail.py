"""Is a torch checkpoint structurally complete? Read its tail (and first header), never all of it.

A torch checkpoint is a zip archive written front to back; the central directory and the
end-of-central-directory (EOCD) record come last. A file still being written or cut short by a
crash or a full disk has no EOCD, or one whose central directory does not end where the EOCD
begins. We accept a file only if the EOCD is present, the (ZIP64) central directory it points to
lies inside the file and ends exactly where the trailing records begin, and the archive's first
entry is ``<archive>/data.pkl`` as torch writes it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_EOCD = b"PK\x05\x06"
_Z64_LOCATOR = b"PK\x06\x07"
_Z64_EOCD = b"PK\x06\x06"
_LOCAL = b"PK\x03\x04"
_EOCD_LEN = 22
_LOCATOR_LEN = 20
_Z64_EOCD_LEN = 56
FAST_TAIL = _EOCD_LEN + _LOCATOR_LEN + _Z64_EOCD_LEN
MAX_TAIL = FAST_TAIL + 0xFFFF  # the EOCD may be followed by a comment of up to 64 KiB
HEAD = 30 + 256
NO_EOCD = "truncated: no end-of-central-directory record"


@dataclass(frozen=True, slots=True)
class ZipCheck:
    complete: bool
    problem: str | None = None  # why not, in a few words


COMPLETE = ZipCheck(True)


def _find_eocd(tail: bytes) -> int:
    """Offset of the EOCD inside ``tail`` whose comment runs exactly to the end, or -1."""
    pos = len(tail) - _EOCD_LEN
    if tail[pos : pos + 4] == _EOCD and tail[-2:] == b"\0\0":
        return pos  # no comment: the usual case, and always torch's
    while pos >= 0:
        pos = tail.rfind(_EOCD, 0, pos + 4)
        if pos < 0:
            return -1
        (comment_len,) = struct.unpack_from("<H", tail, pos + 20)
        if pos + _EOCD_LEN + comment_len == len(tail):
            return pos
        pos -= 1
    return -1


def _end_records(tail: bytes, size: int) -> tuple[int, int, int] | ZipCheck:
    """(central directory offset, where it ends, entries) from the last bytes of a file of
    ``size`` bytes, or why the archive is not whole."""
    if size == 0:
        return ZipCheck(False, "empty file (0 bytes)")
    if size < _EOCD_LEN:
        return ZipCheck(False, f"too short to be a checkpoint ({size} bytes)")
    pos = _find_eocd(tail)
    if pos < 0:
        return ZipCheck(False, NO_EOCD)
    eocd_at = size - len(tail) + pos  # absolute offset of the EOCD
    _, _, _, entries, cd_size, cd_offset, _ = struct.unpack_from("<HHHHIIH", tail, pos + 4)
    cd_end = eocd_at
    if pos >= _LOCATOR_LEN and tail[pos - _LOCATOR_LEN : pos - _LOCATOR_LEN + 4] == _Z64_LOCATOR:
        (z64_at,) = struct.unpack_from("<Q", tail, pos - _LOCATOR_LEN + 8)
        rel = z64_at - (size - len(tail))
        if rel < 0 or rel + _Z64_EOCD_LEN > len(tail) or tail[rel : rel + 4] != _Z64_EOCD:
            return ZipCheck(False, "corrupt: ZIP64 end record is not where its locator says")
        entries, _, cd_size, cd_offset = struct.unpack_from("<QQQQ", tail, rel + 24)
        cd_end = z64_at
    if entries == 0:
        return ZipCheck(False, "not a checkpoint: empty zip archive")
    if cd_offset + cd_size != cd_end:
        return ZipCheck(False, "truncated: central directory does not fit the file size")
    return cd_offset, cd_end, entries


def check_tail(tail: bytes, size: int) -> ZipCheck:
    """Judge completeness from the last bytes of a file of ``size`` bytes."""
    found = _end_records(tail, size)
    return found if isinstance(found, ZipCheck) else COMPLETE


def directory_span(tail: bytes, size: int) -> tuple[int, int] | None:
    """(offset, end) of the central directory of a complete archive, from its last bytes;
    None when they do not hold the end records (an archive comment: read more)."""
    found = _end_records(tail, size)
    return None if isinstance(found, ZipCheck) else found[:2]


REPLACED_HEADER = ZipCheck(True, "zip header replaced by a version marker (GPT-SoVITS)")


def check_head(head: bytes, allow_replaced_header: bool = False) -> ZipCheck:
    """The first local header must be torch's ``<archive>/data.pkl``. GPT-SoVITS overwrites
    the first two bytes of its small weights with a version marker: accepted only when
    ``allow_replaced_header`` (such files cannot be read by torch.load)."""
    replaced = len(head) >= 30 and head[:4] != _LOCAL and head[2:4] == _LOCAL[2:]
    if replaced and allow_replaced_header:
        name_len = struct.unpack_from("<H", head, 26)[0]
        if head[30 : 30 + name_len].endswith(b"/data.pkl"):
            return REPLACED_HEADER
    if len(head) < 30 or head[:4] != _LOCAL:
        return ZipCheck(False, "not a zip archive")
    (name_len,) = struct.unpack_from("<H", head, 26)
    name = head[30 : 30 + name_len]
    if not name.endswith(b"/data.pkl") or b".." in name:
        shown = name[:60].decode("utf-8", "replace")
        return ZipCheck(False, f"a zip archive, but not a torch checkpoint (first entry {shown!r})")
    return COMPLETE


# ----------------------------------------------------------------- the records themselves
# What a reader needs to fetch parts of a torch archive from storage with ranged reads: the
# central directory (one 46-byte header per record, then its name and extra fields), and
# for each record its local header (30 bytes, then its name and extra fields, then the data).

_CENTRAL = b"PK\x01\x02"
_CENTRAL_LEN = 46
LOCAL_LEN = 30
_Z64_EXTRA = 0x0001


@dataclass(frozen=True, slots=True)
class ZipRecord:
    name: str
    offset: int  # of its local header
    size: int  # the data as stored (torch stores, never compresses)
    crc: int
    stored: bool  # not compressed: the data is the bytes themselves
    name_len: int  # of the name's bytes (the local header repeats the name)


def read_directory(data: bytes) -> list[ZipRecord]:
    """The records of a central directory (``data`` is exactly its bytes), in its order.
    ValueError if it does not parse."""
    out: list[ZipRecord] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != _CENTRAL or pos + _CENTRAL_LEN > len(data):
            raise ValueError(f"corrupt central directory at byte {pos}")
        (_, _, _, flags, method, _, _, crc, size, usize, n, m, k, _, _, _, offset
         ) = struct.unpack_from("<4sHHHHHHIIIHHHHHII", data, pos)  # fmt: skip
        name_at = pos + _CENTRAL_LEN
        if name_at + n + m + k > len(data):
            raise ValueError(f"corrupt central directory: entry at byte {pos} runs past its end")
        name = data[name_at : name_at + n].decode("utf-8" if flags & 0x800 else "cp437")
        extra = data[name_at + n : name_at + n + m]
        if 0xFFFFFFFF in (size, usize, offset):
            size, offset = _zip64(extra, usize, size, offset)
        out.append(ZipRecord(name, offset, size, crc, method == 0, n))
        pos = name_at + n + m + k
    return out


def _zip64(extra: bytes, usize: int, size: int, offset: int) -> tuple[int, int]:
    """(size, offset) from a ZIP64 extra field: the 8-byte values follow in the order
    uncompressed size, compressed size, offset, for each field that reads 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == _Z64_EXTRA:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            if usize == 0xFFFFFFFF and values:
                values.pop(0)
            if size == 0xFFFFFFFF:
                size = values.pop(0)
            if offset == 0xFFFFFFFF:
                offset = values.pop(0)
            return size, offset
        pos += 4 + length
    raise ValueError("corrupt central directory: ZIP64 sizes without their extra field")


def record_data(record: ZipRecord, blob: bytes) -> bytes:
    """The data of ``record`` from ``blob``, the bytes starting at its local header;
    ValueError if they are not that record's (another header, or not its CRC-32)."""
    if blob[:4] != _LOCAL or len(blob) < LOCAL_LEN:
        raise ValueError(f"{record.name}: no local header where the directory says")
    n, m = struct.unpack_from("<HH", blob, 26)
    data = blob[LOCAL_LEN + n + m : LOCAL_LEN + n + m + record.size]
    if len(data) != record.size or zlib.crc32(data) != record.crc:
        raise ValueError(f"{record.name}: its bytes do not match its CRC-32")
    return data


def record_ends(records: list[ZipRecord], directory_offset: int) -> dict[str, int]:
    """Where each record's bytes end: the next record's local header, or the directory."""
    starts = sorted({r.offset for r in records} | {directory_offset})
    following = {a: b for a, b in zip(starts, starts[1:], strict=False)}
    return {r.name: following.get(r.offset, directory_offset) for r in records}


def merge_ranges(ranges: list[tuple[int, int]], budget: int) -> list[tuple[int, int]]:
    """Sorted (start, end) ranges, overlapping and touching ones joined; then the smallest
    gaps between them joined too (one request instead of two) while the bytes read for
    nothing stay within ``budget``."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    gaps = sorted((b[0] - a[1], i) for i, (a, b) in enumerate(zip(out, out[1:], strict=False)))
    joined: set[int] = set()
    for gap, i in gaps:
        if gap > budget:
            break
        budget -= gap
        joined.add(i)
    merged: list[tuple[int, int]] = []
    for i, (start, end) in enumerate(out):
        if i - 1 in joined:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
