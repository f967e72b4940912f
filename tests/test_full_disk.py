"""janitor on a full disk (docs/full-disk.md): real small file systems (a tmpfs mounted per
test, filled to the last byte), janitor run as users run it, nothing patched."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from janitor.storage.cache import RACY_NS
from janitor.storage.fs import LocalFS
from janitor.storage.journal import Journal
from tests.conftest import REPO, fake_run, fill_disk, run_janitor, sets_on_disk

safety = pytest.mark.safety("18. full disk")
MB = 1_000_000


def full_disk_with_a_run(disk: Path, steps=(100, 200, 300, 400, 500)) -> tuple[Path, Path]:
    """logs/r with 5 sets of two ~1 MB files on ``disk``, then the disk filled to the last
    byte (the filler is outside the logs folder: janitor never touches it)."""
    run = fake_run(disk / "logs", "r", steps, payload=MB)
    fill_disk(disk)
    return disk / "logs", run


def events(logs: Path) -> list[tuple[str, int | None]]:
    return [(r["event"], r.get("number")) for r in Journal(str(logs / ".janitor")).read().records]


@safety
def test_prune_frees_a_disk_that_was_full_before_janitor_ever_ran(tmpfs, cases):
    disk = tmpfs("12m")
    logs, run = full_disk_with_a_run(disk)
    assert not (logs / ".janitor").exists() and os.statvfs(disk).f_bavail == 0
    r = run_janitor("prune", logs, "--keep-last", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cannot lock" not in r.stdout and "freed 8.0 MB (8 files)" in r.stdout
    assert sets_on_disk(run) == {500: {"G", "D"}}
    assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > 7 * MB
    got = events(logs)
    for step in (100, 200, 300, 400):  # every removal is in the journal, begun and ended
        assert got.count(("set-begin", step)) == 1 and got.count(("set-end", step)) == 1
        assert got.count(("remove", step)) == 2
    assert list((logs / ".janitor" / "begun").iterdir()) == []  # the names are gone
    assert (logs / ".janitor" / "reserve").stat().st_size == 64 * 1024  # room for next time
    cases()


@safety
def test_a_kill_mid_prune_on_a_full_disk_is_finished_by_the_next_prune(tmpfs, cases):
    if shutil.which("strace") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("strace is missing (`make test` installs it as root)")
        pytest.skip("strace is needed to kill janitor at one exact removal")
    disk = tmpfs("12m")
    logs, run = full_disk_with_a_run(disk)
    # janitor is killed (SIGKILL) as it removes G_200.pth: the second set, begun, half done
    killed = subprocess.run(
        ["strace", "-f", "-o", os.devnull, "-P", str(run / "G_200.pth"),
         "-e", "trace=unlink,unlinkat", "-e", "inject=unlink,unlinkat:signal=KILL",
         sys.executable, "-m", "janitor", "prune", str(logs), "--keep-last", "1"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert killed.returncode == -9 or killed.returncode == 137, killed.stderr
    assert sets_on_disk(run) == {200: {"G"}, 300: {"G", "D"}, 400: {"G", "D"}, 500: {"G", "D"}}
    # what was begun survives the kill: the disk had no room for a line, so as names
    assert Journal(str(logs / ".janitor")).unfinished_sets(str(run)) == {100, 200, 300, 400}
    again = run_janitor("prune", logs, "--keep-last", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "r: 1 interrupted removal had already completed (step 100)" in again.stdout
    assert "r: finishing 3 interrupted removals (step 200, step 300, step 400)" in again.stdout
    assert sets_on_disk(run) == {500: {"G", "D"}}
    assert Journal(str(logs / ".janitor")).unfinished_sets(str(run)) == set()
    assert list((logs / ".janitor" / "begun").iterdir()) == []
    cases()


def ran_before_then_filled(disk: Path) -> tuple[Path, Path]:
    """A run janitor pruned once while there was room (its reserve made), then the disk
    filled up."""
    run = fake_run(disk / "logs", "r", (50, 100, 200, 300, 400, 500), payload=MB)
    first = run_janitor("prune", disk / "logs", "--keep-last", "5")
    assert first.returncode == 0 and (disk / "logs" / ".janitor" / "reserve").exists()
    fill_disk(disk)
    return disk / "logs", run


@safety
def test_prune_to_the_trash_on_a_full_disk_moves_and_says_it_frees_nothing(tmpfs, cases):
    logs, run = ran_before_then_filled(tmpfs("14m"))
    r = run_janitor("prune", logs, "--keep-last", "1", "--trash")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moving to the trash on the same disk frees nothing" in r.stdout
    assert "(tmpfs), 0 B free" in r.stdout
    assert sets_on_disk(run) == {500: {"G", "D"}}
    assert len(list((logs / ".janitor" / "trash" / "r").iterdir())) == 8
    assert events(logs).count(("trash", 300)) == 2
    cases()
    # and `trash empty` frees the space, its records written as it goes
    emptied = run_janitor("trash", "empty", logs)
    assert emptied.returncode == 0, emptied.stdout + emptied.stderr
    assert list((logs / ".janitor" / "trash" / "r").iterdir()) == []
    assert sum(1 for e, _ in events(logs) if e == "trash-empty") == 8
    assert os.statvfs(logs).f_bavail * os.statvfs(logs).f_frsize > 7 * MB
    cases()


@safety
def test_prune_to_the_trash_where_no_record_fits_moves_nothing_and_says_why(tmpfs, cases):
    disk = tmpfs("12m")
    logs, run = full_disk_with_a_run(disk)
    r = run_janitor("prune", logs, "--keep-last", "1", "--trash")
    assert r.returncode == 1
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("error:")]
    assert "journal not written: no space left on the device" in line
    assert f"the file system at {disk} (tmpfs), 0 B free" in line and "cannot lock" not in line
    assert "moving to the trash on the same disk frees nothing" in r.stdout
    assert sets_on_disk(run) == {n: {"G", "D"} for n in (100, 200, 300, 400, 500)}
    assert not (logs / ".janitor" / "trash" / "r").exists() or not any(
        (logs / ".janitor" / "trash" / "r").iterdir()
    )
    cases()


@safety
def test_atomic_writes_on_a_full_disk_leave_no_temp_file_and_the_old_file(tmpfs, cases):
    disk = tmpfs("1m")
    target = disk / "janitor.toml"
    target.write_text("[prune]\nkeep_last = 3\n")
    fill_disk(disk)
    before = sorted(p.name for p in disk.iterdir())
    for size in (100, 5000, 300_000):  # in the last page, over it, far over it
        with pytest.raises(OSError) as err:
            LocalFS().write_atomic(str(target), b"x" * size)
        assert err.value.errno == errno.ENOSPC
        assert sorted(p.name for p in disk.iterdir()) == before
        assert target.read_text() == "[prune]\nkeep_last = 3\n"
        cases()


@safety
def test_scan_on_a_full_disk_points_at_the_cut_short_save_and_warns_once(tmpfs, cases):
    from tests.conftest import fake_ckpt, truncate

    disk = tmpfs("8m")
    run = fake_run(disk / "logs", "r", (100, 200), payload=MB, start=1_600_000_000.0)
    fake_ckpt(run / "D_300.pth", payload=MB, mtime=1_600_010_000.0)
    fake_ckpt(run / "G_300.pth", payload=MB, mtime=1_600_010_000.0)
    truncate(run / "G_300.pth")  # the trainer's save the full disk stopped
    fill_disk(disk)
    time.sleep(RACY_NS / 1e9 + 0.2)  # files changed this recently are not cached: no write
    r = run_janitor("scan", disk / "logs")
    assert r.returncode == 0, r.stderr
    assert (
        f"G_300.pth looks like a save cut short by a full disk (the file system at {disk} "
        "(tmpfs), 0 B free)" in r.stdout
    )
    assert "newest complete step 200" in r.stdout  # still incomplete, never taken for whole
    # the verdict cache finds no room: one warning line naming it, the scan goes on
    (warning,) = r.stderr.splitlines()
    assert warning.startswith("janitor: warning: verdict cache ") and "0 B free" in warning
    assert not [p for p in (disk / "logs" / ".janitor").iterdir() if "tmp" in p.name]
    cases()
    roomy = tmpfs("8m", name="roomy")  # with room, a truncated G is only incomplete
    shutil.copytree(disk / "logs", roomy / "logs")
    calm = run_janitor("scan", roomy / "logs")
    assert "full disk" not in calm.stdout and calm.stderr == ""
    cases()


# ----------------------------------------------------------------- finalize and extraction


def full_disk_with_a_real_run(disk: Path, small_models=()) -> tuple[Path, Path]:
    """logs/alice, a real tiny Applio run (5 sets; the small models of ``small_models``),
    saved long ago, then the disk filled to the last byte."""
    from fixtures.gen import write_run

    run = write_run(disk / "logs", "alice", steps=range(100, 600, 100),
                    small_models=small_models, mtime_start=1_600_000_000.0)  # fmt: skip
    fill_disk(disk)
    return disk / "logs", run


def no_temp_files(run: Path) -> bool:
    return not [p for p in run.iterdir() if p.name.startswith(".janitor-tmp")]


@safety
def test_finalize_on_a_full_disk_first_removes_the_sets_whose_small_models_verify(tmpfs, cases):
    disk = tmpfs("12m")
    logs, run = full_disk_with_a_real_run(disk, small_models=(200,))
    # keeps steps 200 (its small model exists) and 500 (the newest: none yet, and no room)
    r = run_janitor("finalize", logs, "--steps", "200", "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "note: a full disk: removed steps 200 first (small models verified, " in r.stdout
    assert not list(run.glob("[GD]_*.pth"))
    assert {"alice_2e_200s.pth", "alice_5e_500s.pth"} <= {p.name for p in run.iterdir()}
    assert "extracted" in r.stdout and no_temp_files(run)
    got = events(logs)
    assert got.index(("set-end", 200)) < got.index(("set-begin", 100))  # 200 went first
    for step in (100, 200, 300, 400, 500):
        assert got.count(("set-end", step)) == 1
    cases()


@safety
def test_finalize_on_a_full_disk_with_nothing_safe_to_remove_refuses_naming_the_room(tmpfs, cases):
    disk = tmpfs("12m")
    logs, run = full_disk_with_a_real_run(disk)
    before = sorted((p.name, p.stat().st_size) for p in run.iterdir())
    r = run_janitor("finalize", logs, "--force")
    assert r.returncode == 1
    (line,) = [x for x in r.stdout.splitlines() if "refused:" in x]
    small = run / "alice_5e_500s.pth"
    assert f"no room for the small models of steps 500 ({small}: not written: needs " in line
    assert f"bytes on the file system at {disk} (tmpfs), 0 B free)" in line
    assert "nothing is safe to remove first" in line and line.endswith("nothing removed")
    needed = int(line.split("needs ")[1].split(" bytes")[0])
    assert sorted((p.name, p.stat().st_size) for p in run.iterdir()) == before
    assert no_temp_files(run) and "Traceback" not in r.stderr
    cases()
    # with room, the same finalize writes a small model no bigger than it said it needs
    (disk / "filler").unlink()
    again = run_janitor("finalize", logs, "--force")
    assert again.returncode == 0, again.stdout + again.stderr
    assert 0 < small.stat().st_size <= needed < small.stat().st_size + 256 * 1024
    cases()


@safety
def test_extract_small_on_a_full_disk_checks_the_room_before_it_writes(tmpfs, cases):
    disk = tmpfs("12m")
    _, run = full_disk_with_a_real_run(disk)
    before = sorted(p.name for p in run.iterdir())
    r = run_janitor("extract-small", run / "G_500.pth")
    assert r.returncode == 1
    (line,) = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    assert line.startswith(f"janitor: {run / 'alice_5e_500s.pth'}: not written: needs ")
    assert line.endswith(f"bytes on the file system at {disk} (tmpfs), 0 B free")
    assert sorted(p.name for p in run.iterdir()) == before  # no partial file, no temp folder
    cases()
