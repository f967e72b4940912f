"""Planners: pure functions from a run (and the inputs already read for it: pins, metric
values, rules) to a ``RunPlan``. The plan carries its planner, so the executor can plan again
under the run's lock with exactly the same rules, and the journal can say what decided.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from janitor.core import law
from janitor.core.law import PINNED
from janitor.core.policy import apply
from janitor.core.resume import half_written, stale_sets, traps
from janitor.domain.checkpoints import Run
from janitor.domain.plans import RunPlan, SetDecision, Waiver
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
    """The law's candidates (``core.law.candidates``), with the metric logged at each
    numbered set's step (or the nearest logged step before it)."""
    scored = values_at(metric, [s.number for s in run.sets if not s.latest_only]) if metric else {}
    return law.candidates(run, pins, scored, now)


def selected(run: Run, decisions: tuple[SetDecision, ...]) -> tuple[SetDecision, ...]:
    """Only the decisions on the sets named on the command line (``Run.selected``), each
    decided on the whole run."""
    if run.selected is None:
        return decisions
    return tuple(d for d in decisions if d.set.number in run.selected)


@dataclass(frozen=True)
class RulesPlanner:
    """``prune`` and ``watch``: the retention rules, each value with its source."""

    policy: Policy
    sources: Mapping[str, str] = field(default_factory=dict)  # Policy field -> flag or file
    pins: frozenset[int] = frozenset()
    metric: Mapping[int, float] | None = None  # step -> value of policy.metric
    kind: str = "rules"
    pin_sources: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # step -> files
    # min-free / max-total (``janitor.usecases.pressure``): more sets to remove, each with
    # its reason, when the law lets them go; ``until_free``: for a set taken for min-free, the
    # free bytes at which it is no longer needed (the executor looks before each one)
    pressure: Mapping[int, str] = field(default_factory=dict)
    until_free: Mapping[int, int] = field(default_factory=dict)

    @property
    def waiver(self) -> Waiver | None:
        """``--remove-incomplete --older-than``: old leftovers may go, never a save in progress."""
        age = self.policy.remove_incomplete_older_than
        return None if age is None else Waiver("remove-incomplete", older_than=age)

    def plan(self, run: Run, now: float) -> RunPlan:
        cands = candidates(run, self.pins, self.metric, now)
        outcome = apply(cands, self.policy, now)
        keep = set(outcome.keep)
        reasons, new = outcome.reasons, tuple.__new__
        if self.pressure:  # the root's limits take what the law lets go, nothing else
            protected = law.protections(cands, now, self.waiver)
            for number, why in self.pressure.items():
                if number in keep and not protected.get(number, True):
                    keep.discard(number)
                    reasons = {**reasons, number: (why,)}
        decisions = tuple(
            [new(SetDecision, (s, s.number in keep, reasons[s.number])) for s in run.sets]
        )
        return RunPlan(run, self, selected(run, decisions), outcome.notes, traps(run))

    def gives_way(self, run: Run, decisions: Iterable[SetDecision], now: float) -> list[int]:
        """The sets these rules keep that the law does not protect (kept only by a count
        rule, or by max-size): what min-free and max-total may take."""
        cands = candidates(run, self.pins, self.metric, now)
        protected = law.protections(cands, now, self.waiver)
        return [d.set.number for d in decisions if d.keep and not protected.get(d.set.number)]

    def frees(self, run: Run, now: float, cands: list[Candidate] | None = None) -> int:
        """What ``plan(run, now)`` would free, without the per-set decisions (scan's summary;
        min-free and max-total aside: they are the root's). ``cands``: the run's candidates
        with these pins and metric, when the caller has them already."""
        cands = candidates(run, self.pins, self.metric, now) if cands is None else cands
        outcome = apply(cands, self.policy, now)
        if run.selected is None:
            return outcome.expected_freed
        gone = set(outcome.remove) & run.selected
        return sum(c.size for c in cands if c.number in gone)

    def describe(self) -> str:
        return self.policy.describe(self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rules": self.policy.effective().to_dict(),
            "sources": dict(self.sources),
            "pins": sorted(self.pins),
            "pin_sources": {str(step): list(f) for step, f in sorted(self.pin_sources.items())},
            "description": self.describe(),
            **({"pressure": {str(n): why for n, why in self.pressure.items()}}
               if self.pressure else {}),
        }  # fmt: skip


