"""janitor on systems that are not Linux, simulated on Linux: the calls Windows lacks are
removed (``O_NOFOLLOW``, ``pread``, ``SIGHUP``; a folder cannot be opened or fsynced; fsync
needs a handle opened for writing; ``kill(pid, 0)`` must never be sent), and Windows' rule
that a file another process holds open cannot be deleted or replaced is enforced on the
files a "trainer" holds. Every command works, or reports the held file; none fails with an
internal error."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import stat
import time

import pytest

from fixtures.gen import write_run
from janitor.domain.policy import Overrides
from janitor.storage import fs as fs_module
from janitor.storage import platform
from janitor.usecases.executor import Executor
from janitor.usecases.watch import Watcher
from tests.conftest import fake_ckpt, fake_run

OLD = 1_600_000_000.0


@pytest.fixture
def windows(monkeypatch):
    """Linux with Windows' gaps. Returns the set of paths a "trainer" holds open."""
    for name in ("O_NOFOLLOW", "pread"):
        monkeypatch.delattr(os, name)
    monkeypatch.delattr(signal, "SIGHUP")
    held: set[str] = set()
    real_open, real_fsync, real_kill = os.open, os.fsync, os.kill

    def open_(path, flags, *args, **kwargs):
        if stat.S_ISDIR(os.stat(path, follow_symlinks=False).st_mode if os.path.lexists(path)
                        else 0):  # fmt: skip
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    def fsync(fd):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real_fsync(fd)

    def kill(pid, sig):
        assert sig != 0, "kill(pid, 0) sends CTRL_C_EVENT on Windows"
        return real_kill(pid, sig)

    def refuse_held(real):
        def call(src, *rest, **kwargs):
            for p in (src, *rest[:1]):
                if os.path.abspath(os.fspath(p)) in held:
                    raise PermissionError(
                        13, "The process cannot access the file because it is being used by "
                        "another process", os.fspath(p),
                    )  # fmt: skip
            return real(src, *rest, **kwargs)

        return call

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "kill", kill)
    for name in ("unlink", "remove", "rename", "replace"):
        monkeypatch.setattr(os, name, refuse_held(getattr(os, name)))
    return held


def test_the_simulation_bites(windows, tmp_path):
    """Without the fallbacks, the calls janitor used to make fail here."""
    f = fake_ckpt(tmp_path / "G_1.pth")
    assert not hasattr(os, "O_NOFOLLOW") and not hasattr(os, "pread")
    assert not hasattr(signal, "SIGHUP")
    with pytest.raises(PermissionError):
        os.open(str(tmp_path), os.O_RDONLY)
    fd = os.open(str(f), os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    windows.add(str(f))
    with pytest.raises(PermissionError):
        os.unlink(f)


def test_portable_file_calls(windows, tmp_path):
    f = fake_ckpt(tmp_path / "G_1.pth")
    data = f.read_bytes()
    head, tail, size = fs_module.LOCAL.read_ends(str(f), 10, 22)
    assert (head, tail, size) == (data[:10], data[-22:], len(data))
    link = tmp_path / "G_2.pth"
    link.symlink_to(f)
    with pytest.raises(OSError) as info:
        fs_module.LOCAL.read_ends(str(link), 10, 22)
    assert info.value.errno == errno.ELOOP
    assert fs_module.LOCAL.sync_file(str(f)) == len(data)
    fs_module.fsync_folder(str(tmp_path))  # refused by the system: not an error


def test_pid_probe_never_sends_a_signal_on_windows(monkeypatch, tmp_path):
    sent = []
    monkeypatch.setattr(os, "kill", lambda *a: sent.append(a))
    monkeypatch.setattr(platform, "WINDOWS", True)
    assert platform.pid_alive(2**22 + 12345)  # unknown (no kernel32 here): alive
    assert sent == []
    stale = tmp_path / ".janitor-tmp-999999-x"
    stale.mkdir()
    assert fs_module.clean_stale_temps(str(tmp_path), ".janitor-tmp-") == []  # left alone
    monkeypatch.setattr(platform, "WINDOWS", False)
    monkeypatch.undo()
    assert not platform.pid_alive(2**22 + 12345)  # POSIX: gone
    assert platform.pid_alive(os.getpid())


def test_stop_signals_without_sighup(windows):
    sigs = platform.stop_signals()
    assert signal.SIGTERM in sigs and signal.SIGINT in sigs and len(sigs) == 2


def test_scan_and_prune(windows, tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300, 400])
    (logs / "alice" / "G_9.pth").symlink_to(logs / "alice" / "G_100.pth")
    r = cli("scan", logs, "--json")
    assert r.exit_code == 0, r.output
    assert "internal error" not in r.output
    r = cli("prune", logs, "--keep-last", "2")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (logs / "alice").glob("G_*")) == [
        "G_300.pth",
        "G_400.pth",
        "G_9.pth",
    ]


