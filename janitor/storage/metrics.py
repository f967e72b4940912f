"""Scalars from a run's TensorBoard event files, for ``--keep-best K --metric TAG``.

Read with the ``tensorboard`` package's own loader (extra ``vits-janitor[metrics]``), imported
only when a metric is asked for.
"""

from __future__ import annotations

from janitor.domain.errors import JanitorError, UsageError
from janitor.storage.fs import LOCAL, FileSystem

EVENTS_PREFIX = "events.out.tfevents."


def _accumulator_cls():
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            SCALARS,
            EventAccumulator,
        )
    except ImportError:
        raise JanitorError(
            "--keep-best needs the tensorboard package: pip install 'vits-janitor[metrics]'"
        ) from None
    return EventAccumulator, SCALARS


def load_scalars(run_path: str, tag: str, fs: FileSystem = LOCAL) -> dict[int, float]:
    """step -> value for ``tag`` from the event files directly in ``run_path``.

    A run without event files gives ``{}``; event files without the tag are a usage error
    that names the tags that do exist.
    """
    has_events = any(e.name.startswith(EVENTS_PREFIX) for e in fs.listdir(run_path))
    if not has_events:
        return {}
    local = fs.local_path(run_path)
    if local is None:
        raise JanitorError(f"{run_path}: --keep-best reads TensorBoard files from a local folder")
    EventAccumulator, SCALARS = _accumulator_cls()
    acc = EventAccumulator(local, size_guidance={SCALARS: 0})
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    if tag not in tags:
        shown = ", ".join(sorted(tags)[:12]) or "none"
        raise UsageError(f"unknown metric {tag!r} in {run_path} (logged scalars: {shown})")
    values: dict[int, float] = {}
    for event in acc.Scalars(tag):  # the last value logged at a step wins (resumed runs)
        values[int(event.step)] = float(event.value)
    return values
