"""`janitor prune` end to end: rules, config, pins, trash, journal, locks, failures, resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.gen import write_run
from janitor.storage.journal import Journal
from janitor.storage.scan import scan
from janitor.usecases.executor import Executor, run_lock
from janitor.usecases.prune import plan_run
from tests.conftest import (
    REPO,
    can_drop_privileges,
    fake_ckpt,
    fake_run,
    janitors_at_once,
    run_janitor,
    truncate,
)

STEPS = tuple(range(100, 1100, 100))


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def journal_records(logs: Path) -> list[dict]:
    read = Journal(str(logs / ".janitor")).read()
    assert read.torn_lines == ()
    return list(read.records)


def resume_pick(folder: Path, prefix: str) -> str | None:
    """Applio's / RVC's own rule, reproduced independently: glob <prefix>_*.pth, take the path
    whose digits, all concatenated, form the largest integer."""
    files = [str(p) for p in folder.glob(f"{prefix}_*.pth")]
    if not files:
        return None
    return os.path.basename(max(files, key=lambda f: int("".join(c for c in f if c.isdigit()))))


@pytest.fixture(scope="module")
def alice_template(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("template") / "logs"
    write_run(logs, "alice", steps=STEPS, small_models=(500, 1000))
    return logs


@pytest.fixture
def alice(alice_template, tmp_path) -> Path:
    """A fresh copy per test of an Applio run with steps 100..1000 (mtimes preserved)."""
    return Path(shutil.copytree(alice_template, tmp_path / "logs"))


def test_keep_last_one_leaves_only_the_newest_pair(alice, cli):
    run = alice / "alice"
    before = names(run)
    result = cli("prune", alice, "--keep-last", "1")
    assert result.exit_code == 0, result.output
    after = names(run)
    removed = before - after
    assert removed == {f"{p}_{s}.pth" for p in "GD" for s in STEPS[:-1]}
    assert {"G_1000.pth", "D_1000.pth", "alice_5e_500s.pth", "alice_10e_1000s.pth"} <= after
    assert {"config.json", "model_info.json"} <= after
    assert "freed" in result.output
    # the journal lists every removed file with its size, step, reasons and policy
    recs = [r for r in journal_records(alice) if r["event"] == "remove"]
    assert {os.path.basename(r["path"]) for r in recs} == removed
    assert all(
        r["reasons"] == ["kept by no rule"] and r["policy"] == "keep-last 1 (--keep-last)"
        for r in recs
    )
    assert all(r["size"] > 0 and r["step"] == int(r["path"].split("_")[-1][:-4]) for r in recs)


def test_dry_run_changes_nothing_and_gives_a_reason_for_every_kept_set(alice, cli):
    run = alice / "alice"
    before = {p.name: p.stat().st_mtime for p in run.iterdir()}
    result = cli("prune", alice, "--keep-last", "3", "--dry-run", "--json")
    assert result.exit_code == 0
    assert {p.name: p.stat().st_mtime for p in run.iterdir()} == before
    assert not (alice / ".janitor").exists()
    doc = json.loads(result.output)
    sets = doc["runs"][0]["sets"]
    assert [s["number"] for s in sets if s["action"] == "keep"] == [800, 900, 1000]
    assert all(s["reasons"] for s in sets)
    text = cli("prune", alice, "--keep-last", "3", "-n").output
    assert "newest complete; last 3" in text and "would free" in text


def test_json_plan_matches_the_executed_result(alice, cli):
    planned = json.loads(cli("prune", alice, "--keep-last", "2", "-n", "--json").output)
    done = json.loads(cli("prune", alice, "--keep-last", "2", "--json").output)
    strip = [{k: s[k] for k in ("number", "action", "reasons")} for s in planned["runs"][0]["sets"]]
    assert strip == [
        {k: s[k] for k in ("number", "action", "reasons")} for s in done["runs"][0]["sets"]
    ]
    assert done["freed"] == planned["expected_freed"] > 0
    assert all(s["removed"] for s in done["runs"][0]["sets"] if s["action"] == "remove")
    remaining = names(alice / "alice")
    assert {"G_900.pth", "D_900.pth", "G_1000.pth", "D_1000.pth"} <= remaining
    assert "G_800.pth" not in remaining


def test_truncated_newest_and_latest_only(tmp_path, cli):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=STEPS, truncated=[("G", 1100)])
    result = cli("prune", logs, "--keep-last", "1")
    assert result.exit_code == 0, result.output
    left = names(logs / "alice")
    assert {"G_1000.pth", "D_1000.pth", "G_1100.pth"} <= left and "G_900.pth" not in left
    # latest-only constant: the trainer's newest, not step 2,333,333
    write_run(logs, "bob", steps=(100, 200), latest_only=True)
    fake_run(logs, "bob", [300, 400])  # numbered saves next to it (mode switched)
    doc = json.loads(cli("prune", logs / "bob", "--json").output)
    sets = {s["number"]: s for s in doc["runs"][0]["sets"]}
    assert sets[2333333]["step"] is None and sets[2333333]["latest_only"]
    assert "latest-only: what the trainer resumes from" in sets[2333333]["reasons"]
    assert sets[400]["action"] == "keep" and sets[300]["action"] == "remove"
    assert resume_pick(logs / "bob", "G") == "G_2333333.pth"


GOLDEN = REPO / "tests" / "golden"


def _golden(name: str, doc) -> None:
    path = GOLDEN / name
    if os.environ.get("JANITOR_UPDATE_GOLDEN"):
        path.write_text(json.dumps(doc, indent=2) + "\n")
    assert doc == json.loads(path.read_text())


def test_combined_rules_match_the_golden_file(tmp_path, cli):
    logs = tmp_path / "logs"
    steps = tuple(range(100, 2100, 100))
    # loss falls, with a lucky dip at 700; saves every 10 minutes
    loss = {s: 40 - s / 100 + (5 if s != 700 else -15) for s in steps}
    write_run(
        logs, "alice", steps=steps, metrics={"loss/g/total": sorted(loss.items())},
        mtime_start=1_700_000_000.0, mtime_interval=600.0,
    )  # fmt: skip
    args = ["--keep-last", "2", "--keep-every", "500", "--keep-within", "1h"]
    args += ["--keep-best", "1", "--metric", "loss/g/total"]
    doc = json.loads(cli("prune", logs, *args, "--json").output)
    got = {
        str(s["number"]): {"action": s["action"], "reasons": s["reasons"]}
        for s in doc["runs"][0]["sets"]
    }
    _golden("combined_rules.json", got)
    kept = sorted(int(n) for n, s in got.items() if s["action"] == "keep")
    assert {f"G_{n}.pth" for n in kept} == {p.name for p in (logs / "alice").glob("G_*.pth")}


def test_unknown_metric_and_bad_values_are_usage_errors(alice, cli):
    write_run(alice, "m", steps=(100,), metrics={"loss/g/total": [(100, 1.0)]})
    r = run_janitor("prune", alice / "m", "--keep-best", "1", "--metric", "loss/nope")
    assert r.returncode == 2 and "unknown metric 'loss/nope'" in r.stderr
    assert "loss/g/total" in r.stderr
    for args, needle in [
        (["--keep-last", "-1"], "--keep-last"),
        (["--keep-within", "soon"], "'soon'"),
        (["--max-size", "lots"], "'lots'"),
        (["--keep-every", "0"], "--keep-every"),
        (["--keep-best", "2"], "--metric"),
        (["--older-than", "1d"], "--remove-incomplete"),
    ]:
        r = run_janitor("prune", alice, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_config_file_defaults_per_run_overrides_and_flags(alice, cli):
    write_run(alice, "bob", steps=STEPS)
    (alice / "janitor.toml").write_text("[prune]\nkeep-last = 3\n\n[runs.bob]\nkeep-last = 2\n")
    doc = json.loads(cli("prune", alice, "-n", "--json").output)
    kept = {
        r["name"]: [s["number"] for s in r["sets"] if s["action"] == "keep"] for r in doc["runs"]
    }
    assert kept == {"alice": [800, 900, 1000], "bob": [900, 1000]}
    (alice / "alice" / "janitor.toml").write_text("[prune]\nkeep-every = 500\n")
    doc = json.loads(cli("prune", alice / "alice", "-n", "--json").output)
    assert [s["number"] for s in doc["runs"][0]["sets"] if s["action"] == "keep"] == [
        500, 800, 900, 1000,
    ]  # fmt: skip
    doc = json.loads(cli("prune", alice / "alice", "-n", "--json", "--keep-last", "1").output)
    assert doc["runs"][0]["policy"] == {"keep_last": 1, "keep_every": 500, "mode": "min"}
    (alice / "janitor.toml").write_text("[prune]\nkeep-lots = 3\n")
    r = run_janitor("prune", alice, "-n")
    assert r.returncode == 2 and "janitor.toml:2: [prune]: unknown setting keep-lots" in r.stderr


def test_pins_survive_and_are_stored_in_the_run_config(alice, cli):
    run = alice / "alice"
    (run / "janitor.toml").write_text("# my settings\n[prune]\nkeep-last = 1\n")
    assert cli("pin", run, "300", "500").exit_code == 0
    text = (run / "janitor.toml").read_text()
    assert "# my settings" in text and "pins = [300, 500]" in text
    assert cli("unpin", run, "500").output.strip() == "pinned: 300"
    cli("prune", alice)
    assert {"G_300.pth", "D_300.pth", "G_1000.pth"} <= names(run)
    assert "G_500.pth" not in names(run)


def test_max_size_and_keep_within(alice, cli):
    run = alice / "alice"
    pair = (run / "G_100.pth").stat().st_size + (run / "D_100.pth").stat().st_size
    cli("prune", alice, "--max-size", str(int(pair * 3.5)))
    assert sorted(p.name for p in run.glob("G_*.pth")) == ["G_1000.pth", "G_800.pth", "G_900.pth"]
    r = cli("prune", alice, "--keep-last", "3", "--max-size", "1", "-n")
    assert "cannot fit in max-size" in r.output


def test_trash_restore_and_empty(alice, cli):
    run = alice / "alice"
    before = names(run)
    cli("prune", alice, "--trash")
    trashed = before - names(run)
    assert trashed and trashed <= set(os.listdir(alice / ".janitor" / "trash" / "alice"))
    out = cli("restore", run, "300").output
    assert "2 files restored" in out and {"G_300.pth", "D_300.pth"} <= names(run)
    out = cli("restore", run).output
    assert names(run) == before
    cli("prune", alice, "--trash")
    assert cli("trash", "empty", alice, "--older-than", "7d").output.startswith("freed 0 B ")
    out = cli("trash", "empty", alice).output
    assert out.startswith("freed ") and not os.listdir(alice / ".janitor" / "trash" / "alice")
    events = [r["event"] for r in journal_records(alice)]
    assert {"trash", "restore", "trash-empty"} <= set(events)


def test_truncate_before_unlink(alice):
    run = alice / "alice"
    seen = []

    class Spy(type(Executor().fs)):
        def truncate(self, path):
            seen.append(os.path.basename(path))
            super().truncate(path)

    report = scan([str(alice)])
    rp = plan_run(report.runs[0], now=0)
    Executor(Spy(), truncate=True).execute(rp)
    assert sorted(seen) == sorted(f"{p}_{s}.pth" for p in "GD" for s in STEPS[:-1])
    assert "G_100.pth" not in names(run)


def test_quiet_prints_only_the_total(alice):
    r = run_janitor("prune", alice, "--quiet")
    assert r.returncode == 0 and r.stdout.strip().startswith("freed ")
    assert len(r.stdout.strip().splitlines()) == 1


def test_permission_denied_file_the_rest_is_done(tmp_path):
    if not can_drop_privileges():
        pytest.skip("setpriv is needed to test permissions as root")
    logs = tmp_path / "logs"
    fake_run(logs, "a", [1, 2, 3])
    locked = fake_run(logs, "b", [1, 2, 3])
    locked.chmod(0o555)  # files cannot be unlinked from this folder
    try:
        r = run_janitor("prune", logs, unprivileged=True)
    finally:
        locked.chmod(0o755)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "permission denied" in r.stdout and "Traceback" not in r.stderr
    assert sorted(p.name for p in (logs / "a").iterdir()) == ["D_3.pth", "G_3.pth"]
    assert len(list(locked.iterdir())) == 6


def test_a_set_changed_since_planning_is_left_alone(alice):
    run = alice / "alice"
    report = scan([str(alice)])
    rp = plan_run(report.runs[0], now=0)
    os.utime(run / "D_200.pth", (1, 1))  # rewritten after the plan was made
    result = Executor().execute(rp)
    assert any("D_200.pth changed since planning" in s for s in result.skipped)
    assert {"G_200.pth", "D_200.pth"} <= names(run) and "G_300.pth" not in names(run)


def test_concurrent_prunes_do_not_double_delete(tmp_path):
    logs = tmp_path / "logs"
    fake_run(logs, "a", range(1, 201))
    done = janitors_at_once(3, "prune", logs, "--json")
    outs = [(out, err) for _, out, err in done]
    assert [rc for rc, _, _ in done] == [0, 0, 0], outs
    assert sorted(p.name for p in (logs / "a").iterdir()) == ["D_200.pth", "G_200.pth"]
    removed = [r["path"] for r in journal_records(logs) if r["event"] == "remove"]
    assert len(removed) == len(set(removed)) == 398
    freed = [json.loads(o)["freed"] for o, _ in outs]
    assert sum(1 for f in freed if f) == 1  # one did the work, the others found nothing left


def test_lock_busy_skips_with_a_message(alice):
    run = alice / "alice"
    report = scan([str(alice)])
    rp = plan_run(report.runs[0], now=0)
    with run_lock(str(run)):  # held by "another janitor" while this one tries
        res = Executor(lock_timeout=0.2).execute(rp)
    assert res.removed == () and "another janitor is working on this run" in res.skipped[0]


def test_interrupted_set_is_finished_and_reported(alice, cli):
    run = alice / "alice"
    Journal(str(alice / ".janitor")).append(
        {"event": "set-begin", "run": str(run), "number": 300, "time": "x"}
    )
    (run / "D_300.pth").unlink()  # the kill came after D, before G
    out = cli("prune", alice).output
    assert "alice: finishing 1 interrupted removal (step 300)" in out
    assert "G_300.pth" not in names(run)
    assert Journal(str(alice / ".janitor")).unfinished_sets(str(run)) == set()


class Killed(BaseException):
    """Stands for a kill: nothing after it runs, not even the executor's error handling."""


