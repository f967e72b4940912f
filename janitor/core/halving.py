"""A G's state dict (read by ``janitor.core.skeleton``) made into a small model's weights as
the trainers' ``{k: v.half() for k, v in model.items() if "enc_q" not in k}`` makes it, and
a small model's weights checked against their G, both without torch.

``.half()`` facts (torch 2.13): a float16 tensor is returned as it is (same storage, offset,
strides; a storage met twice stays one); a float32 or bfloat16 tensor becomes a new float16
tensor with its own storage, offset 0 and, dense as it is, the same strides. What is not
proven (a non-contiguous float32/bfloat16 tensor, another dtype, ``_rebuild_tensor_v3``) is
refused with :class:`~janitor.core.torchzip.Unsupported`, naming the tensor.

A ``torch.nn.Parameter`` (a G saved from ``named_parameters()`` or ``state_dict(keep_vars=
True)``): ``.half()`` of a float16 one returns the Parameter itself, written as a Parameter;
of a float32 or bfloat16 one a plain tensor whose ``requires_grad`` is the Parameter's (as it
is for a plain tensor). A Parameter with Python attributes or hooks is refused.

Tensor bytes come through ``reader(key) -> read(start, length)`` (the storage record of
``key``): read, converted and written one tensor at a time, when the file is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import prod
from typing import Any

from janitor.core.fp16 import CONVERTIBLE, to_half
from janitor.core.skeleton import Tensor
from janitor.core.torchzip import ITEMSIZE, OutStorage, OutTensor, Unsupported

DTYPES = {"torch.HalfStorage": "float16", "torch.FloatStorage": "float32",
          "torch.BFloat16Storage": "bfloat16"}  # fmt: skip
Reader = Callable[[str], Callable[[int, int], bytes]]


def dtype_of(name: str, tensor: Any) -> str:
    """The dtype of a tensor this module can take (else Unsupported naming it)."""
    if not isinstance(tensor, Tensor):
        raise Unsupported(f"{name} is not a tensor ({type(tensor).__name__})")
    if tensor.state:
        raise Unsupported(f"tensor {name} carries Python state (a Parameter's attributes or "
                          "hooks, or a subclass)")  # fmt: skip
    if tensor.rebuild != "_rebuild_tensor_v2" or tensor.extra:
        raise Unsupported(f"tensor {name} is stored with {tensor.rebuild} (newer dtype or "
                          "metadata)")  # fmt: skip
    dtype = DTYPES.get(tensor.storage.kind)
    if dtype is None:
        raise Unsupported(f"tensor {name} has storage type {tensor.storage.kind or '?'}")
    return dtype


def contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """torch's ``is_contiguous``: row-major, dimensions of size 1 (any stride) aside."""
    if len(size) != len(stride):
        return False
    if prod(size) == 0:
        return True
    expected = 1
    for n, s in zip(reversed(size), reversed(stride), strict=True):
        if n != 1:
            if s != expected:
                return False
            expected *= n
    return True


def _extent(t: Tensor) -> int:
    """Elements from the storage's start through the tensor's last element."""
    if prod(t.size) == 0:
        return t.offset
    return t.offset + 1 + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))


def half_weights(model: Mapping[str, Any], reader: Reader, drop_enc_q: bool = True) -> dict:
    """The small model's ``weight`` dict: ``OutTensor`` per kept key, in the G's order."""
    out: dict[str, OutTensor] = {}
    same: dict[int, OutTensor] = {}  # a float16 tensor (or Parameter) met again: the same
    storages: dict[str, OutStorage] = {}  # a float16 storage met again: the same one
    for name, t in model.items():
        if drop_enc_q and "enc_q" in name:
            continue
        dtype = dtype_of(name, t)
        if t.storage.numel < 0 or _extent(t) > t.storage.numel or min(t.stride, default=0) < 0:
            raise Unsupported(f"tensor {name} does not fit its storage")
        if dtype == "float16":
            if id(t) not in same:
                key = t.storage.key
                if key not in storages:
                    nbytes = t.storage.numel * 2
                    storages[key] = OutStorage("float16", t.storage.numel,
                                               _whole(reader, key, nbytes))  # fmt: skip
                same[id(t)] = OutTensor(storages[key], t.offset, t.size, t.stride,
                                        t.requires_grad, t.parameter)  # fmt: skip
            out[name] = same[id(t)]
            continue
        if not contiguous(t.size, t.stride):
            raise Unsupported(f"tensor {name} is a non-contiguous {dtype} tensor")
        numel = prod(t.size)
        storage = OutStorage("float16", numel,
                             _converted(reader, t.storage.key, t.offset, numel, dtype))  # fmt: skip
        out[name] = OutTensor(storage, 0, t.size, t.stride, t.requires_grad)
    return out


def _whole(reader: Reader, key: str, nbytes: int) -> Callable[[], list[bytes]]:
    return lambda: [reader(key)(0, nbytes)]


def _converted(
    reader: Reader, key: str, offset: int, numel: int, dtype: str
) -> Callable[[], list[bytes]]:
    size = ITEMSIZE[dtype]
    return lambda: [to_half(reader(key)(offset * size, numel * size), dtype)]


def tensor_bytes(t: Tensor, reader: Reader) -> bytes:
    """The bytes of a tensor's elements, first to last, as stored (contiguous ones only)."""
    size = ITEMSIZE[DTYPES[t.storage.kind]]
    return reader(t.storage.key)(t.offset * size, prod(t.size) * size)


def compare(
    weight: Mapping[str, Any],
    small_reader: Reader,
    model: Mapping[str, Any],
    big_reader: Reader,
    *,
    half: bool = True,
    on_tensor: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Problems (at most 5) with ``weight`` (a small model's, read from its bytes) as the
    conversion of ``model`` (its G's): each tensor float16 (or the G's dtype when not
    ``half``), the same shape, and bytes equal to those of the conversion."""
    problems: list[str] = []
    how = "the fp16 conversion of" if half else "the tensor in"
    keys = list(weight)
    for i, key in enumerate(keys, 1):
        if on_tensor is not None:
            on_tensor(i, len(keys))
        mine, source = weight[key], model[key]
        want = "float16" if half else dtype_of(key, source)
        got = dtype_of(key, mine)
        src = dtype_of(key, source)
        same = got == want and mine.size == source.size
        if same and not (
            contiguous(mine.size, mine.stride) and contiguous(source.size, source.stride)
        ):
            raise Unsupported(f"tensor {key} is not contiguous")
        if same:
            expected = tensor_bytes(source, big_reader)
            if src != got:
                expected = to_half(expected, src)
            same = tensor_bytes(mine, small_reader) == expected
        if not same:
            problems.append(f"tensor {key} differs from {how} the big checkpoint")
            if len(problems) >= 5:
                break
    return problems


__all__ = ["CONVERTIBLE", "compare", "half_weights"]
