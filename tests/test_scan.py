"""Discovery and `janitor scan`: runs, sets, completeness, odd names, errors, JSON shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from fixtures.gen import write_run
from janitor.domain.errors import JanitorError, UsageError
from janitor.storage.completeness import check_file
from janitor.storage.fs import LOCAL
from janitor.storage.scan import scan
from tests.conftest import REPO, can_drop_privileges, fake_ckpt, fake_run, run_janitor, truncate

SCHEMA = json.loads((REPO / "docs" / "scan.schema.json").read_text())


@pytest.fixture(scope="module")
def alice(tmp_path_factory) -> Path:
    """The acceptance layout: an Applio run with steps 100..300 and a truncated G_400.pth."""
    logs = tmp_path_factory.mktemp("accept") / "logs"
    write_run(logs, "alice", steps=(100, 200, 300), truncated=[("G", 400)], small_models=(200,))
    return logs


def test_acceptance_run_is_reported_exactly(alice):
    report = scan([str(alice)])
    assert len(report.runs) == 1
    run = report.runs[0]
    assert run.name == "alice" and run.trainer == "applio"
    assert [s.number for s in run.sets] == [100, 200, 300, 400]
    assert [s.status for s in run.sets] == ["complete"] * 3 + ["incomplete"]
    assert run.newest_complete.number == 300
    assert [f.name for f in run.incomplete_files] == ["G_400.pth"]
    big = [p for p in (alice / "alice").iterdir() if p.name[:2] in ("G_", "D_")]
    assert run.big_bytes == sum(p.stat().st_size for p in big)
    small = (alice / "alice" / "alice_2e_200s.pth").stat().st_size
    assert run.small_bytes == small and run.small_models[0].step == 200


def test_scan_json_matches_schema_and_numbers(alice, cli):
    result = cli("scan", alice, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    jsonschema.validate(doc, SCHEMA)
    (run,) = doc["runs"]
    assert run["complete_sets"] == 3
    assert run["newest_complete_step"] == 300 and run["newest_step"] == 400
    assert [f["name"] for f in run["incomplete_files"]] == ["G_400.pth"]
    sizes = {p.name: p.stat().st_size for p in (alice / "alice").iterdir()}
    assert run["big_bytes"] == sum(v for k, v in sizes.items() if k[:2] in ("G_", "D_"))
    # keep-last 1 frees steps 100 and 200 (G and D): the truncated G_400 is never a candidate
    frees = sum(sizes[f"{p}_{s}.pth"] for p in "GD" for s in (100, 200))
    assert run["keep_last_1_frees"] == frees == doc["totals"]["keep_last_1_frees"]
    assert {w["code"] for w in run["warnings"]} == {"incomplete-newest", "g-d-mismatch"}


def test_scan_text(alice, cli):
    # --no-cache: the module's earlier scans leave a verdict cache, trusted or not by the racy
    # timestamp rule depending on how long ago they ran; this test is about a lazy cold read
    result = cli("scan", alice, "--no-cache")
    assert result.exit_code == 0
    out = result.output
    assert "alice" in out and "[Applio: model_info.json present]" in out
    # read from the newest down to the newest complete set; 100 and 200 decide nothing here
    assert "4 (1 complete, 2 not checked), steps 100..400" in out
    assert "newest complete step 300" in out
    assert "prune would free up to " in out and " under keep-last 1 (not checked: " in out
    assert "G_400.pth: truncated" in out
    assert "warning: G_400.pth is what the trainer resumes from" in out
    assert out.strip().splitlines()[-1].startswith("1 run, 4 sets; big checkpoints ")


def test_completeness_reads_only_the_tail(tmp_path):
    path = fake_ckpt(tmp_path / "G_1.pth", payload=1 << 20)
    reads = []

    class Spy(type(LOCAL)):
        def read_ends(self, p, head, tail):
            reads.append(head + tail)
            return super().read_ends(p, head, tail)

    assert check_file(Spy(), str(path)).complete
    assert sum(reads) < 1024  # of a 1 MiB file


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: truncate(p, 0.5), "truncated"),
        (lambda p: truncate(p, 0.999), "truncated"),
        (lambda p: truncate(p, 0.0), "empty file"),
        (lambda p: p.write_bytes(b"not a zip at all, just text " * 10), "truncated"),
        (lambda p: p.write_bytes(b"PK\x05\x06" + b"\0" * 18), "empty zip"),
    ],
)
def test_damaged_files_are_incomplete(tmp_path, damage, problem):
    path = fake_ckpt(tmp_path / "G_1.pth")
    damage(path)
    check = check_file(LOCAL, str(path))
    assert not check.complete and problem in check.problem


def test_a_zip_that_is_not_a_torch_file_is_not_complete(tmp_path):
    import zipfile

    path = tmp_path / "G_5.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    check = check_file(LOCAL, str(path))
    assert not check.complete and "not a torch checkpoint" in check.problem


def test_real_applio_files_are_complete():
    real = REPO / "fixtures" / "applio-real-tiny" / "tiny"
    for name in ("G_100.pth", "G_200.pth", "tiny_1e_100s.pth"):
        assert check_file(LOCAL, str(real / name)).complete


def test_sentinel_prefixes_small_models_and_odd_names(tmp_path):
    run = fake_run(tmp_path, "r", [100, 200])
    fake_ckpt(run / "G_2333333.pth")
    fake_ckpt(run / "D_2333333.pth")
    fake_ckpt(run / "r_2e_200s.pth")
    fake_ckpt(run / "r_e2_s200.pth")
    odd = ["G_best.pth", "G_1000_backup.pth", "G_-1.pth", "G_1e5.pth", "G_100.PTH", "G_0100.pth"]
    for name in odd:
        fake_ckpt(run / name)
    (run / "notes.txt").write_text("hi")
    run_ = scan([str(tmp_path)]).runs[0]
    assert [s.number for s in run_.sets] == [100, 200, 2333333]
    latest = run_.sets[-1]
    assert latest.latest_only and latest.step is None and latest.label == "latest-only (2333333)"
    assert {m.format for m in run_.small_models} == {"applio", "rvc"}
    assert sorted(os.path.basename(i.path) for i in run_.ignored) == sorted(odd)


def test_bert_vits2_runs_group_dur_and_wd_with_their_step(tmp_path):
    run = fake_run(tmp_path, "models", [0, 100, 200], prefixes=("G", "D", "DUR", "WD"))
    (run / "D_200.pth").unlink()
    r = scan([str(run)]).runs[0]
    assert r.trainer == "bert-vits2" and r.trainer_reason == "WD_ / DUR_ files present"
    by = {s.number: s for s in r.sets}
    assert [f.prefix for f in by[100].files] == ["G", "D", "WD", "DUR"]
    assert by[0].base and by[0] not in r.candidates
    assert by[200].status == "partial" and by[200].missing == ("D",)
    assert r.newest_complete.number == 100


def test_sets_are_ordered_by_step_not_mtime(tmp_path):
    run = fake_run(tmp_path, "r", [300, 100, 200])  # mtimes rise in this order
    r = scan([str(run)]).runs[0]
    assert [s.number for s in r.sets] == [100, 200, 300]
    assert r.newest_complete.number == 300


def test_data_and_hidden_folders_are_not_walked_and_nested_runs_found(tmp_path):
    fake_run(tmp_path / "logs", "a", [1])
    fake_ckpt(tmp_path / "logs" / "a" / "sliced_audios" / "G_5.pth")
    fake_ckpt(tmp_path / "logs" / ".janitor" / "trash" / "a" / "G_3.pth")
    fake_run(tmp_path / "logs" / "exp" / "logs_s2_v2", "inner", [7])
    paths = [r.path for r in scan([str(tmp_path)]).runs]
    assert paths == [str(tmp_path / "logs" / "a"), str(tmp_path / "logs/exp/logs_s2_v2/inner")]


def test_symlinks_are_never_followed(tmp_path):
    outside = fake_run(tmp_path / "outside", "victim", [1, 2])
    logs = tmp_path / "logs"
    fake_run(logs, "own", [1, 2])
    (logs / "linked").symlink_to(outside, target_is_directory=True)
    (logs / "own" / "G_3.pth").symlink_to(outside / "G_2.pth")
    (logs / "loop").symlink_to(logs / "loop")
    (logs / "up").symlink_to(logs, target_is_directory=True)
    report = scan([str(logs)])
    assert [r.name for r in report.runs] == ["own"]
    own = report.runs[0]
    assert [s.number for s in own.sets] == [1, 2]
    assert [os.path.basename(i.path) for i in own.ignored] == ["G_3.pth"]


def test_single_file_argument(tmp_path):
    """A file names its set; the run is read whole, so the set is seen as it is (G and D)."""
    run = fake_run(tmp_path, "r", [1, 2])
    r = scan([str(run / "G_2.pth")]).runs[0]
    assert r.selected == {2}
    assert [s.status for s in r.sets if s.number == 2] == ["complete"]


def test_several_files_of_one_run_select_their_sets(tmp_path):
    run = fake_run(tmp_path, "r", [1, 2, 3, 4, 5])
    (r,) = scan([str(run / f"G_{n}.pth") for n in (1, 2, 3)]).runs
    assert r.selected == {1, 2, 3} and len(r.sets) == 5


# ----------------------------------------------------------------- errors


def test_errors_as_library_exceptions(tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        scan([str(tmp_path / "missing")])
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="not a folder or a checkpoint file"):
        scan([str(tmp_path / "config.json")])
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(JanitorError, match="symlink loop"):
        scan([str(tmp_path / "loop")])


def _a_file(d: Path) -> Path:
    (d / "config.json").write_text("{}")
    return d / "config.json"


def _a_loop(d: Path) -> Path:
    (d / "loop").symlink_to(d / "loop")
    return d / "loop"


@pytest.mark.parametrize(
    "make, code, message",
    [
        (lambda d: d / "missing", 2, "no such file or folder"),
        (_a_file, 2, "not a folder"),
        (_a_loop, 1, "symlink loop"),
        (lambda d: d, 0, None),
    ],
    ids=["missing", "file-not-folder", "symlink-loop", "empty"],
)
def test_cli_errors_are_one_line(tmp_path, make, code, message):
    target = make(tmp_path)
    result = run_janitor("scan", target)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    if message:
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr and result.stderr.startswith("janitor: ")
    else:
        assert result.stdout.strip() == "no training runs found"


def test_debug_shows_the_traceback(tmp_path):
    result = run_janitor("--debug", "scan", tmp_path / "missing")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_unreadable_folder_is_reported_and_the_rest_scanned(tmp_path):
    if not can_drop_privileges():
        pytest.skip("setpriv is needed to test permissions as root")
    fake_run(tmp_path, "ok", [1])
    locked = fake_run(tmp_path, "locked", [1])
    locked.chmod(0o000)
    try:
        result = run_janitor("scan", tmp_path, unprivileged=True)
        assert result.returncode == 1
        assert "cannot read folder: permission denied" in result.stdout
        assert "ok" in result.stdout and "Traceback" not in result.stderr
        top = run_janitor("scan", locked, unprivileged=True)
        assert top.returncode == 1 and "permission denied" in top.stdout + top.stderr
    finally:
        locked.chmod(0o755)


# ----------------------------------------------------------------- torch stays out


@pytest.mark.parametrize("args", [["--help"], ["scan", "{logs}"], ["prune", "{logs}", "-n"]])
def test_torch_is_never_imported(alice, args):
    args = [a.format(logs=alice) for a in args]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "janitor", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "janitor.cli" in imported  # the trace is real
    assert not {m for m in imported if m.split(".")[0] in ("torch", "numpy")}


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    for r in range(250):  # ~160 KB of output: more than a pipe buffers, so the write fails
        fake_run(tmp_path / "logs", f"r{r:03d}", [1, 2], payload=16)
    proc = subprocess.Popen(
        [sys.executable, "-m", "janitor", "scan", str(tmp_path / "logs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == ""


# ---------------------------------------------------------------- lazy verdicts (scan's text)


def truncate_in_place(path: Path) -> None:
    """Cut a file short, keeping its mtime (a crash long ago, not a write just now)."""
    st = path.stat()
    truncate(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Names of checkpoint files whose ends were read (lazily, by name)."""
    names: list[str] = []
    real = type(LOCAL).read_ends

    def read_ends(self, path, head, tail):
        names.append(os.path.basename(path))
        return real(self, path, head, tail)

    monkeypatch.setattr(type(LOCAL), "read_ends", read_ends)
    return names


