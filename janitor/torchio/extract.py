"""Big G checkpoint -> small inference model, exactly as the trainer writes it; and `info`.

Imports torch only inside functions, as do the other torch users (``exports``, ``frameworks``
in this package): ``import janitor`` never loads it. Checkpoints are read through torch's
weights-only unpickler with ``mmap=True``: the optimizer state (two thirds of a G file) is
never read, and model tensors are converted to fp16 one at a time. Output goes to a temp
folder beside the destination (a local one for object storage), is fsynced and then
published through the storage seam (``FileSystem.publish``: on a disk a hard link, on object
storage a conditional put), which never replaces a file already there (the trainer's own
small model, written meanwhile); only ``--force`` replaces.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from janitor.core import halving
from janitor.core.legacy import LEGACY_HEADER, is_legacy
from janitor.core.profiles import APPLIO, BIG_RE, LIGHTNING_RE, PROFILES, RELEASE_SMALL, small_match
from janitor.core.profiles import detect as detect_trainer
from janitor.core.skeleton import Refused
from janitor.core.smallmodel import (
    HEADER_VERSION,
    check_overrides,
    detect,
    is_generator,
    is_sovits_generator,
    is_vits_generator,
    rate_key,
)
from janitor.core.torchzip import ITEMSIZE, OutTensor, Unsupported, archive_name
from janitor.domain.errors import JanitorError, NoRoom, UsageError
from janitor.domain.extract import Options, SmallModelCheck
from janitor.domain.rules import MAX_STEP  # --step: the one limit of every step number
from janitor.storage import layout, locate, platform, staging, torchfile
from janitor.storage.completeness import check_file
from janitor.storage.fs import LOCAL, FileSystem, disk_text
from janitor.torchio import exports
from janitor.torchio.exports import FORMATS, LIKES, PREPARERS, Context, Expect
from janitor.torchio.pickling import GPT_SOVITS_GLOBALS, LIGHTNING_GLOBALS

LIGHTNING_FORMATS = ("ckpt", "safetensors")  # janitor.torchio.frameworks (Lightning files)
TORCH_FREE = ("applio", "rvc")  # formats written without torch (janitor.core.torchzip)
FORCE_TORCH = "JANITOR_CONVERT"  # =torch: write those with torch too (benchmarks, references)
INSTALL_TORCH = "pip install 'vits-janitor[torch]'"
NEEDS_TORCH = {"release": "the so-vits-svc/Bert-VITS2 release file",
               "gpt-sovits": "the GPT-SoVITS export"}  # fmt: skip


class UnsafeCheckpoint(JanitorError):
    """The pickle asks for something outside torch's weights-only allow-list."""


@dataclass(frozen=True)
class Extracted:
    source: str
    output: str
    format: str
    name: str
    epoch: int
    step: int
    step_from: str
    detected: Any  # .as_dict(): what was decided, and from where
    size: int
    notes: tuple[str, ...] = field(default=())
    skipped: bool = False  # the output existed (before or while extracting): left alone
    planned: bool = False  # dry run: would be written
    expect: Expect = field(default=Expect(), compare=False)  # what verification checks

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "output": self.output,
            "format": self.format,
            "name": self.name,
            "epoch": self.epoch,
            "step": self.step,
            "step_from": self.step_from,
            "size": self.size,
            "detected": self.detected.as_dict(),
            "notes": list(self.notes),
            "skipped": self.skipped,
            "planned": self.planned,
        }


# ----------------------------------------------------------------- Ctrl-C


class DeferredInterrupt:
    """Hold Ctrl-C while torch's C++ code runs and raise it at the next safe point.

    A KeyboardInterrupt raised inside a pybind11 callback (during ``import torch``, a load
    or a save) ends in ``std::terminate``: a core dump instead of a clean exit. While this is
    active, SIGINT only sets a flag; ``check()`` raises it between stages, where every
    ``finally`` (temp-file clean-up) still runs. Main thread only; elsewhere it does nothing.
    """

    def __init__(self) -> None:
        self.hit = False
        self.previous: Any = None

    def __enter__(self) -> DeferredInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.hit = True

    def check(self) -> None:
        if self.hit:
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if exc[0] is None:
            self.check()


_NO_INTERRUPTS = DeferredInterrupt()  # check() on this never raises


# ----------------------------------------------------------------- without torch


def torch_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def needs_torch(what: str) -> UsageError:
    """One line for a file or an export that only torch can handle, torch being absent."""
    return UsageError(f"{what}: needs torch, which is not installed ({INSTALL_TORCH})")


def torch_forced() -> bool:
    """``JANITOR_CONVERT=torch``: Applio/RVC files are written and verified with torch too."""
    return os.environ.get(FORCE_TORCH, "") == "torch"


def torch_free(fmt: str) -> bool:
    """Whether ``fmt`` is written without torch in this process."""
    return fmt in TORCH_FREE and not torch_forced()


def read_torch_free(path: str, local: str, stack: contextlib.ExitStack, extra=()) -> Any:
    """(the torch-free reader of ``local``, the checkpoint's skeleton) or, for what it does not
    take apart, Unsupported; a pickle naming code is refused as torch's loader refuses it."""
    try:
        with _reading(path):
            tf = stack.enter_context(torchfile.TorchFile(local))
        return tf, tf.skeleton(extra)
    except Refused as exc:
        if exc.name.startswith("torch."):
            raise Unsupported(f"the pickle names {exc.name}") from None
        raise _refusal(path, f"GLOBAL {exc.name}") from None
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged pickle: whatever the unpickler met
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JanitorError(f"{path}: cannot read checkpoint ({first})") from None


