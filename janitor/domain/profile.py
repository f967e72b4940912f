"""What a trainer writes, as a data type: checkpoint and small-model names, which prefixes
make one set, protected steps, where small models live, how a run folder is recognised.
The profiles themselves (Applio, RVC WebUI, ...) are declared in ``janitor.core.profiles``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Big checkpoint names: <PREFIX>_<N>.pth with N a plain decimal (no sign, no leading zero,
# no exponent). Anything else that merely looks similar (G_best.pth, G_1000_backup.pth,
# G_-1.pth, G_1e5.pth, G_100.PTH) is reported as ignored, never a candidate.
BIG_RE = re.compile(r"^(?P<prefix>G|D|DUR|WD)_(?P<num>0|[1-9][0-9]*)\.pth$")
LOOKALIKE_RE = re.compile(r"^(G|D|DUR|WD)_.*\.pth$", re.IGNORECASE)
# GPT-SoVITS's GPT stage: PyTorch Lightning checkpoints named by epoch and step.
LIGHTNING_RE = re.compile(r"^epoch=(?P<epoch>0|[1-9][0-9]*)-step=(?P<num>0|[1-9][0-9]*)\.ckpt$")


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