@pytest.mark.parametrize("trash", [False, True], ids=["delete", "trash"])
def test_a_file_the_trainer_holds_open_is_left_alone_and_reported(windows, tmp_path, cli, trash):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200, 300])
    held = run / "G_100.pth"
    windows.add(str(held))
    r = cli("prune", logs, "--keep-last", "1", *(["--trash"] if trash else []))
    assert r.exit_code == 1, r.output
    assert "internal error" not in r.output
    assert "G_100.pth: permission denied" in r.output
    assert held.exists()
    assert not (run / "G_200.pth").exists() and not (run / "D_200.pth").exists()
    assert (run / "G_300.pth").exists()


def test_finalize_and_extract_small(windows, tmp_path, cli):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=(100, 200), mtime_start=OLD)
    run = logs / "alice"
    r = cli("extract-small", run / "G_100.pth")
    assert r.exit_code == 0, r.output
    assert (run / "alice_1e_100s.pth").is_file()
    r = cli("extract-small", run / "G_100.pth", "--force")  # os.replace over our own file
    assert r.exit_code == 0, r.output
    held = run / "D_200.pth"
    windows.add(str(held))
    r = cli("finalize", logs, "--force")  # extract-small just wrote into the run
    assert r.exit_code == 1, r.output
    assert "internal error" not in r.output and "D_200.pth" in r.output
    assert held.exists() and (run / "alice_2e_200s.pth").is_file()
    windows.clear()
    r = cli("finalize", logs, "--force")  # extract-small just wrote into the run
    assert r.exit_code == 0, r.output
    assert not list(run.glob("[GD]_*.pth"))


def _wait_for(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("poll", [None, 0.2], ids=["native", "poll"])
def test_watch(windows, tmp_path, poll):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200], start=OLD)
    records: list[dict] = []
    windows.add(str(run / "D_100.pth"))
    watcher = Watcher([str(logs)], Overrides(keep_last=1), poll=poll, settle=0.2,
                      log=records.append, executor=Executor())  # fmt: skip
    watcher.start()
    try:
        for name in ("G_300.pth", "D_300.pth"):
            fake_ckpt(run / name)
        assert _wait_for(lambda: not (run / "G_200.pth").exists())
    finally:
        watcher.stop()
    assert (run / "D_100.pth").exists()  # held: left alone
    assert not [r for r in records if "internal error" in json.dumps(r)]
    assert any("D_100.pth" in json.dumps(r) for r in records), records
    names = sorted(p.name for p in run.iterdir())
    assert names == ["D_100.pth", "D_300.pth", "G_100.pth", "G_300.pth"]  # 100 is tried again


def test_watch_command_stops_on_sigterm_without_sighup(windows, tmp_path, cli):
    import threading

    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200], start=OLD)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        r = cli("watch", logs, "--keep-last", "1", "--settle", "0.2")
    finally:
        timer.cancel()
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert r.exit_code == 0, r.output
    assert not (logs / "alice" / "G_100.pth").exists()


def test_every_other_command_without_linux_calls(windows, tmp_path, cli):
    """pin, unpin, trash list/empty, restore, info, log, scan --json: no internal error."""
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=(100, 200, 300), mtime_start=OLD)
    run = logs / "alice"
    for args in (
        ("pin", run, "100"),
        ("unpin", run, "100"),
        ("prune", logs, "--keep-last", "1", "--trash"),
        ("trash", "list", logs, "--json"),
        ("restore", run, "100"),
        ("trash", "empty", logs),
        ("info", run / "G_300.pth", "--json"),
        ("log", logs),
        ("scan", logs, "--json"),
    ):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.output)
        assert "internal error" not in r.output
