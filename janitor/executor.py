"""The only code that deletes. Carries out a ``RunPlan`` safely.

For each run, under the run's advisory lock:
1. read the run again and plan again; a set is removed only if both the shown plan and the
   fresh plan remove it, and every one of its files still has the size and mtime it had
   when planned (so a set completed or rewritten since never loses to an older plan, and two
   janitors never delete the same file);
2. journal ``set-begin``; remove (or move to the trash) the set's files, G last; journal
   each file; journal ``set-end``;
3. collect per-file errors and go on; the caller turns them into exit code 1.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Container
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from janitor import config
from janitor.discovery import CheckpointFile, CheckpointSet, Run, rescan_run
from janitor.errors import LockBusy, PathProblem, UsageError, oserror_text
from janitor.fs import LOCAL, FileSystem
from janitor.journal import Journal, fold_unfinished, now_iso
from janitor.plan import RunPlan
from janitor.profiles import BIG_RE, LIGHTNING_RE

DRIVE_MOUNTS = ("/content/drive",)
LOCK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Removed:
    path: str
    size: int
    number: int
    trash_path: str | None = None  # set when the file was moved to the trash, not deleted


FileError = PathProblem  # a file that could not be removed or moved


@dataclass(frozen=True)
class RunResult:
    run_path: str
    removed: tuple[Removed, ...] = ()
    errors: tuple[FileError, ...] = ()
    skipped: tuple[str, ...] = ()  # sets or the whole run left alone, and why
    notes: tuple[str, ...] = ()

    @property
    def freed(self) -> int:
        """Bytes really deleted (a move to the trash frees nothing)."""
        return sum(r.size for r in self.removed if r.trash_path is None)

    @property
    def trashed(self) -> int:
        """Bytes moved to the trash: still on disk."""
        return sum(r.size for r in self.removed if r.trash_path is not None)


@dataclass(frozen=True)
class ExecutionReport:
    results: tuple[RunResult, ...] = field(default=())

    @property
    def freed(self) -> int:
        return sum(r.freed for r in self.results)

    @property
    def trashed(self) -> int:
        return sum(r.trashed for r in self.results)

    @property
    def errors(self) -> tuple[FileError, ...]:
        return tuple(e for r in self.results for e in r.errors)


@dataclass
class _JournalState:
    unfinished: dict[str, set[int]]  # run path -> numbers of sets begun and never ended
    offset: int = 0  # bytes of the journal already read
    seen: bool = False
    torn_line: bool = False  # a kill cut the journal's last line short
    torn_reported: bool = False


def under_drive(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == m or real.startswith(m + os.sep) for m in DRIVE_MOUNTS)


def _error_text(exc: OSError) -> str:
    return oserror_text(exc, missing="vanished before it could be removed")


def run_lock(run_path: str, timeout: float = LOCK_TIMEOUT):
    """The per-run advisory lock (a ``filelock.FileLock``) shared by prune, watch, finalize."""
    from filelock import FileLock

    locks = os.path.join(config.state_dir(run_path), "locks")
    os.makedirs(locks, exist_ok=True)
    name = os.path.basename(run_path.rstrip(os.sep)) or "run"
    return FileLock(os.path.join(locks, f"{name}.lock"), timeout=timeout)


def _removal_order(s: CheckpointSet) -> list[CheckpointFile]:
    # G last: if we are stopped half-way, the generator (the file worth keeping) is what remains.
    return sorted(s.files, key=lambda f: (f.prefix == "G", f.prefix))


class Executor:
    def __init__(
        self,
        fs: FileSystem = LOCAL,
        *,
        trash: bool = False,
        truncate: bool | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
        clock: Callable[[], float] = time.time,
        on_removed: Callable[[Removed], None] | None = None,
    ) -> None:
        self.fs = fs
        self.trash = trash
        self.truncate = truncate
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.on_removed = on_removed
        self._journals: dict[str, _JournalState] = {}

    def execute(
        self,
        shown: RunPlan,
        replan: Callable[[Run], RunPlan],
        in_flight: Container[str] = frozenset(),
    ) -> RunResult:
        """Carry out ``shown`` under the run's lock; ``in_flight`` files are never opened."""
        from filelock import Timeout

        run = shown.run
        if not shown.removals:
            return RunResult(run.path)
        try:
            lock = run_lock(run.path, self.lock_timeout)
            with lock:
                return self._execute_locked(shown, replan, in_flight)
        except Timeout:
            return RunResult(
                run.path,
                skipped=(
                    f"{run.path}: another janitor is working on this run "
                    f"(waited {self.lock_timeout:g} s); skipped",
                ),
            )
        except OSError as exc:
            return RunResult(
                run.path, errors=(FileError(run.path, f"cannot lock run: {_error_text(exc)}"),)
            )

    def _execute_locked(
        self, shown: RunPlan, replan: Callable[[Run], RunPlan], in_flight: Container[str]
    ) -> RunResult:
        run = shown.run
        journal = Journal(config.state_dir(run.path))
        try:
            fresh_run = rescan_run(run, self.fs, in_flight)
        except OSError as exc:
            return RunResult(run.path, errors=(FileError(run.path, _error_text(exc)),))
        fresh = replan(fresh_run)
        fresh_remove = {d.set.number: d.set for d in fresh.removals}
        state = self._journal_state(journal)
        unfinished = state.unfinished.setdefault(run.path, set())
        removed: list[Removed] = []
        errors: list[FileError] = []
        skipped: list[str] = []
        notes: list[str] = []
        if state.torn_line and not state.torn_reported:
            state.torn_reported = True
            notes.append(
                f"journal {journal.path}: its last line was cut short "
                "(janitor was killed while writing it); ignored"
            )
        present = {s.number for s in fresh_run.sets}
        truncate = self.truncate if self.truncate is not None else under_drive(run.path)
        policy = shown.policy.describe()
        with journal.writer() as log:
            for number in sorted(unfinished - present):
                log.append(self._record("set-end", run.path, number, note="found finished"))
                notes.append(f"step {number}: an interrupted removal had already completed")
                unfinished.discard(number)  # our own set-end is read back next time too
            for decision in shown.removals:
                planned = decision.set
                current = fresh_remove.get(planned.number)
                if current is None:
                    if planned.number in present:
                        skipped.append(f"{planned.label}: kept by a fresh plan; left alone")
                    continue  # already gone: another janitor removed it
                changed = _changed(planned, current)
                if changed:
                    skipped.append(f"{planned.label}: {changed} changed since planning; left alone")
                    continue
                if planned.number in unfinished:
                    notes.append(f"{planned.label}: finishing an interrupted removal")
                reasons = list(decision.reasons)
                dests, copy = {}, None
                if self.trash:
                    resume = planned.number in unfinished
                    try:
                        dests, copy = trash_destinations(self.fs, run.path, current, resume)
                    except OSError as exc:
                        errors.append(FileError(trash_dir(run.path), _error_text(exc)))
                        continue
                log.append(
                    self._record(
                        "set-begin", run.path, planned.number,
                        files=[f.name for f in current.files], reasons=reasons, policy=policy,
                    )
                )  # fmt: skip
                failed = False
                for f in _removal_order(current):
                    try:
                        trash_path = self._remove_one(f, dests.get(f.name), truncate)
                    except OSError as exc:
                        errors.append(FileError(f.path, _error_text(exc)))
                        failed = True
                        break
                    item = Removed(f.path, f.size, planned.number, trash_path)
                    removed.append(item)
                    log.append(
                        self._record(
                            "trash" if trash_path else "remove", run.path, planned.number,
                            path=f.path, size=f.size, step=planned.step, reasons=reasons,
                            policy=policy, trash_path=trash_path, copy=copy,
                        )
                    )  # fmt: skip
                    if self.on_removed:
                        self.on_removed(item)
                log.append(self._record("set-end", run.path, planned.number, failed=failed))
                unfinished.discard(planned.number)
        return RunResult(run.path, tuple(removed), tuple(errors), tuple(skipped), tuple(notes))

    def _journal_state(self, journal: Journal) -> _JournalState:
        """Interrupted sets per run. The journal is read once, then only what was appended
        since (by us or by another janitor, which holds a run's lock while it writes that
        run's records): under a logs root with many runs it is long."""
        state = self._journals.setdefault(journal.path, _JournalState({}))
        records, state.offset, torn = journal.set_records_since(state.offset)
        if torn and not state.seen:
            state.torn_line = True
        state.seen = True
        fold_unfinished(records, state.unfinished)
        return state

    def _record(self, event: str, run: str, number: int, **extra) -> dict:
        record = {"event": event, "time": now_iso(self.clock()), "run": run, "number": number}
        record.update({k: v for k, v in extra.items() if v is not None})
        return record

    def _remove_one(self, f: CheckpointFile, trash_path: str | None, truncate: bool) -> str | None:
        if trash_path is not None:
            self.fs.rename(f.path, trash_path)
            return trash_path
        if truncate:  # Drive keeps deleted files in its trash, counted against the quota
            self.fs.truncate(f.path)
        self.fs.remove(f.path)
        return None


