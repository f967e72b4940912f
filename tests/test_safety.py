"""Fault and adversarial-input suite: janitor attacked on purpose. Each test asserts that no
needed file is lost, no partial output is left, and the user gets a clear message and the
right exit code. The counts feed the Safety table in docs/safety.md (`make safety`)."""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from fixtures.gen import write_run
from janitor.storage.fs import LocalFS
from janitor.storage.journal import Journal
from janitor.storage.scan import scan
from janitor.usecases.executor import Executor
from janitor.usecases.prune import plan_run
from tests.conftest import (
    REPO,
    can_drop_privileges,
    fake_ckpt,
    fake_run,
    run_janitor,
    sets_on_disk,
    truncate,
)

safety = pytest.mark.safety


def janitor_proc(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "janitor", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, **kw,
    )  # fmt: skip


# ------------------------------------------------------------------ 1. kill -9 during prune


@safety("1. kill -9 during prune")
@pytest.mark.slow
def test_kill_9_during_prune(tmp_path, cases):
    rng = random.Random(1234)
    template = fake_run(tmp_path / "template", "r", range(1, 301), payload=64)
    for rep in range(8):
        logs = tmp_path / f"logs{rep}"
        run = Path(shutil.copytree(template, logs / "r"))
        journal = Journal(str(logs / ".janitor"))
        proc = janitor_proc("prune", logs, "--quiet")
        deadline = time.monotonic() + 30
        while not os.path.exists(journal.path) and time.monotonic() < deadline:
            time.sleep(0.001)  # wait until removals have begun, then strike at random
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if rep % 2:  # a torn last line, as a kill in the middle of a write leaves it
            with open(journal.path, "a") as fh:
                fh.write('{"event": "remo')
        read = journal.read()
        assert all(isinstance(r, dict) for r in read.records)
        unfinished = journal.unfinished_sets(str(run), read)
        for number, prefixes in sets_on_disk(run).items():
            assert prefixes == {"G", "D"} or number in unfinished, (number, prefixes)
        assert sets_on_disk(run)[300] == {"G", "D"}  # the newest complete set survives
        finishing = sorted(unfinished & set(sets_on_disk(run)))  # begun, files left
        again = run_janitor("prune", logs)
        assert again.returncode == 0, again.stderr
        if finishing:  # one note for the run, naming it, the count and the first step
            n = len(finishing)
            said = (
                f"r: finishing {n} interrupted removal{'s' if n != 1 else ''} (step {finishing[0]}"
            )
            assert said in again.stdout
        if rep % 2 and "freed 0 B " not in again.stdout:
            assert "was cut short" in again.stdout
        assert sets_on_disk(run) == {300: {"G", "D"}}
        cases()


# ------------------------------------------------------------------ 2. kill during extract


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("x") / "logs", "alice", steps=(100,), with_d=False)


def _no_partial_output(run: Path) -> None:
    out = run / "alice_1e_100s.pth"
    if out.exists():  # whole, or not there at all
        assert torch.load(out, weights_only=True)["step"] == 100


@safety("2. kill -9 / SIGINT during extract-small")
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "sigint"])
def test_kill_during_extract(tmp_path, tiny_run, sig, cases):
    rng = random.Random(sig)
    for rep in range(3):
        run = Path(shutil.copytree(tiny_run, tmp_path / f"r{rep}" / "alice"))
        proc = janitor_proc("extract-small", run / "G_100.pth")
        time.sleep(rng.uniform(1.0, 3.5))
        proc.send_signal(sig)
        out, err = proc.communicate()
        _no_partial_output(run)
        if sig == signal.SIGINT and proc.returncode not in (0,):
            assert (proc.returncode, err.strip()) == (130, "janitor: interrupted")
        (run / "alice_1e_100s.pth").unlink(missing_ok=True)
        again = run_janitor("extract-small", run / "G_100.pth")  # cleans what a kill left
        assert again.returncode == 0, again.stderr
        assert not [p for p in run.iterdir() if p.name.startswith(".janitor-tmp-")]
        _no_partial_output(run)
        cases()


# ------------------------------------------------------------------ 3. disk full


