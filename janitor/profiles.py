"""Trainer profiles: what each trainer writes, declared as data.

Discovery, policy, extraction and watch read these; adding a trainer means adding a profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Big checkpoint names: <PREFIX>_<N>.pth with N a plain decimal (no sign, no leading zero,
# no exponent). Anything else that merely looks similar (G_best.pth, G_1000_backup.pth,
# G_-1.pth, G_1e5.pth, G_100.PTH) is reported as ignored, never a candidate.
BIG_RE = re.compile(r"^(?P<prefix>G|D|DUR|WD)_(?P<num>0|[1-9][0-9]*)\.pth$")
LOOKALIKE_RE = re.compile(r"^(G|D|DUR|WD)_.*\.pth$", re.IGNORECASE)


@dataclass(frozen=True)
class SmallModelPattern:
    format: str  # "applio" | "rvc"
    regex: re.Pattern[str]


APPLIO_SMALL = SmallModelPattern(
    "applio", re.compile(r"^(?P<name>.+)_(?P<epoch>[0-9]+)e_(?P<step>[0-9]+)s\.pth$")
)
RVC_SMALL = SmallModelPattern(
    "rvc", re.compile(r"^(?P<name>.+)_e(?P<epoch>[0-9]+)_s(?P<step>[0-9]+)\.pth$")
)


@dataclass(frozen=True)
class TrainerProfile:
    name: str
    label: str
    # Prefixes whose files of one step form one set, kept or removed together.
    set_prefixes: tuple[str, ...] = ("G", "D")
    # The trainer's "save only latest" file number (not a step).
    latest_constant: int | None = 2333333
    # Steps that hold pretrained base models placed by the user: never candidates.
    base_steps: frozenset[int] = frozenset({0})
    small_models: tuple[SmallModelPattern, ...] = (APPLIO_SMALL, RVC_SMALL)
    # Files in the run folder whose presence identifies this trainer.
    marker_files: tuple[str, ...] = ()
    marker_dirs: tuple[str, ...] = ()
    # Data folders inside a run that never hold checkpoints: not walked (they hold
    # thousands of audio/feature files).
    skip_dirs: frozenset[str] = field(default_factory=frozenset)


_DATA_DIRS = frozenset(
    {
        "sliced_audios", "sliced_audios_16k", "f0", "f0_voiced", "extracted", "wavs",
        "0_gt_wavs", "1_16k_wavs", "2a_f0", "2b-f0nsf", "3_feature256", "3_feature768",
    }
)  # fmt: skip

APPLIO = TrainerProfile(
    name="applio",
    label="Applio",
    marker_files=("model_info.json",),
    marker_dirs=("sliced_audios", "extracted"),
    skip_dirs=_DATA_DIRS,
)
RVC = TrainerProfile(
    name="rvc",
    label="RVC WebUI",
    marker_dirs=("0_gt_wavs", "1_16k_wavs", "3_feature768", "3_feature256"),
    skip_dirs=_DATA_DIRS,
)
# Unknown layouts: every VITS-family prefix belongs to its step's set (Bert-VITS2 style).
GENERIC = TrainerProfile(
    name="generic", label="generic VITS", set_prefixes=("G", "D", "DUR", "WD"), skip_dirs=_DATA_DIRS
)

PROFILES: dict[str, TrainerProfile] = {p.name: p for p in (APPLIO, RVC, GENERIC)}
ALL_SKIP_DIRS: frozenset[str] = frozenset().union(*(p.skip_dirs for p in PROFILES.values()))


def detect(names: set[str], dirs: set[str]) -> tuple[TrainerProfile, str]:
    """Pick a profile from a run folder's file and folder names; say why."""
    for profile in (APPLIO, RVC):
        for marker in profile.marker_files:
            if marker in names:
                return profile, f"{marker} present"
        for marker in profile.marker_dirs:
            if marker in dirs:
                return profile, f"{marker}/ present"
    if any(APPLIO_SMALL.regex.match(n) for n in names) and "config.json" in names:
        return APPLIO, "Applio-named small models beside config.json"
    return GENERIC, "no trainer-specific files; G_<step>.pth layout"


def resume_number(path: str) -> int:
    """The trainer's own resume key (Applio, RVC, so-vits-svc, Bert-VITS2 all share it): the
    integer formed by concatenating every digit in the file's path."""
    digits = _NON_DIGITS.sub("", path)
    return int(digits) if digits else -1


_NON_DIGITS = re.compile(r"[^0-9]")
