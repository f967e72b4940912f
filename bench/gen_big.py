"""Child process of ``bench/run.py``: write full-size fixtures with ``fixtures.gen``.

Run with cwd = repo root and the repo root on ``PYTHONPATH``::

    python bench/gen_big.py run LOGS_ROOT STEP [STEP...]   # LOGS_ROOT/alice: G+D per step
    python bench/gen_big.py run+small LOGS_ROOT STEP...     # and a small model per step
    python bench/gen_big.py run+small@tiny LOGS_ROOT STEP...  # the same, tiny scale
    python bench/gen_big.py G FOLDER I [I...]               # FOLDER/G_<I*100>.pth, epoch=seed=I
    python bench/gen_big.py save LOGS_ROOT STEP [STEP...]  # LOGS_ROOT/alice: G+D of the last
        # STEP only, as ``run`` with all these steps would have written it (a later save of
        # a run that ``run`` wrote with the earlier steps)
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

from fixtures.gen import _Clock, derive_seed, epoch_of, write_checkpoint, write_run


def save(dest: Path, steps: list[int], scale: str = "full") -> None:
    """The last save of ``write_run(dest, "alice", scale=scale, steps=steps)``: the same bytes
    and mtime as that call writes for it (``write_run``'s defaults are read, not copied)."""
    d = {k: p.default for k, p in inspect.signature(write_run).parameters.items()}
    steps = sorted(steps)
    step, spe = steps[-1], d["steps_per_epoch"]
    when = _Clock(steps, d["mtime_start"], d["mtime_interval"], spe)(step)
    run = dest / "alice"
    for kind in ("G", "D"):
        write_checkpoint(
            run / f"{kind}_{step}.pth", kind, scale=scale, epoch=epoch_of(step, spe),
            step=step, seed=derive_seed("run", d["seed"], "alice"), mtime=when,
        )  # fmt: skip
    os.utime(run, (when, when))  # like write_run: the folder dates from its newest file


def main(argv: list[str]) -> int:
    what, dest, *nums = argv
    what, _, scale = what.partition("@")  # run+small@tiny: the same run at tiny scale
    values = [int(n) for n in nums]
    if what in ("run", "run+small"):  # run+small: and the trainer's small model of each save
        small = tuple(values) if what == "run+small" else ()
        write_run(
            Path(dest), "alice", scale=scale or "full", steps=tuple(values), small_models=small
        )
    elif what == "G":
        for i in values:
            path = Path(dest) / f"G_{i * 100}.pth"
            write_checkpoint(path, "G", scale="full", epoch=i, seed=i)
    elif what == "save":
        save(Path(dest), values)
    else:
        print(f"unknown target {what!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