def unsupported(path: str, exc: Unsupported) -> JanitorError:
    return JanitorError(f"{path}: not converted without torch ({exc}); install torch to "
                        f"convert it ({INSTALL_TORCH})")  # fmt: skip


# ----------------------------------------------------------------- reading


def check_readable(path: str, allow_replaced_header: bool = False) -> None:
    """Torch-free gate: an existing, complete torch checkpoint, a zip or in torch's legacy
    format (never read one still being written), on a disk or on object storage (one ranged
    read of its ends either way; of a legacy file, its pickles)."""
    fs, where = locate.resolve(path)
    with _reading(path):
        check = check_file(fs, where, allow_replaced_header)
    if not check.complete:
        raise _incomplete(path, check.problem)


def _incomplete(path: str, problem: str | None) -> JanitorError:
    return JanitorError(f"{path}: not a complete torch checkpoint ({problem})")


@contextlib.contextmanager
def _reading(path: str):
    """Storage errors while reading ``path``, as one line naming it."""
    try:
        yield
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", path=path) from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a checkpoint file", path=path) from None
    except OSError as exc:
        raise JanitorError(f"{path}: cannot read ({exc.strerror or exc})", path=path) from None


def read_header(path: str) -> bytes:
    return LOCAL.read_ends(path, 2, 0)[0]


def _refusal(path: str, why: str) -> UnsafeCheckpoint:
    return UnsafeCheckpoint(
        f"refusing to load {path}: it contains code or objects outside torch's weights-only "
        f"allow-list{f' ({why.strip()})' if why else ''}; nothing in it was run"
    )


# The tensor data a command never reads, by the checkpoint's top-level entries: extraction
# reads the weights, never the optimizer's state; info reads only shapes and sizes.
EXTRACT_UNREAD = ("optimizer", "optimizer_states")
INFO_UNREAD = (*EXTRACT_UNREAD, "model", "weight", "state_dict")


class CheckpointSource:
    """A checkpoint the user named (a path or a URL), checked complete (``check_readable``),
    and a local file torch can read for it (``file()``): the file itself on a disk; for an
    object on remote storage a staged stand-in holding only the records the command reads
    (``janitor.storage.staging``), fetched on first use and removed when ``stack`` closes."""

    def __init__(
        self,
        path: str,
        stack: contextlib.ExitStack,
        *,
        unread: Sequence[str] = (),
        allow: Sequence[tuple[type, str]] = (),
        allow_replaced_header: bool = False,
    ) -> None:
        check_readable(path, allow_replaced_header)
        self.path, self.stack, self.unread, self.allow = path, stack, unread, allow
        self.replaced = allow_replaced_header
        self.fs, self.where = locate.resolve(path)
        self.local = self.fs.local_path(self.where)
        self.staged: staging.Staged | None = None

    def file(self) -> str:
        if self.local is not None:
            return self.local
        if self.staged is None:
            try:
                self.staged = self._stage(everything=False)
            except Refused as exc:
                if not exc.name.startswith("torch."):
                    raise _refusal(self.path, f"GLOBAL {exc.name}") from None
                # a torch name this reader does not take apart: all of it, torch's loader judges
                self.staged = self._stage(everything=True)
        return self.staged.path

    def _stage(self, everything: bool) -> staging.Staged:
        tmp = self.stack.enter_context(LOCAL.temp_dir(tempfile.gettempdir(), layout.STAGE_PREFIX))
        try:
            with _reading(self.path):
                return staging.stage(
                    self.fs, self.where, tmp, unread=self.unread,
                    extra=[name for _, name in self.allow],
                    allow_replaced_header=self.replaced, everything=everything,
                )  # fmt: skip
        except staging.NotWhole as exc:
            raise _incomplete(self.path, exc.problem) from None
        except staging.Changed as exc:
            raise JanitorError(
                f"{self.path}: changed while read ({exc}); try again", path=self.path
            ) from None

    def size(self) -> int:
        if self.local is not None:
            return LOCAL.stat(LOCAL.realpath(self.local)).size
        return self.staged.size if self.staged else self.fs.stat(self.where).size

    def notes(self) -> list[str]:
        """What was read of a remote object (nothing to say about a local file)."""
        s = self.staged
        if s is None or not s.size:
            return []
        import humanize

        return [f"read {humanize.naturalsize(s.fetched, binary=True)} of "
                f"{humanize.naturalsize(s.size, binary=True)} ({s.fetched / s.size:.0%}) "
                f"in {s.requests} ranged reads"]  # fmt: skip


