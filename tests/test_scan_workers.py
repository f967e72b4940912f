"""`janitor scan` in worker processes (``scan_runs_mapped``): the same report as one
process, the verdict cache kept whole by what the workers send back, exceptions carried
back, no worker left behind by a killed janitor, and one process wherever a fork is not
safe (``platform.worker_processes``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from janitor.storage import cache as cache_module
from janitor.storage import layout, platform
from janitor.storage.cache import VerdictCache
from janitor.storage.fs import LOCAL
from janitor.storage.scan import scan, scan_runs_mapped
from tests.conftest import REPO, fake_ckpt, fake_run, run_janitor, truncate

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only"
)


def varied_logs(root: Path) -> Path:
    """Twelve runs (more than MIN_UNITS): complete, truncated newest, partial, ignored
    names, small models, a nested logs root, and a folder that is not a run."""
    for i in range(9):
        fake_run(root, f"r{i:02d}", range(100, 100 + 100 * (i + 2), 100), payload=64)
    truncate(root / "r01" / "G_300.pth")  # the newest G of r01 (steps 100..300)
    (root / "r02" / "D_400.pth").unlink()  # a partial newest set
    fake_ckpt(root / "r03" / "G_0500.pth", payload=64)  # not a checkpoint name: ignored
    (root / "r04" / "notes.txt").write_text("not a checkpoint")
    fake_run(root / "r05" / "nested", "inner", [1, 2, 3], payload=64)
    (root / "empty").mkdir()
    (root / "data").mkdir()
    return root


def steady(text: str) -> str:
    """The report less the file system's free space, measured anew by each process (other
    processes on the machine write too): the runs' blocks must be equal to the byte."""
    return re.sub(r"[\d.,]+ [kMGTP]?B free( → [^\n]*)?", "N free", text)


def janitor_scan(logs: Path, workers: int, *extra: str) -> subprocess.CompletedProcess:
    return run_janitor("scan", logs, *extra, env={platform.WORKERS_ENV: str(workers)})


@pytest.mark.parametrize("extra", [(), ("--no-cache",)])
def test_workers_print_exactly_what_one_process_prints(tmp_path, extra):
    logs = varied_logs(tmp_path / "logs")
    one = janitor_scan(logs, 1, *extra)
    assert one.returncode == 0, one.stderr
    for _ in range(2):  # a second time: with the cache the first one wrote (or none)
        many = janitor_scan(logs, 3, *extra)
        assert (many.returncode, steady(many.stdout), many.stderr) == (
            0,
            steady(one.stdout),
            one.stderr,
        )
    assert "r01" in one.stdout and "inner" in one.stdout and "G_0500.pth" in one.stdout


def test_each_run_is_built_in_a_worker_and_results_come_back_in_walk_order(tmp_path, forking):
    logs = varied_logs(tmp_path / "logs")
    fake_run(tmp_path, "logs", [7], payload=64)  # the root is a run itself: built here
    serial = [r.path for r in scan([str(logs)], lazy=True).runs]
    got = list(scan_runs_mapped([str(logs)], [], lambda run: (run.path, os.getpid()), lazy=True))
    assert [path for path, _ in got] == [str(logs)] + sorted(serial[1:])
    assert got[0][1] == os.getpid()
    assert all(pid != os.getpid() for _, pid in got[1:])


def test_the_verdict_cache_keeps_what_the_workers_read_and_forgets_what_is_gone(
    tmp_path, monkeypatch, reads, forking
):
    monkeypatch.setattr(cache_module, "RACY_NS", 0)
    logs = varied_logs(tmp_path / "logs")
    scan([str(logs)])  # one process, every file read: the whole cache
    changed = logs / "r06" / "G_800.pth"  # the newest set of r06: the text report reads it
    fake_ckpt(changed, payload=64)  # written again: same size, new mtime and ctime
    os.utime(changed, (time.time() - 100, time.time() - 100))
    for p in (logs / "r08").iterdir():
        p.unlink()
    (logs / "r08").rmdir()

    reads.clear()
    list(scan_runs_mapped([str(logs)], [], lambda run: run.path, lazy=True))
    assert reads == []  # every read was a worker's

    monkeypatch.setenv(platform.WORKERS_ENV, "1")
    cache = VerdictCache(LOCAL, layout.state_dir_of_root(str(logs)))
    assert "r08" not in cache.sections and {"r00", "r06", "r07"} <= set(cache.sections)
    report = scan([str(logs)])  # every verdict from the cache the workers' records made
    assert reads == [] and len(report.runs) == 9


def test_an_exception_in_a_worker_reaches_the_caller(tmp_path, forking):
    logs = varied_logs(tmp_path / "logs")

    def block(run):
        if run.name == "r04":
            raise ValueError(f"cannot summarize {run.name}")
        return run.name

    with pytest.raises(ValueError, match="cannot summarize r04"):
        list(scan_runs_mapped([str(logs)], [], block, lazy=True))


def test_without_a_pool_the_same_results_come_from_this_process(tmp_path, monkeypatch):
    logs = varied_logs(tmp_path / "logs")
    monkeypatch.setenv(platform.WORKERS_ENV, "2")
    monkeypatch.setattr(platform, "fork_pool", lambda workers: None)  # e.g. out of processes
    got = list(scan_runs_mapped([str(logs)], [], lambda run: (run.name, os.getpid())))
    assert {pid for _, pid in got} == {os.getpid()} and len(got) == 10


KILLED_PARENT = """
import sys, time
from janitor.storage import platform
pool = platform.fork_pool(2)
pool.map_async(time.sleep, [60, 60])
print(*(p.pid for p in pool._pool), flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"  # a zombie no one reaped yet
    except FileNotFoundError:
        return True


def test_a_janitor_killed_outright_takes_its_workers_with_it():
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    workers = [int(x) for x in proc.stdout.readline().split()]
    assert len(workers) == 2 and not any(_gone(p) for p in workers)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in workers)


def test_one_process_where_a_fork_is_not_safe_or_not_worth_it(monkeypatch):
    monkeypatch.delenv(platform.WORKERS_ENV, raising=False)
    monkeypatch.setattr(platform, "_cpus", lambda: 2)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert platform.worker_processes(100) == 2
    assert platform.worker_processes(platform.MIN_UNITS - 1) == 1  # a small tree
    monkeypatch.setenv(platform.WORKERS_ENV, "3")
    assert platform.worker_processes(2) == 2  # asked for: never more than the folders
    monkeypatch.setenv(platform.WORKERS_ENV, "many")
    assert platform.worker_processes(100) == 1
    monkeypatch.setenv(platform.WORKERS_ENV, "4")
    assert platform.worker_processes(100) == 4
    for system in ("darwin", "win32"):
        monkeypatch.setattr(sys, "platform", system)
        assert platform.worker_processes(100) == 1
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    # another thread runs (a watcher, a server): a forked child holds only a copy of this one
    assert platform.worker_processes(100) == 1
