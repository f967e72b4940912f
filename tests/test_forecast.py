"""See it coming (docs/full-disk.md): the forecast of an active run's next saves, checked on
scripted timelines of saves (given set sizes and times), and ``scan`` on a real tmpfs."""

from __future__ import annotations

import json
import os
import time

import jsonschema
import pytest

from janitor.cli.render import forecast_text
from janitor.core.forecast import forecast, is_active, save_pattern
from janitor.core.profiles import GENERIC
from janitor.domain.checkpoints import NOT_CHECKED, CheckpointFile, CheckpointSet, Run
from tests.conftest import REPO, fake_run, run_janitor

GB, MB, MIN = 1_000_000_000, 1_000_000, 60.0
T0 = 1_700_000_000.0


def timeline(name: str, saves, unchecked=()) -> Run:
    """A run from a script of saves: (step, time, bytes of the set: G and D halves each);
    ``unchecked``: steps a lazy scan did not read."""
    sets = []
    for step, at, size in saves:
        state = (False, NOT_CHECKED) if step in unchecked else (True, None)
        files = tuple(
            CheckpointFile(f"/logs/{name}/", f"{p}_{step}.pth", p, step, size // 2, at, *state)
            for p in ("G", "D")
        )
        sets.append(CheckpointSet(step, files))
    last = max((at for _, at, _ in saves), default=0.0)
    return Run(f"/logs/{name}", name, GENERIC, "test", tuple(sets), last_activity=last)


def every(n: int, interval: float, size: int, start: float = T0, first_step: int = 1000):
    return [(first_step * (i + 1), start + i * interval, size) for i in range(n)]


def test_the_issue_example_a_run_saving_1_3_gb_every_12_min_with_3_1_gb_free():
    run = timeline("alice", every(5, 12 * MIN, int(1.3 * GB)))
    pattern = save_pattern(run)
    assert pattern is not None
    assert (pattern.size, pattern.interval) == (int(1.3 * GB), 12 * MIN)
    (f,) = forecast(int(3.1 * GB), [pattern])
    assert f.saves_left == 2 and f.next_save_fits
    assert f.full_in == pytest.approx(3.1 / 1.3 * 12 * MIN)
    assert (
        forecast_text(f) == "alice: 1.3 GB every ~12 min; 3.1 GB free → full in ~29 min (2 saves)"
    )


def test_the_interval_is_the_median_of_the_last_saves_by_step_never_by_file_time():
    saves = every(8, 10 * MIN, GB)
    saves[2] = (saves[2][0], T0 + 10_000 * MIN, GB)  # an old set touched (copied) much later
    saves[5] = (saves[5][0], saves[5][1] + 3 * MIN, GB)  # one slow save
    pattern = save_pattern(timeline("r", saves))
    assert pattern is not None and pattern.interval == 10 * MIN
    assert pattern.last_save == saves[-1][1]  # the newest step, though not the newest mtime
    # a pace that changed long ago: only the last saves count
    slow_then_fast = every(6, 60 * MIN, GB) + every(5, 5 * MIN, GB, T0 + 400 * MIN, 10_000)
    assert save_pattern(timeline("r", slow_then_fast)).interval == 5 * MIN


def test_the_size_of_the_next_save_is_the_newest_complete_sets():
    saves = [(100, T0, GB), (200, T0 + 600, GB), (300, T0 + 1200, 2 * GB)]
    assert save_pattern(timeline("r", saves)).size == 2 * GB
    # sets a lazy scan left unread still tell the pace
    lazy = save_pattern(timeline("r", saves, unchecked=(100, 200)))
    assert lazy.interval == 600 and lazy.size == 2 * GB


def test_one_save_so_far_counts_saves_by_size_only():
    pattern = save_pattern(timeline("r", [(100, T0, 3 * GB)]))
    assert pattern is not None and pattern.interval is None
    (f,) = forecast(10 * GB, [pattern])
    assert (f.saves_left, f.full_in) == (3, None)
    assert forecast_text(f) == "r: 3.0 GB per save (one save so far); 10.0 GB free (3 saves)"
    assert save_pattern(timeline("r", [])) is None


def test_the_next_save_that_does_not_fit_is_said():
    pattern = save_pattern(timeline("r", every(3, 2 * MIN, 10 * MB)))
    (f,) = forecast(9 * MB, [pattern])
    assert f.saves_left == 0 and not f.next_save_fits
    (f,) = forecast(10 * MB, [pattern])  # exactly its size: it fits, once
    assert f.saves_left == 1 and f.next_save_fits


def test_two_active_runs_on_one_disk_fill_it_together():
    a = save_pattern(timeline("a", every(4, 10 * MIN, GB)))
    b = save_pattern(timeline("b", every(4, 5 * MIN, GB)))
    fa, fb = forecast(6 * GB, [a, b])
    # together 3 GB every 10 min: 6 GB last 20 min; a saves twice in that time, b four times
    assert fa.full_in == fb.full_in == pytest.approx(20 * MIN)
    assert (fa.saves_left, fb.saves_left) == (2, 4)
    (alone,) = forecast(6 * GB, [a])
    assert alone.saves_left == 6 and alone.full_in == pytest.approx(60 * MIN)


def test_active_is_the_laws_with_room_for_two_intervals():
    hourly = save_pattern(timeline("r", every(3, 60 * MIN, GB)))
    last = hourly.last_activity
    assert is_active(hourly, last + 50 * MIN)  # between two saves, still training
    assert not is_active(hourly, last + 121 * MIN)
    quick = save_pattern(timeline("r", every(3, MIN, GB)))
    assert is_active(quick, quick.last_activity + 29 * MIN)  # never under the law's 30 min
    assert not is_active(quick, quick.last_activity + 31 * MIN)


def test_scan_on_a_real_tmpfs_says_the_disk_the_forecast_and_the_warning(tmpfs, tmp_path):
    disk = tmpfs("16m")
    now = time.time()
    # an active run: 3 saves of 2 x 1 MB, every 2 min, the last one just now
    run = fake_run(disk / "logs", "alice", (100, 200, 300), payload=MB, start=now - 240)
    for i, step in enumerate((100, 200, 300)):
        for p in ("G", "D"):
            os.utime(run / f"{p}_{step}.pth", (now - 240 + 120 * i,) * 2)
    fake_run(disk / "logs", "bob", (100, 200), payload=MB, start=1_600_000_000.0)  # idle
    st = os.statvfs(disk)
    size = st.f_blocks * st.f_frsize
    r = run_janitor("scan", disk / "logs", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, json.loads((REPO / "docs" / "scan.schema.json").read_text()))
    (fsys,) = doc["file_systems"]
    free = os.statvfs(disk).f_bavail * st.f_frsize
    assert (fsys["mount"], fsys["type"], fsys["size"], fsys["free"]) == (
        str(disk),
        "tmpfs",
        size,
        free,
    )
    assert fsys["runs"] == [str(disk / "logs" / "alice"), str(disk / "logs" / "bob")]
    (fc,) = fsys["forecasts"]  # bob is idle: no forecast
    set_bytes = sum((run / f"{p}_300.pth").stat().st_size for p in ("G", "D"))
    assert (fc["name"], fc["save_size"], fc["save_interval_seconds"]) == ("alice", set_bytes, 120)
    assert fc["saves_left"] == free // set_bytes and fc["next_save_fits"]
    assert fc["full_in_seconds"] == pytest.approx(free / set_bytes * 120, abs=1e-3)
    text = run_janitor("scan", disk / "logs").stdout
    assert f"disk {disk} (tmpfs): 16.8 MB, " in text and ", 2 runs\n" in text
    assert "  alice: 2.0 MB every ~2 min; " in text and "warning" not in text
    # the disk fills up: alice's next save no longer fits, and scan says so
    with open(disk / "filler", "wb") as fh:
        fh.write(b"\0" * (free - set_bytes // 2))
    text = run_janitor("scan", disk / "logs").stdout
    assert "(0 saves)" in text
    (warning,) = [line for line in text.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: alice's next save (2.0 MB) does not fit: ")
    assert f"free on {disk}" in warning


def test_scan_shows_the_floor_min_free_keeps(tmp_path, cli):
    """The floor a logs root's janitor.toml sets (min-free) is said beside the file system,
    in bytes of that file system, as prune keeps it."""
    from tests.conftest import fake_run

    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200])
    (logs / "janitor.toml").write_text('[prune]\nmin-free = "10%"\n')
    doc = json.loads(cli("scan", logs, "--json").stdout)
    (disk,) = doc["file_systems"]
    assert abs(disk["floor"] - disk["size"] * 0.10) <= 1
    assert "(min-free)" in cli("scan", logs).output
