"""The two edges make the same calls: each command run as users run it (``python -m janitor
... --json``, its own process) on one copy of a tree, and through the Python API on another
copy, gives the same plans, results, trees after, and errors (equal once the flag names are
swapped for the keyword names: ``--idle`` is ``idle argument``)."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import torch

import janitor
from fixtures.gen import write_run
from janitor.domain.errors import UsageError
from tests import framework_runs as fr
from tests.conftest import REPO, fake_ckpt, fake_run, run_janitor

OLD = 1_600_000_000.0


def cli_json(*args) -> tuple[int, dict, str]:
    """janitor in its own process with --json: exit code, the document, stderr."""
    r = run_janitor(*args, "--json")
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}, r.stderr


def cli_error(*args) -> str:
    """The one error line of a janitor run, without the ``janitor: `` prefix."""
    r = run_janitor(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    (line,) = r.stderr.strip().splitlines()
    return line.removeprefix("janitor: ")


def as_keywords(message: str) -> str:
    """A command-line error worded as the API words it: ``--keep-best`` -> ``keep_best
    argument``."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m[1].replace("-", "_") + " argument", message)


def api_error(fn, *args, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def tree(root: Path) -> dict[str, int]:
    """Every file below ``root`` (janitor's own state aside) and its size."""
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".janitor" not in p.parts
    }


def relative(doc, root: Path):
    """A JSON document with the paths below ``root`` made relative (two copies compare)."""
    text = json.dumps(doc).replace(str(root) + "/", "").replace(str(root), ".")
    return json.loads(text)


def plan_rows(runs, root: Path) -> dict[str, list]:
    return {
        os.path.relpath(rp.run.path, root): [
            (d.set.number, "keep" if d.keep else "remove", list(d.reasons)) for d in rp.decisions
        ]
        for rp in runs
    }


def json_plan_rows(doc_runs, root: Path) -> dict[str, list]:
    return {
        os.path.relpath(r["path"], root): [
            (s["number"], s["action"], s["reasons"]) for s in r["sets"]
        ]
        for r in doc_runs
    }


def two_copies(template: Path, tmp_path: Path) -> tuple[Path, Path]:
    return tuple(
        Path(shutil.copytree(template, tmp_path / side / template.name, symlinks=True))
        for side in ("cli", "api")
    )


# ------------------------------------------------------------------ scan, prune


@pytest.fixture(scope="module")
def prune_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prune") / "logs"
    fake_run(root, "alice", [100, 200, 300, 400, 500, 600])
    run = fake_run(root, "bob", [1000, 2000, 3000], start=1_700_100_000.0)
    (run / "janitor.toml").write_text("pins = [1000]\n[prune]\nkeep-last = 2\n")
    for p in "GD":  # an old latest-only file: the trainer would resume from it
        fake_ckpt(run / f"{p}_2333333.pth", mtime=OLD)
    return root


@pytest.fixture
def logs(prune_template, tmp_path) -> tuple[Path, Path]:
    return two_copies(prune_template, tmp_path)


def test_scan_the_same_runs_and_sets(logs):
    cli_logs, api_logs = logs
    code, doc, _ = cli_json("scan", cli_logs)
    report = janitor.scan(api_logs)
    assert code == 0
    cli_runs = {
        os.path.relpath(r["path"], cli_logs): [(s["number"], s["status"]) for s in r["sets"]]
        for r in doc["runs"]
    }
    api_runs = {
        os.path.relpath(r.path, api_logs): [(s.number, s.status) for s in r.sets]
        for r in report.runs
    }
    assert cli_runs == api_runs and set(api_runs) == {"alice", "bob"}


def test_scan_takes_a_list_of_paths_or_path_likes(logs):
    _, api_logs = logs
    both = janitor.scan([str(api_logs / "alice"), api_logs / "bob"])
    assert [r.name for r in both.runs] == ["alice", "bob"]
    assert both.runs == janitor.scan(api_logs / "alice", str(api_logs / "bob")).runs
    assert janitor.scan(p for p in [api_logs]).runs == janitor.scan(api_logs).runs


