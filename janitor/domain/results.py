"""What an execution did: files removed or moved to the trash, per-file errors, sets left
alone and why. Raw numbers (bytes); no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from janitor.domain.checkpoints import CheckpointSet, Run
from janitor.domain.errors import PathProblem
from janitor.domain.extract import SmallModelCheck
from janitor.domain.plans import RunPlan


@dataclass(frozen=True, slots=True)
class Removed:
    path: str
    size: int
    number: int
    trash_path: str | None = None  # set when the file was moved to the trash, not deleted
    linked: bool = False  # deleted, but another hard link keeps its bytes on disk


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
        """Bytes that left the disk (a move to the trash frees nothing, nor does removing
        one name of a file that has another: ``freed_linked``)."""
        return sum(r.size for r in self.removed if r.trash_path is None and not r.linked)

    @property
    def freed_linked(self) -> int:
        """Bytes of files deleted whose data stays on disk under another hard link."""
        return sum(r.size for r in self.removed if r.linked)

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
    def freed_linked(self) -> int:
        return sum(r.freed_linked for r in self.results)

    @property
    def errors(self) -> tuple[FileError, ...]:
        return tuple(e for r in self.results for e in r.errors)


@dataclass(frozen=True)
class Kept:
    """A step whose small model must exist (and be verified) before anything goes."""

    step_set: CheckpointSet
    why: str
    small: SmallModelCheck

    @property
    def output(self) -> str:
        return self.small.output

    @property
    def epoch(self) -> int:
        return self.small.epoch

    @property
    def step(self) -> int:
        return self.small.step

    @property
    def action(self) -> str:
        return self.small.action

    @property
    def problems(self) -> tuple[str, ...]:
        return self.small.problems


@dataclass(frozen=True)
class RunFinal:
    run: Run
    kept: tuple[Kept, ...] = ()
    refused: str | None = None  # why nothing is removed from this run
    plan: RunPlan | None = None
    result: RunResult | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def expected_freed(self) -> int:
        return self.plan.expected_freed if self.plan else 0
