"""extract-small and info: byte-level format facts checked against Applio's own output."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import janitor.storage.fs as fs_module
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
    big, small = json.loads(r.stdout)["files"]
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


# ----------------------------------------------------------------- 15. the trainer's own file

never_replace = pytest.mark.safety("15. small models: never replace the trainer's own file")


@never_replace
@pytest.mark.parametrize(
    "flags, code, message",
    [
        (("--skip-existing",), 0, "exists, left alone"),  # what the watcher and finalize use
        ((), 1, "exists; pass --force"),  # the same answer as for a file seen before
    ],
)
def test_small_model_the_trainer_writes_meanwhile_is_never_replaced(
    tmp_path, small_run, cli, monkeypatch, flags, code, message
):
    """Applio writes <name>_<E>e_<S>s.pth right after its D; janitor's existence check came
    earlier. The trainer's file lands between janitor's check and janitor's publish step."""
    from janitor.torchio import extract

    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    out = run / "alice_2e_200s.pth"
    trainer_bytes = (REAL / "tiny_2e_200s.pth").read_bytes()
    real_half = extract.half_weights

    def trainer_saves_now(*args, **kwargs):  # after the existence check, before publishing
        assert not out.exists()
        out.write_bytes(trainer_bytes)
        return real_half(*args, **kwargs)

    monkeypatch.setattr(extract, "half_weights", trainer_saves_now)
    r = cli("extract-small", run / "G_200.pth", *flags)
    assert r.exit_code == code, r.output
    assert message in (r.stdout if code == 0 else r.stderr)
    assert "wrote" not in r.stdout
    assert out.read_bytes() == trainer_bytes
    assert not [p for p in run.iterdir() if p.name.startswith(".janitor-tmp-")]


@never_replace
def test_small_model_race_in_the_library_reports_skipped(tmp_path, small_run, monkeypatch):
    from janitor.torchio import extract

    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    out = run / "alice_2e_200s.pth"
    real_half = extract.half_weights

    def trainer_saves_now(*args, **kwargs):
        out.write_bytes(b"the trainer's own small model")
        return real_half(*args, **kwargs)

    monkeypatch.setattr(extract, "half_weights", trainer_saves_now)
    done = extract.extract_one(str(run / "G_200.pth"), extract.Options(skip_existing=True))
    assert done.skipped and done.output == str(out)
    assert out.read_bytes() == b"the trainer's own small model"


def _no_link(kind):
    def link(src, dst, *a, **kw):
        if kind == "EXDEV":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        raise OSError(errno.EPERM, "Operation not permitted")  # vfat, exFAT, some FUSE

    return link


@pytest.fixture(params=["hard link", "EPERM: no-replace rename", "no os.link", "copy O_EXCL"])
def publish_mode(request, monkeypatch):
    """Every way publish_new can put a finished temp file in place."""

    mode = request.param
    if mode == "EPERM: no-replace rename":
        monkeypatch.setattr(os, "link", _no_link("EPERM"))
    elif mode == "no os.link":
        monkeypatch.delattr(os, "link")
    elif mode == "copy O_EXCL":
        monkeypatch.setattr(os, "link", _no_link("EXDEV"))
        monkeypatch.setattr(fs_module, "_rename_noreplace", lambda src, dst: None)
    return mode


@never_replace
def test_publish_new_creates_or_leaves_alone(tmp_path, publish_mode, cases):
    from janitor.storage.fs import publish_new

    tmp = tmp_path / "tmp" / "m.pth"
    tmp.parent.mkdir()
    tmp.write_bytes(b"janitor's bytes")
    final = tmp_path / "m.pth"
    final.write_bytes(b"trainer's bytes")
    assert publish_new(str(tmp), str(final)) is False
    assert final.read_bytes() == b"trainer's bytes"
    cases()
    final.unlink()
    assert publish_new(str(tmp), str(final)) is True
    assert final.read_bytes() == b"janitor's bytes"
    cases()


@never_replace
def test_no_replace_rename_and_exclusive_copy_never_replace(tmp_path, monkeypatch):

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"janitor")
    dst.write_bytes(b"trainer")
    moved = fs_module._rename_noreplace(str(src), str(dst))
    if moved is None:
        pytest.skip("no renameat2/renamex_np here")
    assert moved is False and dst.read_bytes() == b"trainer" and src.exists()
    dst.unlink()
    assert fs_module._rename_noreplace(str(src), str(dst)) is True
    assert dst.read_bytes() == b"janitor" and not src.exists()
    # a copy that fails half-way removes the name it created, and only that
    src.write_bytes(b"janitor")
    dst.unlink()

    def disk_full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(OSError):
        fs_module._copy_exclusive(str(src), str(dst))
    assert not dst.exists()
    dst.write_bytes(b"trainer")
    assert fs_module._copy_exclusive(str(src), str(dst)) is False
    assert dst.read_bytes() == b"trainer"


