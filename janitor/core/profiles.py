"""Trainer profiles: what each trainer writes, declared as data.

Discovery, policy, extraction and watch read these; adding a trainer means adding a profile
(naming, which prefixes make one set, protected steps, the "latest only" constant, where
small models live, how the run folder is recognised), not touching the engine.
"""

from __future__ import annotations

import os
import re

from janitor.domain.profile import (
    APPLIO_SMALL,
    BIG_RE,
    GPT_SOVITS_SMALL,
    LIGHTNING_RE,
    LOOKALIKE_RE,
    RVC_SMALL,
    SmallModelPattern,
    TrainerProfile,
)

__all__ = [
    "APPLIO_SMALL",
    "BIG_RE",
    "GPT_SOVITS_SMALL",
    "LIGHTNING_RE",
    "LOOKALIKE_RE",
    "RVC_SMALL",
    "SmallModelPattern",
    "TrainerProfile",
    "PROFILES",
    "detect",
]

_DATA_DIRS = frozenset(
    {
        "sliced_audios", "sliced_audios_16k", "f0", "f0_voiced", "extracted", "wavs",
        "0_gt_wavs", "1_16k_wavs", "2a_f0", "2b-f0nsf", "3_feature256", "3_feature768",
        "2-name2text", "3-bert", "4-cnhubert", "5-wav32k", "raw", "dataset", "filelists",
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
    small_models=(RVC_SMALL,),
    small_model_dirs=(os.path.join("..", "..", "assets", "weights"),),
    extract="rvc",
    skip_dirs=_DATA_DIRS,
)
SOVITS = TrainerProfile(
    name="so-vits-svc",
    label="so-vits-svc",
    latest_constant=None,
    folder_re=re.compile(r"^[0-9]+k$"),
    parent_re=re.compile(r"^logs$"),
    small_models=(),
    extract=None,
    extract_refusal=(
        "so-vits-svc has no separate small-model format: its release file is the G without "
        "enc_q and optimizer, made by so-vits-svc's compress_model.py; janitor writes "
        "Applio/RVC small models only (--format applio|rvc if this G is RVC-compatible)"
    ),
    skip_dirs=_DATA_DIRS,
)
BERT_VITS2 = TrainerProfile(
    name="bert-vits2",
    label="Bert-VITS2",
    set_prefixes=("G", "D", "WD", "DUR"),
    latest_constant=None,
    marker_prefixes=("WD_", "DUR_"),
    folder_re=re.compile(r"^models$"),
    ancestor="Data",
    small_models=(),
    extract=None,
    extract_refusal="Bert-VITS2 models have no separate small-model format janitor can write",
    skip_dirs=_DATA_DIRS,
)
GPT_SOVITS_S2 = TrainerProfile(
    name="gpt-sovits",
    label="GPT-SoVITS (SoVITS stage)",
    latest_constant=233333333333,
    folder_re=re.compile(r"^logs_s2"),
    small_models=(GPT_SOVITS_SMALL,),
    small_model_dirs=tuple(
        os.path.join("..", "..", "..", d)
        for d in ("SoVITS_weights", "SoVITS_weights_v2", "SoVITS_weights_v3", "SoVITS_weights_v4")
    ),
    extract=None,
    extract_refusal="GPT-SoVITS small weights store a pickled config object and a replaced "
    "zip header; janitor reports them but does not write them",
    skip_dirs=_DATA_DIRS,
)
GPT_SOVITS_S1 = TrainerProfile(
    name="gpt-sovits-s1",
    label="GPT-SoVITS (GPT stage)",
    set_prefixes=("GPT",),
    big_re=LIGHTNING_RE,
    prefix="GPT",
    latest_constant=None,
    base_steps=frozenset(),
    folder_re=re.compile(r"^ckpt$"),
    parent_re=re.compile(r"^logs_s1"),
    small_models=(),
    extract=None,
    extract_refusal="GPT-stage Lightning checkpoints have no small-model format in janitor",
    skip_dirs=_DATA_DIRS,
)
# Unknown layouts: every VITS-family prefix belongs to its step's set (Bert-VITS2 style).
GENERIC = TrainerProfile(
    name="generic", label="generic VITS", set_prefixes=("G", "D", "DUR", "WD"), skip_dirs=_DATA_DIRS
)

PROFILES: dict[str, TrainerProfile] = {
    p.name: p for p in (APPLIO, RVC, SOVITS, BERT_VITS2, GPT_SOVITS_S2, GPT_SOVITS_S1, GENERIC)
}
# Most specific first: folder names and markers before the generic fallback.
_DETECTION_ORDER = (GPT_SOVITS_S1, GPT_SOVITS_S2, BERT_VITS2, APPLIO, RVC, SOVITS)
ALL_SKIP_DIRS: frozenset[str] = frozenset().union(*(p.skip_dirs for p in PROFILES.values()))


def _place_matches(profile: TrainerProfile, folder: str) -> str | None:
    """Why the folder's own place identifies ``profile`` (e.g. "folder logs/44k/"), or None."""
    parts = folder.rstrip(os.sep).split(os.sep)
    base, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
    if profile.folder_re is None or not profile.folder_re.match(base):
        return None
    if profile.parent_re is not None and not profile.parent_re.match(parent):
        return None
    if profile.ancestor and profile.ancestor not in parts[:-1]:
        return None
    return f"folder {parent}/{base}/"


def detect(names: set[str], dirs: set[str], folder: str = "") -> tuple[TrainerProfile, str]:
    """Pick a profile from a run folder's file and folder names and its place; say why."""
    for profile in _DETECTION_ORDER:
        where = _place_matches(profile, folder) if folder else None
        if where:
            return profile, where
        for marker in profile.marker_files:
            if marker in names:
                return profile, f"{marker} present"
        if profile.marker_prefixes and any(n.startswith(profile.marker_prefixes) for n in names):
            return profile, f"{' / '.join(profile.marker_prefixes)} files present"
        for marker in profile.marker_dirs:
            if marker in dirs:
                return profile, f"{marker}/ present"
    if any(APPLIO_SMALL.regex.match(n) for n in names) and "config.json" in names:
        return APPLIO, "Applio-named small models beside config.json"
    return GENERIC, "no trainer-specific files; G_<step>.pth layout"


def _union(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern matching what any of ``patterns`` matches (group names dropped)."""
    return re.compile(
        "|".join(f"(?:{re.sub(r'[(][?]P<[a-z]+>', '(', p.pattern)})" for p in patterns)
    )


# Any name some profile would read (a big checkpoint or a small model): the scan reads the
# ends of these files while it lists a folder, before the folder's profile is known.
PROBE_RE = _union(
    list(dict.fromkeys(p.big_re for p in PROFILES.values()))
    + list(dict.fromkeys(sm.regex for p in PROFILES.values() for sm in p.small_models))
)


def looks_like_checkpoint_folder(names: set[str]) -> bool:
    """Cheap pre-check before detection: any name any profile would take as big."""
    return any(BIG_RE.match(n) or LIGHTNING_RE.match(n) for n in names)
