"""torch's checkpoint file as torch 2.13 writes it, without torch: the pickle (``data.pkl``,
protocol 2 as CPython's C pickler writes it) and the zip container around it. Pure bytes: the
caller hands the records' data in (chunk by chunk) and a ``write(bytes)`` to put them out.

Facts (measured on ``torch.save`` of torch 2.13, ``torch/serialization.py`` and
``caffe2/serialize/inline_container.cc``):
- records stored, in the order ``data.pkl``, ``.format_version`` (1), ``.storage_alignment``
  (64), ``byteorder`` (little), ``data/<key>`` (keys in the order the pickler first meets
  them), ``version`` (3), ``.data/serialization_id``, under a folder named after the file;
- each record's data starts on a 64-byte boundary (extra field ``FB`` + pad length + ``Z``s);
  local headers carry no CRC or sizes (flags 0x0808: a 16-byte data descriptor follows the
  data); central entries carry no extra field; a ZIP64 end record and its locator come before
  the ordinary end record;
- a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
  requires_grad, OrderedDict())``, a storage the persistent id
  ``('storage', torch.<Type>Storage, key, 'cpu', numel)``;
- a ``torch.nn.Parameter`` (without Python attributes) is ``torch._utils._rebuild_parameter(
  tensor, requires_grad, OrderedDict())``, its tensor (``.data``: a fresh object, memoized)
  written with ``requires_grad`` False; a Parameter met again is a memo get.

``.data/serialization_id`` is torch's hash over the C++ library's iteration order of the
record names; the loader ignores it. Ours has its length (40 digits) and depends on the
records only, so the layout of the file is torch's to the byte.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ALIGNMENT = 64
LIMIT = 1 << 32  # records or offsets this large change torch's layout (ZIP64 local extras)
STORAGE_TYPES = {"float16": "HalfStorage", "float32": "FloatStorage", "bfloat16": "BFloat16Storage"}
ITEMSIZE = {"float16": 2, "float32": 4, "bfloat16": 2}


class Unsupported(ValueError):
    """Something this writer has not been proven to write as torch does (the message says
    what)."""


# ----------------------------------------------------------------- what is pickled


@dataclass(eq=False)
class OutStorage:
    """One storage record: ``dtype`` (float16, ...), ``numel`` elements, its bytes from
    ``chunks()`` (called once, when the record is written)."""

    dtype: str
    numel: int
    chunks: Callable[[], Iterable[bytes]]
    key: str | None = field(default=None)  # given by the writer, in the order met


@dataclass(eq=False)
class OutTensor:
    """A tensor over ``storage``: what ``_rebuild_tensor_v2`` is given; a ``parameter`` is
    written as a ``torch.nn.Parameter`` around it (``_rebuild_parameter``)."""

    storage: OutStorage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool = False
    parameter: bool = False


@dataclass(frozen=True, eq=False)
class _Global:
    module: str
    name: str


_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_ORDERED_DICT = _Global("collections", "OrderedDict")
_STORAGE_CLASSES = {d: _Global("torch", t) for d, t in STORAGE_TYPES.items()}
_STORAGE_TAG = "storage"  # one object each, as in torch: met again, they are memo gets
_CPU = "cpu"

# ----------------------------------------------------------------- the pickle

_MARK, _STOP, _POP, _POP_MARK = b"(", b".", b"0", b"1"
_NONE, _NEWTRUE, _NEWFALSE = b"N", b"\x88", b"\x89"
_BININT, _BININT1, _BININT2, _LONG1, _LONG4 = b"J", b"K", b"M", b"\x8a", b"\x8b"
_BINFLOAT, _BINUNICODE = b"G", b"X"
_EMPTY_TUPLE, _TUPLE, _TUPLE1, _TUPLE2, _TUPLE3 = b")", b"t", b"\x85", b"\x86", b"\x87"
_EMPTY_LIST, _APPEND, _APPENDS = b"]", b"a", b"e"
_EMPTY_DICT, _SETITEM, _SETITEMS = b"}", b"s", b"u"
_GLOBAL, _REDUCE, _BINPERSID = b"c", b"R", b"Q"
_BINPUT, _LONG_BINPUT, _BINGET, _LONG_BINGET = b"q", b"r", b"h", b"j"
_BATCH = 1000


class _Pickler:
    """Protocol 2 as CPython's C pickler writes it (``_pickle.c``), for the objects a small
    model holds: None, bool, int, float, str, tuple, list, dict, OrderedDict and tensors. The
    memo is keyed by object identity, as the C pickler's is."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # objects memoized by id stay alive (their ids stay theirs)
        self.storages: list[OutStorage] = []

    def dumps(self, obj: Any) -> bytes:
        self.out += b"\x80\x02"
        self.save(obj)
        self.out += _STOP
        return bytes(self.out)

    def put(self, obj: Any) -> None:
        index = len(self.memo)
        self.memo[id(obj)] = index
        self.keep.append(obj)
        self.out += _BINPUT + bytes([index]) if index < 256 else (
            _LONG_BINPUT + struct.pack("<I", index))  # fmt: skip

    def get(self, index: int) -> None:
        self.out += _BINGET + bytes([index]) if index < 256 else (
            _LONG_BINGET + struct.pack("<I", index))  # fmt: skip

    def save(self, obj: Any) -> None:
        kind = type(obj)
        if obj is None:
            self.out += _NONE
        elif kind is bool:
            self.out += _NEWTRUE if obj else _NEWFALSE
        elif kind is int:
            self.save_int(obj)
        elif kind is float:
            self.out += _BINFLOAT + struct.pack(">d", obj)
        elif id(obj) in self.memo:
            self.get(self.memo[id(obj)])
        elif kind is str:
            data = obj.encode("utf-8", "surrogatepass")
            self.out += _BINUNICODE + struct.pack("<I", len(data)) + data
            self.put(obj)
        elif kind is tuple:
            self.save_tuple(obj)
        elif kind is list:
            self.out += _EMPTY_LIST
            self.put(obj)
            self.save_list_items(obj)
        elif kind is dict:
            self.out += _EMPTY_DICT
            self.put(obj)
            self.save_dict_items(obj)
        elif kind is OrderedDict:
            self.save_reduce(_ORDERED_DICT, (), obj)
            self.save_items_iter(list(obj.items()))
        elif kind is OutTensor:
            self.save_tensor(obj)
        elif kind is _Global:
            self.out += _GLOBAL + f"{obj.module}\n{obj.name}\n".encode()
            self.put(obj)
        else:
            raise Unsupported(f"cannot write a {kind.__name__} into a checkpoint")

    def save_int(self, value: int) -> None:
        if -(1 << 31) <= value < (1 << 31):
            if 0 <= value < 256:
                self.out += _BININT1 + bytes([value])
            elif 0 <= value < 65536:
                self.out += _BININT2 + struct.pack("<H", value)
            else:
                self.out += _BININT + struct.pack("<i", value)
            return
        data = _encode_long(value)
        self.out += (_LONG1 + bytes([len(data)]) if len(data) < 256 else
                     _LONG4 + struct.pack("<i", len(data))) + data  # fmt: skip

    def save_tuple(self, items: tuple) -> None:
        if not items:
            self.out += _EMPTY_TUPLE
            return
        small = len(items) <= 3
        if not small:
            self.out += _MARK
        for item in items:
            self.save(item)
        if id(items) in self.memo:  # met inside itself (never, for tuples of values)
            self.out += _POP * len(items) if small else _POP_MARK
            self.get(self.memo[id(items)])
            return
        self.out += (_TUPLE1, _TUPLE2, _TUPLE3)[len(items) - 1] if small else _TUPLE
        self.put(items)

    def save_list_items(self, items: list) -> None:
        if len(items) == 1:
            self.save(items[0])
            self.out += _APPEND
            return
        total = 0
        while total < len(items):
            self.out += _MARK
            for item in items[total : total + _BATCH]:
                self.save(item)
            total = min(total + _BATCH, len(items))
            self.out += _APPENDS

    def save_dict_items(self, mapping: dict) -> None:
        """An exact dict (``batch_dict_exact``): one item SETITEM; else batches of 1000, each
        MARK ... SETITEMS, and a size that is a multiple of 1000 ends with an empty batch."""
        self.save_items(list(mapping.items()), exact=True)

    def save_items_iter(self, items: list) -> None:
        """Items from a reduce's iterator (an OrderedDict's, ``batch_dict``): a batch of one
        is a SETITEM, no empty batch at the end."""
        self.save_items(items, exact=False)

    def save_items(self, items: list, exact: bool) -> None:
        if (exact and len(items) == 1) or (not exact and len(items) % _BATCH == 1):
            *items, last = items
        else:
            last = None
        for start in range(0, len(items) + (exact and len(items) > 0), _BATCH):
            batch = items[start : start + _BATCH]
            self.out += _MARK
            for key, value in batch:
                self.save(key)
                self.save(value)
            self.out += _SETITEMS
        if last is not None:
            self.save(last[0])
            self.save(last[1])
            self.out += _SETITEM

    def save_reduce(self, func: _Global, args: tuple, obj: Any) -> None:
        self.save(func)
        self.save(args)
        self.out += _REDUCE
        self.put(obj)

    def save_tensor(self, tensor: OutTensor) -> None:
        if tensor.parameter:  # Parameter.__reduce_ex__: (data, requires_grad, hooks)
            data = OutTensor(tensor.storage, tensor.offset, tensor.size, tensor.stride)
            self.save_reduce(_REBUILD_PARAMETER, (data, tensor.requires_grad, OrderedDict()),
                             tensor)  # fmt: skip
            return
        storage = tensor.storage
        if storage.key is None:
            storage.key = str(len(self.storages))
            self.storages.append(storage)
        if storage.dtype not in _STORAGE_CLASSES:
            raise Unsupported(f"cannot write a {storage.dtype} storage")
        self.save(_REBUILD)
        self.out += _MARK
        pid = (_STORAGE_TAG, _STORAGE_CLASSES[storage.dtype], storage.key, _CPU, storage.numel)
        self.save(pid)
        self.out += _BINPERSID
        args = (tensor.offset, tuple(tensor.size), tuple(tensor.stride), tensor.requires_grad)
        for arg in args:
            self.save(arg)
        self.save_reduce(_ORDERED_DICT, (), OrderedDict())  # backward hooks: a fresh one
        self.out += _TUPLE
        self.put(object())  # the 6-tuple of arguments: a fresh object, memoized
        self.out += _REDUCE
        self.put(tensor)


