"""extract-small and info: byte-level format facts checked against Applio's own output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from fixtures.gen import available_variants, write_run
from tests.conftest import REPO, can_drop_privileges, run_janitor, truncate

REAL = REPO / "fixtures" / "applio-real-tiny" / "tiny"


def load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def expected_config(cfg: dict) -> list:
    """The 18-item list, written out from the format facts (independent of janitor)."""
    d, m = cfg["data"], cfg["model"]
    return [
        d["filter_length"] // 2 + 1, 32, m["inter_channels"], m["hidden_channels"],
        m["filter_channels"], m["n_heads"], m["n_layers"], m["kernel_size"], m["p_dropout"],
        m["resblock"], m["resblock_kernel_sizes"], m["resblock_dilation_sizes"],
        m["upsample_rates"], m["upsample_initial_channel"], m["upsample_kernel_sizes"],
        m["spk_embed_dim"], m["gin_channels"], d["sample_rate"],
    ]  # fmt: skip


def same_types(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_types(x, y) for x, y in zip(a, b, strict=True))
    return True


@pytest.fixture
def real_run(tmp_path) -> Path:
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    return run


def assert_equal_small(got: dict, ref: dict, skip=("creation_date",)):
    assert list(got) == list(ref)
    assert type(got) is OrderedDict
    assert list(got["weight"]) == list(ref["weight"])
    for k, v in ref["weight"].items():
        assert got["weight"][k].dtype == v.dtype == torch.float16
        assert torch.equal(got["weight"][k], v), k
    for key in ref:
        if key in ("weight", *skip):
            continue
        assert got[key] == ref[key], key
        assert same_types(got[key], ref[key]), key


def test_equals_what_applio_itself_wrote(real_run):
    r = run_janitor("extract-small", real_run / "G_200.pth", "--author", "example-author")
    assert r.returncode == 0, r.stderr
    out = real_run / "tiny_2e_200s.pth"
    assert out.exists() and "wrote" in r.stdout
    assert_equal_small(load(out), load(REAL / "tiny_2e_200s.pth"))
    assert load(out)["creation_date"] != load(REAL / "tiny_2e_200s.pth")["creation_date"]


def test_without_config_json_the_config_is_derived_exactly(real_run):
    (real_run / "config.json").unlink()
    r = run_janitor("extract-small", real_run / "G_200.pth", "--author", "example-author", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)["extracted"][0]
    assert doc["detected"]["sr"]["value"] == 40000
    assert "upsample layout" in doc["detected"]["sr"]["from"]
    assert doc["detected"]["config"]["from"].startswith("checkpoint shapes")
    ref = load(REAL / "tiny_2e_200s.pth")
    assert_equal_small(load(real_run / "tiny_2e_200s.pth"), ref)


def test_without_model_info_defaults_and_says_so(real_run):
    (real_run / "model_info.json").unlink()
    r = run_janitor("extract-small", real_run / "G_200.pth")
    assert r.returncode == 0, r.stderr
    assert "no model_info.json" in r.stdout
    got = load(real_run / "tiny_2e_200s.pth")
    assert got["dataset_length"] is None and got["embedder_model"] == "contentvec"
    assert got["speakers_id"] == 1 and got["author"] is None


@pytest.mark.parametrize("sr, vocoder, f0", available_variants())
def test_every_variant_applio_and_rvc(tmp_path, cli, sr, vocoder, f0):
    logs = tmp_path / "logs"
    run = write_run(logs, "alice", sr=sr, vocoder=vocoder, f0=f0, steps=(2000,), with_d=False)
    g = load(run / "G_2000.pth")
    cfg = json.loads((run / "config.json").read_text())
    info = json.loads((run / "model_info.json").read_text())
    r = cli("extract-small", run / "G_2000.pth", "--json")
    assert r.exit_code == 0, r.output
    epoch = g["iteration"]
    out = run / f"alice_{epoch}e_2000s.pth"
    got = load(out)
    assert list(got["weight"]) == [k for k in g["model"] if "enc_q" not in k]
    for k, v in got["weight"].items():
        assert v.dtype == torch.float16 and torch.equal(v, g["model"][k].half()), k
    config = expected_config(cfg)
    assert got["config"] == config and same_types(got["config"], config)
    digest = f"alice-{epoch}-2000-{sr}-v2-{config}"
    assert got["model_hash"] == hashlib.sha256(digest.encode()).hexdigest()
    assert (got["epoch"], got["step"], got["sr"], got["f0"], got["version"]) == (
        epoch, 2000, sr, f0, "v2",
    )  # fmt: skip
    assert got["vocoder"] == vocoder and got["model_name"] == "alice"
    assert got["dataset_length"] == info["total_dataset_duration"]
    assert got["speakers_id"] == info["speakers_id"]
    detected = json.loads(r.stdout)["extracted"][0]["detected"]
    assert detected["vocoder"]["value"] == vocoder and detected["f0"]["value"] == f0
    # RVC WebUI's format from the same file
    r = cli("extract-small", run / "G_2000.pth", "--format", "rvc")
    assert r.exit_code == 0, r.output
    rvc = load(run / f"alice_e{epoch}_s2000.pth")
    assert list(rvc) == ["weight", "config", "info", "sr", "f0", "version"]
    assert rvc["info"] == f"{epoch}epoch" and rvc["sr"] == f"{sr // 1000}k"
    assert rvc["f0"] == int(f0) and type(rvc["f0"]) is int and rvc["version"] == "v2"
    assert rvc["config"] == config


def test_acceptance_default_output_name(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=(1000, 2000), steps_per_epoch=100)
    r = run_janitor("extract-small", "logs/alice/G_2000.pth", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (logs / "alice" / "alice_20e_2000s.pth").exists()


def test_latest_only_step_and_flag(tmp_path, cli):
    run = write_run(tmp_path / "logs", "bob", steps=(100, 500), latest_only=True, with_d=False)
    r = cli("extract-small", run / "G_2333333.pth")
    assert r.exit_code == 0 and "using 0 (pass --step N)" in r.stdout
    epoch = load(run / "G_2333333.pth")["iteration"]
    assert load(run / f"bob_{epoch}e_0s.pth")["step"] == 0
    r = cli("extract-small", run / "G_2333333.pth", "--step", "500", "--name", "x")
    assert r.exit_code == 0 and load(run / f"x_{epoch}e_500s.pth")["step"] == 500


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run = tmp_path / "logs" / "evil"
    run.mkdir(parents=True)
    torch.save({"model": {"x": Evil()}, "iteration": 1}, run / "G_100.pth")
    for cmd in ("extract-small", "info"):
        r = run_janitor(cmd, run / "G_100.pth")
        assert r.returncode == 1
        assert "refusing to load" in r.stderr and "nothing in it was run" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == ["G_100.pth"]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("bad") / "logs", "alice", steps=(100, 200))


@pytest.mark.parametrize(
    "target, message",
    [
        ("D_200.pth", "is a D_ file"),
        ("alice_1e_100s.pth", "is already a small model"),
        ("G_truncated", "not a complete torch checkpoint (truncated"),
        ("missing", "no such file"),
    ],
)
def test_bad_inputs_clear_errors_no_partial_files(tmp_path, small_run, target, message):
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    if target == "G_truncated":
        shutil.copy(run / "G_200.pth", run / "G_300.pth")
        truncate(run / "G_300.pth")
        target = "G_300.pth"
    if target.startswith("alice_"):
        shutil.copy(REAL / "tiny_1e_100s.pth", run / target)
    before = _listing(run)
    r = run_janitor("extract-small", run / target)
    assert r.returncode in (1, 2), r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _listing(run) == before


def test_existing_output_needs_force(tmp_path, small_run, cli):
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    assert cli("extract-small", run / "G_200.pth").exit_code == 0
    out = run / "alice_2e_200s.pth"
    first = out.read_bytes()
    r = run_janitor("extract-small", run / "G_200.pth")
    assert r.returncode == 1 and "exists; pass --force" in r.stderr
    assert out.read_bytes() == first
    assert cli("extract-small", run / "G_200.pth", "--force").exit_code == 0


def test_unwritable_output_folder(tmp_path, small_run):
    if not can_drop_privileges():
        pytest.skip("setpriv is needed to test permissions as root")
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        r = run_janitor("extract-small", run / "G_200.pth", "-o", out_dir, unprivileged=True)
    finally:
        out_dir.chmod(0o755)
    assert r.returncode == 1 and "cannot write in" in r.stderr and "Traceback" not in r.stderr
    assert list(out_dir.iterdir()) == []


def test_batch_one_process_others_still_convert(tmp_path, small_run):
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    out = tmp_path / "out"
    out.mkdir()
    r = run_janitor(
        "extract-small",
        run / "G_100.pth",
        run / "D_100.pth",
        run / "G_200.pth",
        "-o",
        out,
        "--json",
    )
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert [os.path.basename(e["output"]) for e in doc["extracted"]] == [
        "alice_1e_100s.pth", "alice_2e_200s.pth",
    ]  # fmt: skip
    assert len(doc["errors"]) == 1 and "D_100.pth" in doc["errors"][0]["path"]
    assert sorted(p.name for p in out.iterdir()) == ["alice_1e_100s.pth", "alice_2e_200s.pth"]


def test_stale_temp_folders_are_cleaned(tmp_path, small_run, cli):
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    stale = run / ".janitor-tmp-999999999-abc"
    stale.mkdir()
    (stale / "alice_2e_200s.pth").write_bytes(b"partial")
    assert cli("extract-small", run / "G_200.pth").exit_code == 0
    assert not stale.exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".janitor-tmp-")]


def test_info_big_and_small(tmp_path, small_run):
    r = run_janitor("info", small_run / "G_200.pth", REAL / "tiny_2e_200s.pth", "--json")
    assert r.returncode == 0, r.stderr
    big, small = json.loads(r.stdout)
    assert big["kind"] == "G" and big["epoch"] == 2 and big["step"] == 200
    assert big["optimizer_state"] is True and big["parameters"] > 0
    assert big["detected"]["version"]["value"] == "v2" and big["trainer"]["value"] == "applio"
    assert small["kind"] == "small" and small["dtypes"] == ["float16"]
    meta = small["metadata"]
    assert meta["author"] == "example-author" and meta["model_name"] == "tiny"
    assert meta["epoch"] == 2 and meta["vocoder"] == "HiFi-GAN"
    text = run_janitor("info", REAL / "tiny_2e_200s.pth").stdout
    assert "model_hash" in text and "embedder_model  contentvec" in text


def test_info_never_imports_torch_for_non_checkpoints(tmp_path):
    junk = tmp_path / "notes.pth"
    junk.write_text("not a checkpoint")
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "janitor", "info", str(junk)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 1 and "not a complete torch checkpoint" in r.stderr
    assert not [line for line in r.stderr.splitlines() if line.rstrip().endswith("| torch")]
