"""Find training runs and their checkpoint sets. Torch-free; reads only names, stats and tails.

``scan(paths)`` walks the given folders (never following symlinks, never entering hidden
folders or the trainers' data folders) and returns a frozen ``ScanReport``: raw numbers only
(bytes, mtimes); formatting happens at the edge (``janitor.cli.render``).
"""

from __future__ import annotations

import errno
import os
from collections import defaultdict
from collections.abc import Container, Sequence
from dataclasses import replace

from janitor.core.frameworks import (
    HF_BEST,
    LINK_TARGET,
    POINTER,
    TRAINER_STATE,
    parse_trainer_state,
)
from janitor.core.policy import IN_FLIGHT_PROBLEM
from janitor.core.profiles import (
    ALL_SKIP_DIRS,
    BIG_RE,
    LOOKALIKE_RE,
    PROFILES,
    TrainerProfile,
    detect,
    looks_like_checkpoint_folder,
)
from janitor.core.ziptail import ZipCheck
from janitor.domain.checkpoints import (
    CheckpointFile,
    CheckpointSet,
    Ignored,
    Run,
    ScanError,
    ScanReport,
    SmallModel,
)
from janitor.domain.errors import JanitorError, UsageError, oserror_text
from janitor.storage.completeness import check_file, check_member
from janitor.storage.fs import LOCAL, Entry, FileSystem


class _Walker:
    def __init__(self, fs: FileSystem, trainer: str | None, in_flight: Container[str]) -> None:
        self.fs = fs
        self.trainer = trainer
        self.in_flight = in_flight
        self.runs: dict[str, Run] = {}
        self.errors: list[ScanError] = []
        self.seen_dirs: set[str] = set()

    def walk(self, top: str) -> None:
        stack = [top]
        while stack:
            folder = stack.pop()
            if folder in self.seen_dirs:
                continue
            self.seen_dirs.add(folder)
            try:
                entries = self.fs.listdir(folder)
            except OSError as exc:
                self.errors.append(ScanError(folder, f"cannot read folder: {oserror_text(exc)}"))
                continue
            run = self.add_run(folder, entries)
            inside = {s.folder for s in run.sets if s.folder} if run else set()
            stack.extend(
                e.path
                for e in sorted(entries, key=lambda e: e.name, reverse=True)
                if e.kind == "dir"
                and not e.name.startswith(".")
                and e.name not in ALL_SKIP_DIRS
                and e.path not in inside  # a checkpoint folder is one set, not a run
            )

    def add_run(self, folder: str, entries: Sequence[Entry], only: str | None = None) -> Run | None:
        profile, reason = pick_profile(entries, folder, self.trainer)
        names = {e.name for e in entries if e.kind == "file"}
        has_big = any(profile.match_big(n) or profile.match_latest(n) for n in names) or any(
            profile.match_set_dir(e.name) is not None for e in entries if e.kind == "dir"
        )
        if not has_big and not _own_small_models(profile, names, folder):
            return None  # e.g. RVC's assets/weights: reported beside its run, not as a run
        run = build_run(self.fs, folder, entries, profile, reason, only, self.in_flight)
        if run.sets or run.small_models:
            self.runs[folder] = run
            return run
        return None


def _own_small_models(profile: TrainerProfile, names: set[str], folder: str) -> bool:
    """A folder of small models named after itself (a finished Applio run)."""
    base = os.path.basename(folder.rstrip(os.sep))
    return any((sm := small_match(profile, n)) and sm[1]["name"] == base for n in names)


def pick_profile(
    entries: Sequence[Entry], folder: str, trainer: str | None
) -> tuple[TrainerProfile, str]:
    if trainer:
        return PROFILES[trainer], "forced with --trainer"
    names = {e.name for e in entries if e.kind == "file"}
    dirs = {e.name for e in entries if e.kind == "dir"}
    links = {e.name for e in entries if e.kind == "link"}
    return detect(names, dirs, folder, links)


def small_match(profile: TrainerProfile, name: str):
    for pattern in profile.small_models:
        m = pattern.regex.match(name)
        if m:
            return pattern.format, m
    return None


def _number(m, group: str) -> int | None:
    """The epoch or step a small model's name states (None where its naming has none)."""
    value = m.groupdict().get(group)
    return int(value) if value is not None else None


LINK_IGNORED = "symlink: never followed or removed"
BEING_WRITTEN = ZipCheck(False, IN_FLIGHT_PROBLEM)


def _check(fs: FileSystem, path: str, allow_replaced_header: bool = False) -> ZipCheck | None:
    """Completeness, or None if the file vanished since it was listed (another janitor, the
    trainer's own cleanup). A file we cannot read counts as incomplete: never removed, never
    newest."""
    try:
        return check_file(fs, path, allow_replaced_header)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return ZipCheck(False, f"cannot read: {oserror_text(exc)}")


