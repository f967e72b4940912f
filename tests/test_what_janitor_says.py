"""What janitor says is true (issue 26, items 1, 2, 4, 8, 11): every number, reason and note
is checked against facts derived from the tree before and after, and from the journal; no
stored output strings."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from janitor.cli.render import size
from janitor.core import law
from janitor.storage.cache import RACY_NS
from janitor.storage.journal import Journal
from tests.conftest import fake_ckpt, fake_run, run_janitor

STEPS = range(100, 1100, 100)
LATEST = 2333333


def set_bytes(run: Path) -> dict[int, int]:
    """Step (or the latest-only number) -> the bytes of its G and D files, from the tree."""
    out: dict[int, int] = {}
    for p in run.iterdir():
        m = re.fullmatch(r"[GD]_(\d+)\.pth", p.name)
        if m:
            out[int(m[1])] = out.get(int(m[1]), 0) + p.stat().st_size
    return out


def frees_keeping_newest(run: Path, k: int) -> int:
    """What keep-last ``k`` frees in a run of complete numbered sets: all but the newest k."""
    sets = set_bytes(run)
    return sum(sets[n] for n in sorted(sets)[:-k])


def dry_run(cli, path: Path) -> dict[str, dict]:
    """``prune -n --json``: run path -> the run's plan."""
    result = cli("prune", path, "-n", "--json")
    assert result.exit_code == 0, result.output
    return {r["path"]: r for r in json.loads(result.output)["runs"]}


# ------------------------------------------------------------------ 1. scan's "would free"


@pytest.fixture
def configured(tmp_path) -> Path:
    """alice: keep-last 5 from the logs root's janitor.toml; bob: [runs.bob] keep-last 3;
    carol: no rule anywhere (keep-last 1)."""
    logs = tmp_path / "logs"
    for name in ("alice", "bob", "carol"):
        fake_run(logs, name, STEPS, payload=4096)
    (logs / "janitor.toml").write_text("[prune]\nkeep-last = 5\n\n[runs.bob]\nkeep-last = 3\n")
    (logs / "carol" / "janitor.toml").write_text("[prune]\nkeep-last = 1\n")
    return logs


def test_scan_says_what_prune_would_free_under_the_runs_own_rules(configured, cli):
    kept = {"alice": 5, "bob": 3, "carol": 1}
    plans = dry_run(cli, configured)
    result = cli("scan", configured, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    for run in doc["runs"]:
        truth = frees_keeping_newest(configured / run["name"], kept[run["name"]])
        assert run["prune_frees"] == truth == plans[run["path"]]["expected_freed"], run["name"]
        assert f"keep-last {kept[run['name']]}" in run["prune_rules"]  # the rule, named ...
        assert "janitor.toml" in run["prune_rules"]  # ... with where it came from
        assert run["keep_last_1_frees"] == frees_keeping_newest(configured / run["name"], 1)
    assert doc["totals"]["prune_frees"] == sum(r["expected_freed"] for r in plans.values())


def test_scan_text_says_up_to_only_where_it_left_sets_unchecked(configured, cli):
    alice = configured / "alice"
    truth = frees_keeping_newest(alice, 5)
    cold = cli("scan", alice, "--no-cache").output  # lazy: 100..900 are not read
    line = next(x for x in cold.splitlines() if "would free" in x and x.startswith("  "))
    assert f"would free up to {size(truth)} under keep-last 5 (" in line, cold
    assert "9 sets older than the newest complete one" in line
    time.sleep(RACY_NS / 1e9)  # files changed as the scan starts are not cached: wait
    cli("scan", alice, "--json")  # reads every file and keeps the verdicts
    warm = cli("scan", alice).output  # every verdict known: the exact number, no "up to"
    line = next(x for x in warm.splitlines() if "would free" in x and x.startswith("  "))
    plan = dry_run(cli, alice)[str(alice)]
    assert plan["expected_freed"] == truth
    assert f"prune would free {size(truth)} under keep-last 5 (" in line, warm
    assert "up to" not in line and "not checked" not in warm
    total = warm.strip().splitlines()[-1]
    assert total.endswith(f"; prune would free {size(truth)}"), total


def test_scan_names_rules_prune_would_refuse_and_goes_on(configured, cli):
    (configured / "alice" / "janitor.toml").write_text("[prune]\nkeep-best = 2\n")
    result = cli("scan", configured, "--json")
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads(result.output)["runs"]}
    assert runs["alice"]["prune_frees"] is None and runs["alice"]["prune_rules"] is None
    (warning,) = [w for w in runs["alice"]["warnings"] if w["code"] == "rules-invalid"]
    refused = cli("prune", configured / "alice", "-n")
    assert refused.exit_code == 2
    assert str(configured / "alice" / "janitor.toml") in warning["message"]
    assert runs["bob"]["prune_frees"] == frees_keeping_newest(configured / "bob", 3)


