"""extract-small for the general frameworks: the inference-only part of a checkpoint.

- Hugging Face Trainer ``checkpoint-<step>/``: a folder ``small-checkpoint-<step>/`` beside
  it with the model's weights and configs only (config, generation config, weights or
  shards with their index, tokenizer/processor files, PEFT adapters); no optimizer,
  scheduler, scaler, rng or trainer state, no DeepSpeed/FSDP subfolders. Files are hard
  links where the file system allows it, else copies: what ``from_pretrained`` loads.
- PyTorch Lightning ``*.ckpt``: ``<stem>.small.ckpt`` holding ``state_dict`` (and the
  hyper-parameters, so ``LightningModule.load_from_checkpoint`` rebuilds the module), or
  with ``--format safetensors`` ``<stem>.small.safetensors`` holding the state dict.

Written into a temp folder beside the output, fsynced, published without ever replacing
what is there (``--force`` replaces); then verified tensor by tensor against the source,
as ``finalize`` does.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from janitor.core.frameworks import (
    SAFETENSORS_SUFFIX,
    TRAINER_STATE,
    parse_safetensors_header,
    safetensors_header_length,
)
from janitor.domain.errors import JanitorError, UsageError
from janitor.domain.profile import HF_CHECKPOINT_RE, LIGHTNING_LAST_RE, LIGHTNING_RE
from janitor.storage import layout, locate
from janitor.storage.fs import LOCAL, FileSystem
from janitor.torchio.extract import (
    DeferredInterrupt,
    Options,
    _is_dir,
    atomic_save,
    check_readable,
    load_checkpoint,
)

FRAMEWORK_FORMATS = ("ckpt", "safetensors")
# What the HF Trainer adds to a model folder to resume training: never part of a small model.
HF_TRAINING_STATE = frozenset(
    {"optimizer.pt", "scheduler.pt", "scaler.pt", TRAINER_STATE, "training_args.bin", "latest",
     "zero_to_fp32.py", "optimizer.bin", "scheduler.bin"}
)  # fmt: skip
_HF_WEIGHTS = ("model", "pytorch_model", "adapter_model", "tf_model", "flax_model")
# Lightning's keys that only resuming needs.
PL_KEEP = ("epoch", "global_step", "pytorch-lightning_version", "state_dict", "hparams_name",
           "hyper_parameters")  # fmt: skip

_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
    "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}  # fmt: skip


@dataclass(frozen=True)
class FrameworkExtract:
    source: str
    output: str
    format: str  # hf | ckpt | safetensors
    step: int | None
    size: int
    tensors: int  # verified equal to the source, one by one
    linked: int = 0  # HF: files hard-linked (the rest copied)
    copied: int = 0
    notes: tuple[str, ...] = field(default=())
    skipped: bool = False
    planned: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "output": self.output, "format": self.format,
            "step": self.step, "size": self.size, "tensors": self.tensors,
            "linked": self.linked, "copied": self.copied, "notes": list(self.notes),
            "skipped": self.skipped, "planned": self.planned,
        }  # fmt: skip


def is_framework_input(path: str) -> bool:
    """An HF checkpoint folder or a Lightning .ckpt (by name; links the user typed followed)."""
    name = os.path.basename(os.path.normpath(path))
    if name.endswith(".ckpt") and _gpt_sovits_stage1(path):
        return False  # GPT-SoVITS's own GPT weights (janitor.torchio.exports)
    return bool(
        HF_CHECKPOINT_RE.match(name) or LIGHTNING_RE.match(name) or LIGHTNING_LAST_RE.match(name)
    ) or (name.endswith(".ckpt") and not name.endswith(".small.ckpt"))


def _gpt_sovits_stage1(path: str) -> bool:
    """A checkpoint in GPT-SoVITS's logs/<exp>/logs_s1_<ver>/ckpt/ (found by its place)."""
    from janitor.core.profiles import GPT_SOVITS_S1, _place_matches

    folder = os.path.dirname(os.path.abspath(os.path.normpath(path)))
    return _place_matches(GPT_SOVITS_S1, folder) is not None