def _changed(planned: CheckpointSet, current: CheckpointSet) -> str | None:
    """Which file differs between planning and now (size, mtime, membership), if any."""
    now = {f.name: f for f in current.files}
    for f in planned.files:
        c = now.get(f.name)
        if c is None or c.size != f.size or c.mtime != f.mtime or c.complete != f.complete:
            return f.name
    extra = set(now) - {f.name for f in planned.files}
    return sorted(extra)[0] if extra else None


# ------------------------------------------------------------------ the trash
#
# logs/.janitor/trash/<run>/ holds what `--trash` moved, under the original file names. The
# files of one set moved together share a copy number: the first copy of step 100 is
# G_100.pth + D_100.pth, the next G_100.pth.1 + D_100.pth.1, and so on; a new copy always
# numbers above every copy of its step still in the trash. A copy's id is "<number>#<n>"
# (n = copy number + 1, so copies of a step count 1, 2, ... oldest first); the trash file
# name of any of its files names it too. Everything here is read from the trash folder
# itself; the journal adds what it knows (when, the step), so a lost journal loses nothing.

_COPY_RE = re.compile(r"^(?P<name>.+?)(?:\.(?P<k>[1-9][0-9]*))?$")


def trash_dir(run_path: str) -> str:
    name = os.path.basename(run_path.rstrip(os.sep)) or "run"
    return os.path.join(config.state_dir(run_path), "trash", name)


