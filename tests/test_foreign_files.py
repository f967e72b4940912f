"""User files inside a checkpoint folder (issue 26, item 9): a `checkpoint-<step>/` holding a
file the HF Trainer did not write is kept, by the protection law, with a reason naming the
file, under every rule and waiver; the set's time comes from the Trainer's files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from janitor.core import law
from janitor.core.frameworks import foreign_files
from janitor.domain.plans import Waiver
from janitor.storage.scan import scan
from tests.framework_runs import fake_hf_checkpoint

OLD = 1_600_000_000.0


@pytest.fixture
def run(tmp_path) -> Path:
    """logs/hf: checkpoint-100..400, idle for years; NOTES.md (written now) in 100 and
    samples/a.wav in 200."""
    out = tmp_path / "logs" / "hf"
    for step in (100, 200, 300, 400):
        fake_hf_checkpoint(out, step, mtime=OLD + step)
    (out / "checkpoint-100" / "NOTES.md").write_text("the good one\n")
    (out / "checkpoint-200" / "samples").mkdir()
    (out / "checkpoint-200" / "samples" / "a.wav").write_bytes(b"RIFF" + bytes(40))
    return out


def folders(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.is_dir())


def test_prune_keeps_a_folder_holding_user_files_and_says_which(run, cli):
    r = cli("prune", run.parent, "--keep-last", "1", "-n", "--json")
    assert r.exit_code == 0, r.output
    (rp,) = json.loads(r.stdout)["runs"]
    sets = {os.path.basename(s["folder"]): (s["action"], s["reasons"]) for s in rp["sets"]}
    assert sets["checkpoint-100"][0] == sets["checkpoint-200"][0] == "keep"
    assert any("NOTES.md" in why for why in sets["checkpoint-100"][1])
    assert any("samples/a.wav" in why for why in sets["checkpoint-200"][1])
    assert sets["checkpoint-300"][0] == "remove"
    assert rp["expected_freed"] == sum(p.stat().st_size for p in (run / "checkpoint-300").iterdir())
    r = cli("prune", run.parent, "--keep-last", "1")
    assert r.exit_code == 0, r.output
    assert folders(run) == ["checkpoint-100", "checkpoint-200", "checkpoint-400"]
    assert (run / "checkpoint-100" / "NOTES.md").read_text() == "the good one\n"
    assert (run / "checkpoint-200" / "samples" / "a.wav").exists()


def test_no_waiver_lifts_it(run):
    (found,) = scan([str(run)]).runs
    for waiver in (Waiver("finalize"), Waiver("remove-incomplete", older_than=0.0)):
        why = law.judge(found, (), time.time(), waiver)
        assert any("NOTES.md" in r for r in why[100]), waiver
        assert any("samples/a.wav" in r for r in why[200]), waiver
        assert why[300] == [] or waiver.kind != "finalize"


def test_the_set_s_time_is_its_checkpoint_files(run):
    (found,) = scan([str(run)]).runs
    by_step = {s.number: s for s in found.sets}
    assert by_step[100].mtime == OLD + 100  # NOTES.md, written now, does not count
    assert found.last_activity == OLD + 400  # the run is idle: the user's files are not saves
    assert all(not f.name.endswith(("NOTES.md", "a.wav")) for s in found.sets for f in s.files)


@pytest.mark.parametrize(
    ("names", "foreign"),
    [
        (["config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "scaler.pt",
          "rng_state.pth", "rng_state_1.pth", "training_args.bin", "trainer_state.json",
          "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "vocab.json", "merges.txt",
          "model-00001-of-00002.safetensors", "model.safetensors.index.json",
          "global_step100/mp_rank_00_model_states.pt", "latest", "zero_to_fp32.py",
          "pytorch_model_fsdp_0/__0_0.distcp", "optimizer_0/__0_0.distcp", ".tmpab12cd"], []),
        (["adapter_model.safetensors", "adapter_config.json", "README.md"], []),
        (["model.safetensors", "README.md", "notes/x.txt", "samples/a.wav"],
         ["README.md", "notes/x.txt", "samples/a.wav"]),
    ],
)  # fmt: skip
def test_what_the_trainer_writes(names, foreign):
    assert foreign_files(names) == foreign
