"""`janitor watch`: prune (and extract) as the trainer writes, never touching a file in flight.

Threads: watchdog's observer (inotify, or polling for network/FUSE mounts) calls a handler
that only enqueues paths and can never raise; one worker thread does all the work, so a slow
prune never drops events. A checkpoint file counts as written when watchdog saw it closed
after writing, or its size and mtime have not changed for ``settle`` seconds, and it is a
structurally complete zip. Until then it is "in flight": never opened, never deleted, and
its set never counts as complete. When a file becomes written, its run is planned and
executed with the same plan/executor/lock/journal as ``prune``. A periodic full pass catches
anything missed. torch is never imported here: extraction runs in a child process.

With ``--extract-on-save`` no G goes before its small model exists and was verified (in the
child, tensor by tensor); a set whose small model cannot be made stays, and says why. Resume
warnings wait until the run has been quiet for ``settle`` seconds: a save in progress is not
a trap, a file that stays incomplete is.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from janitor.core import law
from janitor.core.law import IN_FLIGHT_PROBLEM
from janitor.core.profiles import looks_like_checkpoint_folder, run_folder_of
from janitor.domain.checkpoints import Run
from janitor.domain.errors import JanitorError
from janitor.domain.plans import Planner, RunPlan, SetDecision
from janitor.domain.policy import Overrides
from janitor.domain.results import RunResult
from janitor.domain.rules import rules
from janitor.storage import layout, platform
from janitor.storage.completeness import check_file
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.scan import read_run, scan
from janitor.usecases.executor import Executor
from janitor.usecases.pressure import relieve
from janitor.usecases.prune import Pruner, plan_run

_STOP = object()
REMOTE_POLL = 60.0  # seconds between listings of a bucket when --poll is not given
DEFAULT_INTERVAL = 600.0  # seconds between saves assumed until the watcher saw two
KEEP_UNVERIFIED = "small model not yet extracted/verified (--extract-on-save)"


@dataclass
class Pending:
    """A checkpoint file seen changing, not yet known to be fully written."""

    size: int = -1
    mtime: float = -1.0
    changed_at: float = 0.0
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Verified:
    """A G whose small model was extracted (or found) and verified against it."""

    g: tuple[int, float]  # the G's size and mtime at the time
    small: str  # the small model's path
    small_stat: tuple[int, float]  # its size and mtime at the time


class NotWritten:
    """Container of the paths the watcher has not seen settled: every checkpoint file it has
    not confirmed (closed, or unchanged for ``settle`` s) is in flight and never opened."""

    def __init__(self, settled: Mapping[str, tuple[int, float]]) -> None:
        self.settled = settled

    def __contains__(self, path: object) -> bool:
        return path not in self.settled


@dataclass
class Stats:
    actions: int = 0
    removed: int = 0
    freed: int = 0
    extracted: int = 0
    errors: int = 0
    events: int = 0


@dataclass(frozen=True)
class ExtractFirst:
    """``--extract-on-save``: the rules' plan, in which a set whose G has no verified small
    model stays. Carried by the plan, so the executor's fresh plan under the lock keeps such
    a set too."""

    inner: Planner
    keep_unverified: Callable[[RunPlan], RunPlan]
    kind: str = "rules"

    @property
    def waiver(self):
        """The rules' own waiver (remove-incomplete), if any: keeping more claims no other."""
        return getattr(self.inner, "waiver", None)

    @property
    def pins(self) -> frozenset[int]:
        return frozenset(getattr(self.inner, "pins", ()))

    def plan(self, run: Run, now: float) -> RunPlan:
        return self.keep_unverified(self.inner.plan(run, now))

    def describe(self) -> str:
        return f"{self.inner.describe()}; extract-on-save"

    def as_dict(self) -> dict[str, Any]:
        return {**self.inner.as_dict(), "extract_on_save": True, "description": self.describe()}


class Handler:
    """watchdog event handler: enqueue and return. Never raises."""

    def __init__(self, q: queue.Queue) -> None:
        self.q = q

    def dispatch(self, event: Any) -> None:
        try:
            kind = event.event_type
            if kind in ("opened", "closed_no_write"):
                return  # our own completeness checks and readers: not a change
            self.q.put((kind, os.fsdecode(event.src_path), os.fsdecode(event.dest_path or "")))
        except BaseException:  # noqa: BLE001 - a handler must never take the observer down
            pass


def _interesting(path: str) -> bool:
    """A checkpoint name or a file inside a checkpoint folder, outside janitor's own state
    folder (trash moves are not saves)."""
    name = os.path.basename(path)
    inside = run_folder_of(path) != os.path.dirname(path)
    return (inside or looks_like_checkpoint_folder({name})) and not layout.is_state_path(path)


