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

from fixtures.gen import write_checkpoint, write_run
from janitor.domain.policy import Overrides
from janitor.storage.journal import Journal
from janitor.usecases.executor import Executor
from janitor.usecases.watch import Watcher
from tests.conftest import REPO, fake_ckpt, fake_run, run_janitor, truncate

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
            if done == [s for _, s in trainer.completed][-2:]:  # no save completed meanwhile
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
    assert "janitor.usecases.watch" in imported and not {"torch", "numpy"} & imported


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
    watcher = Watcher([str(logs)], Overrides(keep_last=1), settle=0.2, log=records.append,
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
    from janitor.usecases.watch import Handler

    class Broken:
        @property
        def event_type(self):
            raise RuntimeError("boom")

    Handler(None).dispatch(Broken())  # neither the bad event nor the missing queue escape


def test_running_out_of_inotify_watches_is_said_plainly(tmp_path, monkeypatch):
    import errno

    from watchdog.observers import Observer as Native

    from janitor.domain.errors import JanitorError

    def no_watches(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Native, "schedule", no_watches)
    (tmp_path / "logs").mkdir()
    watcher = Watcher([str(tmp_path / "logs")], Overrides(), settle=0.1)
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


# ------------------------------------------------------------------ --extract-on-save

WATCH_SAFETY = pytest.mark.safety("14. watch: extract before remove, quiet during saves")


@WATCH_SAFETY
def test_extract_on_save_extracts_and_verifies_a_g_present_at_start(tmp_path):
    from janitor.torchio.exports import Expect
    from janitor.torchio.extract import verify_small

    logs = tmp_path / "logs"
    run = write_run(logs, "alice", steps=(100, 200))
    original = shutil.copy(run / "G_100.pth", tmp_path / "G_100.pth")
    proc = _watch_proc(logs, "--keep-last", "1", "--settle", "0.5", "--extract-on-save",
                       "--json-log")  # fmt: skip
    try:
        gone = _wait_for(lambda: not (run / "G_100.pth").exists(), 90)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert gone, out
    small = run / "alice_1e_100s.pth"
    assert small.exists(), sorted(p.name for p in run.iterdir())
    assert verify_small(str(small), str(original), Expect(meta=(("epoch", 1), ("step", 100)))) == []
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [(r["event"], os.path.basename(r.get("source", ""))) for r in events]
    removed = next(i for i, r in enumerate(events) if r["event"] == "removed")
    assert kinds.index(("extracted", "G_100.pth")) < removed
    assert 100 in events[removed]["steps"]
    assert (run / "G_200.pth").exists() and not (run / "alice_1e_200s.pth").exists()
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if "|" in line}
    assert "janitor.usecases.watch" in imported and "torch" not in imported  # only the child has it


class StubExtractor:
    """Stands in for the extraction child: writes a token small model for each G (outside
    the run), or fails for the names in ``fail``; records what it was asked."""

    def __init__(self, out: Path, fail=()):
        self.out, self.fail, self.calls = out, set(fail), []
        out.mkdir(parents=True, exist_ok=True)

    def extract(self, path: str) -> dict:
        name = os.path.basename(path)
        self.calls.append(name)
        if name in self.fail:
            return {"ok": False, "path": path, "error": f"{path}: cannot read checkpoint (boom)"}
        small = self.out / f"small-{name}"
        small.write_bytes(b"small model of " + name.encode())
        return {"ok": True, "path": path, "output": str(small), "skipped": False}

    def close(self):
        pass


def _stub_watcher(logs: Path, stub: StubExtractor, records: list, executor=None, **rules):
    watcher = Watcher([str(logs)], Overrides(**(rules or {"keep_last": 1})), settle=0.2,
                      extract_on_save=True, log=records.append,
                      executor=executor or Executor())  # fmt: skip
    watcher.extractor = stub
    return watcher


@WATCH_SAFETY
def test_a_g_whose_small_model_cannot_be_made_is_kept_with_a_reason(tmp_path):
    logs = tmp_path / "logs"
    run = fake_run(logs, "r", [100, 200, 300])
    stub = StubExtractor(tmp_path / "small", fail={"G_100.pth"})
    records: list[dict] = []
    watcher = _stub_watcher(logs, stub, records)
    watcher.full_pass()
    assert sorted(stub.calls) == ["G_100.pth", "G_200.pth"]
    assert sorted(p.name for p in run.iterdir()) == ["D_100.pth", "D_300.pth", "G_100.pth",
                                                     "G_300.pth"]  # fmt: skip
    (failed,) = [r for r in records if r["event"] == "extract-failed"]
    assert failed["source"].endswith("G_100.pth") and "boom" in failed["error"]
    out = io.StringIO()
    from janitor.cli.render import text_log

    text_log(out)(failed)
    assert "G_100.pth is kept until its small model is verified" in out.getvalue()
    # the plan itself says why (what the executor's fresh plan sees as well)
    from janitor.storage.scan import read_run

    fresh = watcher.plan(read_run(str(run), in_flight=watcher.in_flight()))
    (kept,) = [d for d in fresh.decisions if d.set.number == 100]
    assert kept.keep
    assert "small model not yet extracted/verified (--extract-on-save)" in kept.reasons[0]
    assert "boom" in kept.reasons[0]