# ------------------------------------------------------------------ 2. each set its own reason


@pytest.fixture
def beside_latest(tmp_path) -> Path:
    """Numbered sets 100..1000 and the trainer's latest-only set, written last."""
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", STEPS)
    for p in "GD":
        fake_ckpt(run / f"{p}_{LATEST}.pth", mtime=1_700_000_000.0 + 600 * len(STEPS))
    return run


UNIQUE = (law.NEWEST_COMPLETE, law.NEWEST_NUMBERED, law.LATEST_WRITTEN, law.LATEST_ONLY)


def test_the_latest_only_set_and_the_newest_numbered_set_each_say_what_they_are(beside_latest, cli):
    (plan,) = dry_run(cli, beside_latest).values()
    reasons = {s["number"]: s["reasons"] for s in plan["sets"]}
    newest_numbered = max(n for n in set_bytes(beside_latest) if n != LATEST)
    assert law.LATEST_ONLY in reasons[LATEST]
    assert law.NEWEST_NUMBERED in reasons[newest_numbered]
    for claim in UNIQUE:  # a reason that claims uniqueness is given to one set at most
        holders = [n for n, why in reasons.items() if claim in why]
        assert len(holders) <= 1, (claim, holders)
    # the two kept sets share no protection
    assert not set(reasons[LATEST]) & set(reasons[newest_numbered]) & set(law.PROTECTIONS)