@pytest.mark.parametrize("bad", [3, [3], b"logs", [], None])
def test_scan_refuses_what_is_not_a_path_naming_the_argument(bad):
    message = api_error(janitor.scan, bad)
    assert message.startswith("paths argument: ") and "no such file" not in message


PRUNE_CASES = [
    {},
    {"keep_last": 2},
    {"max_size": "20kB"},
    {"keep_every": 200, "trash": True},
    {"fix_resume": True},
    {"fix_resume": True, "dry_run": True},
    {"fix_resume": True, "keep_last": 3, "trash": True},
]


def flags(options: dict) -> list[str]:
    args = []
    for k, v in options.items():
        args += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return args


@pytest.mark.parametrize("options", PRUNE_CASES)
def test_prune_the_same_plan_result_and_tree(logs, options):
    cli_logs, api_logs = logs
    code, doc, err = cli_json("prune", cli_logs, *flags(options))
    outcome = janitor.prune(api_logs, **options)
    assert code == 0, err
    assert json_plan_rows(doc["runs"], cli_logs) == plan_rows(outcome.plan.runs, api_logs)
    moved = doc["expected_freed"] + doc["expected_trashed"]
    assert moved == outcome.plan.expected_freed > 0
    if not options.get("dry_run"):
        assert doc["freed"] == outcome.execution.freed
        assert doc["trashed"] == outcome.execution.trashed
    if options.get("fix_resume"):
        fixes = json_plan_rows(doc["fix_resume"], cli_logs)
        assert fixes == plan_rows(outcome.fixed.runs, api_logs)
        assert [n for n, action, _ in fixes["bob"] if action == "remove"] == [2333333]
        moved = not options.get("dry_run")
        assert (outcome.moved is not None) is moved
    else:
        assert outcome.fixed is None and "fix_resume" not in doc
    assert tree(cli_logs) == tree(api_logs) != {}
    trash = [".janitor/trash" in "/".join(p.parts) for p in api_logs.rglob("*.pth")]
    assert any(trash) == bool(options.get("trash") or options.get("fix_resume")) - bool(
        options.get("dry_run")
    )


@pytest.mark.parametrize(
    ("args", "keywords"),
    [
        (["--older-than", "1d"], {"older_than": "1d"}),
        (["--remove-incomplete"], {"remove_incomplete": True}),
        (["--keep-within", "3"], {"keep_within": "3"}),
        (["--max-size", "lots"], {"max_size": "lots"}),
        (["--trainer", "nobody"], {"trainer": "nobody"}),
    ],
)
def test_prune_errors_are_the_same_worded_by_flag_or_keyword(logs, args, keywords):
    cli_logs, api_logs = logs
    message = cli_error("prune", cli_logs, *args)
    assert as_keywords(message).replace(str(cli_logs), str(api_logs)) == api_error(
        janitor.prune, api_logs, **keywords
    )
    assert tree(cli_logs) == tree(api_logs)


@pytest.mark.parametrize(
    ("keywords", "words"),
    [
        ({"dry_run": "yes"}, "dry_run argument: must be True or False, got 'yes'"),
        ({"trash": 1}, "trash argument: must be True or False, got 1"),
        ({"lock_timeout": "5"}, "lock_timeout argument: must be a number of seconds"),
        ({"keep_everything": True}, "keep_everything argument: no such option of prune"),
    ],
)
def test_prune_keywords_take_python_values(logs, keywords, words):
    assert api_error(janitor.prune, logs[1], **keywords).startswith(words)


