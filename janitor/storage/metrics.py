"""Scalars from a run's TensorBoard event files, for ``--keep-best K --metric TAG``.

Read with the ``tensorboard`` package's own loader (extra ``janitor[metrics]``), imported
only when a metric is asked for.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Mapping

from janitor.domain.errors import JanitorError, UsageError


def _accumulator_cls():
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            SCALARS,
            EventAccumulator,
        )
    except ImportError:
        raise JanitorError(
            "--keep-best needs the tensorboard package: pip install 'janitor[metrics]'"
        ) from None
    return EventAccumulator, SCALARS


def load_scalars(run_path: str, tag: str) -> dict[int, float]:
    """step -> value for ``tag`` from the event files directly in ``run_path``.

    A run without event files gives ``{}``; event files without the tag are a usage error
    that names the tags that do exist.
    """
    has_events = any(n.startswith("events.out.tfevents.") for n in os.listdir(run_path))
    if not has_events:
        return {}
    EventAccumulator, SCALARS = _accumulator_cls()
    acc = EventAccumulator(run_path, size_guidance={SCALARS: 0})
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    if tag not in tags:
        shown = ", ".join(sorted(tags)[:12]) or "none"
        raise UsageError(f"unknown metric {tag!r} in {run_path} (logged scalars: {shown})")
    values: dict[int, float] = {}
    for event in acc.Scalars(tag):  # the last value logged at a step wins (resumed runs)
        values[int(event.step)] = float(event.value)
    return values


def values_at(series: Mapping[int, float], steps: Iterable[int]) -> dict[int, float | None]:
    """For each step, the value logged at it, else at the nearest logged step before it."""
    logged = sorted(series)
    out: dict[int, float | None] = {}
    for step in steps:
        i = bisect.bisect_right(logged, step)
        out[step] = series[logged[i - 1]] if i else None
    return out
