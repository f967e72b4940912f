"""See it coming: from a run's last saves, the size and interval of its next one; from a
file system's free space and the active runs on it, how many saves still fit and when it is
full. Pure: the numbers in, the forecast out (checked on scripted timelines of saves).

File times are a hint of *when* sets were saved, never of their order: sets are ordered by
step, and a gap between two saves that goes backwards in time (a copied or touched file)
says nothing and is left out."""

from __future__ import annotations

from collections.abc import Sequence

from janitor.core import law
from janitor.domain.checkpoints import Run
from janitor.domain.disk import Forecast, SavePattern

RECENT = 5  # the saves the interval is taken from (the last gaps: the pace of today's run)
ACTIVE_IDLE = 1800.0  # a run whose trainer wrote within this (or two intervals) is active


def save_pattern(run: Run, recent: int = RECENT) -> SavePattern | None:
    """The run's next save as its last saves predict it: the size of the newest complete set
    and the median time between its last ``recent`` complete sets (by step); None when it
    has no complete set."""
    done = [s for s in run.candidates if s.status == "complete" and not s.latest_only]
    if not done:
        return None
    # the saves before the newest complete one, read or not (a lazy scan leaves older sets
    # "unchecked": their times are the same hint)
    newest = done[-1]
    older = [
        s for s in run.candidates
        if s.status in ("complete", "unchecked") and not s.latest_only and s.number < newest.number
    ]  # fmt: skip
    last = [*older, newest][-recent:]
    gaps = [b.mtime - a.mtime for a, b in zip(last, last[1:], strict=False) if b.mtime > a.mtime]
    interval = _median(gaps) if gaps else None
    return SavePattern(run.path, run.name, newest.size, interval, newest.mtime, run.last_activity)


def is_active(pattern: SavePattern, now: float, idle: float = ACTIVE_IDLE) -> bool:
    """The law's ``is_active``, with the idle time stretched to two save intervals: a trainer
    that saves every hour is still training 50 minutes after its last save."""
    if pattern.interval is not None:
        idle = max(idle, 2 * pattern.interval)
    return law.is_active(pattern.last_activity, now, idle)


def forecast(free: int, active: Sequence[SavePattern]) -> tuple[Forecast, ...]:
    """For each active run on a file system with ``free`` bytes: how many of its saves still
    fit, and in how long the file system is full when every active run there keeps saving
    at its pace (``free`` over the sum of size/interval). A run whose interval is unknown
    counts by its size only."""
    rate = sum(p.size / p.interval for p in active if p.interval)
    full_in = free / rate if rate else None
    out = []
    for p in active:
        fits = free // p.size if p.size > 0 else 0
        if full_in is not None and p.interval and len(active) > 1:  # the others fill it too
            fits = min(fits, int(full_in / p.interval + 1e-9))
        out.append(Forecast(p, free, max(0, fits), full_in))
    return tuple(out)


def _median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2
