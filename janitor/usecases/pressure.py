"""Disk pressure, carried out: ``min-free`` (a floor of free space per file system) and
``max-total`` (one budget for the big checkpoints under a logs root), applied after every
run's own rules by ``prune`` and ``watch`` (docs/full-disk.md).

The limits come from each run's rules (the flags, or ``min-free``/``max-total`` in the logs
root's janitor.toml): a file system's floor is the highest of its runs' floors, a root's
budget the lowest of its runs' budgets. The choices are ``core.pressure``'s: oldest first
across runs, only what the law lets go and only sets kept by a count rule. The plans carry
them (``RulesPlanner.pressure``), so the executor re-plans them under each run's lock, asks
the law again, and looks at the free space before each set taken for a floor: it stops as
soon as the floor is met, whoever freed the space.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from janitor.core.planners import RulesPlanner
from janitor.core.pressure import (
    Yielding,
    floor_bytes,
    kept_bytes,
    protected_text,
    shortfall_text,
    take,
)
from janitor.domain.errors import UsageError
from janitor.domain.plans import RunPlan
from janitor.domain.rules import MAX_TOTAL, MIN_FREE, Rule, shown_values
from janitor.storage import platform
from janitor.storage.fs import FileSystem, device, mount_point
from janitor.usecases.executor import under_drive


def limit_text(r: Rule, value: object, template: str | None = None) -> str:
    """A limit in words, from its rule's template: "removed to keep min-free 14 MB free"."""
    return (template or r.removal).format(**shown_values({r.name: value}))


@dataclass(frozen=True)
class Floor:
    """A file system's floor, to look at again once the plans are carried out."""

    mount: str
    target: int  # free bytes wanted (the floor, and in watch the next saves)
    limit: str  # "min-free 14 MB"
    protected: str  # what no limit may take there
    short: int  # bytes the plans leave it short by (0: they meet it)


@dataclass
class Relief:
    plans: list[RunPlan]
    problems: list[str] = field(default_factory=list)  # budgets that cannot be met (exit 1)
    notes: list[str] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)

    def shortfalls(self, done: bool) -> list[str]:
        """The limits not met (a cron mail shows them; exit 1): the budgets as planned, the
        floors measured again once the plans were carried out (``done``: a hard link freed
        nothing, another janitor freed more), else as planned."""
        if not done:
            return [*self.problems, *(
                shortfall_text(f.limit, f.mount, f.short, f.protected)
                for f in self.floors if f.short
            )]  # fmt: skip
        out = list(self.problems)
        for f in self.floors:
            free = platform.free_bytes(f.mount)
            if free is not None and free < f.target:
                out.append(shortfall_text(f.limit, f.mount, f.target - free, f.protected, free))
        return out


def _source(rp: RunPlan, name: str) -> str:
    planner = rp.planner
    return getattr(planner, "sources", {}).get(name) or name.replace("_", "-")


def _rules_of(rp: RunPlan) -> RulesPlanner | None:
    planner = rp.planner
    while not isinstance(planner, RulesPlanner) and hasattr(planner, "inner"):
        planner = planner.inner  # watch's extract-first wraps the rules
    return planner if isinstance(planner, RulesPlanner) else None