class ExtractorChild:
    """One long-lived ``python -m janitor.torchio.worker`` (torch imported once, there)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def extract(self, path: str) -> dict:
        for _ in range(2):  # restart once if the child died
            if self.proc is None or self.proc.poll() is not None:
                # its own session: a Ctrl-C in the terminal stops the watcher, which closes
                # the child's stdin; the child finishes the file in hand and exits
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "janitor.torchio.worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                    start_new_session=True,
                )  # fmt: skip
            try:
                self.proc.stdin.write(json.dumps({"path": path}) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if line:
                return json.loads(line)
            self.close()
        return {"ok": False, "path": path, "error": "extraction worker died"}

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@dataclass
class Watcher:
    roots: Sequence[str]
    overrides: Overrides
    poll: float | None = None  # seconds between polls; None: inotify (native observer)
    settle: float = 10.0
    rescan: float = 600.0
    extract_on_save: bool = False
    extractor: Any = None  # .extract(path) -> reply dict; default: an ExtractorChild
    executor: Executor = field(default_factory=Executor)
    trainer: str | None = None
    log: Callable[[dict], None] = lambda record: None
    # (runs done, runs in all) during the first full pass, which reads every file
    progress: Callable[[int, int], None] = lambda done, total: None
    fs: FileSystem = LOCAL
    clock: Callable[[], float] = time.monotonic
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.pending: dict[str, Pending] = {}
        # settled: not being written (closed, or unchanged for `settle` s): (size, mtime).
        # Complete or not: a settled file is read (its tail) like `prune` reads it.
        self.settled: dict[str, tuple[int, float]] = {}
        self.first_pass_done = False
        self.passes = 0  # full passes so far
        self.warned: set[tuple[str, str]] = set()
        self.activity: dict[str, float] = {}  # run folder -> clock of its last checkpoint change
        self.deferred: dict[str, float] = {}  # run folder -> when to look at its warnings again
        self.dirty: set[str] = set()
        self.verified: dict[str, Verified] = {}  # G path -> its verified small model
        self.failed: dict[str, tuple[int, float, int, str]] = {}  # G -> size, mtime, pass, why
        self.known: set[str] = set()  # run folders seen (min-free looks across them)
        self.saves: dict[str, list[float]] = {}  # run folder -> clock of each G settled
        self.said: set[str] = set()  # pressure warnings already logged
        self.passing = False  # in a full pass: min-free waits for its end
        self.stop_event = threading.Event()
        if self.extract_on_save and self.extractor is None:
            self.extractor = ExtractorChild()
        self.observer = None
        self.worker: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        roots = []
        for root in self.roots:
            if not self.fs.is_dir(root):
                raise JanitorError(f"{root}: not a folder")
            roots.append(self.fs.realpath(root))
        if self.fs.local_path(roots[0]) is None:  # object storage: listings, no events
            from watchdog.observers.polling import PollingObserverVFS

            from janitor.storage.polling import ListingStat

            self.poll = self.poll or REMOTE_POLL
            listing = ListingStat(self.fs)
            observer = PollingObserverVFS(listing.stat, listing.listdir, polling_interval=self.poll)
        elif self.poll is not None:
            from watchdog.observers.polling import PollingObserver

            observer = PollingObserver(timeout=self.poll)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        handler = Handler(self.q)
        try:
            for root in roots:
                observer.schedule(handler, root, recursive=True)
            observer.start()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                raise JanitorError(platform.watch_limit_hint()) from None
            raise JanitorError(f"cannot watch: {exc.strerror or exc}") from None
        self.observer = observer
        mode = (
            f"polling every {self.poll:g} s" if self.poll is not None else platform.native_watcher()
        )
        self.log({"event": "watching", "roots": roots, "mode": mode})
        self.worker = threading.Thread(target=self._work, name="janitor-worker")
        self.worker.start()

    def stop(self) -> None:
        """Stop and join everything; an action in progress finishes first."""
        self.stop_event.set()
        self.q.put(_STOP)
        if self.observer is not None:
            self.observer.stop()
            self.observer.join()
        if self.worker is not None:
            self.worker.join()
        if self.extractor is not None:
            self.extractor.close()
        self.log({"event": "stopped", **self.stats.__dict__})

    # ------------------------------------------------------------ the worker

    def _work(self) -> None:
        """The first full pass, then events, settling and periodic passes, until stopped.
        (Events that come during the first pass wait in the queue.)"""
        next_rescan = self.clock() + self.rescan
        try:
            self.full_pass()
        except Exception as exc:  # the watcher keeps watching
            self.stats.errors += 1
            self.log({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        while not self.stop_event.is_set():
            now = self.clock()
            deadlines = [p.changed_at + self.settle for p in self.pending.values()]
            wait = min([next_rescan, *deadlines, *self.deferred.values()]) - now
            try:
                item = self.q.get(timeout=max(0.0, wait))
                while item is not _STOP:
                    self._note(item)
                    item = self.q.get_nowait()
            except queue.Empty:
                pass
            if self.stop_event.is_set():
                break
            self._settle()
            try:
                for folder in sorted(self.dirty):
                    self.dirty.discard(folder)
                    self.process(folder)
                    if self.stop_event.is_set():
                        break
                if self.clock() >= next_rescan:
                    next_rescan = self.clock() + self.rescan
                    self.full_pass()
            except Exception as exc:  # the watcher keeps watching
                self.stats.errors += 1
                self.log({"event": "error", "message": f"{type(exc).__name__}: {exc}"})

    def _note(self, item: tuple[str, str, str]) -> None:
        kind, src, dest = item
        self.stats.events += 1
        if kind in ("deleted", "moved"):
            for known in (self.pending, self.settled, self.verified, self.failed):
                known.pop(src, None)
            if kind == "moved" and _interesting(dest):
                self.pending[dest] = Pending(changed_at=self.clock())
                self.activity[run_folder_of(dest)] = self.clock()
            return
        if not _interesting(src):
            return
        self.settled.pop(src, None)
        self.activity[run_folder_of(src)] = self.clock()
        p = self.pending.setdefault(src, Pending())
        if kind == "closed":
            p.closed = True
            return
        p.changed_at, p.closed = self.clock(), False
        try:
            st = self.fs.stat(src)
            p.size, p.mtime = st.size, st.mtime
        except OSError:
            pass

    def _settle(self) -> None:
        """Move files that are settled (closed, or unchanged for `settle` s) out of `pending`;
        their runs become dirty. A settled complete G gets its small model (--extract-on-save).
        Runs whose warnings were put off become dirty when their time comes."""
        now = self.clock()
        for path, p in list(self.pending.items()):
            if not p.closed and now - p.changed_at < self.settle:
                continue
            try:
                st = self.fs.stat(path)
            except FileNotFoundError:
                del self.pending[path]
                continue
            except OSError:
                p.changed_at = now  # unreadable for now: in flight, looked at again later
                continue
            if not p.closed and (st.size, st.mtime) != (p.size, p.mtime):
                p.size, p.mtime, p.changed_at = st.size, st.mtime, now  # still moving
                continue
            del self.pending[path]
            self.settled[path] = (st.size, st.mtime)
            self.dirty.add(run_folder_of(path))
            if os.path.basename(path).startswith("G_"):  # a save completed: its interval
                self.saves.setdefault(run_folder_of(path), []).append(now)
            try:
                complete = check_file(self.fs, path).complete
            except OSError:
                complete = False
            if complete and self.extractor is not None and os.path.basename(path).startswith("G_"):
                self._ensure_small(path, st.size, st.mtime)
        for folder, when in list(self.deferred.items()):
            if when <= now:
                del self.deferred[folder]
                self.dirty.add(folder)

    def in_flight(self) -> NotWritten:
        return NotWritten(self.settled)

    # ------------------------------------------------------------ actions

    def _unverified(self, path: str, size: int, mtime: float, problem: str | None) -> str | None:
        """Why the G at ``path`` (as planned: size, mtime, completeness problem) has no
        verified small model; None when it has one. Looks only: never extracts."""
        v = self.verified.get(path)
        if v is not None and v.g == (size, mtime):
            try:
                st = self.fs.stat(v.small)
                if (st.size, st.mtime) == v.small_stat:
                    return None
            except OSError:
                pass
            return f"{v.small} changed or went away since it was verified"
        if problem is not None:
            return f"{os.path.basename(path)} is incomplete ({problem}): no small model from it"
        failed = self.failed.get(path)
        if failed is not None and failed[:2] == (size, mtime):
            return failed[3]
        return "not extracted yet"

    def _ensure_small(self, path: str, size: int, mtime: float, problem: str | None = None) -> None:
        """Extract and verify the G's small model in the child, unless it is verified already
        (each G once per size and mtime) or failed already in this full pass."""
        why = self._unverified(path, size, mtime, problem)
        if why is None:
            return
        failed = self.failed.get(path)
        if failed is not None and failed[:3] == (size, mtime, self.passes):
            return
        if problem is not None:  # never read a file that is incomplete
            self._failed(path, size, mtime, why)
            return
        reply = self.extractor.extract(path)
        if not reply.get("ok"):
            self._failed(path, size, mtime, reply.get("error") or "extraction failed")
            return
        try:
            small, g = self.fs.stat(reply["output"]), self.fs.stat(path)
        except OSError as exc:
            self._failed(path, size, mtime, f"{exc.filename}: gone right after extraction")
            return
        if (g.size, g.mtime) != (size, mtime):
            self._failed(path, size, mtime, f"{path}: changed while its small model was made")
            return
        self.verified[path] = Verified((size, mtime), reply["output"], (small.size, small.mtime))
        self.failed.pop(path, None)
        if not reply.get("skipped"):
            self.stats.extracted += 1
        self.log({"event": "extracted", "source": path, "output": reply["output"],
                  "skipped": reply.get("skipped", False), "verified": True})  # fmt: skip

    def _failed(self, path: str, size: int, mtime: float, why: str) -> None:
        """Remember a G without a verified small model; say so once per file and reason."""
        before = self.failed.get(path)
        self.failed[path] = (size, mtime, self.passes, why)
        if before is None or (before[0], before[1], before[3]) != (size, mtime, why):
            self.stats.errors += 1
            self.log({"event": "extract-failed", "source": path, "error": why})

    def plan(self, run: Run) -> RunPlan:
        """`prune`'s plan for the run; with --extract-on-save, a set whose G has no verified
        small model is kept. Also the executor's fresh plan under the lock: looks only."""
        return self._keep_unverified(plan_run(run, self.overrides, time.time(), self.fs))

    def _keep_unverified(self, rp: RunPlan) -> RunPlan:
        """The plan with every set kept whose G has no verified small model; its planner
        does the same again for the executor's fresh plan under the lock."""
        if self.extractor is None:
            return rp
        planner = rp.planner
        if not isinstance(planner, ExtractFirst):
            planner = ExtractFirst(planner, self._keep_unverified)
        if not rp.removals:
            return replace(rp, planner=planner)
        decisions = []
        for d in rp.decisions:
            g = None if d.keep else d.set.file(rp.run.profile.generator)
            why = None if g is None else self._unverified(g.path, g.size, g.mtime, g.problem)
            if why is not None:
                detail = "" if why == "not extracted yet" else f": {why}"
                d = SetDecision(d.set, True, (KEEP_UNVERIFIED + detail,))
            decisions.append(d)
        return replace(rp, planner=planner, decisions=tuple(decisions))

    def full_pass(self) -> None:
        """Scan everything. The first pass reads every file (nothing is known yet): the
        complete ones are settled, incomplete ones may be a save in progress and get `settle`
        seconds (they are pending); later passes never open unsettled files. Extractions
        that failed are tried again once per full pass."""
        self.passes += 1
        flight = self.in_flight() if self.first_pass_done else frozenset()
        try:
            report = scan(list(self.roots), fs=self.fs, trainer=self.trainer, in_flight=flight)
        except JanitorError as exc:
            self.log({"event": "error", "message": str(exc)})
            return
        first = not self.first_pass_done
        if first:
            now = self.clock()
            for run in report.runs:
                for f in run.files:
                    if f.complete:
                        self.settled[f.path] = (f.size, f.mtime)
                    else:
                        self.pending.setdefault(f.path, Pending(f.size, f.mtime, now))
            self.first_pass_done = True
        for err in report.errors:
            self.log({"event": "error", "path": err.path, "message": err.message})
        self.passing = True  # the limits look across runs once every run was read
        try:
            for i, run in enumerate(report.runs, 1):
                if self.stop_event.is_set():
                    break
                self.process(run.path)
                if first:
                    self.progress(i, len(report.runs))
        finally:
            self.passing = False
        self._relieve()

    def process(self, folder: str) -> RunResult | None:
        """Plan and execute one run, exactly as `prune` would (in-flight files excluded)."""
        flight = self.in_flight()
        try:
            run = read_run(folder, self.fs, self.trainer, flight)
        except FileNotFoundError:
            return None  # the run folder was removed or renamed: not an error
        except OSError as exc:
            self.log({"event": "error", "path": folder, "message": exc.strerror or str(exc)})
            return None
        if run is None:
            return None
        self.known.add(run.path)
        pruner = Pruner(self.overrides, self.executor, self.fs)  # the same use case as prune
        rp, result = pruner.run(run, in_flight=flight, prepare=self._prepare)
        if not self.passing:
            self._relieve()
        if result is None or not rp.removals:
            return None
        self._report(run, result)
        return result

    def _report(self, run: Run, result: RunResult) -> None:
        self.stats.actions += 1
        self.stats.removed += len(result.removed)
        self.stats.freed += result.freed
        self.stats.errors += len(result.errors)
        if result.removed:
            steps = sorted({r.number for r in result.removed})
            self.log({
                "event": "removed", "run": run.path, "steps": steps,
                "files": [os.path.basename(r.path) for r in result.removed],
                "freed": result.freed, "trashed": result.trashed,
            })  # fmt: skip
        for e in result.errors:
            self.log({"event": "error", "path": e.path, "message": e.message})
        for msg in result.skipped:
            self.log({"event": "skipped", "run": run.path, "message": msg})

    def _interval(self, folder: str) -> float:
        """The run's save interval as the watcher saw saves complete (600 s until two)."""
        seen = self.saves.get(folder, [])[-5:]
        gaps = sorted(b - a for a, b in zip(seen, seen[1:], strict=False))
        return gaps[len(gaps) // 2] if gaps else DEFAULT_INTERVAL

    def _has_limits(self) -> bool:
        """Whether min-free or max-total applies to a run seen: given to watch, or in the
        janitor.toml files of a run (read again: a file may change while watch runs)."""
        root_rules = rules("root")
        if any(getattr(self.overrides, r.name) is not None for r in root_rules):
            return True
        files = ConfigFiles(self.fs)
        for folder in sorted(self.known):
            try:
                policy, _ = files.policy_for(folder, self.overrides)
            except JanitorError:  # said when the run is planned
                continue
            if any(getattr(policy, r.name) is not None for r in root_rules):
                return True
        return False

    def _relieve(self) -> None:
        """min-free / max-total across every run seen: free space is kept at the floor plus
        the next save of every active run on that file system (its last set's size; active:
        written within twice its save interval), right after a save completes."""
        if not self._has_limits():
            return
        flight, now, clock = self.in_flight(), time.time(), self.clock()
        plans, room = [], {}
        for folder in sorted(self.known):
            try:
                run = read_run(folder, self.fs, self.trainer, flight)
            except OSError:
                continue
            if run is None:
                continue
            plans.append(self.plan(run))
            done = [x for x in run.sets if x.status == "complete" and not x.base]
            last = self.activity.get(folder, float("-inf"))
            if done and law.is_active(last, clock, 2 * self._interval(folder)):
                room[run.path] = max(done, key=lambda x: x.mtime).size
        relief = relieve(plans, now, self.fs, trash=self.executor.trash, headroom=room)
        for before, rp in zip(plans, relief.plans, strict=True):
            if rp is not before and rp.removals:
                self._report(rp.run, self.executor.execute(rp, flight))
        for line in relief.shortfalls(done=True):
            if line not in self.said:  # a next save will not fit, whatever janitor removes
                self.said.add(line)
                self.log({"event": "warning", "message": f"the next save will not fit: {line}"})

    def _prepare(self, rp: RunPlan) -> RunPlan:
        """Before a plan is carried out: resume traps said (once the run is quiet); with
        --extract-on-save every G that would go gets its small model first, and a set whose
        small model is not verified stays."""
        self._warn(rp.run, rp)
        if self.extractor is None:
            return rp
        for d in rp.removals:
            g = d.set.file(rp.run.profile.generator)
            if g is not None and not self.stop_event.is_set():
                self._ensure_small(g.path, g.size, g.mtime, g.problem)
        return self._keep_unverified(rp)

    def _warn(self, run: Run, rp: RunPlan) -> None:
        """Resume traps, said once each and never acted on, and only once the run has been
        quiet for `settle` s with nothing in flight: a save in progress is not a trap."""
        new = [t for t in rp.traps if (run.path, t.message) not in self.warned]
        if not new:
            return
        now = self.clock()
        quiet_at = self.activity.get(run.path, float("-inf")) + self.settle
        in_flight = any(f.problem == IN_FLIGHT_PROBLEM for f in run.files)
        if in_flight or any(run_folder_of(p) == run.path for p in self.pending):
            quiet_at = max(quiet_at, now + self.settle)  # a file of a save is being written
        if now < quiet_at:
            self.deferred[run.path] = quiet_at  # looked at again then (the run turns dirty)
            return
        for trap in new:
            self.warned.add((run.path, trap.message))
            self.log({"event": "warning", "run": run.path, "message": trap.message})
