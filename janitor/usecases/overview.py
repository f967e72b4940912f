"""What a web page shows of a logs root before anything is chosen: every run with its
summary (disk use, newest complete step, resume traps, small models, trash), whether it is
training now (``core.law.is_active``), and the free space of the file system holding the
root. Folders that are not runs for a trainer's own web UI are left out by name
(``skip``: Applio's ``logs/mute*`` and ``logs/reference``)."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from dataclasses import dataclass

from janitor.core import law
from janitor.domain.checkpoints import ScanError
from janitor.domain.plans import RunSummary
from janitor.storage import activity, platform
from janitor.storage.locate import storage_of
from janitor.usecases import commands

ACTIVE_IDLE = 30 * 60.0  # as finalize's --idle: a trainer's write this recent = training


@dataclass(frozen=True)
class RunView:
    summary: RunSummary
    active: bool  # training now (the protection law's word): prune and finalize refuse it


@dataclass(frozen=True)
class Overview:
    root: str
    runs: tuple[RunView, ...]
    errors: tuple[ScanError, ...] = ()
    warnings: tuple[str, ...] = ()
    free: int | None = None  # bytes free on the root's file system (None: cannot be told)

    @property
    def disk_use(self) -> int:
        return sum(v.summary.run.big_bytes + v.summary.run.small_bytes for v in self.runs)

    @property
    def trash_bytes(self) -> int:
        return sum(v.summary.trash_bytes for v in self.runs)

    def run(self, path: str) -> RunView | None:
        return next((v for v in self.runs if v.summary.run.path == path), None)


def overview(root: str, skip: Iterable[str] = (), now: float | None = None) -> Overview:
    """The runs under ``root`` (those whose folder name matches a ``skip`` pattern left
    out), each summarized as ``scan --json`` does, and the free space."""
    now = time.time() if now is None else now
    outcome = commands.scan_report([root], commands.ScanOptions())
    patterns = tuple(skip)
    fs, roots = storage_of([root])
    views = tuple(
        RunView(
            s,
            law.is_active(
                activity.last_trainer_write(s.run, fs),
                now,
                ACTIVE_IDLE,
                activity.trainer_alive(s.run, fs),
            ),
        )  # fmt: skip
        for s in outcome.summaries
        if not any(fnmatch.fnmatch(s.run.name, p) for p in patterns)
    )
    local = fs.local_path(roots[0])
    free = platform.free_bytes(local) if local is not None else None
    return Overview(roots[0], views, outcome.report.errors, outcome.warnings, free)