def test_set_begins_are_written_a_batch_at_once_and_a_kill_between_leaves_them_to_finish(
    tmp_path, monkeypatch
):
    import janitor.storage.fs as fs_module
    import janitor.storage.journal as journal_module
    from janitor.usecases import executor as executor_module
    from janitor.usecases.prune import parse_overrides

    logs = tmp_path / "logs"
    run = fake_run(logs, "r", range(1, 101), payload=64)
    writes: list[int] = []  # records per journal write
    real_append = journal_module.JournalWriter.append

    def append(self, *records):
        writes.append(len(records))
        return real_append(self, *records)

    monkeypatch.setattr(journal_module.JournalWriter, "append", append)
    real_remove, removed = fs_module.LocalFS.remove, []

    def remove(self, path):
        if len(removed) == 2 * batch + 41:  # in the second batch, at G of its 21st set
            raise Killed
        removed.append(path)
        return real_remove(self, path)

    batch = executor_module.SETS_PER_WRITE
    monkeypatch.setattr(fs_module.LocalFS, "remove", remove)
    rp = plan_run(scan([str(logs)]).runs[0], parse_overrides(keep_last=1))
    with pytest.raises(Killed):
        Executor().execute(rp)
    assert writes == [batch, batch * 3, batch]  # begins; removes and ends; begins
    unfinished = Journal(str(logs / ".janitor")).unfinished_sets(str(run))
    assert unfinished == set(range(batch + 1, 2 * batch + 1))
    cut = batch + 21  # D removed (G goes last), G not
    assert {p.name for p in run.iterdir()} == {f"G_{cut}.pth"} | {
        f"{k}_{n}.pth" for n in range(cut + 1, 101) for k in "GD"
    }
    monkeypatch.setattr(fs_module.LocalFS, "remove", real_remove)
    present = {int(p.stem.split("_")[1]) for p in run.iterdir()}
    result = Executor().execute(plan_run(scan([str(logs)]).runs[0], parse_overrides(keep_last=1)))
    assert sorted(p.name for p in run.iterdir()) == ["D_100.pth", "G_100.pth"]
    # the begun sets, said once per kind: "found finished" (no file left) or "finishing"
    gone, finishing = len(unfinished - present), len(unfinished & present)
    assert gone + finishing == len(unfinished) and len(result.notes) == 2
    assert result.notes[0].startswith(f"r: {gone} interrupted removals had already completed")
    assert result.notes[1].startswith(f"r: finishing {finishing} interrupted removals")
    assert Journal(str(logs / ".janitor")).unfinished_sets(str(run)) == set()


