"""The one law of protection: every planner starts from it, the executor asks it again before
each removal, and only the three named waivers let a protected set go."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.gen import write_run
from janitor.core import law
from janitor.core.planners import FinalizePlanner, FixResumePlanner
from janitor.domain.plans import RunPlan, SetDecision, Waiver
from janitor.storage.config import ConfigFiles
from janitor.storage.journal import Journal
from janitor.storage.scan import scan
from janitor.usecases.executor import Executor
from tests.conftest import fake_ckpt, fake_run, truncate

OLD = 1_600_000_000.0
HOUR = 3600.0


@dataclass(frozen=True)
class RemoveEverything:
    """A wrong planner: a bare object of the planner protocol (no base class that applies the
    law for it) that marks every set for removal, and may claim any waiver."""

    claim: Waiver | None = None
    kind: str = "wrong"

    @property
    def waiver(self) -> Waiver | None:
        return self.claim

    def plan(self, run, now: float) -> RunPlan:
        decisions = tuple(SetDecision(s, False, ("wrong planner",)) for s in run.sets)
        return RunPlan(run, self, decisions)

    def describe(self) -> str:
        return "a wrong planner"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


def protected_tree(root: Path) -> Path:
    """A run with one set of each protection: pinned 200, newest complete 500, a latest-only
    file, a save in progress above it (G_600 being written), old unprotected 100, 300, 400."""
    run = fake_run(root, "alice", [100, 200, 300, 400, 500], start=OLD)
    fake_ckpt(run / "G_2333333.pth", mtime=OLD - HOUR)
    fake_ckpt(run / "G_600.pth")  # now: still being written
    truncate(run / "G_600.pth")
    (run / "janitor.toml").write_text("pins = [200]\n")
    return run


def files(run: Path) -> set[str]:
    return {p.name for p in run.iterdir() if p.suffix == ".pth"}


def journal_records(root: Path) -> list[dict]:
    return Journal(str(root / ".janitor")).read().records


@pytest.mark.parametrize(
    "claim",
    [
        None,
        Waiver("finalize", verified=False),  # claims finalize without verified small models
        Waiver("fix-resume"),  # claims fix-resume while deleting (no trash)
        Waiver("remove-incomplete", older_than=0.0),  # a leftover waiver cannot take a save
    ],
)
def test_a_wrong_planner_removes_nothing_protected(tmp_path, claim):
    run = protected_tree(tmp_path / "logs")
    (report,) = scan([str(run)]).runs
    shown = RemoveEverything(claim).plan(report, time.time())
    assert len(shown.removals) == len(report.sets)  # it really asks for everything

    result = Executor().execute(shown)

    left = files(run)
    # what the law protects is still there, whatever the planner said
    assert {"G_200.pth", "D_200.pth", "G_500.pth", "D_500.pth", "G_2333333.pth"} <= left
    assert "G_600.pth" in left  # a save in progress
    # the rest went: the wrong planner is obeyed where the law lets it be
    assert not {"G_100.pth", "D_100.pth", "G_300.pth", "D_400.pth"} & left
    refused = {r["number"]: r["reasons"] for r in journal_records(tmp_path / "logs")
               if r["event"] == "refused"}  # fmt: skip
    assert law.PINNED in refused[200]
    assert law.NEWEST_COMPLETE in refused[500]
    assert law.LATEST_ONLY in refused[2333333]
    assert law.INCOMPLETE in refused[600]
    said = "\n".join(result.skipped)
    assert "step 200" in said and "protected (pinned" in said


@pytest.mark.parametrize("before", ["", "pins = [300]\n"])
def test_the_executor_reads_pins_again_under_the_lock(tmp_path, before):
    """A step pinned after the plan was shown is not removed by that plan, also when the
    executor holds the command's janitor.toml files, read before the pin was written."""
    run = fake_run(tmp_path / "logs", "alice", [100, 200, 300], start=OLD)
    if before:
        (run / "janitor.toml").write_text(before)
    (report,) = scan([str(run)]).runs
    config = ConfigFiles()
    config.pins(str(run))  # the command read its files when it planned
    shown = RemoveEverything().plan(report, time.time())
    (run / "janitor.toml").write_text("pins = [100]\n")
    Executor(config=config).execute(shown)
    assert {"G_100.pth", "D_100.pth", "G_300.pth"} <= files(run)
    assert not {"G_200.pth", "D_200.pth"} & files(run)


# ------------------------------------------------------------------ the waivers


def test_finalize_waiver_lifts_newest_complete_but_never_a_pin(tmp_path):
    run = protected_tree(tmp_path / "logs")
    (report,) = scan([str(run)]).runs
    planner = FinalizePlanner((500,), verified=True, pins=frozenset({200}))
    shown = planner.plan(report, time.time())
    removed = {d.set.number for d in shown.removals}
    assert 500 in removed and 2333333 in removed  # the waiver: newest complete, latest-only
    kept = {d.set.number: d.reasons for d in shown.decisions if d.keep}
    assert kept[200] == ("pinned; `janitor unpin` to let finalize remove it",)
    assert law.INCOMPLETE in kept[600]  # a save in progress: no waiver
    Executor().execute(shown)
    assert {"G_200.pth", "D_200.pth", "G_600.pth"} == files(run)
    # unverified, the same plan lifts nothing at execution
    run2 = protected_tree(tmp_path / "logs2")
    (report2,) = scan([str(run2)]).runs
    unverified = FinalizePlanner((500,), verified=False, pins=frozenset({200}))
    Executor().execute(unverified.plan(report2, time.time()))
    assert {"G_500.pth", "D_500.pth", "G_2333333.pth"} <= files(run2)