def test_the_plot_draws_the_latest_only_set(beside_latest, cli, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plan.svg"
    result = cli("scan", beside_latest, "--plot", out)
    assert result.exit_code == 0, result.output
    (plan,) = dry_run(cli, beside_latest).values()
    latest = next(s for s in plan["sets"] if s["number"] == LATEST)
    text = out.read_text()  # matplotlib's svg keeps each text in a comment
    assert latest["reasons"][0] in text and f"latest-only ({LATEST})" in text


# ------------------------------------------------------------------ 4. after an interrupted prune


def interrupted_prune(logs: Path, gone: dict[str, range], begun: dict[str, range]) -> None:
    """What a kill leaves: set-begin records of the sets in ``gone`` (every file removed,
    no set-end written) and of ``begun`` (only D removed)."""
    records = []
    for sets, prefixes in ((gone, "GD"), (begun, "D")):
        for name, steps in sets.items():
            for step in steps:
                records.append({"event": "set-begin", "run": str(logs / name), "number": step,
                                "time": "x"})  # fmt: skip
                for p in prefixes:
                    (logs / name / f"{p}_{step}.pth").unlink()
    Journal(str(logs / ".janitor")).append(*records)


GONE = {"alice": range(1, 41), "bob": range(1, 3)}  # removed, no set-end: found finished
BEGUN = {"alice": range(41, 44)}  # half removed: finished by the next prune


@pytest.fixture
def interrupted(tmp_path) -> Path:
    logs = tmp_path / "logs"
    for name in ("alice", "bob"):
        fake_run(logs, name, range(1, 61), payload=64)
    interrupted_prune(logs, GONE, BEGUN)
    return logs


def test_quiet_after_an_interrupted_prune_says_only_the_total(interrupted):
    logs, gone = interrupted, GONE
    before = {name: set_bytes(logs / name) for name in ("alice", "bob")}

    quiet = run_janitor("prune", logs, "-q")
    assert quiet.returncode == 0, quiet.stderr
    freed = sum(sum(sizes.values()) - sizes[max(sizes)] for sizes in before.values())
    assert quiet.stdout.splitlines() == [quiet.stdout.strip()]  # one line: the total
    assert quiet.stdout.startswith(f"freed {size(freed)} ")
    # what was said to the journal: per run, the sets found finished
    found = {}
    for r in Journal(str(logs / ".janitor")).read().records:
        if r.get("event") == "set-end" and r.get("note") == "found finished":
            found.setdefault(Path(r["run"]).name, []).append(r["number"])
    assert found == {name: list(steps) for name, steps in gone.items()}


def test_an_interrupted_prune_is_one_note_per_run_naming_it(interrupted, cli):
    gone, begun = GONE, BEGUN
    out = cli("prune", interrupted).output
    notes = [line.strip() for line in out.splitlines() if "interrupted removal" in line]
    expected = []
    for name, steps in gone.items():
        n = len(steps)
        expected.append(f"note: {name}: {n} interrupted removal{'s' if n > 1 else ''} had "
                        f"already completed (step {steps[0]}")  # fmt: skip
    for name, steps in begun.items():
        expected.append(f"note: {name}: finishing {len(steps)} interrupted removals "
                        f"(step {steps[0]}")  # fmt: skip
    assert len(notes) == len(expected), notes  # one per run and kind, never one per set
    for want in expected:
        assert any(note.startswith(want) for note in notes), (want, notes)


# ------------------------------------------------------------------ 8. errors name their path


def test_json_errors_carry_the_path_their_message_names(tmp_path):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200])
    missing, folder = tmp_path / "nonexistent", tmp_path / "empty"
    folder.mkdir()
    cases = [
        (["scan", missing], missing),
        (["prune", missing], missing),
        (["restore", folder], folder),  # nothing in its trash
        (["restore", run, "100"], run),  # nothing in the trash
        (["info", missing.with_suffix(".pth")], missing.with_suffix(".pth")),
        (["extract-small", missing.with_suffix(".pth")], missing.with_suffix(".pth")),
        (["extract-small", folder], folder),  # a folder, not a checkpoint file
    ]
    for args, path in cases:
        r = run_janitor(*args, "--json")
        assert r.returncode != 0, args
        (error,) = json.loads(r.stdout)["errors"]
        assert error["path"] == str(path), (args, error)
        assert error["message"].startswith(f"{path}: "), (args, error)  # ... which it names


# ------------------------------------------------------------------ 11. the trash on a bucket


def test_a_trash_move_on_a_bucket_says_the_files_are_still_in_the_bucket(tmp_path, bucket, cli):
    bucket.upload(fake_run(tmp_path / "src", "alice", [100, 200, 300]), "logs/alice")
    result = cli("prune", bucket.url("logs"), "--trash")
    assert result.exit_code == 0, result.output
    trashed = [k for k in bucket.keys("logs/.janitor/trash/") if k.endswith(".pth")]
    assert len(trashed) == 4  # the objects are still stored, in the bucket
    assert "moved to the trash (still in the bucket): 4 files" in result.output
    assert "on disk" not in result.output
    scanned = cli("scan", bucket.url("logs"), "--no-cache").output
    assert "(still in the bucket; `janitor trash list`)" in scanned and "on disk" not in scanned
    local = fake_run(tmp_path / "logs", "bob", [100, 200])  # on a disk: still on disk
    said = cli("prune", local, "--trash").output
    assert "moved to the trash (still on disk): 2 files" in said
