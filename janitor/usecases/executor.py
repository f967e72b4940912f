"""The only code that deletes. Carries out a ``RunPlan`` safely.

For each run, under the run's advisory lock:
1. read the run again and plan again; a set is removed only if both the shown plan and the
   fresh plan remove it, the protection law (``core.law.judge``, on the run as it is now,
   with its pins read again) lets it go — a protected set only under a waiver the law
   grants for that set to the plan's planner —, and every one of its files still has the
   size and mtime it had when planned (so a set completed or rewritten since never loses to
   an older plan, and two janitors never delete the same file). Files are re-checked by stat
   key (device, inode, size, mtime_ns, ctime_ns): only a file that changed since planning is
   read again. A removal the law refuses is said in the output and journaled (``refused``);
2. journal ``set-begin``; remove (or move to the trash) the set's files, G last; journal
   each file and ``set-end`` (the set-begins of up to ``SETS_PER_WRITE`` sets in one write,
   then their files and set-ends in one write; one fsync per run, when the journal closes).
   A folder set (HF checkpoint-<step>/, DeepSpeed tag) is removed file by file (its
   completion marker first), then its emptied folders; to the trash it moves whole. Links
   are removed, never followed;
3. collect per-file errors and go on; the caller turns them into exit code 1.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field

from janitor.core import law
from janitor.core.values import size_text
from janitor.domain.errors import JanitorError, oserror_text
from janitor.domain.plans import RunPlan
from janitor.domain.results import FileError, Removed, RunResult
from janitor.storage import layout, platform
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import (
    LOCAL,
    FileSystem,
    LockTimeout,
    disk_text,
    link_count,
    nearly_full,
)
from janitor.storage.journal import (
    Journal,
    JournalError,
    disk_full_text,
    fold_unfinished,
    now_iso,
)
from janitor.storage.locks import LOCK_TIMEOUT, run_lock
from janitor.storage.scan import CheckpointFile, CheckpointSet, rescan_run
from janitor.storage.trash import RunTrash

DRIVE_MOUNTS = ("/content/drive",)
# set-begin records of this many sets are written at once, before any of them is touched,
# and their removals and set-ends at once after: two journal writes per batch, not per set
# (a kill between the two leaves those sets begun: the next prune finishes them)
SETS_PER_WRITE = 32


def interrupted(run_name: str, labels: list[str], template: str) -> str:
    """One note per run for the removals a stop interrupted (a kill, a full disk): the run
    named, how many, and which ("alice: 3 interrupted removals had already completed (step
    100, step 200, step 300)"; of many, the first three and the last)."""
    n = len(labels)
    what = f"{n} interrupted removal{'s' if n != 1 else ''}"
    shown = labels if n <= 5 else [*labels[:3], "…", labels[-1]]
    return f"{run_name}: {template.format(what)} ({', '.join(shown)})"


@dataclass
class _JournalState:
    unfinished: dict[str, set[int]]  # run path -> numbers of sets begun and never ended
    offset: int = 0  # bytes of the journal already read
    seen: bool = False
    torn_line: bool = False  # a kill cut the journal's last line short
    torn_reported: bool = False
    mine: set[bytes] = field(default_factory=set)  # set-* lines we wrote, not yet read back


def under_drive(path: str, fs: FileSystem = LOCAL) -> bool:
    """On Google Drive's mount in Colab (deleted files stay in Drive's trash)."""
    try:
        real = fs.realpath(path)
    except OSError:
        real = path
    return any(real == m or real.startswith(m + os.sep) for m in DRIVE_MOUNTS)


def _error_text(exc: OSError) -> str:
    return oserror_text(exc, missing="vanished before it could be removed")


