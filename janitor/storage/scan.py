"""Find training runs and their checkpoint sets. Torch-free; reads names, stats, the ends of
checkpoint files and the frameworks' small pointer files (DeepSpeed's ``latest``, HF's
``trainer_state.json``), never a whole checkpoint.

``scan(paths)`` walks the given folders (never following symlinks, never entering hidden
folders or the trainers' data folders) and returns a frozen ``ScanReport``: raw numbers only
(bytes, mtimes); formatting happens at the edge (``janitor.cli.render``).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import time
from collections import defaultdict
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple, TypeVar

from janitor.core.frameworks import (
    HF_BEST,
    LINK_TARGET,
    POINTER,
    TRAINER_STATE,
    foreign_files,
    foreign_reason,
    parse_trainer_state,
)
from janitor.core.policy import IN_FLIGHT_PROBLEM
from janitor.core.profiles import (
    ALL_SKIP_DIRS,
    BIG_RE,
    LOOKALIKE_RE,
    PROBE_RE,
    PROFILES,
    TrainerProfile,
    detect,
    looks_like_checkpoint_folder,
    small_match,
)
from janitor.core.ziptail import FAST_TAIL, HEAD, ZipCheck
from janitor.domain.checkpoints import (
    NOT_CHECKED,
    CheckpointFile,
    CheckpointSet,
    Ignored,
    Run,
    ScanError,
    ScanReport,
    SmallModel,
    UnfinishedUpload,
    file_set,
)
from janitor.domain.errors import JanitorError, UsageError, oserror_text
from janitor.storage import layout, platform
from janitor.storage.cache import VerdictCache
from janitor.storage.completeness import check_ends, check_file, check_member
from janitor.storage.fs import LOCAL, DirEntry, FileSystem, Found, StatKey
from janitor.storage.trash import gone_runs_trash


class Known(NamedTuple):
    """What is already known of a folder's files: their stat keys and the verdicts read
    when they had those keys (from the verdict cache, or from the plan being re-checked)."""

    keys: Mapping[str, StatKey]
    verdicts: Mapping[str, ZipCheck]


NOTHING_KNOWN = Known({}, {})


CacheRecord = tuple[
    str, str, list | None
]  # cache state folder, run folder name, entries if changed


class _Walker:
    def __init__(
        self,
        fs: FileSystem,
        trainer: str | None,
        in_flight: Container[str],
        cache: bool,
        lazy: bool = False,
    ) -> None:
        self.fs = fs
        self.lazy = lazy
        self.trainer = trainer
        self.in_flight = in_flight
        self.errors: list[ScanError] = []
        self.seen_dirs: set[str] = set()
        self.use_cache = cache
        self.caches: dict[str, VerdictCache] = {}
        self.started_ns = time.time_ns()
        self.records: list[CacheRecord] | None = None  # a worker's cache records, sent back

    def merge_records(self, records: list[CacheRecord]) -> None:
        """Cache records a worker process made of the run folders it walked: each folder
        was met, and its section is written again where it changed."""
        for state, name, entries in records:
            cache = self.caches.get(state)
            if cache is None:
                cache = self.caches[state] = VerdictCache(self.fs, state, self.started_ns)
            cache.seen.add(name)
            if entries is not None:
                cache.store(name, entries)

    def walk(self, top: str, forget: bool = True) -> Iterator[Run]:
        """The runs under ``top``, folder by folder (depth first, in name order). ``forget``:
        the verdict cache of the root ``top`` drops the run folders not met (``top`` was
        walked whole)."""
        stack = [top]
        while stack:
            folder = stack.pop()
            if folder in self.seen_dirs:
                continue
            self.seen_dirs.add(folder)
            run, subfolders = self.visit(folder)
            stack.extend(reversed(subfolders))  # popped in name order
            if run is not None:
                yield run
        if forget:
            self.forget_unseen(top)

    def visit(self, folder: str) -> tuple[Run | None, list[str]]:
        """The run in ``folder`` (if it is one) and its subfolders to walk, in name order
        (not hidden, not a trainer's data folder, not one of the run's checkpoint folders)."""
        try:
            found, cache, known = self.survey(folder)
        except OSError as exc:
            self.errors.append(ScanError(folder, f"cannot read folder: {oserror_text(exc)}"))
            return None, []
        run = self.add_run(folder, found, cache=cache, known=known)
        inside = {s.name for s in run.sets if s.folder} if run else ()
        subdirs = sorted(f.name for f in found if f.kind == "dir")
        return run, [
            os.path.join(folder, d)
            for d in subdirs
            if not d.startswith(".")
            and d not in ALL_SKIP_DIRS
            and d not in inside  # a checkpoint folder is one set, not a run
        ]

    def forget_unseen(self, top: str) -> None:
        """Run folders of the walked root ``top`` that were not met are gone from the cache."""
        if self.use_cache:
            cache = self.caches.get(layout.state_dir_of_root(top))
            if cache is not None:
                cache.forget_unseen()

    def cache_for(self, folder: str) -> VerdictCache | None:
        if not self.use_cache:
            return None
        state = layout.state_dir(folder)
        cache = self.caches.get(state)
        if cache is None:
            cache = self.caches[state] = VerdictCache(self.fs, state, self.started_ns)
        return cache

    def survey(self, folder: str) -> tuple[list[Found], VerdictCache | None, Known]:
        """List ``folder``, reading the ends of checkpoint-like files whose verdict is not
        cached (files in flight are never opened)."""
        cache = self.cache_for(folder)
        cached = cache.folder(_name_of(folder)) if cache is not None else None
        known = Known(*cached) if cached is not None else NOTHING_KNOWN
        probe = _read_nothing if self.lazy else _prober(folder, self.in_flight)
        found = self.fs.survey(folder, probe, known.keys,
                               HEAD, FAST_TAIL)  # fmt: skip
        return found, cache, known

    def add_run(
        self,
        folder: str,
        found: Sequence[Found],
        cache: VerdictCache | None = None,
        known: Known = NOTHING_KNOWN,
    ) -> Run | None:
        names = {f.name for f in found if f.kind == "file"}
        profile, reason = pick_profile(found, folder, self.trainer, names)
        has_big = any(profile.match_big(n) or profile.match_latest(n) for n in names) or any(
            profile.match_set_dir(f.name) is not None for f in found if f.kind == "dir"
        )
        if not has_big and not _own_small_models(profile, names, folder):
            return None  # e.g. RVC's assets/weights: reported beside its run, not as a run
        seen: list = []
        run = build_run(self.fs, folder, found, profile, reason, self.in_flight, known,
                        seen, lazy=self.lazy)  # fmt: skip
        if cache is not None:
            name = _name_of(folder)
            if self.records is None:
                cache.record(name, *seen)
            else:  # in a worker process: the parent's cache records it (``merge_records``)
                self.records.append((cache.state, name, cache.changed(name, *seen)))
        return run if run.sets or run.small_models else None

    def save_caches(self) -> None:
        for cache in self.caches.values():
            cache.save()


def _read_nothing(name: str) -> bool:
    """A lazy scan's survey reads no file: ``build_run`` reads what its decisions need."""
    return False


