"""The scan's verdict cache (``janitor.storage.cache``): an unchanged file is not opened
again; any change git's index would notice (size, mtime, ctime, inode) means "read again";
a cache that is missing, corrupt, foreign or cannot be written never gives a wrong verdict."""

from __future__ import annotations

import errno
import multiprocessing
import os
from pathlib import Path

import pytest

from janitor.core.ziptail import ZipCheck
from janitor.storage import cache as cache_module
from janitor.storage import layout
from janitor.storage.cache import MAGIC, VerdictCache
from janitor.storage.fs import LOCAL
from janitor.storage.scan import scan
from janitor.usecases.executor import Executor
from janitor.usecases.prune import parse_overrides, plan_run
from tests.conftest import fake_ckpt, fake_run


@pytest.fixture
def no_racy(monkeypatch):
    """Files written by the test a moment ago are cacheable (the racy margin is tested apart)."""
    monkeypatch.setattr(cache_module, "RACY_NS", 0)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    fake_run(root, "alice", [100, 200, 300])
    fake_run(root, "bob", [10, 20])
    return root


def verdicts(root: Path, **kw) -> dict[str, bool]:
    return {
        f.name: f.complete for r in scan([str(root)], **kw).runs for f in r.files
    }  # fmt: skip


def cache_file(root: Path) -> Path:
    return Path(layout.verdict_cache(layout.state_dir_of_root(str(root))))


def test_an_unchanged_tree_is_not_read_again(logs, reads, no_racy):
    first = verdicts(logs)
    assert len(reads) == 10 and all(first.values())
    assert cache_file(logs).exists()
    reads.clear()
    assert verdicts(logs) == first
    assert reads == []  # no open, no read
    reads.clear()
    assert verdicts(logs, cache=False) == first
    assert len(reads) == 10  # --no-cache reads everything


def _rewrite_same_size(path: Path) -> None:
    """The same bytes count, but the zip's end record gone: an incomplete file."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size - 22)
        fh.write(b"\0" * 22)


def _ns(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_atime_ns, st.st_mtime_ns


def _rewritten_same_size_new_mtime(g: Path) -> None:
    st = g.stat()
    _rewrite_same_size(g)
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _touched_back_to_its_old_mtime(g: Path) -> None:
    """Same size, same mtime (set back with utime): only the ctime tells."""
    old = _ns(g)
    _rewrite_same_size(g)
    os.utime(g, ns=old)
    assert g.stat().st_mtime_ns == old[1]


def _truncated(g: Path) -> None:
    old = _ns(g)
    with open(g, "r+b") as fh:
        fh.truncate(100)
    os.utime(g, ns=old)


def _replaced_by_rename(g: Path) -> None:
    """Another file of the same size and mtime renamed over it: the inode tells."""
    st = g.stat()
    new = g.with_name("incoming.tmp")
    new.write_bytes(g.read_bytes())
    _rewrite_same_size(new)
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(new, g)


@pytest.mark.parametrize(
    "change",
    [_rewritten_same_size_new_mtime, _touched_back_to_its_old_mtime, _truncated,
     _replaced_by_rename],
    ids=["rewritten-in-place-same-size", "touched-back-to-old-mtime", "truncated",
         "replaced-by-rename"],
)  # fmt: skip
def test_a_changed_file_is_read_again(logs, reads, no_racy, change):
    verdicts(logs)
    change(logs / "alice" / "G_200.pth")
    reads.clear()
    after = verdicts(logs)
    assert after["G_200.pth"] is False and sum(after.values()) == 9
    assert set(reads) == {"G_200.pth"}  # only the changed file (twice: no end record)


def test_a_file_written_as_the_scan_begins_is_read_again(logs, reads):
    """git's racy case: a change within the timestamp granularity of the scan could keep the
    key; such files are not stored, so the next scan reads them."""
    verdicts(logs)  # every file was written moments ago: all racy
    reads.clear()
    verdicts(logs)
    assert len(reads) == 10


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"\x00garbage" * 10,  # not a cache
        lambda b: b[: len(b) // 2],  # torn
        lambda b: b"janitor-verdicts/0\n" + b[len(MAGIC) :],  # another version
        lambda b: b[:-3] + b"\xff\xff\xff",  # verdict indexes out of range
        lambda b: b"",
    ],
    ids=["garbage", "truncated", "foreign-version", "bad-index", "empty"],
)
def test_a_damaged_cache_means_read_again(logs, reads, no_racy, damage):
    good = verdicts(logs)
    path = cache_file(logs)
    path.write_bytes(damage(path.read_bytes()))
    reads.clear()
    assert verdicts(logs) == good
    assert len(reads) >= 2  # at least the damaged folder was read again
    assert path.read_bytes().startswith(MAGIC)  # and the cache was written afresh
    reads.clear()
    assert verdicts(logs) == good and reads == []


def test_the_cache_is_used_and_no_cache_bypasses_it(logs, no_racy, cli):
    """A forged cache entry (same key, wrong verdict) shows that scan trusts the key, and
    that --no-cache neither reads nor rewrites the cache."""
    verdicts(logs)
    path = cache_file(logs)
    cache = VerdictCache(LOCAL, str(path.parent))
    cached = cache.folder("alice")
    forged = [
        (name, key, ZipCheck(False, "forged") if name == "G_100.pth" else v, False)
        for (name, key), v in zip(cached.keys.items(), cached.verdicts.values(), strict=True)
    ]
    cache.record("alice", 0, forged, lambda: forged)
    assert cache.save()
    data = path.read_bytes()
    assert "G_100.pth: forged" in cli("scan", logs).output
    result = cli("scan", logs, "--no-cache")  # text: reads only what its lines decide
    assert "forged" not in result.output and "3 (1 complete, 2 not checked)" in result.output
    result = cli("scan", logs, "--no-cache", "--json")  # every file read, none from the cache
    assert "forged" not in result.output and '"complete": false' not in result.output
    assert path.read_bytes() == data


class ReadOnly:
    """The local disk, with every write refused as on a read-only mount."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def __getattr__(self, name):
        return getattr(LOCAL, name)

    def _refuse(self, path, *args, **kw):
        self.refused.append(path)
        raise OSError(errno.EROFS, "Read-only file system", path)

    makedirs = write_atomic = _refuse