def load_checkpoint(
    path: str, allow: Sequence[tuple[type, str]] = (), shown: str | None = None
) -> Any:
    """torch.load with mmap and the weights-only unpickler; code in the pickle is refused.
    ``allow``: (inert class, global name) pairs a trainer's file needs (GPT-SoVITS's
    ``utils.HParams``, Lightning's ``pathlib.PosixPath``), nothing else. A file whose first
    two bytes GPT-SoVITS replaced is read from memory with ``PK`` restored, as its loader does;
    one in torch's legacy (pre-zip) format, which torch cannot map, is read without ``mmap``.
    ``path`` is a local file; ``shown``: how messages name it (the user's URL)."""
    import io
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(list(allow)):
            if is_legacy(LOCAL.read_ends(path, 32, 0)[0]):
                return torch.load(path, map_location="cpu", weights_only=True)
            if read_header(path) not in (b"PK", b""):
                data = io.BytesIO(b"PK" + LOCAL.read_bytes(path, 2))
                return torch.load(data, map_location="cpu", weights_only=True)
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()
        why = next((line for line in detail if "GLOBAL" in line or "Unsupported" in line), "")
        raise _refusal(shown or path, why) from None
    except (RuntimeError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        # a damaged pickle (torch's unpickler stumbles with whatever error it meets)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JanitorError(
            f"{shown or path}: cannot read checkpoint ({first})", path=shown or path
        ) from None


def _is_dir(path: str) -> bool:
    """A folder the user named (on a disk or a store), asked through the storage seam."""
    fs, where = locate.resolve(path)
    return fs.is_dir(where)


def _absolute(path: str) -> str:
    """A local path made absolute; a URL as it is."""
    return path if locate.is_url(path) else os.path.abspath(path)


def _read_json(path: str) -> dict | None:
    fs, where = locate.resolve(path)
    try:
        data = json.loads(fs.read_bytes(where).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise JanitorError(f"{path}: cannot read ({exc})", path=path) from None
    return data if isinstance(data, dict) else None


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def _kind_error(path: str) -> None:
    """Refuse inputs that are not big G files, by name, before touching torch."""
    name = os.path.basename(path)
    m = BIG_RE.match(name)
    if m and m["prefix"] != "G":
        raise UsageError(
            f"{path}: is a {m['prefix']}_ file (discriminator/duration model); "
            "extract-small needs the generator G_<step>.pth"
        )
    if not m and any(small_match(p, name) for p in (APPLIO, *PROFILES.values())):
        raise UsageError(f"{path}: is already a small model", path=path)


# ----------------------------------------------------------------- writing


def atomic_save(
    obj: Any,
    final: str,
    interrupts: DeferredInterrupt = _NO_INTERRUPTS,
    *,
    replace: bool = False,
    fs: FileSystem = LOCAL,
    header: bytes | None = None,
    pickle_module: Any = None,
    torch_free: bool = False,
) -> int | None:
    """torch.save into a temp folder beside ``final`` (``.janitor-tmp-<pid>-*/<name>``, so
    the archive inside is named like the final file), fsync, then publish through the
    storage seam: never a partial file at ``final``.

    Returns the size written, or None when a file appeared at ``final`` in the meantime: it
    is never replaced (``FileSystem.publish``). ``replace`` (``--force``) replaces it.
    ``header``: GPT-SoVITS's version bytes in place of ``PK`` (it saves to memory, patches the
    first two bytes and writes the result; so does this). ``pickle_module``: for classes the
    trainer pickles under its own names. ``torch_free``: ``obj`` holds ``torchzip.OutTensor``s,
    written by ``janitor.storage.torchfile`` as torch 2.13 writes them."""
    if not torch_free:
        import torch
    extra = {"pickle_module": pickle_module} if pickle_module is not None else {}

    folder = os.path.dirname(final) or "."
    remote = fs.local_path(folder) is None  # written locally, then put on the store
    inside = False  # the temp folder exists: errors now are about writing the file
    try:
        temp_dir = LOCAL.temp_dir(tempfile.gettempdir(), layout.TMP_PREFIX) if remote else None
        with temp_dir or fs.temp_dir(folder, layout.TMP_PREFIX) as tmp_dir:
            inside = True
            tmp = os.path.join(tmp_dir, os.path.basename(final))
            if torch_free:
                out = (LOCAL if remote else fs).appender(tmp)
                try:
                    torchfile.save(obj, out, archive_name(tmp))
                finally:
                    out.close()
            elif header is None:
                torch.save(obj, tmp, **extra)
            else:
                out = _HeaderWriter((LOCAL if remote else fs).appender(tmp), header)
                try:
                    torch.save(obj, out, **extra)
                finally:
                    out.close()
            size = (LOCAL if remote else fs).sync_file(tmp)
            interrupts.check()  # Ctrl-C during the save: the temp folder goes, no output
            if remote:
                return size if staging.upload(fs, tmp, final, replace=replace) else None
            return size if fs.publish(tmp, final, replace=replace) else None
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
        if not inside:
            raise JanitorError(f"cannot write in {folder}: {reason}") from None
        raise JanitorError(f"cannot write {final}: {reason}") from None


ROOM_SLACK = 64 * 1024  # beyond the tensors' bytes: the zip's records, the pickle, pages


def bytes_to_write(obj: Any) -> int:
    """What ``torch.save(obj)`` (or the torch-free writer) takes on disk, at most: every
    tensor storage once, plus the zip's records per tensor and ``ROOM_SLACK``. Torch is
    imported only when ``obj`` may hold torch tensors."""
    import sys

    torch = sys.modules.get("torch")  # torch-free objects: torch is never imported here
    seen: dict[int, int] = {}
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, OutTensor):
            storage = item.storage
            seen[id(storage)] = storage.numel * ITEMSIZE[storage.dtype]
        elif torch is not None and isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            seen[storage.data_ptr() or id(storage)] = storage.nbytes()
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return sum(seen.values()) + 256 * len(seen) + ROOM_SLACK


