"""The object-store backend (janitor/storage/remote.py) on fsspec's memory:// store: the
seam's promises without a server (the S3 ones are in test_object_storage.py)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest

from janitor.domain.errors import UsageError
from janitor.storage.fs import LockTimeout
from janitor.storage.journal import Journal
from janitor.storage.locate import is_url, resolve, storage_of


@pytest.fixture
def mem():
    fs, root = resolve(f"memory://t-{uuid.uuid4().hex}/logs")
    return fs, root


def test_urls_and_local_paths():
    assert is_url("s3://b/logs") and is_url("memory://x")
    assert not is_url("logs/alice") and not is_url("C:\\logs") and not is_url("/tmp/a://b")
    with pytest.raises(UsageError, match="one storage per command"):
        storage_of(["s3://b/logs", "logs"])


def test_listing_reading_and_ranged_reads(mem):
    fs, root = mem
    fs.write_atomic(f"{root}/alice/G_1.pth", b"0123456789")
    assert [(e.name, e.kind, e.size) for e in fs.listdir(root)] == [("alice", "dir", 0)]
    (entry,) = fs.listdir(f"{root}/alice")
    assert (entry.name, entry.path, entry.size) == ("G_1.pth", f"{root}/alice/G_1.pth", 10)
    assert fs.read_ends(entry.path, 3, 2) == (b"012", b"89", 10)
    assert fs.read_ends(entry.path, 8, 8) == (b"01234567", b"23456789", 10)  # as on disk
    assert fs.read_ends(entry.path, 4, 0) == (b"0123", b"", 10)  # no empty range asked for
    assert fs.read_ranges(entry.path, [(3, 3), (9, 10)]) == [b"", b"9"]
    assert fs.read_ranges(entry.path, [(0, 2), (5, 7)]) == [b"01", b"56"]
    assert fs.read_bytes(entry.path, 4) == b"456789"
    assert fs.listdir(f"{root}/nothing-here") == []  # a prefix with nothing under it
    with pytest.raises(NotADirectoryError):
        fs.listdir(entry.path)
    with pytest.raises(FileNotFoundError):
        fs.stat(f"{root}/alice/G_2.pth")


def test_survey_reads_the_ends_of_unknown_objects_only(mem):
    fs, root = mem
    for n in ("G_1.pth", "G_2.pth", "notes.txt"):
        fs.write_atomic(f"{root}/r/{n}", n.encode() * 10)
    first = {f.name: f for f in fs.survey(f"{root}/r", lambda n: n.endswith(".pth"), {}, 4, 4)}
    assert first["G_1.pth"].ends == (b"G_1.", b".pth") and first["notes.txt"].ends is None
    known = {"G_1.pth": first["G_1.pth"].key}
    again = {f.name: f for f in fs.survey(f"{root}/r", lambda n: n.endswith(".pth"), known, 4, 4)}
    assert again["G_1.pth"].ends is None and again["G_2.pth"].ends is not None


def test_an_append_only_file_is_a_series_of_record_objects(mem):
    fs, root = mem
    journal = Journal(f"{root}/.janitor", fs)
    journal.append({"event": "restore", "n": 1})
    with journal.writer() as w:
        w.append({"event": "set-begin", "run": "r", "number": 1})
        w.append({"event": "set-end", "run": "r", "number": 1})
    assert [r["event"] for r in journal.read().records] == ["restore", "set-begin", "set-end"]
    assert fs.exists(journal.path)
    parts = fs.listdir(journal.path + ".d")
    assert len(parts) == 2  # one object per sync: the one-off record, the writer's two


def test_rename_is_a_copy_then_a_delete_and_never_follows_nothing(mem):
    fs, root = mem
    fs.write_atomic(f"{root}/a/G_1.pth", b"x")
    fs.rename(f"{root}/a/G_1.pth", f"{root}/.janitor/trash/a/G_1.pth")
    assert not fs.exists(f"{root}/a/G_1.pth")
    assert fs.read_bytes(f"{root}/.janitor/trash/a/G_1.pth") == b"x"
    with pytest.raises(FileNotFoundError):
        fs.rename(f"{root}/a/G_1.pth", f"{root}/b")
    assert fs.create_exclusive(f"{root}/new", b"1") and not fs.create_exclusive(f"{root}/new", b"2")
    assert fs.read_bytes(f"{root}/new") == b"1"


def test_one_lock_holder_at_a_time_and_expired_locks_are_taken_over(mem, capsys):
    fs, root = mem
    path = f"{root}/.janitor/locks/alice.lock"
    inside: list[int] = []
    overlap = []

    def worker(i: int) -> None:
        with fs.lock(path, timeout=10):
            inside.append(i)
            if len(inside) > 1:
                overlap.append(list(inside))
            time.sleep(0.05)
            inside.remove(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [] and not fs.exists(path)  # released after each holder
    held = {"owner": "x", "host": "gpu-box", "pid": 7, "expires": time.time() + 60}
    fs.write_atomic(path, json.dumps(held).encode())
    with pytest.raises(LockTimeout), fs.lock(path, timeout=0.2):
        pass
    held["expires"] = time.time() - 1
    fs.write_atomic(path, json.dumps(held).encode())
    with fs.lock(path, timeout=0.2):
        assert json.loads(fs.read_bytes(path))["pid"] == os.getpid()  # ours now
    assert "took over the expired lock" in capsys.readouterr().err
    assert not fs.exists(path)