# --------------------------------------------------------------- the trainer still resumes


@st.composite
def layouts(draw):
    steps = sorted(draw(st.sets(st.integers(1, 3000), min_size=1, max_size=12)))
    layout = {}
    for s in steps:
        state = draw(st.sampled_from(["pair", "pair", "pair", "g-only", "g-trunc", "d-trunc"]))
        layout[s] = state
    latest = draw(st.sampled_from([None, "pair", "g-trunc"]))
    return layout, latest


@pytest.mark.safety("11. property tests: policy invariants, resume after prune")
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=layouts(), keep_last=st.integers(1, 3), keep_every=st.none() | st.integers(1, 2000))
def test_prune_keeps_the_trainers_resume_pick(tmp_path_factory, spec, keep_last, keep_every, cases):
    cases()
    layout, latest = spec
    logs = tmp_path_factory.mktemp("resume")
    run = logs / "r"
    items = list(layout.items()) + ([(2333333, latest)] if latest else [])
    for i, (step, state) in enumerate(items):
        g = fake_ckpt(run / f"G_{step}.pth", payload=64, mtime=1e9 + i)
        if state != "g-only":
            d = fake_ckpt(run / f"D_{step}.pth", payload=64, mtime=1e9 + i)
            if state == "d-trunc":
                truncate(d)
        if state == "g-trunc":
            truncate(g)
    before = (resume_pick(run, "G"), resume_pick(run, "D"))
    args = ["prune", str(logs), "--keep-last", str(keep_last)]
    if keep_every:
        args += ["--keep-every", str(keep_every)]
    from typer.testing import CliRunner

    from janitor.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (resume_pick(run, "G"), resume_pick(run, "D")) == before
    # and the newest complete pair (if there was one) is still complete on disk
    complete = [s for s, st_ in layout.items() if st_ == "pair"]
    if complete:
        newest = max(complete)
        assert (run / f"G_{newest}.pth").exists() and (run / f"D_{newest}.pth").exists()


