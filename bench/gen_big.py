"""Child process of ``bench/run.py``: write full-size fixtures with ``fixtures.gen``.

Run with cwd = repo root and the repo root on ``PYTHONPATH``::

    python bench/gen_big.py run LOGS_ROOT STEP [STEP...]   # LOGS_ROOT/alice: G+D per step
    python bench/gen_big.py G FOLDER I [I...]               # FOLDER/G_<I*100>.pth, epoch=seed=I
"""

from __future__ import annotations

import sys
from pathlib import Path

from fixtures.gen import write_checkpoint, write_run


def main(argv: list[str]) -> int:
    what, dest, *nums = argv
    values = [int(n) for n in nums]
    if what == "run":
        write_run(Path(dest), "alice", scale="full", steps=tuple(values), with_d=True)
    elif what == "G":
        for i in values:
            path = Path(dest) / f"G_{i * 100}.pth"
            write_checkpoint(path, "G", scale="full", epoch=i, seed=i)
    else:
        print(f"unknown target {what!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