def _small_models_beside(fs: FileSystem, folder: str, profile: TrainerProfile) -> list[SmallModel]:
    """Small models the trainer keeps outside the run folder (RVC's assets/weights,
    GPT-SoVITS's SoVITS_weights* and GPT_weights*), named after the run or a folder above it
    (the experiment)."""
    parent = os.path.dirname(folder)
    owners = {os.path.basename(p) for p in (folder, parent, os.path.dirname(parent))}
    found: list[SmallModel] = []
    for rel in profile.small_model_dirs:
        where = os.path.normpath(os.path.join(folder, rel))
        try:
            entries = fs.listdir(where)
        except OSError:
            continue
        for e in sorted(entries, key=lambda e: e.name):
            if e.kind != "file":
                continue
            sm = small_match(profile, e.name)
            final = e.name[:-4] in owners if e.name.endswith(".pth") else False
            if not (sm and sm[1]["name"] in owners) and not final:
                continue
            replaced_ok = profile.name.startswith("gpt-sovits")
            check = _check(fs, e.path, allow_replaced_header=replaced_ok)
            if check is None:
                continue
            fmt = sm[0] if sm else profile.extract or "rvc"
            epoch = _number(sm[1], "epoch") if sm else None
            step = _number(sm[1], "step") if sm else None
            found.append(
                SmallModel(
                    e.path, e.name, e.name[:-4] if final else sm[1]["name"], epoch, step, fmt,
                    e.size, e.mtime, check.complete, check.problem,
                )
            )  # fmt: skip
    return found


def build_run(
    fs: FileSystem,
    folder: str,
    entries: Sequence[Entry],
    profile: TrainerProfile,
    reason: str,
    only: str | None = None,
    in_flight: Container[str] = frozenset(),
) -> Run:
    """Group one folder's files into checkpoint sets and small models (checks completeness).

    Paths in ``in_flight`` (the watcher saw them being written and they have not settled) are
    taken as incomplete without being opened."""
    by_number: dict[int, list[CheckpointFile]] = defaultdict(list)
    small: list[SmallModel] = []
    ignored: list[Ignored] = []
    other = 0
    folder_sets: list[CheckpointSet] = []
    latest_files: list[CheckpointSet] = []
    pointers: list[tuple[str, str]] = []
    for e in sorted(entries, key=lambda e: e.name):
        if only is not None and e.name != only:
            continue
        big = profile.match_big(e.name)
        latest = profile.match_latest(e.name)
        m = None if big else BIG_RE.match(e.name)
        if e.kind == "link":
            if latest is not None:  # Lightning's last.ckpt as a symlink: kept with its target
                target = _readlink(fs, e.path)
                pointers.append((e.name, target))
                ignored.append(Ignored(e.path, f"{LINK_IGNORED}; its target is kept"))
            elif big or m or LOOKALIKE_RE.match(e.name) or _is_set_dir(profile, e.name):
                ignored.append(Ignored(e.path, LINK_IGNORED))
            continue
        if e.kind == "dir":
            number = profile.match_set_dir(e.name)
            if number is not None:
                folder_sets.append(_folder_set(fs, e, number, profile, in_flight))
            continue
        if e.kind != "file":
            continue
        if latest is not None:
            check = BEING_WRITTEN if e.path in in_flight else _check(fs, e.path)
            if check is not None:
                f = CheckpointFile(
                    e.path, e.name, profile.set_prefixes[0], latest, e.size, e.mtime,
                    check.complete, check.problem,
                )  # fmt: skip
                latest_files.append(CheckpointSet(latest, (f,), latest_only=True))
            continue
        if profile.pointer_file and e.name == profile.pointer_file:
            pointers.append((e.name, _read_pointer(fs, e.path)))
            other += e.size
            continue
        if big:
            check = BEING_WRITTEN if e.path in in_flight else _check(fs, e.path)
            if check is None:
                continue
            prefix, number = big
            by_number[number].append(
                CheckpointFile(
                    e.path, e.name, prefix, number, e.size, e.mtime, check.complete, check.problem
                )
            )
            continue
        sm = small_match(profile, e.name)
        if sm:
            fmt, sm_m = sm
            check = _check(fs, e.path)
            if check is None:
                continue
            small.append(
                SmallModel(
                    e.path, e.name, sm_m["name"], _number(sm_m, "epoch"), _number(sm_m, "step"),
                    fmt, e.size, e.mtime, check.complete, check.problem,
                )
            )  # fmt: skip
            continue
        if m:
            ignored.append(Ignored(e.path, f"{m['prefix']}_ files are not used by {profile.label}"))
        elif LOOKALIKE_RE.match(e.name):
            ignored.append(
                Ignored(e.path, "not a checkpoint name (expected <G|D|DUR|WD>_<step>.pth)")
            )
        else:
            other += e.size

    used = {f.prefix for n, fs_ in by_number.items() if n not in profile.base_steps for f in fs_}
    sets = []
    for number in sorted(by_number):
        files = tuple(sorted(by_number[number], key=lambda f: profile.set_prefixes.index(f.prefix)))
        present = {f.prefix for f in files}
        base = number in profile.base_steps
        missing = () if base else tuple(p for p in profile.set_prefixes if p in used - present)
        latest = profile.latest_constant is not None and number == profile.latest_constant
        sets.append(CheckpointSet(number, files, missing, latest_only=latest, base=base))
    sets = _framework_sets(profile, sets + folder_sets + latest_files, pointers)
    if profile.complete_by == "trainer-state":
        sets = _with_best_model(fs, sets)
    small.extend(_small_models_beside(fs, folder, profile))
    return Run(
        path=folder,
        name=os.path.basename(folder.rstrip(os.sep)) or folder,
        profile=profile,
        trainer_reason=reason,
        sets=tuple(sets),
        small_models=tuple(small),
        ignored=tuple(ignored),
        other_bytes=other,
        last_activity=max(
            [e.mtime for e in entries if e.kind == "file"] + [s.mtime for s in folder_sets],
            default=0.0,
        ),
        pointers=tuple(pointers),
    )