def _removal_order(s: CheckpointSet) -> list[CheckpointFile]:
    # G last: if we are stopped half-way, the generator (the file worth keeping) is what remains.
    # A folder set's completion marker (trainer_state.json) first: a folder stopped half-way
    # is then incomplete for the framework too, never taken for a whole checkpoint.
    return sorted(s.files, key=lambda f: (f.prefix != "marker", f.prefix == "G", f.prefix))


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
        purge_versions: bool = False,
        config: ConfigFiles | None = None,
    ) -> None:
        self.fs = fs
        self.config = config  # the command's janitor.toml files, re-read if they changed
        self.purge_versions = purge_versions  # versioned buckets: drop what deleted objects leave
        self.trash = trash
        self.truncate = truncate
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.on_removed = on_removed
        self._journals: dict[str, _JournalState] = {}
        self._journals_lock = threading.Lock()  # runs may be carried out at once (run_all)
        self._config_lock = threading.Lock()  # the janitor.toml view the runs share

    def execute(self, shown: RunPlan, in_flight: Container[str] = frozenset()) -> RunResult:
        """Carry out ``shown`` under the run's lock, re-planned by its own planner on the run
        as it is then; ``in_flight`` files are never opened."""
        run = shown.run
        if not shown.removals:
            return RunResult(run.path)
        try:
            with run_lock(run.path, self.lock_timeout, self.fs):
                try:
                    return self._execute_locked(shown, in_flight)
                except JournalError as exc:  # not a lock failure: say what it is
                    return RunResult(run.path, errors=(FileError(exc.path, exc.text),))
        except LockTimeout:
            return RunResult(
                run.path,
                skipped=(
                    f"{run.path}: another janitor is working on this run "
                    f"(waited {self.lock_timeout:g} s); skipped",
                ),
            )
        except OSError as exc:
            lock = layout.lock_path(run.path)
            return RunResult(
                run.path, errors=(FileError(lock, f"cannot lock run: {disk_full_text(lock, exc)}"),)
            )

    def _execute_locked(self, shown: RunPlan, in_flight: Container[str]) -> RunResult:
        run = shown.run
        journal = Journal(layout.state_dir(run.path), self.fs)
        try:
            fresh_run = rescan_run(run, self.fs, in_flight)
        except OSError as exc:
            return RunResult(run.path, errors=(FileError(run.path, _error_text(exc)),))
        now = self.clock()
        try:
            guarded = self._law(shown, fresh_run, now)
        except JanitorError as exc:  # pins cannot be read: nothing of this run is removed
            return RunResult(run.path, errors=(FileError(run.path, str(exc)),))
        fresh = shown.planner.plan(fresh_run, now)
        fresh_remove = {d.set.number: d.set for d in fresh.removals}
        state = self._journal_state(journal)
        unfinished = state.unfinished.setdefault(run.path, set())
        removed: list[Removed] = []
        errors: list[FileError] = []
        skipped: list[str] = []
        notes: list[str] = []
        with self._journals_lock:  # said once, by one of the runs carried out at once
            torn, state.torn_reported = state.torn_line and not state.torn_reported, True
        if torn:
            notes.append(
                f"journal {journal.path}: its last line was cut short "
                "(janitor was killed while writing it); ignored"
            )
        present = {s.number for s in fresh_run.sets}
        truncate = self.truncate if self.truncate is not None else under_drive(run.path, self.fs)
        policy = shown.planner.describe()
        if self.trash and self.fs.local_path(run.path) and nearly_full(run.path):
            notes.append(
                f"{disk_text(run.path)}: moving to the trash on the same disk frees "
                "nothing (`janitor trash empty`, or a prune without --trash, does)"
            )
        # a removal frees room for its own records; a move to the trash does not
        with journal.writer(state.mine, by_name=not self.trash) as log:
            found_finished = sorted(unfinished - present)
            for number in found_finished:
                log.append(self._record("set-end", run.path, number, note="found finished"))
                unfinished.discard(number)  # our own set-end is read back next time too
            if found_finished:
                notes.append(interrupted(run.name, [f"step {n}" for n in found_finished],
                                         "{} had already completed"))  # fmt: skip
            finishing: list[str] = []  # labels of the sets whose removal a stop interrupted
            ready = []  # (planned, current set, reasons), each checked against the fresh plan
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
                protected = guarded.get(planned.number)
                if protected:
                    why = "; ".join(protected)
                    skipped.append(f"{planned.label}: protected ({why}); left alone")
                    with contextlib.suppress(JournalError):  # said in the output in any case
                        log.append(self._record("refused", run.path, planned.number,
                                                reasons=protected, policy=policy))  # fmt: skip
                    continue
                if planned.number in unfinished:
                    finishing.append(planned.label)
                ready.append((planned, current, list(decision.reasons)))
            if finishing:
                notes.append(interrupted(run.name, finishing, "finishing {}"))
            in_trash = None  # the run's trash folder, listed once (``RunTrash``)
            until = _until_free(shown.planner)
            per = 1 if until else SETS_PER_WRITE  # a floor is looked at before each set
            for at in range(0, len(ready), per):
                begun = []
                for planned, current, reasons in ready[at : at + per]:
                    met = self._floor_met(run.path, until.get(planned.number))
                    if met:
                        skipped.append(f"{planned.label}: {met}; left alone")
                        continue
                    dests, copy = {}, None
                    if self.trash:
                        resume = planned.number in unfinished
                        try:
                            if in_trash is None:
                                in_trash = RunTrash(self.fs, run.path)
                            dests, copy = in_trash.destinations(current, resume)
                        except OSError as exc:
                            errors.append(FileError(layout.trash_dir(run.path), _error_text(exc)))
                            continue
                    begun.append((planned, current, reasons, dests, copy))
                if not begun:
                    continue
                try:
                    log.append(*(
                        self._record(
                            "set-begin", run.path, planned.number,
                            files=[f.name for f in current.files], reasons=reasons, policy=policy,
                        )
                        for planned, current, reasons, _, _ in begun
                    ))  # fmt: skip
                except JournalError as exc:  # no record, no removal: the rest stays
                    errors.append(FileError(exc.path, f"{exc.text}; {len(begun)} sets left alone"))
                    break
                done: list[dict] = []  # the sets' records, written with their set-ends at once
                for planned, current, reasons, dests, copy in begun:
                    done.extend(self._remove_set(run.path, planned.number, planned.step, current,
                                                 reasons, policy, dests, copy, truncate, removed,
                                                 errors))  # fmt: skip
                    unfinished.discard(planned.number)
                try:
                    log.append(*done)  # one write; a kill before it: set-begins, finished later
                except JournalError as exc:  # the set-begins stand: the next prune finishes them
                    errors.append(FileError(exc.path, exc.text))
                    break
        if self.purge_versions and removed:
            self._purge(removed, errors, notes)
        return RunResult(run.path, tuple(removed), tuple(errors), tuple(skipped), tuple(notes))

    def _config_of(self, run_path: str) -> ConfigFiles:
        """The janitor.toml files as they are now: the command's (``config``) while none of
        the run's files changed since it read them (stats only), else read again (a pin
        written since the plan counts)."""
        with self._config_lock:
            if self.config is None or not self.config.unchanged(run_path):
                self.config = ConfigFiles(self.fs)
            return self.config

    def _floor_met(self, run: str, target: int | None) -> str | None:
        """For a set taken for min-free: whether the floor is met now (by this janitor's
        removals or anyone else's), in words; None: the set is still needed."""
        if target is None:
            return None
        free = platform.free_bytes(self.fs.local_path(run) or run)
        if free is None or free < target:
            return None
        return f"min-free met ({size_text(free)} free, {size_text(target)} wanted)"

    def _law(self, shown: RunPlan, fresh_run, now: float) -> dict[int, list[str]]:
        """The protection law on the run as it is now: its pins read again (and the plan's,
        if it had more), and the waiver the plan's planner claims, if the law lets it be
        used here (finalize: verified small models; fix-resume: to the trash only)."""
        planner = shown.planner
        pins = self._config_of(fresh_run.path).pins(fresh_run.path)
        pins |= frozenset(getattr(planner, "pins", ()))
        waiver = getattr(planner, "waiver", None)
        if waiver is not None and waiver.usable(self.trash) is not None:
            waiver = None
        return law.judge(fresh_run, pins, now, waiver)

    def _remove_set(
        self, run: str, number: int, step: int | None, current: CheckpointSet,
        reasons: list[str], policy: str, dests: dict[str, str], copy: str | None,
        truncate: bool, removed: list[Removed], errors: list[FileError],
    ) -> list[dict]:  # fmt: skip
        """Remove (or move to the trash) one set's files, G last, then its emptied folders;
        its journal records, ending with its set-end. A file that cannot be removed stops
        the set there (said in ``errors``, and by ``failed`` in its set-end)."""
        done: list[dict] = []
        failed = False
        if current.folder and self.trash:  # a folder set moves to the trash whole
            try:
                trash_path = self._remove_one(current, dests[current.name], truncate)
            except OSError as exc:
                errors.append(FileError(current.folder, _error_text(exc)))
                failed = True
            else:
                item = Removed(current.folder, current.size, number, trash_path)
                removed.append(item)
                done.append(
                    self._record(
                        "trash", run, number, path=current.folder, size=current.size,
                        step=step, reasons=reasons, policy=policy, trash_path=trash_path,
                        copy=copy, folder=True,
                    )
                )  # fmt: skip
                if self.on_removed:
                    self.on_removed(item)
            done.append(self._record("set-end", run, number, failed=failed))
            return done
        for f in _removal_order(current):
            linked = not dests and self._linked(f.path)
            try:
                trash_path = self._remove_one(f, dests.get(f.name), truncate)
            except OSError as exc:
                errors.append(FileError(f.path, _error_text(exc)))
                failed = True
                break
            item = Removed(f.path, f.size, number, trash_path, linked)
            removed.append(item)
            done.append(
                self._record(
                    "trash" if trash_path else "remove", run, number, path=f.path,
                    size=f.size, step=step, reasons=reasons, policy=policy,
                    trash_path=trash_path, copy=copy, linked=linked or None,
                )
            )  # fmt: skip
            if self.on_removed:
                self.on_removed(item)
        if current.folder and not failed:  # then the folders, emptied, deepest first
            try:
                self._remove_folders(current.folder)
            except OSError as exc:
                errors.append(FileError(current.folder, _error_text(exc)))
                failed = True
            else:
                done.append(self._record("remove-folder", run, number, path=current.folder))
        done.append(self._record("set-end", run, number, failed=failed))
        return done

    def _purge(self, removed: list[Removed], errors: list[FileError], notes: list[str]) -> None:
        """On a versioned bucket: the noncurrent versions of exactly the objects removed
        here (a trashed object's copy in the trash stays), nothing else."""
        try:
            count, nbytes = self.fs.purge_versions([r.path for r in removed])
        except OSError as exc:
            errors.append(FileError(removed[0].path, f"old versions: {_error_text(exc)}"))
            return
        if count:
            notes.append(
                f"deleted {count} noncurrent versions ({nbytes:,} bytes) of removed objects"
            )

    def _journal_state(self, journal: Journal) -> _JournalState:
        """Interrupted sets per run. The journal is read once, then only what was appended
        since (by us or by another janitor, which holds a run's lock while it writes that
        run's records): under a logs root with many runs it is long."""
        with self._journals_lock:  # one reader at a time: each line is read once
            state = self._journals.setdefault(journal.path, _JournalState({}))
            records, state.offset, torn = journal.set_records_since(state.offset, state.mine)
            if torn and not state.seen:
                state.torn_line = True
            state.seen = True
            fold_unfinished(records, state.unfinished)
            return state

    def _record(self, event: str, run: str, number: int, **extra) -> dict:
        record = {"event": event, "time": now_iso(self.clock()), "run": run, "number": number}
        record.update({k: v for k, v in extra.items() if v is not None})
        return record

    def _remove_folders(self, folder: str) -> None:
        """Remove a checkpoint folder whose files are gone: its empty subfolders, deepest
        first, then itself. Anything else found there (a file written since the plan, a
        link) stops it with an error: only what was planned is ever removed."""
        for e in self.fs.listdir(folder):
            if e.kind != "dir":
                raise OSError(39, "Directory not empty (a file appeared since planning)", e.path)
            self._remove_folders(e.path)
        self.fs.rmdir(folder)

    def _linked(self, path: str) -> bool:
        """The file has another name (a hard link): removing this one frees nothing."""
        local = self.fs.local_path(path)
        return local is not None and link_count(local) > 1

    def _remove_one(
        self, f: CheckpointFile | CheckpointSet, trash_path: str | None, truncate: bool
    ) -> str | None:
        if trash_path is not None:
            self.fs.rename(f.folder if isinstance(f, CheckpointSet) else f.path, trash_path)
            return trash_path
        if truncate:  # Drive keeps deleted files in its trash, counted against the quota
            self.fs.truncate(f.path)
        self.fs.remove(f.path)
        return None


def _until_free(planner: object) -> Mapping[int, int]:
    """The sets a floor took (``RulesPlanner.until_free``), also under watch's wrapper."""
    while not hasattr(planner, "until_free") and hasattr(planner, "inner"):
        planner = planner.inner
    return getattr(planner, "until_free", {})


def _changed(planned: CheckpointSet, current: CheckpointSet) -> str | None:
    """Which file differs between planning and now (stat key: device, inode, size, mtime,
    ctime; verdict; membership), if any."""
    now = {f.name: f for f in current.files}
    for f in planned.files:
        c = now.get(f.name)
        if c is None or c.size != f.size or c.mtime != f.mtime or c.complete != f.complete:
            return f.name
        if c.key != f.key and c.key is not None and f.key is not None:
            return f.name
    extra = set(now) - {f.name for f in planned.files}
    return sorted(extra)[0] if extra else None
