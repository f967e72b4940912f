"""Every VITS-family trainer's layout: detection, sets, protected files, resume, traps."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from fixtures.gen import write_run
from janitor.storage.journal import Journal
from tests.conftest import fake_ckpt, fake_run, run_janitor, truncate

GPT_LATEST = 233333333333


def replaced_header(path: Path) -> Path:
    """GPT-SoVITS small weights: the zip's first two bytes replaced by a version marker."""
    fake_ckpt(path)
    data = bytearray(path.read_bytes())
    data[:2] = b"\x02\x00"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("trainers")
    write_run(tree / "Applio" / "logs", "alice", steps=(100, 200, 300))
    rvc = fake_run(tree / "RVC" / "logs", "exp1", [100, 200, 300])
    (rvc / "0_gt_wavs").mkdir()
    fake_ckpt(tree / "RVC" / "assets" / "weights" / "exp1_e3_s300.pth")
    fake_ckpt(tree / "RVC" / "assets" / "weights" / "exp1.pth")
    fake_ckpt(tree / "RVC" / "assets" / "weights" / "other_e1_s10.pth")  # another experiment
    fake_run(tree / "so-vits-svc" / "logs", "44k", [0, 800, 1600, 2400])
    fake_run(tree / "Bert-VITS2" / "Data" / "ds", "models", [0, 1000, 2000, 3000],
             prefixes=("G", "D", "WD", "DUR"))  # fmt: skip
    gpt = tree / "GPT-SoVITS"
    fake_run(gpt / "logs" / "exp2", "logs_s2_v2", [100, 200])
    for prefix in "GD":  # the 12-digit "save only latest" files, written last
        fake_ckpt(gpt / "logs" / "exp2" / "logs_s2_v2" / f"{prefix}_{GPT_LATEST}.pth",
                  mtime=1_700_001_000)  # fmt: skip
    for epoch, step in ((4, 400), (9, 900), (14, 1400)):
        fake_ckpt(gpt / "logs" / "exp2" / "logs_s1_v2" / "ckpt" / f"epoch={epoch}-step={step}.ckpt")
    replaced_header(gpt / "SoVITS_weights_v2" / "exp2_e8_s200.pth")
    return tree


@pytest.fixture
def tree(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "tree", symlinks=True))


def runs_by_name(doc: dict) -> dict[str, dict]:
    return {r["name"]: r for r in doc["runs"]}


def test_scan_names_each_trainer_and_groups_sets(tree, cli):
    r = cli("scan", tree, "--json")
    assert r.exit_code == 0, r.output
    runs = runs_by_name(json.loads(r.output))
    assert {n: r["trainer"] for n, r in runs.items()} == {
        "alice": "applio", "exp1": "rvc", "44k": "so-vits-svc", "models": "bert-vits2",
        "logs_s2_v2": "gpt-sovits", "ckpt": "gpt-sovits-s1",
    }  # fmt: skip
    bert = {s["number"]: s for s in runs["models"]["sets"]}
    assert [f["prefix"] for f in bert[1000]["files"]] == ["G", "D", "WD", "DUR"]
    assert bert[0]["base"] and runs["44k"]["sets"][0]["base"]
    gpt = {s["number"]: s for s in runs["logs_s2_v2"]["sets"]}
    assert gpt[GPT_LATEST]["latest_only"] and gpt[GPT_LATEST]["step"] is None
    s1 = runs["ckpt"]["sets"]
    assert [(s["number"], s["files"][0]["prefix"]) for s in s1] == [
        (400, "GPT"), (900, "GPT"), (1400, "GPT"),
    ]  # fmt: skip
    rvc_small = sorted(m["name"] for m in runs["exp1"]["small_models"])
    assert rvc_small == ["exp1.pth", "exp1_e3_s300.pth"]
    (weights,) = runs["logs_s2_v2"]["small_models"]
    assert weights["complete"] and weights["format"] == "gpt-sovits"
    assert "header replaced" in weights["note"]
    text = cli("scan", tree).output
    assert "exp2_e8_s200.pth: zip header replaced by a version marker (GPT-SoVITS)" in text
    assert "[so-vits-svc: folder logs/44k/]" in text
    assert "[GPT-SoVITS (GPT stage): folder logs_s1_v2/ckpt/]" in text


