"""Trainer profiles: what each trainer writes, declared as data.

Discovery, policy, extraction and watch read these; adding a trainer means adding a profile
(naming, which prefixes make one set, protected steps, the "latest only" constant, where
small models live, how the run folder is recognised), not touching the engine.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from itertools import repeat

from janitor.domain.profile import (
    APPLIO_SMALL,
    BIG_RE,
    DEEPSPEED_TAG_RE,
    GPT_SMALL,
    GPT_SOVITS_SMALL,
    HF_CHECKPOINT_RE,
    LIGHTNING_LAST_RE,
    LIGHTNING_RE,
    LOOKALIKE_RE,
    RELEASE_SMALL,
    RVC_SMALL,
    SmallModelPattern,
    TrainerProfile,
)

__all__ = [
    "APPLIO_SMALL",
    "BIG_RE",
    "GPT_SMALL",
    "GPT_SOVITS_SMALL",
    "RELEASE_SMALL",
    "LIGHTNING_RE",
    "LOOKALIKE_RE",
    "RVC_SMALL",
    "SmallModelPattern",
    "TrainerProfile",
    "PROFILES",
    "detect",
    "small_match",
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
    small_models=(RELEASE_SMALL,),
    extract="release",  # compress_model.py's <stem>_release[_half].pth
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
    small_models=(RELEASE_SMALL,),
    extract="release",  # compress_model.py's <stem>_release[_half].pth
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
        for d in (
            "SoVITS_weights",
            "SoVITS_weights_v2",
            "SoVITS_weights_v3",
            "SoVITS_weights_v4",
            "SoVITS_weights_v2Pro",
            "SoVITS_weights_v2ProPlus",
        )
    ),  # fmt: skip
    extract="gpt-sovits",  # process_ckpt.savee's weights, version header included
    skip_dirs=_DATA_DIRS,
)
# PyTorch Lightning ModelCheckpoint: one .ckpt file per set (a name with step=<S>), last.ckpt
# (a copy or a symlink) is what fit(ckpt_path="last") resumes from: always kept, with its
# target; --keep-best reads metric values from the names when no event file has them.
LIGHTNING = TrainerProfile(
    name="lightning",
    label="PyTorch Lightning",
    set_prefixes=("ckpt",),
    big_re=LIGHTNING_RE,
    prefix="ckpt",
    latest_constant=None,
    latest_re=LIGHTNING_LAST_RE,
    base_steps=frozenset(),
    small_models=(),
    extract="lightning",
    metric_source="file-name",
    resume="last-file",
    framework=True,
)
# GPT-SoVITS's GPT stage writes Lightning checkpoints: the same profile, found by its place.
GPT_SOVITS_S1 = replace(
    LIGHTNING,
    name="gpt-sovits-s1",
    label="GPT-SoVITS (GPT stage)",
    set_prefixes=("GPT",),
    prefix="GPT",
    folder_re=re.compile(r"^ckpt$"),
    parent_re=re.compile(r"^logs_s1"),
    small_models=(GPT_SMALL,),
    small_model_dirs=tuple(
        os.path.join("..", "..", "..", "..", d)
        for d in (
            "GPT_weights",
            "GPT_weights_v2",
            "GPT_weights_v3",
            "GPT_weights_v4",
            "GPT_weights_v2Pro",
            "GPT_weights_v2ProPlus",
        )
    ),  # fmt: skip
    extract="gpt-sovits",  # the s1_train.py callback's GPT weights
    framework=False,
    skip_dirs=_DATA_DIRS,
)
# Frameworks whose sets are folders: no latest-only constant, no bases, no small models
# beside the run.
_FOLDER_SETS = TrainerProfile(
    name="folders",
    label="checkpoint folders",
    set_prefixes=("part",),
    latest_constant=None,
    base_steps=frozenset(),
    small_models=(),
    layout="folders",
    framework=True,
)
# Hugging Face Trainer: output_dir/checkpoint-<step>/ folders; trainer_state.json is written
# last, so a folder without a valid one for its step is half written; get_last_checkpoint
# resumes from the highest number whatever its state.
HF_TRAINER = replace(
    _FOLDER_SETS,
    name="hf-trainer",
    label="Hugging Face Trainer",
    set_dir_re=HF_CHECKPOINT_RE,
    complete_by="trainer-state",
    extract="hf",
    metric_source="trainer-state",
    resume="highest-folder",
)
# DeepSpeed engine.save_checkpoint: save_dir/global_step<N>/ folders, then `latest` naming
# the tag (written last): the tag it names is what load_checkpoint resumes from.
DEEPSPEED = replace(
    _FOLDER_SETS,
    name="deepspeed",
    label="DeepSpeed",
    set_dir_re=DEEPSPEED_TAG_RE,
    complete_by="pointer",
    pointer_file="latest",
    extract=None,
    extract_refusal="DeepSpeed shards are consolidated by DeepSpeed's own zero_to_fp32.py; "
    "janitor does not write them",
    resume="pointer",
)
# Unknown layouts: every VITS-family prefix belongs to its step's set (Bert-VITS2 style).
GENERIC = TrainerProfile(
    name="generic", label="generic VITS", set_prefixes=("G", "D", "DUR", "WD"), skip_dirs=_DATA_DIRS
)

PROFILES: dict[str, TrainerProfile] = {
    p.name: p
    for p in (
        APPLIO, RVC, SOVITS, BERT_VITS2, GPT_SOVITS_S2, GPT_SOVITS_S1, HF_TRAINER, LIGHTNING,
        DEEPSPEED, GENERIC,
    )
}  # fmt: skip
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


def _examples(found: list[str]) -> str:
    found = sorted(found, key=lambda n: (len(n), n))
    if len(found) <= 3:
        return ", ".join(found)
    return f"{found[0]} ... {found[-1]}, {len(found)} in all"


def _framework(names: set[str], dirs: set[str]) -> tuple[TrainerProfile, str] | None:
    """HF Trainer, DeepSpeed or Lightning, from what the folder holds; only where no VITS
    checkpoint is (a VITS run is never taken for a framework run, nor the reverse)."""
    if any(BIG_RE.match(n) for n in names):
        return None
    hf = [d for d in dirs if HF_TRAINER.match_set_dir(d) is not None]
    if hf:
        return HF_TRAINER, f"checkpoint-<step>/ folders ({_examples(hf)})"
    tags = [d for d in dirs if DEEPSPEED.match_set_dir(d) is not None]
    if tags:
        latest = " and a latest file" if DEEPSPEED.pointer_file in names else ""
        return DEEPSPEED, f"global_step<N>/ folders ({_examples(tags)}){latest}"
    ckpts = [n for n in names if LIGHTNING.match_big(n) or LIGHTNING.match_latest(n)]
    if ckpts:
        return LIGHTNING, f"Lightning .ckpt files ({_examples(ckpts)})"
    return None


def detect(
    names: set[str], dirs: set[str], folder: str = "", links: set[str] = frozenset()
) -> tuple[TrainerProfile, str]:
    """Pick a profile from a run folder's file and folder names and its place; say why.
    ``links`` (symlinks, never followed) count for Lightning's last.ckpt only."""
    place = _place_matches(GPT_SOVITS_S1, folder) if folder else None
    if place:
        return GPT_SOVITS_S1, place
    framework = _framework(names | {n for n in links if LIGHTNING.match_latest(n)}, dirs)
    if framework:
        return framework
    for profile in _DETECTION_ORDER:
        where = _place_matches(profile, folder) if folder else None
        if where:
            return profile, where
        for marker in profile.marker_files:
            if marker in names:
                return profile, f"{marker} present"
        if profile.marker_prefixes and any(
            map(str.startswith, names, repeat(profile.marker_prefixes))
        ):  # map: no Python frame per name (a run folder holds thousands)
            return profile, f"{' / '.join(profile.marker_prefixes)} files present"
        for marker in profile.marker_dirs:
            if marker in dirs:
                return profile, f"{marker}/ present"
    if "config.json" in names and any(map(APPLIO_SMALL.regex.match, names)):
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
    return any(
        BIG_RE.match(n) or LIGHTNING_RE.match(n) or LIGHTNING_LAST_RE.match(n) for n in names
    )


def run_folder_of(path: str) -> str:
    """The run folder a written file belongs to: its folder, or, for a file inside a
    checkpoint folder (HF checkpoint-<step>/, DeepSpeed global_step<N>/, a tag folder inside
    an HF checkpoint folder as the Trainer writes under DeepSpeed), the folder holding it."""
    parent = os.path.dirname(path)
    if HF_CHECKPOINT_RE.match(os.path.basename(parent)):
        return os.path.dirname(parent)
    if DEEPSPEED_TAG_RE.match(os.path.basename(parent)):
        owner = os.path.dirname(parent)
        return os.path.dirname(owner) if HF_CHECKPOINT_RE.match(os.path.basename(owner)) else owner
    return parent


def small_match(profile: TrainerProfile, name: str):
    """(format, match) of the first small-model pattern of ``profile`` that ``name`` matches."""
    for pattern in profile.small_models:
        m = pattern.regex.match(name)
        if m:
            return pattern.format, m
    return None