def extract_framework(path: str, opts: Options) -> FrameworkExtract:
    if locate.is_url(path):
        raise UsageError(
            f"{path}: from object storage extract-small reads trainers' G files and "
            "GPT-SoVITS .ckpt files; copy an HF or Lightning checkpoint first"
        )
    path = os.path.abspath(os.path.normpath(path))
    if opts.format is not None and opts.format not in FRAMEWORK_FORMATS:
        raise UsageError(f"--format {opts.format}: for {path} use ckpt or safetensors")
    for flag, value in (("--sr", opts.sr), ("--version", opts.version), ("--f0", opts.f0),
                        ("--vocoder", opts.vocoder), ("--author", opts.author)):  # fmt: skip
        if value is not None:
            raise UsageError(f"{flag} is for VITS small models, not {os.path.basename(path)}")
    with DeferredInterrupt() as interrupts:
        if HF_CHECKPOINT_RE.match(os.path.basename(path)):
            if opts.format is not None:
                raise UsageError("--format: an HF checkpoint folder's small model is a folder")
            return _extract_hf(path, opts)
        return _extract_lightning(path, opts, interrupts)


# ----------------------------------------------------------------- Hugging Face Trainer


def _hf_set(folder: str):
    """The folder as janitor's scan sees it: a complete HF checkpoint set, or an error."""
    from janitor.storage.scan import scan  # here: extract-small of a G never loads the scanner

    try:
        report = scan([os.path.dirname(folder)], trainer="hf-trainer")
    except OSError as exc:
        raise JanitorError(f"{folder}: cannot read ({exc.strerror})") from None
    for run in report.runs:
        for s in run.sets:
            if s.folder == folder:
                if s.status != "complete":
                    bad = next((f for f in s.files if not f.complete), None)
                    why = s.problem or (f"{bad.name}: {bad.problem}" if bad else s.status)
                    raise JanitorError(f"{folder}: not a complete checkpoint ({why})")
                return s
    raise UsageError(f"{folder}: no such checkpoint folder")


def _hf_inference_files(s) -> list[str]:
    """Top-level files of the folder that ``from_pretrained`` needs (weights, configs,
    tokenizer): everything but the training state and subfolders."""
    keep = []
    for f in s.files:
        rel = f.name.split("/", 1)[1]
        if "/" in rel or rel.startswith(".") or rel in HF_TRAINING_STATE:
            continue
        if rel.startswith("rng_state") and rel.endswith(".pth"):
            continue
        keep.append(rel)
    return sorted(keep)


def _extract_hf(folder: str, opts: Options, fs: FileSystem = LOCAL) -> FrameworkExtract:
    s = _hf_set(folder)
    files = _hf_inference_files(s)
    if not any(n.startswith(_HF_WEIGHTS) for n in files) or not any(
        n in ("config.json", "adapter_config.json") for n in files
    ):
        raise UsageError(f"{folder}: no model weights and config.json in it (found: {files})")
    output = opts.output or os.path.join(os.path.dirname(folder), f"small-{s.name}")
    if opts.output and _is_dir(output):
        output = os.path.join(output, f"small-{s.name}")
    output = os.path.abspath(output)
    if fs.exists(output) and not opts.force:
        if opts.skip_existing:
            return FrameworkExtract(folder, output, "hf", s.number, 0, 0, skipped=True)
        raise JanitorError(f"{output}: exists; pass --force to overwrite (or --skip-existing)")
    if opts.dry_run:
        return FrameworkExtract(folder, output, "hf", s.number, 0, 0, planned=True)
    parent = os.path.dirname(output)
    linked = copied = size = 0
    try:
        with fs.temp_dir(parent, layout.TMP_PREFIX) as tmp:
            staged = os.path.join(tmp, os.path.basename(output))
            fs.makedirs(staged)
            for name in files:
                was_linked = fs.link_or_copy(os.path.join(folder, name), os.path.join(staged, name))
                linked, copied = linked + was_linked, copied + (not was_linked)
                size += fs.stat(os.path.join(staged, name)).size
            if opts.force and fs.exists(output):
                raise UsageError(f"{output}: --force does not replace a folder; remove it first")
            if not fs.publish(staged, output, replace=False):
                raise JanitorError(f"{output}: appeared while extracting; left as it is")
    except OSError as exc:
        raise JanitorError(f"cannot write {output}: {exc.strerror or exc}") from None
    tensors = _verify_hf(folder, output, [n for n in files if n.startswith(_HF_WEIGHTS)])
    notes = () if copied == 0 else (f"{copied} files copied: no hard links here",)
    return FrameworkExtract(folder, output, "hf", s.number, size, tensors, linked, copied, notes)


