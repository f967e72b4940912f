"""Runs on object storage (``s3://`` through fsspec) against a real S3 API: moto's server on
127.0.0.1, started by the fixtures (tests/objectstore.py). The same rules and the same
safety as on disk: the newest complete set stays, a truncated object is never newest, a set
goes whole, two janitors never work on one run at once, an object replaced since planning
is left alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import janitor
from fixtures.gen import truncate_file, write_run
from tests.conftest import REPO, janitors_at_once, run_janitor
from tests.test_api import resume_pick

BUCKET_SAFETY = pytest.mark.safety(
    "17. object storage: truncated uploads, replaced objects, two machines, a failing store"
)
SMALL = ["alice_1e_100s.pth", "alice_2e_200s.pth", "alice_3e_300s.pth"]


@pytest.fixture
def alice(tmp_path, bucket):
    """An Applio run (tiny tensors, the trainer's real layout) at s3://<bucket>/logs/alice."""
    local = write_run(
        tmp_path / "src", "alice", steps=(100, 200, 300), small_models=(100, 200, 300)
    )
    bucket.upload(local, "logs/alice")
    return bucket


def _scan_json(cli, url: str) -> dict:
    result = cli("scan", url, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@BUCKET_SAFETY
def test_scan_and_keep_last_on_a_bucket_leave_what_the_trainer_resumes_from(alice, cli, tmp_path):
    doc = _scan_json(cli, alice.url("logs"))
    (run,) = doc["runs"]
    assert run["path"] == alice.url("logs/alice")
    assert doc["file_systems"] == []  # object storage: no file-system figures, no forecast
    assert "disk " not in cli("scan", alice.url("logs")).output
    assert run["newest_complete_step"] == 300
    result = cli("prune", alice.url("logs"), "--keep-last", "1")
    assert result.exit_code == 0, result.output
    assert "s3:/" + "/" in result.output  # paths shown as the URLs they are
    left = [k.split("/")[-1] for k in alice.keys("logs/alice/")]
    assert sorted(n for n in left if n.startswith(("G_", "D_"))) == ["D_300.pth", "G_300.pth"]
    assert set(SMALL) <= set(left)
    copy = alice.download("logs/alice", tmp_path / "down")
    assert (resume_pick(copy, "G"), resume_pick(copy, "D")) == ("G_300.pth", "D_300.pth")
    log = cli("log", alice.url("logs"), "--json")
    assert log.exit_code == 0, log.output
    removed = {Path(r["path"]).name for r in json.loads(log.output)["records"]}
    assert removed == {"G_100.pth", "D_100.pth", "G_200.pth", "D_200.pth"}


@BUCKET_SAFETY
def test_a_truncated_upload_is_never_newest_nor_removed(tmp_path, bucket, cli):
    local = write_run(tmp_path / "src", "alice", steps=(100, 200, 300))
    truncate_file(local / "G_300.pth")
    bucket.upload(local, "logs/alice")
    (run,) = _scan_json(cli, bucket.url("logs"))["runs"]
    assert run["newest_complete_step"] == 200
    result = cli("prune", bucket.url("logs"), "--keep-last", "1")
    assert result.exit_code == 0, result.output
    names = {k.split("/")[-1] for k in bucket.keys("logs/alice/")}
    assert {"G_200.pth", "D_200.pth", "G_300.pth"} <= names  # newest complete + the upload
    assert not names & {"G_100.pth", "D_100.pth"}


def test_an_unfinished_multipart_upload_is_listed_not_a_set(alice, cli):
    up = alice.client.create_multipart_upload(Bucket=alice.name, Key="logs/alice/G_400.pth")
    alice.client.upload_part(Bucket=alice.name, Key="logs/alice/G_400.pth", PartNumber=1,
                             UploadId=up["UploadId"], Body=b"x" * 5000)  # fmt: skip
    doc = _scan_json(cli, alice.url("logs"))
    assert doc["runs"][0]["newest_complete_step"] == 300
    assert [u["path"] for u in doc["unfinished_uploads"]] == [alice.url("logs/alice/G_400.pth")]
    assert doc["unfinished_uploads"][0]["size"] == 5000
    text = cli("scan", alice.url("logs"))
    assert "unfinished upload: " + alice.url("logs/alice/G_400.pth") in text.output
    assert "billed" in text.output


def test_rescanning_an_unchanged_bucket_reads_no_object(alice, s3_proxy, cli):
    # --json: every file's verdict (the text scan reads only what its lines need)
    assert cli("scan", alice.url("logs"), "--json").exit_code == 0
    first = s3_proxy.ranged_gets()
    assert first >= 6  # every checkpoint's ends, once
    s3_proxy.requests.clear()
    assert cli("scan", alice.url("logs"), "--json").exit_code == 0
    assert s3_proxy.ranged_gets() == 0
    assert all(m in ("GET", "HEAD") for m, _, _ in s3_proxy.requests)
    # an object replaced by one of the same size is read again
    data = alice.client.get_object(Bucket=alice.name, Key="logs/alice/G_200.pth")["Body"].read()
    changed = data[:-200] + bytes([data[-200] ^ 1]) + data[-199:]
    alice.client.put_object(Bucket=alice.name, Key="logs/alice/G_200.pth", Body=changed)
    s3_proxy.requests.clear()
    assert cli("scan", alice.url("logs"), "--json").exit_code == 0
    assert s3_proxy.ranged_gets() == 2  # its head and its tail


@BUCKET_SAFETY
def test_an_object_replaced_after_planning_is_left_alone(alice):
    plan = janitor.scan(alice.url("logs")).plan(keep_last=1)
    assert plan.expected_freed_size > 0
    key = "logs/alice/G_100.pth"
    data = alice.client.get_object(Bucket=alice.name, Key=key)["Body"].read()
    mid = len(data) // 2  # inside a tensor: still a complete zip, of the same size
    other = data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1 :]
    alice.client.put_object(Bucket=alice.name, Key=key, Body=other)
    result = plan.execute()
    names = {k.split("/")[-1] for k in alice.keys("logs/alice/")}
    assert "G_200.pth" not in names and "D_200.pth" not in names
    assert {"G_100.pth", "D_100.pth"} <= names  # its set left alone, whole
    (run,) = result.results
    # said either way: its bytes changed since the plan, or (written just now, like a new
    # save) the fresh plan under the lock keeps it
    assert [s for s in run.skipped if s.startswith("step 100") and "left alone" in s]
    assert result.freed_size == run.freed > 0


def _lock_key(bucket) -> str:
    return "logs/.janitor/locks/alice.lock"


@BUCKET_SAFETY
def test_a_run_locked_by_another_machine_is_skipped_and_an_expired_lock_taken_over(alice, cli):
    held = {"owner": "x", "host": "gpu-box", "pid": 4242, "taken": time.time(),
            "expires": time.time() + 600}  # fmt: skip
    alice.client.put_object(Bucket=alice.name, Key=_lock_key(alice), Body=json.dumps(held))
    result = cli("prune", alice.url("logs"), "--keep-last", "1", "--lock-timeout", "0.5")
    assert "another janitor is working on this run" in result.output
    assert "G_100.pth" in {k.split("/")[-1] for k in alice.keys("logs/alice/")}
    held["expires"] = time.time() - 1
    alice.client.put_object(Bucket=alice.name, Key=_lock_key(alice), Body=json.dumps(held))
    proc = run_janitor("prune", alice.url("logs"), "--keep-last", "1", "--lock-timeout", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "took over the expired lock" in proc.stderr and "gpu-box" in proc.stderr
    assert "G_100.pth" not in {k.split("/")[-1] for k in alice.keys("logs/alice/")}
    assert _lock_key(alice) not in alice.keys("logs/.janitor/")  # released


@BUCKET_SAFETY
def test_two_janitors_from_two_processes_never_work_on_one_run_at_once(alice):
    done = janitors_at_once(2, "prune", alice.url("logs"), "--keep-last", "1", "--json")
    assert [rc for rc, _, _ in done] == [0, 0], done
    removed = [
        f["name"] for _, out, _ in done for r in json.loads(out)["runs"] for s in r["sets"]
        if s.get("removed") for f in s["files"]
    ]  # fmt: skip
    assert sorted(removed) == ["D_100.pth", "D_200.pth", "G_100.pth", "G_200.pth"]  # once each


@BUCKET_SAFETY
def test_trash_on_a_bucket_is_a_copy_and_restore_brings_the_set_back(alice, cli):
    result = cli("prune", alice.url("logs"), "--keep-last", "1", "--trash")
    assert result.exit_code == 0, result.output
    trash = alice.keys("logs/.janitor/trash/alice/")
    assert sorted(k.split("/")[-1] for k in trash) == ["D_100.pth", "D_200.pth", "G_100.pth",
                                                       "G_200.pth"]  # fmt: skip
    listed = cli("trash", "list", alice.url("logs"), "--json")
    assert listed.exit_code == 0, listed.output
    restored = cli("restore", alice.url("logs/alice"), "200")
    assert restored.exit_code == 0, restored.output
    names = {k.split("/")[-1] for k in alice.keys("logs/alice/")}
    assert {"G_200.pth", "D_200.pth"} <= names and "G_100.pth" not in names
    emptied = cli("trash", "empty", alice.url("logs"))
    assert emptied.exit_code == 0, emptied.output
    assert alice.keys("logs/.janitor/trash/") == []


def test_pins_on_a_bucket_protect(alice, cli):
    assert cli("pin", alice.url("logs/alice"), "100").exit_code == 0
    assert "logs/alice/janitor.toml" in alice.keys("logs/alice/")
    assert cli("prune", alice.url("logs"), "--keep-last", "1").exit_code == 0
    names = {k.split("/")[-1] for k in alice.keys("logs/alice/")}
    assert {"G_100.pth", "D_100.pth", "G_300.pth"} <= names and "G_200.pth" not in names
    assert cli("unpin", alice.url("logs/alice"), "100").exit_code == 0


@BUCKET_SAFETY
def test_a_versioned_bucket_says_so_and_purges_only_what_janitor_removed(alice, cli):
    alice.client.put_bucket_versioning(
        Bucket=alice.name, VersioningConfiguration={"Status": "Enabled"}
    )
    config = "logs/alice/config.json"
    body = alice.client.get_object(Bucket=alice.name, Key=config)["Body"].read()
    alice.client.put_object(Bucket=alice.name, Key=config, Body=body)  # an old version of it
    result = cli("prune", alice.url("logs"), "--keep-last", "2")
    assert result.exit_code == 0, result.output
    assert "versioned" in result.output and "still" in result.output
    versions = alice.client.list_object_versions(Bucket=alice.name, Prefix="logs/alice/G_100")
    assert versions.get("Versions")  # deleted, but billed
    result = cli("prune", alice.url("logs"), "--keep-last", "1", "--purge-versions")
    assert result.exit_code == 0, result.output
    assert "deleted 2 noncurrent versions" in result.output
    for key in ("G_200", "D_200"):  # the old versions of what this prune removed: gone
        out = alice.client.list_object_versions(Bucket=alice.name, Prefix=f"logs/alice/{key}")
        assert not out.get("Versions") and not out.get("DeleteMarkers"), key
    for key, versions in (("G_100", 1), ("config.json", 2), ("G_300", 1)):  # nothing else
        out = alice.client.list_object_versions(Bucket=alice.name, Prefix=f"logs/alice/{key}")
        assert len(out["Versions"]) == versions, key


def test_a_missing_bucket_and_missing_credentials_are_one_line(s3_endpoint, tmp_path):
    proc = run_janitor("scan", "s3://no-such-bucket-here/logs")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "s3://no-such-bucket-here/logs" in proc.stderr and "Traceback" not in proc.stderr
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    proc = run_janitor("scan", "s3://no-such-bucket-here/logs", env=env)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert "credentials" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_backend_names_the_extra():
    code = (
        "import sys; sys.modules['gcsfs'] = None\n"
        "from janitor.cli.app import main; sys.argv = ['janitor', 'scan', 'gs://b/logs']; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'vits-janitor[gcs]'" in proc.stderr and proc.stderr.count("\n") == 1


@BUCKET_SAFETY
def test_server_errors_are_retried_and_a_failing_run_does_not_stop_the_others(
    tmp_path, bucket, s3_proxy, cli
):
    for name in ("alice", "bob"):
        bucket.upload(write_run(tmp_path / "src", name, steps=(100, 200)), f"logs/{name}")
    s3_proxy.fail(lambda m, p: m == "GET" and "/logs/alice/" in p, 503, times=2)  # throttled
    s3_proxy.fail(lambda m, p: m == "DELETE" and "/logs/bob/" in p, 500)  # bob always fails
    result = cli("prune", bucket.url("logs"), "--keep-last", "1")
    assert result.exit_code == 1, result.output
    alice = {k.split("/")[-1] for k in bucket.keys("logs/alice/")}
    assert "G_100.pth" not in alice and "G_200.pth" in alice
    bob = {k.split("/")[-1] for k in bucket.keys("logs/bob/")}
    assert {"G_100.pth", "G_200.pth"} <= bob
    assert "error" in result.output.lower() and "bob" in result.output


def _wait_for(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_watch_polls_a_bucket_and_prunes_as_sets_arrive(tmp_path, bucket):
    from janitor.domain.policy import Overrides
    from janitor.storage.locate import resolve
    from janitor.usecases.executor import Executor
    from janitor.usecases.watch import Watcher

    local = write_run(tmp_path / "src", "alice", steps=(100, 200, 300, 400))
    names = ("G_{}.pth", "D_{}.pth")
    for name in names:  # the first set is there when the watch starts
        bucket.client.upload_file(str(local / name.format(100)), bucket.name,
                                  f"logs/alice/{name.format(100)}")  # fmt: skip
    fs, root = resolve(bucket.url("logs"))
    records: list[dict] = []
    watcher = Watcher([root], Overrides(keep_last=1), poll=0.3, settle=0.5, fs=fs,
                      executor=Executor(fs), log=records.append)  # fmt: skip
    watcher.start()
    try:
        for step in (200, 300, 400):  # the trainer (or a sync tool) uploads set after set
            for name in names:
                bucket.client.upload_file(str(local / name.format(step)), bucket.name,
                                          f"logs/alice/{name.format(step)}")  # fmt: skip
            time.sleep(0.4)

        def only_newest() -> bool:
            ckpts = [k for k in bucket.keys("logs/alice/") if k.split("/")[-1][:2] in ("G_", "D_")]
            return sorted(k.split("/")[-1] for k in ckpts) == ["D_400.pth", "G_400.pth"]

        assert _wait_for(only_newest, 20), bucket.keys("logs/alice/")
    finally:
        watcher.stop()
    assert records[0]["mode"] == "polling every 0.3 s"
    assert not [r for r in records if r["event"] == "error"], records


def test_keep_every_and_keep_best_on_a_bucket(tmp_path, bucket, cli):
    steps = (100, 200, 300, 400, 500, 600)
    values = (9.0, 3.0, 7.0, 8.0, 6.0, 5.0)
    loss = {"loss/g/total": list(zip(steps, values, strict=True))}
    bucket.upload(write_run(tmp_path / "src", "alice", steps=steps, metrics=loss), "logs/alice")
    result = cli("prune", bucket.url("logs"), "--keep-last", "1", "--keep-every", "300",
                 "--keep-best", "1", "--metric", "loss/g/total")  # fmt: skip
    assert result.exit_code == 0, result.output
    left = {k.split("/")[-1] for k in bucket.keys("logs/alice/")}
    kept = sorted(int(n[2:-4]) for n in left if n.startswith("G_"))
    assert kept == [200, 300, 600]  # best (3.0), the milestone, the newest


def test_a_scan_lists_a_bucket_once_not_folder_by_folder(tmp_path, bucket, s3_proxy, cli):
    from tests.conftest import fake_run

    for i in range(6):
        bucket.upload(fake_run(tmp_path / "src", f"run{i}", [100, 200, 300]), f"logs/run{i}")
    assert cli("scan", bucket.url("logs")).exit_code == 0  # reads each object's ends once
    s3_proxy.requests.clear()
    result = cli("scan", bucket.url("logs"))
    assert result.exit_code == 0 and "6 runs, 18 sets" in result.output, result.output
    listings = [p for m, p, _ in s3_proxy.requests if m == "GET" and "list-type=2" in p]
    assert len(listings) <= 3, listings  # the root's one recursive listing (+ the cache's)
    assert len(s3_proxy.requests) <= 10, s3_proxy.requests  # not a few per run


def test_extract_small_from_a_bucket_equals_local_and_reads_only_the_model(
    tmp_path, bucket, s3_proxy, cli
):
    local = write_run(tmp_path / "src", "alice", steps=(100, 200, 300))
    g = local / "G_300.pth"
    bucket.upload(local, "logs/alice")
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    here = cli("extract-small", g, "-o", tmp_path / "local")
    assert here.exit_code == 0, here.output
    s3_proxy.requests.clear()
    s3_proxy.served.clear()
    there = cli("extract-small", bucket.url("logs/alice/G_300.pth"), "-o", tmp_path / "remote")
    assert there.exit_code == 0, there.output
    (a,) = (tmp_path / "local").iterdir()
    (b,) = (tmp_path / "remote").iterdir()
    assert a.name == b.name
    mine, theirs = (torch.load(p, weights_only=True) for p in (a, b))
    assert mine.pop("creation_date") != "" and theirs.pop("creation_date") != ""  # the clock
    assert mine.keys() == theirs.keys() and all(
        torch.equal(mine["weight"][k], theirs["weight"][k]) for k in mine["weight"]
    )
    assert {k: v for k, v in mine.items() if k != "weight"} == {
        k: v for k, v in theirs.items() if k != "weight"
    }
    # none of the optimizer's tensor data came over the wire (tiny tensors: most of this file
    # is zip records; the 0.4x of a full-size G is measured by make bench, 2c and 7c)
    optimizer = torch.load(g, weights_only=True)["optimizer"]["state"]
    opt_bytes = sum(t.numel() * t.element_size() for st in optimizer.values()
                    for t in st.values() if isinstance(t, torch.Tensor))  # fmt: skip
    fetched = s3_proxy.served[f"/{bucket.name}/logs/alice/G_300.pth"]
    assert opt_bytes > 100_000 and fetched <= g.stat().st_size - opt_bytes, (fetched, opt_bytes)
    assert all(r for m, p, r in s3_proxy.requests if m == "GET" and "G_300" in p)  # ranged only


def test_finalize_on_a_bucket_verifies_the_small_model_then_removes_the_big_files(alice, cli):
    result = cli("finalize", alice.url("logs/alice"), "--force", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    (kept,) = doc["runs"][0]["kept"]
    assert kept["small_model"] == alice.url("logs/alice/alice_3e_300s.pth")
    assert kept["verified"] and kept["problems"] == []  # tensor by tensor against G_300
    assert doc["runs"][0]["freed"] == doc["runs"][0]["expected_freed"] > 0
    left = {k.split("/")[-1] for k in alice.keys("logs/alice/")}
    assert not [n for n in left if n.startswith(("G_", "D_"))]
    assert "alice_3e_300s.pth" in left  # the newest step's small model, verified against G_300


def test_wrong_credentials_are_one_line(alice, cli, monkeypatch):
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks keys
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    result = cli("prune", alice.url("logs"), "--keep-last", "1")
    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "credentials" in result.output, result.output
    monkeypatch.undo()
    assert "G_100.pth" in {k.split("/")[-1] for k in alice.keys("logs/alice/")}


def test_hf_checkpoint_folders_on_a_bucket_go_whole_and_the_trash_brings_one_back(
    tmp_path, bucket, cli
):
    from tests.framework_runs import fake_hf_checkpoint

    out = tmp_path / "src" / "hf"
    for i, step in enumerate((10, 20, 30)):
        fake_hf_checkpoint(out, step, mtime=1_700_000_000 + 600 * i)
    bucket.upload(out, "logs/hf")
    result = cli("prune", bucket.url("logs"), "--keep-last", "1", "--trash")
    assert result.exit_code == 0, result.output
    left = {k.split("/")[2] for k in bucket.keys("logs/hf/")}
    assert left == {"checkpoint-30"}  # the others went whole, nothing of them left behind
    trashed = {"/".join(k.split("/")[4:6]) for k in bucket.keys("logs/.janitor/trash/hf/")}
    names = {"config.json", "model.safetensors", "optimizer.pt", "rng_state.pth",
             "scheduler.pt", "trainer_state.json", "training_args.bin"}  # fmt: skip
    assert trashed == {f"checkpoint-{step}/{n}" for step in (10, 20) for n in names}
    restored = cli("restore", bucket.url("logs/hf"), "20")
    assert restored.exit_code == 0, restored.output
    assert {k.split("/")[2] for k in bucket.keys("logs/hf/")} == {"checkpoint-20", "checkpoint-30"}
    assert len(bucket.keys("logs/hf/checkpoint-20/")) == 7