@never_replace
def test_publish_fallbacks_through_the_cli(tmp_path, small_run, cli, publish_mode, monkeypatch):
    """Without hard links the output is still complete, and a trainer's file still wins."""
    from janitor.torchio import extract

    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    r = cli("extract-small", run / "G_200.pth")
    assert r.exit_code == 0 and "wrote" in r.stdout, r.output
    got = load(run / "alice_2e_200s.pth")
    assert got["step"] == 200 and got["model_name"] == "alice"
    out = run / "alice_1e_100s.pth"
    real_half = extract.half_weights

    def trainer_saves_now(*args, **kwargs):
        out.write_bytes(b"trainer")
        return real_half(*args, **kwargs)

    monkeypatch.setattr(extract, "half_weights", trainer_saves_now)
    r = cli("extract-small", run / "G_100.pth", "--skip-existing")
    assert r.exit_code == 0 and "exists, left alone" in r.stdout, r.output
    assert out.read_bytes() == b"trainer"
    assert not [p for p in run.iterdir() if p.name.startswith(".janitor-tmp-")]


@never_replace
def test_force_still_replaces(tmp_path, small_run, cli):
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    out = run / "alice_2e_200s.pth"
    out.write_bytes(b"old")
    r = cli("extract-small", run / "G_200.pth", "--force")
    assert r.exit_code == 0 and "wrote" in r.stdout, r.output
    assert load(out)["step"] == 200


@pytest.mark.parametrize("how", ["fsync on a folder fails", "a folder cannot be opened"])
def test_folder_fsync_failure_is_not_a_failed_write(tmp_path, small_run, cli, monkeypatch, how):
    """Some platforms and file systems refuse to fsync (or open) a folder; the file itself
    was written and fsynced, so that is no reason to report a failure."""
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    real_fsync, real_open = os.fsync, os.open

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    def open_(path, flags, *a, **kw):
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *a, **kw)

    if how == "fsync on a folder fails":
        monkeypatch.setattr(os, "fsync", fsync)
    else:
        monkeypatch.setattr(os, "open", open_)
    r = cli("extract-small", run / "G_200.pth")
    assert r.exit_code == 0 and "wrote" in r.stdout, r.output
    assert load(run / "alice_2e_200s.pth")["step"] == 200


# ----------------------------------------------------------------- speaker count (issue 13.11)


def test_speaker_count_comes_from_the_weights_as_applio_does(real_run, cli):
    """Applio's training sets spk_embed_dim from the generator's emb_g rows before it builds
    the model and passes that config to its extraction; config.json keeps the preprocessing
    value (109 on a run trained without a pretrained model). The reference run's G has 4
    rows; with config.json saying 109 Applio would still write exactly its own small model."""
    cfg = json.loads((real_run / "config.json").read_text())
    rows = load(real_run / "G_200.pth")["model"]["emb_g.weight"].shape[0]
    assert rows == 4 and cfg["model"]["spk_embed_dim"] == 4
    cfg["model"]["spk_embed_dim"] = 109
    (real_run / "config.json").write_text(json.dumps(cfg, indent=4))
    r = run_janitor("extract-small", real_run / "G_200.pth", "--author", "example-author", "--json")
    assert r.returncode == 0, r.stderr
    got = load(real_run / "tiny_2e_200s.pth")
    ref = load(REAL / "tiny_2e_200s.pth")
    assert_equal_small(got, ref)  # every field but creation_date, Applio's own bytes
    # and field by field from the facts
    cfg["model"]["spk_embed_dim"] = rows
    config = expected_config(cfg)
    assert got["config"] == config and got["config"][15] == 4
    digest = f"tiny-2-200-40000-v2-{config}"
    assert got["model_hash"] == hashlib.sha256(digest.encode()).hexdigest()
    doc = json.loads(r.stdout)["extracted"][0]
    assert "emb_g.weight" in doc["detected"]["config"]["from"]
    assert any("spk_embed_dim 109" in n and "weights" in n for n in doc["notes"])
    # RVC WebUI's savee writes config.json's value as it is (its inference replaces
    # config[-3] with the emb_g rows when it loads the file)
    r = cli("extract-small", real_run / "G_200.pth", "--format", "rvc")
    assert r.exit_code == 0, r.output
    assert load(real_run / "tiny_e2_s200.pth")["config"][15] == 109
    r = cli("info", real_run / "G_200.pth", "--json")
    detected = json.loads(r.stdout)["files"][0]["detected"]
    assert detected["config"]["value"][15] == 4 and detected["speakers"]["value"] == 4