def _name_of(folder: str) -> str:
    return os.path.basename(folder.rstrip(os.sep)) or folder


def _prober(folder: str, in_flight: Container[str]):
    """Which names of ``folder`` to read while listing it."""
    if in_flight:
        return lambda name: PROBE_RE.match(name) and os.path.join(folder, name) not in in_flight
    return PROBE_RE.match


def _own_small_models(profile: TrainerProfile, names: set[str], folder: str) -> bool:
    """A folder of small models named after itself (a finished Applio run)."""
    base = os.path.basename(folder.rstrip(os.sep))
    return any((sm := small_match(profile, n)) and sm[1]["name"] == base for n in names)


def pick_profile(
    entries: Sequence[DirEntry | Found],
    folder: str,
    trainer: str | None,
    names: set[str] | None = None,  # the files' names, if the caller has them already
) -> tuple[TrainerProfile, str]:
    if trainer:
        return PROFILES[trainer], "forced with --trainer"
    if names is None:
        names = {e.name for e in entries if e.kind == "file"}
    dirs = {e.name for e in entries if e.kind == "dir"}
    links = {e.name for e in entries if e.kind == "link"}
    return detect(names, dirs, folder, links)


def _janitors_own(profile: TrainerProfile, name: str) -> bool:
    """A file janitor may have written itself (its config, a temp file, a small model), which
    never makes a run look active: only the trainer's own writes do (``core.law.is_active``).
    The trainer's own small models are written with its G and D, which do count."""
    return (
        name == layout.CONFIG_NAME
        or name.startswith(layout.TMP_PREFIX)
        or small_match(profile, name) is not None
    )