def check_room(obj: Any, fs: FileSystem, final: str) -> None:
    """Refuse, before anything is written, a small model its disk has no room for: one line
    naming the file, the bytes it needs and the disk (``NoRoom``). On object storage (written
    locally first, then uploaded) and where free space cannot be told, nothing is checked."""
    folder = fs.local_path(os.path.dirname(final) or ".")
    free = None if folder is None else platform.free_bytes(folder)
    if folder is None or free is None:
        return
    needed = bytes_to_write(obj)
    if needed > free:
        raise NoRoom(final, needed, free, disk_text(folder))


class _HeaderWriter:
    """A stream for ``torch.save`` that writes through the storage seam with the first two
    bytes replaced. Saving to a stream (as GPT-SoVITS saves to memory) also names the zip's
    inner folder ``archive``, as in the trainer's own files; nothing is held in memory."""

    def __init__(self, out: Any, header: bytes) -> None:
        self.out, self.header, self.written = out, header, 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if self.written < len(self.header):
            head = self.header[self.written : self.written + len(chunk)]
            chunk = head + chunk[len(head) :]
        self.out.write(chunk)
        self.written += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.out.close()


# ----------------------------------------------------------------- extraction


class PageReleaser:
    """Gives back the pages of a memory-mapped checkpoint once a tensor has been converted.

    ``torch.load(mmap=True)`` maps the file privately; every page a conversion reads stays
    resident until the mapping goes away, so peak RSS would grow by the whole fp32 model.
    After each tensor we ``madvise(MADV_DONTNEED)`` its pages: they are clean file pages, so
    this only drops them from our RSS (the page cache keeps them; a later read re-faults
    them from the file). Only ranges inside the checkpoint's own mapping (from
    /proc/self/maps) are ever touched; elsewhere (no /proc, not Linux) this does nothing
    (``janitor.storage.platform``).
    """

    def __init__(self, path: str) -> None:
        self.drop = platform.page_dropper()
        self.ranges = platform.mapped_ranges(LOCAL.realpath(path)) if self.drop else []
        self.page = mmap.PAGESIZE

    def release(self, tensor: Any) -> None:
        if not self.ranges or self.drop is None or tensor.numel() == 0:
            return
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        lo, hi = start - start % self.page, -(-end // self.page) * self.page
        if any(a <= lo and hi <= b for a, b in self.ranges):
            self.drop(lo, hi - lo)


def half_weights(
    model: Mapping[str, Any],
    source: str | None = None,
    *,
    half: bool = True,
    drop_enc_q: bool = True,
    reader: halving.Reader | None = None,
) -> dict[str, Any]:
    """G state dict without ``enc_q`` keys, every tensor fp16, in the original order. Each
    tensor is read from the mapped file, converted, and its pages released on its own.
    ``half=False`` keeps the stored dtype (a copy, off the mapped file). ``reader``: the
    model is a skeleton read without torch (``janitor.core.halving``), converted as it is
    written."""
    if reader is not None:
        return halving.half_weights(model, reader, drop_enc_q=drop_enc_q)
    releaser = PageReleaser(source) if source else None
    out = {}
    for k, v in model.items():
        if drop_enc_q and "enc_q" in k:
            continue
        out[k] = v.half() if half else v
        if releaser is not None:
            releaser.release(v)
    return out


def trainer_of(run_dir: str):
    """(profile, why) for the folder a checkpoint lives in."""
    fs, where = locate.resolve(run_dir)
    entries = fs.listdir(where)
    files = {e.name for e in entries if e.kind == "file"}
    dirs = {e.name for e in entries if e.kind == "dir"}
    return detect_trainer(files, dirs, run_dir)


def check_options(opts: Options, inputs: int = 1) -> None:
    """Usage errors in the options themselves and between them, before any file is read
    (torch-free). What contradicts a particular G file is checked once it is read."""
    if opts.format is not None and opts.format not in (*FORMATS, *LIGHTNING_FORMATS):
        raise UsageError(
            f"--format must be one of {', '.join(FORMATS)} ({' or '.join(LIGHTNING_FORMATS)} "
            f"for Lightning), got {opts.format!r}"
        )
    if opts.like is not None and opts.like not in LIKES:
        raise UsageError(f"--like must be savee or extract, got {opts.like!r}")
    if opts.like is not None and opts.format not in (None, "rvc"):
        raise UsageError("--like is for RVC WebUI models (--format rvc)")
    if opts.info is not None and opts.like != "extract":
        raise UsageError("--info is the text of RVC WebUI's own extraction: pass --like extract")
    if opts.half and opts.format not in (None, "release"):
        raise UsageError("--half is for so-vits-svc/Bert-VITS2 release files (--format release)")
    check_overrides(opts.sr, opts.version, opts.vocoder)
    step = opts.step
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP
    ):
        raise UsageError(f"--step must be a whole number from 0 to {MAX_STEP}, got {step!r}")
    name = opts.name
    if name is not None and (
        not name.strip() or name in (".", "..") or any(c in name for c in ("/", "\\", "\0"))
    ):
        raise UsageError(f"--name must be a plain name (no folders, not empty), got {name!r}")
    if opts.force and opts.skip_existing:
        raise UsageError("--force and --skip-existing contradict each other: pass one of them")
    if opts.output is not None:
        _check_output(opts.output, inputs)


