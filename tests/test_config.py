"""janitor.toml lookup: every file from the logs root down to the run counts (nearest wins
for rules, pins from all of them), tables name runs by relative path or unique folder name,
and each file is read once per command."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from janitor.domain.paths import shown_path
from janitor.storage.fs import LocalFS
from tests.conftest import fake_run

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


def planned(cli, *args) -> dict:
    """The one run's planner in ``prune -n --json``: rules, their sources and the pins."""
    r = cli("prune", "-n", "--json", *args)
    assert r.exit_code == 0, r.output
    (run,) = json.loads(r.stdout)["runs"]
    return run["planner"]


def test_the_nearest_file_wins_key_by_key(tmp_path, cli):
    run = deep_run(tmp_path, "gpt-sovits")
    logs, exp = run.parent.parent, run.parent
    (logs / "janitor.toml").write_text(
        '[prune]\nkeep-last = 5\nkeep-every = 1000\n\n[runs."exp/logs_s2_v2"]\nkeep-last = 4\n'
    )
    (exp / "janitor.toml").write_text("[prune]\nkeep-last = 3\n")
    (run / "janitor.toml").write_text("[prune]\nkeep-last = 2\n")
    steps = []
    for drop in (run, exp, None):
        planner = planned(cli, logs)
        steps.append(planner["rules"]["keep_last"])
        assert planner["rules"]["keep_every"] == 1000  # set above, and nowhere nearer
        assert planner["sources"]["keep_every"] == f"{logs / 'janitor.toml'}"
        if drop is not None:
            (drop / "janitor.toml").unlink()
    assert steps == [2, 3, 4]
    assert planned(cli, logs)["sources"]["keep_last"] == (
        f"{logs / 'janitor.toml'} [runs.exp/logs_s2_v2]"
    )


def test_a_nearer_files_prune_beats_a_table_further_up(tmp_path, cli):
    """[runs.NAME] beats [prune] of its own file only: a file nearer the run beats both."""
    run = deep_run(tmp_path, "grouped")
    (run.parent.parent / "janitor.toml").write_text("[runs.carol]\nkeep-last = 4\n")
    (run.parent / "janitor.toml").write_text("[prune]\nkeep-last = 3\n")
    assert planned(cli, run)["rules"]["keep_last"] == 3


