"""Plans: what will be kept and removed in each run, why, and what made the plan. No I/O.

A ``RunPlan`` carries its ``Planner``: the executor re-plans through it under the run's lock,
and the journal records ``planner.describe()`` (the rules and where each value came from, or
finalize with its steps, or fix-resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

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


WaiverKind = Literal["finalize", "fix-resume", "remove-incomplete"]


@dataclass(frozen=True)
class Waiver:
    """A named exception to the protection law (``core.law``), claimed by a planner; the law
    decides which sets it covers, and ``usable`` whether it may be used for a removal now."""

    kind: WaiverKind
    older_than: float | None = None  # remove-incomplete: the age a leftover must have
    verified: bool = False  # finalize: the small models it keeps exist and were verified

    def usable(self, trash: bool) -> str | None:
        """Why this waiver cannot be used for a removal now (None: it can)."""
        if self.kind == "finalize" and not self.verified:
            return "finalize's small models are not verified"
        if self.kind == "fix-resume" and not trash:
            return "fix-resume moves to the trash only"
        if self.kind == "remove-incomplete" and self.older_than is None:
            return "remove-incomplete needs an age"
        return None


class Planner(Protocol):
    """Decides, for a run as it is now, which sets go. Pure: same run, same plan. It starts
    from the protection law (``core.law``); ``waiver`` is the one named exception to the law
    it claims, if any (the executor asks the law again before each removal)."""

    kind: str  # "rules" | "finalize" | "fix-resume"
    waiver: Waiver | None

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
    """What ``scan`` says of a run beyond its files: resume traps, what ``prune`` under the
    run's own rules (``prune_rules``, their description) and ``finalize`` would free, and
    whether training looks finished. ``prune_frees`` counts sets a lazy scan left unchecked
    as complete (an upper bound: ``run.unchecked``); None when prune would refuse the rules
    (a trap says why). ``keep_last_1_frees``: the same under ``keep-last 1``."""

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
    prune_frees: int | None = None
    prune_rules: str | None = None
