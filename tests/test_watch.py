"""`janitor watch`: a fake trainer writes G/D pairs in chunks while the watcher prunes."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from fixtures.gen import write_checkpoint
from janitor.executor import Executor
from janitor.journal import Journal
from janitor.watch import Watcher
from tests.conftest import REPO, fake_ckpt, run_janitor

STEPS = list(range(100, 900, 100))


class Trace(FileSystemEventHandler):
    """inotify's view of every checkpoint file, in order: who opened, closed, deleted it."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def on_any_event(self, event):
        name = os.path.basename(os.fsdecode(event.src_path))
        if name[:2] in ("G_", "D_"):
            with self.lock:
                self.events.append((name, event.event_type))

    def for_file(self, name: str) -> list[str]:
        with self.lock:
            return [kind for n, kind in self.events if n == name]


class FakeTrainer(threading.Thread):
    """Writes G_<step>.pth then D_<step>.pth in chunks with pauses, like torch.save does."""

    def __init__(self, run: Path, steps, payloads: dict[str, bytes], chunks=4, pause=0.04):
        super().__init__(daemon=True)
        self.run_dir, self.steps, self.payloads = run, steps, payloads
        self.chunks, self.pause = chunks, pause
        self.completed: list[tuple[float, int]] = []  # (time, step) when G and D were written
        self.error: BaseException | None = None

    def write(self, path: Path, data: bytes) -> None:
        n = len(data)
        with open(path, "wb") as fh:
            for i in range(self.chunks):
                fh.write(data[i * n // self.chunks : (i + 1) * n // self.chunks])
                fh.flush()
                time.sleep(self.pause)

    def run(self):
        try:
            for step in self.steps:
                self.write(self.run_dir / f"G_{step}.pth", self.payloads["G"])
                self.write(self.run_dir / f"D_{step}.pth", self.payloads["D"])
                self.completed.append((time.monotonic(), step))
                time.sleep(self.pause * 2)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def _payloads(tmp: Path) -> dict[str, bytes]:
    return {
        k: fake_ckpt(tmp / f"{k}_template.pth", payload=20_000).read_bytes() for k in ("G", "D")
    }


def _watch_proc(*args, cwd=REPO):
    return subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "janitor", "watch", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
    )  # fmt: skip


def _wait_for(predicate, timeout=30.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.mark.parametrize("poll", [None, 0.2], ids=["inotify", "poll"])
def test_watch_keeps_newest_and_never_touches_a_file_in_flight(tmp_path, poll):
    logs = tmp_path / "logs"
    run = logs / "alice"
    run.mkdir(parents=True)
    payloads = _payloads(tmp_path)
    trace = Trace()
    observer = Observer()
    observer.schedule(trace, str(run))
    observer.start()
    args = [logs, "--keep-last", "2", "--settle", "0.5", "--json-log"]
    proc = _watch_proc(*args, *(["--poll", poll] if poll else []))
    try:
        assert _wait_for(lambda: (logs / "alice").exists(), 5)
        time.sleep(1.0)  # let the watcher start
        trainer = FakeTrainer(run, STEPS, payloads)
        trainer.start()
        violations = []
        while trainer.is_alive():  # at every moment the two newest written sets exist
            done = [s for _, s in trainer.completed][-2:]
            present = {p.name for p in run.iterdir()}
            violations += [s for s in done if {f"G_{s}.pth", f"D_{s}.pth"} - present]
            time.sleep(0.01)
        trainer.join()
        assert trainer.error is None
        assert not violations, violations
        expected = {"G_700.pth", "D_700.pth", "G_800.pth", "D_800.pth"}
        ok = _wait_for(lambda: {p.name for p in run.iterdir()} == expected, 20)
        assert ok, sorted(p.name for p in run.iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        observer.stop()
        observer.join()
    assert proc.returncode == 0, err[-3000:]
    # nothing was opened by anyone but the trainer while the file was being written, and
    # nothing was deleted before it was closed
    for step in STEPS:
        for prefix in "GD":
            kinds = trace.for_file(f"{prefix}_{step}.pth")
            assert "closed" in kinds, (step, prefix, kinds)
            written = kinds.index("closed")
            assert kinds[:written].count("opened") == 1, (step, prefix, kinds)
            if "deleted" in kinds:
                assert kinds.index("deleted") > written
    records = Journal(str(logs / ".janitor")).read().records
    removed = sorted(os.path.basename(r["path"]) for r in records if r["event"] == "remove")
    assert removed == sorted(f"{p}_{s}.pth" for p in "GD" for s in STEPS[:-2])
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"] == "watching" and lines[-1]["event"] == "stopped"
    assert any(r["event"] == "removed" for r in lines)
    # the watcher process never imported torch
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if "|" in line}
    assert "janitor.watch" in imported and "torch" not in imported


def test_extract_on_save_makes_a_small_model_for_every_step(tmp_path):
    logs = tmp_path / "logs"
    run = logs / "alice"
    run.mkdir(parents=True)
    shutil.copy(REPO / "fixtures/applio-real-tiny/tiny/config.json", run / "config.json")
    shutil.copy(REPO / "fixtures/applio-real-tiny/tiny/model_info.json", run / "model_info.json")
    g = write_checkpoint(tmp_path / "G_1.pth", "G", epoch=3).read_bytes()
    d = write_checkpoint(tmp_path / "D_1.pth", "D", epoch=3).read_bytes()
    steps = [100, 200, 300]
    proc = _watch_proc(logs, "--keep-last", "1", "--settle", "0.5", "--extract-on-save")
    try:
        time.sleep(1.0)
        trainer = FakeTrainer(run, steps, {"G": g, "D": d})
        trainer.start()
        trainer.join()
        want = {f"alice_3e_{s}s.pth" for s in steps} | {"G_300.pth", "D_300.pth"}
        ok = _wait_for(lambda: want <= {p.name for p in run.iterdir()} and not (
            run / "G_200.pth").exists(), 90)  # fmt: skip
        assert ok, sorted(p.name for p in run.iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert out.count("extracted: ") == 3
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if "|" in line}
    assert "torch" not in imported  # extraction ran in the child


def test_new_runs_removed_runs_and_clean_stop(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    before = set(threading.enumerate())
    log = io.StringIO()
    records: list[dict] = []
    watcher = Watcher([str(logs)], {"keep_last": 1}, settle=0.2, log=records.append,
                      executor=Executor())  # fmt: skip
    watcher.start()
    try:
        for step in (1, 2, 3):  # a run created after the start
            fake_ckpt(logs / "late" / f"G_{step}.pth")
            fake_ckpt(logs / "late" / f"D_{step}.pth")
        assert _wait_for(lambda: sorted(os.listdir(logs / "late")) == ["D_3.pth", "G_3.pth"], 10)
        doomed = logs / "doomed"
        fake_ckpt(doomed / "G_1.pth")
        time.sleep(0.05)
        shutil.rmtree(doomed)  # removed while watching: not an error
        time.sleep(1.0)
    finally:
        watcher.stop()
    assert set(threading.enumerate()) == before  # no thread left behind
    assert not [r for r in records if r["event"] == "error"], records
    assert records[-1]["event"] == "stopped" and records[-1]["removed"] == 4
    assert log.getvalue() == ""


def test_handler_never_raises():
    from janitor.watch import Handler

    class Broken:
        @property
        def event_type(self):
            raise RuntimeError("boom")

    Handler(None).dispatch(Broken())  # neither the bad event nor the missing queue escape


def test_running_out_of_inotify_watches_is_said_plainly(tmp_path, monkeypatch):
    import errno

    from watchdog.observers import Observer as Native

    from janitor.errors import JanitorError

    def no_watches(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Native, "schedule", no_watches)
    (tmp_path / "logs").mkdir()
    watcher = Watcher([str(tmp_path / "logs")], {}, settle=0.1)
    with pytest.raises(JanitorError, match="ran out of inotify watches; use --poll"):
        watcher.start()
    assert "max_user_watches" in str(pytest.raises(JanitorError, watcher.start).value)


# ------------------------------------------------------------------ the watch options


@pytest.mark.parametrize("flag", ["--poll", "--settle", "--rescan"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e300"])
def test_watch_values_are_checked_where_they_enter(tmp_path, flag, value):
    # the folder does not exist: a value that got through would end in exit 1, not 2
    r = run_janitor("watch", tmp_path / "missing", f"{flag}={value}", timeout=60)
    assert r.returncode == 2, (flag, value, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in r.stderr, r.stderr