def _number(m, group: str) -> int | None:
    """The epoch or step a small model's name states (None where its naming has none)."""
    value = m.groupdict().get(group)
    return int(value) if value is not None else None


LINK_IGNORED = "symlink: never followed or removed"
UNCHECKED = ZipCheck(False, NOT_CHECKED)
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
                    e.path, e.name, epoch, step, fmt, e.size, e.mtime, check.complete,
                    check.problem,
                )
            )  # fmt: skip
    return found


def build_run(
    fs: FileSystem,
    folder: str,
    found: Sequence[Found],
    profile: TrainerProfile,
    reason: str,
    in_flight: Container[str] = frozenset(),
    known: Known = NOTHING_KNOWN,
    seen: list | None = None,
    *,
    lazy: bool = False,
) -> Run:
    """Group one folder's files into checkpoint sets and small models, with the verdicts
    read while surveying it (or known: a file whose stat key is unchanged is not read).

    Paths in ``in_flight`` (the watcher saw them being written and they have not settled) are
    taken as incomplete without being opened. ``seen`` (if given) receives the number of
    verdicts taken from ``known``, the files read now or judged from ``known`` by ``verdict``
    (name, key, verdict, read now), and a function listing every file judged (the hits on
    big files are only counted: at scale, most of them).
    Folder sets (HF checkpoint-<N>/, DeepSpeed global_step<N>/) bypass the verdict cache:
    their files are read on every scan (``_folder_set``).

    ``lazy`` (``janitor scan``'s report): big files whose verdict is not known are read only
    as the report's decisions need them (``_read_as_needed``): the sets from the newest down
    to the newest complete one, and any set written after it; the others stay "unchecked"."""
    by_number: dict[int, list[CheckpointFile]] = defaultdict(list)
    small: list[SmallModel] = []
    ignored: list[Ignored] = []
    last_activity = 0.0
    hits = 0
    judged: list = []
    keys, verdicts = known
    base = folder if folder.endswith(os.sep) else folder + os.sep
    folder_sets: list[CheckpointSet] = []
    latest_files: list[CheckpointSet] = []
    pointers: list[tuple[str, str]] = []

    def verdict(f: Found) -> ZipCheck | None:  # small models, and big files read now
        nonlocal hits
        path = base + f.name
        if in_flight and path in in_flight:
            return BEING_WRITTEN
        ends = f.ends
        if ends is None:
            if f.key is not None and keys.get(f.name) == f.key:
                hits += 1
                judged.append((f.name, f.key, verdicts[f.name], False))
                return verdicts[f.name]
            check = _check(fs, path)  # not read while listed (lazy, or a backend that does not
            if check is not None and f.key is not None:  # probe): cached under the listed key
                judged.append((f.name, f.key, check, True))
            return check
        if type(ends) is not tuple:
            return ZipCheck(False, f"cannot read: {oserror_text(ends)}")
        try:
            check = check_ends(fs, path, ends[0], ends[1], f.size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ZipCheck(False, f"cannot read: {oserror_text(exc)}")
        judged.append((f.name, f.key, check, True))
        return check

    big_match = profile.big_re.match
    fixed_prefix = profile.prefix
    set_prefixes = profile.set_prefixes
    match_latest = profile.match_latest if profile.latest_re is not None else None
    pointer_file = profile.pointer_file
    new = tuple.__new__  # a CheckpointFile per file, without the Python-level __new__
    for e in found:  # listing order: sets are ordered by number below, the rest by name
        name, kind, size, mtime, key, ends = e
        if kind == "file" and mtime > last_activity and not _janitors_own(profile, name):
            last_activity = mtime  # the trainer's activity (core.law.is_active)
        big = None
        bm = big_match(name)
        if bm is not None:
            prefix = fixed_prefix or bm["prefix"]
            if prefix in set_prefixes:
                big = prefix, int(bm["num"])
                if (
                    kind == "file"
                    and name != pointer_file
                    and (match_latest is None or match_latest(name) is None)
                ):
                    # the hot path: one big checkpoint file of a step
                    if (
                        ends is None
                        and key is not None
                        and keys.get(name) == key
                        and not (in_flight and base + name in in_flight)
                    ):  # unchanged since its verdict was read: not opened
                        hits += 1
                        check = verdicts[name]
                    elif lazy and ends is None and not (in_flight and base + name in in_flight):
                        check = UNCHECKED  # read below if a decision needs it
                    else:
                        check = verdict(e)
                        if check is None:
                            continue
                    number = big[1]
                    by_number[number].append(new(CheckpointFile, (
                        base, name, prefix, number, size, mtime, check.complete, check.problem,
                        key,
                    )))  # fmt: skip
                    continue
        latest = match_latest(name) if match_latest is not None else None
        m = None if big else BIG_RE.match(name)
        if kind == "link":
            if latest is not None:  # Lightning's last.ckpt as a symlink: kept with its target
                pointers.append((name, _readlink(fs, base + name)))
                ignored.append(Ignored(base + name, f"{LINK_IGNORED}; its target is kept"))
            elif big or m or LOOKALIKE_RE.match(name) or _is_set_dir(profile, name):
                ignored.append(Ignored(base + name, LINK_IGNORED))
            continue
        if kind == "dir":
            number = profile.match_set_dir(name)
            if number is not None:
                folder_sets.append(_folder_set(fs, base, name, number, profile, in_flight))
            continue
        if kind != "file":
            continue
        if latest is not None:
            check = verdict(e)
            if check is not None:
                f = CheckpointFile(
                    base, name, profile.set_prefixes[0], latest, size, mtime,
                    check.complete, check.problem, key,
                )  # fmt: skip
                latest_files.append(CheckpointSet(latest, (f,), latest_only=True))
            continue
        if profile.pointer_file and name == profile.pointer_file:
            pointers.append((name, _read_pointer(fs, base + name)))
            continue
        sm = small_match(profile, name)
        if sm:
            fmt, sm_m = sm
            check = verdict(e)
            if check is None:
                continue
            small.append(
                SmallModel(
                    base + name, name, _number(sm_m, "epoch"), _number(sm_m, "step"), fmt, size,
                    mtime, check.complete, check.problem,
                )
            )  # fmt: skip
            continue
        if m:
            ignored.append(
                Ignored(base + name, f"{m['prefix']}_ files are not used by {profile.label}")
            )
        elif LOOKALIKE_RE.match(name):
            ignored.append(
                Ignored(base + name, "not a checkpoint name (expected <G|D|DUR|WD>_<step>.pth)")
            )

    if seen is not None:

        def entries() -> list:  # every file judged; big files taken from ``known`` unlisted
            named = {e[0] for e in judged}
            out = list(judged)
            for files in by_number.values():
                for f in files:
                    name, key = f.name, f.key
                    if (
                        name not in named
                        and key is not None
                        and keys.get(name) == key
                        and not (in_flight and base + name in in_flight)
                    ):
                        out.append((name, key, verdicts[name], False))
            return out

        seen.extend((hits, judged, entries))
    small.sort(key=_by_name)
    ignored.sort(key=_by_path)
    pointers.sort()
    bases = profile.base_steps
    used = {f.prefix for n, fs_ in by_number.items() if n not in bases for f in fs_}
    used_order = tuple(p for p in profile.set_prefixes if p in used)
    rank = {p: i for i, p in enumerate(profile.set_prefixes)}
    latest_constant = profile.latest_constant
    sets = []
    add = sets.append
    n_used = len(used_order)
    for number in sorted(by_number):
        files = by_number[number]
        n = len(files)
        if n == 2:  # the usual G and D, listed as D, G
            a, b = files
            pair = (b, a) if rank[a.prefix] > rank[b.prefix] else (a, b)
        else:
            pair = tuple(sorted(files, key=lambda f: rank[f.prefix]) if n > 2 else files)
        is_base = number in bases
        if is_base or n == n_used:
            missing: tuple[str, ...] = ()
        else:
            present = {f.prefix for f in files}
            missing = tuple(p for p in used_order if p not in present)
        add(file_set(number, pair, missing, number == latest_constant, is_base))
    if lazy:
        sets = _read_as_needed(fs, sets, judged)
    if folder_sets or latest_files or pointers or profile.complete_by == "pointer":
        sets = _framework_sets(profile, sets + folder_sets + latest_files, pointers)
    if profile.complete_by == "trainer-state":
        sets = _with_best_model(fs, sets)
    for s in folder_sets:
        if s.mtime > last_activity:
            last_activity = s.mtime
    small.extend(_small_models_beside(fs, folder, profile))
    return Run(
        path=folder,
        name=os.path.basename(folder.rstrip(os.sep)) or folder,
        profile=profile,
        trainer_reason=reason,
        sets=tuple(sets),
        small_models=tuple(small),
        ignored=tuple(ignored),
        last_activity=last_activity,
        pointers=tuple(pointers),
    )


def _read_as_needed(fs: FileSystem, sets: list[CheckpointSet], judged: list) -> list[CheckpointSet]:
    """A lazy scan's reads (sets in number order, some unchecked): pretrained bases, then
    the sets from the newest down until one is complete and not latest-only (the newest
    complete step: what the trainer resumes from and what every plan keeps), then every set
    written after that one (so "most recently written complete", which breaks mtime ties by
    number, and the resume traps are exact). Sets older than that in both number and mtime
    stay unchecked: their verdict decides nothing a scan reports (a plan reads them before it
    may remove them)."""

    def read(s: CheckpointSet) -> CheckpointSet:
        files = []
        for f in s.files:
            if f.problem == NOT_CHECKED:
                check = _check(fs, f.path) or ZipCheck(False, "vanished while it was scanned")
                if f.key is not None:
                    judged.append((f.name, f.key, check, True))
                f = f._replace(complete=check.complete, problem=check.problem)
            files.append(f)
        return file_set(s.number, tuple(files), s.missing, s.latest_only, s.base)

    out = [read(s) if s.base and s.status == "unchecked" else s for s in sets]
    newest = None
    for i in range(len(out) - 1, -1, -1):
        s = out[i]
        if s.base:
            continue
        if s.status == "unchecked":
            s = out[i] = read(s)
        if s.status == "complete" and not s.latest_only:
            newest = s
            break
    if newest is not None:
        for i, s in enumerate(out):
            if s.status == "unchecked" and s.mtime > newest.mtime:
                out[i] = read(s)
    return out


def _by_name(x: SmallModel) -> str:
    return x.name


def _by_path(x: Ignored) -> str:
    return x.path


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


def _walk_files(fs: FileSystem, top: str, rel: str) -> list[tuple[DirEntry, str]]:
    """Every entry below ``top`` that is not a folder (files, and links: never followed),
    with its name relative to the run folder."""
    out: list[tuple[DirEntry, str]] = []
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
    fs: FileSystem,
    base: str,
    dirname: str,
    number: int,
    profile: TrainerProfile,
    in_flight: Container[str],
) -> CheckpointSet:
    """A checkpoint folder (``dirname`` in the run folder ``base``) as one set: every file
    below it (HF: those the Trainer writes; any other file protects the set, named in its
    ``protect``, and is no part of it); whole when each weight file is and (HF) its
    trainer_state.json, written last, holds its step. Its files are read on every scan: no
    verdict cache for folder sets."""
    path = base + dirname
    files: list[CheckpointFile] = []
    problem = None
    folder_mtime = 0.0
    try:
        folder_mtime = fs.stat(path).mtime  # a save just begun: the folder is newer
        members = _walk_files(fs, path, dirname)
    except OSError as exc:
        members, problem = [], f"cannot read folder: {oserror_text(exc)}"
    state_path = os.path.join(path, TRAINER_STATE)
    foreign: list[str] = []
    if profile.complete_by == "trainer-state":  # an HF checkpoint-<step>/ folder
        foreign = foreign_files([name[len(dirname) + 1 :] for _, name in members])
    strangers = {f"{dirname}/{n}" for n in foreign}
    for e, name in members:
        if name in strangers:  # not a checkpoint file: named by the set's protection instead
            continue
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
                base, name, "marker" if marker else "part", number, e.size, mtime,
                check.complete if check else True, check.problem if check else None,
            )
        )  # fmt: skip
    if problem is None and profile.complete_by == "trainer-state":
        problem = _trainer_state_problem(fs, state_path, number)
    return CheckpointSet(
        number, tuple(files), folder=path, problem=problem,
        protect=(foreign_reason(profile.label, foreign),) if foreign else (),
        # a save just begun (no file of the framework's yet): the folder's time; after that
        # its files' own, which a file the user adds to the folder does not change
        folder_mtime=0.0 if files else folder_mtime,
    )  # fmt: skip


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
    cache: bool = True,
    save_cache: bool = True,
    lazy: bool = False,
) -> ScanReport:
    """Find runs under each path: a logs root, a run folder, or one checkpoint file.
    Files in ``in_flight`` are taken as incomplete without being opened. With ``cache``,
    verdicts of unchanged files come from the logs root's verdict cache (``storage.cache``),
    which is brought up to date afterwards (unless not ``save_cache``: a dry run)."""
    errors: list[ScanError] = []
    runs = {
        r.path: r
        for r in scan_runs(
            paths,
            errors,
            fs=fs,
            trainer=trainer,
            in_flight=in_flight,
            cache=cache,
            save_cache=save_cache,
            lazy=lazy,
        )  # fmt: skip
    }
    return ScanReport(tuple(paths), tuple(sorted(runs.values(), key=lambda r: r.path)),
                      tuple(errors), unfinished_uploads(fs, paths),
                      gone_runs_trash(paths, runs, fs))  # fmt: skip


