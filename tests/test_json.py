"""One JSON shape and one meaning of exit codes for every command.

Every ``--json`` document (and every ``watch --json-log`` line) is validated against its
schema in docs/; every command is run to exit 0 (done, also nothing to do), 1 (an item
failed) where it can fail that way, and 2 (a usage error), with ``ok`` agreeing."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import jsonschema
import pytest

from fixtures.gen import write_run
from janitor.storage.fs import LocalFS
from tests.conftest import REPO, fake_ckpt, fake_run

DOCS = REPO / "docs"
OLD = 1_600_000_000.0
SCHEMA_OF = {"unpin": "pin", "trash list": "trash-list", "trash empty": "trash-empty"}


def schema(command: str) -> dict:
    name = SCHEMA_OF.get(command, command)
    return json.loads((DOCS / f"{name}.schema.json").read_text())


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("json") / "logs"
    write_run(logs, "alice", steps=(100, 200, 300), mtime_start=OLD)
    return logs


@pytest.fixture
def logs(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "logs"))


@pytest.fixture
def call(cli):
    """Run a command with --json; check the envelope against its schema; (code, doc)."""

    def run(*args, code: int):
        words = [str(a) for a in args]
        command = " ".join(words[:2]) if words[0] == "trash" else words[0]
        r = cli(*args, "--json")
        assert r.exit_code == code, r.output
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, schema(command))
        assert doc["command"] == command and doc["version"] == 1
        assert doc["ok"] is (code == 0), doc
        if code == 2:
            assert doc["errors"] and doc["errors"][0]["message"]
        return doc

    return run


def refuse(monkeypatch, method: str, name: str) -> None:
    """LocalFS.<method> fails with EACCES on paths ending in ``name``."""
    real = getattr(LocalFS, method)

    def failing(self, path, *args, **kwargs):
        if str(path).endswith(name):
            raise PermissionError(13, "Permission denied", str(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFS, method, failing)


def test_every_command_has_a_schema_and_the_schemas_are_valid():
    for command in ("scan", "prune", "finalize", "extract-small", "info", "pin", "unpin",
                    "restore", "trash list", "trash empty", "watch", "log"):  # fmt: skip
        jsonschema.Draft202012Validator.check_schema(schema(command))


def test_scan(logs, call, monkeypatch):
    doc = call("scan", logs, code=0)
    assert doc["runs"][0]["name"] == "alice"
    call("scan", logs / "nope", code=2)
    (logs / "bob").mkdir()
    refuse(monkeypatch, "survey", "bob")  # the walk lists folders by survey
    doc = call("scan", logs, code=1)
    assert doc["errors"][0]["path"].endswith("bob")


def test_prune(logs, call, monkeypatch):
    call("prune", logs, "--keep-last", "-1", code=2)
    doc = call("prune", logs, "--keep-last", "2", "-n", code=0)
    assert [s["reasons"] for s in doc["runs"][0]["sets"]][0] == ["kept by no rule"]
    refuse(monkeypatch, "remove", "G_100.pth")
    doc = call("prune", logs, "--keep-last", "2", code=1)
    assert doc["errors"][0]["path"].endswith("G_100.pth")
    monkeypatch.undo()
    doc = call("prune", logs, "--keep-last", "2", code=0)  # the rest: nothing failed now
    doc = call("prune", logs, "--keep-last", "2", code=0)  # nothing to do: still 0
    assert doc["freed"] == 0


def test_finalize_twice_is_done_not_refused(logs, call, cli):
    call("finalize", logs, "--idle", "5", code=2)
    fake_ckpt(logs / "bob" / "G_1.pth")  # just written: looks active
    doc = call("finalize", logs / "bob", code=1)
    assert "looks active" in doc["runs"][0]["refused"]
    doc = call("finalize", logs / "alice", code=0)
    assert doc["runs"][0]["freed"] > 0
    doc = call("finalize", logs / "alice", code=0)
    assert doc["runs"][0]["refused"] is None
    assert "nothing left to finalize" in doc["runs"][0]["notes"][0]
    r = cli("finalize", logs / "alice")
    assert r.exit_code == 0 and "nothing left to finalize" in r.output


def test_extract_small_and_info(logs, call):
    run = logs / "alice"
    call("extract-small", run / "G_300.pth", "--format", "xyz", code=2)
    doc = call("extract-small", run / "G_300.pth", run / "D_300.pth", code=1)
    assert len(doc["extracted"]) == 1 and doc["errors"][0]["path"].endswith("D_300.pth")
    doc = call("info", run / "G_300.pth", code=0)
    assert [f["kind"] for f in doc["files"]] == ["G"]  # a list, also for one file
    doc = call("info", run / "G_300.pth", run / "config.json", code=1)
    assert len(doc["files"]) == 1 and doc["errors"][0]["path"].endswith("config.json")
    call("info", run / "nope.pth", code=2)


def test_pin_unpin(logs, call, monkeypatch):
    run = logs / "alice"
    assert call("pin", run, "100", "200", code=0)["pins"] == [100, 200]
    assert call("unpin", run, "200", "300", code=0)["not_pinned"] == [300]
    call("pin", logs, "100", code=2)  # a logs root
    call("unpin", run, "x", code=2)
    refuse(monkeypatch, "write_atomic", "janitor.toml")
    doc = call("pin", run, "300", code=1)
    assert doc["errors"][0]["path"].endswith("janitor.toml")


def test_restore_and_trash(logs, call, monkeypatch):
    run = logs / "alice"
    call("prune", logs, "--keep-last", "1", "--trash", code=0)
    doc = call("trash", "list", logs, code=0)
    assert doc["totals"]["copies"] == 2 and all("trashed_at" in f for f in doc["files"])
    call("trash", "list", logs / "nope", code=2)
    call("restore", run, "999", code=2)
    fake_ckpt(run / "G_100.pth")  # the name is taken: that copy stays in the trash
    doc = call("restore", run, code=1)
    assert [c["copy"] for c in doc["blocked"]] == ["100#1"]
    assert {os.path.basename(r["path"]) for r in doc["restored"]} == {"G_200.pth", "D_200.pth"}
    call("trash", "empty", logs, "--older-than", "7", code=2)
    doc = call("trash", "empty", logs, "--older-than", "7d", code=0)
    assert doc["removed"] == [] and len(doc["kept"]) == 2
    refuse(monkeypatch, "remove", "D_100.pth")
    doc = call("trash", "empty", logs, code=1)
    assert doc["errors"][0]["path"].endswith("D_100.pth") and doc["freed"] > 0


def test_watch_json_log_lines(tmp_path, cli, monkeypatch):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200], start=OLD)
    watch_schema = schema("watch")
    r = cli("watch", logs, "--poll", "0", "--json-log")
    assert r.exit_code == 2
    jsonschema.validate(json.loads(r.stdout), watch_schema)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        r = cli("watch", logs, "--keep-last", "1", "--settle", "0.2", "--json-log")
    finally:
        timer.cancel()
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in io.StringIO(r.stdout)]
    for line in lines:
        jsonschema.validate(line, watch_schema)
    assert [x["event"] for x in lines][0] == "watching" and lines[-1]["event"] == "stopped"
    assert any(x["event"] == "removed" for x in lines)


def test_log_reads_the_journal_and_scan_shows_trash_and_journal(logs, call, cli):
    run = logs / "alice"
    doc = call("log", logs, code=0)
    assert doc["records"] == []
    call("log", logs / "nope", code=2)
    call("prune", logs, "--keep-last", "2", "--trash", code=0)
    call("prune", logs, "--keep-last", "1", code=0)
    doc = call("log", run, code=0)
    events = [(r["event"], os.path.basename(r["path"])) for r in doc["records"]]
    assert events == [("trash", "D_100.pth"), ("trash", "G_100.pth"),  # G last
                      ("remove", "D_200.pth"), ("remove", "G_200.pth")]  # fmt: skip
    assert doc["records"][0]["reasons"] == ["kept by no rule"]
    text = cli("log", run).output
    assert "trashed G_100.pth" in text and "removed D_200.pth" in text
    assert "kept by no rule [keep-last 2 (--keep-last)]" in text
    doc = call("scan", logs, code=0)
    (alice,) = doc["runs"]
    assert alice["trash_files"] == 2 and alice["trash_bytes"] > 0
    assert alice["journal"].endswith(os.path.join(".janitor", "journal.jsonl"))
    text = cli("scan", logs).output
    assert "trash        " in text and "in 2 files (still on disk" in text
    assert "journal: " in text and "journal.jsonl" in text
