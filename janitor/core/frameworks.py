"""Format facts of the general training frameworks (Hugging Face Trainer, PyTorch Lightning,
DeepSpeed), as pure functions over bytes and names: ``trainer_state.json``, safetensors
headers, metric values in Lightning file names, the protections each framework relies on.
The storage layer reads the bytes; nothing here touches a file."""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TRAINER_STATE = "trainer_state.json"  # the HF Trainer writes it last into checkpoint-<step>/

# Protection reasons (fixed texts, like janitor.core.policy's).
HF_BEST = "best model (best_model_checkpoint in {source})"
POINTER = "named by {pointer}: {framework} resumes from it"
LINK_TARGET = 'target of the {link} symlink: fit(ckpt_path="last") resumes from it'

# A checkpoint folder holding files the framework did not write (a user's notes, samples):
# never removed with the folder, whatever the rules or waivers say.
FOREIGN_FILES = "holds files {framework} did not write: {names}"
FOREIGN_PREFIX = FOREIGN_FILES.split("{", 1)[0]

# What the HF Trainer writes into checkpoint-<step>/ (shared/formats/frameworks.md): the
# model (config, weights or shards and their index, PEFT's adapter and its README), the
# tokenizer or processor files, the training arguments and state, trainer_state.json; the
# DeepSpeed and FSDP subfolders with all they hold; safetensors' hidden temp files.
_HF_OWN_FILE = re.compile(
    r"""^(?:
      (?:generation_|adapter_|preprocessor_|processor_|video_preprocessor_)?config\.json
    | (?:model|pytorch_model|adapter_model)(?:-[0-9]+-of-[0-9]+)?\.(?:safetensors|bin)
    | (?:model|pytorch_model)\.(?:safetensors|bin)\.index\.json
    | tokenizer(?:_config)?\.json | special_tokens_map\.json | added_tokens\.json
    | vocab\.(?:json|txt) | merges\.txt | (?:spiece|tokenizer|sentencepiece\.bpe)\.model
    | chat_template\.(?:json|jinja)
    | training_args\.bin | (?:optimizer|scheduler|scaler)\.(?:pt|bin)
    | rng_state(?:_[0-9]+)?\.pth | trainer_state\.json
    | latest | zero_to_fp32\.py
    | \.tmp.*
    )$""",
    re.VERBOSE,
)
_HF_OWN_DIR = re.compile(r"^(?:global_step[0-9]+|pytorch_model_fsdp_[0-9]+|optimizer_[0-9]+)$")


def foreign_files(names: Sequence[str]) -> list[str]:
    """The files of an HF ``checkpoint-<step>/`` folder (``names`` relative to it, ``/``
    separated) that the Trainer did not write: a user's notes, samples, anything else.
    PEFT's ``README.md`` (its model card) is the framework's when ``adapter_config.json``
    is there."""
    peft = "adapter_config.json" in names
    out = []
    for name in names:
        top, _, rest = name.partition("/")
        if rest and _HF_OWN_DIR.match(top):
            continue
        if not rest and (_HF_OWN_FILE.match(top) or (peft and top == "README.md")):
            continue
        out.append(name)
    return out


def foreign_reason(framework: str, names: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )
    return FOREIGN_FILES.format(framework=framework, names=listed)


# Weight and state files whose structure is checked inside a folder set.
ZIP_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


@dataclass(frozen=True)
class TrainerState:
    global_step: int
    best_model_checkpoint: str | None  # the folder's name (checkpoint-<step>), not its path
    log_history: tuple[Mapping, ...]


def parse_trainer_state(data: bytes) -> TrainerState:
    """The parts of ``trainer_state.json`` janitor uses; ValueError if it is not one (a
    truncated write, another file)."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    step = doc.get("global_step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError("no global_step")
    best = doc.get("best_model_checkpoint")
    # Absolute or relative, possibly from before a copy or move: matched by folder name.
    best_name = re.split(r"[\\/]", best.rstrip("/\\"))[-1] if isinstance(best, str) else None
    history = doc.get("log_history")
    entries = tuple(e for e in history if isinstance(e, dict)) if isinstance(history, list) else ()
    return TrainerState(step, best_name or None, entries)


def log_history_series(history: Sequence[Mapping], key: str) -> dict[int, float]:
    """step -> value of ``key`` in ``log_history`` (evaluation entries: ``eval_loss``, ...)."""
    out: dict[int, float] = {}
    for entry in history:
        step, value = entry.get("step"), entry.get(key)
        if isinstance(step, int) and _number(value) and math.isfinite(value):
            out[step] = float(value)
    return out


def log_history_keys(history: Sequence[Mapping]) -> list[str]:
    skip = {"step", "epoch"}
    return sorted({k for e in history for k, v in e.items() if k not in skip and _number(v)})


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_FLOAT = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"


def metric_in_name(name: str, metric: str) -> float | None:
    """The value of ``metric`` in a Lightning file name (``epoch=3-step=400-val_loss=0.12
    .ckpt`` -> 0.12 for ``val_loss``; a `/` in a metric is written `_` by Lightning)."""
    for key in dict.fromkeys((metric, metric.replace("/", "_"))):
        m = re.search(rf"(?:^|-){re.escape(key)}=({_FLOAT})(?=-v[0-9]+\.ckpt$|-|\.ckpt$)", name)
        if m:
            value = float(m[1])
            return value if math.isfinite(value) else None
    return None


def safetensors_header_length(first8: bytes) -> int:
    """The JSON header's length from a safetensors file's first 8 bytes; ValueError."""
    if len(first8) < 8:
        raise ValueError("truncated: shorter than its header length")
    (n,) = struct.unpack("<Q", first8[:8])
    if n < 2 or n > SAFETENSORS_MAX_HEADER:
        raise ValueError("not a safetensors file (header length out of range)")
    return n


def safetensors_problem(head: bytes, size: int) -> str | None:
    """Why a safetensors file is not whole, or None: ``head`` is its first 8 + header
    bytes; every tensor's data must lie inside the file and the data must end where the
    file ends (safetensors writes the header first, then the data)."""
    try:
        n = safetensors_header_length(head)
    except ValueError as exc:
        return str(exc)
    if len(head) < 8 + n or size < 8 + n:
        return "truncated: inside its header"
    try:
        header = json.loads(head[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "not a safetensors file (header is not JSON)"
    if not isinstance(header, dict):
        return "not a safetensors file (header is not a JSON object)"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_number, offsets))):
            return f"not a safetensors file (no data_offsets for {name})"
        end = max(end, int(offsets[1]))
    if 8 + n + end > size:
        return f"truncated: {size:,} of {8 + n + end:,} bytes"
    if 8 + n + end < size:
        return f"{size - 8 - n - end:,} bytes after the last tensor"
    return None


def parse_safetensors_header(head: bytes) -> dict:
    """name -> {dtype, shape, data_offsets} (metadata left out); for readers."""
    n = safetensors_header_length(head)
    header = json.loads(head[8 : 8 + n])
    return {k: v for k, v in header.items() if k != "__metadata__"}
