"""Hugging Face Trainer, PyTorch Lightning and DeepSpeed runs: detection beside VITS runs,
what prune keeps, the HF resume trap, keep-best without TensorBoard, and the frameworks' own
resume after a prune. The HF and Lightning runs are written by the frameworks themselves on
tiny random models (tests/framework_runs.py), once per module."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import jsonschema
import pytest

from fixtures.gen import write_run
from janitor.core.frameworks import metric_in_name, safetensors_problem
from janitor.core.policy import INCOMPLETE, TRUNCATED
from tests.conftest import REPO, fake_ckpt, truncate

pytest.importorskip("transformers")
pytest.importorskip("lightning")

from tests import framework_runs as fr  # noqa: E402

SCHEMA = json.loads((REPO / "docs" / "scan.schema.json").read_text())
OLD = time.time() - 900  # a save that is over: idle > 10 min, not an earlier run (> 1 h)


@pytest.fixture(scope="module")
def hf_template(tmp_path_factory) -> Path:
    """output_dir of a Trainer run: checkpoint-2 ... checkpoint-10, evaluated at each save,
    best (lowest eval_loss) is checkpoint-2, not the newest; plus a half-written
    checkpoint-12 (what a kill during the save leaves: the first files of the save order,
    the optimizer cut short, no trainer_state.json)."""
    out = fr.hf_run(tmp_path_factory.mktemp("hf") / "out", max_steps=10)
    half = out / "checkpoint-12"
    half.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors", "optimizer.pt"):
        shutil.copy2(out / "checkpoint-10" / name, half / name)
    truncate(half / "optimizer.pt")
    for p in [*half.iterdir(), half]:
        os.utime(p, (OLD, OLD))
    return out


@pytest.fixture(scope="module")
def pl_template(tmp_path_factory) -> Path:
    """A ModelCheckpoint folder: epoch=E-step=S-val_loss=V.ckpt for 4 epochs, last.ckpt a
    symlink to the newest (save_last="link")."""
    ckpts = tmp_path_factory.mktemp("pl") / "ckpts"
    fr.lightning_fit(ckpts, max_epochs=4)
    return ckpts


@pytest.fixture
def hf(hf_template, tmp_path) -> Path:
    return Path(shutil.copytree(hf_template, tmp_path / "hf" / "out", symlinks=True))


@pytest.fixture
def pl(pl_template, tmp_path) -> Path:
    return Path(shutil.copytree(pl_template, tmp_path / "pl" / "ckpts", symlinks=True))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def prune_json(cli, *args) -> tuple[dict[int, list[str]], list[str]]:
    """``prune ... --json`` of one run: number -> reasons, and the run's warnings."""
    r = cli("prune", *args, "--json")
    assert r.exit_code == 0, r.output
    (run,) = json.loads(r.output)["runs"]
    return {s["number"]: s["reasons"] for s in run["sets"]}, [w["message"] for w in run["warnings"]]