def test_scan_text_reads_from_the_newest_down_and_says_what_it_did_not_check(tmp_path, cli, opened):
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200, 300, 400, 500])  # saved 10 minutes apart
    truncate_in_place(run / "G_100.pth")  # old and broken: no line of the text depends on it
    truncate_in_place(run / "D_500.pth")  # the newest: read, incomplete; 400 is the newest

    out = cli("scan", logs, "--no-cache").output
    assert set(opened) == {"D_400.pth", "D_500.pth", "G_400.pth", "G_500.pth"}
    assert "5 (1 complete, 3 not checked), steps 100..500" in out
    assert "newest complete step 400" in out and "D_500.pth: truncated" in out
    assert "G_100" not in out and "prune would free up to " in out
    assert "(3 sets not checked)" in out.splitlines()[-1]
    doc = json.loads(cli("scan", logs, "--no-cache", "--json").output)  # --json reads all
    assert [f["name"] for f in doc["runs"][0]["incomplete_files"]] == ["G_100.pth", "D_500.pth"]


def test_scan_text_reads_a_set_written_after_the_newest_complete_one(tmp_path, cli, opened):
    """A lower step saved later (left from an earlier run in the folder) decides which set
    is the most recently written and the resume warning: it is read, the rest is not."""
    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200, 300])
    for p in ("G", "D"):
        os.utime(run / f"{p}_100.pth", (1_700_100_000, 1_700_100_000))  # a day after 300
    out = cli("scan", logs, "--no-cache").output
    assert set(opened) == {"D_100.pth", "D_300.pth", "G_100.pth", "G_300.pth"}
    assert "3 (2 complete, 1 not checked)" in out
    assert "warning: G_300.pth is older than G_100.pth" in out


def test_a_plan_on_a_lazy_scan_never_removes_a_set_it_did_not_check(tmp_path):
    """The executor trusts no "not checked" verdict: under the lock it reads those files
    (their stat key is not taken as known) and a set that was not checked when planned is
    left alone, whatever it turns out to be."""
    from janitor.usecases.executor import Executor
    from janitor.usecases.prune import parse_overrides, plan_run

    logs = tmp_path / "logs"
    run_dir = fake_run(logs, "alice", [100, 200, 300])
    truncate_in_place(run_dir / "G_100.pth")
    (run,) = scan([str(logs)], cache=False, lazy=True).runs
    assert [s.status for s in run.sets] == ["unchecked", "unchecked", "complete"]
    rp = plan_run(run, parse_overrides(keep_last=1))
    assert [d.set.number for d in rp.removals] == [100, 200]  # what it would free, at most
    result = Executor().execute(rp)
    assert result.removed == () and len(result.skipped) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        f"{p}_{s}.pth" for s in (100, 200, 300) for p in "DG"
    )
