"""Scalars from a run's TensorBoard event files, for ``--keep-best K --metric TAG``.

Read with the ``tensorboard`` package's own loader (extra ``vits-janitor[metrics]``), imported
only when a metric is asked for.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from janitor.core.frameworks import (
    TRAINER_STATE,
    log_history_keys,
    log_history_series,
    metric_in_name,
)
from janitor.domain.checkpoints import Run
from janitor.domain.errors import JanitorError, UsageError
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.scan import read_trainer_state

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
    events = [e for e in fs.listdir(run_path) if e.name.startswith(EVENTS_PREFIX)]
    if not events:
        return {}
    EventAccumulator, SCALARS = _accumulator_cls()
    with contextlib.ExitStack() as stack:
        local = fs.local_path(run_path)
        if local is None:  # object storage: the event files (small) are read into a temp folder
            local = stack.enter_context(LOCAL.temp_dir(tempfile.gettempdir(), "janitor-events-"))
            for e in events:
                LOCAL.write_atomic(os.path.join(local, e.name), fs.read_bytes(e.path))
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


def load_metric(run: Run, tag: str, fs: FileSystem = LOCAL) -> dict[int, float]:
    """step -> value of ``tag`` for ``--keep-best``, from where the run's framework keeps it:
    TensorBoard event files in the run folder; the HF Trainer's ``log_history`` in the newest
    complete trainer_state.json; Lightning's file names (``...-val_loss=0.12.ckpt``) when no
    event file in the run folder has the tag."""
    source = run.profile.metric_source
    if source == "trainer-state":
        return _from_trainer_state(run, tag, fs)
    if source == "file-name":
        try:
            values = load_scalars(run.path, tag, fs)
        except UsageError:
            values = {}
        return values or _from_file_names(run, tag)
    return load_scalars(run.path, tag, fs)


def _from_trainer_state(run: Run, tag: str, fs: FileSystem) -> dict[int, float]:
    state = next(
        (st for s in reversed(run.candidates) if (st := read_trainer_state(fs, s)) is not None),
        None,
    )
    if state is None:
        raise UsageError(f"{run.path}: no complete {TRAINER_STATE} to read {tag!r} from")
    values = log_history_series(state.log_history, tag)
    if not values:
        shown = ", ".join(log_history_keys(state.log_history)[:12]) or "none"
        raise UsageError(
            f"unknown metric {tag!r} in {run.path} ({TRAINER_STATE} log_history has: {shown})"
        )
    return values


def _from_file_names(run: Run, tag: str) -> dict[int, float]:
    values = {
        s.number: v
        for s in run.candidates
        if not s.latest_only
        for f in s.files
        if (v := metric_in_name(f.name, tag)) is not None
    }
    if not values:
        example = next((f.name for f in run.files), "none")
        raise UsageError(
            f"unknown metric {tag!r} in {run.path}: not in any event file nor in the "
            f"checkpoint names (e.g. {example})"
        )
    return values