def unfinished_uploads(fs: FileSystem, paths: Sequence[str]) -> tuple[UnfinishedUpload, ...]:
    """Multipart uploads started under ``paths`` and never completed (object storage)."""
    found = {u for path in paths for u in fs.unfinished_uploads(path)}
    return tuple(sorted(found, key=lambda u: (u.path, u.initiated)))


def scan_runs(
    paths: Sequence[str],
    errors: list[ScanError],
    *,
    fs: FileSystem = LOCAL,
    trainer: str | None = None,
    in_flight: Container[str] = frozenset(),
    cache: bool = True,
    save_cache: bool = True,
    lazy: bool = False,
) -> Iterator[Run]:
    """``scan`` one run at a time, as the walk meets them (folders that cannot be read go to
    ``errors``), so that a caller that is done with a run can let it go: a report of 200,000
    files needs not be held at once. The paths are checked before anything is yielded (a
    bad path is a UsageError, never output cut short). ``lazy``: a report only (never planned
    on): big files are read only as its decisions need (``build_run``), the rest "unchecked"."""
    walker, tops = _walker_for(paths, fs, trainer, in_flight, cache, lazy)
    return _scan_tops(walker, tops, errors, save_cache)


def _walker_for(
    paths: Sequence[str], fs: FileSystem, trainer: str | None, in_flight: Container[str],
    cache: bool, lazy: bool,
) -> tuple[_Walker, list[tuple[str, str | None]]]:  # fmt: skip
    """The walker of a scan and its paths, checked (a bad path or trainer is a UsageError
    before anything is yielded)."""
    if trainer is not None and trainer not in PROFILES:
        raise UsageError(f"unknown trainer {trainer!r} (known: {', '.join(PROFILES)})")
    tops = [_top(fs, raw, trainer) for raw in paths]
    return _Walker(fs, trainer, in_flight, cache, lazy), tops


