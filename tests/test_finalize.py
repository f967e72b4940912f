"""`janitor finalize`: big checkpoints go only after verified small models exist."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from fixtures.gen import write_run
from janitor.storage.journal import Journal

OLD = 1_600_000_000.0  # saves long ago: the run is idle


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("final") / "logs"
    loss = [(s, 40.0 - s / 100 + (0 if s != 200 else -10)) for s in range(100, 600, 100)]
    write_run(
        logs, "alice", steps=range(100, 600, 100), small_models=(200, 400),
        metrics={"loss/g/total": loss}, mtime_start=OLD,
    )  # fmt: skip
    for p in (logs / "alice").rglob("*"):  # events and configs are old too
        os.utime(p, (OLD, OLD))
    return logs


@pytest.fixture
def logs(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "logs"))


def state(folder: Path) -> dict[str, tuple[int, float]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_finalize_extracts_verifies_and_removes_every_big_file(logs, cli):
    run = logs / "alice"
    big = sorted(p.name for p in run.glob("[GD]_*.pth"))
    r = cli("finalize", logs)
    assert r.exit_code == 0, r.output
    assert "extracted" in r.output and "verified" in r.output
    left = sorted(p.name for p in run.iterdir() if p.is_file())
    assert not [n for n in left if n[:2] in ("G_", "D_")]
    assert {"alice_2e_200s.pth", "alice_4e_400s.pth", "alice_5e_500s.pth"} <= set(left)
    assert {"config.json", "model_info.json"} <= set(left)
    assert any(n.startswith("events.out.tfevents.") for n in left)
    records = Journal(str(logs / ".janitor")).read().records
    removed = sorted(os.path.basename(r["path"]) for r in records if r["event"] == "remove")
    assert removed == big
    small = torch.load(run / "alice_5e_500s.pth", weights_only=True)
    assert small["step"] == 500 and small["epoch"] == 5


def test_an_altered_small_model_fails_verification_and_nothing_is_removed(logs, cli):
    run = logs / "alice"
    r = cli("finalize", logs, "--dry-run")
    assert r.exit_code == 0
    # write the newest step's small model, then change one tensor in it
    assert cli("extract-small", run / "G_500.pth").exit_code == 0
    path = run / "alice_5e_500s.pth"
    small = torch.load(path, weights_only=True)
    key = next(iter(small["weight"]))
    small["weight"][key] = small["weight"][key] + 1
    torch.save(small, path)
    os.utime(path, (OLD, OLD))
    before = state(run)
    r = cli("finalize", logs)
    assert r.exit_code == 1
    assert f"tensor {key} differs" in r.output and "nothing removed" in r.output
    assert state(run) == before


def test_a_small_model_naming_another_step_fails(logs, cli):
    run = logs / "alice"
    assert cli("extract-small", run / "G_400.pth", "-o", run / "alice_5e_500s.pth").exit_code == 0
    os.utime(run / "alice_5e_500s.pth", (OLD, OLD))
    before = state(run)
    r = cli("finalize", logs)
    assert r.exit_code == 1 and "step is 400, expected 500" in r.output
    assert state(run) == before


def test_an_active_run_is_refused_without_force(logs, cli):
    run = logs / "alice"
    recent = time.time() - 60
    os.utime(run / "G_300.pth", (recent, recent))
    before = state(run)
    r = cli("finalize", logs)
    assert r.exit_code == 1 and "looks active" in r.output and "--force" in r.output
    assert state(run) == before
    r = cli("finalize", logs, "--force")
    assert r.exit_code == 0 and not list(run.glob("G_*.pth"))


def test_dry_run_changes_nothing(logs, cli):
    before = state(logs)
    r = cli("finalize", logs, "--dry-run", "--json")
    assert r.exit_code == 0
    assert state(logs) == before
    doc = json.loads(r.output)
    (run,) = doc["runs"]
    assert [k["action"] for k in run["kept"]] == ["extract"]
    assert len(run["remove"]) == 10 and run["expected_freed"] > 0 and run["freed"] == 0


def test_best_and_listed_steps_get_verified_small_models(logs, cli):
    r = cli(
        "finalize", logs, "--keep-best", "1", "--metric", "loss/g/total", "--steps", "300",
        "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    kept = {k["step"]: k for k in json.loads(r.output)["runs"][0]["kept"]}
    assert sorted(kept) == [200, 300, 500]
    assert kept[200]["action"] == "exists" and kept[200]["reasons"][0].startswith("best 1 by")
    assert kept[300]["action"] == "extracted" and all(k["verified"] for k in kept.values())


def test_no_complete_g_is_refused(tmp_path, cli):
    run = tmp_path / "logs" / "r"
    run.mkdir(parents=True)
    (run / "G_100.pth").write_bytes(b"PK\x03\x04 truncated")
    r = cli("finalize", tmp_path / "logs", "--force")
    assert r.exit_code == 1 and "no complete G checkpoint" in r.output
    assert (run / "G_100.pth").exists()


def test_scan_marks_finished_runs(logs, cli):
    doc = json.loads(cli("scan", logs, "--json").output)
    (run,) = doc["runs"]
    assert run["looks_finished"] is False  # no small model for the newest step (500) yet
    assert cli("extract-small", logs / "alice" / "G_500.pth").exit_code == 0
    for p in (logs / "alice").iterdir():
        os.utime(p, (OLD, OLD))
    doc = json.loads(cli("scan", logs, "--json").output)
    assert doc["runs"][0]["looks_finished"] is True
    assert doc["runs"][0]["finalize_frees"] == doc["runs"][0]["big_bytes"]
    assert "looks finished" in cli("scan", logs).output