def read_safetensors(path: str) -> dict[str, Any]:
    """Tensors of a safetensors file, memory-mapped (janitor's own reader: the safetensors
    package is not needed)."""
    import torch

    first8, _, size = LOCAL.read_ends(path, 8, 0)
    n = safetensors_header_length(first8)
    head, _, _ = LOCAL.read_ends(path, 8 + n, 0)
    header = parse_safetensors_header(head)
    data = torch.from_file(path, shared=False, size=size, dtype=torch.uint8)
    out = {}
    for name, info in header.items():
        start, end = (8 + n + int(x) for x in info["data_offsets"])
        dtype = getattr(torch, _ST_DTYPES[info["dtype"]])
        out[name] = data[start:end].view(dtype).reshape(info["shape"])
    return out


def _read_weights(path: str) -> Mapping[str, Any]:
    if path.endswith(SAFETENSORS_SUFFIX):
        return read_safetensors(path)
    if path.endswith(".json"):  # a shard index: its tensors are in the shards
        return {}
    obj = load_checkpoint(path)
    return obj if isinstance(obj, Mapping) else {}


def _same_tensors(a: Mapping[str, Any], b: Mapping[str, Any], where: str) -> int:
    if list(a) != list(b):
        raise JanitorError(f"{where}: tensor names differ from the source; output not verified")
    for key in a:
        x, y = a[key], b[key]
        if x.dtype != y.dtype or x.shape != y.shape or not x.equal(y):
            raise JanitorError(f"{where}: tensor {key} differs from the source")
    return len(a)


def _verify_hf(source: str, output: str, weights: list[str]) -> int:
    return sum(
        _same_tensors(
            _read_weights(os.path.join(source, n)), _read_weights(os.path.join(output, n)),
            os.path.join(output, n),
        )
        for n in weights
    )  # fmt: skip


# ----------------------------------------------------------------- Lightning


def _small_name(path: str, fmt: str) -> str:
    stem = os.path.basename(path)[: -len(".ckpt")]
    return os.path.join(os.path.dirname(path), f"{stem}.small.{fmt}")


def _step_of(name: str) -> int | None:
    m = LIGHTNING_RE.match(name)
    return int(m["num"]) if m else None


def _extract_lightning(path: str, opts: Options, interrupts: DeferredInterrupt) -> FrameworkExtract:
    if not path.endswith(".ckpt"):
        raise UsageError(f"{path}: not a Lightning .ckpt file")
    check_readable(path)
    ckpt = load_checkpoint(path)
    interrupts.check()
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise UsageError(f"{path}: not a Lightning checkpoint (no state_dict)")
    fmt = opts.format or "ckpt"
    output = opts.output or _small_name(path, fmt)
    if _is_dir(output):
        output = os.path.join(output, os.path.basename(_small_name(path, fmt)))
    output = os.path.abspath(output)
    step = ckpt.get("global_step") if isinstance(ckpt.get("global_step"), int) else None
    step = step if step is not None else _step_of(os.path.basename(path))
    if LOCAL.exists(output) and not opts.force:
        if opts.skip_existing:
            return FrameworkExtract(path, output, fmt, step, 0, 0, skipped=True)
        raise JanitorError(f"{output}: exists; pass --force to overwrite (or --skip-existing)")
    if opts.dry_run:
        return FrameworkExtract(path, output, fmt, step, 0, 0, planned=True)
    if fmt == "safetensors":
        size = _save_safetensors(state, output, opts.force)
    else:
        small = {k: ckpt[k] for k in PL_KEEP if k in ckpt}
        size = atomic_save(small, output, interrupts, replace=opts.force)
    if size is None:
        raise JanitorError(f"{output}: appeared while extracting; left as it is")
    written = (
        read_safetensors(output) if fmt == "safetensors" else load_checkpoint(output)["state_dict"]
    )
    tensors = _same_tensors(
        {k: v for k, v in state.items() if hasattr(v, "dtype")}, written, output
    )
    return FrameworkExtract(path, output, fmt, step, size, tensors)


def safetensors_bytes(state: Mapping[str, Any]) -> bytes:
    """A state dict as a safetensors file (header, 8-byte aligned, then the data)."""
    import torch

    inv = {v: k for k, v in _ST_DTYPES.items()}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        dtype = inv[str(t.dtype).replace("torch.", "")]
        header[name] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _save_safetensors(state: Mapping[str, Any], output: str, replace: bool) -> int | None:
    data = safetensors_bytes(state)
    folder = os.path.dirname(output)
    try:
        with LOCAL.temp_dir(folder, layout.TMP_PREFIX) as tmp:
            staged = os.path.join(tmp, os.path.basename(output))
            LOCAL.write_atomic(staged, data)
            return len(data) if LOCAL.publish(staged, output, replace=replace) else None
    except OSError as exc:
        raise JanitorError(f"cannot write {output}: {exc.strerror or exc}") from None