def scan_runs_mapped(
    paths: Sequence[str],
    errors: list[ScanError],
    fn: Callable[[Run], T],
    *,
    fs: FileSystem = LOCAL,
    trainer: str | None = None,
    cache: bool = True,
    lazy: bool = False,
) -> Iterator[T]:
    """``fn(run)`` for each run ``scan_runs`` finds, in the same order (``janitor scan``'s
    report, run by run). One logs root on a local disk, with more than one CPU
    (``platform.worker_processes``): its folders are walked by forked worker processes,
    ``fn`` is applied where each run was built, and only ``fn``'s results (small, picklable)
    and the verdict cache's records come back; never the runs themselves. Per file, a scan
    is Python work between two system calls, which one process does one at a time."""
    walker, tops = _walker_for(paths, fs, trainer, frozenset(), cache, lazy)
    if len(tops) == 1 and tops[0][1] is None and fs.local_path(tops[0][0]) is not None:
        return _mapped(walker, tops[0][0], fn, errors)
    return (fn(run) for run in _scan_tops(walker, tops, errors, save=True))


T = TypeVar("T")


def _mapped(walker: _Walker, top: str, fn: Callable[[Run], T], errors: list[ScanError]):
    with gc_paused():
        walker.seen_dirs.add(top)
        run, units = walker.visit(top)
        if run is not None:
            yield fn(run)
        if units:
            walker.cache_for(units[0])  # loaded once, before the workers share it
        workers = platform.worker_processes(len(units))
        forked = None
        if workers > 1:
            forked = platform.forked_imap(lambda unit: _walk_unit(walker, fn, unit), units,
                                          workers)  # fmt: skip
        here = (([fn(r) for r in walker.walk(unit, forget=False)], [], []) for unit in units)
        for results, errs, records in forked or here:
            walker.errors.extend(errs)
            walker.merge_records(records)
            yield from results
        walker.forget_unseen(top)
    errors.extend(walker.errors)
    walker.save_caches()


