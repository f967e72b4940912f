"""Scan -> plan: turn a run's sets, its config (pins, rules) and metrics into a ``RunPlan``.

Reads config files and TensorBoard events, never deletes. The policy decision itself is
``janitor.policy.apply`` (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from janitor import config
from janitor.discovery import CheckpointSet, Run, ScanError, ScanReport
from janitor.metrics import load_scalars, values_at
from janitor.policy import Candidate, Policy, apply
from janitor.resume import Trap, traps


@dataclass(frozen=True, slots=True)
class SetDecision:
    set: CheckpointSet
    keep: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RunPlan:
    run: Run
    policy: Policy
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


def candidates(
    run: Run, pins: frozenset[int] = frozenset(), metric: Mapping[int, float] | None = None
) -> list[Candidate]:
    scored = values_at(metric or {}, [s.number for s in run.sets if not s.latest_only])
    out = []
    for s in run.sets:
        value = scored.get(s.number) if metric else None
        out.append(
            Candidate(
                number=s.number,
                status=s.status,
                mtime=s.mtime,
                size=s.size,
                latest_only=s.latest_only,
                base=s.base,
                pinned=s.number in pins,
                metric=value,
                missing=s.missing,
            )
        )
    return out


def plan_run(run: Run, overrides: Mapping[str, Any], now: float) -> RunPlan:
    """The run's plan under its config files and the command-line ``overrides``."""
    policy = config.policy_for(run.path, overrides)
    metric = None
    effective = policy.effective()
    if effective.keep_best:
        metric = load_scalars(run.path, effective.metric)
    outcome = apply(candidates(run, config.pins(run.path), metric), policy, now)
    keep = set(outcome.keep)
    decisions = tuple(SetDecision(s, s.number in keep, outcome.reasons[s.number]) for s in run.sets)
    return RunPlan(run, policy, decisions, outcome.notes, traps(run))


def fix_resume_plan(run: Run) -> RunPlan:
    """Pure: move the stale sets the trainer would wrongly resume from (``--fix-resume``)."""
    from janitor.resume import stale_sets

    stale = {s.number for s in stale_sets(run)}
    why = "stale: the trainer would resume from it although a later save exists (--fix-resume)"
    decisions = tuple(
        SetDecision(s, s.number not in stale, (why,) if s.number in stale else ("not stale",))
        for s in run.sets
    )
    return RunPlan(run, Policy(), decisions)


def plan(report: ScanReport, overrides: Mapping[str, Any], now: float) -> Plan:
    return Plan(tuple(plan_run(r, overrides, now) for r in report.runs), report.errors)