def test_a_versioned_bucket_warning_and_purge_come_from_the_use_case(bucket, tmp_path):
    """--purge-versions and the warning about the versions left were the command line's."""
    bucket.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    for side in ("cli", "api"):
        local = fake_run(tmp_path / side, "alice", [100, 200, 300])
        bucket.upload(local, f"{side}/alice")
    r = run_janitor("prune", bucket.url("cli"), "--keep-last", "2")
    outcome = janitor.prune(bucket.url("api"), keep_last=2)
    assert r.returncode == 0, r.stderr
    (warning,) = outcome.warnings
    assert "the bucket is versioned" in warning
    assert f"janitor: warning: {warning}".replace(bucket.url("api"), bucket.url("cli")) in r.stderr
    outcome = janitor.prune(bucket.url("api"), keep_last=1, purge_versions=True)
    assert outcome.warnings == () and outcome.execution.freed > 0
    for key in ("G_200", "D_200"):  # the old versions of what this prune removed: gone
        out = bucket.client.list_object_versions(Bucket=bucket.name, Prefix=f"api/alice/{key}")
        assert not out.get("Versions") and not out.get("DeleteMarkers"), key
    out = bucket.client.list_object_versions(Bucket=bucket.name, Prefix="api/alice/G_100")
    assert out.get("Versions")  # removed by the first prune, without purge: still billed


# ------------------------------------------------------------------ finalize


@pytest.fixture(scope="module")
def final_template(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("final") / "logs"
    loss = [(s, 40.0 - s / 100 + (0 if s != 200 else -10)) for s in range(100, 500, 100)]
    write_run(logs, "alice", steps=range(100, 500, 100), small_models=(200,),
              metrics={"loss/g/total": loss}, mtime_start=OLD)  # fmt: skip
    for p in (logs / "alice").rglob("*"):
        os.utime(p, (OLD, OLD))
    return logs


@pytest.fixture
def final_logs(final_template, tmp_path) -> tuple[Path, Path]:
    return two_copies(final_template, tmp_path)


@pytest.mark.parametrize(
    "options",
    [
        {"dry_run": True},
        {"keep_best": 1, "metric": "loss/g/total", "steps": [300]},
        {"trash": True, "idle": timedelta(days=1)},
    ],
)
def test_finalize_the_same_kept_models_and_tree(final_logs, options):
    cli_logs, api_logs = final_logs
    args = flags({k: v for k, v in options.items() if k not in ("steps", "idle")})
    if "steps" in options:
        args += ["--steps", ",".join(map(str, options["steps"]))]
    if "idle" in options:
        args += ["--idle", "1d"]
    code, doc, err = cli_json("finalize", cli_logs, *args)
    finals = janitor.finalize(api_logs, **options)
    assert code == 0, err
    (run,) = doc["runs"]
    (final,) = finals
    assert [(k["step"], k["reasons"], k["action"], k["verified"]) for k in run["kept"]] == [
        (k.step, [k.why], k.action, not k.problems and k.action != "extract") for k in final.kept
    ]
    assert run["expected_freed"] == final.expected_freed > 0
    assert [os.path.relpath(p, cli_logs) for p in run["remove"]] == [
        os.path.relpath(f.path, api_logs) for d in final.plan.removals for f in d.set.files
    ]
    assert tree(cli_logs) == tree(api_logs)


@pytest.mark.parametrize(
    ("args", "keywords"),
    [
        (["--idle", "5"], {"idle": "5"}),
        (["--keep-best", "1"], {"keep_best": 1}),
        (["--mode", "middle"], {"mode": "middle"}),
        (["--idle", "1 fortnight"], {"idle": "1 fortnight"}),
    ],
)
def test_finalize_errors_are_the_same_worded_by_flag_or_keyword(final_logs, args, keywords):
    cli_logs, api_logs = final_logs
    message = cli_error("finalize", cli_logs, *args)
    assert as_keywords(message) == api_error(janitor.finalize, api_logs, **keywords)
    assert tree(cli_logs) == tree(api_logs)


def test_finalize_counts_are_ints_in_python(final_logs):
    message = api_error(janitor.finalize, final_logs[1], keep_best="2", metric="loss/g/total")
    assert message == "keep_best argument: must be a whole number (int), got '2'"


# ------------------------------------------------------------------ extract-small, info


def small_state(path: Path) -> dict:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in obj.items() if k != "creation_date"}