def _walk_unit(walker: _Walker, fn: Callable[[Run], T], folder: str):
    """In a worker process: the results of every run under ``folder`` (a folder below the
    root, walked whole), the folders that could not be read, and the verdict cache's
    records for the parent to keep (``merge_records``)."""
    walker.records, walker.errors = [], []
    results = [fn(run) for run in walker.walk(folder, forget=False)]
    return results, walker.errors, walker.records


def _top(fs: FileSystem, raw: str, trainer: str | None) -> tuple[str, str | None]:
    """A path to scan: (folder to walk, None) or (its folder, the one checkpoint file)."""
    try:
        path = fs.realpath(raw)  # links the user typed are followed; nothing below them
        top = fs.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UsageError(f"{raw}: no such file or folder", path=raw) from None
        raise JanitorError(f"{raw}: {oserror_text(exc)}", path=raw) from None
    if top.kind == "dir":
        return path, None
    if top.kind == "file":
        name = os.path.basename(path)
        profile = PROFILES[trainer] if trainer else PROFILES["generic"]
        if looks_like_checkpoint_folder({name}) or small_match(profile, name):
            return os.path.dirname(path), name
    raise UsageError(f"{raw}: not a folder or a checkpoint file", path=raw)


def _scan_tops(
    walker: _Walker, tops: list[tuple[str, str | None]], errors: list[ScanError], save: bool
) -> Iterator[Run]:
    named: dict[str, set[str]] = {}  # folder -> checkpoint files named in it
    for folder, name in tops:
        if name is not None:
            named.setdefault(folder, set()).add(name)
    with gc_paused():
        for folder, name in tops:
            if name is None:
                with walker.fs.listing(folder):
                    yield from walker.walk(folder)
                continue
            if folder not in named:
                continue  # its files came with the first of them
            found, cache, known = walker.survey(folder)
            run = walker.add_run(folder, found, cache, known)
            if run is not None:  # the whole run, for true reasons; its named sets selected
                yield _selected(run, named.pop(folder))
    errors.extend(walker.errors)
    if save:
        walker.save_caches()