FIX_RESUME_WHY = (
    "stale: the trainer would resume from it although a later save exists (--fix-resume)"
)
FIX_HALF_WRITTEN_WHY = (
    "half written: the Trainer's get_last_checkpoint would resume from it and crash (--fix-resume)"
)


@dataclass(frozen=True)
class FixResumePlanner:
    """``prune --fix-resume``: the stale sets the trainer would wrongly resume from, and
    (HF Trainer) the half-written folders above the newest complete one, to the trash under
    the law's fix-resume waiver; a pinned set or a file still being written stays."""

    pins: frozenset[int] = frozenset()
    kind: str = "fix-resume"
    waiver: Waiver | None = Waiver("fix-resume")

    def plan(self, run: Run, now: float) -> RunPlan:
        why = {s.number: FIX_RESUME_WHY for s in stale_sets(run)}
        why.update({s.number: FIX_HALF_WRITTEN_WHY for s in half_written(run, now)})
        protected = law.protections(candidates(run, self.pins, now=now), now, self.waiver, why)
        decisions = []
        for s in run.sets:
            if s.number not in why:
                decisions.append(SetDecision(s, True, ()))
            elif protected[s.number]:
                decisions.append(SetDecision(s, True, tuple(protected[s.number])))
            else:
                decisions.append(SetDecision(s, False, (why[s.number],)))
        return RunPlan(run, self, selected(run, tuple(decisions)))

    def describe(self) -> str:
        return "fix-resume: stale files the trainer would wrongly resume from"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.describe()}


PINNED_FINALIZE = "pinned; `janitor unpin` to let finalize remove it"


WAITS_FOR_ROOM = "finalize makes room first: kept until the other small models are written"


@dataclass(frozen=True)
class FinalizePlanner:
    """``finalize``: every set goes under the law's finalize waiver, once the small models of
    ``steps`` are verified (or, in a dry run, would be); pinned sets, incomplete files and
    pretrained bases stay (the law grants no waiver for them)."""

    steps: tuple[int, ...]
    verified: bool = True
    pins: frozenset[int] = frozenset()
    kind: str = "finalize"
    # making room on a full disk: only these sets go (those of ``steps``, whose small models
    # exist and verify); the others wait for their own small models
    only: frozenset[int] | None = None

    @property
    def waiver(self) -> Waiver:
        return Waiver("finalize", verified=self.verified)

    def plan(self, run: Run, now: float) -> RunPlan:
        why = self.describe()
        kept = law.protections(candidates(run, self.pins, now=now), now, self.waiver)
        decisions = []
        for s in run.sets:
            reasons = kept[s.number]
            if reasons:
                shown = [PINNED_FINALIZE if r == PINNED else r for r in reasons]
                decisions.append(SetDecision(s, True, tuple(shown)))
            elif self.only is not None and s.number not in self.only:
                decisions.append(SetDecision(s, True, (WAITS_FOR_ROOM,)))
            else:
                decisions.append(SetDecision(s, False, (why,)))
        return RunPlan(run, self, selected(run, tuple(decisions)))

    def frees(self, run: Run, now: float, cands: list[Candidate] | None = None) -> int:
        """What ``plan(run, now)`` would free, without the per-set decisions (scan's summary):
        the sets the law lets this waiver take (of ``only``, of the sets named). ``cands``:
        the run's candidates with these pins (any metric), when the caller has them."""
        cands = candidates(run, self.pins, now=now) if cands is None else cands
        kept = law.protections(cands, now, self.waiver)
        return sum(
            s.size
            for s in run.sets
            if not kept[s.number]
            and (self.only is None or s.number in self.only)
            and (run.selected is None or s.number in run.selected)
        )

    def describe(self) -> str:
        steps = ", ".join(map(str, self.steps)) or "none"
        if self.only is not None:
            return f"finalize, making room on a full disk: small models verified for steps {steps}"
        if self.verified:
            return f"finalize: small models verified for steps {steps}"
        return f"finalize: small models for steps {steps} exist or will be extracted"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "steps": list(self.steps), "pins": sorted(self.pins),
            "description": self.describe(),
        }  # fmt: skip
