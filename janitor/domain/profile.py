"""What a trainer writes, as a data type: checkpoint and small-model names, which prefixes
make one set, protected steps, where small models live, how a run folder is recognised.
The profiles themselves (Applio, RVC WebUI, ...) are declared in ``janitor.core.profiles``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# Big checkpoint names: <PREFIX>_<N>.pth with N a plain decimal (no sign, no leading zero,
# no exponent). Anything else that merely looks similar (G_best.pth, G_1000_backup.pth,
# G_-1.pth, G_1e5.pth, G_100.PTH) is reported as ignored, never a candidate.
BIG_RE = re.compile(r"^(?P<prefix>G|D|DUR|WD)_(?P<num>0|[1-9][0-9]*)\.pth$")
LOOKALIKE_RE = re.compile(r"^(G|D|DUR|WD)_.*\.pth$", re.IGNORECASE)
# PyTorch Lightning ModelCheckpoint files (also GPT-SoVITS's GPT stage): a name with a
# `step=<S>` field, e.g. epoch=3-step=400.ckpt, epoch=3-step=400-val_loss=0.12.ckpt, -v1.
# (janitor's own small models, <stem>.small.ckpt, are not checkpoints.)
LIGHTNING_RE = re.compile(
    r"^(?!.*\.small\.ckpt$)(?:.*-)?step=(?P<num>0|[1-9][0-9]*)(?:-.*)?\.ckpt$"
)
# Lightning's `last` file (save_last): last.ckpt, last-v1.ckpt, ...
LIGHTNING_LAST_RE = re.compile(r"^last(?:-v(?P<num>[1-9][0-9]*))?\.ckpt$")
# Hugging Face Trainer (`get_last_checkpoint`'s own pattern) and DeepSpeed tag folders.
HF_CHECKPOINT_RE = re.compile(r"^checkpoint-(?P<num>0|[1-9][0-9]*)$")
DEEPSPEED_TAG_RE = re.compile(r"^global_step(?P<num>0|[1-9][0-9]*)$")
# Numbers of latest-only files that carry no step (Lightning's last.ckpt): above every step.
LATEST_BASE = 10**13

SetLayout = Literal["files", "folders"]
# How a set is known to be complete: every file a whole torch zip; a folder whose
# trainer_state.json (written last by the HF Trainer) holds its step; a folder the pointer
# file (DeepSpeed's `latest`) has named.
CompleteBy = Literal["zip", "trainer-state", "pointer"]
# Where --keep-best finds metric values besides TensorBoard event files.
MetricSource = Literal["tensorboard", "trainer-state", "file-name"]
# The framework's own resume rule: the largest number formed by all digits of the path (VITS
# trainers), the highest-numbered folder (HF get_last_checkpoint), the folder a pointer file
# names (DeepSpeed), the newest last*.ckpt (Lightning ckpt_path="last").
ResumeRule = Literal["digits", "highest-folder", "pointer", "last-file"]


@dataclass(frozen=True)
class SmallModelPattern:
    format: str  # "applio" | "rvc" | "release" | "gpt-sovits"
    regex: re.Pattern[str]  # groups: name, and epoch / step where the name has them


APPLIO_SMALL = SmallModelPattern(
    "applio", re.compile(r"^(?P<name>.+)_(?P<epoch>[0-9]+)e_(?P<step>[0-9]+)s\.pth$")
)
RVC_SMALL = SmallModelPattern(
    "rvc", re.compile(r"^(?P<name>.+)_e(?P<epoch>[0-9]+)_s(?P<step>[0-9]+)\.pth$")
)
GPT_SOVITS_SMALL = SmallModelPattern(
    "gpt-sovits", re.compile(r"^(?P<name>.+)_e(?P<epoch>[0-9]+)_s(?P<step>[0-9]+)\.pth$")
)
# GPT-SoVITS GPT (stage 1) weights: GPT_weights*/<exp>-e<E>.ckpt
GPT_SMALL = SmallModelPattern("gpt-sovits", re.compile(r"^(?P<name>.+)-e(?P<epoch>[0-9]+)\.ckpt$"))
# so-vits-svc / Bert-VITS2 compress_model.py: <stem>_release[_half].pth beside the G. These
# names match the trainers' own G_*.pth globs; they are small models, never checkpoints.
RELEASE_SMALL = SmallModelPattern(
    "release",
    re.compile(r"^(?P<name>G_(?P<step>0|[1-9][0-9]*)|.+?)_release(?:_half)?\.pth$"),
)


@dataclass(frozen=True)
class TrainerProfile:
    name: str
    label: str
    # Prefixes whose files of one step form one set, kept or removed together.
    set_prefixes: tuple[str, ...] = ("G", "D")
    # Big checkpoint file names: groups `num` (step or constant) and `prefix` (or `prefix`
    # below for names without one).
    big_re: re.Pattern[str] = BIG_RE
    prefix: str | None = None
    # The trainer's "save only latest" file number (not a step).
    latest_constant: int | None = 2333333
    # Steps that hold pretrained base models placed by the user: never candidates.
    base_steps: frozenset[int] = frozenset({0})
    small_models: tuple[SmallModelPattern, ...] = (RELEASE_SMALL, APPLIO_SMALL, RVC_SMALL)
    # Where else small models live, relative to the run folder (beside the run).
    small_model_dirs: tuple[str, ...] = ()
    # How the run folder is recognised: files or folders in it, its own name, its parent's.
    marker_files: tuple[str, ...] = ()
    marker_prefixes: tuple[str, ...] = ()  # any file starting with one of these
    marker_dirs: tuple[str, ...] = ()
    folder_re: re.Pattern[str] | None = None
    parent_re: re.Pattern[str] | None = None
    ancestor: str | None = None  # a folder that must appear above the run folder
    # How extract-small serves this trainer: a small-model format, or why it cannot.
    extract: str | None = "applio"
    extract_refusal: str = ""
    # Data folders inside a run that never hold checkpoints: not walked.
    skip_dirs: frozenset[str] = field(default_factory=frozenset)
    # Frameworks (HF Trainer, Lightning, DeepSpeed): sets as folders, completeness, pointers.
    layout: SetLayout = "files"
    set_dir_re: re.Pattern[str] | None = None  # folder sets: the folder name, group `num`
    complete_by: CompleteBy = "zip"
    pointer_file: str | None = None  # DeepSpeed's `latest`: names the tag resumed from
    latest_re: re.Pattern[str] | None = None  # latest-only files without a step (last.ckpt)
    metric_source: MetricSource = "tensorboard"
    resume: ResumeRule = "digits"
    framework: bool = False  # a general framework (detected only where no VITS files are)

    @property
    def generator(self) -> str:
        """The prefix of the file a small model is made from (G, or GPT for Lightning)."""
        return self.set_prefixes[0]

    def match_big(self, name: str) -> tuple[str, int] | None:
        """(prefix, number) if ``name`` is one of this trainer's big checkpoint names."""
        m = self.big_re.match(name)
        if m is None:
            return None
        prefix = self.prefix or m["prefix"]
        return (prefix, int(m["num"])) if prefix in self.set_prefixes else None

    def match_latest(self, name: str) -> int | None:
        """The number of a latest-only file without a step (``last-v2.ckpt`` -> base + 2)."""
        m = self.latest_re.match(name) if self.latest_re else None
        return None if m is None else LATEST_BASE + int(m["num"] or 0)

    def match_set_dir(self, name: str) -> int | None:
        """The step of a folder set's name (``checkpoint-12`` -> 12), or None."""
        m = self.set_dir_re.match(name) if self.set_dir_re else None
        return None if m is None else int(m["num"])
