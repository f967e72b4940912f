"""janitor.toml lookup: every file from the logs root down to the run counts (nearest wins
for rules, pins from all of them), tables name runs by relative path or unique folder name,
and each file is read once per command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import fake_ckpt, fake_run

STEPS = (100, 200, 300, 400, 500)


def steps_left(run: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in run.glob("G_*.pth"))


def deep_run(root: Path, layout: str) -> Path:
    """A run one level deeper than ``logs/<run>``, as the trainers (and users) lay them out."""
    parent, name = {
        "gpt-sovits": (root / "logs" / "exp", "logs_s2_v2"),
        "grouped": (root / "logs" / "group", "carol"),
        "bert-vits2": (root / "Data" / "exp", "models"),
    }[layout]
    return fake_run(parent, name, STEPS)


LAYOUTS = ("gpt-sovits", "grouped", "bert-vits2")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("table", ["path", "name"])
def test_the_root_file_reaches_runs_one_level_deeper(tmp_path, cli, layout, table):
    """Fails on the old lookup (the run's parent taken as the logs root): the root's
    ``[prune]`` and ``[runs.NAME]`` pins were silently dropped."""
    run = deep_run(tmp_path, layout)
    root = run.parent.parent
    name = f'"{run.parent.name}/{run.name}"' if table == "path" else run.name
    (root / "janitor.toml").write_text(f"[prune]\nkeep-last = 2\n\n[runs.{name}]\npins = [100]\n")

    r = cli("prune", root, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert steps_left(run) == [100, 500]  # the pin holds against the flag

    fake_run(run.parent, run.name, (600, 700, 800), start=1_800_000_000.0)
    r = cli("prune", root)
    assert r.exit_code == 0, r.output
    assert steps_left(run) == [100, 700, 800]  # the root's keep-last = 2, and the pin
    assert "warning" not in r.output