def _checkpoint_number(name: str) -> int | None:
    m = BIG_RE.match(name) or LIGHTNING_RE.match(name)
    return int(m["num"]) if m else None


def _split_trash_name(trash_name: str) -> tuple[str, int, int | None]:
    """(original file name, copy number, checkpoint number) of a file in a run's trash."""
    m = _COPY_RE.match(trash_name)
    name, k = m["name"], int(m["k"] or 0)
    number = _checkpoint_number(name)
    if number is None:  # not a checkpoint name with a copy suffix: the whole name is the name
        return trash_name, 0, _checkpoint_number(trash_name)
    return name, k, number


def _copy_id(number: int | None, k: int, trash_name: str) -> str:
    return f"{number}#{k + 1}" if number is not None else trash_name


def trash_destinations(
    fs: FileSystem, run_path: str, s: CheckpointSet, resume: bool = False
) -> tuple[dict[str, str], str]:
    """Trash paths for a set's files and the copy's id: one copy number for all of them,
    above every copy of the same step already in the trash; or, ``resume``-ing an
    interrupted removal, the newest copy (which holds the files moved before the stop)."""
    folder = trash_dir(run_path)
    fs.makedirs(folder)
    copies: dict[int, set[str]] = {}  # copy number -> names, for this step
    for e in fs.listdir(folder):
        name, k, number = _split_trash_name(e.name)
        if number == s.number:
            copies.setdefault(k, set()).add(name)
    names = {f.name for f in s.files}
    newest = max(copies, default=-1)
    k = newest if resume and newest >= 0 and not names & copies[newest] else newest + 1
    dests = {f.name: os.path.join(folder, f.name if k == 0 else f"{f.name}.{k}") for f in s.files}
    return dests, _copy_id(s.number, k, "")


