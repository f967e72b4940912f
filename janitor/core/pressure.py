"""Disk pressure, decided: after every run's own rules, which more sets go so that a file
system keeps a floor of free space (``min-free``) or a logs root fits a budget
(``max-total``). Pure: the sizes, free bytes and plans come in, the choices go out.

The order is one for both limits: oldest first across runs (by the set's mtime, then the run
and the number, so that the same tree always gives the same answer). Only sets the law does
not protect and that a run's rules keep by count (keep-last, keep-every, keep-best,
keep-within, max-size) give way; a protected set, a pretrained base, a file being written
and a small model (never a set) never do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from janitor.core.values import size_text
from janitor.domain.plans import RunPlan
from janitor.domain.rules import Percent

SHOWN_PROTECTED = 4  # protected sets named in a shortfall, then "and N more"


class Yielding(NamedTuple):
    """A set kept only by its run's rules: what a limit may take."""

    run: str
    number: int
    size: int
    mtime: float


def floor_bytes(floor: int | Percent, total: int) -> int:
    """``min-free`` in bytes on a file system of ``total`` bytes."""
    return floor.of(total) if isinstance(floor, Percent) else int(floor)


def take(pool: Iterable[Yielding], need: int) -> tuple[list[Yielding], int]:
    """Oldest first until ``need`` bytes are taken; the chosen sets and what is still
    missing (0: the limit is met)."""
    chosen = []
    for y in sorted(pool, key=lambda y: (y.mtime, y.run, y.number)):
        if need <= 0:
            break
        chosen.append(y)
        need -= y.size
    return chosen, max(need, 0)


def kept_bytes(plans: Iterable[RunPlan], taken: Iterable[Yielding] = ()) -> int:
    """The bytes of the sets the plans keep, less those ``taken`` by a limit."""
    gone = {(y.run, y.number) for y in taken}
    return sum(
        d.set.size
        for rp in plans
        for d in rp.decisions
        if d.keep and (rp.run.path, d.set.number) not in gone
    )


def protected_text(plans: Sequence[RunPlan], pool: Iterable[Yielding]) -> str:
    """The sets kept that no limit may take, as people read them: "alice step 500 (newest
    complete), bob step 300 (pinned), and 2 more"."""
    free = {(y.run, y.number) for y in pool}
    named = [
        f"{rp.run.name} {d.set.label} ({d.reasons[0] if d.reasons else 'kept'})"
        for rp in plans
        for d in rp.decisions
        if d.keep and (rp.run.path, d.set.number) not in free
    ]
    if not named:
        return "nothing is protected"
    more = len(named) - SHOWN_PROTECTED
    shown = ", ".join(named[:SHOWN_PROTECTED]) + (f", and {more} more" if more > 0 else "")
    return f"protected: {shown}"


def shortfall_text(
    limit: str, where: str, short: int, protected: str, free: int | None = None
) -> str:
    """One line for a limit that cannot be met (a cron mail shows it); ``free``: the free
    space measured after pruning."""
    now = "" if free is None else f"{size_text(free)} free after pruning, "
    return f"{limit} on {where}: cannot be met, {now}{size_text(short)} short; {protected}"