def _output_folder(output: str) -> bool:
    """--output names a folder: an existing one; on object storage (where a folder exists
    only once something is in it) also a URL ending in / or whose last part has no suffix."""
    if _is_dir(output):
        return True
    name = os.path.basename(output)
    return locate.is_url(output) and (not name or "." not in name)


def _check_output(output: str, inputs: int) -> None:
    """--output is an existing folder, or a file name in an existing folder (one input)."""
    if _output_folder(output):
        return
    if inputs > 1:
        raise UsageError(
            f"--output {output}: with several inputs, --output must be an existing folder"
        )
    if output.endswith(("/", os.sep)):
        what = "not a folder" if LOCAL.exists(output) else "no such folder"
        raise UsageError(f"--output {output}: {what}")
    parent = os.path.dirname(_absolute(output))
    if not locate.is_url(output) and not _is_dir(parent):
        what = "is not a folder" if LOCAL.exists(parent) else "does not exist"
        raise UsageError(f"--output {output}: the folder {parent} {what}")
    if BIG_RE.match(os.path.basename(output)) or LIGHTNING_RE.match(os.path.basename(output)):
        raise UsageError(
            f"--output {output}: that is a training checkpoint's name (G_/D_<step>.pth); "
            "a small model needs another"
        )


def _rvc_webui_config(run_dir: str) -> bool:
    try:
        cfg = _read_json(os.path.join(run_dir, "config.json"))
    except JanitorError:
        return False
    return cfg is not None and "model" in cfg and rate_key(cfg) == "sampling_rate"


def _read_text(path: str) -> str | None:
    fs, where = locate.resolve(path)
    try:
        return fs.read_bytes(where).decode("utf-8", "replace")
    except OSError:
        return None


def extract_one(path: str, opts: Options, now: Callable[[], datetime] = datetime.now) -> Extracted:
    check_options(opts)
    with DeferredInterrupt() as interrupts, contextlib.ExitStack() as stack:
        return _extract_one(path, opts, now, interrupts, stack)


def _step_of(path: str, profile, opts: Options, ckpt: Mapping[str, Any]) -> tuple[int, int, str]:
    """(epoch, step, where the step came from) of a big checkpoint."""
    name = os.path.basename(path)
    if name.endswith(".ckpt") and isinstance(ckpt.get("state_dict"), Mapping):
        # GPT-SoVITS stage 1 (Lightning): epoch=<E-1>-step=<S>.ckpt or last.ckpt; E = epoch + 1
        epoch = int(ckpt.get("epoch") or 0) + 1
        lightning = LIGHTNING_RE.match(name)
        if lightning is None and isinstance(ckpt.get("global_step"), int):
            return epoch, ckpt["global_step"], "checkpoint (global_step)"
        number: int | None = int(lightning["num"]) if lightning else None
    else:
        m = BIG_RE.match(name)
        number = int(m["num"]) if m else None
        epoch = int(ckpt.get("iteration", 0))
    latest = profile.latest_constant or PROFILES["applio"].latest_constant
    if opts.step is not None and number not in (None, latest, opts.step):
        raise UsageError(f"--step {opts.step} contradicts the file name {name} (step {number})")
    if opts.step is not None:
        return epoch, opts.step, "flag"
    if number is None or number == latest:
        return epoch, 0, "unknown (latest-only file): 0; pass --step N"
    return epoch, number, "file name"


def _weights_of(path: str, ckpt: Any) -> tuple[str, Mapping[str, Any]]:
    """("model" | "state_dict", the state dict) of a big checkpoint, or a usage error."""
    if (
        isinstance(ckpt, Mapping)
        and isinstance(ckpt.get("state_dict"), Mapping)
        and ("hyper_parameters" in ckpt)
    ):
        return "state_dict", ckpt["state_dict"]
    model = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not isinstance(model, Mapping):
        if isinstance(ckpt, Mapping) and "weight" in ckpt:
            raise UsageError(f"{path}: is already a small model", path=path)
        raise UsageError(
            f"{path}: not a VITS training checkpoint (no 'model' state dict)", path=path
        )
    return "model", model


