"""Retention: a pure, table-driven function from a run's sets and a policy to keep/remove.

``apply(candidates, policy, now)`` touches no file and reads no clock. Every kept set says
why; a set is kept if any rule or protection keeps it. Protections always win over rules:
the newest complete set, anything incomplete (being written or truncated), pinned steps,
the trainer's latest-only file, sets newer than the newest complete one (a save in flight),
pretrained bases, and what a framework protects itself (HF's best model, the tag DeepSpeed's
``latest`` names, the target of Lightning's last.ckpt). ``--max-size`` can only take away
what the keep rules kept.

The keep rules rank complete and partial sets together (a G whose D was deleted by hand can
still be extracted, or resumed with a fresh D); only ``--remove-incomplete --older-than``
takes a partial set beyond them. Truncated sets are never ranked: they are protected, or
leftovers that go with ``--remove-incomplete``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from janitor.core.law import (
    BASE,
    IN_FLIGHT,
    IN_FLIGHT_PROBLEM,
    INCOMPLETE,
    LATEST_ONLY,
    LATEST_WRITTEN,
    NEWEST_COMPLETE,
    NEWEST_NUMBERED,
    PINNED,
    PROTECTIONS,
    SETTLED_AFTER,
    TRUNCATED,
    Waiver,
    leftover,
    newest,
    protections,
)
from janitor.core.values import size_text
from janitor.domain.policy import Candidate, Mode, Outcome, Policy
from janitor.domain.rules import KEEP_BEST, MAX_SIZE, REMOVE_INCOMPLETE, rules, shown_values

# The protections and their reasons are the law's (``core.law``): re-exported for the rules.
__all__ = [
    "BASE", "IN_FLIGHT", "IN_FLIGHT_PROBLEM", "INCOMPLETE", "LATEST_ONLY", "LATEST_WRITTEN",
    "NEWEST_COMPLETE", "NEWEST_NUMBERED", "NO_RULE", "PINNED", "PROTECTIONS", "SETTLED_AFTER",
    "TRUNCATED", "apply",
]  # fmt: skip
NO_RULE = "kept by no rule"
UNTIL_NEEDED = "no keep rule: kept until min-free or max-total needs the room"


Keep = Callable[[list[Candidate], Policy], dict[int, str]]  # see janitor.domain.rules.Rule


def _keep_last(ranked: list[Candidate], p: Policy) -> dict[int, str]:
    return dict.fromkeys([c.number for c in ranked[: p.keep_last]], "")


def _keep_every(ranked: list[Candidate], p: Policy) -> dict[int, str]:
    """Milestones: buckets (0, N], (N, 2N], ... end at the multiples of N, so step 5000 of
    ``--keep-every 5000`` is the one kept; the newest set of each bucket stands for it."""
    kept: dict[int, str] = {}
    buckets: set[int] = set()
    for c in ranked:  # newest first: the first one seen in a bucket is its newest
        if c.latest_only:
            continue
        bucket = -(-c.number // p.keep_every)  # ceil: a multiple ends its bucket
        if bucket not in buckets:
            buckets.add(bucket)
            kept[c.number] = ""
    return kept


def _keep_within(ranked: list[Candidate], p: Policy) -> dict[int, str]:
    if not ranked:
        return {}
    oldest = max(c.mtime for c in ranked) - p.keep_within
    return {c.number: "" for c in ranked if c.mtime >= oldest}


def rank_best(candidates: Sequence[Candidate], k: int, mode: Mode) -> list[Candidate]:
    """The ``k`` candidates with the best metric (lowest for min), newer first on ties."""
    scored = [c for c in candidates if c.metric is not None and not c.latest_only]
    sign = 1 if mode == "min" else -1
    scored.sort(key=lambda c: (sign * c.metric, -c.number))
    return scored[:k]


def _score(c: Candidate) -> str:
    return f"{c.metric:.6g}"


def best_reason(c: Candidate, p: Policy) -> str:
    return f"{_text(KEEP_BEST.reason, p)} ({_score(c)})"


def _keep_best(ranked: list[Candidate], p: Policy) -> dict[int, str]:
    return {c.number: _score(c) for c in rank_best(ranked, p.keep_best, p.mode)}


def _fits(ranked: list[Candidate], p: Policy) -> dict[int, str]:
    # Only max-size given: every ranked set is wanted; the size limit trims it below.
    return dict.fromkeys([c.number for c in ranked], "")


# The keep functions of the rules declared in janitor.domain.rules, by name.
KEEP: dict[str, Keep] = {
    "keep_last": _keep_last,
    "keep_every": _keep_every,
    "keep_within": _keep_within,
    "keep_best": _keep_best,
}


def _text(template: str, p: Policy, **more: str) -> str:
    return template.format(**shown_values(p.values()), **more)


def _keep_rules(p: Policy) -> list[tuple[str, Keep]]:
    """The rule table: (reason, keep function) of each keep rule the policy gives a value."""
    table = []
    for r in rules():
        if r.keep is not None and getattr(p, r.name) is not None:
            table.append((_text(r.reason, p), KEEP[r.keep] if isinstance(r.keep, str) else r.keep))
    if not table and p.keeps_what_fits:
        reason = MAX_SIZE.reason if p.max_size is not None else UNTIL_NEEDED
        table.append((_text(reason, p), _fits))
    return table


def _waiver(p: Policy) -> Waiver | None:
    """``--remove-incomplete --older-than``: the law's waiver for old leftovers."""
    if p.remove_incomplete_older_than is None:
        return None
    return Waiver("remove-incomplete", older_than=p.remove_incomplete_older_than)