@dataclass(frozen=True, slots=True)
class TrashedFile:
    run_path: str
    name: str  # the original file name
    trash_path: str
    copy: str  # "<number>#<n>" (or the trash file name, for a name that is not a checkpoint's)
    copy_number: int  # n - 1: orders a step's copies oldest first
    number: int | None  # the number in the name
    step: int | None  # None for a latest-only file (the journal says)
    size: int
    trashed: float  # when it was moved (journal time; the file's ctime if the journal lost it)
    journaled: bool

    @property
    def original_path(self) -> str:
        return os.path.join(self.run_path, self.name)


@dataclass(frozen=True)
class TrashCopy:
    """The files of one set that went to the trash together."""

    copy: str
    files: tuple[TrashedFile, ...]

    @property
    def number(self) -> int | None:
        return self.files[0].number

    @property
    def step(self) -> int | None:
        return self.files[0].step

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def trashed(self) -> float:
        return max(f.trashed for f in self.files)

    def matches_step(self, step: int) -> bool:
        return step in (self.number, self.step)


def _parse_time(text: object) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _trash_records(state_dir: str) -> dict[str, dict]:
    """Trash path -> the journal's last ``trash`` record for it (paths are reused once a copy
    is restored or emptied; the last record describes the file there now)."""
    out: dict[str, dict] = {}
    for r in Journal(state_dir).read().records:
        if r.get("event") == "trash" and isinstance(r.get("trash_path"), str):
            out[r["trash_path"]] = r
    return out