def relieve(
    plans: Sequence[RunPlan],
    now: float,
    fs: FileSystem,
    *,
    trash: bool = False,
    headroom: Mapping[str, int] | None = None,
) -> Relief:
    """The plans with the sets ``min-free`` and ``max-total`` take added (unchanged when no
    run has a limit). ``headroom``: run path -> bytes to keep free beyond the floor on its
    file system (watch: the size of its next save)."""
    rules = {rp.run.path: _rules_of(rp) for rp in plans}
    floors = [rp for rp in plans if rules[rp.run.path] and rules[rp.run.path].policy.min_free]
    budgets = [rp for rp in plans if rules[rp.run.path] and rules[rp.run.path].policy.max_total]
    relief = Relief(list(plans))
    if not floors and not budgets:
        return relief
    for rp in floors:
        if fs.local_path(rp.run.path) is None:
            raise UsageError(
                f"{_source(rp, 'min_free')}: min-free has no meaning on a bucket "
                f"({rp.run.path}: no file system to keep free); max-total budgets a bucket"
            )
        if trash:
            raise UsageError(
                f"{_source(rp, 'min_free')}: min-free frees space, and --trash keeps what it "
                "moves on the same disk: prune without --trash (or `janitor trash empty`)"
            )
    pool: dict[tuple[str, int], Yielding] = {}
    for rp in plans:
        planner = rules[rp.run.path]
        if planner is None:
            continue
        sets = {s.number: s for s in rp.run.sets}
        for n in planner.gives_way(rp.run, rp.decisions, now):
            s = sets[n]
            pool[rp.run.path, n] = Yielding(rp.run.path, n, s.size, s.mtime)
    reasons: dict[str, dict[int, str]] = defaultdict(dict)
    until: dict[str, dict[int, int]] = defaultdict(dict)
    taken: list[Yielding] = []
    for root, group in _grouped(budgets, plans, lambda path: os.path.dirname(path)).items():
        budget = min(rules[rp.run.path].policy.max_total for rp in group if rp in budgets)
        limit = limit_text(MAX_TOTAL, budget, MAX_TOTAL.describe)
        mine = [y for y in pool.values() if os.path.dirname(y.run) == root]
        chosen, short = take(mine, kept_bytes(group) - budget)
        for y in chosen:
            reasons[y.run][y.number] = limit_text(MAX_TOTAL, budget)
            del pool[y.run, y.number]
        taken += chosen
        if short:
            left = protected_text(group, mine)
            relief.problems.append(shortfall_text(limit, root, short, left))
    room = headroom or {}
    for group in _grouped(floors, plans, _device).values():
        mount = mount_point(fs.local_path(group[0].run.path) or group[0].run.path)
        free, total = platform.free_bytes(mount), platform.disk_size(mount)
        if free is None or total is None:
            relief.notes.append(f"{mount}: cannot tell its free space; min-free not applied")
            continue
        value = max(
            (rules[rp.run.path].policy.min_free for rp in group if rp in floors),
            key=lambda v: floor_bytes(v, total),
        )
        target = floor_bytes(value, total) + sum(room.get(rp.run.path, 0) for rp in group)
        paths = {rp.run.path for rp in group}
        freeing = sum(rp.expected_freed for rp in group) + sum(
            y.size for y in taken if y.run in paths
        )
        mine = [y for y in pool.values() if y.run in paths]
        chosen, short = take(mine, target - free - freeing)
        for y in chosen:
            reasons[y.run][y.number] = limit_text(MIN_FREE, value)
            until[y.run][y.number] = target
        limit = limit_text(MIN_FREE, value, MIN_FREE.describe)
        relief.floors.append(Floor(mount, target, limit, protected_text(group, mine), short))
        if under_drive(group[0].run.path, fs):
            relief.notes.append(
                f"{mount}: the free space janitor sees on a Google Drive mount is not your "
                "Drive quota (a full Drive fails writes although space shows here)"
            )
    relief.plans = [_with(rp, rules[rp.run.path], reasons, until, now) for rp in plans]
    return relief


def _device(path: str) -> object:
    return device(path) or path


def _grouped(limited: Sequence[RunPlan], plans: Sequence[RunPlan], key) -> dict:
    """The plans of every run sharing a key (logs root, file system) with a limited run."""
    wanted = {key(rp.run.path) for rp in limited}
    out: dict = defaultdict(list)
    for rp in plans:
        k = key(rp.run.path)
        if k in wanted:
            out[k].append(rp)
    return out


def _with(
    rp: RunPlan,
    rules: RulesPlanner | None,
    reasons: Mapping[str, Mapping[int, str]],
    until: Mapping[str, Mapping[int, int]],
    now: float,
) -> RunPlan:
    """The run's plan again with the sets a limit takes (its planner says them again under
    the lock); the plan as it was when no limit takes anything of it."""
    mine = reasons.get(rp.run.path)
    if not mine or rules is None:
        return rp
    planner = replace(rules, pressure=dict(mine), until_free=dict(until.get(rp.run.path, {})))
    outer = planner if rp.planner is rules else replace(rp.planner, inner=planner)
    return outer.plan(rp.run, now)