def _readlink(fs: FileSystem, path: str) -> str:
    try:
        return fs.readlink(path)
    except OSError:
        return ""


def _read_pointer(fs: FileSystem, path: str) -> str:
    """The tag a pointer file names (DeepSpeed's ``latest``: plain text, the tag)."""
    try:
        data = fs.read_bytes(path)
    except OSError:
        return ""
    return data[:4096].decode("utf-8", "replace").strip() if len(data) <= 4096 else ""


def _walk_files(fs: FileSystem, top: str, rel: str) -> list[tuple[Entry, str]]:
    """Every entry below ``top`` that is not a folder (files, and links: never followed),
    with its name relative to the run folder."""
    out: list[tuple[Entry, str]] = []
    stack = [(top, rel)]
    while stack:
        folder, prefix = stack.pop()
        for e in sorted(fs.listdir(folder), key=lambda e: e.name):
            name = f"{prefix}/{e.name}"
            if e.kind == "dir":
                stack.append((e.path, name))
            else:
                out.append((e, name))
    return out


def _folder_set(
    fs: FileSystem, folder: Entry, number: int, profile: TrainerProfile, in_flight: Container[str]
) -> CheckpointSet:
    """A checkpoint folder as one set: every file below it; whole when each weight file is
    and (HF) its trainer_state.json, written last, holds its step."""
    files: list[CheckpointFile] = []
    problem = None
    try:
        members = _walk_files(fs, folder.path, folder.name)
    except OSError as exc:
        members, problem = [], f"cannot read folder: {oserror_text(exc)}"
    state_path = os.path.join(folder.path, TRAINER_STATE)
    for e, name in members:
        check = None
        if e.path in in_flight:
            check = BEING_WRITTEN
        elif e.kind == "file":
            try:
                check = check_member(fs, e.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                check = ZipCheck(False, f"cannot read: {oserror_text(exc)}")
        marker = e.path == state_path
        mtime = e.mtime if e.kind == "file" else 0.0  # a link's own time is not a save's
        files.append(
            CheckpointFile(
                e.path, name, "marker" if marker else "part", number, e.size, mtime,
                check.complete if check else True, check.problem if check else None,
            )
        )  # fmt: skip
    if problem is None and profile.complete_by == "trainer-state":
        problem = _trainer_state_problem(fs, state_path, number)
    return CheckpointSet(
        number, tuple(files), folder=folder.path, problem=problem, folder_mtime=folder.mtime
    )


def _trainer_state_problem(fs: FileSystem, path: str, number: int) -> str | None:
    try:
        state = parse_trainer_state(fs.read_bytes(path))
    except FileNotFoundError:
        return f"half written: no {TRAINER_STATE} (the Trainer writes it last)"
    except OSError as exc:
        return f"cannot read {TRAINER_STATE}: {oserror_text(exc)}"
    except ValueError as exc:
        return f"half written: {TRAINER_STATE} {exc}"
    if state.global_step != number:
        return f"{TRAINER_STATE} is for step {state.global_step}, not {number}"
    return None


def read_trainer_state(fs: FileSystem, s: CheckpointSet):
    """The parsed trainer_state.json of a complete HF folder set, or None."""
    if s.folder is None or s.status != "complete":
        return None
    try:
        return parse_trainer_state(fs.read_bytes(os.path.join(s.folder, TRAINER_STATE)))
    except (OSError, ValueError):
        return None


def _with_best_model(fs: FileSystem, sets: list[CheckpointSet]) -> list[CheckpointSet]:
    """HF: the folder named ``best_model_checkpoint`` by the newest complete
    trainer_state.json is protected (the Trainer's own rotation keeps it too)."""
    for newest in reversed(sets):
        state = read_trainer_state(fs, newest)
        if state is None:
            continue
        if not state.best_model_checkpoint:
            return sets
        why = HF_BEST.format(source=f"{newest.name}/{TRAINER_STATE}")
        return [
            replace(s, protect=(*s.protect, why)) if s.name == state.best_model_checkpoint else s
            for s in sets
        ]
    return sets


def _framework_sets(
    profile: TrainerProfile, sets: list[CheckpointSet], pointers: list[tuple[str, str]]
) -> list[CheckpointSet]:
    """Sets in order, with what the framework itself protects: the tag a pointer file names
    (and, until it names one, tags above it are not complete), the target of a last.ckpt
    symlink. HF's best model is added by ``with_best_model`` once the states are read."""
    if not pointers and profile.complete_by != "pointer":
        return sorted(sets, key=lambda s: s.number)
    out = []
    pointed = {target: name for name, target in pointers}
    pointer_step = None
    if profile.pointer_file:
        named = [profile.match_set_dir(t) for n, t in pointers if n == profile.pointer_file]
        pointer_step = next((x for x in named if x is not None), None)
    for s in sorted(sets, key=lambda s: s.number):
        protect = list(s.protect)
        problem = s.problem
        if s.folder and s.name in pointed:
            protect.append(POINTER.format(pointer=pointed[s.name], framework=profile.label))
        if s.folder is None:
            for f in s.files:
                if f.name in pointed:
                    protect.append(LINK_TARGET.format(link=pointed[f.name]))
        unpointed = pointer_step is None or s.number > pointer_step
        if profile.complete_by == "pointer" and problem is None and unpointed:
            problem = f"not named by {profile.pointer_file} yet: being written, or left by a crash"
        out.append(replace(s, protect=tuple(protect), problem=problem))
    return out


def scan(
    paths: Sequence[str],
    *,
    fs: FileSystem = LOCAL,
    trainer: str | None = None,
    in_flight: Container[str] = frozenset(),
) -> ScanReport:
    """Find runs under each path: a logs root, a run folder, or one checkpoint file.
    Files in ``in_flight`` are taken as incomplete without being opened."""
    if trainer is not None and trainer not in PROFILES:
        raise UsageError(f"unknown trainer {trainer!r} (known: {', '.join(PROFILES)})")
    walker = _Walker(fs, trainer, in_flight)
    for raw in paths:
        try:
            path = fs.realpath(raw)  # links the user typed are followed; nothing below them
            top = fs.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise UsageError(f"{raw}: no such file or folder") from None
            raise JanitorError(f"{raw}: {oserror_text(exc)}") from None
        if top.kind == "dir":
            walker.walk(path)
        elif top.kind == "file":
            name = os.path.basename(path)
            profile = PROFILES[trainer] if trainer else PROFILES["generic"]
            if not (looks_like_checkpoint_folder({name}) or small_match(profile, name)):
                raise UsageError(f"{raw}: not a folder or a checkpoint file")
            folder = os.path.dirname(path)
            walker.add_run(folder, fs.listdir(folder), only=name)
        else:
            raise UsageError(f"{raw}: not a folder or a checkpoint file")
    runs = tuple(sorted(walker.runs.values(), key=lambda r: r.path))
    return ScanReport(tuple(paths), runs, tuple(walker.errors))


def rescan_run(run: Run, fs: FileSystem = LOCAL, in_flight: Container[str] = frozenset()) -> Run:
    """The same run, read again from disk (the executor re-checks just before deleting)."""
    entries = fs.listdir(run.path)
    return build_run(fs, run.path, entries, run.profile, run.trainer_reason, in_flight=in_flight)


def read_run(
    folder: str,
    fs: FileSystem = LOCAL,
    trainer: str | None = None,
    in_flight: Container[str] = frozenset(),
) -> Run | None:
    """One folder as a run (or None if it holds no checkpoints); for the watcher."""
    entries = fs.listdir(folder)
    profile, reason = pick_profile(entries, folder, trainer)
    run = build_run(fs, folder, entries, profile, reason, in_flight=in_flight)
    return run if run.sets else None


def _is_set_dir(profile: TrainerProfile, name: str) -> bool:
    return profile.match_set_dir(name) is not None