@WATCH_SAFETY
def test_the_executors_fresh_plan_keeps_a_g_whose_small_model_went_away(tmp_path):
    logs = tmp_path / "logs"
    run = fake_run(logs, "r", [100, 200])
    stub = StubExtractor(tmp_path / "small")

    class SmallModelsVanish(Executor):  # between planning and removal, under the lock
        def execute(self, shown, in_flight=frozenset()):
            for p in stub.out.iterdir():
                p.unlink()
            return super().execute(shown, in_flight)

    records: list[dict] = []
    watcher = _stub_watcher(logs, stub, records, executor=SmallModelsVanish())
    watcher.full_pass()
    assert stub.calls == ["G_100.pth"]
    assert (run / "G_100.pth").exists() and (run / "D_100.pth").exists()
    assert any(r["event"] == "skipped" and "step 100" in r["message"] for r in records), records


@WATCH_SAFETY
def test_each_g_is_extracted_and_verified_once(tmp_path):
    logs = tmp_path / "logs"
    run = fake_run(logs, "r", [100])
    stub = StubExtractor(tmp_path / "small")
    records: list[dict] = []
    watcher = _stub_watcher(logs, stub, records)
    watcher.full_pass()
    assert stub.calls == []  # the newest set stays: nothing to extract yet
    for step in (200, 300):  # the trainer saves; inotify says each file was closed
        for prefix in "GD":
            path = fake_ckpt(run / f"{prefix}_{step}.pth")
            watcher._note(("modified", str(path), ""))
            watcher._note(("closed", str(path), ""))
        watcher._settle()
        for folder in sorted(watcher.dirty):
            watcher.dirty.discard(folder)
            watcher.process(folder)
    watcher.full_pass()
    assert sorted(p.name for p in run.iterdir()) == ["D_300.pth", "G_300.pth"]
    assert stub.calls == ["G_200.pth", "G_100.pth", "G_300.pth"]  # G_200: once, when saved
    assert not [r for r in records if r["event"] in ("error", "extract-failed")], records


# ------------------------------------------------------------------ resume warnings


def _warnings(records: list[dict]) -> list[str]:
    return [r["message"] for r in records if r["event"] == "warning"]


@WATCH_SAFETY
def test_no_resume_warning_during_normal_saves(tmp_path):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100], start=time.time() - 60)
    records: list[dict] = []
    watcher = Watcher([str(logs)], Overrides(keep_last=2), settle=0.5, log=records.append)
    watcher.start()
    try:
        trainer = FakeTrainer(run, [200, 300, 400, 500, 600], _payloads(tmp_path))
        trainer.start()
        trainer.join()
        assert trainer.error is None
        want = ["D_500.pth", "D_600.pth", "G_500.pth", "G_600.pth"]
        assert _wait_for(lambda: sorted(p.name for p in run.iterdir()) == want, 20)
        time.sleep(1.5)  # three settle times of quiet: time enough for any warning
    finally:
        watcher.stop()
    assert _warnings(records) == [], records


@WATCH_SAFETY
def test_a_save_in_progress_at_start_is_not_a_trap(tmp_path):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100], start=time.time() - 60)
    data = fake_ckpt(tmp_path / "G_template.pth", payload=20_000).read_bytes()
    with open(run / "G_200.pth", "wb") as fh:  # the trainer is half-way through a save
        fh.write(data[: len(data) // 2])
    records: list[dict] = []
    watcher = Watcher([str(logs)], Overrides(keep_last=2), settle=1.0, log=records.append)
    watcher.start()
    try:
        assert _wait_for(lambda: watcher.first_pass_done, 5)
        with open(run / "G_200.pth", "ab") as fh:
            fh.write(data[len(data) // 2 :])
        (run / "D_200.pth").write_bytes(data)
        time.sleep(3.0)
    finally:
        watcher.stop()
    assert _warnings(records) == [], records
    assert {"G_100.pth", "G_200.pth", "D_200.pth"} <= {p.name for p in run.iterdir()}


@WATCH_SAFETY
def test_a_newest_file_that_stays_incomplete_is_warned(tmp_path):
    logs = tmp_path / "logs"
    before = fake_run(logs, "before", [100], start=time.time() - 60)
    truncate(fake_ckpt(before / "G_200.pth"))  # a crash left it at half, before the start
    during = fake_run(logs, "during", [100], start=time.time() - 60)
    records: list[dict] = []
    watcher = Watcher([str(logs)], Overrides(keep_last=1), settle=0.3, log=records.append)
    watcher.start()
    try:
        truncate(fake_ckpt(during / "G_200.pth"))  # a save that dies half-way
        wanted = "G_200.pth is what the trainer resumes from, but it is incomplete"
        assert _wait_for(lambda: len([m for m in _warnings(records) if wanted in m]) == 2, 10)
        time.sleep(1.0)
    finally:
        watcher.stop()
    warned = [r["run"] for r in records if r["event"] == "warning" and wanted in r["message"]]
    assert sorted(os.path.basename(r) for r in warned) == ["before", "during"]  # once each


@WATCH_SAFETY
def test_the_child_verifies_what_it_extracts_or_finds(tmp_path):
    from janitor.torchio.worker import handle

    run = write_run(tmp_path / "logs", "alice", steps=(100, 200), small_models=(100, 200))
    ok = handle(str(run / "G_100.pth"))
    assert ok["ok"] and ok["skipped"] and ok["output"] == str(run / "alice_1e_100s.pth")
    # a file under the trainer's name that is not this G's small model: not verified
    shutil.copy(run / "alice_2e_200s.pth", run / "alice_1e_100s.pth")
    bad = handle(str(run / "G_100.pth"))
    assert not bad["ok"] and "alice_1e_100s.pth failed verification" in bad["error"], bad
    (run / "alice_1e_100s.pth").unlink()
    made = handle(str(run / "G_100.pth"))
    assert made["ok"] and not made["skipped"] and (run / "alice_1e_100s.pth").exists()
    broken = handle(str(fake_ckpt(run / "G_300.pth")))
    assert not broken["ok"] and "G_300.pth" in broken["error"]
