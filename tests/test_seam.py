"""Every file access goes through the storage seam (``janitor.storage.fs``): scan, prune,
pin, the trash commands and finalize run with ``os``/``open`` instrumented, and no janitor
module but the local backend touches a path inside the logs tree directly."""

from __future__ import annotations

import builtins
import os
import shutil
import sys
import tempfile

import pytest

from fixtures.gen import write_run
from tests.conftest import fake_ckpt, fake_run

SEAM = "janitor.storage.fs"
FUNCS = {
    builtins: ["open"],
    os: ["open", "scandir", "listdir", "stat", "lstat", "unlink", "remove", "rename", "replace",
         "makedirs", "mkdir", "rmdir", "truncate", "utime", "link", "chmod"],
    os.path: ["exists", "lexists", "isdir", "isfile", "islink", "getsize", "getmtime",
              "realpath"],
    shutil: ["rmtree", "copyfile", "copy2", "move"],
    tempfile: ["mkstemp", "mkdtemp"],
}  # fmt: skip


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """Calls made directly from janitor code (not the seam) on paths under ``tmp_path``."""
    root = str(tmp_path)
    calls: list[str] = []

    def wrap(owner, name, real):
        def spy(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("janitor.") and caller != SEAM:
                paths = [a for a in (*args, kwargs.get("dir"), kwargs.get("path"))
                         if isinstance(a, str | os.PathLike)]  # fmt: skip
                if any(os.fspath(p).startswith(root) for p in paths):
                    line = sys._getframe(1).f_lineno
                    calls.append(f"{caller}:{line} {owner.__name__}.{name}{tuple(map(str, args))}")
            return real(*args, **kwargs)

        return spy

    for owner, names in FUNCS.items():
        for name in names:
            monkeypatch.setattr(owner, name, wrap(owner, name, getattr(owner, name)))
    return calls


def test_the_recorder_sees_a_direct_call(recorder, tmp_path, monkeypatch):
    import janitor.storage.scan as scan_module

    monkeypatch.setattr(scan_module, "__name__", "janitor.storage.scan")
    exec(
        compile("os.listdir(p)", "x", "exec"),
        {"os": os, "p": str(tmp_path), "__name__": "janitor.x"},
    )
    assert len(recorder) == 1 and "os.listdir" in recorder[0]


def test_scan_prune_pin_trash_through_the_seam(recorder, tmp_path, cli, monkeypatch):
    from janitor.storage import cache

    monkeypatch.setattr(cache, "RACY_NS", 0)  # the verdict cache is written and read too
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300, 400])
    fake_run(logs, "bob", [10, 20])
    fake_ckpt(logs / "bob" / "G_30.pth")
    (logs / "janitor.toml").write_text("[prune]\nkeep-last = 2\n")
    for args in (
        ("scan", logs),
        ("scan", logs, "--json"),
        ("scan", logs, "--no-cache"),
        ("pin", logs / "alice", "100"),
        ("prune", logs, "-n"),
        ("prune", logs, "--trash"),
        ("trash", "list", logs),
        ("restore", logs / "alice"),
        ("prune", logs, "--keep-last", "1"),
        ("trash", "empty", logs),
        ("unpin", logs / "alice", "100"),
    ):
        result = cli(*args)
        assert result.exit_code in (0, 1), (args, result.output)
    assert (logs / ".janitor" / "verdicts.cache").exists()
    assert recorder == []


def test_finalize_through_the_seam(recorder, tmp_path, cli):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=(100, 200), small_models=(200,), mtime_start=1_600_000_000.0)
    result = cli("finalize", logs, "--force")
    assert result.exit_code == 0, result.output
    assert not list((logs / "alice").glob("G_*.pth"))
    assert recorder == []


def test_framework_runs_through_the_seam(recorder, tmp_path, cli):
    from tests.framework_runs import fake_hf_checkpoint

    logs = tmp_path / "logs"
    for i, step in enumerate((2, 4, 6, 8)):
        fake_hf_checkpoint(logs / "hf", step, best=4, mtime=1_600_000_000.0 + i)
    for step in (4, 8, 12):
        fake_ckpt(logs / "pl" / f"epoch={step // 4}-step={step}-val_loss=0.{step}.ckpt")
    (logs / "pl" / "last.ckpt").symlink_to("epoch=3-step=12-val_loss=0.12.ckpt")
    for n in (10, 20):
        fake_ckpt(logs / "ds" / f"global_step{n}" / "mp_rank_00_model_states.pt")
    (logs / "ds" / "latest").write_text("global_step20")
    for args in (
        ("scan", logs),
        ("scan", logs, "--json"),
        ("prune", logs / "hf", "-n", "--keep-best", "1", "--metric", "eval_loss"),
        ("prune", logs / "pl", "-n", "--keep-best", "1", "--metric", "val_loss"),
        ("prune", logs, "--trash"),
        ("trash", "list", logs),
        ("restore", logs / "hf"),
        ("prune", logs, "--keep-last", "1", "--fix-resume"),
        ("trash", "empty", logs),
    ):
        result = cli(*args)
        assert result.exit_code in (0, 1), (args, result.output)
    assert sorted(p.name for p in (logs / "hf").iterdir()) == ["checkpoint-4", "checkpoint-8"]
    assert recorder == []