def _extract_one(
    path: str,
    opts: Options,
    now: Callable[[], datetime],
    interrupts: DeferredInterrupt,
    stack: contextlib.ExitStack,
    with_torch: bool = False,
) -> Extracted:
    path = _absolute(path)
    _kind_error(path)
    allow = LIGHTNING_GLOBALS if path.endswith(".ckpt") else ()
    src = CheckpointSource(path, stack, unread=EXTRACT_UNREAD, allow=allow)  # checked complete
    run_dir = os.path.dirname(path)
    profile = trainer_of(run_dir)[0]
    fmt = opts.format or profile.extract
    if opts.format is None and profile.name == "generic" and _rvc_webui_config(run_dir):
        fmt = "rvc"  # RVC WebUI's config.json names the rate data.sampling_rate (Applio's not)
    if fmt is None:
        raise UsageError(f"{path}: {profile.extract_refusal}", path=path)
    if opts.format in LIGHTNING_FORMATS:
        raise UsageError(f"--format {opts.format} is for Lightning checkpoints, not {path}")
    if fmt not in PREPARERS:  # a framework's checkpoint (janitor.torchio.frameworks)
        raise UsageError(
            f"{path}: a {profile.label} checkpoint; extract-small writes its small model from "
            "the checkpoint itself (HF folder, Lightning .ckpt)"
        )
    if opts.half and fmt != "release":
        raise UsageError(f"--half is for so-vits-svc/Bert-VITS2 release files; this is a {fmt} run")
    if opts.like is not None and fmt != "rvc":
        raise UsageError(f"--like is for RVC WebUI models; this is a {fmt} run")
    free = torch_free(fmt) and not with_torch
    tf = None
    if free:
        try:
            tf, ckpt = read_torch_free(path, src.file(), stack, [n for _, n in allow])
        except Unsupported as exc:
            if not torch_installed():
                raise unsupported(path, exc) from None
            free = False  # torch converts what this reader does not take apart
    if not free:
        if not torch_installed():
            raise needs_torch(f"{path}: {NEEDS_TORCH.get(fmt, f'the {fmt} export')}")
        ckpt = load_checkpoint(src.file(), allow, shown=path)
    interrupts.check()
    source, weights = _weights_of(path, ckpt)
    shapes = _shapes(weights)
    if source == "model":
        check = {"gpt-sovits": is_sovits_generator, "release": is_vits_generator}
        if not check.get(fmt, is_generator)(shapes):
            what = {"gpt-sovits": "GPT-SoVITS SoVITS"}.get(fmt, "VITS")
            raise UsageError(
                f"{path}: not a {what} generator (no enc_p/dec weights); is it a D file?"
            )
    epoch, step, step_from = _step_of(path, profile, opts, ckpt)
    ctx = Context(
        path, run_dir, profile, ckpt, weights, shapes, epoch, step, step_from, opts,
        _read_json, _read_text, _is_dir, now,
    )  # fmt: skip
    ctx.notes.extend(src.notes())
    if step_from.startswith("unknown") and fmt != "gpt-sovits":
        ctx.notes.append(f"{os.path.basename(path)} does not say its step: using 0 (pass --step N)")
    if source == "state_dict" and fmt != "gpt-sovits":
        raise UsageError(f"{path}: a Lightning checkpoint (GPT-SoVITS's GPT stage) has no {fmt} "
                         "small model; its export is --format gpt-sovits")  # fmt: skip
    prepared = (exports.gpt if source == "state_dict" else PREPARERS[fmt])(ctx)
    notes = ctx.notes
    output = opts.output
    if output is None:
        output = prepared.output
    elif _output_folder(output):
        output = os.path.join(output, os.path.basename(prepared.output))
    output = _absolute(output)
    out_fs, out_where = locate.resolve(output)
    if output == path or (src.local is not None and LOCAL.same_file(output, path)):
        raise UsageError(f"--output {output}: is the input checkpoint itself")

    def done(size: int, notes: Sequence[str], **flags: bool) -> Extracted:
        return Extracted(
            path, output, prepared.format, prepared.name, epoch, step, step_from,
            prepared.detected, size, tuple(notes), expect=prepared.expect, **flags,
        )  # fmt: skip

    def left_alone(note: str) -> Extracted:
        """The output exists (the trainer's own, maybe): never replaced without --force."""
        if not opts.skip_existing:
            raise JanitorError(
                f"{output}: exists; pass --force to overwrite (or --skip-existing)", path=output
            )
        try:
            size = out_fs.stat(out_fs.realpath(out_where)).size
        except OSError:
            size = 0
        return done(size, (note,), skipped=True)

    if out_fs.exists(out_where) and not opts.force:
        return left_alone("exists already: left as it is")
    if opts.dry_run:
        return done(0, notes, planned=True)
    expect = prepared.expect
    if tf is not None:
        try:
            weight = half_weights(weights, drop_enc_q=expect.drop_enc_q, reader=tf.reader)
            small = prepared.build(weight)
            check_room(small, out_fs, out_where)
            size = atomic_save(small, out_where, interrupts, replace=opts.force, fs=out_fs,
                               torch_free=True)  # fmt: skip
        except Unsupported as exc:
            if not torch_installed():
                raise unsupported(path, exc) from None
            return _extract_one(path, opts, now, interrupts, stack, with_torch=True)
    else:
        weight = half_weights(weights, src.file(), half=expect.half, drop_enc_q=expect.drop_enc_q)
        interrupts.check()
        small = prepared.build(weight)
        check_room(small, out_fs, out_where)
        size = atomic_save(
            small, out_where, interrupts, replace=opts.force, fs=out_fs, header=prepared.header,
            pickle_module=prepared.pickle_module,
        )  # fmt: skip
    if size is None:
        return left_alone("appeared while extracting (the trainer's own, likely): left as it is")
    return done(size, notes)


# ----------------------------------------------------------------- verification


