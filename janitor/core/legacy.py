"""torch's legacy (pre-1.6) checkpoint format, recognised from its first bytes and judged
complete from them, without running any pickle code. Pure: bytes in, verdict out.

``torch.save(obj, f, _use_new_zipfile_serialization=False)`` (torch 2.13's
``serialization._legacy_save``) writes no zip: five pickles back to back (protocol 2 unless
the caller asks for another), then the storages' bytes:

1. the magic number ``0x1950a86a20f9469cfc6c`` (``MAGIC``: its pickle, the first 15 bytes);
2. the protocol version ``1001``;
3. a ``sys_info`` dict (``protocol_version``, ``little_endian``, ``type_sizes``);
4. the object, each storage a persistent id ``('storage', torch.<Type>Storage, key, location,
   numel, None)``;
5. the sorted list of the storage keys;

then for each key in that order one record: an 8-byte little-endian element count, then the
storage's ``numel * itemsize`` bytes. A whole file therefore ends exactly where the last
record's data ends; a file cut short ends before. The pickles are walked by
``janitor.core.skeleton.Walker`` (every name an inert stand-in: nothing is run).
"""

from __future__ import annotations

from janitor.core.skeleton import Walker
from janitor.core.ziptail import ZipCheck

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# pickle.dumps(MAGIC_NUMBER, protocol=2): PROTO 2, LONG1 of 10 bytes, STOP
MAGIC = b"\x80\x02\x8a\x0a" + MAGIC_NUMBER.to_bytes(10, "little") + b"."
LEGACY_HEADER = MAGIC[:2]  # a file's first two bytes (a zip's are b"PK")
_LONG = MAGIC[2:-1]  # the number itself, whatever the protocol (3 and up add a frame first)
LEGACY = "torch's legacy (pre-1.6) checkpoint format"
FIRST_READ = 64 << 10  # bytes read for the pickles at first (4 times more while they go on)
COUNT_LEN = 8  # each storage record's element count

ITEMSIZE = {
    "HalfStorage": 2, "FloatStorage": 4, "BFloat16Storage": 2, "DoubleStorage": 8,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
    "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip


def is_legacy(head: bytes) -> bool:
    """The file starts with the pickled magic number of torch's legacy format."""
    return head.startswith(MAGIC) or (head[:1] == b"\x80" and _LONG in head[:32])


def _truncated_pickle(exc: Exception) -> bool:
    return isinstance(exc, EOFError) or "truncated" in str(exc)


def check_legacy(head: bytes, size: int) -> ZipCheck | None:
    """Completeness of a legacy-format file of ``size`` bytes from its first bytes ``head``;
    None when they end inside the pickles and the file goes on (read more of it)."""
    walker = Walker(head)
    try:
        magic, version, _ = walker.load(), walker.load(), walker.load()
        if magic != MAGIC_NUMBER or version != PROTOCOL_VERSION:
            return ZipCheck(False, f"corrupt: {LEGACY} with another magic number or version")
        walker.load()  # the object: its storages noted
        keys = walker.load()
    except Exception as exc:  # noqa: BLE001 - whatever a damaged pickle makes the unpickler say
        if _truncated_pickle(exc):
            return None if len(head) < size else ZipCheck(False, "truncated: inside its pickles")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ZipCheck(False, f"corrupt: {LEGACY} whose pickles do not parse ({first})")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return ZipCheck(False, f"corrupt: {LEGACY} without its list of storage keys")
    return _check_records(head, size, walker.tell(), keys, walker)


def _check_records(head: bytes, size: int, at: int, keys: list[str], walker: Walker) -> ZipCheck:
    """The records from byte ``at`` on: each key's count and data, the last ending the file."""
    for key in keys:
        storage = walker.storages.get(key)
        if storage is None:
            return ZipCheck(False, f"corrupt: storage {key} is not in the pickle")
        itemsize = ITEMSIZE.get(storage.kind.rsplit(".", 1)[-1])
        if itemsize is None or storage.numel < 0:
            return ZipCheck(False, f"{LEGACY} with a {storage.kind} storage: size not known")
        if at + COUNT_LEN <= len(head):  # a count already read: checked
            count = int.from_bytes(head[at : at + COUNT_LEN], "little")
            if count != storage.numel:
                return ZipCheck(
                    False, f"corrupt: storage {key} holds {count} elements, not {storage.numel}"
                )
        at += COUNT_LEN + storage.numel * itemsize
    if size < at:
        return ZipCheck(False, f"truncated: {size} bytes, its last storage ends at byte {at}")
    if size > at:
        return ZipCheck(False, f"corrupt: {size - at} bytes after its last storage")
    return ZipCheck(True)
