"""What a torch checkpoint's pickle (``<archive>/data.pkl``) holds, read without torch and
without running anything: the structure of dicts, lists and numbers, with each tensor as the
key of the storage record it lives in. Used to fetch from object storage only the records a
command reads (the model's weights, never the optimizer state).

The unpickler resolves a short allow-list of names to inert stand-ins (torch's tensor
rebuild functions, storage types, dtypes, ``torch.Size``, ``collections.OrderedDict`` and the
few containers torch's weights-only loader allows) and refuses every other name with
:class:`Refused` before anything is built: a pickle that would run code stops here.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


class Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (``name``: module.qualname)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class Storage:
    key: str  # the record <archive>/data/<key>
    kind: str = ""  # torch's storage class as the pickle names it ("torch.FloatStorage")
    numel: int = -1  # elements in the storage, as the persistent id says
    location: str = "cpu"


@dataclass(frozen=True, slots=True, eq=False)
class Tensor:
    storage: Storage
    offset: int = 0
    size: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    requires_grad: bool = False  # a Parameter's own (the tensor inside it says False)
    rebuild: str = "_rebuild_tensor_v2"  # the function the pickle names
    extra: tuple[Any, ...] = ()  # arguments this reader does not use (a v3 dtype, metadata)
    parameter: bool = False  # a torch.nn.Parameter (``_rebuild_parameter``) around it
    state: bool = False  # Python attributes or hooks on the Parameter, or another type

    @property
    def shape(self) -> tuple[int, ...]:
        return self.size

    @property
    def dtype(self) -> str:
        """As torch names it (``torch.float16``), from the storage type; ``?`` if unknown."""
        kind = self.storage.kind.rsplit(".", 1)[-1]
        return f"torch.{STORAGE_DTYPES.get(kind, '?')}"

    def numel(self) -> int:
        n = 1
        for d in self.size:
            n *= d
        return n


STORAGE_DTYPES = {
    "HalfStorage": "float16", "FloatStorage": "float32", "BFloat16Storage": "bfloat16",
    "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}  # fmt: skip


class Inert:
    """An allowed class (``torch.device``, ``pathlib.PosixPath``, GPT-SoVITS's
    ``utils.HParams``, ...): holds what it was given, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = kwargs or None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Name(str):
    """A value that is a name in torch (``torch.float16``, ``torch.FloatStorage``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        return Inert(*args, **kwargs)


def _rebuilder(name: str) -> Any:
    """torch's ``_rebuild_tensor*(storage, offset, size, stride, [requires_grad, hooks, ...])``
    as a :class:`Tensor` holding what it was given (values, never run)."""

    def rebuild(storage: Any, *args: Any) -> Any:
        if not isinstance(storage, Storage) or len(args) < 3:
            return Inert(storage, *args)
        offset, size, stride, *rest = args
        grad = bool(rest[0]) if rest and isinstance(rest[0], bool) else False
        return Tensor(storage, offset, tuple(size), tuple(stride), grad, name, tuple(rest[2:]))

    return rebuild


def _parameter(data: Any = None, requires_grad: Any = True, hooks: Any = None, *state: Any) -> Any:
    """torch's ``_rebuild_parameter(data, requires_grad, backward_hooks)`` (or
    ``Parameter(data, requires_grad)``) as ``data`` marked a Parameter with its
    ``requires_grad``; hooks, a non-bool ``requires_grad`` or the Python state of
    ``_rebuild_parameter_with_state`` (one more argument) mark it ``state``."""
    if not isinstance(data, Tensor):
        return Inert(data, requires_grad, hooks, *state)
    plain = type(requires_grad) is bool and not hooks and not state
    return replace(data, requires_grad=requires_grad is True, parameter=True,
                   state=data.state or not plain)  # fmt: skip


def _from_type(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    """torch's ``_rebuild_from_type_v2``: a tensor of a subclass (``torch.Tensor`` itself is
    refused), or with Python state; marked ``state``."""
    built = func(*args)  # func is one of the allowed rebuild functions
    return replace(built, state=True) if isinstance(built, Tensor) else built


def _encode(text: str, encoding: str = "utf-8") -> bytes:  # protocol 2's bytes
    return text.encode(encoding)


_UTILS = "torch._utils"
_ALLOWED: dict[tuple[str, str], Any] = {
    (_UTILS, "_rebuild_tensor"): _rebuilder("_rebuild_tensor"),
    (_UTILS, "_rebuild_tensor_v2"): _rebuilder("_rebuild_tensor_v2"),
    (_UTILS, "_rebuild_tensor_v3"): _rebuilder("_rebuild_tensor_v3"),
    (_UTILS, "_rebuild_parameter"): _parameter,
    (_UTILS, "_rebuild_parameter_with_state"): _parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("torch.nn.parameter", "Parameter"): _parameter,
    ("torch", "Size"): tuple,
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "Counter"): Counter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _encode,
}
_DTYPES = frozenset((
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "int8", "int16",
    "int32", "int64", "uint8", "bool", "complex64", "complex128", "long", "int", "short",
))  # fmt: skip


def _torch_name(module: str, name: str) -> bool:
    """Names torch writes for storages, dtypes and devices: values, never called as code."""
    if module in ("torch", "torch.cuda") and (name.endswith("Storage") or name in _DTYPES):
        return True
    return (module, name) in (("torch", "device"), ("torch.storage", "UntypedStorage"),
                              ("torch.storage", "TypedStorage"))  # fmt: skip


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, extra: frozenset[str]) -> None:
        super().__init__(io.BytesIO(data))
        self.extra = extra

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if _torch_name(module, name):
            return _Name(f"{module}.{name}")
        if f"{module}.{name}" in self.extra:
            return Inert
        raise Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Storage:
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
            numel = pid[4] if len(pid) >= 5 and type(pid[4]) is int else -1
            location = pid[3] if len(pid) >= 4 and isinstance(pid[3], str) else "?"
            return Storage(str(pid[2]), str(pid[1]), numel, location)
        raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


class Walker(_Unpickler):
    """Walks consecutive pickles of one buffer (``load()`` each; ``tell()``: where the last
    one ended), noting every storage's persistent id (``storages``, by key, the first met).
    Every name outside the allow-list is :class:`Inert`, a ``module`` persistent id (a whole
    ``nn.Module`` saved in torch's legacy format) too: the values are never used, only the
    structure is walked, and nothing is run."""

    def __init__(self, data: bytes) -> None:
        self.file = io.BytesIO(data)
        pickle.Unpickler.__init__(self, self.file)
        self.extra = frozenset()
        self.storages: dict[str, Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except Refused:
            return Inert

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            return Inert
        storage = super().persistent_load(pid)
        return self.storages.setdefault(storage.key, storage)

    def tell(self) -> int:
        return self.file.tell()


def read_skeleton(data: bytes, extra: Iterable[str] = ()) -> Any:
    """The object a torch pickle describes, tensors as :class:`Tensor` (their storage key).
    ``extra``: further class names to accept as :class:`Inert` (what janitor allow-lists for
    torch's weights-only loader). Refused for any other name; UnpicklingError (or the error
    pickle raised) when the bytes are not a pickle."""
    return _Unpickler(data, frozenset(extra)).load()


def storage_keys(obj: Any) -> set[str]:
    """The storage keys of every tensor reachable from ``obj``."""
    keys: set[str] = set()
    seen: set[int] = set()
    todo = [obj]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Tensor):
            keys.add(item.storage.key)
        elif isinstance(item, Storage):
            keys.add(item.key)
        elif isinstance(item, Mapping):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            todo.extend(item)
        elif isinstance(item, Inert):
            todo.extend((item.args, item.state, getattr(item, "__dict__", None)))
    return keys


def needed_keys(root: Any, unread: Iterable[str]) -> set[str] | None:
    """The storages a reader needs when it never reads the tensor data under the top-level
    entries ``unread`` (an optimizer state; a model whose shapes alone are read): those
    reachable from the other entries. None when the top level is not a dict (all of them)."""
    if not isinstance(root, Mapping):
        return None
    skip = set(unread)
    return set().union(*(storage_keys(v) for k, v in root.items() if k not in skip))