def verify_small(
    small_path: str,
    g_path: str,
    expect: Expect,
    on_tensor: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Problems that make ``small_path`` not the small model of ``g_path`` (empty: verified).

    It must load with the weights-only unpickler (and only the names the format needs
    allow-listed), start with the format's header bytes, hold the expected metadata (epoch,
    step, info, ...), and exactly the big file's weights (without ``enc_q`` where the trainer
    drops them), each equal to its fp16 conversion (or as stored). Compared tensor by tensor
    from the mapped files, pages released as we go (either may be on object storage: the
    small model is fetched whole, of the G only the weights)."""
    if expect.torch_free and not torch_forced():
        try:
            return _verify_torch_free(small_path, g_path, expect, on_tensor)
        except Unsupported as exc:
            if not torch_installed():
                return [str(unsupported(small_path, exc))]
    allow_g = LIGHTNING_GLOBALS if expect.source == "state_dict" else ()
    with contextlib.ExitStack() as stack:
        try:
            small_src = CheckpointSource(small_path, stack, allow=expect.allow,
                               allow_replaced_header=expect.header != b"PK")  # fmt: skip
            small = load_checkpoint(small_src.file(), expect.allow, shown=small_path)
            header = read_header(small_src.file())
            g_src = CheckpointSource(g_path, stack, unread=EXTRACT_UNREAD, allow=allow_g)
            big = load_checkpoint(g_src.file(), allow_g, shown=g_path)
        except JanitorError as exc:
            return [str(exc)]
        files = (small_src.file(), g_src.file())
        return _compare(small_path, files, header, small, big, expect, on_tensor)


def _verify_torch_free(
    small_path: str, g_path: str, expect: Expect, on_tensor: Callable[[int, int], None] | None
) -> list[str]:
    """``verify_small`` from the bytes: both files read by ``janitor.storage.torchfile``,
    tensor by tensor (Unsupported for what that reader does not take apart)."""
    with contextlib.ExitStack() as stack:
        try:
            small_src = CheckpointSource(small_path, stack)
            small_tf, small = read_torch_free(small_path, small_src.file(), stack)
            header = read_header(small_src.file())
            g_src = CheckpointSource(g_path, stack, unread=EXTRACT_UNREAD)
            g_tf, big = read_torch_free(g_path, g_src.file(), stack)
        except JanitorError as exc:
            return [str(exc)]
        problems, keys = _compare_meta(small_path, header, small, big, expect)
        if keys is None:
            return problems
        weight, model = small[expect.container], big[expect.source]
        try:
            return problems + halving.compare(weight, small_tf.reader, model, g_tf.reader,
                                              half=expect.half, on_tensor=on_tensor)  # fmt: skip
        except OSError as exc:
            return [*problems, f"{small_path}: cannot read ({exc})"]


def _compare_meta(
    small_path: str, header: bytes, small: Any, big: Any, expect: Expect
) -> tuple[list[str], list[str] | None]:
    """(problems, the weight keys to compare, or None when there is nothing to compare):
    header bytes, metadata and key set of a small model against its G."""
    problems: list[str] = []
    if header != expect.header:
        problems.append(f"starts with {header!r}, expected {expect.header!r}")
    if not isinstance(small, Mapping) or not isinstance(small.get(expect.container), Mapping):
        return [f"{small_path}: not a small model (no {expect.container!r})"], None
    for key, value in expect.meta:
        if small.get(key) != value:
            problems.append(f"{key} is {small.get(key)!r}, expected {value!r}")
    weight, model = small[expect.container], big[expect.source]
    want = [k for k in model if not (expect.drop_enc_q and "enc_q" in k)]
    if list(weight) != want:
        missing, extra = set(want) - set(weight), set(weight) - set(want)
        problems.append(f"weight keys differ ({len(missing)} missing, {len(extra)} extra)")
        return problems, None
    return problems, want


def _compare(
    small_path: str,
    files: tuple[str, str],
    header: bytes,
    small: Any,
    big: Any,
    expect: Expect,
    on_tensor: Callable[[int, int], None] | None,
) -> list[str]:
    """``verify_small``'s comparison of the loaded files (``files``: the local small and G
    files torch mapped, whose pages are released tensor by tensor)."""
    problems, want = _compare_meta(small_path, header, small, big, expect)
    if want is None:
        return problems
    weight, model = small[expect.container], big[expect.source]
    small_pages, g_pages = PageReleaser(files[0]), PageReleaser(files[1])
    how = "the fp16 conversion of" if expect.half else "the tensor in"
    for i, key in enumerate(want, 1):
        if on_tensor is not None:
            on_tensor(i, len(want))
        mine, source = weight[key], model[key]
        expected = source.half() if expect.half else source
        if mine.dtype != expected.dtype or not mine.equal(expected):
            problems.append(f"tensor {key} differs from {how} the big checkpoint")
            if len(problems) >= 5:
                break
        small_pages.release(mine)
        g_pages.release(source)
    return problems


# ----------------------------------------------------------------- info


def _small_format(obj: Mapping[str, Any], header: bytes) -> tuple[str, dict[str, Any]]:
    """(format, what the file says about itself) of a small model."""
    if "model_hash" in obj:
        return "applio", {}
    if header not in (b"PK", LEGACY_HEADER):
        version = HEADER_VERSION.get(header, f"unknown header {header!r}")
        return "gpt-sovits", {"version": f"{version} (header {header.decode('latin-1')})"}
    if isinstance(obj.get("info"), str) and obj["info"].startswith("GPT-e"):
        return "gpt-sovits", {"version": "GPT weights (stage 1)"}
    if isinstance(obj.get("info"), str) and obj["info"].endswith("iteration"):
        shapes = _shapes(obj["weight"])
        rows = (shapes.get("enc_p.text_embedding.weight") or (0,))[0]
        version = "v1" if rows == 322 else "v2"
        return "gpt-sovits", {"version": f"{version} (header PK; enc_p.text_embedding rows {rows})"}
    return "rvc", {}


def info(path: str) -> dict[str, Any]:
    """What a checkpoint is, read through mmap (no tensor's data is read; of a file on object
    storage only the pickle and the zip's headers are fetched)."""
    path = _absolute(path)
    lightning = LIGHTNING_RE.match(os.path.basename(path))
    allow = (*GPT_SOVITS_GLOBALS, *(LIGHTNING_GLOBALS if lightning else ()))
    with contextlib.ExitStack() as stack:
        src = CheckpointSource(
            path, stack, unread=INFO_UNREAD, allow=allow, allow_replaced_header=True
        )
        if torch_installed():
            obj = load_checkpoint(src.file(), allow, shown=path)
        else:  # the structure only, read without torch
            try:
                obj = _plain(read_torch_free(path, src.file(), stack, [n for _, n in allow])[1])
            except Unsupported as exc:
                raise needs_torch(f"{path} ({exc})") from None
        header = read_header(src.file())  # the local file (a stand-in holds the first bytes)
        size = src.size()
        return _describe(path, header, obj, size, bool(lightning))


def _plain(obj: Any) -> Any:
    """A skeleton's inert stand-ins (GPT-SoVITS's HParams, a Lightning path) as the values
    they hold, for describing."""
    from janitor.core.skeleton import Inert

    if isinstance(obj, Inert):
        return _plain(obj.state if obj.state is not None else list(obj.args))
    if isinstance(obj, Mapping):
        return type(obj)((k, _plain(v)) for k, v in obj.items()) if isinstance(obj, dict) else obj
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _describe(path: str, header: bytes, obj: Any, size: int, lightning: bool) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise JanitorError(
            f"{path}: not a VITS checkpoint (top level is {type(obj).__name__})", path=path
        )
    name = os.path.basename(path)
    if "weight" in obj and "config" in obj:
        weight = obj["weight"]
        dtypes = sorted({str(v.dtype).replace("torch.", "") for v in weight.values()})
        meta = {k: v for k, v in obj.items() if k != "weight"}
        if hasattr(meta.get("config"), "as_dict"):
            meta["config"] = meta["config"].as_dict()
        fmt, extra = _small_format(obj, header)
        return {
            "path": path,
            "kind": "small",
            "format": fmt,
            **extra,
            "size": size,
            "tensors": len(weight),
            "dtypes": dtypes,
            "parameters": sum(int(v.numel()) for v in weight.values()),
            "metadata": meta,
        }
    if lightning and isinstance(obj.get("state_dict"), Mapping):
        state = obj["state_dict"]
        return {
            "path": path,
            "kind": "GPT (Lightning)",
            "size": size,
            "epoch": obj.get("epoch"),
            "step": obj.get("global_step"),
            "parameters": sum(int(v.numel()) for v in state.values() if hasattr(v, "numel")),
        }
    model = obj.get("model")
    if not isinstance(model, Mapping):
        raise JanitorError(f"{path}: not a VITS checkpoint (no 'model' or 'weight')", path=path)
    m = BIG_RE.match(name)
    shapes = _shapes(model)
    release = not m and RELEASE_SMALL.regex.match(name) is not None
    if m:
        kind = m["prefix"]
    elif release:
        kind = "small"
    else:
        kind = "G" if is_vits_generator(shapes) else "D"
    run_dir = os.path.dirname(path)
    profile, why = trainer_of(run_dir)
    latest = bool(m and int(m["num"]) == (profile.latest_constant or -1))
    out: dict[str, Any] = {
        "path": path,
        "kind": kind,
        **({"format": "release"} if kind == "small" else {}),
        "size": size,
        "epoch": obj.get("iteration"),
        "step": int(m["num"]) if m and not latest else None,
        "latest_only": latest,
        "parameters": sum(int(v.numel()) for v in model.values() if hasattr(v, "numel")),
        "optimizer_state": isinstance(obj.get("optimizer"), Mapping)
        and bool(obj["optimizer"].get("state")),
        "learning_rate": obj.get("learning_rate"),
    }
    out["trainer"] = {"value": profile.name, "from": why}
    if is_generator(shapes):
        try:
            run_config = _read_json(os.path.join(run_dir, "config.json"))
            if run_config is not None and not {"data", "model"} <= set(run_config):
                run_config = None
            detected = detect(shapes, run_config, where=os.path.join(run_dir, "config.json"))
            out["detected"] = detected.as_dict()
        except JanitorError as exc:
            out["detected"] = {"error": str(exc)}
    return out


class TorchSmallModels:
    """``finalize``'s small-model maker: the trainer's small model of a G, found by the
    trainer's naming or extracted, then verified tensor by tensor against the G
    (``on_tensor(done, total)`` is told each tensor, for a progress bar)."""

    def __init__(self, on_tensor: Callable[[int, int], None] | None = None) -> None:
        self.on_tensor = on_tensor

    def ensure(self, g_path: str, dry_run: bool) -> SmallModelCheck:
        done = extract_one(g_path, Options(skip_existing=True, dry_run=dry_run))
        action = "exists" if done.skipped else ("extract" if done.planned else "extracted")
        problems: tuple[str, ...] = ()
        if not done.planned:
            problems = tuple(verify_small(done.output, g_path, done.expect, self.on_tensor))
        return SmallModelCheck(done.output, done.epoch, done.step, action, problems)