@safety("3. disk full / file too large while extracting")
def test_file_too_large_while_extracting(tmp_path, tiny_run, cases):
    run = Path(shutil.copytree(tiny_run, tmp_path / "alice"))
    before = sorted(p.name for p in run.iterdir())

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    r = subprocess.run(
        [sys.executable, "-m", "janitor", "extract-small", str(run / "G_100.pth")],
        capture_output=True, text=True, cwd=REPO, preexec_fn=limit,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("janitor: cannot write") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == before  # no output, no temp folder
    cases()


@safety("3. disk full / file too large while extracting")
def test_disk_full_injected_at_the_write(tmp_path, tiny_run, monkeypatch, cases):
    from janitor.storage import torchfile
    from janitor.torchio import extract

    run = Path(shutil.copytree(tiny_run, tmp_path / "alice"))
    before = sorted(p.name for p in run.iterdir())

    def full(obj, out, archive):  # the writer of Applio's small models (torch-free)
        out.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torchfile, "save", full)
    with pytest.raises(extract.JanitorError, match="No space left on device"):
        extract.extract_one(str(run / "G_100.pth"), extract.Options())
    assert sorted(p.name for p in run.iterdir()) == before
    cases()


# ------------------------------------------------------------------ 4. writers during prune


@safety("4. files being written during prune")
@pytest.mark.slow
def test_files_being_written_during_prune_are_never_removed(tmp_path, cases):
    logs = tmp_path / "logs"
    run = fake_run(logs, "r", range(1, 101), payload=64)
    blob = fake_ckpt(tmp_path / "blob.pth", payload=50_000).read_bytes()
    written: list[int] = []
    stop = threading.Event()

    def writer():
        step = 1000
        while not stop.is_set():
            for prefix in "GD":
                with open(run / f"{prefix}_{step}.pth", "wb") as fh:
                    for i in range(10):
                        fh.write(blob[i * len(blob) // 10 : (i + 1) * len(blob) // 10])
                        fh.flush()
                        time.sleep(0.005)
            written.append(step)
            step += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(6):
            r = run_janitor("prune", logs, "--keep-last", "2")
            assert r.returncode == 0, r.stderr
            cases()
    finally:
        stop.set()
        t.join()
    on_disk = sets_on_disk(run)
    newest = written[-1]
    assert {newest - 1, newest} <= set(on_disk)
    for step in on_disk:
        assert on_disk[step] == {"G", "D"} or step > newest
    # nothing was removed while it was being written: every journal entry is a set that was
    # complete and had at least two complete sets above it
    removed = [r for r in Journal(str(logs / ".janitor")).read().records if r["event"] == "remove"]
    assert removed and all(r["number"] < newest - 1 for r in removed)


@safety("4. files being written during prune")
def test_a_set_completed_after_planning_never_loses_to_the_old_plan(tmp_path, cases):
    logs = tmp_path / "logs"
    run = fake_run(logs, "r", [100, 200, 300])
    shown = plan_run(scan([str(logs)]).runs[0], now=0)  # keep 300, remove 100 and 200
    fake_run(logs, "r", [400])  # the trainer saves again before the plan runs
    result = Executor().execute(shown)
    assert sorted(os.path.basename(x.path) for x in result.removed) == [
        "D_100.pth", "D_200.pth", "G_100.pth", "G_200.pth",
    ]  # fmt: skip
    assert sets_on_disk(run) == {300: {"G", "D"}, 400: {"G", "D"}}
    cases()


# ------------------------------------------------------------------ 5. broken files


def _broken(kind: str, path: Path) -> None:
    if kind == "truncated":
        fake_ckpt(path)
        truncate(path)
    elif kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "not-a-zip":
        path.write_bytes(b"this is a log file, not a checkpoint\n" * 20)
    elif kind == "wrong-zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("photos/cat.jpg", b"\xff\xd8" * 100)


@safety("5. truncated, zero-byte, non-zip, wrong-zip files")
@pytest.mark.parametrize("kind", ["truncated", "zero-byte", "not-a-zip", "wrong-zip"])
def test_broken_files_are_never_newest_and_never_removed(tmp_path, kind, cases, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs, "r", [100, 200, 300])
    for step in (50, 400):  # one older than the newest complete set, one newer
        for prefix in "GD":
            _broken(kind, run / f"{prefix}_{step}.pth")
    report = scan([str(logs)])
    assert report.runs[0].newest_complete.number == 300
    assert cli("prune", logs, "--keep-last", "1").exit_code == 0
    assert set(sets_on_disk(run)) == {50, 300, 400}
    # only when asked, and only when old enough
    r = cli("prune", logs, "--remove-incomplete", "--older-than", "1h")
    assert r.exit_code == 0 and set(sets_on_disk(run)) == {50, 300, 400}
    old = time.time() - 7200
    for p in run.glob("*_[45]0*.pth"):
        os.utime(p, (old, old))
    r = cli("prune", logs, "--remove-incomplete", "--older-than", "1h")
    assert r.exit_code == 0 and set(sets_on_disk(run)) == {300}
    cases(2)


# ------------------------------------------------------------------ 6. malicious inputs


class _Evil:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg,))