def _selected(run: Run, names: set[str]) -> Run:
    """``run`` with the sets of the files (or set folders) named on the command line
    selected: planned alone, with reasons computed on the whole run."""
    numbers = frozenset(
        s.number for s in run.sets if s.name in names or any(f.name in names for f in s.files)
    )
    return replace(run, selected=numbers)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a scan builds its objects: at 200,000 files the
    collector's passes over the growing heap cost more than the scan itself. The objects
    made hold no cycles; a collection runs at the end as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _known_from(run: Run) -> Known:
    """The verdicts a plan was made with, by stat key: a file whose key has not changed
    since is not read again."""
    files = [f for f in run.files if f.key is not None and f.problem != NOT_CHECKED]
    return Known(
        {f.name: f.key for f in files}, {f.name: ZipCheck(f.complete, f.problem) for f in files}
    )


def rescan_run(run: Run, fs: FileSystem = LOCAL, in_flight: Container[str] = frozenset()) -> Run:
    """The same run, as it is on disk now (the executor re-checks just before deleting):
    files whose stat key (device, inode, size, mtime_ns, ctime_ns) is the one planned keep
    their verdict without being read; anything changed is read again."""
    known = _known_from(run)
    found = fs.survey(run.path, _prober(run.path, in_flight), known.keys, HEAD, FAST_TAIL)
    return build_run(fs, run.path, found, run.profile, run.trainer_reason,
                     in_flight=in_flight, known=known)  # fmt: skip


def read_run(
    folder: str,
    fs: FileSystem = LOCAL,
    trainer: str | None = None,
    in_flight: Container[str] = frozenset(),
) -> Run | None:
    """One folder as a run (or None if it holds no checkpoints); for the watcher."""
    found = fs.survey(folder, _prober(folder, in_flight), {}, HEAD, FAST_TAIL)
    profile, reason = pick_profile(found, folder, trainer)
    run = build_run(fs, folder, found, profile, reason, in_flight=in_flight)
    return run if run.sets else None


def _is_set_dir(profile: TrainerProfile, name: str) -> bool:
    return profile.match_set_dir(name) is not None
