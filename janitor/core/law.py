"""The one law of protection: what nothing may remove, and the few named waivers.

Every planner starts from ``protections`` (the rules of ``prune`` and ``watch``, ``--max-size``,
``finalize``, ``--fix-resume``, watch's extract-first, and any planner still to come), and the
executor asks ``judge`` again, on the run as it re-reads it under the lock, before each
removal: a set the law protects goes only under a waiver the law grants for that set.

Protected, always (the reasons are worded here, once):
- a pinned step (no waiver);
- a pretrained base model (no waiver);
- a file still being written: incomplete and changed within ``SETTLED_AFTER`` (no waiver);
- a truncated file (incomplete, settled): a crash leftover, kept until asked;
- the newest complete set, and the most recently written complete set; beside a latest-only
  file, the newest numbered complete set (the latest-only file may be stale);
- the trainer's latest-only file (``G_2333333.pth``): what the trainer resumes from;
- sets newer than the newest complete one: a save may be in progress;
- what a framework protects itself (HF's best model, the tag DeepSpeed's ``latest`` names,
  the target of Lightning's ``last.ckpt``);
- a checkpoint folder holding files the framework did not write (a user's ``NOTES.md``,
  ``samples/``): janitor removes checkpoints, never anything else (no waiver).

The waivers, each named, claimed by a planner (``Planner.waiver``) and checked here:
- ``finalize``: once the small models it keeps are verified, every set but pins, bases and
  incomplete files;
- ``fix-resume``: the sets the trainer would wrongly resume from (``core.resume``), to the
  trash only, never a pin, a base or a file being written;
- ``remove-incomplete``: partial or truncated sets older than its age, never a save in
  progress (a file being written): it lifts "truncated" and "newer than the newest complete
  set" only (a pinned or latest-only leftover stays).

``is_active`` says, once, when a run is training: the trainer's own files written within the
idle time (janitor's own files never count), or a trainer process the run names still alive.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from janitor.core.frameworks import FOREIGN_PREFIX
from janitor.domain.checkpoints import Run
from janitor.domain.plans import Waiver
from janitor.domain.policy import Candidate

# ------------------------------------------------------------------ the reasons, worded once

SETTLED_AFTER = 10.0  # seconds without a change after which an incomplete file is truncated
NEWEST_COMPLETE = "newest complete"
NEWEST_NUMBERED = "newest numbered complete set"  # beside a complete latest-only set
INCOMPLETE = "incomplete: being written or truncated"
TRUNCATED = f"incomplete: truncated (unchanged for over {SETTLED_AFTER:g} s)"
IN_FLIGHT_PROBLEM = "being written (not settled yet)"  # what the watcher says of a file in flight
PINNED = "pinned"
LATEST_ONLY = "latest-only: what the trainer resumes from"
IN_FLIGHT = "newer than the newest complete set: a save may be in progress"
BASE = "pretrained base model"
LATEST_WRITTEN = "most recently written complete set"
PROTECTIONS = (
    NEWEST_COMPLETE,
    NEWEST_NUMBERED,
    INCOMPLETE,
    TRUNCATED,
    PINNED,
    LATEST_ONLY,
    IN_FLIGHT,
    BASE,
    LATEST_WRITTEN,
)
# No waiver lifts these (nor a set's foreign-files protection, ``FOREIGN_PREFIX``).
ABSOLUTE = frozenset({PINNED, BASE, INCOMPLETE})

# ------------------------------------------------------------------ the law


def candidates(
    run: Run,
    pins: Collection[int] = frozenset(),
    metric: Mapping[int, float | None] | None = None,
    now: float | None = None,
) -> list[Candidate]:
    """What the law and the rules know of each set: status, size, pins, the metric at its
    step (``metric``: step -> value, already matched to the sets), and (given ``now``)
    whether an incomplete set has been still long enough to be truncated."""
    scored = metric or {}
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


def newest(candidates: Sequence[Candidate]) -> tuple[int | None, int | None, int | None]:
    """Numbers of the newest complete set, the newest complete step (not latest-only) and
    the most recently written complete set (by mtime, then number), bases left out."""
    newest_any = newest_step = written = None
    written_mtime = 0.0
    for c in candidates:
        if c.status != "complete" or c.base:
            continue
        n = c.number
        if newest_any is None or n > newest_any:
            newest_any = n
        if not c.latest_only and (newest_step is None or n > newest_step):
            newest_step = n
        if written is None or c.mtime > written_mtime or (c.mtime == written_mtime and n > written):
            written, written_mtime = n, c.mtime
    return newest_any, newest_step, written


def leftover(c: Candidate, waiver: Waiver | None, now: float) -> bool:
    """Under ``remove-incomplete``: a partial or truncated set older than its age (never a
    file being written: an incomplete set that has not settled is no leftover)."""
    return (
        waiver is not None
        and waiver.kind == "remove-incomplete"
        and waiver.older_than is not None
        and c.status != "complete"
        and (c.status != "incomplete" or c.truncated)
        and now - c.mtime > waiver.older_than
    )


def protections(
    candidates: Sequence[Candidate],
    now: float,
    waiver: Waiver | None = None,
    targets: Collection[int] = frozenset(),
) -> dict[int, list[str]]:
    """For every set, why nothing may remove it (an empty list: it may go), once ``waiver``
    has lifted what it lifts. ``targets``: the sets ``fix-resume`` moves (``judge`` finds
    them; a planner passes its own). Pure; one pass, no call per set."""
    newest_number, newest_step, latest_written = newest(candidates)
    # Sets are ordered by step, but a higher step left from an earlier run in the same folder
    # must not cost the saves just written: the most recent complete save is kept too.
    above = newest_step if newest_step is not None else -1
    kind = waiver.kind if waiver is not None else None
    out: dict[int, list[str]] = {}
    for c in candidates:
        why: list[str] = []
        out[c.number] = why
        if c.base:
            why.append(BASE)
            continue
        number, status, latest_only = c.number, c.status, c.latest_only
        being_written = status == "incomplete" and not c.truncated
        if (kind == "finalize" and status != "incomplete") or (
            kind == "fix-resume" and number in targets
        ):  # these waivers lift all but the absolute protections
            if c.pinned:
                why.append(PINNED)
            if being_written:
                why.append(INCOMPLETE)
            why.extend(p for p in c.protect if p.startswith(FOREIGN_PREFIX))
            continue
        # Each kept set its own reason: beside a complete latest-only file (the newest complete
        # set by number), the newest numbered set is kept as such (the latest-only file may be
        # stale); the latest-only set says what it is.
        if latest_only:
            why.append(LATEST_ONLY)
        elif number == newest_number:
            why.append(NEWEST_COMPLETE)
        elif status == "complete" and number == newest_step:
            why.append(NEWEST_NUMBERED)
        if number == latest_written and not why:
            why.append(LATEST_WRITTEN)
        if c.pinned:
            why.append(PINNED)
        if c.protect:
            why.extend(c.protect)
        if leftover(c, waiver, now):
            continue  # remove-incomplete lifts only "truncated" and "a save may be in progress"
        if status == "incomplete":
            why.append(INCOMPLETE if being_written else TRUNCATED)
        if not latest_only and number > above:
            why.append(IN_FLIGHT)
    return out


def fix_resume_targets(run: Run, now: float) -> frozenset[int]:
    """The sets the trainer would wrongly resume from: stale ones (a later save exists) and,
    for the HF Trainer, half-written folders above the newest complete one."""
    from janitor.core.resume import half_written, stale_sets

    return frozenset(s.number for s in (*stale_sets(run), *half_written(run, now)))


def judge(
    run: Run, pins: Collection[int], now: float, waiver: Waiver | None = None
) -> dict[int, list[str]]:
    """The law on a run as it is: per set, why nothing may remove it under ``waiver``."""
    targets = (
        fix_resume_targets(run, now) if waiver is not None and waiver.kind == "fix-resume" else ()
    )
    return protections(candidates(run, pins, now=now), now, waiver, targets)


# ------------------------------------------------------------------ activity


def is_active(
    last_trainer_write: float, now: float, idle: float, trainer_alive: bool | None = None
) -> bool:
    """A run is training when its trainer's own files (checkpoints, event files, the
    trainer's side files; never janitor's ``janitor.toml``, ``.janitor/`` or temp files, nor
    small models, which janitor writes too) changed within ``idle`` seconds, or when a trainer
    process the run names (Applio's ``process_pids``) is still alive. A process list that
    names only dead processes (a crash, a disconnected notebook) says nothing."""
    return bool(trainer_alive) or now - last_trainer_write < idle