# --------------------------------------------------- 12. rules, pins and config from every source

RULES_SAFETY = pytest.mark.safety("12. rules, pins and config from every source")


def kept(doc: dict, index: int = 0) -> list[int]:
    return [s["number"] for s in doc["runs"][index]["sets"] if s["action"] == "keep"]


def g_steps(run: Path) -> list[int]:
    return sorted(int(p.stem[2:]) for p in run.glob("G_*.pth"))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its content: to prove a refusal changed nothing."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
    }


@RULES_SAFETY
def test_partial_sets_obey_the_keep_rules(tmp_path, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", range(1000, 6000, 1000))
    for step in range(1000, 5000, 1000):  # users delete D files by hand: D is 2/3 of a set
        (run / f"D_{step}.pth").unlink()
    doc = json.loads(cli("prune", logs, "-n", "--json", "--keep-last", "5").output)
    assert kept(doc) == [1000, 2000, 3000, 4000, 5000]
    assert doc["runs"][0]["sets"][0]["reasons"] == ["last 5 (partial: no D file)"]
    text = cli("prune", logs, "-n", "--keep-last", "3").output
    assert "kept by no rule (partial set: no D file)" in text
    assert "older than the newest complete set" not in text
    result = cli("prune", logs, "--keep-every", "2000")
    assert result.exit_code == 0, result.output
    assert g_steps(run) == [2000, 4000, 5000] and (run / "D_5000.pth").exists()
    # only --remove-incomplete --older-than takes partial sets beyond the rules
    args = ["--keep-last", "5", "--remove-incomplete", "--older-than", "1d"]
    doc = json.loads(cli("prune", logs, "-n", "--json", *args).output)
    assert kept(doc) == [5000]


@RULES_SAFETY
def test_keep_every_keeps_the_milestones(tmp_path, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", range(1000, 13000, 1000))
    result = cli("prune", logs, "--keep-every", "5000")
    assert result.exit_code == 0, result.output
    assert g_steps(run) == [5000, 10000, 12000]


@RULES_SAFETY
def test_pin_wants_a_run_folder_not_a_logs_root(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200])
    fake_run(logs, "bob", [100, 200])
    before = tree(logs)
    r = cli("pin", logs, "100")
    assert r.exit_code == 2 and r.stdout == ""
    assert "a logs root, not a run (runs: alice, bob)" in r.stderr
    assert f"janitor pin {logs / 'alice'} 100" in r.stderr
    assert tree(logs) == before  # no logs/janitor.toml with pins that protect nothing
    r = cli("pin", logs / "alice", "100")
    assert r.exit_code == 0 and r.stdout == "pinned: 100\n"
    (logs / "carol").mkdir()  # a run not started yet
    assert cli("pin", logs / "carol", "7").exit_code == 0
    assert (logs / "carol" / "janitor.toml").read_text() == "pins = [7]\n"
    cli("prune", logs)
    assert g_steps(logs / "alice") == [100, 200] and g_steps(logs / "bob") == [200]


@RULES_SAFETY
def test_pins_in_the_root_runs_table_protect(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    fake_run(logs, "bob", [100, 200, 300])
    (logs / "janitor.toml").write_text("[runs.alice]\npins = [100]\n")
    (logs / "alice" / "janitor.toml").write_text("pins = [200]\n")
    result = cli("prune", logs)
    assert result.exit_code == 0, result.output
    assert g_steps(logs / "alice") == [100, 200, 300] and g_steps(logs / "bob") == [300]
    # unpin cannot drop a pin that lives in the root file: refused, nothing written
    before = tree(logs)
    r = cli("unpin", logs / "alice", "100", "200")
    assert r.exit_code == 2 and r.stdout == ""
    assert "janitor.toml:2" in r.stderr and "[runs.alice]" in r.stderr
    assert tree(logs) == before
    assert cli("unpin", logs / "alice", "200").stdout == "pinned: 100\n"
    assert cli("unpin", logs / "alice", "300").stdout == "not pinned: 300\npinned: 100\n"
    assert not (logs / "bob" / "janitor.toml").exists()
    assert cli("unpin", logs / "bob", "300").stdout == "not pinned: 300\npinned: none\n"
    assert not (logs / "bob" / "janitor.toml").exists()  # nothing to change: nothing written


@RULES_SAFETY
def test_a_runs_table_that_matches_no_run_is_a_warning(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    fake_run(logs, "bob", [100, 200, 300])
    (logs / "janitor.toml").write_text("[prune]\nkeep-last = 2\n\n[runs.bobb]\nkeep-last = 3\n")
    for args in (["prune", logs, "-n"], ["scan", logs], ["prune", logs, "-n", "--json"]):
        r = cli(*args)
        assert r.exit_code == 0, r.output
        warning = [line for line in r.stderr.splitlines() if "[runs.bobb]" in line]
        assert len(warning) == 1, r.stderr
        assert "janitor.toml:4" in warning[0] and "runs: alice, bob" in warning[0]
    assert json.loads(r.stdout)["runs"][1]["name"] == "bob"  # --json stays clean on stdout


def flags(*args: str, needles: tuple[str, ...]):
    return pytest.param(list(args), None, needles, id=" ".join(args) or "none")


def toml(text: str, *needles: str, where: str = "janitor.toml", args=()):
    case = " ".join([*args, where, text.strip().replace("\n", " / ")])
    return pytest.param(list(args), (where, text), needles, id=case)


BAD_VALUES = [
    # command-line rule options (run as a real prune, not a dry run: it must refuse whole)
    flags("--keep-last", "-1", needles=("--keep-last",)),
    flags("--keep-last", "abc", needles=("--keep-last", "'abc'")),
    flags("--keep-last", "1.5", needles=("--keep-last", "'1.5'")),
    flags("--keep-last", "nan", needles=("--keep-last", "'nan'")),
    flags("--keep-last", "1" + "0" * 30, needles=("--keep-last", "too large")),
    flags("--keep-every", "0", needles=("--keep-every",)),
    flags("--keep-every", "-5", needles=("--keep-every",)),
    flags("--keep-every", "inf", needles=("--keep-every", "'inf'")),
    flags("--keep-within", "2", needles=("--keep-within", "unit")),
    flags("--keep-within", "0s", needles=("--keep-within", "more than zero")),
    flags("--keep-within", "soon", needles=("--keep-within", "'soon'")),
    flags("--keep-within", "nan", needles=("--keep-within", "'nan'")),
    flags("--keep-within", "99999999999d", needles=("--keep-within", "too long")),
    flags("--keep-best", "-1", needles=("--keep-best",)),
    flags("--keep-best", "x", needles=("--keep-best", "'x'")),
    flags("--keep-best", "2", needles=("--keep-best", "--metric")),
    flags("--keep-best", "1", "--metric", "", needles=("--metric",)),
    flags("--metric", "loss/g/total", needles=("--metric", "--keep-best")),
    flags("--mode", "max", needles=("--mode", "--keep-best")),
    flags("--keep-best", "1", "--metric", "m", "--mode", "avg", needles=("--mode", "avg")),
    flags("--max-size", "lots", needles=("--max-size", "'lots'")),
    flags("--max-size", "0", needles=("--max-size", "more than zero")),
    flags("--max-size", "-5GB", needles=("--max-size", "'-5GB'")),
    flags("--max-size", "nan", needles=("--max-size", "'nan'")),
    flags("--max-size", "9" * 20 + "TB", needles=("--max-size", "too large")),
    flags("--older-than", "1d", needles=("--older-than", "--remove-incomplete")),
    flags("--remove-incomplete", needles=("--older-than",)),
    flags("--remove-incomplete", "--older-than", "2", needles=("--older-than", "unit")),
    flags("--remove-incomplete", "--older-than", "0s", needles=("--older-than", "zero")),
    # every duration that enters janitor wants a unit
    flags("trash", "empty", "{logs}", "--older-than", "7", needles=("--older-than", "unit")),
    flags("finalize", "{logs}/alice", "--idle", "30", needles=("--idle", "unit")),
    # janitor.toml: every key, named with file and line
    toml("keep-last = 3\n", "janitor.toml:1", "keep-last", "did you mean it under [prune]?"),
    toml("[prune]\nkeep-last = 2\n\n[runs.alice]\nkeep-last = 3\n\n# x\ncolour = 'red'\n",
         "janitor.toml:8", "colour"),
    toml("[prnue]\nkeep-last = 3\n", "janitor.toml:1", "[prnue]"),
    toml("colour = 'red'\n[prune]\nkeep-last = 2\n", "janitor.toml:1", "colour"),
    toml("[prune]\nkeep-lots = 3\n", "janitor.toml:2", "keep-lots"),
    toml("[prune]\nolder-than = '1d'\n", "janitor.toml:2", "older-than"),
    toml("[prune]\nkeep-last = -1\n", "janitor.toml:2", "keep-last"),
    toml('[prune]\nkeep-last = "3"\n', "janitor.toml:2", "keep-last", "whole number"),
    toml("[prune]\nkeep-last = 1.5\n", "janitor.toml:2", "keep-last"),
    toml("[prune]\nkeep-last = nan\n", "janitor.toml:2", "keep-last"),
    toml("[prune]\nkeep-last = inf\n", "janitor.toml:2", "keep-last"),
    toml("[prune]\nkeep-last = true\n", "janitor.toml:2", "keep-last"),
    toml("[prune]\nkeep-last = 10000000000000\n", "janitor.toml:2", "keep-last", "too large"),
    toml("[prune]\nkeep-every = 0\n", "janitor.toml:2", "keep-every"),
    toml("[prune]\nkeep-within = 2\n", "janitor.toml:2", "keep-within", "unit"),
    toml('[prune]\nkeep-within = "2"\n', "janitor.toml:2", "keep-within", "unit"),
    toml('[prune]\nkeep-within = "soon"\n', "janitor.toml:2", "keep-within", "'soon'"),
    toml("[prune]\nkeep-within = nan\n", "janitor.toml:2", "keep-within"),
    toml("[prune]\n\nkeep-best = 2\n", "janitor.toml:3", "keep-best", "metric"),
    toml("[prune]\nkeep-best = 2\nmetric = 3\n", "janitor.toml:3", "metric"),
    toml("[prune]\nkeep-best = 2\nmetric = ''\n", "janitor.toml:3", "metric"),
    toml('[prune]\nmode = "avg"\n', "janitor.toml:2", "mode", "avg"),
    toml('[prune]\nmax-size = "lots"\n', "janitor.toml:2", "max-size", "'lots'"),
    toml("[prune]\nmax-size = 0\n", "janitor.toml:2", "max-size"),
    toml("[prune]\nmax-size = -5\n", "janitor.toml:2", "max-size"),
    toml("[prune]\nmax-size = nan\n", "janitor.toml:2", "max-size"),
    toml("[prune]\nmax-size = true\n", "janitor.toml:2", "max-size"),
    toml("[prune]\npins = [100]\n", "janitor.toml:2", "pins"),
    toml("# mine\npins = [100]\n", "janitor.toml:2", "pins", "[runs.NAME]"),
    toml("[runs.alice]\npins = [-1]\n", "janitor.toml:2", "pins"),
    toml('[runs.alice]\npins = "100"\n', "janitor.toml:2", "pins"),
    toml("[runs.alice]\npins = [1.5]\n", "janitor.toml:2", "pins"),
    toml("[runs.alice]\nkeep-last = -1\n", "janitor.toml:2", "[runs.alice]", "keep-last"),
    toml("runs = 3\n", "janitor.toml:1", "runs"),
    toml("[runs]\nalice = 3\n", "janitor.toml:2", "alice"),
    toml("prune = 3\n", "janitor.toml:1", "prune"),
    toml("[prune\n", "janitor.toml", "line 1"),
    toml("pins = [100]\n[prune]\nkeep-within = 2\n", "alice/janitor.toml:3", "keep-within",
         "unit", where="alice/janitor.toml"),
    toml("pinz = [100]\n", "alice/janitor.toml:1", "pinz", where="alice/janitor.toml"),
    toml("keep-last = 3\n", "janitor.toml:1", "keep-last", args=("scan", "{logs}")),
    # pin / unpin: run folders and step numbers
    flags("pin", "{logs}", "100", needles=("a logs root", "alice, bob")),
    flags("unpin", "{logs}", "100", needles=("a logs root", "alice, bob")),
    flags("pin", "{logs}/alice/G_100.pth", "100", needles=("G_100.pth", "not a run folder")),
    flags("pin", "{logs}/carol", "100", needles=("carol", "no such folder")),
    flags("pin", "{logs}/alice", "abc", needles=("STEPS", "'abc'")),
    flags("pin", "{logs}/alice", "100", "1.5", needles=("STEPS", "'1.5'")),
    flags("pin", "{logs}/alice", "--", "-5", needles=("STEPS", "'-5'")),
    flags("pin", "{logs}/alice", "1" + "0" * 20, needles=("STEPS", "too large")),
    flags("unpin", "{logs}/alice", "abc", needles=("STEPS", "'abc'")),
    toml("pins = 'x'\n", "alice/janitor.toml:1", "pins", where="alice/janitor.toml",
         args=("pin", "{logs}/alice", "100")),
]  # fmt: skip


@RULES_SAFETY
def test_refusals_in_a_real_process_are_one_line(tmp_path):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    fake_run(logs, "bob", [100, 200, 300])
    r = run_janitor("pin", logs, "100")
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"janitor: {logs}: a logs root, not a run (runs: alice, bob)")
    assert len(r.stderr.splitlines()) == 1 and not (logs / "janitor.toml").exists()
    (logs / "janitor.toml").write_text("# defaults\nkeep-last = 3\n")
    r = run_janitor("prune", logs)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr == (
        f"janitor: {logs}/janitor.toml:2: keep-last: not read at the top level; "
        "did you mean it under [prune]?\n"
    )
    assert g_steps(logs / "alice") == [100, 200, 300]


@RULES_SAFETY
@pytest.mark.parametrize("args, config, needles", BAD_VALUES)
def test_bad_values_are_one_line_usage_errors_naming_their_source(
    tmp_path, cli, args, config, needles
):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    fake_run(logs, "bob", [100, 200, 300])
    if config:
        (logs / config[0]).write_text(config[1])
    if not args or args[0].startswith("--"):
        args = ["prune", "{logs}", *args]  # a real prune, not a dry run: it must refuse whole
    before = tree(logs)
    r = cli(*(a.replace("{logs}", str(logs)) for a in args))
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("janitor: "), r.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert tree(logs) == before


def test_prune_plans_without_the_cyclic_collector_and_restores_it(tmp_path, cli, monkeypatch):
    """At 200k files the collector's passes over the report cost more than the plan itself:
    prune pauses it for the whole command (the report is held while every run is planned)
    and turns it back on when the command returns (tests run commands in-process)."""
    import gc

    import janitor.usecases.prune as prune_module

    fake_run(tmp_path / "logs", "alice", [100, 200])
    during: list[bool] = []
    real = prune_module.plan_run

    def spy(*args, **kwargs):
        during.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(prune_module, "plan_run", spy)
    assert gc.isenabled()
    assert cli("prune", tmp_path / "logs", "--keep-last", "1", "-n").exit_code == 0
    assert during == [False] and gc.isenabled()
    for args in (["prune", tmp_path / "nowhere"], ["scan", tmp_path / "nowhere"]):
        assert cli(*args).exit_code == 2 and gc.isenabled()  # also after a usage error


def test_several_files_of_one_run_plan_exactly_their_sets(tmp_path, cli):
    """Each named file's set is planned, with reasons computed on the whole run: step 300 is
    not "newest complete" (500 is), and 400 and 500 are not touched."""
    run = fake_run(tmp_path / "logs", "alice", [100, 200, 300, 400, 500])
    named = [run / f"G_{n}.pth" for n in (100, 200, 300)]
    dry = cli("prune", *named, "-n", "--json")
    assert dry.exit_code == 0, dry.output
    (planned,) = json.loads(dry.output)["runs"]
    steps = {d["step"]: d for d in planned["sets"]}
    assert set(steps) == {100, 200, 300}
    assert all(d["action"] == "remove" for d in steps.values()), steps
    assert not any("newest complete" in r for d in steps.values() for r in d["reasons"])
    assert cli("prune", *named).exit_code == 0
    left = sorted(p.name for p in run.iterdir())
    assert left == ["D_400.pth", "D_500.pth", "G_400.pth", "G_500.pth"]
