"""The Python API: scan -> plan -> execute, extract_small, finalize; the same plans as the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import janitor
from fixtures.gen import write_run
from janitor.domain.errors import UsageError
from janitor.storage.journal import Journal
from tests.conftest import REPO, fake_ckpt, fake_run

OLD = 1_600_000_000.0


def resume_pick(run: Path, prefix: str) -> str | None:
    """The trainer's own rule: the G_/D_ file whose path has the largest number formed by
    all its digits."""
    files = list(run.glob(f"{prefix}_*.pth"))
    return (
        max(files, key=lambda p: int("".join(c for c in str(p) if c.isdigit()))).name
        if files
        else None
    )


@pytest.fixture
def logs(tmp_path) -> Path:
    root = tmp_path / "logs"
    fake_run(root, "alice", [100, 200, 300, 400, 500, 600])
    fake_run(root, "bob", [1000, 2000, 3000], start=1_700_100_000.0)
    (root / "bob" / "janitor.toml").write_text("pins = [1000]\n[prune]\nkeep-last = 2\n")
    fake_ckpt(root / "alice" / "G_700.pth")  # a partial newest set: in flight
    return root


def test_import_janitor_is_light():
    heavy = ("torch", "numpy", "typer", "rich", "watchdog", "humanize", "humanfriendly", "janitor")
    code = (
        f"import sys, janitor; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"  # noqa: E501
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.replace("'", '"')) == ["janitor"]


def test_scan_plan_execute(logs):
    report = janitor.scan(logs)
    assert isinstance(report, janitor.ScanReport)
    assert [r.name for r in report.runs] == ["alice", "bob"]
    plan = report.plan(keep_last=1, keep_every=300)
    assert isinstance(plan, janitor.PrunePlan)
    alice, bob = plan.runs
    assert [d.set.number for d in alice.removals] == [100, 200, 400, 500]
    assert [d.set.number for d in bob.removals] == []  # each step is its own 300-step bucket
    keep = {d.set.number: d.reasons for d in bob.decisions if d.keep}
    assert "pinned" in keep[1000]
    before = sum(p.stat().st_size for p in logs.rglob("*.pth"))
    result = plan.execute()
    after = sum(p.stat().st_size for p in logs.rglob("*.pth"))
    assert result.errors == () and result.freed_size == plan.expected_freed_size == before - after
    assert sorted(p.name for p in (logs / "alice").glob("G_*")) == [
        "G_300.pth",
        "G_600.pth",
        "G_700.pth",
    ]
    policies = {
        r["policy"]
        for r in Journal(str(logs / ".janitor")).read().records
        if r["event"] == "remove"
    }
    assert policies == {"keep-last 1 (keep_last argument), keep-every 300 (keep_every argument)"}


def test_trash_and_rules_as_typed(logs):
    plan = janitor.scan(logs / "alice").plan(keep_within=timedelta(minutes=15), max_size="1GB")
    result = plan.execute(trash=True)
    assert result.freed_size == 0 and result.trashed_size == plan.expected_freed_size > 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"keep_last": -1}, "keep_last argument: must be a whole number"),
        ({"keep_every": 0}, "keep_every argument: must be a whole number >= 1"),
        ({"max_size": "lots"}, "max_size argument: cannot read"),
        ({"keep_best": 2}, "keep_best argument needs a metric"),
        ({"older_than": "1d"}, "older_than argument goes with remove_incomplete argument"),
    ],
)
def test_bad_values_name_the_keyword(logs, kwargs, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        janitor.scan(logs).plan(**kwargs)


FLAG_SETS = [
    {},
    {"keep_last": 2},
    {"keep_every": 200, "keep_last": 1},
    {"keep_within": "20m"},
    {"max_size": "20kB"},
    {"remove_incomplete": True, "older_than": "1h"},
]


@pytest.mark.parametrize("rules", FLAG_SETS)
def test_cli_and_api_give_the_same_plan(logs, cli, rules):
    args = []
    for k, v in rules.items():
        args += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    if "older_than" in rules:
        args = [a for a in args]
    doc = json.loads(cli("prune", logs, "-n", "--json", *args).output)
    api = janitor.scan(logs).plan(**rules)
    cli_plan = {
        r["path"]: [(s["number"], s["action"], s["reasons"]) for s in r["sets"]]
        for r in doc["runs"]
    }
    api_plan = {
        rp.run.path: [
            (d.set.number, "keep" if d.keep else "remove", list(d.reasons)) for d in rp.decisions
        ]
        for rp in api.runs
    }
    assert cli_plan == api_plan
    assert doc["expected_freed"] == api.expected_freed_size


def test_extract_small_and_finalize(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=(100, 200, 300), mtime_start=OLD)
    for p in (logs / "alice").rglob("*"):
        os.utime(p, (OLD, OLD))
    done = janitor.extract_small(logs / "alice" / "G_200.pth")
    assert done.output.endswith("alice_2e_200s.pth") and os.path.exists(done.output)
    assert janitor.extract_small(logs / "alice" / "G_200.pth", skip_existing=True).skipped
    preview = janitor.finalize(logs / "alice", dry_run=True, force=True)  # just extracted
    assert preview[0].plan.expected_freed > 0 and (logs / "alice" / "G_300.pth").exists()
    final = janitor.finalize(logs / "alice", force=True)
    assert final[0].refused is None and final[0].result.errors == ()
    assert not list((logs / "alice").glob("[GD]_*.pth"))
    records = Journal(str(logs / ".janitor")).read().records
    assert {r["policy"] for r in records if r["event"] == "remove"} == {
        "finalize: small models verified for steps 300"
    }


def test_api_resume_matches_cli_prune(tmp_path, cli):
    """The same tree pruned by the API and by the CLI: the trainer resumes from the same step."""
    for side in ("api", "cli"):
        write_run(tmp_path / side / "logs", "alice", steps=(100, 200, 300), small_models=(200,))
    janitor.scan(tmp_path / "api" / "logs").plan(keep_last=1).execute()
    assert cli("prune", tmp_path / "cli" / "logs", "--keep-last", "1").exit_code == 0
    picks = {
        side: (
            resume_pick(tmp_path / side / "logs" / "alice", "G"),
            resume_pick(tmp_path / side / "logs" / "alice", "D"),
        )
        for side in ("api", "cli")
    }
    assert picks["api"] == picks["cli"] == ("G_300.pth", "D_300.pth")
    names = {
        side: sorted(p.name for p in (tmp_path / side / "logs" / "alice").iterdir())
        for side in ("api", "cli")
    }
    assert names["api"] == names["cli"]


def test_fix_resume_journal_names_it(tmp_path, cli):
    run = fake_run(tmp_path / "logs", "alice", [100, 200], start=1_700_000_000.0)
    for p in "GD":  # an old latest-only file: the trainer would resume from it
        fake_ckpt(run / f"{p}_2333333.pth", mtime=1_600_000_000.0)
    assert cli("prune", tmp_path / "logs", "--fix-resume").exit_code == 0
    records = Journal(str(tmp_path / "logs" / ".janitor")).read().records
    moved = [r for r in records if r["event"] == "trash"]
    assert moved and all(r["policy"].startswith("fix-resume") for r in moved)


def test_the_python_api_page_example_runs(tmp_path, monkeypatch):
    """docs/python-api.md's first example, run as written, on a run with steps 1000/2000."""
    text = (REPO / "docs" / "python-api.md").read_text()
    section = text[text.index("# Use from Python") :]
    code = section[section.index("```python") + len("```python") : section.index("```\n", 10)]
    write_run(tmp_path / "logs", "alice", steps=(1000, 2000, 3000), steps_per_epoch=1000)
    monkeypatch.chdir(tmp_path)
    before = sum(p.stat().st_size for p in (tmp_path / "logs").rglob("[GD]_*.pth"))
    scope: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), scope)
    after = sum(p.stat().st_size for p in (tmp_path / "logs").rglob("[GD]_*.pth"))
    assert scope["result"].freed_size == scope["plan"].expected_freed_size == before - after > 0
    assert (tmp_path / "logs" / "alice" / "alice_2e_2000s.pth").exists()


def test_the_api_leaves_the_cyclic_collector_as_it_found_it(tmp_path):
    """scan and prune pause the collector while they build a report; a notebook or a
    training script calling them gets it back on."""
    import gc

    fake_run(tmp_path / "logs", "alice", [100, 200])
    assert gc.isenabled()
    janitor.prune(str(tmp_path / "logs"), dry_run=True)
    assert gc.isenabled()
    janitor.scan(str(tmp_path / "logs")).plan(keep_last=1)
    assert gc.isenabled()