def _encode_long(value: int) -> bytes:
    """Two's complement, little-endian, as short as it goes (pickle's encode_long)."""
    n = (value.bit_length() >> 3) + 1
    data = value.to_bytes(n, "little", signed=True)
    if value < 0 and n > 1 and data[-1] == 0xFF and data[-2] & 0x80:
        data = data[:-1]
    return data


def pickle_checkpoint(obj: Any) -> tuple[bytes, list[OutStorage]]:
    """(data.pkl's bytes, the storages in the order their records follow)."""
    pickler = _Pickler()
    data = pickler.dumps(obj)
    return data, pickler.storages


# ----------------------------------------------------------------- the zip container

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_DESCRIPTOR = struct.Struct("<4sIII")
_Z64_END = struct.Struct("<4sQHHIIQQQQ")
_Z64_LOCATOR = struct.Struct("<4sIQI")
_END = struct.Struct("<4sHHHHIIH")


class ZipWriter:
    """Records written one after another through ``write``, as torch's stream writer does."""

    def __init__(self, write: Callable[[bytes], Any], archive: str) -> None:
        self.write, self.archive = write, archive
        self.pos = 0
        self.entries: list[tuple[bytes, int, int, int]] = []  # name, crc, size, offset

    def _put(self, data: bytes | memoryview) -> None:
        self.write(data)
        self.pos += len(data)

    def record(self, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        full = f"{self.archive}/{name}".encode()
        offset = self.pos
        pad = -(offset + _LOCAL.size + len(full) + 4) % ALIGNMENT
        header = _LOCAL.pack(b"PK\x03\x04", 0, 0x0808, 0, 0, 0, 0, 0, 0, len(full), 4 + pad)
        self._put(header + full + b"FB" + struct.pack("<H", pad) + b"Z" * pad)
        crc = size = 0
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            self._put(chunk)
        if size >= LIMIT or offset >= LIMIT:
            raise Unsupported(f"record {name} of {size} bytes at {offset}: over 4 GiB")
        self._put(_DESCRIPTOR.pack(b"PK\x07\x08", crc, size, size))
        self.entries.append((full, crc, size, offset))

    def finish(self) -> int:
        """The central directory and end records; returns the file's size."""
        start = self.pos
        for name, crc, size, offset in self.entries:
            self._put(_CENTRAL.pack(b"PK\x01\x02", 0, 0, 0x0808, 0, 0, 0, crc, size, size,
                                    len(name), 0, 0, 0, 0, 0, offset) + name)  # fmt: skip
        n, cd_size, z64_at = len(self.entries), self.pos - start, self.pos
        if z64_at >= LIMIT:
            raise Unsupported("a checkpoint over 4 GiB")
        self._put(_Z64_END.pack(b"PK\x06\x06", 44, 0x031E, 45, 0, 0, n, n, cd_size, start))
        self._put(_Z64_LOCATOR.pack(b"PK\x06\x07", 0, z64_at, 1))
        self._put(_END.pack(b"PK\x05\x06", 0, 0, n, n, cd_size, start, 0))
        return self.pos


def archive_name(path: str) -> str:
    """The folder torch names inside the zip it writes at ``path``: the file's name without
    its last extension; ``archive`` when the path is not ASCII (torch then writes through a
    Python stream, as it does to a buffer)."""
    if not path.isascii():
        return "archive"
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def write_checkpoint(obj: Any, write: Callable[[bytes], Any], archive: str) -> int:
    """``obj`` (tensors as :class:`OutTensor`) as torch 2.13's ``torch.save`` lays it out,
    through ``write``; returns the number of bytes written. Unsupported (before anything is
    written) for what this writer does not know."""
    data, storages = pickle_checkpoint(obj)
    zw = ZipWriter(write, archive)
    zw.record("data.pkl", [data])
    zw.record(".format_version", [b"1"])
    zw.record(".storage_alignment", [str(ALIGNMENT).encode()])
    zw.record("byteorder", [b"little"])
    for storage in storages:
        zw.record(f"data/{storage.key}", _checked(storage))
    zw.record("version", [b"3\n"])
    digest = hashlib.sha256(b"".join(n + struct.pack("<I", c) for n, c, _, _ in zw.entries))
    zw.record(".data/serialization_id", [b"%040d" % (int(digest.hexdigest(), 16) % 10**40)])
    return zw.finish()


def _checked(storage: OutStorage) -> Iterable[bytes | memoryview]:
    want = storage.numel * ITEMSIZE[storage.dtype]
    got = 0
    for chunk in storage.chunks():
        got += len(chunk)
        yield chunk
    if got != want:
        raise Unsupported(f"storage {storage.key}: {got} bytes, expected {want}")
