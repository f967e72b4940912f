"""Shared test helpers: cheap torch-like checkpoints for bulk tests, a CLI runner, nobody-user
subprocesses (tests run as root in CI, and root ignores file permissions)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from janitor.cli import app

pytest_plugins = ["tests.objectstore"]

REPO = Path(__file__).resolve().parent.parent


def fake_ckpt(path: Path, payload: int = 2048, mtime: float | None = None) -> Path:
    """A structurally complete torch-style zip (first entry <archive>/data.pkl) without torch:
    for tests that need hundreds of files. Real torch files come from fixtures.gen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{stem}/data.pkl", b"\x80\x02}q\x00.")
        z.writestr(f"{stem}/data/0", os.urandom(payload))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def truncate(path: Path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))


def fake_run(root: Path, name: str, steps, prefixes=("G", "D"), start=1_700_000_000.0, **kw):
    run = root / name
    for i, step in enumerate(steps):
        for p in prefixes:
            fake_ckpt(run / f"{p}_{step}.pth", mtime=start + 600 * i, **kw)
    return run


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def can_drop_privileges() -> bool:
    """Root ignores mode bits; dropping the DAC capabilities makes permissions bite again."""
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


def run_janitor(*args, unprivileged: bool = False, env=None, **kw):
    """janitor in its own process (what users run); ``unprivileged``: without root's power to
    ignore file permissions."""
    prefix = DROP_DAC if unprivileged and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "janitor", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=kw.pop("cwd", REPO),
        **kw,
    )


def janitors_at_once(n: int, *args) -> list[tuple[int, str, str]]:
    """``n`` janitor processes with the same arguments, started together: (exit code,
    stdout, stderr) of each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "janitor", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )  # fmt: skip
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


# ----------------------------------------------------------------- the Safety table
# Tests marked @pytest.mark.safety("scenario") feed the Safety table in docs/safety.md: with
# JANITOR_SAFETY_REPORT=path, the session writes per-scenario test and case counts and
# results there (tools/safety_table.py renders them). A test counts its cases with `cases()`.

_SAFETY: dict[str, dict[str, int]] = {}
_PASSED = pytest.StashKey[bool]()


@pytest.fixture
def cases(request):
    counter = [0]

    def add(n: int = 1) -> None:
        counter[0] += n

    yield add
    request.node.user_properties.append(("cases", counter[0]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("safety")
    if marker is None:
        return
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    elif report.when == "teardown" and _PASSED in item.stash:  # `cases` is final only now
        row = _SAFETY.setdefault(marker.args[0], {"tests": 0, "cases": 0, "passed": 0, "failed": 0})
        row["tests"] += 1
        row["cases"] += max(1, dict(item.user_properties).get("cases", 0))
        row["passed" if item.stash[_PASSED] and report.passed else "failed"] += 1


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("JANITOR_SAFETY_REPORT")
    if path and _SAFETY:
        import json

        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(_SAFETY.items())), fh, indent=2)


@pytest.fixture
def forking(monkeypatch):
    """Two worker processes (``JANITOR_WORKERS``), even here: the test process may already
    run other threads (the session's S3 server, which a forked child never touches), and
    one process is what ``platform.worker_processes`` would choose then."""
    import threading

    from janitor.storage import platform

    monkeypatch.setenv(platform.WORKERS_ENV, "2")
    monkeypatch.setattr(threading, "active_count", lambda: 1)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Names of checkpoint files opened for reading in this process (by the survey or a
    lone check)."""
    import janitor.storage.fs as fs_module

    opened: list[str] = []
    real_found, real_ends = fs_module._read_found, fs_module.LocalFS.read_ends

    def read_found(folder, dfd, name, head, tail):
        opened.append(name)
        return real_found(folder, dfd, name, head, tail)

    def read_ends(self, path, head, tail):
        if path.endswith(".pth"):  # not the journal's last byte
            opened.append(os.path.basename(path))
        return real_ends(self, path, head, tail)

    monkeypatch.setattr(fs_module, "_read_found", read_found)
    monkeypatch.setattr(fs_module.LocalFS, "read_ends", read_ends)
    return opened


# ----------------------------------------------------------------- real small file systems


def _no_tmpfs(reason: str):
    """Skip (a developer's machine) or, under CI=true, fail: CI runs as root and must run them."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the full-disk tests must run)")
    pytest.skip(reason)


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size="12m", name="disk")``: a real tmpfs of that size mounted at
    ``tmp_path/name``, unmounted after the test. Mounting needs root: skipped otherwise,
    failed under ``CI=true``."""
    if os.geteuid() != 0:
        _no_tmpfs("mounting a tmpfs needs root (the full-disk tests run as root)")
    mounted: list[Path] = []

    def mount(size: str = "12m", name: str = "disk") -> Path:
        where = tmp_path / name
        where.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode:
            _no_tmpfs(f"cannot mount a tmpfs at {where}: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(path: Path) -> Path:
    """Fill the file system holding folder ``path`` to the last byte (a file ``path/filler``
    written until ENOSPC, in ever smaller pieces, as ``dd`` would); the filler."""
    import errno

    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(path).f_bavail == 0
    return filler


def sets_on_disk(run: Path) -> dict[int, set[str]]:
    """Step -> the prefixes (G, D) of its files in ``run``."""
    out: dict[int, set[str]] = {}
    for p in run.glob("*_*.pth"):
        prefix, num = p.stem.split("_", 1)
        out.setdefault(int(num), set()).add(prefix)
    return out
