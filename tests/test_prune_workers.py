"""`janitor prune` carrying runs out in forked worker processes (``Pruner.run_all`` with
``processes``): the same removals, journal and output as threads, each run under its own
lock in its own process, exceptions carried back, and a kill -9 of janitor during it
leaving every run as a kill of one process leaves it: finished by the next prune."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from janitor.domain.results import RunResult
from janitor.storage import platform
from janitor.storage.journal import Journal
from janitor.storage.scan import scan
from janitor.usecases.executor import Executor
from janitor.usecases.prune import Pruner, parse_overrides
from tests.conftest import REPO, fake_run, run_janitor, truncate

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only"
)


def three_runs(root: Path, sets: int = 60) -> Path:
    for name in ("a", "b", "c"):
        fake_run(root, name, range(1, sets + 1), payload=64)
    truncate(root / "b" / "G_7.pth")  # an old truncated set: kept by every plan
    return root


def janitor(logs: Path, workers: int, *args: str) -> subprocess.CompletedProcess:
    return run_janitor("prune", logs, *args, env={platform.WORKERS_ENV: str(workers)})


def removals(logs: Path) -> list[tuple[str, str, int]]:
    read = Journal(str(logs / ".janitor")).read()
    assert read.torn_lines == ()
    begins = sorted((r["run"], r["number"]) for r in read.records if r["event"] == "set-begin")
    ends = sorted((r["run"], r["number"]) for r in read.records if r["event"] == "set-end")
    assert begins == ends and len(begins) == len(set(begins))
    rel = [os.path.relpath(r["path"], logs) for r in read.records if r["event"] == "remove"]
    return sorted((os.path.dirname(p), os.path.basename(p), 1) for p in rel)


def test_processes_remove_and_journal_exactly_what_threads_do(tmp_path):
    one = three_runs(tmp_path / "one" / "logs")
    many = Path(shutil.copytree(one, tmp_path / "many" / "logs", symlinks=True))
    a = janitor(one, 1, "--keep-last", "2")
    b = janitor(many, 3, "--keep-last", "2")
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert b.stdout.replace(str(many), "LOGS") == a.stdout.replace(str(one), "LOGS")
    assert removals(one) == removals(many) and len(removals(one)) == 3 * 58 * 2 - 2
    for name in ("a", "c"):
        assert sorted(p.name for p in (many / name).iterdir()) == [
            "D_59.pth", "D_60.pth", "G_59.pth", "G_60.pth",
        ]  # fmt: skip
    assert (many / "b" / "G_7.pth").exists() and (many / "b" / "D_7.pth").exists()


def test_each_run_is_carried_out_in_a_worker_process(tmp_path, monkeypatch, forking):
    logs = three_runs(tmp_path / "logs", sets=8)
    real = Executor.execute

    def execute(self, shown, in_flight=frozenset()):
        result = real(self, shown, in_flight)
        return RunResult(result.run_path, result.removed, notes=(f"pid {os.getpid()}",))

    monkeypatch.setattr(Executor, "execute", execute)
    pruner = Pruner(parse_overrides(keep_last=1))
    out = list(pruner.run_all(scan([str(logs)]).runs, processes=True))
    assert [len(r.removed) for _, r in out] == [14, 12, 14]  # b's truncated set 7 stays
    pids = {r.notes[0] for _, r in out}
    assert f"pid {os.getpid()}" not in pids
    threads = list(Pruner(parse_overrides(keep_last=1)).run_all(scan([str(logs)]).runs))
    assert all(not r.removed for _, r in threads)  # nothing left to do: all done before


def test_an_exception_in_a_worker_reaches_the_caller(tmp_path, monkeypatch, forking):
    logs = three_runs(tmp_path / "logs", sets=8)

    def execute(self, shown, in_flight=frozenset()):
        raise RuntimeError(f"cannot carry out {os.path.basename(shown.run.path)}")

    monkeypatch.setattr(Executor, "execute", execute)
    pruner = Pruner(parse_overrides(keep_last=1))
    with pytest.raises(RuntimeError, match="cannot carry out a"):
        list(pruner.run_all(scan([str(logs)]).runs, processes=True))


def test_a_kill_9_during_a_prune_in_processes_is_finished_by_the_next(tmp_path):
    logs = three_runs(tmp_path / "logs", sets=400)
    proc = subprocess.Popen(
        [sys.executable, "-m", "janitor", "prune", str(logs), "--keep-last", "1", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, platform.WORKERS_ENV: "3"},
    )  # fmt: skip
    journal = Journal(str(logs / ".janitor"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        not os.path.exists(journal.path) or os.path.getsize(journal.path) < 20_000
    ):
        time.sleep(0.002)  # removals are under way in the workers
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    read = journal.read()
    assert sum(1 for n in "abc" for _ in (logs / n).iterdir()) > 8  # stopped part way
    for name in ("a", "b", "c"):
        unfinished = journal.unfinished_sets(str(logs / name), read)
        for path in (logs / name).glob("*_*.pth"):
            number = int(path.stem.split("_")[1])
            whole = all((logs / name / f"{k}_{number}.pth").exists() for k in "GD")
            assert whole or number in unfinished, path
    again = janitor(logs, 3, "--keep-last", "1")
    assert again.returncode == 0, again.stderr
    for name in ("a", "c"):
        assert sorted(p.name for p in (logs / name).iterdir()) == ["D_400.pth", "G_400.pth"]
    left = sorted(p.name for p in (logs / "b").iterdir())
    assert left == ["D_400.pth", "D_7.pth", "G_400.pth", "G_7.pth"]
    read = journal.read()
    for name in ("a", "b", "c"):  # every set begun was ended, by one janitor or the next
        assert journal.unfinished_sets(str(logs / name), read) == set()
