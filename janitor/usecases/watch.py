"""`janitor watch`: prune (and extract) as the trainer writes, never touching a file in flight.

Threads: watchdog's observer (inotify, or polling for network/FUSE mounts) calls a handler
that only enqueues paths and can never raise; one worker thread does all the work, so a slow
prune never drops events. A checkpoint file counts as written when watchdog saw it closed
after writing, or its size and mtime have not changed for ``settle`` seconds, and it is a
structurally complete zip. Until then it is "in flight": never opened, never deleted, and
its set never counts as complete. When a file becomes written, its run is planned and
executed with the same plan/executor/lock/journal as ``prune``. A periodic full pass catches
anything missed. torch is never imported here: extraction runs in a child process.
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
from dataclasses import dataclass, field
from typing import Any

from janitor.core.profiles import looks_like_checkpoint_folder
from janitor.domain.errors import JanitorError
from janitor.domain.policy import Overrides
from janitor.domain.results import RunResult
from janitor.storage import layout
from janitor.storage.completeness import check_file
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.scan import read_run, scan
from janitor.usecases.executor import Executor
from janitor.usecases.prune import plan_run

_STOP = object()


@dataclass
class Pending:
    """A checkpoint file seen changing, not yet known to be fully written."""

    size: int = -1
    mtime: float = -1.0
    changed_at: float = 0.0
    closed: bool = False


class NotWritten:
    """Container of the paths the watcher has not seen fully written: every checkpoint file
    it has not confirmed (closed or settled, and complete) is in flight and never opened."""

    def __init__(self, written: Mapping[str, tuple[int, float]]) -> None:
        self.written = written

    def __contains__(self, path: object) -> bool:
        return path not in self.written


@dataclass
class Stats:
    actions: int = 0
    removed: int = 0
    freed: int = 0
    extracted: int = 0
    errors: int = 0
    events: int = 0


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
    """A checkpoint name, outside janitor's own state folder (trash moves are not saves)."""
    name = os.path.basename(path)
    return looks_like_checkpoint_folder({name}) and not layout.is_state_path(path)


class ExtractorChild:
    """One long-lived ``python -m janitor.torchio.worker`` (torch imported once, there)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def extract(self, path: str) -> dict:
        for _ in range(2):  # restart once if the child died
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "janitor.torchio.worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
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
    executor: Executor = field(default_factory=Executor)
    trainer: str | None = None
    log: Callable[[dict], None] = lambda record: None
    fs: FileSystem = LOCAL
    clock: Callable[[], float] = time.monotonic
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.pending: dict[str, Pending] = {}
        self.written: dict[str, tuple[int, float]] = {}  # confirmed written: (size, mtime)
        self.first_pass_done = False
        self.warned: set[tuple[str, str]] = set()
        self.dirty: set[str] = set()
        self.stop_event = threading.Event()
        self.extractor = ExtractorChild() if self.extract_on_save else None
        self.observer = None
        self.worker: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        roots = []
        for root in self.roots:
            try:
                real = self.fs.realpath(root)
                is_dir = self.fs.stat(real).kind == "dir"
            except OSError:
                is_dir = False
            if not is_dir:
                raise JanitorError(f"{root}: not a folder")
            roots.append(real)
        self.full_pass()
        if self.poll is not None:
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
                raise JanitorError(
                    "the system ran out of inotify watches; use --poll, or raise the limit: "
                    "sudo sysctl fs.inotify.max_user_watches=524288"
                ) from None
            raise JanitorError(f"cannot watch: {exc.strerror or exc}") from None
        self.observer = observer
        self.worker = threading.Thread(target=self._work, name="janitor-worker")
        self.worker.start()
        mode = f"polling every {self.poll:g} s" if self.poll is not None else "inotify"
        self.log({"event": "watching", "roots": roots, "mode": mode})

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
        next_rescan = self.clock() + self.rescan
        while not self.stop_event.is_set():
            now = self.clock()
            deadlines = [p.changed_at + self.settle for p in self.pending.values()]
            wait = min([next_rescan, *deadlines]) - now
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
            self.pending.pop(src, None)
            self.written.pop(src, None)
            if kind == "moved" and _interesting(dest):
                self.pending[dest] = Pending(changed_at=self.clock())
            return
        if not _interesting(src):
            return
        self.written.pop(src, None)
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
        """Move files that are written (closed, or unchanged for `settle` s) and complete out
        of `pending`; their runs become dirty."""
        now = self.clock()
        for path, p in list(self.pending.items()):
            if not p.closed and now - p.changed_at < self.settle:
                continue
            try:
                st = self.fs.stat(path)
            except FileNotFoundError:
                del self.pending[path]
                continue
            if not p.closed and (st.size, st.mtime) != (p.size, p.mtime):
                p.size, p.mtime, p.changed_at = st.size, st.mtime, now  # still moving
                continue
            del self.pending[path]
            if check_file(self.fs, path).complete:
                self.written[path] = (st.size, st.mtime)
                folder = os.path.dirname(path)
                self.dirty.add(folder)
                name = os.path.basename(path)
                if self.extractor is not None and name.startswith("G_"):
                    self._extract(path)

    def in_flight(self) -> NotWritten:
        return NotWritten(self.written)

    # ------------------------------------------------------------ actions

    def _extract(self, path: str) -> None:
        reply = self.extractor.extract(path)
        if reply.get("ok"):
            if not reply.get("skipped"):
                self.stats.extracted += 1
            self.log({"event": "extracted", "source": path, "output": reply["output"],
                      "skipped": reply.get("skipped", False)})  # fmt: skip
        else:
            self.stats.errors += 1
            self.log({"event": "extract-failed", "source": path, "error": reply.get("error")})

    def full_pass(self) -> None:
        """Scan everything. The first pass reads every file (nothing is known yet) and
        registers the complete ones as written; later passes never open unconfirmed files."""
        flight = self.in_flight() if self.first_pass_done else frozenset()
        try:
            report = scan(list(self.roots), fs=self.fs, trainer=self.trainer, in_flight=flight)
        except JanitorError as exc:
            self.log({"event": "error", "message": str(exc)})
            return
        if not self.first_pass_done:
            for run in report.runs:
                for f in run.files:
                    if f.complete:
                        self.written[f.path] = (f.size, f.mtime)
            self.first_pass_done = True
        for err in report.errors:
            self.log({"event": "error", "path": err.path, "message": err.message})
        for run in report.runs:
            self.process(run.path)

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
        rp = plan_run(run, self.overrides, time.time(), self.fs)
        for trap in rp.traps:  # resume traps: said once per run, never acted on
            if (run.path, trap.message) not in self.warned:
                self.warned.add((run.path, trap.message))
                self.log({"event": "warning", "run": run.path, "message": trap.message})
        if not rp.removals:
            return None
        result = self.executor.execute(rp, flight)
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
        return result
