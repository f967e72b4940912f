"""The trash: `prune --trash`, `janitor trash list`, `janitor restore`, `janitor trash empty`.
Every trashed copy of a file stays listed and restorable; nothing is overwritten; a move to
the trash is never reported as freed space."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from janitor.storage.fs import LocalFS
from janitor.storage.journal import Journal
from janitor.storage.scan import scan
from janitor.usecases.executor import Executor
from janitor.usecases.prune import plan_run
from tests.conftest import fake_ckpt, fake_run

safety = pytest.mark.safety
SCENARIO = "13. trash: every copy listed and restorable"
START = 1_700_000_000.0


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def contents(run: Path, step: int) -> dict[str, bytes]:
    return {p: (run / f"{p}_{step}.pth").read_bytes() for p in ("G", "D")}


def trash_listing(cli, path: Path) -> list[dict]:
    r = cli("trash", "list", path, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["files"]


@pytest.fixture
def twice(tmp_path, cli):
    """logs/alice whose step 100 was trashed twice (two different G_100/D_100 pairs), step 200
    kept. Returns (logs, run, first copy's bytes, second copy's bytes)."""
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200], start=START)
    first = contents(run, 100)
    assert cli("prune", logs, "--trash").exit_code == 0
    for p in ("G", "D"):  # the trainer, restarted, saves step 100 again
        fake_ckpt(run / f"{p}_100.pth", payload=3000, mtime=START - 600)
    second = contents(run, 100)
    assert first != second
    assert cli("prune", logs, "--trash").exit_code == 0
    assert names(run) == {"G_200.pth", "D_200.pth"}
    return logs, run, first, second


@safety(SCENARIO)
def test_every_trashed_copy_is_listed_and_comes_back(twice, cli, tmp_path, cases):
    logs, run, first, second = twice
    listed = trash_listing(cli, run)
    assert sorted((f["copy"], os.path.basename(f["original_path"])) for f in listed) == [
        ("100#1", "D_100.pth"), ("100#1", "G_100.pth"),
        ("100#2", "D_100.pth"), ("100#2", "G_100.pth"),
    ]  # fmt: skip
    assert all(f["step"] == 100 and f["run"] == str(run) for f in listed)
    assert all(isinstance(f["size"], int) and os.path.exists(f["trash_path"]) for f in listed)
    assert trash_listing(cli, logs) == listed  # the logs root lists the same
    text = cli("trash", "list", run).output
    assert "100#1" in text and "100#2" in text and "G_100.pth" in text
    cases()

    # restore without --copy: the newest copy comes back, the older one is named, not forgotten
    r = cli("restore", run)
    assert r.exit_code == 0, r.output
    assert contents(run, 100) == second
    assert "2 files restored" in r.output and "100#1" in r.output
    assert {f["copy"] for f in trash_listing(cli, run)} == {"100#1"}  # restored: not listed
    cases()

    # again: the names are taken; nothing is overwritten, and that is not a silent success
    r = cli("restore", run)
    assert r.exit_code == 1, r.output
    assert "0 files restored" in r.output and "100#1" in r.output
    assert contents(run, 100) == second
    cases()

    # once the names are free again, the older copy comes back too, by step
    keep = tmp_path / "kept"
    keep.mkdir()
    for p in ("G", "D"):
        os.rename(run / f"{p}_100.pth", keep / f"{p}_100.pth")
    r = cli("restore", run, "100")
    assert r.exit_code == 0, r.output
    assert contents(run, 100) == first
    assert trash_listing(cli, run) == []
    assert "empty" in cli("trash", "list", logs).output
    r = cli("trash", "empty", logs)
    assert r.exit_code == 0 and r.output.startswith("freed 0 B ")
    cases()


@safety(SCENARIO)
def test_restore_again_brings_back_the_older_copy(twice, cli, tmp_path, cases):
    """`restore` alone (no listing): no copy is ever lost to a later `trash empty`."""
    logs, run, first, second = twice
    assert cli("restore", run).exit_code == 0
    assert contents(run, 100) == second
    for p in ("G", "D"):  # the user sets the restored pair aside: the names are free again
        os.rename(run / f"{p}_100.pth", tmp_path / f"{p}_100.pth")
    r = cli("restore", run)
    assert r.exit_code == 0 and "2 files restored" in r.output, r.output
    assert contents(run, 100) == first
    assert os.listdir(logs / ".janitor" / "trash" / "alice") == []
    cases()


@safety(SCENARIO)
def test_restore_a_chosen_copy(twice, cli, cases):
    logs, run, first, second = twice
    r = cli("restore", run, "--copy", "100#1")
    assert r.exit_code == 0, r.output
    assert contents(run, 100) == first
    assert {f["copy"] for f in trash_listing(cli, run)} == {"100#2"}
    cases()
    r = cli("restore", run, "100", "--copy", "100#7")
    assert r.exit_code == 2 and "100#7" in r.stderr and "100#2" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    cases()
    # a trash file name is a copy id too (the one `ls .janitor/trash/alice` shows)
    for p in ("G", "D"):
        os.remove(run / f"{p}_100.pth")
    (trashed,) = {f["trash_path"] for f in trash_listing(cli, run) if "G_100" in f["trash_path"]}
    r = cli("restore", run, "--copy", os.path.basename(trashed))
    assert r.exit_code == 0, r.output
    assert contents(run, 100) == second and trash_listing(cli, run) == []
    cases()


@safety(SCENARIO)
def test_restore_of_nothing_is_an_error_naming_the_trash(twice, cli, cases):
    logs, run, first, second = twice
    r = cli("restore", run, "300")
    assert r.exit_code == 2, r.output
    assert "step 300" in r.stderr and "100#1" in r.stderr and "100#2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    cases()
    bob = fake_run(logs, "bob", [1, 2])
    r = cli("restore", bob)
    assert r.exit_code == 2 and "nothing in the trash" in r.stderr, r.output
    cases()


@safety(SCENARIO)
def test_a_set_comes_back_whole_or_not_at_all(tmp_path, cli, cases):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200], start=START)
    cli("prune", logs, "--trash")
    fake_ckpt(run / "D_100.pth", mtime=START)  # only D's name is taken
    r = cli("restore", run, "100")
    assert r.exit_code == 1, r.output
    assert "G_100.pth" not in names(run)  # G does not come back without its D
    assert "D_100.pth" in r.output and "0 files restored" in r.output
    assert len(trash_listing(cli, run)) == 2
    cases()


@safety(SCENARIO)
def test_trash_without_journal_is_listed_and_restorable(twice, cli, cases):
    logs, run, first, second = twice
    os.remove(Journal(str(logs / ".janitor")).path)
    listed = trash_listing(cli, run)
    assert sorted(f["copy"] for f in listed) == ["100#1", "100#1", "100#2", "100#2"]
    assert all(f["step"] == 100 and not f["journaled"] for f in listed)
    assert {os.path.dirname(f["original_path"]) for f in listed} == {str(run)}
    cases()
    r = cli("restore", run, "--copy", "100#1")
    assert r.exit_code == 0, r.output
    assert contents(run, 100) == first
    cases()


def test_prune_trash_says_moved_not_freed(tmp_path, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200, 300], start=START)
    r = cli("prune", logs, "--trash", "-n")
    assert "would move" in r.output and "to the trash (still on disk)" in r.output
    assert "would free" not in r.output
    r = cli("prune", logs, "--trash")
    assert r.exit_code == 0, r.output
    assert "moved to the trash (still on disk)" in r.output and "freed" not in r.output
    fake_run(logs, "alice", [400, 500], start=START + 6000)
    moved = sum((run / f"{p}_300.pth").stat().st_size for p in "GD")
    doc = json.loads(cli("prune", logs, "--trash", "--json", "--keep-last", "2").stdout)
    assert doc["freed"] == 0 and doc["trashed"] == moved
    assert doc["runs"][0]["freed"] == 0 and doc["runs"][0]["trashed"] == moved


def test_prune_json_counts_deleted_and_trashed_apart(tmp_path, cli):
    logs = tmp_path / "logs"
    a = fake_run(logs, "a", [1, 2], start=START)
    size = sum((a / f"{p}_1.pth").stat().st_size for p in "GD")
    doc = json.loads(cli("prune", logs, "--json").stdout)
    assert doc["freed"] == size and doc["trashed"] == 0


def test_journal_tells_copies_apart(twice):
    logs, run, first, second = twice
    trash = [r for r in Journal(str(logs / ".janitor")).read().records if r["event"] == "trash"]
    assert sorted((r["copy"], os.path.basename(r["path"])) for r in trash) == [
        ("100#1", "D_100.pth"), ("100#1", "G_100.pth"),
        ("100#2", "D_100.pth"), ("100#2", "G_100.pth"),
    ]  # fmt: skip
    assert len({r["trash_path"] for r in trash}) == 4


@safety(SCENARIO)
def test_trash_empty_older_than_keeps_the_newer(tmp_path, cli, cases):
    logs = tmp_path / "logs"
    now = time.time()
    for name, trashed_at in (("old", now - 3 * 86400), ("new", now - 3600)):
        fake_run(logs, name, [1, 2], start=START)
        report = scan([str(logs / name)])
        rp = plan_run(report.runs[0], now=0)
        Executor(trash=True, clock=lambda t=trashed_at: t).execute(rp)
    assert len(trash_listing(cli, logs)) == 4
    r = cli("trash", "empty", logs, "--older-than", "2d")
    assert r.exit_code == 0, r.output
    size = sum(f["size"] for f in trash_listing(cli, logs / "old"))
    assert size == 0
    left = trash_listing(cli, logs)
    assert {os.path.basename(f["run"]) for f in left} == {"new"} and len(left) == 2
    assert r.output.startswith("freed ") and "2 files" in r.output
    cases()


@safety(SCENARIO)
def test_a_set_whose_trash_move_was_interrupted_stays_one_copy(tmp_path, cli, cases):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200], start=START)
    first = contents(run, 100)

    class KilledBeforeG(LocalFS):  # the process dies between D's move and G's
        def rename(self, src, dst):
            if os.path.basename(src).startswith("G_"):
                raise KeyboardInterrupt
            super().rename(src, dst)

    rp = plan_run(scan([str(logs)]).runs[0], now=0)
    with pytest.raises(KeyboardInterrupt):
        Executor(KilledBeforeG(), trash=True).execute(rp)
    assert names(run) == {"G_100.pth", "G_200.pth", "D_200.pth"}
    r = cli("prune", logs, "--trash")
    assert r.exit_code == 0 and "finishing 1 interrupted removal" in r.output, r.output
    assert sorted(f["copy"] for f in trash_listing(cli, run)) == ["100#1", "100#1"]
    assert cli("restore", run).exit_code == 0 and contents(run, 100) == first
    cases()


def test_a_prune_to_the_trash_lists_the_run_s_trash_once(tmp_path, monkeypatch):
    """Copy numbers come from the trash folder as listed once under the run's lock, then
    kept up to date (listing it for each set made a prune of 1,000 sets take 30 s)."""
    from janitor.usecases.prune import parse_overrides

    logs = tmp_path / "logs"
    run = fake_run(logs, "r", range(1, 41), payload=64)
    trash = logs / ".janitor" / "trash" / "r"
    trash.mkdir(parents=True)
    for name in ("G_5.pth", "D_5.pth", "G_5.pth.1", "D_5.pth.1"):  # two copies of step 5
        fake_ckpt(trash / name, payload=64)
    listed: list[str] = []
    real = LocalFS.listdir

    def listdir(self, path):
        listed.append(path)
        return real(self, path)

    monkeypatch.setattr(LocalFS, "listdir", listdir)
    rp = plan_run(scan([str(logs)]).runs[0], parse_overrides(keep_last=1))
    result = Executor(trash=True).execute(rp)
    assert len(result.removed) == 78 and listed.count(str(trash)) == 1
    assert {"G_5.pth.2", "D_5.pth.2", "G_6.pth", "D_39.pth"} <= names(trash)
    assert names(run) == {"G_40.pth", "D_40.pth"}
