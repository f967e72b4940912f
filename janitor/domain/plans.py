"""Plans: what will be kept and removed in each run, why, and what made the plan. No I/O.

A ``RunPlan`` carries its ``Planner``: the executor re-plans through it under the run's lock,
and the journal records ``planner.describe()`` (the rules and where each value came from, or
finalize with its steps, or fix-resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from janitor.domain.checkpoints import CheckpointSet, Run, ScanError


@dataclass(frozen=True, slots=True)
class Trap:
    """A layout in which the trainer's own resume would pick the wrong file."""

    code: str  # stable identifier for --json
    message: str  # one line: what and the consequence


class SetDecision(NamedTuple):
    """Keep or remove one set, and why. A named tuple: a plan at scale makes 100,000."""

    set: CheckpointSet
    keep: bool
    reasons: tuple[str, ...]


class Planner(Protocol):
    """Decides, for a run as it is now, which sets go. Pure: same run, same plan."""

    kind: str  # "rules" | "finalize" | "fix-resume"

    def plan(self, run: Run, now: float) -> RunPlan: ...

    def describe(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunPlan:
    run: Run
    planner: Planner
    decisions: tuple[SetDecision, ...]  # by number, ascending; pretrained bases included
    notes: tuple[str, ...] = ()
    traps: tuple[Trap, ...] = ()

    @property
    def removals(self) -> tuple[SetDecision, ...]:
        return tuple(d for d in self.decisions if not d.keep)

    @property
    def expected_freed(self) -> int:
        return sum(d.set.size for d in self.removals)


@dataclass(frozen=True)
class Plan:
    runs: tuple[RunPlan, ...]
    errors: tuple[ScanError, ...] = ()

    @property
    def expected_freed(self) -> int:
        return sum(r.expected_freed for r in self.runs)


@dataclass(frozen=True)
class RunSummary:
    """What ``scan`` says of a run beyond its files: resume traps, what ``prune --keep-last 1``
    and ``finalize`` would free, and whether training looks finished."""

    run: Run
    traps: tuple[Trap, ...]
    keep_last_1_frees: int
    finalize_frees: int
    idle: float  # seconds since the last write
    looks_finished: bool
    trash_bytes: int = 0  # this run's files in janitor's trash (still on disk)
    trash_files: int = 0
    journal: str | None = None  # the journal that records this run's removals, if any
    sources: Mapping[str, str] = field(default_factory=dict)  # janitor.toml rule -> its file
    pin_sources: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # step -> files
