"""Disk pressure (docs/full-disk.md): ``--min-free`` keeps a floor of free space per file
system, ``--max-total`` one budget for a logs root, both across runs, oldest first, never
taking what the law protects. Real tmpfs mounts (fixture ``tmpfs``), real buckets (moto's
S3 server), janitor run as users run it; nothing patched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from humanfriendly import format_size

import janitor
from janitor.domain.errors import UsageError
from janitor.storage.journal import Journal
from tests.conftest import REPO, fake_run, run_janitor, sets_on_disk

safety = pytest.mark.safety("18. full disk")
MB = 1_000_000
START = 1_700_000_000.0


def three_runs(logs: Path, steps=(100, 200, 300, 400)) -> dict[str, Path]:
    """Runs a, b, c with sets of two ~1 MB files; each run's saves a little later than the
    previous run's (a 100 is the oldest set, then b 100, c 100, a 200, ...)."""
    return {
        name: fake_run(logs, name, steps, payload=MB, start=START + 100 * i)
        for i, name in enumerate("abc")
    }


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reasons(doc: dict) -> dict[tuple[str, int], tuple[str, list[str]]]:
    """(run name, step) -> (action, reasons) from prune --json."""
    return {
        (r["name"], s["number"]): (s["action"], s["reasons"])
        for r in doc["runs"]
        for s in r["sets"]
    }