@safety("6. malicious pickles and zips")
@pytest.mark.parametrize("how", ["os.system", "eval", "subprocess", "nested-in-optimizer"])
def test_malicious_pickles_are_refused(tmp_path, how, cases, cli):
    marker = tmp_path / "pwned"
    shell = f"touch {marker}"
    payload = {
        "os.system": _Evil(os.system, shell),
        "eval": _Evil(eval, f"__import__('os').system({shell!r})"),
        "subprocess": _Evil(subprocess.call, ["touch", str(marker)]),
        "nested-in-optimizer": _Evil(os.system, shell),
    }[how]
    run = tmp_path / "logs" / "evil"
    run.mkdir(parents=True)
    ckpt = {"model": {"enc_p.emb_phone.weight": torch.zeros(2, 768)}, "iteration": 1}
    if how == "nested-in-optimizer":
        ckpt["optimizer"] = {"state": {0: {"exp_avg": payload}}}
    else:
        ckpt["model"]["x"] = payload
    torch.save(ckpt, run / "G_100.pth")
    # one whole process (what users run), then the other entry points in-process
    r = run_janitor("extract-small", run / "G_100.pth")
    assert r.returncode == 1 and "refusing to load" in r.stderr and "Traceback" not in r.stderr
    cases()
    for args in (["info", run / "G_100.pth"], ["finalize", run, "--force"]):
        r = cli(*args)
        assert r.exit_code == 1, (args, r.output)
        assert "refusing to load" in r.output
        cases()
    assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == ["G_100.pth"]


def _zip_with_first_entry(path: Path, name: str) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, b"\x80\x02}q\x00.")


@safety("6. malicious pickles and zips")
def test_path_traversal_and_huge_declared_sizes(tmp_path, cases):
    run = fake_run(tmp_path / "logs", "r", [100])
    _zip_with_first_entry(run / "G_200.pth", "../../../etc/data.pkl")
    fake_ckpt(run / "G_300.pth")
    data = bytearray((run / "G_300.pth").read_bytes())
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, eocd + 12, 0xFFFFFF00)  # central directory "4 GB long"
    (run / "G_300.pth").write_bytes(bytes(data))
    r = scan([str(run)]).runs[0]
    by = {f.name: f for f in r.files}
    assert not by["G_200.pth"].complete and "not a torch checkpoint" in by["G_200.pth"].problem
    assert not by["G_300.pth"].complete
    assert r.newest_complete.number == 100
    for name in ("G_200.pth", "G_300.pth"):
        x = run_janitor("extract-small", run / name)
        assert x.returncode == 1 and "not a complete torch checkpoint" in x.stderr
        cases()
    assert not list((tmp_path / "etc").glob("*")) if (tmp_path / "etc").exists() else True


# ------------------------------------------------------------------ 7. symlinks