def _removal_reason(c: Candidate, p: Policy, trimmed: set[int], now: float) -> str:
    if c.number in trimmed:
        return _text(MAX_SIZE.removal, p)
    if leftover(c, _waiver(p), now):
        return _text(REMOVE_INCOMPLETE.removal, p, status=c.status)
    if c.lacks:
        return f"kept by no rule (partial set: {c.lacks})"
    return NO_RULE


def _number(c: Candidate) -> int:
    return c.number


def apply(candidates: Sequence[Candidate], policy: Policy, now: float) -> Outcome:
    """Decide, for every candidate set, keep or remove, and why. Pure."""
    numbers = [c.number for c in candidates]
    if len(set(numbers)) != len(numbers):
        raise ValueError("candidate numbers must be unique")
    p = policy.effective()
    waiver = _waiver(p)
    reasons = protections(candidates, now, waiver)  # the law first: what nothing may remove
    protected = {n for n, why in reasons.items() if why}

    # The rules rank complete and partial sets together, newest first; truncated sets,
    # leftovers given up by --remove-incomplete, and partial sets above the newest complete
    # one (a save in progress: its D is not written yet) are not theirs to keep.
    newest_step = newest(candidates)[1]
    newest_step = newest_step if newest_step is not None else -1
    ranked = [
        c
        for c in candidates
        if not c.base
        and c.status != "incomplete"
        and not (c.status == "partial" and not c.latest_only and c.number > newest_step)
        and not leftover(c, waiver, now)
    ]
    ranked.sort(key=_number, reverse=True)
    by_number = {c.number: c for c in candidates}
    for text, keep in _keep_rules(p):
        for number, detail in keep(ranked, p).items():
            why = f"{text} ({detail})" if detail else text
            lacks = by_number[number].lacks
            reasons[number].append(f"{why} (partial: {lacks})" if lacks else why)

    notes: list[str] = []
    trimmed: set[int] = set()
    if p.max_size is not None:
        total = sum(c.size for c in candidates if reasons[c.number])
        for c in sorted(candidates, key=lambda c: c.number):  # oldest first
            if total <= p.max_size:
                break
            if reasons[c.number] and c.number not in protected:
                reasons[c.number] = []
                trimmed.add(c.number)
                total -= by_number[c.number].size
        if total > p.max_size:
            notes.append(
                f"cannot fit in max-size {size_text(p.max_size)} without removing protected "
                f"sets; keeping {size_text(total)}"
            )

    keep, remove, freed = [], [], 0
    for c in sorted(candidates, key=_number):  # removed sets say why too
        number = c.number
        if reasons[number]:
            keep.append(number)
            continue
        remove.append(number)
        freed += c.size
        plain = c.status == "complete" and number not in trimmed  # the usual case: no call
        reasons[number] = [NO_RULE if plain else _removal_reason(c, p, trimmed, now)]
    return Outcome(
        keep=tuple(keep),
        remove=tuple(remove),
        reasons={n: tuple(reasons[n]) for n in sorted(reasons)},
        expected_freed=freed,
        notes=tuple(notes),
    )
