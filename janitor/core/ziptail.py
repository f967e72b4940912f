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


def check_tail(tail: bytes, size: int) -> ZipCheck:
    """Judge completeness from the last bytes of a file of ``size`` bytes."""
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
    return COMPLETE


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
