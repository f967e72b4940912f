"""`finalize` of a logs root (issue 26, item 7): more than one run is finalized only with an
explicit `--all` (`all=True` in Python); a dry run shows them all; one run needs nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import janitor
from fixtures.gen import write_run
from janitor.domain.errors import UsageError

OLD = 1_600_000_000.0  # saves long ago: the runs are idle


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("all") / "logs"
    for name in ("alice", "bob"):
        write_run(logs, name, steps=(100, 200), mtime_start=OLD)
        for p in (logs / name).rglob("*"):
            os.utime(p, (OLD, OLD))
    return logs


@pytest.fixture
def logs(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "logs"))


def big(logs: Path) -> dict[str, list[str]]:
    return {run.name: sorted(p.name for p in run.glob("[GD]_*.pth")) for run in logs.iterdir()
            if not run.name.startswith(".")}  # fmt: skip


def test_a_logs_root_of_two_runs_needs_all(logs, cli):
    before = big(logs)
    assert all(before.values())
    r = cli("finalize", logs, "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    (error,) = doc["errors"]
    for word in ("alice", "bob", "--all", "--dry-run", "2 runs"):
        assert word in error["message"]
    assert big(logs) == before  # nothing extracted, nothing removed
    assert not [p for run in logs.iterdir() for p in run.glob("*_*e_*s.pth")]


def test_a_dry_run_shows_every_run_without_all(logs, cli):
    before = big(logs)
    r = cli("finalize", logs, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert sorted(x["name"] for x in doc["runs"]) == ["alice", "bob"]
    assert sorted(os.path.basename(p) for x in doc["runs"] for p in x["remove"]) == sorted(
        n for names in before.values() for n in names
    )
    assert big(logs) == before


def test_all_finalizes_every_run(logs, cli):
    r = cli("finalize", logs, "--all")
    assert r.exit_code == 0, r.output
    assert big(logs) == {"alice": [], "bob": []}


def test_one_run_folder_needs_no_all(logs, cli):
    before = big(logs)
    r = cli("finalize", logs / "alice")
    assert r.exit_code == 0, r.output
    assert big(logs) == {"alice": [], "bob": before["bob"]}


def test_the_api_asks_for_all_too(logs):
    before = big(logs)
    with pytest.raises(UsageError, match=r"all=True") as caught:
        janitor.finalize(logs)
    assert "--all" not in str(caught.value)
    assert big(logs) == before
    finals = janitor.finalize(logs, all=True)
    assert sorted(f.run.name for f in finals) == ["alice", "bob"]
    assert big(logs) == {"alice": [], "bob": []}