def without_dates(docs: list[dict]) -> list[dict]:
    """info documents without what differs between two writes (the creation date, and the
    hash Applio makes of the model with it)."""
    for doc in docs:
        for key in ("creation_date", "model_hash"):
            doc.get("metadata", {}).pop(key, None)
    return docs


def same_small(a: Path, b: Path) -> None:
    x, y = small_state(a), small_state(b)
    assert list(x) == list(y)
    for key in x:
        if isinstance(x[key], dict):
            assert list(x[key]) == list(y[key])
            assert all(torch.equal(x[key][k], y[key][k]) for k in x[key])
        else:
            assert x[key] == y[key], key


@pytest.fixture(scope="module")
def vits_template(tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("vits") / "logs"
    write_run(logs, "alice", steps=(100, 200))
    return logs


@pytest.fixture(scope="module")
def applio_template(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("applio") / "logs" / "tiny"
    run.mkdir(parents=True)
    real = REPO / "fixtures" / "applio-real-tiny" / "tiny"
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(real / name, run / name)
    return run.parent


@pytest.mark.parametrize(
    ("template", "g", "args", "keywords"),
    [
        ("vits_template", "alice/G_200.pth", [], {}),
        ("vits_template", "alice/G_100.pth", ["--name", "bob"], {"name": "bob"}),
        ("applio_template", "tiny/G_200.pth", ["--author", "me"], {"author": "me"}),
    ],
)
def test_extract_small_a_g_file_the_same(request, tmp_path, template, g, args, keywords):
    cli_logs, api_logs = two_copies(request.getfixturevalue(template), tmp_path)
    code, doc, err = cli_json("extract-small", cli_logs / g, *args)
    done = janitor.extract_small(api_logs / g, **keywords)
    assert code == 0, err
    (cli_done,) = doc["extracted"]
    assert relative(cli_done, cli_logs) == relative(done.as_dict(), api_logs)
    assert tree(cli_logs) == tree(api_logs)
    same_small(Path(cli_done["output"]), Path(done.output))
    code, info_doc, err = cli_json("info", cli_done["output"])
    assert code == 0, err
    assert without_dates(relative(info_doc["files"], cli_logs)) == without_dates(
        relative([janitor.info(done.output)], api_logs)
    )


@pytest.fixture(scope="module")
def hf_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "out"
    for step in (5, 10):
        fr.fake_hf_checkpoint(out, step, mtime=OLD)
    return out


def test_extract_small_an_hf_checkpoint_folder_from_python_too(hf_template, tmp_path):
    """The API used to refuse the folder ("is a folder"): the choice VITS / framework was
    the command line's."""
    cli_out, api_out = two_copies(hf_template, tmp_path)
    code, doc, err = cli_json("extract-small", cli_out / "checkpoint-10")
    done = janitor.extract_small(api_out / "checkpoint-10")
    assert code == 0, err
    (cli_done,) = doc["extracted"]
    assert relative(cli_done, cli_out) == relative(done.as_dict(), api_out)
    assert done.format == "hf" and done.tensors == 1
    assert tree(cli_out) == tree(api_out)
    assert (api_out / "small-checkpoint-10" / "model.safetensors").read_bytes() == (
        cli_out / "small-checkpoint-10" / "model.safetensors"
    ).read_bytes()


def test_extract_small_several_inputs_report_each(vits_template, tmp_path):
    cli_logs, api_logs = two_copies(vits_template, tmp_path)
    names = ["alice/G_100.pth", "alice/D_200.pth", "alice/G_200.pth"]
    code, doc, _ = cli_json("extract-small", *(cli_logs / n for n in names))
    report = janitor.extract_small([api_logs / n for n in names])
    assert code == 1
    assert [relative(d, cli_logs) for d in doc["extracted"]] == [
        relative(d.as_dict(), api_logs) for d in report.extracted
    ]
    assert relative(doc["errors"], cli_logs) == [
        relative({"path": e.path, "message": e.message}, api_logs) for e in report.failed
    ]
    assert tree(cli_logs) == tree(api_logs)


@pytest.mark.parametrize(
    ("args", "keywords"),
    [
        (["--format", "onnx"], {"format": "onnx"}),
        (["--force", "--skip-existing"], {"force": True, "skip_existing": True}),
        (["--like", "extract", "--format", "release"], {"like": "extract", "format": "release"}),
        (["--sr", "12345"], {"sr": 12345}),
        (["--step", "x"], {"step": "x"}),
    ],
)
def test_extract_small_errors_are_the_same(vits_template, args, keywords):
    g = vits_template / "alice" / "G_200.pth"
    message = as_keywords(cli_error("extract-small", g, *args))
    if keywords.get("step") == "x":  # Python: a count is an int
        message = message.replace("'x'", "'x'")
    assert message == api_error(janitor.extract_small, g, **keywords)


# ------------------------------------------------------------------ trash, restore, pins, log


def test_trash_list_restore_empty_the_same(logs):
    cli_logs, api_logs = logs
    assert cli_json("prune", cli_logs, "--trash", "--keep-last", "1")[0] == 0
    janitor.prune(api_logs, trash=True, keep_last=1)
    code, doc, _ = cli_json("trash", "list", cli_logs)
    listing = janitor.trash_list(api_logs)
    assert code == 0
    api_files = [
        (os.path.relpath(f.original_path, api_logs), f.copy, f.size) for f in listing.files
    ]
    cli_files = [
        (os.path.relpath(f["original_path"], cli_logs), f["copy"], f["size"]) for f in doc["files"]
    ]
    assert cli_files == api_files and len(api_files) == 12

    code, doc, _ = cli_json("restore", cli_logs / "alice", "200")
    restored = janitor.restore(api_logs / "alice", 200)
    assert code == 0 and restored.ok
    assert [c["copy"] for c in doc["copies"]] == [c.copy for c in restored.result.restored]
    assert tree(cli_logs) == tree(api_logs)
    assert (api_logs / "alice" / "G_200.pth").exists()

    message = cli_error("restore", cli_logs / "alice", "--copy", "nope")
    assert as_keywords(message).replace(str(cli_logs), str(api_logs)) == api_error(
        janitor.restore, api_logs / "alice", copy="nope"
    )

    code, doc, _ = cli_json("trash", "empty", cli_logs)
    emptied = janitor.trash_empty(api_logs)
    assert code == 0 and len(doc["removed"]) == len(emptied.removed) > 0
    assert tree(cli_logs) == tree(api_logs)

    code, doc, _ = cli_json("log", cli_logs)
    journal = janitor.log(api_logs)
    cli_records = sorted((r["event"], os.path.relpath(r["path"], cli_logs)) for r in doc["records"])
    api_records = sorted(
        (r["event"], os.path.relpath(r["path"], api_logs)) for r in journal.records
    )
    assert cli_records == api_records


def test_pin_and_unpin_the_same(logs):
    cli_logs, api_logs = logs
    code, doc, _ = cli_json("pin", cli_logs / "alice", "100", "300")
    pins = janitor.pin(api_logs / "alice", [100, 300])
    assert code == 0 and doc["pins"] == sorted(pins.pinned) == [100, 300]
    code, doc, _ = cli_json("unpin", cli_logs / "alice", "300", "500")
    pins = janitor.unpin(api_logs / "alice", [300, 500])
    assert doc["pins"] == sorted(pins.pinned) == [100]
    assert doc["not_pinned"] == sorted(pins.not_pinned) == [500]
    assert (cli_logs / "alice" / "janitor.toml").read_text() == (
        api_logs / "alice" / "janitor.toml"
    ).read_text()
    message = cli_error("pin", cli_logs, "100")  # a logs root, not a run
    assert message.replace(str(cli_logs), str(api_logs)) == api_error(janitor.pin, api_logs, 100)
    assert api_error(janitor.pin, api_logs / "alice", "100").startswith("steps argument: ")