def _resume_pick(folder: Path, prefix: str) -> str | None:
    files = [str(p) for p in folder.glob(f"{prefix}_*.pth")]
    if not files:
        return None
    return os.path.basename(max(files, key=lambda f: int("".join(c for c in f if c.isdigit()))))


def test_prune_keeps_each_trainers_newest_and_protected_files(tree, cli):
    r = cli("prune", tree, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    names = lambda p: sorted(x.name for x in p.iterdir() if x.is_file())  # noqa: E731
    assert [n for n in names(tree / "RVC/logs/exp1") if n[:2] in ("G_", "D_")] == [
        "D_300.pth", "G_300.pth",
    ]  # fmt: skip
    assert names(tree / "so-vits-svc/logs/44k") == [
        "D_0.pth",
        "D_2400.pth",
        "G_0.pth",
        "G_2400.pth",
    ]
    bert = names(tree / "Bert-VITS2/Data/ds/models")
    assert bert == sorted(f"{p}_{s}.pth" for p in ("G", "D", "WD", "DUR") for s in (0, 3000))
    assert names(tree / "GPT-SoVITS/logs/exp2/logs_s2_v2") == sorted(
        [f"D_{GPT_LATEST}.pth", "D_200.pth", f"G_{GPT_LATEST}.pth", "G_200.pth"]
    )
    assert names(tree / "GPT-SoVITS/logs/exp2/logs_s1_v2/ckpt") == ["epoch=14-step=1400.ckpt"]
    assert (tree / "RVC/assets/weights/exp1.pth").exists()
    # each trainer's own resume rule still finds a complete pair
    for run, want in [
        ("RVC/logs/exp1", "G_300.pth"),
        ("so-vits-svc/logs/44k", "G_2400.pth"),
        ("Bert-VITS2/Data/ds/models", "G_3000.pth"),
        ("GPT-SoVITS/logs/exp2/logs_s2_v2", f"G_{GPT_LATEST}.pth"),
    ]:
        assert _resume_pick(tree / run, "G") == want
        assert _resume_pick(tree / run, "D") == "D" + want[1:]


def test_rvc_runs_get_rvc_small_models_in_assets_weights(tmp_path):
    root = tmp_path / "RVC"
    run = write_run(root / "logs", "exp9", steps=(500,), with_d=False, model_info=False)
    (run / "model_info.json").unlink(missing_ok=True)
    (run / "1_16k_wavs").mkdir()
    (root / "assets" / "weights").mkdir(parents=True)
    r = run_janitor("extract-small", run / "G_500.pth")
    assert r.returncode == 0, r.stderr
    assert (root / "assets" / "weights" / "exp9_e5_s500.pth").exists()


def _trap_run(logs: Path) -> Path:
    run = logs / "r"
    now = time.time()
    fake_ckpt(run / "G_2333333.pth", mtime=now - 30 * 86400)  # stale latest-only
    fake_ckpt(run / "D_2333333.pth", mtime=now - 30 * 86400)
    fake_ckpt(run / "G_5000.pth", mtime=now - 20 * 86400)  # left from an earlier run
    fake_ckpt(run / "D_5000.pth", mtime=now - 20 * 86400)
    for step in (100, 200):
        fake_ckpt(run / f"G_{step}.pth", mtime=now - 3600 + step)
        fake_ckpt(run / f"D_{step}.pth", mtime=now - 3600 + step)
    fake_ckpt(run / "G_300.pth", mtime=now)
    truncate_to = (run / "G_300.pth").stat().st_size // 2
    with open(run / "G_300.pth", "r+b") as fh:
        fh.truncate(truncate_to)
    return run


def test_resume_traps_are_reported_never_fixed_unless_asked(tmp_path, cli):
    logs = tmp_path / "logs"
    run = _trap_run(logs)
    doc = json.loads(cli("scan", logs, "--json").output)
    codes = {w["code"] for w in doc["runs"][0]["warnings"]}
    assert codes == {"stale-latest-only"}  # G_2333333 wins the sort: it is what resumes
    text = cli("scan", logs).output
    assert "G_2333333.pth is older than G_300.pth: the trainer will resume from the stale" in text
    # prune never "fixes" traps on its own
    cli("prune", logs, "--keep-last", "1")
    assert (run / "G_2333333.pth").exists() and (run / "G_5000.pth").exists()
    assert (run / "G_200.pth").exists()  # the save just written is kept as well
    assert not (run / "G_100.pth").exists()
    r = cli("prune", logs, "--keep-last", "1", "--fix-resume")
    assert r.exit_code == 0, r.output
    assert "--fix-resume moved to the trash" in r.output
    assert not (run / "G_2333333.pth").exists() and not (run / "G_5000.pth").exists()
    trashed = [
        os.path.basename(r["path"]) for r in Journal(str(logs / ".janitor")).read().records
        if r["event"] == "trash"
    ]  # fmt: skip
    assert sorted(trashed) == ["D_2333333.pth", "D_5000.pth", "G_2333333.pth", "G_5000.pth"]
    assert (run / "G_200.pth").exists() and (run / "G_300.pth").exists()


def test_stale_higher_numbered_files_are_reported(tmp_path, cli):
    logs = tmp_path / "logs"
    now = time.time()
    fake_run(logs, "r", [5000], start=now - 10 * 86400)
    fake_run(logs, "r", [100, 200], start=now - 600)
    doc = json.loads(cli("scan", logs, "--json").output)
    (w,) = [w for w in doc["runs"][0]["warnings"] if w["code"] == "stale-higher"]
    assert "G_5000.pth is older than G_200.pth" in w["message"]
    assert "stale-higher" not in cli("prune", logs).output  # text says it, by message
    assert (logs / "r" / "G_5000.pth").exists()


@pytest.mark.parametrize(
    "code, build, needle",
    [
        ("stale-latest-only", lambda run, now: [
            fake_ckpt(run / f"{p}_{s}.pth", mtime=t)
            for p in "GD" for s, t in ((2333333, now - 9e5), (100, now))
        ], "G_2333333.pth is older than G_100.pth"),
        ("stale-higher", lambda run, now: [
            fake_ckpt(run / f"{p}_{s}.pth", mtime=t)
            for p in "GD" for s, t in ((9000, now - 9e5), (100, now))
        ], "G_9000.pth is older than G_100.pth"),
        ("incomplete-newest", lambda run, now: [
            fake_ckpt(run / f"{p}_100.pth") for p in "GD"
        ] + [(run / "G_200.pth").write_bytes(b"PK\x03\x04 cut")], "G_200.pth is what the trainer"),
        ("g-d-mismatch", lambda run, now: [
            fake_ckpt(run / name) for name in ("G_100.pth", "D_100.pth", "G_200.pth")
        ], "newest G is G_200.pth but newest D is D_100.pth"),
    ],
)  # fmt: skip
def test_each_resume_trap_in_text_and_json(tmp_path, cli, code, build, needle):
    run = tmp_path / "logs" / "r"
    run.mkdir(parents=True)
    build(run, time.time())
    doc = json.loads(cli("scan", tmp_path / "logs", "--json").output)
    assert code in {w["code"] for w in doc["runs"][0]["warnings"]}
    assert f"warning: {needle}" in cli("scan", tmp_path / "logs").output
    assert needle in cli("prune", tmp_path / "logs", "-n").output


def _resume_tree(logs: Path, rng: random.Random, now: float) -> list[str]:
    """A run with a random mix of resume traps; returns prune's rule flags for it."""
    run = logs / "r"
    steps = [100 * i for i in range(1, rng.randint(1, 5) + 1)]
    for i, step in enumerate(steps):
        for p in "GD" if rng.random() > 0.15 else "G":
            fake_ckpt(run / f"{p}_{step}.pth", payload=64, mtime=now - 3600 + 60 * i)
    if rng.random() < 0.5:  # latest-only file: stale, or the newest write
        when = now - 30 * 86400 if rng.random() < 0.7 else now
        for p in "GD":
            fake_ckpt(run / f"{p}_2333333.pth", payload=64, mtime=when)
    for step in rng.sample([5000, 6000, 7000], rng.randint(0, 2)):  # left by an earlier run
        for p in ("G", "D", "DUR") if rng.random() < 0.2 else "GD":
            fake_ckpt(run / f"{p}_{step}.pth", payload=64, mtime=now - 20 * 86400 + step)
    if rng.random() < 0.3:  # the newest save was cut short
        top = run / f"G_{steps[-1] + 100}.pth"
        fake_ckpt(top, payload=64, mtime=now)
        truncate(top)
    flags = ["--keep-last", str(rng.randint(1, 3))]
    if rng.random() < 0.3:
        flags += ["--keep-every", "200"]
    return flags


def test_fix_resume_dry_run_shows_what_the_real_run_does(tmp_path, cli):
    rng = random.Random(13)
    now = time.time()
    for case in range(40):
        logs = tmp_path / f"logs{case}"
        flags = _resume_tree(logs, rng, now)
        dry = cli("prune", logs, *flags, "--fix-resume", "-n", "--json")
        assert dry.exit_code == 0, dry.output
        doc = json.loads(dry.output)
        would = {
            os.path.basename(f["path"])
            for part in (doc.get("fix_resume", []), doc["runs"])
            for r in part
            for s in r["sets"]
            if s["action"] == "remove"
            for f in s["files"]
        }
        stale = [s for r in doc.get("fix_resume", []) for s in r["sets"] if s["action"] == "remove"]
        text = cli("prune", logs, *flags, "--fix-resume", "-n").output
        assert ("--fix-resume would move to the trash" in text) == bool(stale), text
        before = {p.name for p in (logs / "r").iterdir()}
        real = cli("prune", logs, *flags, "--fix-resume", "--json")
        assert real.exit_code == 0, real.output
        done = before - {p.name for p in (logs / "r").iterdir()}
        assert would == done, (case, flags, sorted(before))
        text = cli("prune", logs, *flags, "--fix-resume", "-n").output
        assert "--fix-resume would move" not in text  # nothing stale is left


def test_fix_resume_never_moves_a_pinned_set_nor_one_below_saves_of_the_same_moment(tmp_path, cli):
    """Found by the promise properties: saves 100 and 300 written at one moment, 200 an hour
    earlier: the trainer resumes from 300, so nothing is stale; and a pinned stale set stays."""
    run = tmp_path / "logs" / "alice"
    for step, mtime in ((100, 1_700_010_000), (200, 1_700_006_340), (300, 1_700_010_000)):
        for p in "GD":
            fake_ckpt(run / f"{p}_{step}.pth", mtime=mtime)
    assert cli("prune", tmp_path / "logs", "--fix-resume", "--keep-last", "3").exit_code == 0
    assert sorted(p.name for p in run.glob("G_*")) == ["G_100.pth", "G_200.pth", "G_300.pth"]
    for p in "GD":  # now a really stale higher step, pinned
        fake_ckpt(run / f"{p}_900.pth", mtime=1_600_000_000)
    assert cli("pin", run, "900").exit_code == 0
    assert cli("prune", tmp_path / "logs", "--fix-resume", "--keep-last", "4").exit_code == 0
    assert (run / "G_900.pth").exists() and (run / "D_900.pth").exists()


def test_fix_resume_checks_every_rule_before_it_moves_anything(tmp_path, cli):
    run = fake_run(tmp_path / "logs", "alice", [100, 200])
    for p in "GD":
        fake_ckpt(run / f"{p}_900.pth", mtime=1_600_000_000)  # stale
    (tmp_path / "logs" / "janitor.toml").write_text("[prune]\nkeep-last = 2\n")
    r = cli("prune", tmp_path / "logs", "--fix-resume", "--metric", "loss/g/total")
    assert r.exit_code == 2 and "--metric goes with --keep-best" in r.output
    assert (run / "G_900.pth").exists() and not (tmp_path / "logs" / ".janitor" / "trash").exists()
