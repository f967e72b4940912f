"""Big G checkpoint -> small inference model, exactly as the trainer writes it; and `info`.

The only module that imports torch, and only inside functions. Checkpoints are read through
torch's weights-only unpickler with ``mmap=True``: the optimizer state (two thirds of a G
file) is never read, and model tensors are converted to fp16 one at a time. Output goes to
a temp folder beside the destination, is fsynced and then hard-linked into place, which
never replaces a file already there (the trainer's own small model, written meanwhile);
only ``--force`` replaces, with ``os.replace``.
"""

from __future__ import annotations

import json
import mmap
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from janitor.core.profiles import APPLIO, BIG_RE, PROFILES, RVC
from janitor.core.profiles import detect as detect_trainer
from janitor.core.smallmodel import (
    Detected,
    applio_name,
    check_overrides,
    detect,
    is_generator,
    model_hash,
    rvc_name,
    rvc_sr,
)
from janitor.domain.errors import JanitorError, UsageError
from janitor.domain.results import SmallModelCheck
from janitor.storage import layout, platform
from janitor.storage.completeness import check_file
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.scan import small_match

FORMATS = ("applio", "rvc")
MAX_STEP = 1_000_000_000  # --step: a billion steps is years of training; more is a typo


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
    detected: Detected
    size: int
    notes: tuple[str, ...] = field(default=())
    skipped: bool = False  # the output existed (before or while extracting): left alone
    planned: bool = False  # dry run: would be written

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


# ----------------------------------------------------------------- reading


