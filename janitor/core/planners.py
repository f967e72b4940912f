"""Planners: pure functions from a run (and the inputs already read for it: pins, metric
values, rules) to a ``RunPlan``. The plan carries its planner, so the executor can plan again
under the run's lock with exactly the same rules, and the journal can say what decided.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from janitor.core.policy import IN_FLIGHT_PROBLEM, PINNED, SETTLED_AFTER, apply
from janitor.core.resume import half_written, stale_sets, traps
from janitor.domain.checkpoints import Run
from janitor.domain.plans import RunPlan, SetDecision
from janitor.domain.policy import Candidate, Policy


def values_at(series: Mapping[int, float], steps: Iterable[int]) -> dict[int, float | None]:
    """For each step, the value logged at it, else at the nearest logged step before it."""
    logged = sorted(series)
    out: dict[int, float | None] = {}
    for step in steps:
        i = bisect.bisect_right(logged, step)
        out[step] = series[logged[i - 1]] if i else None
    return out


def candidates(
    run: Run,
    pins: frozenset[int] = frozenset(),
    metric: Mapping[int, float] | None = None,
    now: float | None = None,
) -> list[Candidate]:
    """What the policy knows of each set: status, size, pins, the metric at its step, and
    (given ``now``) whether an incomplete set has been still long enough to be truncated."""
    scored = values_at(metric, [s.number for s in run.sets if not s.latest_only]) if metric else {}
    new = tuple.__new__  # one per set, without the named tuple's Python-level __new__
    out = []
    for s in run.sets:
        number, status = s.number, s.status
        truncated = (
            now is not None
            and status == "incomplete"
            and now - s.mtime > SETTLED_AFTER
            and not any(f.problem == IN_FLIGHT_PROBLEM for f in s.files)
        )
        out.append(new(Candidate, (
            number, status, s.mtime, s.size, s.latest_only, s.base, number in pins,
            scored.get(number), s.missing, s.protect, truncated,
        )))  # fmt: skip
    return out


@dataclass(frozen=True)
class RulesPlanner:
    """``prune`` and ``watch``: the retention rules, each value with its source."""

    policy: Policy
    sources: Mapping[str, str] = field(default_factory=dict)  # Policy field -> flag or file
    pins: frozenset[int] = frozenset()
    metric: Mapping[int, float] | None = None  # step -> value of policy.metric
    kind: str = "rules"
    pin_sources: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # step -> files

    def plan(self, run: Run, now: float) -> RunPlan:
        cands = candidates(run, self.pins, self.metric, now)
        outcome = apply(cands, self.policy, now)
        keep = set(outcome.keep)
        reasons, new = outcome.reasons, tuple.__new__
        decisions = tuple(
            [new(SetDecision, (s, s.number in keep, reasons[s.number])) for s in run.sets]
        )
        return RunPlan(run, self, decisions, outcome.notes, traps(run))

    def frees(self, run: Run, now: float) -> int:
        """What ``plan(run, now)`` would free, without the per-set decisions (scan's summary)."""
        return apply(candidates(run, self.pins, self.metric), self.policy, now).expected_freed

    def describe(self) -> str:
        return self.policy.describe(self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rules": self.policy.effective().to_dict(),
            "sources": dict(self.sources),
            "pins": sorted(self.pins),
            "description": self.describe(),
        }


FIX_RESUME_WHY = (
    "stale: the trainer would resume from it although a later save exists (--fix-resume)"
)
FIX_HALF_WRITTEN_WHY = (
    "half written: the Trainer's get_last_checkpoint would resume from it and crash (--fix-resume)"
)


@dataclass(frozen=True)
class FixResumePlanner:
    """``prune --fix-resume``: the stale sets the trainer would wrongly resume from, and
    (HF Trainer) the half-written folders above the newest complete one; a pinned set stays,
    stale or not."""

    pins: frozenset[int] = frozenset()
    kind: str = "fix-resume"

    def plan(self, run: Run, now: float) -> RunPlan:
        why = {s.number: FIX_RESUME_WHY for s in stale_sets(run)}
        why.update({s.number: FIX_HALF_WRITTEN_WHY for s in half_written(run, now)})
        decisions = []
        for s in run.sets:
            if s.number in why and s.number in self.pins:
                decisions.append(SetDecision(s, True, (PINNED,)))
            else:
                reasons = (why[s.number],) if s.number in why else ()
                decisions.append(SetDecision(s, s.number not in why, reasons))
        return RunPlan(run, self, tuple(decisions))

    def describe(self) -> str:
        return "fix-resume: stale files the trainer would wrongly resume from"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.describe()}


@dataclass(frozen=True)
class FinalizePlanner:
    """``finalize``: every set goes, once the small models of ``steps`` are verified (or, in
    a dry run, would be); incomplete sets and pretrained bases stay."""

    steps: tuple[int, ...]
    verified: bool = True
    kind: str = "finalize"

    def plan(self, run: Run, now: float) -> RunPlan:
        why = self.describe()
        decisions = []
        for s in run.sets:
            if s.base:
                decisions.append(SetDecision(s, True, ("pretrained base model",)))
            elif s.status == "incomplete":
                decisions.append(SetDecision(s, True, ("incomplete: never removed by finalize",)))
            else:
                decisions.append(SetDecision(s, False, (why,)))
        return RunPlan(run, self, tuple(decisions))

    def frees(self, run: Run, now: float) -> int:
        """What ``plan(run, now)`` would free: every set but bases and incomplete ones."""
        return sum(s.size for s in run.sets if not s.base and s.status != "incomplete")

    def describe(self) -> str:
        steps = ", ".join(map(str, self.steps)) or "none"
        if self.verified:
            return f"finalize: small models verified for steps {steps}"
        return f"finalize: small models for steps {steps} exist or will be extracted"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "steps": list(self.steps), "description": self.describe()}
