"""The trash of a run whose folder moved (issue 26, items 5 and 6): `restore` of a run that is
gone or renamed, `scan` naming the trash of runs that are gone, `trash empty` of one run and
its dry run. Expected numbers come from the trash and the tree, before and after."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

import janitor
from tests.conftest import fake_run

REPO = Path(__file__).resolve().parent.parent
START = 1_700_000_000.0


def schema(name: str) -> dict:
    return json.loads((REPO / "docs" / f"{name}.schema.json").read_text())


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def trashed(tmp_path, cli):
    """logs/alice with steps 100..300 whose 100 and 200 went to the trash; returns (logs, run,
    the trashed files' bytes by name)."""
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200, 300], start=START)
    before = files(run)
    assert cli("prune", logs, "--trash").exit_code == 0
    gone = {n: b for n, b in before.items() if n not in files(run)}
    assert sorted(gone) == ["D_100.pth", "D_200.pth", "G_100.pth", "G_200.pth"]
    return logs, run, gone


def trash_bytes(logs: Path, name: str) -> int:
    return sum(p.stat().st_size for p in (logs / ".janitor" / "trash" / name).iterdir())


def test_restore_a_deleted_run_makes_its_folder_again(trashed, cli):
    logs, run, gone = trashed
    shutil.rmtree(run)
    r = cli("restore", run, "100")
    assert r.exit_code == 0, r.output
    assert files(run) == {n: b for n, b in gone.items() if n.endswith("_100.pth")}
    assert "2 files restored" in r.output


def test_restore_a_renamed_run_with_to(trashed, cli):
    logs, run, gone = trashed
    new = run.rename(logs / "alice2")
    kept = files(new)
    r = cli("restore", new)  # the renamed run has no trash of its own: the hint names alice's
    assert r.exit_code == 2
    assert "nothing in the trash" in r.output and "alice" in r.output
    assert f"--to {new}" in r.output and f"restore {run}" in r.output
    r = cli("restore", run, "--to", new, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema("restore"))
    assert files(new) == {**kept, **gone}
    assert not run.exists()
    assert sorted(Path(x["path"]).name for x in doc["restored"]) == sorted(gone)
    assert {str(Path(x["path"]).parent) for x in doc["restored"]} == {str(new)}
    assert trash_bytes(logs, "alice") == 0


def test_restore_to_another_logs_root_is_refused(trashed, cli, tmp_path):
    logs, run, gone = trashed
    other = tmp_path / "elsewhere" / "alice"
    other.mkdir(parents=True)
    r = cli("restore", run, "--to", other)
    assert r.exit_code == 2 and "--to" in r.output and "same logs root" in r.output
    assert trash_bytes(logs, "alice") == sum(len(b) for b in gone.values())


def test_restore_of_an_unknown_name_names_the_trash(trashed, cli):
    logs, run, gone = trashed
    r = cli("restore", logs / "bob")
    assert r.exit_code == 2
    assert "not a run folder" in r.output and ".janitor/trash" in r.output


def test_api_restore_to(trashed):
    logs, run, gone = trashed
    new = run.rename(logs / "carol")
    done = janitor.restore(run, 200, to=new)
    assert sorted(Path(dst).name for _, dst in done.result.moved) == ["D_200.pth", "G_200.pth"]
    assert (new / "G_200.pth").read_bytes() == gone["G_200.pth"]


def test_scan_reports_the_trash_of_a_run_that_is_gone(trashed, cli):
    logs, run, gone = trashed
    shutil.rmtree(run)
    size = trash_bytes(logs, "alice")
    assert size == sum(len(b) for b in gone.values())
    r = cli("scan", logs)
    assert "no training runs found" in r.output
    assert "trash of a run that is gone" in r.output and str(run) in r.output
    assert f"restore {run} --to" in r.output
    r = cli("scan", logs, "--json")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema("scan"))
    assert doc["trash_of_gone_runs"] == [
        {"run": str(run), "trash_dir": str(logs / ".janitor" / "trash" / "alice"),
         "files": len(gone), "size": size}
    ]  # fmt: skip


def test_scan_of_a_live_run_names_no_gone_trash(trashed, cli):
    logs, run, gone = trashed
    doc = json.loads(cli("scan", logs, "--json").stdout)
    assert doc["trash_of_gone_runs"] == []
    assert "gone" not in cli("scan", logs).output


def test_trash_empty_of_one_run(trashed, cli):
    logs, run, gone = trashed
    other = fake_run(logs, "bob", [1, 2], start=START)
    assert cli("prune", other, "--trash").exit_code == 0
    bob = trash_bytes(logs, "bob")
    alice = trash_bytes(logs, "alice")
    assert bob > 0 and alice > 0
    r = cli("trash", "empty", run, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema("trash-empty"))
    assert doc["freed"] == alice == doc["expected_freed"] and doc["dry_run"] is False
    assert trash_bytes(logs, "alice") == 0 and trash_bytes(logs, "bob") == bob


def test_trash_empty_of_a_run_that_is_gone(trashed, cli):
    logs, run, gone = trashed
    shutil.rmtree(run)
    r = cli("trash", "empty", run)
    assert r.exit_code == 0, r.output
    assert trash_bytes(logs, "alice") == 0
    assert "gone" not in cli("scan", logs).output


@pytest.mark.parametrize("where", ["root", "run"])
def test_trash_empty_dry_run_changes_nothing(trashed, cli, where):
    logs, run, gone = trashed
    size = trash_bytes(logs, "alice")
    journal = (logs / ".janitor" / "journal.jsonl").read_bytes()
    r = cli("trash", "empty", logs if where == "root" else run, "-n", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, schema("trash-empty"))
    assert doc["dry_run"] is True and doc["freed"] == 0 and doc["expected_freed"] == size
    assert len(doc["removed"]) == len(gone)
    assert trash_bytes(logs, "alice") == size
    assert (logs / ".janitor" / "journal.jsonl").read_bytes() == journal
    text = cli("trash", "empty", run, "--dry-run").output
    assert "would free" in text and "dry run" in text
    emptied = janitor.trash_empty(run, dry_run=True)
    assert emptied.dry_run and emptied.freed == size and trash_bytes(logs, "alice") == size
