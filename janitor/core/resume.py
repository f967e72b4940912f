"""The trainer's own resume rule, and the traps that make it pick the wrong file.

Every VITS-family trainer resumes from the ``G_*.pth`` (and ``D_*.pth``) whose path gives the
largest integer when all its digits are concatenated. janitor reproduces that rule to warn
about layouts where the trainer would resume from a stale or broken file; it never "fixes"
them on its own.
"""

from __future__ import annotations

from janitor.domain.checkpoints import CheckpointFile, CheckpointSet, Run
from janitor.domain.plans import Trap


def trainer_pick(run: Run, prefix: str) -> CheckpointFile | None:
    """The file the trainer would resume from for ``prefix`` (G or D).

    The rule is the largest integer formed by all digits of the path; within one folder
    every path shares the same digits before the file name, and checkpoint numbers have no
    leading zeros (``BIG_RE``), so that order is exactly the order of ``number``: the last
    file of ``prefix`` in the run's sets, which are in number order (no pass over every file).
    """
    for s in reversed(run.candidates):
        for f in s.files:
            if f.prefix == prefix:
                return f
    return None


STALE_SLACK = 3600.0  # a newer save must be this much newer to call an older one stale


def stale_sets(run: Run) -> tuple[CheckpointSet, ...]:
    """Sets the trainer would resume from although a later save exists: a latest-only file
    older than a numbered save, or numbered sets above the most recently written complete
    set and older than it (left from an earlier run in the same folder)."""
    complete = [s for s in run.candidates if s.status == "complete"]
    if not complete or run.profile.resume not in ("digits", "highest-folder"):
        return ()
    # saves written at the same moment: the trainer resumes from the highest of them
    latest_written = max(complete, key=lambda s: (s.mtime, s.number))
    return tuple(
        s
        for s in run.candidates
        if s.number > latest_written.number and s.mtime < latest_written.mtime - STALE_SLACK
    )


HALF_WRITTEN_IDLE = 600.0  # a checkpoint folder untouched this long is no longer being saved


def half_written(run: Run, now: float) -> tuple[CheckpointSet, ...]:
    """HF: the incomplete folders above the newest complete one, idle for HALF_WRITTEN_IDLE.
    ``get_last_checkpoint`` takes the highest number, whole or not, and resuming crashes."""
    if run.profile.resume != "highest-folder":
        return ()
    newest = run.newest_complete.number if run.newest_complete else -1
    return tuple(
        s
        for s in run.candidates
        if s.number > newest and s.status == "incomplete" and now - s.mtime > HALF_WRITTEN_IDLE
    )


def _framework_traps(run: Run) -> list[Trap]:
    """The frameworks' own resume rules: the highest folder (HF), a pointer file (DeepSpeed's
    latest), a last.ckpt symlink (Lightning)."""
    found: list[Trap] = []
    rule = run.profile.resume
    if rule == "highest-folder" and run.newest is not None and run.newest.status == "incomplete":
        s = run.newest
        found.append(
            Trap(
                "incomplete-newest",
                f"{s.name}/ is what the Trainer resumes from (get_last_checkpoint takes the "
                f"highest number), but it is {s.problem or 'incomplete'}: "
                "train(resume_from_checkpoint=True) will crash unless it is still being "
                "written; `janitor prune --fix-resume` moves it to the trash",
            )
        )
    names = {s.name for s in run.sets if s.folder} | {f.name for f in run.files}
    for pointer, target in run.pointers:
        if target not in names:
            found.append(
                Trap(
                    "pointer-missing",
                    f"{pointer} names {target or 'nothing'}, which is not here: "
                    f"{run.profile.label} will not resume from it",
                )
            )
    if rule == "pointer" and run.profile.pointer_file not in {p for p, _ in run.pointers}:
        found.append(
            Trap(
                "pointer-missing",
                f"no {run.profile.pointer_file} file: {run.profile.label} load_checkpoint "
                "loads nothing unless given a tag",
            )
        )
    lasts = [s for s in run.candidates if s.latest_only]
    if rule == "last-file" and len(lasts) + len(run.pointers) > 1:
        found.append(
            Trap(
                "several-last",
                f'{len(lasts) + len(run.pointers)} last*.ckpt files: fit(ckpt_path="last") '
                "takes the one with the newest mtime, which copies refresh",
            )
        )
    return found


def traps(run: Run) -> tuple[Trap, ...]:
    if run.profile.resume != "digits":
        return tuple(_framework_traps(run))
    found: list[Trap] = []
    g, d = trainer_pick(run, "G"), trainer_pick(run, "D")
    latest = next((s for s in run.candidates if s.latest_only), None)
    numbered_g = [
        f for s in run.candidates if not s.latest_only for f in s.files if f.prefix == "G"
    ]
    if latest is not None and latest.file("G") is not None and numbered_g:
        newer = max(numbered_g, key=lambda f: f.mtime)
        if newer.mtime > latest.file("G").mtime:
            found.append(
                Trap(
                    "stale-latest-only",
                    f"{latest.file('G').name} is older than {newer.name}: the trainer will "
                    f"resume from the stale {latest.file('G').name}",
                )
            )
    numbered = [f for f in numbered_g if f.number not in run.profile.base_steps]
    if g is not None and numbered and any(f is g for f in numbered):
        later = max(numbered, key=lambda f: f.mtime)
        if later is not g and later.mtime > g.mtime + STALE_SLACK:
            found.append(
                Trap(
                    "stale-higher",
                    f"{g.name} is older than {later.name}: left from an earlier run in this "
                    f"folder? the trainer will resume from {g.name}",
                )
            )
    for pick in (g, d):
        if pick is not None and not pick.complete:
            found.append(
                Trap(
                    "incomplete-newest",
                    f"{pick.name} is what the trainer resumes from, but it is incomplete "
                    f"({pick.problem}): resuming will crash unless it is still being written",
                )
            )
    for m in run.small_models:  # compress_model.py's names match the trainers' G_*.pth glob
        if m.format == "release" and g is not None and m.step is not None and m.step >= g.number:
            found.append(
                Trap(
                    "release-file-resume",
                    f"{m.name} matches the trainer's G_*.pth resume glob with number {m.step} "
                    f"(newest G: {g.name}): resuming may load it (iteration 0, a fresh "
                    "optimizer); move it out of the run folder before training again",
                )
            )
    if g is not None and d is not None and g.number != d.number:
        found.append(
            Trap(
                "g-d-mismatch",
                f"newest G is {g.name} but newest D is {d.name}: the trainer will resume G and D "
                "from different saves",
            )
        )
    return tuple(found)