# ----------------------------------------------------------------- options (issue 13, general rule)


@pytest.fixture(scope="module")
def option_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("opts")
    write_run(root / "logs", "alice", steps=(100, 200), with_d=False)
    bare = root / "bare" / "bob"  # Applio's own G (a shipped upsample layout), no config.json
    bare.mkdir(parents=True)
    shutil.copy(REAL / "G_200.pth", bare / "G_200.pth")
    return root


OPTION_CASES = [
    # (name, args after the input, message fragment); {run} is the run folder
    ("sr zero", ["--sr", "0"], "--sr"),
    ("sr negative", ["--sr", "-40000"], "--sr"),
    ("sr nan", ["--sr", "nan"], "--sr"),
    ("sr infinity", ["--sr", "inf"], "--sr"),
    ("sr absurd", ["--sr", "400000000000000000000"], "--sr"),
    ("sr vs config.json", ["--sr", "48000"], "--sr 48000 contradicts config.json"),
    ("sr vs weights", ["--sr", "48000", "@bare"], "--sr 48000 contradicts the weights"),
    ("step negative", ["--step", "-1"], "--step"),
    ("step nan", ["--step", "nan"], "--step"),
    ("step absurd", ["--step", "10000000000000"], "--step"),
    ("step vs file name", ["--step", "500"], "--step 500 contradicts the file name"),
    ("version unknown", ["--version", "v3"], "--version"),
    ("version vs weights", ["--version", "v1"], "--version v1 contradicts the weights"),
    ("no-f0 vs weights", ["--no-f0"], "--no-f0 contradicts the weights"),
    ("vocoder unknown", ["--vocoder", "WaveNet"], "--vocoder"),
    (
        "vocoder vs weights",
        ["--vocoder", "RefineGAN"],
        "--vocoder RefineGAN contradicts the weights",
    ),
    ("format unknown", ["--format", "onnx"], "--format"),
    ("name empty", ["--name", ""], "--name"),
    ("name with a path", ["--name", "../evil"], "--name"),
    ("output in a missing folder", ["-o", "{tmp}/nowhere/out.pth"], "--output"),
    ("output missing folder/", ["-o", "{tmp}/nowhere/"], "--output"),
    ("output under a file", ["-o", "{run}/config.json/out.pth"], "--output"),
    ("output is a checkpoint name", ["-o", "{tmp}/G_300.pth"], "--output"),
    ("output is the input", ["-o", "{run}/G_200.pth", "--force"], "--output"),
    ("output file, several inputs", ["-o", "{run}/config.json", "{run}/G_100.pth"], "--output"),
    ("output missing, several inputs", ["-o", "{tmp}/nowhere/", "{run}/G_100.pth"], "--output"),
    ("force and skip-existing", ["--force", "--skip-existing"], "--force"),
]


@pytest.mark.parametrize("case, args, message", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_extract_options_are_validated_where_they_enter(
    tmp_path, option_runs, cli, case, args, message
):
    root = Path(shutil.copytree(option_runs, tmp_path / "root"))
    run, bare = root / "logs" / "alice", root / "bare" / "bob"
    target = run / "G_200.pth"
    if "@bare" in args:
        args = [a for a in args if a != "@bare"]
        target = bare / "G_200.pth"
    args = [a.format(run=run, tmp=tmp_path) for a in args]
    before = _listing(tmp_path)
    r = cli("extract-small", target, *args)
    assert r.exit_code == 2, (case, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], (case, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert _listing(tmp_path) == before  # nothing written, no temp folder, no folder made


def test_config_json_missing_a_key_names_file_and_key(tmp_path, small_run):
    run = Path(shutil.copytree(small_run, tmp_path / "alice"))
    cfg = json.loads((run / "config.json").read_text())
    del cfg["data"]["sample_rate"]
    (run / "config.json").write_text(json.dumps(cfg))
    before = _listing(run)
    r = run_janitor("extract-small", run / "G_200.pth")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().endswith("config.json: no data.sample_rate")
    assert len(r.stderr.strip().splitlines()) == 1 and _listing(run) == before
    r = run_janitor("info", run / "G_200.pth", "--json")
    assert (
        r.returncode == 0
        and "no data.sample_rate" in json.loads(r.stdout)["files"][0]["detected"]["error"]
    )