def deepspeed_run(folder: Path, tags=(10, 20, 30), latest=20) -> Path:
    """DeepSpeed's save_checkpoint layout (torch-zip files; DeepSpeed itself not needed):
    global_step<N>/ with model and optimizer states, `latest` naming the last finished tag."""
    for n in tags:
        fake_ckpt(folder / f"global_step{n}" / "mp_rank_00_model_states.pt", mtime=OLD + n)
        fake_ckpt(folder / f"global_step{n}" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    (folder / "latest").write_text(f"global_step{latest}")
    (folder / "zero_to_fp32.py").write_text("# DeepSpeed's consolidation script\n")
    return folder


# ----------------------------------------------------------------------------- detection


def test_scan_names_each_framework_and_why_beside_vits_runs(hf, pl, tmp_path, cli):
    """A mixed tree: VITS runs stay VITS runs, framework runs are found by what they hold,
    a checkpoint folder is one set (never a run of its own, even with DeepSpeed inside)."""
    write_run(tmp_path / "hf", "alice", steps=(100, 200))  # an Applio run beside the HF run
    ds = deepspeed_run(tmp_path / "pl" / "ds")
    inner = hf / "checkpoint-10" / "global_step10"  # the Trainer under DeepSpeed
    fake_ckpt(inner / "mp_rank_00_model_states.pt")
    (hf / "checkpoint-10" / "latest").write_text("global_step10")
    r = cli("scan", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    jsonschema.validate(json.loads(r.output), SCHEMA)
    runs = {
        Path(x["path"]).relative_to(tmp_path).as_posix(): x for x in json.loads(r.output)["runs"]
    }
    assert {k: v["trainer"] for k, v in runs.items()} == {
        "hf/alice": "applio", "hf/out": "hf-trainer", "pl/ckpts": "lightning", "pl/ds": "deepspeed",
    }  # fmt: skip
    assert runs["hf/out"]["trainer_reason"].startswith("checkpoint-<step>/ folders (checkpoint-2")
    assert "global_step<N>/ folders" in runs["pl/ds"]["trainer_reason"]
    assert "and a latest file" in runs["pl/ds"]["trainer_reason"]
    assert "last.ckpt" in runs["pl/ckpts"]["trainer_reason"]
    hf_sets = {s["number"]: s for s in runs["hf/out"]["sets"]}
    assert sorted(hf_sets) == [2, 4, 6, 8, 10, 12]
    assert any(f["name"] == "checkpoint-10/global_step10/mp_rank_00_model_states.pt"
               for f in hf_sets[10]["files"])  # fmt: skip
    assert runs["hf/alice"]["sets"][0]["files"][0]["prefix"] == "G"
    text = cli("scan", tmp_path).output
    assert "[Hugging Face Trainer: checkpoint-<step>/ folders" in text
    assert "checkpoint-12/: half written: no trainer_state.json" in text
    # forced: the same folder read as a generic VITS run has no sets at all
    forced = json.loads(cli("scan", hf, "--json", "--trainer", "generic").output)
    assert forced["runs"] == []
    assert ds.exists()


def test_vits_run_with_checkpoint_named_folder_stays_vits(tmp_path, cli):
    run = write_run(tmp_path / "logs", "bob", steps=(100, 200))
    (run / "checkpoint-5").mkdir()
    fake_ckpt(run / "checkpoint-5" / "optimizer.pt")
    doc = json.loads(cli("scan", tmp_path / "logs", "--json").output)
    assert [(x["name"], x["trainer"]) for x in doc["runs"]] == [("bob", "applio")]
    assert cli("prune", tmp_path / "logs", "--keep-last", "1").exit_code == 0
    assert (run / "checkpoint-5" / "optimizer.pt").exists()  # never a candidate


# ------------------------------------------------------------------- Hugging Face Trainer


def test_hf_prune_keep_last_1_keeps_newest_best_and_half_written(hf, cli):
    reasons, warnings = prune_json(cli, hf, "--keep-last", "1")
    assert names(hf) == ["checkpoint-10", "checkpoint-12", "checkpoint-2"]  # no empty folders
    assert reasons[2] == ["best model (best_model_checkpoint in checkpoint-10/trainer_state.json)"]
    assert reasons[10] == ["newest complete", "last 1"]
    assert {INCOMPLETE, TRUNCATED} & set(reasons[12])  # truncated: untouched for over 10 s
    assert any(w.startswith("checkpoint-12/ is what the Trainer resumes from") for w in warnings)
    assert len(names(hf / "checkpoint-2")) == 8
    journal = [json.loads(line) for line in (hf.parent / ".janitor" / "journal.jsonl").open()]
    removed = [x["path"] for x in journal if x["event"] == "remove"]
    assert len(removed) == 3 * 8
    first = [x for x in journal if x["event"] == "remove" and x["number"] == 4][0]
    assert first["path"].endswith("checkpoint-4/trainer_state.json")  # the marker goes first
    assert [x["number"] for x in journal if x["event"] == "remove-folder"] == [4, 6, 8]


def test_hf_resume_trap_fix_resume_then_trainer_resumes_at_kept_step(hf, cli):
    """get_last_checkpoint picks the half-written checkpoint-12 and train() crashes; after
    `prune --fix-resume` (checkpoint-12 to the trash), the Trainer's own resume continues
    from checkpoint-10."""
    from transformers.trainer_utils import get_last_checkpoint

    assert Path(get_last_checkpoint(str(hf))).name == "checkpoint-12"
    with pytest.raises((FileNotFoundError, ValueError, OSError, RuntimeError)):
        fr.hf_trainer(hf, max_steps=14).train(resume_from_checkpoint=True)
    r = cli("prune", hf, "--fix-resume", "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert names(hf) == ["checkpoint-10", "checkpoint-2"]
    assert (hf.parent / ".janitor" / "trash" / "out" / "checkpoint-12" / "optimizer.pt").exists()
    assert Path(get_last_checkpoint(str(hf))).name == "checkpoint-10"
    trainer = fr.hf_trainer(hf, max_steps=14)
    trainer.train(resume_from_checkpoint=True)
    steps = [e["step"] for e in trainer.state.log_history if "loss" in e]
    assert steps[0] == 1 and 11 in steps and trainer.state.global_step == 14
    resumed = [e["step"] for e in trainer.state.log_history if "loss" in e and e["step"] > 10]
    assert resumed == [11, 12, 13, 14]
    assert names(hf)[-1] == "checkpoint-2" and "checkpoint-14" in names(hf)
    # the Trainer wrote a new checkpoint-12: the trashed one never replaces it
    assert len(names(hf / "checkpoint-12")) == 8
    assert cli("restore", hf, "12").exit_code == 1
    assert len(names(hf / "checkpoint-12")) == 8


def test_hf_fix_resume_leaves_a_folder_being_written(hf, cli):
    now = time.time()
    for p in [*(hf / "checkpoint-12").iterdir(), hf / "checkpoint-12"]:
        os.utime(p, (now, now))
    (hf / "checkpoint-14").mkdir()  # a save that has just begun: no file in it yet
    r = cli("prune", hf, "--fix-resume", "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert "checkpoint-12" in names(hf) and "checkpoint-14" in names(hf)


def test_hf_keep_best_by_log_history(hf, cli):
    state = json.loads((hf / "checkpoint-10" / "trainer_state.json").read_text())
    evals = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
    best2 = sorted(evals, key=evals.get)[:2]
    reasons, _ = prune_json(cli, hf, "--keep-best", "2", "--metric", "eval_loss", "-n")
    by_best = sorted(
        n for n, why in reasons.items() if any("best 2 by eval_loss" in w for w in why)
    )
    assert by_best == sorted(best2)
    assert 2 in best2 and evals[2] == state["best_metric"]
    r = cli("prune", hf, "--keep-best", "1", "--metric", "eval_loss")
    assert r.exit_code == 0, r.output
    assert names(hf) == ["checkpoint-10", "checkpoint-12", f"checkpoint-{best2[0]}"]
    bad = cli("prune", hf, "--keep-best", "1", "--metric", "eval_cer", "-n")
    assert bad.exit_code == 2 and "log_history has: eval_loss" in bad.output


def test_hf_trash_moves_folders_whole(hf, cli):
    r = cli("prune", hf, "--keep-last", "1", "--trash")
    assert r.exit_code == 0, r.output
    trash = hf.parent / ".janitor" / "trash" / "out"
    assert names(trash) == ["checkpoint-4", "checkpoint-6", "checkpoint-8"]
    assert len(names(trash / "checkpoint-6")) == 8
    listed = cli("trash", "list", hf.parent)
    assert "step 6: checkpoint-6" in listed.output
    assert cli("restore", hf, "6").exit_code == 0
    assert len(names(hf / "checkpoint-6")) == 8
    assert cli("trash", "empty", hf.parent).exit_code == 0
    assert names(trash) == []
    assert len(names(hf / "checkpoint-6")) == 8


def test_hf_truncated_weights_make_a_folder_incomplete(hf, cli):
    truncate(hf / "checkpoint-8" / "model.safetensors", 0.9)
    doc = json.loads(cli("scan", hf, "--json").output)
    (s8,) = [s for s in doc["runs"][0]["sets"] if s["number"] == 8]
    assert s8["status"] == "incomplete"
    (bad,) = [f for f in s8["files"] if not f["complete"]]
    assert bad["name"] == "checkpoint-8/model.safetensors" and "truncated" in bad["problem"]
    cli("prune", hf, "--keep-last", "1")
    assert "checkpoint-8" in names(hf)  # a truncated file is never removed


def test_symlinks_in_and_around_checkpoint_folders_are_never_followed(hf, tmp_path, cli):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"x" * 100)
    st = (hf / "checkpoint-4").stat()
    # a link under a name the Trainer writes (a link under any other name is a user's file:
    # the folder would be kept, tests/test_foreign_files.py)
    (hf / "checkpoint-4" / "scaler.pt").symlink_to(outside)
    os.utime(hf / "checkpoint-4", (st.st_atime, st.st_mtime))  # not a new save
    (hf / "checkpoint-6").rename(tmp_path / "ck6")
    (hf / "checkpoint-6").symlink_to(tmp_path / "ck6")
    r = cli("prune", hf, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert "checkpoint-4" not in names(hf)
    assert (outside / "data.bin").exists()  # the link was removed, not what it points to
    assert (hf / "checkpoint-6").is_symlink() and len(names(tmp_path / "ck6")) == 8


def test_safetensors_check_finds_every_cut(hf):
    data = (hf / "checkpoint-2" / "model.safetensors").read_bytes()
    assert safetensors_problem(data, len(data)) is None
    for cut in (0, 4, 8, 9, 100, len(data) // 2, len(data) - 1):
        assert safetensors_problem(data[:cut], cut) is not None, cut
    assert safetensors_problem(data + b"\0", len(data) + 1) is not None


# ---------------------------------------------------------------------------- Lightning


def test_lightning_prune_keep_last_1_keeps_last_and_newest_then_fit_resumes(pl, cli):
    r = cli("prune", pl, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert len(names(pl)) == 2 and (pl / "last.ckpt").is_symlink()
    assert (pl / "last.ckpt").resolve().exists()
    assert "-step=16-" in os.readlink(pl / "last.ckpt")
    trainer = fr.lightning_fit(pl, max_epochs=6, ckpt_path="last")
    assert trainer.global_step == 24  # 16 kept + 2 epochs of 4 steps: not reset to 0
    assert any(n.startswith("epoch=5-step=24") for n in names(pl))
    assert not any(n.startswith("epoch=0-") for n in names(pl))


def test_lightning_last_link_target_is_kept_when_not_newest(pl, cli):
    older = next(n for n in names(pl) if n.startswith("epoch=1-"))
    (pl / "last.ckpt").unlink()
    (pl / "last.ckpt").symlink_to(older)
    reasons, _ = prune_json(cli, pl, "--keep-last", "1")
    newest = max(reasons)
    assert len(names(pl)) == 3 and older in names(pl) and (pl / "last.ckpt").is_symlink()
    assert reasons[newest] == ["newest complete", "last 1"]
    (older_step,) = [n for n, why in reasons.items() if n != newest and why[0].startswith("target")]
    assert f"step={older_step}-" in older


def test_lightning_keep_best_reads_file_names_and_keeps_last_copy(tmp_path, cli):
    ckpts = tmp_path / "run" / "ckpts"
    fr.lightning_fit(ckpts, max_epochs=4, save_last=True)  # last.ckpt a full copy
    assert not (ckpts / "last.ckpt").is_symlink()
    values = {n: metric_in_name(n, "val_loss") for n in names(ckpts)}
    worst = max((v, n) for n, v in values.items() if v is not None)[1]
    newest = max((n for n in values if n != "last.ckpt"), key=lambda n: int(n.split("-")[1][5:]))
    reasons, _ = prune_json(cli, ckpts, "--keep-best", "1", "--metric", "val_loss", "--mode", "max")
    assert names(ckpts) == sorted({worst, newest, "last.ckpt"})
    assert "latest-only: what the trainer resumes from" in reasons[max(reasons)]
    assert any(w.startswith("best 1 by val_loss") for why in reasons.values() for w in why)


def test_metric_in_name():
    assert metric_in_name("epoch=3-step=400-val_loss=0.12.ckpt", "val_loss") == 0.12
    assert metric_in_name("epoch=3-step=400-val_loss=0.12-v1.ckpt", "val_loss") == 0.12
    assert metric_in_name("epoch=3-step=400-val_loss=1e-3.ckpt", "val_loss") == 1e-3
    assert metric_in_name("epoch=3-step=400-val_acc=0.9.ckpt", "val/acc") == 0.9
    assert metric_in_name("epoch=3-step=400.ckpt", "val_loss") is None


# ----------------------------------------------------------------------------- DeepSpeed


def test_deepspeed_keeps_the_tag_latest_names_and_unpointed_newer_tags(tmp_path, cli):
    ds = deepspeed_run(tmp_path / "ds", tags=(10, 20, 30, 40), latest=30)
    reasons, _ = prune_json(cli, ds, "--keep-last", "1")
    assert names(ds) == ["global_step30", "global_step40", "latest", "zero_to_fp32.py"]
    assert reasons[30][:2] == ["newest complete", "named by latest: DeepSpeed resumes from it"]
    assert {INCOMPLETE, TRUNCATED} & set(reasons[40])
    (ds / "latest").write_text("global_step99")
    r = cli("scan", ds)
    assert "latest names global_step99, which is not here" in r.output


# ------------------------------------------------------------------------- extract-small


def test_extract_small_hf_folder_loads_with_from_pretrained(hf, cli):
    import torch
    from transformers import AutoModelForCausalLM

    r = cli("extract-small", hf / "checkpoint-4", "--json")
    assert r.exit_code == 0, r.output
    (done,) = json.loads(r.output)["extracted"]
    small = hf / "small-checkpoint-4"
    assert done["output"] == str(small) and done["tensors"] > 0 and done["linked"] == 3
    assert names(small) == ["config.json", "generation_config.json", "model.safetensors"]
    assert (small / "model.safetensors").stat().st_ino == (
        hf / "checkpoint-4" / "model.safetensors"
    ).stat().st_ino  # a hard link: no second copy of the weights
    a = AutoModelForCausalLM.from_pretrained(small).state_dict()
    b = AutoModelForCausalLM.from_pretrained(hf / "checkpoint-4").state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    # the small folder is not a checkpoint: prune keeps it, the Trainer's resume ignores it
    assert cli("prune", hf, "--keep-last", "1").exit_code == 0
    assert "checkpoint-4" not in names(hf)
    assert names(small) == ["config.json", "generation_config.json", "model.safetensors"]
    again = cli("extract-small", hf / "checkpoint-10")
    assert again.exit_code == 0 and (hf / "small-checkpoint-10" / "config.json").exists()
    refused = cli("extract-small", hf / "checkpoint-12")
    assert refused.exit_code == 1 and "half written" in refused.output


def test_extract_small_lightning_ckpt_and_safetensors(pl, cli):
    import torch
    from safetensors.torch import load_file

    src = next(p for p in pl.iterdir() if p.name.startswith("epoch=2-"))
    r = cli("extract-small", src)
    assert r.exit_code == 0, r.output
    small = src.with_name(src.name[: -len(".ckpt")] + ".small.ckpt")
    ckpt = torch.load(small, weights_only=True)
    assert sorted(ckpt) == sorted(
        ["epoch", "global_step", "pytorch-lightning_version", "state_dict", "hparams_name",
         "hyper_parameters"]
    )  # fmt: skip
    full = torch.load(src, weights_only=True)
    model = fr.lightning_module_cls().load_from_checkpoint(small)
    assert all(torch.equal(v, full["state_dict"][k]) for k, v in model.state_dict().items())
    r = cli("extract-small", src, "--format", "safetensors")
    assert r.exit_code == 0, r.output
    tensors = load_file(src.with_name(src.name[: -len(".ckpt")] + ".small.safetensors"))
    assert all(torch.equal(tensors[k], full["state_dict"][k]) for k in full["state_dict"])
    # small models are not checkpoints: prune leaves them
    assert cli("prune", pl, "--keep-last", "1").exit_code == 0
    assert small.exists() and not src.exists()


# ---------------------------------------------------------------------------------- watch


def test_watch_prunes_beside_a_real_trainer_without_breaking_it(tmp_path):
    """janitor watch --keep-last 1 beside a running Trainer: every save completes (a folder
    removed or touched mid-save would make the Trainer crash), load_best_model_at_end still
    finds its best folder, and at the end only the newest and the best are left."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "janitor", "watch", str(tmp_path), "--keep-last", "1",
         "--settle", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        trainer = fr.hf_trainer(out, max_steps=10)
        trainer.train()  # raises if a checkpoint folder vanished under it
        best = Path(trainer.state.best_model_checkpoint).name
        want = sorted({"checkpoint-10", best})
        deadline = time.monotonic() + 20
        while names(out) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        assert names(out) == want
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, err = watcher.communicate(timeout=20)
    assert watcher.returncode == 0, err


def test_gpt_sovits_gpt_stage_is_the_lightning_profile(pl_template, tmp_path, cli):
    """The same Lightning files in GPT-SoVITS's place are the GPT stage, read the same way
    (last.ckpt kept with its target, metrics from the names); --trainer forces either."""
    s1 = tmp_path / "GPT-SoVITS" / "logs" / "exp" / "logs_s1_v2" / "ckpt"
    shutil.copytree(pl_template, s1, symlinks=True)
    doc = json.loads(cli("scan", tmp_path, "--json").output)
    (run,) = doc["runs"]
    assert run["trainer"] == "gpt-sovits-s1" and run["trainer_reason"] == "folder logs_s1_v2/ckpt/"
    assert [f["prefix"] for s in run["sets"] for f in s["files"]] == ["GPT"] * 4
    forced = json.loads(cli("scan", s1, "--json", "--trainer", "lightning").output)
    assert forced["runs"][0]["trainer"] == "lightning"
    reasons, _ = prune_json(cli, s1, "--keep-best", "1", "--metric", "val_loss", "--mode", "max")
    assert any(w.startswith("best 1 by val_loss (3.0") for w in reasons[4])
    assert len(names(s1)) == 3 and (s1 / "last.ckpt").resolve().exists()


def test_interrupted_folder_removal_is_never_taken_for_a_checkpoint(tmp_path, cli):
    """A prune killed inside a folder set: trainer_state.json went first, so what is left is
    an incomplete folder (never newest, never resumed from by janitor's count), kept until
    --remove-incomplete --older-than takes it."""
    from tests.framework_runs import fake_hf_checkpoint

    out = tmp_path / "out"
    for i, step in enumerate((2, 4, 6)):
        fake_hf_checkpoint(out, step, mtime=OLD + i)
    (out / "checkpoint-6" / "trainer_state.json").unlink()  # killed: marker and one file gone
    (out / "checkpoint-6" / "optimizer.pt").unlink()
    os.utime(out / "checkpoint-6", (OLD + 10, OLD + 10))
    reasons, _ = prune_json(cli, out, "--keep-last", "1")
    assert names(out) == ["checkpoint-4", "checkpoint-6"]
    assert reasons[4][0] == "newest complete" and "incomplete" in reasons[6][0]
    prune_json(cli, out, "--keep-last", "1", "--remove-incomplete", "--older-than", "5m")
    assert names(out) == ["checkpoint-4"]