@safety
def test_min_free_takes_the_oldest_sets_across_runs_until_the_floor_is_met(tmpfs, cases):
    disk = tmpfs("30m")
    runs = three_runs(disk / "logs")
    before = free(disk)
    floor = -(-(before + 5 * MB) // 10_000) * 10_000  # 2.5 sets short: three sets must go
    r = run_janitor("prune", disk / "logs", "--min-free", str(floor), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    got = reasons(doc)
    gone = sorted((name, step) for (name, step), (action, _) in got.items() if action == "remove")
    assert gone == [("a", 100), ("b", 100), ("c", 100)]  # oldest first, across the runs
    for key in gone:
        assert got[key][1] == [f"removed to keep min-free {format_size(floor)} free"]
    assert free(disk) >= floor
    assert doc["freed"] == pytest.approx(free(disk) - before, abs=128 * 1024)
    for run in runs.values():  # the newest complete set never goes
        assert 400 in sets_on_disk(run)
    cases()


@safety
def test_min_free_that_cannot_be_met_says_by_how_much_and_what_is_protected(tmpfs, cases):
    disk = tmpfs("30m")
    runs = three_runs(disk / "logs")
    r = run_janitor("prune", disk / "logs", "--min-free", "29MB", "--pin", "a:200")
    if "--pin" in r.stderr:  # no such flag: pin through the command, as users do
        assert run_janitor("pin", runs["a"], "200").returncode == 0
        r = run_janitor("prune", disk / "logs", "--min-free", "29MB")
    assert r.returncode == 1, r.stdout + r.stderr
    line = [x for x in r.stderr.splitlines() if "min-free 29 MB" in x]
    assert len(line) == 1, r.stderr
    assert f"min-free 29 MB on {disk}: cannot be met" in line[0] and "MB short" in line[0]
    assert "a step 200 (pinned)" in line[0] and "newest complete" in line[0]
    short = 29 * MB - free(disk)
    assert f"{short / MB:.2f}".rstrip("0").rstrip(".") + " MB short" in line[0]
    assert sets_on_disk(runs["a"]) == {200: {"G", "D"}, 400: {"G", "D"}}  # the protected stay
    assert sets_on_disk(runs["b"]) == sets_on_disk(runs["c"]) == {400: {"G", "D"}}
    cases()


@safety
def test_max_total_keeps_the_tree_under_budget_and_names_the_budget(tmpfs, cases):
    disk = tmpfs("40m")
    runs = three_runs(disk / "logs")
    assert run_janitor("pin", runs["a"], "100").returncode == 0
    r = run_janitor("prune", disk / "logs", "--max-total", "15MB", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    got = reasons(json.loads(r.stdout))
    gone = sorted((name, step) for (name, step), (action, _) in got.items() if action == "remove")
    # 24 MB in 12 sets, 15 MB allowed: five sets go, oldest first, the pinned a 100 passed by
    assert gone == [("a", 200), ("b", 100), ("b", 200), ("c", 100), ("c", 200)]
    for key in gone:
        assert got[key][1] == ["removed to fit max-total 15 MB"]
    total = sum(p.stat().st_size for p in (disk / "logs").rglob("*.pth"))
    assert total <= 15 * MB
    assert 100 in sets_on_disk(runs["a"]) and all(400 in sets_on_disk(p) for p in runs.values())
    cases()


@safety
def test_a_removed_file_with_another_hard_link_is_not_counted_as_freed(tmpfs, cases):
    disk = tmpfs("20m")
    run = fake_run(disk / "logs", "r", (100, 200, 300), payload=MB, start=START)
    for step in (100, 200):  # the bytes of these G stay under a second name
        os.link(run / f"G_{step}.pth", disk / f"G_{step}.keep")
    size_g = (run / "G_100.pth").stat().st_size
    size_d = (run / "D_100.pth").stat().st_size
    before = free(disk)
    r = run_janitor("prune", disk / "logs", "--keep-last", "2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["freed"] == size_d and doc["freed_linked"] == size_g
    assert doc["runs"][0]["freed_linked"] == size_g
    assert free(disk) - before == pytest.approx(size_d, abs=128 * 1024)  # less the journal
    text = run_janitor("prune", disk / "logs", "--keep-last", "1")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "freed 1.0 MB (1 file); deleted but still linked" in text.stdout
    assert "1 file, 1.0 MB" in text.stdout
    cases()


def test_the_executor_stops_taking_sets_once_the_floor_is_met(tmpfs):
    """Planned while the disk was short, carried out after someone else freed the room:
    the sets min-free took stay (the floor is looked at before each one)."""
    from janitor.storage.fs import LOCAL
    from janitor.storage.scan import scan
    from janitor.usecases.executor import Executor
    from janitor.usecases.pressure import relieve
    from janitor.usecases.prune import parse_overrides, plan_run

    disk = tmpfs("30m")
    runs = three_runs(disk / "logs")
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (6 * MB))
    floor = free(disk) + 3 * MB  # two sets would have to go
    rules = parse_overrides("keyword", min_free=floor)
    now = time.time()
    report = scan([str(disk / "logs")])
    relief = relieve([plan_run(run, rules, now) for run in report.runs], now, LOCAL)
    planned = sorted((rp.run.name, d.set.number) for rp in relief.plans for d in rp.removals)
    assert planned == [("a", 100), ("b", 100)] and not relief.shortfalls(done=False)
    filler.unlink()  # someone else freed the room meanwhile
    results = [Executor().execute(rp) for rp in relief.plans]
    assert not any(r.removed for r in results)
    skipped = [s for r in results for s in r.skipped]
    assert len(skipped) == 2 and all("min-free met" in s for s in skipped), skipped
    assert all(100 in sets_on_disk(run) for run in runs.values())
    assert not relief.shortfalls(done=True)


def test_min_free_reads_a_percentage_and_the_logs_root_janitor_toml(tmpfs):
    disk = tmpfs("30m")
    three_runs(disk / "logs")
    (disk / "logs" / "janitor.toml").write_text('[prune]\nmin-free = "90%"\n')
    r = run_janitor("prune", disk / "logs", "--dry-run")
    assert r.returncode == 1
    assert "min-free 90% on" in r.stderr and "cannot be met" in r.stderr
    out = janitor.prune(disk / "logs", min_free="10%", dry_run=True)
    assert not out.shortfalls


def test_min_free_with_trash_and_on_a_bucket_is_refused_in_one_line(tmp_path, bucket):
    three_runs(tmp_path / "logs")
    r = run_janitor("prune", tmp_path / "logs", "--min-free", "1GB", "--trash")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--min-free" in r.stderr and "--trash" in r.stderr
    bucket.upload(tmp_path / "logs", "logs")
    with pytest.raises(UsageError, match="min_free argument: min-free has no meaning on a bucket"):
        janitor.prune(bucket.url("logs"), min_free="1GB", dry_run=True)
    for bad in ("0%", "100%", "ten%"):
        with pytest.raises(UsageError, match="min_free argument"):
            janitor.prune(tmp_path / "logs", min_free=bad, dry_run=True)


def test_max_total_budgets_a_bucket(tmp_path, bucket):
    three_runs(tmp_path / "logs")
    bucket.upload(tmp_path / "logs", "logs")
    out = janitor.prune(bucket.url("logs"), max_total="15MB")
    assert not out.failed
    left = [k for k in bucket.keys("logs/") if k.endswith(".pth")]
    assert len(left) == 14  # 12 sets, five went: 7 sets of two files


WRITER = r"""
import io, os, sys, time, zipfile
run, saves = sys.argv[1], int(sys.argv[2])
os.makedirs(run, exist_ok=True)

def body(stem, size):  # a torch-style zip: <stem>/data.pkl first, then the tensor bytes
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{stem}/data.pkl", b"\x80\x02}q\x00.")
        z.writestr(f"{stem}/data/0", os.urandom(size))
    return buf.getvalue()

for i in range(1, saves + 1):
    step = 100 * i
    for prefix, size in (("G", 4_000_000), ("D", 6_000_000)):
        data, path = body(f"{prefix}_{step}", size), f"{run}/{prefix}_{step}.pth"
        try:
            with open(path, "wb") as fh:
                for at in range(0, len(data), 1 << 20):  # 1 MB chunks, as a save streams
                    fh.write(data[at : at + (1 << 20)])
                    fh.flush()
        except OSError as exc:
            print(f"failed {step} {exc.strerror}", flush=True)
            sys.exit(1)
    print(f"saved {step} {time.time()!r}", flush=True)
    time.sleep(2)
"""


def write_sets(run: Path, saves: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRITER, str(run), str(saves)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@safety
@pytest.mark.slow
@pytest.mark.parametrize("given", ["flag", "janitor.toml"])
def test_watch_min_free_keeps_a_trainer_saving_on_a_small_disk(tmpfs, cases, given):
    if given == "flag":  # alone, the trainer fills the disk: ENOSPC mid-save
        alone = tmpfs("64m", "alone")
        (alone / "other").write_bytes(b"\0" * (20 * MB))
        r = write_sets(alone / "logs" / "r", 12)
        assert r.returncode == 1 and "No space left on device" in r.stdout, r.stdout + r.stderr
        assert len([x for x in r.stdout.splitlines() if x.startswith("saved")]) < 12
    # beside janitor watch --min-free (or min-free in the logs root's janitor.toml), every
    # save succeeds
    disk = tmpfs("64m", "watched")
    (disk / "other").write_bytes(b"\0" * (20 * MB))
    (disk / "logs").mkdir()
    limit = ["--min-free", "14M"]
    if given == "janitor.toml":
        (disk / "logs" / "janitor.toml").write_text('[prune]\nmin-free = "14M"\n')
        limit = []
    watcher = subprocess.Popen(
        [sys.executable, "-m", "janitor", "watch", str(disk / "logs"), "--keep-last", "5",
         *limit],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert "watching" in watcher.stdout.readline()
        r = write_sets(disk / "logs" / "r", 12)
        time.sleep(3)  # the last save's removals
    finally:
        watcher.send_signal(signal.SIGTERM)
        out = watcher.communicate(timeout=30)[0]
    assert r.returncode == 0, r.stdout + r.stderr + out
    saved = {int(x.split()[1]): float(x.split()[2]) for x in r.stdout.splitlines()}
    assert sorted(saved) == [100 * i for i in range(1, 13)]
    # at every removal janitor made, a complete set was still on disk (from its journal)
    records = Journal(str(disk / "logs" / ".janitor")).read().records
    removed: set[int] = set()
    begun = [(datetime.fromisoformat(x["time"]).timestamp(), x["number"])
             for x in records if x["event"] == "set-begin"]  # fmt: skip
    assert begun, out
    for when, number in begun:
        removed.add(number)
        complete = {s for s, at in saved.items() if at <= when + 0.01} - removed
        assert complete, f"removing step {number} left no complete set"
    assert any("min-free" in " ".join(x.get("reasons", [])) for x in records), out
    on_disk = sets_on_disk(disk / "logs" / "r")
    assert on_disk[1200] == {"G", "D"} and 0 < len(on_disk) <= 5
    cases()