def check_readable(path: str) -> None:
    """Torch-free gate: an existing, complete torch zip (never read one still being written)."""
    try:
        check = check_file(LOCAL, path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as exc:
        raise JanitorError(f"{path}: cannot read ({exc.strerror})") from None
    if not check.complete:
        raise JanitorError(f"{path}: not a complete torch checkpoint ({check.problem})")


def load(path: str) -> Any:
    """torch.load with mmap and the weights-only unpickler; code in the pickle is refused."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()
        why = next((line for line in detail if "GLOBAL" in line or "Unsupported" in line), "")
        raise UnsafeCheckpoint(
            f"refusing to load {path}: it contains code or objects outside torch's weights-only "
            f"allow-list{f' ({why.strip()})' if why else ''}; nothing in it was run"
        ) from None
    except (RuntimeError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JanitorError(f"{path}: cannot read checkpoint ({first})") from None


def _is_dir(path: str) -> bool:
    """A folder (links followed), asked through the storage seam."""
    try:
        return LOCAL.stat(LOCAL.realpath(path)).kind == "dir"
    except OSError:
        return False


def _read_json(path: str) -> dict | None:
    try:
        data = json.loads(LOCAL.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise JanitorError(f"{path}: cannot read ({exc})") from None
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
    if not m and small_match(APPLIO, name):
        raise UsageError(f"{path}: is already a small model")


# ----------------------------------------------------------------- writing


def atomic_save(
    obj: Any,
    final: str,
    interrupts: DeferredInterrupt = _NO_INTERRUPTS,
    *,
    replace: bool = False,
    fs: FileSystem = LOCAL,
) -> int | None:
    """torch.save into a temp folder beside ``final`` (``.janitor-tmp-<pid>-*/<name>``, so
    the archive inside is named like the final file), fsync, then publish through the
    storage seam: never a partial file at ``final``.

    Returns the size written, or None when a file appeared at ``final`` in the meantime: it
    is never replaced (``FileSystem.publish``). ``replace`` (``--force``) replaces it."""
    import torch

    folder = os.path.dirname(final) or "."
    inside = False  # the temp folder exists: errors now are about writing the file
    try:
        with fs.temp_dir(folder, layout.TMP_PREFIX) as tmp_dir:
            inside = True
            tmp = os.path.join(tmp_dir, os.path.basename(final))
            torch.save(obj, tmp)
            size = fs.sync_file(tmp)
            interrupts.check()  # Ctrl-C during the save: the temp folder goes, no output
            return size if fs.publish(tmp, final, replace=replace) else None
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
        if not inside:
            raise JanitorError(f"cannot write in {folder}: {reason}") from None
        raise JanitorError(f"cannot write {final}: {reason}") from None


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


def half_weights(model: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """G state dict without ``enc_q`` keys, every tensor fp16, in the original order. Each
    tensor is read from the mapped file, converted, and its pages released on its own."""
    releaser = PageReleaser(source) if source else None
    out = {}
    for k, v in model.items():
        if "enc_q" in k:
            continue
        out[k] = v.half()
        if releaser is not None:
            releaser.release(v)
    return out


def trainer_of(run_dir: str):
    """(profile, why) for the folder a checkpoint lives in."""
    entries = LOCAL.listdir(run_dir)
    files = {e.name for e in entries if e.kind == "file"}
    dirs = {e.name for e in entries if e.kind == "dir"}
    return detect_trainer(files, dirs, run_dir)


def _default_output(run_dir: str, fmt: str, name: str, epoch: int, step: int) -> str:
    """Where the trainer itself puts the small model: Applio in the run folder; RVC WebUI in
    <root>/assets/weights beside <root>/logs/<exp> when that folder exists."""
    if fmt == "rvc":
        for rel in RVC.small_model_dirs:
            folder = os.path.normpath(os.path.join(run_dir, rel))
            if _is_dir(folder):
                return os.path.join(folder, rvc_name(name, epoch, step))
        return os.path.join(run_dir, rvc_name(name, epoch, step))
    return os.path.join(run_dir, applio_name(name, epoch, step))


def build_small(
    fmt: str,
    weight: dict[str, Any],
    detected: Detected,
    *,
    name: str,
    epoch: int,
    step: int,
    author: str | None,
    model_info: Mapping[str, Any] | None,
    now: datetime,
) -> OrderedDict:
    config = detected.config.value
    sr, version = detected.sr.value, detected.version.value
    if fmt == "rvc":
        return OrderedDict(
            weight=weight,
            config=config,
            info=f"{epoch}epoch",
            sr=rvc_sr(sr),
            f0=int(detected.f0.value),
            version=version,
        )
    info = model_info or {}
    out = OrderedDict(weight=weight)
    out["config"] = config
    out["epoch"] = epoch
    out["step"] = step
    out["sr"] = sr
    out["f0"] = bool(detected.f0.value)
    out["version"] = version
    out["creation_date"] = now.isoformat()
    out["model_hash"] = model_hash(name, epoch, step, sr, version, config)
    out["dataset_length"] = info.get("total_dataset_duration")
    out["model_name"] = name
    out["author"] = author
    out["embedder_model"] = info.get("embedder_model", "contentvec")
    out["speakers_id"] = info.get("speakers_id", 1)
    out["vocoder"] = detected.vocoder.value
    return out


@dataclass(frozen=True)
class Options:
    output: str | None = None
    format: str | None = None
    name: str | None = None
    author: str | None = None
    sr: int | None = None
    version: str | None = None
    f0: bool | None = None
    vocoder: str | None = None
    step: int | None = None
    force: bool = False
    skip_existing: bool = False
    dry_run: bool = False  # decide everything, write nothing


def whole_number(text: str | None, flag: str) -> int | None:
    """A command-line whole number, read by janitor (one line naming the flag when it is not
    one: 'nan', 'inf', '1e5', '')."""
    if text is None:
        return None
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise UsageError(f"{flag} must be a whole number, got {text!r}") from None


def check_options(opts: Options, inputs: int = 1) -> None:
    """Usage errors in the options themselves and between them, before any file is read
    (torch-free). What contradicts a particular G file is checked once it is read."""
    if opts.format is not None and opts.format not in (*FORMATS, "ckpt", "safetensors"):
        raise UsageError(
            "--format must be applio or rvc (ckpt or safetensors for Lightning), "
            f"got {opts.format!r}"
        )
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


def _check_output(output: str, inputs: int) -> None:
    """--output is an existing folder, or a file name in an existing folder (one input)."""
    if _is_dir(output):
        return
    if inputs > 1:
        raise UsageError(
            f"--output {output}: with several inputs, --output must be an existing folder"
        )
    if output.endswith(("/", os.sep)):
        what = "not a folder" if LOCAL.exists(output) else "no such folder"
        raise UsageError(f"--output {output}: {what}")
    parent = os.path.dirname(os.path.abspath(output))
    if not _is_dir(parent):
        what = "is not a folder" if LOCAL.exists(parent) else "does not exist"
        raise UsageError(f"--output {output}: the folder {parent} {what}")
    if BIG_RE.match(os.path.basename(output)):
        raise UsageError(
            f"--output {output}: that is a training checkpoint's name (G_/D_<step>.pth); "
            "a small model needs another"
        )


def _run_config(run_dir: str) -> tuple[dict | None, list[str]]:
    """The run's config.json when it has the data/model sections (else ignored, with a note)."""
    run_config = _read_json(os.path.join(run_dir, "config.json"))
    if run_config is not None and not {"data", "model"} <= set(run_config):
        return None, ["config.json has no data/model sections: ignored"]
    return run_config, []


def extract_one(path: str, opts: Options, now: Callable[[], datetime] = datetime.now) -> Extracted:
    check_options(opts)
    with DeferredInterrupt() as interrupts:
        return _extract_one(path, opts, now, interrupts)


def _extract_one(
    path: str, opts: Options, now: Callable[[], datetime], interrupts: DeferredInterrupt
) -> Extracted:
    path = os.path.abspath(path)
    _kind_error(path)
    check_readable(path)
    run_dir = os.path.dirname(path)
    profile = trainer_of(run_dir)[0]
    if opts.format is None and profile.extract is None:
        raise UsageError(f"{path}: {profile.extract_refusal}")
    if opts.format is not None and opts.format not in FORMATS:
        raise UsageError(f"--format {opts.format} is for Lightning checkpoints, not {path}")
    m = BIG_RE.match(os.path.basename(path))
    number = int(m["num"]) if m else None
    latest = PROFILES["applio"].latest_constant
    if opts.step is not None and number not in (None, latest, opts.step):
        raise UsageError(
            f"--step {opts.step} contradicts the file name {os.path.basename(path)} (step {number})"
        )
    ckpt = load(path)
    interrupts.check()
    model = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not isinstance(model, Mapping):
        if isinstance(ckpt, Mapping) and "weight" in ckpt:
            raise UsageError(f"{path}: is already a small model")
        raise UsageError(f"{path}: not a VITS training checkpoint (no 'model' state dict)")
    shapes = _shapes(model)
    if not is_generator(shapes):
        raise UsageError(f"{path}: not a VITS generator (no enc_p/dec weights); is it a D file?")
    run_config, notes = _run_config(run_dir)
    model_info = _read_json(os.path.join(run_dir, "model_info.json"))
    detected = detect(
        shapes, run_config, sr=opts.sr, version=opts.version, f0=opts.f0, vocoder=opts.vocoder,
        where=os.path.join(run_dir, "config.json"),
    )  # fmt: skip
    notes.extend(detected.notes)
    if model_info is None:
        notes.append(
            "no model_info.json: dataset_length None, embedder_model 'contentvec', speakers_id 1"
        )
    epoch = int(ckpt.get("iteration", 0))
    if opts.step is not None:
        step, step_from = opts.step, "flag"
    elif number is None or number == latest:
        step, step_from = 0, "unknown (latest-only file): 0; pass --step N"
        notes.append(f"{os.path.basename(path)} does not say its step: using 0 (pass --step N)")
    else:
        step, step_from = number, "file name"
    name = opts.name or os.path.basename(run_dir)
    fmt = opts.format or profile.extract
    output = opts.output
    if output is None:
        output = _default_output(run_dir, fmt, name, epoch, step)
    elif _is_dir(output):
        default = _default_output(run_dir, fmt, name, epoch, step)
        output = os.path.join(output, os.path.basename(default))
    output = os.path.abspath(output)
    if LOCAL.same_file(output, path):
        raise UsageError(f"--output {output}: is the input checkpoint itself")

    def left_alone(note: str) -> Extracted:
        """The output exists (the trainer's own, maybe): never replaced without --force."""
        if not opts.skip_existing:
            raise JanitorError(f"{output}: exists; pass --force to overwrite (or --skip-existing)")
        try:
            size = LOCAL.stat(LOCAL.realpath(output)).size
        except OSError:
            size = 0
        return Extracted(
            path, output, fmt, name, epoch, step, step_from, detected, size, (note,),
            skipped=True,
        )  # fmt: skip

    if LOCAL.exists(output) and not opts.force:
        return left_alone("exists already: left as it is")
    if opts.dry_run:
        return Extracted(
            path, output, fmt, name, epoch, step, step_from, detected, 0, tuple(notes),
            planned=True,
        )  # fmt: skip
    weight = half_weights(model, path)
    interrupts.check()
    small = build_small(
        fmt, weight, detected, name=name, epoch=epoch, step=step, author=opts.author,
        model_info=model_info, now=now(),
    )  # fmt: skip
    size = atomic_save(small, output, interrupts, replace=opts.force)
    if size is None:
        return left_alone("appeared while extracting (the trainer's own, likely): left as it is")
    return Extracted(path, output, fmt, name, epoch, step, step_from, detected, size, tuple(notes))


# ----------------------------------------------------------------- verification


def verify_small(small_path: str, g_path: str, epoch: int, step: int) -> list[str]:
    """Problems that make ``small_path`` not the small model of ``g_path`` (empty: verified).

    It must load with the weights-only unpickler, name the same epoch (and step, for Applio),
    and hold exactly the G's weights without ``enc_q``, each equal to its fp16 conversion.
    Compared tensor by tensor from the mapped files, pages released as we go."""
    try:
        check_readable(small_path)
        small = load(small_path)
        g = load(g_path)
    except JanitorError as exc:
        return [str(exc)]
    problems: list[str] = []
    if not isinstance(small, Mapping) or not isinstance(small.get("weight"), Mapping):
        return [f"{small_path}: not a small model (no 'weight')"]
    if "model_hash" in small:  # Applio
        if small.get("epoch") != epoch or small.get("step") != step:
            problems.append(
                f"metadata names epoch {small.get('epoch')} step {small.get('step')}, "
                f"the G file is epoch {epoch} step {step}"
            )
    elif small.get("info") != f"{epoch}epoch":
        problems.append(f"info is {small.get('info')!r}, expected '{epoch}epoch'")
    weight, model = small["weight"], g["model"]
    want = [k for k in model if "enc_q" not in k]
    if list(weight) != want:
        missing, extra = set(want) - set(weight), set(weight) - set(want)
        problems.append(f"weight keys differ ({len(missing)} missing, {len(extra)} extra)")
        return problems
    small_pages, g_pages = PageReleaser(small_path), PageReleaser(g_path)
    for key in want:
        mine, source = weight[key], model[key]
        expected = source.half()
        if mine.dtype != expected.dtype or not mine.equal(expected):
            problems.append(f"tensor {key} differs from the fp16 conversion of the G file")
            if len(problems) >= 5:
                break
        small_pages.release(mine)
        g_pages.release(source)
    return problems


def epoch_of(g_path: str) -> int:
    """The epoch (``iteration``) stored in a big checkpoint, read without touching tensors."""
    check_readable(g_path)
    ckpt = load(g_path)
    return int(ckpt.get("iteration", 0)) if isinstance(ckpt, Mapping) else 0


# ----------------------------------------------------------------- info


def info(path: str) -> dict[str, Any]:
    """What a checkpoint is, read through mmap (optimizer tensors are never touched)."""
    path = os.path.abspath(path)
    check_readable(path)
    obj = load(path)
    size = LOCAL.stat(LOCAL.realpath(path)).size
    if not isinstance(obj, Mapping):
        raise JanitorError(f"{path}: not a VITS checkpoint (top level is {type(obj).__name__})")
    name = os.path.basename(path)
    if "weight" in obj and "config" in obj:
        weight = obj["weight"]
        dtypes = sorted({str(v.dtype).replace("torch.", "") for v in weight.values()})
        meta = {k: v for k, v in obj.items() if k != "weight"}
        fmt = "applio" if "model_hash" in obj else "rvc"
        return {
            "path": path,
            "kind": "small",
            "format": fmt,
            "size": size,
            "tensors": len(weight),
            "dtypes": dtypes,
            "parameters": sum(int(v.numel()) for v in weight.values()),
            "metadata": meta,
        }
    model = obj.get("model")
    if not isinstance(model, Mapping):
        raise JanitorError(f"{path}: not a VITS checkpoint (no 'model' or 'weight')")
    m = BIG_RE.match(name)
    kind = m["prefix"] if m else ("G" if is_generator(_shapes(model)) else "D")
    latest = bool(m and int(m["num"]) == PROFILES["applio"].latest_constant)
    out: dict[str, Any] = {
        "path": path,
        "kind": kind,
        "size": size,
        "epoch": obj.get("iteration"),
        "step": int(m["num"]) if m and not latest else None,
        "latest_only": latest,
        "parameters": sum(int(v.numel()) for v in model.values() if hasattr(v, "numel")),
        "optimizer_state": isinstance(obj.get("optimizer"), Mapping)
        and bool(obj["optimizer"].get("state")),
        "learning_rate": obj.get("learning_rate"),
    }
    run_dir = os.path.dirname(path)
    profile, why = trainer_of(run_dir)
    out["trainer"] = {"value": profile.name, "from": why}
    shapes = _shapes(model)
    if is_generator(shapes):
        try:
            run_config = _run_config(run_dir)[0]
            detected = detect(shapes, run_config, where=os.path.join(run_dir, "config.json"))
            out["detected"] = detected.as_dict()
        except JanitorError as exc:
            out["detected"] = {"error": str(exc)}
    return out


class TorchSmallModels:
    """``finalize``'s small-model maker: the trainer's small model of a G, found by the
    trainer's naming or extracted, then verified tensor by tensor against the G."""

    def ensure(self, g_path: str, dry_run: bool) -> SmallModelCheck:
        done = extract_one(g_path, Options(skip_existing=True, dry_run=dry_run))
        action = "exists" if done.skipped else ("extract" if done.planned else "extracted")
        problems: tuple[str, ...] = ()
        if not done.planned:
            problems = tuple(verify_small(done.output, g_path, epoch_of(g_path), done.step))
        return SmallModelCheck(done.output, done.epoch, done.step, action, problems)