def stale_latest_only(root: Path) -> Path:
    """An old G_2333333.pth from an earlier run beside newer numbered saves: the trainer
    would resume from it."""
    run = fake_run(root, "bob", [100, 200], start=OLD)
    fake_ckpt(run / "G_2333333.pth", mtime=OLD - 30 * HOUR)
    fake_ckpt(run / "D_2333333.pth", mtime=OLD - 30 * HOUR)
    return run


def test_fix_resume_waiver_to_the_trash_only(tmp_path):
    run = stale_latest_only(tmp_path / "logs")
    (report,) = scan([str(run)]).runs
    shown = FixResumePlanner().plan(report, time.time())
    assert {d.set.number for d in shown.removals} == {2333333}
    assert law.judge(report, (), time.time())[2333333]  # protected without the waiver

    Executor(trash=False).execute(shown)  # deleting: the law grants no fix-resume waiver
    assert "G_2333333.pth" in files(run)
    Executor(trash=True).execute(shown)
    assert "G_2333333.pth" not in files(run)
    trashed = [r for r in journal_records(tmp_path / "logs") if r["event"] == "trash"]
    assert {os.path.basename(r["path"]) for r in trashed} == {"G_2333333.pth", "D_2333333.pth"}


def test_fix_resume_waiver_covers_only_its_targets(tmp_path):
    run = stale_latest_only(tmp_path / "logs")
    (run / "janitor.toml").write_text("pins = [2333333]\n")
    (report,) = scan([str(run)]).runs
    # a planner claiming fix-resume for everything: only the stale set is the law's target
    # (and here it is pinned: it stays too)
    Executor(trash=True).execute(RemoveEverything(Waiver("fix-resume")).plan(report, time.time()))
    assert {"G_2333333.pth", "G_200.pth", "D_200.pth"} <= files(run)
    assert not {"G_100.pth", "D_100.pth"} & files(run)


def test_remove_incomplete_waiver_takes_old_leftovers_never_a_save_in_progress(tmp_path):
    run = fake_run(tmp_path / "logs", "carol", [100, 200, 300], start=OLD)
    truncate(run / "G_300.pth")  # a crash leftover, long settled (mtime kept old)
    os.utime(run / "G_300.pth", (OLD, OLD))
    fake_ckpt(run / "G_400.pth")
    truncate(run / "G_400.pth")  # being written now
    (report,) = scan([str(run)]).runs
    waiver = Waiver("remove-incomplete", older_than=HOUR)
    guarded = law.judge(report, (), time.time(), waiver)
    assert guarded[300] == []  # the leftover may go
    assert law.INCOMPLETE in guarded[400]  # the save in progress may not
    Executor().execute(RemoveEverything(waiver).plan(report, time.time()))
    assert "G_300.pth" not in files(run) and "G_400.pth" in files(run)
    assert "G_200.pth" in files(run)  # newest complete


# ------------------------------------------------------------------ finalize and pins (CLI)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("law") / "logs"
    write_run(logs, "alice", steps=range(100, 600, 100), mtime_start=OLD)
    for p in (logs / "alice").rglob("*"):
        os.utime(p, (OLD, OLD))
    return logs


def test_finalize_keeps_a_pinned_set_and_says_so(finished, tmp_path, cli):
    logs = Path(shutil.copytree(finished, tmp_path / "logs"))
    run = logs / "alice"
    assert cli("pin", run, "300").exit_code == 0
    dry = cli("finalize", run, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "janitor unpin" in dry.output and "300" in dry.output
    r = cli("finalize", run)
    assert r.exit_code == 0, r.output
    left = files(run)
    assert {"G_300.pth", "D_300.pth"} <= left  # the pin holds
    assert not {"G_500.pth", "D_500.pth", "G_100.pth"} & left  # the rest is finalized
    assert "alice_5e_500s.pth" in {p.name for p in run.iterdir()} or any(
        p.name.endswith("_500s.pth") for p in run.iterdir()
    )


def test_a_run_whose_training_process_is_alive_is_active(finished, tmp_path, cli):
    """Applio lists its training processes in config.json while it trains: a live one makes
    the run active whatever the file times say; a dead one (a crash) says nothing."""
    import json
    import subprocess

    logs = Path(shutil.copytree(finished, tmp_path / "logs"))
    config = logs / "alice" / "config.json"
    doc = json.loads(config.read_text())
    trainer = subprocess.Popen(["sleep", "60"])
    try:
        config.write_text(json.dumps({**doc, "process_pids": [trainer.pid]}))
        os.utime(config, (OLD, OLD))
        r = cli("finalize", logs / "alice", "--dry-run")
        assert r.exit_code == 1 and "process it names in config.json is running" in r.output
    finally:
        trainer.kill()
        trainer.wait()
    r = cli("finalize", logs / "alice", "--dry-run")  # the listed process is gone
    assert r.exit_code == 0, r.output


def test_janitors_own_writes_never_make_a_run_active(finished, tmp_path, cli):
    logs = Path(shutil.copytree(finished, tmp_path / "logs"))
    run = logs / "alice"
    assert cli("pin", run, "300").exit_code == 0  # writes run/janitor.toml now
    (run / ".janitor-tmp-x").write_bytes(b"")  # a temp file of janitor's
    r = cli("finalize", run, "--dry-run")
    assert r.exit_code == 0 and "looks active" not in r.output, r.output
    os.utime(run / "G_500.pth")  # the trainer's own write: active
    r = cli("finalize", run, "--dry-run")
    assert r.exit_code == 1 and "looks active" in r.output