def trash_contents(
    run_path: str, fs: FileSystem = LOCAL, records: dict[str, dict] | None = None
) -> list[TrashedFile]:
    """Every file in the run's trash, oldest copy of each step first."""
    try:
        entries = fs.listdir(trash_dir(run_path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    if records is None:
        records = _trash_records(config.state_dir(run_path))
    out: list[TrashedFile] = []
    for e in entries:
        if e.kind != "file":
            continue
        name, k, number = _split_trash_name(e.name)
        r = records.get(e.path)
        if r is not None and os.path.basename(str(r.get("path", ""))) != name:
            r = None  # a record that does not describe this file
        when = _parse_time(r.get("time")) if r else None
        step = r.get("step") if r else number
        out.append(
            TrashedFile(
                run_path, name, e.path, _copy_id(number, k, e.name), k, number,
                step if isinstance(step, int) else None, e.size,
                when if when is not None else e.ctime, r is not None,
            )
        )  # fmt: skip
    out.sort(key=lambda f: (f.number is None, f.number or 0, f.copy_number, f.name))
    return out


def trash_copies(files: list[TrashedFile]) -> list[TrashCopy]:
    """Files grouped by copy, in the order of ``files``."""
    groups: dict[str, list[TrashedFile]] = {}
    for f in files:
        groups.setdefault(f.copy, []).append(f)
    return [TrashCopy(copy, tuple(fs_)) for copy, fs_ in groups.items()]


def trash_runs(logs_root: str, fs: FileSystem = LOCAL) -> list[str]:
    """Run paths (``<logs_root>/<name>``) that have a folder in the logs root's trash."""
    trash = os.path.join(logs_root, config.STATE_DIR, "trash")
    try:
        entries = fs.listdir(trash)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(os.path.join(logs_root, e.name) for e in entries if e.kind == "dir")


@contextmanager
def _trash_lock(run_path: str):
    """The run's lock, for the trash commands: a busy run is one clear line, not a wait
    without end."""
    from filelock import Timeout

    try:
        lock = run_lock(run_path).acquire()
    except Timeout:
        raise LockBusy(
            f"{run_path}: another janitor is working on this run (waited {LOCK_TIMEOUT:g} s)"
        ) from None
    with lock:
        yield


def _in_the_trash(copies: list[TrashCopy]) -> str:
    return ", ".join(c.copy for c in copies)


@dataclass(frozen=True)
class RestoreResult:
    restored: tuple[TrashCopy, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()  # (trash path, run path) per file
    remaining: tuple[TrashCopy, ...] = ()  # older copies of a restored step, left in the trash
    blocked: tuple[tuple[TrashCopy, tuple[str, ...]], ...] = ()  # copies whose names are taken
    errors: tuple[FileError, ...] = ()


def restore(
    run_path: str, step: int | None = None, copy: str | None = None, fs: FileSystem = LOCAL
) -> RestoreResult:
    """Move trashed files back into the run: one copy (``copy``: its id or one of its trash
    file names), or the newest copy of ``step`` / of every step in the trash. The files of a
    copy go back together or not at all, and never over a file already in the run.

    Raises ``UsageError`` naming what is in the trash when nothing matches the request."""
    journal = Journal(config.state_dir(run_path))
    with _trash_lock(run_path):
        copies = trash_copies(trash_contents(run_path, fs))
        if not copies:
            raise UsageError(f"{run_path}: nothing in the trash for this run")
        what = f"in the trash: {_in_the_trash(copies)} (see `janitor trash list`)"
        remaining: list[TrashCopy] = []
        if copy is not None:
            chosen = [
                c for c in copies
                if copy == c.copy or copy in {os.path.basename(f.trash_path) for f in c.files}
            ]  # fmt: skip
            if not chosen:
                raise UsageError(f"--copy {copy}: no such copy for {run_path}; {what}")
            if step is not None and not chosen[0].matches_step(step):
                raise UsageError(f"--copy {copy} is not a copy of step {step}; {what}")
        else:
            matching = [c for c in copies if step is None or c.matches_step(step)]
            if not matching:
                raise UsageError(f"nothing in the trash for step {step} of {run_path}; {what}")
            newest: dict[object, TrashCopy] = {}
            for c in matching:  # copies of a step come oldest first: the last one wins
                key = c.number if c.number is not None else c.copy
                if key in newest:
                    remaining.append(newest[key])
                newest[key] = c
            chosen = list(newest.values())
        restored, moved, blocked, errors = [], [], [], []
        for c in chosen:
            taken, problems = [], []
            for f in c.files:
                try:
                    fs.stat(f.original_path)
                    taken.append(f.name)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    problems.append(FileError(f.original_path, oserror_text(exc)))
            if problems:
                errors.extend(problems)
                continue
            if taken:
                blocked.append((c, tuple(taken)))
                continue
            done = []
            for f in c.files:
                try:
                    fs.rename(f.trash_path, f.original_path)
                except OSError as exc:
                    errors.append(FileError(f.trash_path, _error_text(exc)))
                    continue
                done.append((f.trash_path, f.original_path))
                journal.append(
                    {"event": "restore", "time": now_iso(), "run": run_path, "number": f.number,
                     "step": f.step, "copy": f.copy, "path": f.original_path,
                     "trash_path": f.trash_path, "size": f.size}
                )  # fmt: skip
            moved.extend(done)
            if done:
                restored.append(c)
    return RestoreResult(
        tuple(restored), tuple(moved), tuple(remaining), tuple(blocked), tuple(errors)
    )


@dataclass(frozen=True)
class EmptyResult:
    removed: tuple[TrashedFile, ...] = ()
    kept: tuple[TrashedFile, ...] = ()  # newer than --older-than
    errors: tuple[FileError, ...] = ()

    @property
    def freed(self) -> int:
        return sum(f.size for f in self.removed)


def empty_trash(
    logs_root: str, older_than: float | None, now: float, fs: FileSystem = LOCAL
) -> EmptyResult:
    """Delete trashed files under ``<logs_root>/.janitor/trash`` for good (only those trashed
    more than ``older_than`` seconds before ``now``: by the journal's time of the move, or
    the file's ctime, which a rename sets, when the journal does not know it)."""
    state = os.path.join(logs_root, config.STATE_DIR)
    records = _trash_records(state)
    removed, kept, errors = [], [], []
    with Journal(state).writer() as log:
        for run_path in trash_runs(logs_root, fs):
            with _trash_lock(run_path):
                for f in trash_contents(run_path, fs, records):
                    if older_than is not None and now - f.trashed <= older_than:
                        kept.append(f)
                        continue
                    try:
                        fs.remove(f.trash_path)
                    except OSError as exc:
                        errors.append(FileError(f.trash_path, _error_text(exc)))
                        continue
                    removed.append(f)
                    log.append(
                        {"event": "trash-empty", "time": now_iso(), "run": run_path,
                         "copy": f.copy, "path": f.trash_path, "size": f.size}
                    )  # fmt: skip
    return EmptyResult(tuple(removed), tuple(kept), tuple(errors))