def test_pins_are_the_union_of_all_files_with_their_sources(tmp_path, cli):
    from janitor.storage.config import ConfigFiles

    run = deep_run(tmp_path, "grouped")
    logs, group = run.parent.parent, run.parent
    (logs / "janitor.toml").write_text('# pins\n[runs."group/carol"]\npins = [100, 300]\n')
    (group / "janitor.toml").write_text("[runs.carol]\npins = [200]\n")
    (run / "janitor.toml").write_text("pins = [300, 400]\n")
    assert planned(cli, logs)["pins"] == [100, 200, 300, 400]
    assert planned(cli, logs, "--keep-last", "1")["pins"] == [100, 200, 300, 400]
    settings = ConfigFiles().run(str(run))
    root_table = f"{logs / 'janitor.toml'}:3 [runs.group/carol]"
    assert settings.pin_sources() == {
        100: (root_table,),
        200: (f"{group / 'janitor.toml'}:2 [runs.carol]",),
        300: (root_table, f"{run / 'janitor.toml'}:1"),
        400: (f"{run / 'janitor.toml'}:1",),
    }
    r = cli("prune", logs, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert steps_left(run) == [100, 200, 300, 400, 500]
    # unpin cannot drop a pin of a file above the run: it names that file and line
    for step, where in (
        ("200", f"{group / 'janitor.toml'}:2: [runs.carol] pins"),
        ("300", f"{logs / 'janitor.toml'}:3: [runs.group/carol] pins"),
    ):
        r = cli("unpin", run, step)
        assert r.exit_code == 2 and r.stderr.startswith(f"janitor: {where}: step {step} is")
    assert cli("unpin", run, "400").stdout == "pinned: 100, 200, 300\n"
    assert (run / "janitor.toml").read_text() == "pins = [300]\n"


def warned(cli, *args) -> list[str]:
    """The warnings of a command that succeeds."""
    r = cli(*args)
    assert r.exit_code == 0, r.output
    return [line for line in r.stderr.splitlines() if "warning" in line]


def test_a_folder_name_several_runs_have_is_a_warning_and_pins_none(tmp_path, cli):
    logs = tmp_path / "logs"
    a, b = fake_run(logs / "a", "carol", STEPS), fake_run(logs / "b", "carol", STEPS)
    (logs / "janitor.toml").write_text("[runs.carol]\npins = [100]\n")
    for args in (["scan", logs], ["prune", a, "-n"], ["prune", logs, "--keep-last", "1"]):
        assert warned(cli, *args) == [
            f"janitor: warning: {logs / 'janitor.toml'}:1: [runs.carol]: 2 runs are named "
            "carol (a/carol, b/carol); applies to none: name one by its path, e.g. "
            '[runs."a/carol"]'
        ], args
    assert steps_left(a) == steps_left(b) == [500]
    # by its path, the table names one of them
    (logs / "janitor.toml").write_text('[runs."b/carol"]\npins = [100]\n')
    fake_run(logs / "a", "carol", STEPS)
    fake_run(logs / "b", "carol", STEPS)
    r = cli("prune", logs, "--keep-last", "1")
    assert r.exit_code == 0 and "warning" not in r.stderr, r.output
    assert (steps_left(a), steps_left(b)) == ([500], [100, 500])


def test_a_table_naming_a_folder_that_is_no_run_is_a_warning(tmp_path, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs / "group", "carol", STEPS)
    (logs / "dave").mkdir()  # a folder, not (yet) a run
    (logs / "janitor.toml").write_text(
        "[prune]\nkeep-last = 2\n\n[runs.dave]\npins = [100]\n\n[runs.carl]\nkeep-last = 3\n"
    )
    for args in (["scan", logs], ["prune", run, "-n"], ["prune", logs, "-n", "--json"]):
        assert warned(cli, *args) == [
            f"janitor: warning: {logs / 'janitor.toml'}:4: [runs.dave]: no run "
            f"{logs / 'dave'} (runs: group/carol); ignored until it holds checkpoints",
            f"janitor: warning: {logs / 'janitor.toml'}:7: [runs.carl]: no run "
            f"{logs / 'carl'} (runs: group/carol); ignored until it holds checkpoints",
        ], args
    # pins for a run not started yet still go to its folder, and hold once it starts
    assert cli("pin", logs / "dave", "200").stdout == "pinned: 100, 200\n"  # with [runs.dave]
    fake_run(logs, "dave", STEPS)
    r = cli("prune", logs, "--keep-last", "1")
    assert r.exit_code == 0 and "[runs.dave]" not in r.stderr, r.output
    assert steps_left(logs / "dave") == [100, 200, 500]


class CountingFS(LocalFS):
    """The local disk, counting the reads of each janitor.toml."""

    def __init__(self) -> None:
        self.reads: Counter[str] = Counter()

    def read_bytes(self, path: str, offset: int = 0) -> bytes:
        if os.path.basename(path) == "janitor.toml":
            self.reads[path] += 1
        return super().read_bytes(path, offset)


def test_each_file_is_read_once_per_command(tmp_path, cli, monkeypatch):
    from janitor.storage import locate, platform

    logs = tmp_path / "logs"
    runs = [fake_run(logs / "group", n, STEPS) for n in ("carol", "dan", "erin")]
    runs.append(deep_run(tmp_path, "gpt-sovits"))
    (logs / "janitor.toml").write_text("[prune]\nkeep-last = 2\n\n[runs.carol]\npins = [100]\n")
    (logs / "group" / "janitor.toml").write_text("[runs.dan]\npins = [200]\n")
    (runs[0] / "janitor.toml").write_text("pins = [300]\n")
    monkeypatch.setenv(platform.WORKERS_ENV, "1")  # forked workers would each read their own
    for args in (["scan"], ["scan", "--json"], ["prune", "-n"], ["prune", "--trash"]):
        fs = CountingFS()
        monkeypatch.setattr(locate, "LOCAL", fs)
        r = cli(*args, logs)
        assert r.exit_code == 0, r.output
        assert {logs / "janitor.toml", logs / "group/janitor.toml", runs[0] / "janitor.toml"} <= {
            Path(p) for p in fs.reads
        }
        # once; the executor reads a file again only if it changed since (stats)
        assert max(fs.reads.values()) == 1, (args, fs.reads)
    assert [steps_left(r) for r in runs] == [[100, 300, 400, 500], [200, 400, 500], [400, 500],
                                             [400, 500]]  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_path_given_changes_neither_state_nor_settings(tmp_path, cli, layout):
    """The logs root, the run or one of its files: the same rules and pins, and the run's
    state (verdict cache, journal, trash) in the same .janitor/: its parent's, where earlier
    versions put it."""
    seen = []
    for given in ("root", "run", "file"):
        top = tmp_path / given
        run = deep_run(top, layout)
        root = run.parent.parent
        (root / "janitor.toml").write_text(
            f"[prune]\nkeep-last = 2\n[runs.{run.name}]\npins = [100]\n"
        )
        (run.parent / "janitor.toml").write_text("[prune]\nkeep-every = 300\n")
        path = {"root": root, "run": run, "file": run / "G_500.pth"}[given]
        planner = planned(cli, path)
        sources = {k: v.replace(str(top), "") for k, v in planner["sources"].items()}
        seen.append((planner["rules"], planner["pins"], sources))
        assert cli("scan", path).exit_code == 0
        if given != "file":  # (a file names its own set only)
            r = cli("prune", "--trash", path)
            assert r.exit_code == 0, r.output
            assert steps_left(run) == [100, 300, 400, 500]
            assert (run.parent / ".janitor" / "journal.jsonl").is_file()
            assert (run.parent / ".janitor" / "trash" / run.name / "G_200.pth").is_file()
        states = {run.parent / ".janitor"} if given != "file" else set()  # (it wrote none)
        assert set(top.glob("**/.janitor")) == states
    assert seen[0][:2] == ({"keep_last": 2, "keep_every": 300, "mode": "min"}, [100])
    assert seen[0] == seen[1] == seen[2]


def test_scan_and_a_dry_run_say_where_each_rule_and_pin_came_from(tmp_path, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", STEPS)
    (logs / "janitor.toml").write_text("[prune]\nkeep-last = 2\n\n[runs.alice]\npins = [100]\n")
    (run / "janitor.toml").write_text("pins = [200]\n")
    root_file = shown_path(str(logs / "janitor.toml"))
    own_file = shown_path(str(run / "janitor.toml"))
    for args in (["scan", logs], ["prune", logs, "-n"]):
        out = cli(*args).output
        assert f"keep-last 2 ({root_file})" in out, out
        assert f"100 ({root_file}:5 [runs.alice])" in out, out
        assert f"200 ({own_file}:1)" in out, out
    doc = json.loads(cli("prune", logs, "-n", "--json").stdout)
    assert doc["runs"][0]["planner"]["pin_sources"] == {
        "100": [f"{root_file}:5 [runs.alice]"], "200": [f"{own_file}:1"],
    }  # fmt: skip