@safety("7. symlinks out of the tree and loops")
def test_symlinks_are_never_deleted_through(tmp_path, cases, cli):
    outside = fake_run(tmp_path / "elsewhere", "victim", [1, 2, 3])
    before = sorted(p.name for p in outside.iterdir())
    logs = tmp_path / "logs"
    own = fake_run(logs, "own", [1, 2, 3])
    (logs / "linked-run").symlink_to(outside, target_is_directory=True)
    (own / "G_0.pth").unlink(missing_ok=True)
    (own / "D_4.pth").symlink_to(outside / "D_1.pth")
    (own / "G_4.pth").symlink_to(outside / "G_1.pth")
    (logs / "loop").symlink_to(logs / "loop")
    (logs / "up").symlink_to(logs, target_is_directory=True)
    r = cli("prune", logs, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (own / "G_4.pth").is_symlink() and (own / "D_4.pth").is_symlink()
    assert sorted(p.name for p in own.iterdir() if not p.is_symlink()) == ["D_3.pth", "G_3.pth"]
    cases()
    # the watcher does not hang on loops either
    proc = janitor_proc("watch", logs, "--settle", "0.2")
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert sorted(p.name for p in outside.iterdir()) == before
    cases()


# ------------------------------------------------------------------ 8. permissions


@safety("8. permissions and read-only file systems")
def test_permission_denied_rest_done(tmp_path, cases):
    if not can_drop_privileges():
        pytest.skip("setpriv is needed to test permissions as root")
    logs = tmp_path / "logs"
    fake_run(logs, "a", [1, 2, 3])
    locked = fake_run(logs, "b", [1, 2, 3])
    locked.chmod(0o555)
    try:
        r = run_janitor("prune", logs, unprivileged=True)
    finally:
        locked.chmod(0o755)
    assert r.returncode == 1 and "permission denied" in r.stdout
    assert set(sets_on_disk(logs / "a")) == {3} and set(sets_on_disk(locked)) == {1, 2, 3}
    cases()


@safety("8. permissions and read-only file systems")
def test_read_only_file_system_reported_rest_done(tmp_path, cases):
    logs = tmp_path / "logs"
    fake_run(logs, "a", [1, 2, 3])
    fake_run(logs, "b", [1, 2, 3])

    class ReadOnlyB(LocalFS):
        def remove(self, path):
            if f"{os.sep}b{os.sep}" in path:
                raise OSError(errno.EROFS, "Read-only file system", path)
            super().remove(path)

    report = scan([str(logs)])
    results = [Executor(ReadOnlyB()).execute(plan_run(run, now=0)) for run in report.runs]
    assert [len(r.errors) for r in results] == [0, 2]  # one error per set, then the set stops
    assert {e.message for e in results[1].errors} == {"read-only file system"}
    assert set(sets_on_disk(logs / "a")) == {3} and set(sets_on_disk(logs / "b")) == {1, 2, 3}
    cases()


# ------------------------------------------------------------------ 9. concurrency


@safety("9. two prunes and a watch at once")
@pytest.mark.slow
def test_two_prunes_and_a_watch_at_once(tmp_path, cases):
    logs = tmp_path / "logs"
    for name in ("a", "b", "c"):
        fake_run(logs, name, range(1, 151), payload=64)
    watch = janitor_proc("watch", logs, "--settle", "0.2", "--json-log")
    prunes = [janitor_proc("prune", logs, "--json") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in prunes]
    time.sleep(1.5)
    watch.send_signal(signal.SIGTERM)
    wout, werr = watch.communicate(timeout=30)
    assert [p.returncode for p in prunes] == [0, 0], outs
    assert watch.returncode == 0, werr
    for name in ("a", "b", "c"):
        assert sets_on_disk(logs / name) == {150: {"G", "D"}}
    read = Journal(str(logs / ".janitor")).read()
    assert read.torn_lines == ()
    removed = [r["path"] for r in read.records if r["event"] == "remove"]
    assert len(removed) == len(set(removed)) == 3 * 149 * 2  # each file exactly once
    begins = [(r["run"], r["number"]) for r in read.records if r["event"] == "set-begin"]
    ends = [(r["run"], r["number"]) for r in read.records if r["event"] == "set-end"]
    assert sorted(begins) == sorted(ends) and len(begins) == len(set(begins))
    cases()


# ------------------------------------------------------------------ 10. odd names and places


ODD = ["G_best.pth", "G_1000_backup.pth", "G_-1.pth", "G_1e5.pth", "G_100.PTH", "D_0100.pth"]


@safety("10. odd names and places")
@pytest.mark.parametrize(
    "folder",
    ["with space", "ünïcödé-日本語", "x" * 200 + "/" + "y" * 200 + "/" + "z" * 200],
    ids=["spaces", "unicode", "long-path"],
)
def test_odd_names_and_places(tmp_path, folder, cases, cli):
    logs = tmp_path / "logs"
    run = fake_run(logs / folder, "rün 1", [100, 200, 300])
    for name in ODD:
        fake_ckpt(run / name)
    r = cli("scan", logs, "--json")
    assert r.exit_code == 0
    (doc,) = json.loads(r.output)["runs"]
    assert sorted(os.path.basename(i["path"]) for i in doc["ignored"]) == sorted(ODD)
    assert cli("prune", logs).exit_code == 0
    left = {p.name for p in run.iterdir()}
    assert left == {"G_300.pth", "D_300.pth", *ODD}  # odd names are never candidates
    cases(len(ODD))