def test_a_read_only_logs_root_is_scanned_without_a_cache(logs, no_racy):
    fs = ReadOnly()
    report = scan([str(logs)], fs=fs)
    assert {f.name: f.complete for r in report.runs for f in r.files} == verdicts(logs, cache=False)
    assert not report.errors
    assert fs.refused  # it tried, was refused, and said nothing
    assert not cache_file(logs).exists()


@pytest.mark.slow
def test_a_read_only_logs_root_from_the_command_line(logs, tmp_path):
    from tests.conftest import can_drop_privileges, run_janitor

    if not can_drop_privileges():
        pytest.skip("needs setpriv to drop root's permission override")
    old = 1_600_000_000
    for p in logs.rglob("*.pth"):
        os.utime(p, (old, old))
    logs.chmod(0o555)
    try:
        result = run_janitor("scan", logs, unprivileged=True)
    finally:
        logs.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "2 runs, 5 sets" in result.stdout
    assert not (logs / ".janitor").exists()


def _scan_rounds(root: str, rounds: int) -> None:
    for _ in range(rounds):
        scan([root])


def test_two_janitors_writing_the_cache_at_once(tmp_path, no_racy):
    root = tmp_path / "logs"
    for i in range(12):
        fake_run(root, f"run{i}", range(1, 21), payload=16)
    ctx = multiprocessing.get_context("fork")  # the children keep the no_racy patch
    for round_ in range(3):
        fake_ckpt(root / "run0" / f"G_{100 + round_}.pth", payload=16)  # a change each round
        procs = [ctx.Process(target=_scan_rounds, args=(str(root), 3)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
    state = Path(layout.state_dir_of_root(str(root)))
    assert sorted(os.listdir(state)) == ["verdicts.cache"]  # no temp file left behind
    cache = VerdictCache(LOCAL, str(state))
    assert not cache.dirty and len(cache.sections) == 12  # one whole, valid file
    truth = verdicts(root, cache=False)
    assert verdicts(root) == truth and all(truth.values())


def test_the_executor_rechecks_by_stat_not_by_reading(logs, reads, no_racy):
    [alice] = [r for r in scan([str(logs)]).runs if r.name == "alice"]
    rp = plan_run(alice, parse_overrides(keep_last=1))
    assert len(rp.removals) == 2
    reads.clear()
    result = Executor().execute(rp)
    assert reads == []  # nothing changed since planning: nothing read under the lock
    assert len(result.removed) == 4


def test_the_executor_leaves_a_set_touched_back_to_its_old_mtime(logs, reads):
    [alice] = [r for r in scan([str(logs)]).runs if r.name == "alice"]
    rp = plan_run(alice, parse_overrides(keep_last=1))
    d = logs / "alice" / "D_100.pth"
    old = _ns(d)
    d.write_bytes(d.read_bytes())  # rewritten, same bytes, same size
    os.utime(d, ns=old)
    reads.clear()
    result = Executor().execute(rp)
    assert set(reads) == {"D_100.pth"}  # only the changed file is read again
    assert [r.path for r in result.removed] == [
        str(logs / "alice" / "D_200.pth"),
        str(logs / "alice" / "G_200.pth"),
    ]
    assert any("D_100.pth changed since planning" in s for s in result.skipped)
    assert d.exists() and (logs / "alice" / "G_100.pth").exists()
