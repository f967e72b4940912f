"""Every trainer's own export (issue 19): what extract-small writes is, field by field and bit
for bit, what RVC WebUI, so-vits-svc / Bert-VITS2 (compress_model.py) and GPT-SoVITS
(process_ckpt.savee, the s1_train.py callback) write from the same big checkpoint.

References are built in ``fixtures.trainers`` / ``fixtures.gen`` from the facts (key order,
types, dtypes, header bytes), independently of janitor; the run folders are tiny but carry
every key of the trainers' real generators (``fixtures/formats/<trainer>/``)."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zipfile
from collections import OrderedDict
from pathlib import Path

import jsonschema
import pytest
import torch

from fixtures import trainers as T
from fixtures.gen import rvc_small_model, write_run
from tests.conftest import REPO, run_janitor

SCHEMA = json.loads((REPO / "docs" / "scan.schema.json").read_text())


def load(path: Path, allow=()):
    with torch.serialization.safe_globals(list(allow)):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_replaced(path: Path, allow=()):
    data = path.read_bytes()
    with torch.serialization.safe_globals(list(allow)):
        return torch.load(io.BytesIO(b"PK" + data[2:]), map_location="cpu", weights_only=True)


def same(a, b) -> None:
    """Equal values of the same Python types, tensors bit for bit with the same dtype."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    else:
        assert a == b


def only_enc_q_missing(weight: dict, g_model: dict) -> None:
    """What the trainers' strict=False loaders report: the keys of the network (the G's) not
    in the file are exactly enc_q.*, and nothing in the file is unknown to the network."""
    missing = set(g_model) - set(weight)
    assert missing and all("enc_q" in k for k in missing)
    assert set(weight) <= set(g_model)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exports")
    T.write_sovits_run(root / "so-vits-svc")
    T.write_bert_vits2_run(root / "Bert-VITS2")
    for version in T.SOVITS_VERSIONS:
        T.write_gpt_sovits_run(root / f"GPT-SoVITS-{version}", version)
    T.write_gpt_run(root / "GPT-SoVITS-s1")
    return root


@pytest.fixture
def tree(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "t"))


# ----------------------------------------------------------------- so-vits-svc, Bert-VITS2

RELEASE_RUNS = {
    "so-vits-svc": ("so-vits-svc/logs/44k", "G_1600.pth", "so-vits-svc/logs/44k/config.json"),
    "bert-vits2": ("Bert-VITS2/Data/alice/models", "G_2000.pth",
                   "Bert-VITS2/Data/alice/configs/config.json"),
}  # fmt: skip


@pytest.mark.parametrize("trainer", RELEASE_RUNS)
@pytest.mark.parametrize("half", [False, True])
def test_release_file_equals_compress_model(tree, cli, trainer, half):
    run, g_name, cfg_path = RELEASE_RUNS[trainer]
    g_path = tree / run / g_name
    r = cli("extract-small", g_path, *(["--half"] if half else []))
    assert r.exit_code == 0, r.output
    out = g_path.with_name(g_name[:-4] + ("_release_half.pth" if half else "_release.pth"))
    got = load(out)  # plain weights-only load, as the trainers' own loaders do on torch >= 2.6
    g = load(g_path)
    ref = T.release_export(g, json.loads((tree / cfg_path).read_text()), half)
    assert list(got) == ["model", "iteration", "optimizer", "learning_rate"]
    same(got, ref)  # every field, type and tensor; the optimizer's param group included
    assert type(got["optimizer"]["param_groups"][0]["betas"]) is tuple
    assert got["optimizer"]["param_groups"][0]["params"] == list(range(len(g["model"])))
    assert {t.dtype for t in got["model"].values()} == {torch.float16 if half else torch.float32}
    only_enc_q_missing(got["model"], g["model"])
    (doc,) = json.loads(cli("info", out, "--json").stdout)["files"]  # the one JSON envelope
    assert (doc["kind"], doc["format"], doc["epoch"]) == ("small", "release", 0)


def test_release_names_are_small_models_in_scan_and_never_pruned(tree, cli):
    run = tree / "so-vits-svc/logs/44k"
    assert cli("extract-small", run / "G_800.pth").exit_code == 0
    assert cli("extract-small", run / "G_1600.pth", "--half").exit_code == 0
    r = cli("scan", run, "--json")
    jsonschema.validate(json.loads(r.stdout), SCHEMA)
    doc = json.loads(r.stdout)["runs"][0]
    assert sorted(m["name"] for m in doc["small_models"]) == [
        "G_1600_release_half.pth", "G_800_release.pth",
    ]  # fmt: skip
    assert {m["format"] for m in doc["small_models"]} == {"release"}
    assert [s["number"] for s in doc["sets"]] == [0, 800, 1600]
    assert not doc["ignored"]
    text = cli("scan", run).stdout
    assert "G_800_release.pth: compress_model.py release file, not a checkpoint" in text
    r = cli("prune", tree / "so-vits-svc/logs", "--keep-last", "1")
    assert r.exit_code == 0, r.output
    left = sorted(p.name for p in run.iterdir())
    assert "G_800_release.pth" in left and "G_1600_release_half.pth" in left
    assert "G_800.pth" not in left and "G_1600.pth" in left


def test_release_needs_the_run_config(tree, cli):
    run = tree / "so-vits-svc/logs/44k"
    (run / "config.json").unlink()
    r = cli("extract-small", run / "G_1600.pth")
    assert r.exit_code == 2 and "needs the run's config.json" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not list(run.glob("*_release*"))


# ----------------------------------------------------------------- GPT-SoVITS


@pytest.mark.parametrize("version", T.SOVITS_VERSIONS)
def test_sovits_weights_equal_savee(tree, cli, version):
    root = tree / f"GPT-SoVITS-{version}"
    g_path = root / "logs/alice" / f"logs_s2_{version}" / "G_68.pth"
    r = cli("extract-small", g_path)
    assert r.exit_code == 0, r.output
    folder = "SoVITS_weights" if version == "v1" else f"SoVITS_weights_{version}"
    out = root / folder / "alice_e4_s68.pth"
    g = load(g_path)
    cfg = json.loads((root / "logs/alice/config.json").read_text())
    ref = T.sovits_export(g, cfg, epoch=4, step=68, version=version)
    data = out.read_bytes()
    assert data[:2] == ref[:2] == {"v2Pro": b"05", "v2ProPlus": b"06"}.get(version, b"PK")
    if version in ("v2Pro", "v2ProPlus"):  # saved through memory by the trainer: "archive/"
        names = zipfile.ZipFile(io.BytesIO(b"PK" + data[2:])).namelist()
        assert names[0] == "archive/data.pkl"
    # the trainer's own loader (PK restored, its utils importable) reads both the same way
    got, want = T.load_as_trainer(data), T.load_as_trainer(ref)
    assert type(got) is OrderedDict and list(got) == ["weight", "config", "info"]
    same(got["weight"], want["weight"])
    assert type(got["config"]).__module__ == "utils" and type(got["config"]).__name__ == "HParams"
    assert repr(got["config"]) == repr(want["config"])  # every attribute, nested, in order
    assert list(vars(got["config"]))[-2:] == ["pretrain", "resume_step"]
    assert vars(got["config"].train) == vars(want["config"].train)
    assert got["info"] == want["info"] == "4epoch_68iteration"
    only_enc_q_missing(got["weight"], g["model"])
    # weights-only with exactly the one name allow-listed, mapped to an inert class
    from janitor.torchio.pickling import HParams

    inert = load_replaced(out, [(HParams, "utils.HParams")])
    assert inert["config"].as_dict() == {**cfg, "pretrain": None, "resume_step": None}
    with pytest.raises(pickle.UnpicklingError, match="utils.HParams"):
        load_replaced(out)
    r = cli("info", out, "--json")
    (doc,) = json.loads(r.stdout)["files"]
    assert doc["format"] == "gpt-sovits" and doc["version"].startswith(version + " ")


def test_gpt_weights_equal_the_lightning_callback(tree, cli):
    ckpt_dir = tree / "GPT-SoVITS-s1/logs/alice/logs_s1_v2/ckpt"
    src = ckpt_dir / "epoch=9-step=120.ckpt"
    with pytest.raises(pickle.UnpicklingError, match="PosixPath"):
        load(src)  # Lightning's checkpoint needs pathlib.PosixPath allow-listed
    r = cli("extract-small", src)
    assert r.exit_code == 0, r.output
    out = tree / "GPT-SoVITS-s1/GPT_weights_v2/alice-e10.ckpt"
    got = load(out)  # the GPT weights themselves load weights-only as they are
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    ref = T.gpt_export(ckpt)
    assert type(got) is OrderedDict and type(got["weight"]) is OrderedDict
    same(got, ref)
    assert got["info"] == "GPT-e10"
    assert set(got["weight"]) == set(ckpt["state_dict"])  # strict load_state_dict: nothing left


def test_latest_only_sovits_file_needs_its_step(tmp_path, cli):
    run = T.write_gpt_sovits_run(tmp_path, "v2Pro", steps=(51,), latest_only=True)
    g = run / f"G_{T.GPT_LATEST}.pth"
    r = cli("extract-small", g)
    assert r.exit_code == 2 and "pass --step N" in r.output
    assert not list((tmp_path / "SoVITS_weights_v2Pro").iterdir())
    r = cli("extract-small", g, "--step", "51")
    assert r.exit_code == 0, r.output
    got = load_replaced(tmp_path / "SoVITS_weights_v2Pro/alice_e3_s51.pth",
                        [(T.trainer_utils_module().HParams, "utils.HParams")])  # fmt: skip
    assert got["info"] == "3epoch_51iteration"


def test_lora_runs_are_refused_clearly(tmp_path, cli):
    run = tmp_path / "logs/alice/logs_s2_v3"
    run.mkdir(parents=True)
    model = {"enc_p.text_embedding.weight": torch.zeros(732, 2),
             "quantizer.vq.layers.0._codebook.embed": torch.zeros(1, 2, 2),
             "cfm.estimator.proj.weight": torch.zeros(2, 2), "dec.x": torch.zeros(1)}  # fmt: skip
    torch.save({"model": model, "iteration": 1, "optimizer": {}, "learning_rate": 1e-4},
               run / "G_10.pth")  # fmt: skip
    (tmp_path / "logs/alice/config.json").write_text(json.dumps(T.sovits_config("v2")))
    r = cli("extract-small", run / "G_10.pth")
    assert r.exit_code == 2 and "v3 and v4 SoVITS runs train LoRA adapters" in r.output
    assert len(r.output.strip().splitlines()) == 1


# ----------------------------------------------------------------- RVC WebUI


@pytest.fixture
def rvc_run(tmp_path) -> Path:
    run = write_run(tmp_path / "RVC" / "logs", "exp", trainer="rvc", sr=48000, steps=(300,),
                    with_d=False, extras=True)  # fmt: skip
    (tmp_path / "RVC/assets/weights").mkdir(parents=True)
    return run


def test_rvc_webui_run_equals_savee(rvc_run, cli):
    cfg = json.loads((rvc_run / "config.json").read_text())
    assert "sampling_rate" in cfg["data"] and "sample_rate" not in cfg["data"]
    r = cli("extract-small", rvc_run / "G_300.pth")  # was: internal error KeyError 'sample_rate'
    assert r.exit_code == 0, r.output
    g = load(rvc_run / "G_300.pth")
    got = load(rvc_run.parent.parent / "assets/weights/exp_e3_s300.pth")
    ref = rvc_small_model(g["model"], epoch=3, cfg=cfg, f0=True)
    assert list(got) == ["weight", "config", "info", "sr", "f0", "version"]
    same(dict(got), dict(ref))
    assert got["config"][8] == 0 and type(got["config"][8]) is int  # p_dropout, JSON's int
    assert got["config"][-1] == 48000 and got["sr"] == "48k" and got["f0"] == 1
    only_enc_q_missing(got["weight"], g["model"])


def test_rvc_webui_like_extract(rvc_run, cli):
    r = cli("extract-small", rvc_run / "G_300.pth", "--like", "extract", "--info", "mine")
    assert r.exit_code == 0, r.output
    got = load(rvc_run.parent.parent / "assets/weights/exp.pth")
    assert list(got) == ["weight", "config", "info", "version", "sr", "f0"]
    assert got["config"] == [
        1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [[1, 3, 5]] * 3, [12, 10, 2, 2],
        512, [24, 20, 4, 4], 109, 256, 48000,
    ]  # fmt: skip
    assert (got["info"], got["version"], got["sr"], got["f0"]) == ("mine", "v2", "48k", 1)


def test_rvc_extract_configs_from_the_facts():
    from janitor.core.smallmodel import rvc_extract_config, rvc_train_facts

    ups = {(40000, "v1"): ([10, 10, 2, 2], [16, 16, 4, 4]),
           (40000, "v2"): ([10, 10, 2, 2], [16, 16, 4, 4]),
           (48000, "v1"): ([10, 6, 2, 2, 2], [16, 16, 4, 4, 4]),
           (48000, "v2"): ([12, 10, 2, 2], [24, 20, 4, 4]),
           (32000, "v1"): ([10, 4, 2, 2, 2], [16, 16, 4, 4, 4]),
           (32000, "v2"): ([10, 8, 2, 2], [20, 16, 4, 4])}  # fmt: skip
    for (sr, version), (rates, kernels) in ups.items():
        got = rvc_extract_config(sr, version)
        assert got[0] == (513 if sr == 32000 else 1025) and got[12:15] == [rates, 512, kernels]
        assert got[-1] == sr and got[8] == 0 and got[9] == "1" and len(got) == 18
    line = "2024-06-04 12:00:00,000\texp\tINFO\t{'sample_rate': '32k', 'if_f0': 0, 'version': 'v1'}"
    assert rvc_train_facts(line) == {"sample_rate": "32k", "if_f0": 0, "version": "v1"}
    assert rvc_train_facts("garbage {__import__('os')}") == {}


# ----------------------------------------------------------------- finalize, watch's worker


@pytest.mark.parametrize(
    "run, small",
    [
        ("so-vits-svc/logs/44k", "so-vits-svc/logs/44k/G_1600_release.pth"),
        ("GPT-SoVITS-v2Pro/logs/alice/logs_s2_v2Pro",
         "GPT-SoVITS-v2Pro/SoVITS_weights_v2Pro/alice_e4_s68.pth"),
        ("GPT-SoVITS-s1/logs/alice/logs_s1_v2/ckpt", "GPT-SoVITS-s1/GPT_weights_v2/alice-e10.ckpt"),
    ],
)  # fmt: skip
def test_finalize_extracts_verifies_and_removes(tree, cli, run, small):
    r = cli("finalize", tree / run, "--force")
    assert r.exit_code == 0, r.output
    assert "verified" in r.output and (tree / small).exists()
    left = {p.name for p in (tree / run).iterdir()}
    assert not {n for n in left if n.startswith(("G_", "D_", "epoch=")) and
                not n.startswith(("G_0", "D_0")) and "_release" not in n}  # fmt: skip


def test_verification_catches_a_wrong_tensor_and_a_lost_header(tree, cli):
    run = tree / "so-vits-svc/logs/44k"
    assert cli("extract-small", run / "G_1600.pth").exit_code == 0
    small = load(run / "G_1600_release.pth")
    key = next(iter(small["model"]))
    small["model"][key] = small["model"][key] + 1
    torch.save(small, run / "G_1600_release.pth")
    r = cli("finalize", run, "--force")
    assert r.exit_code == 1 and f"tensor {key} differs" in r.output
    assert (run / "G_1600.pth").exists()
    # a v2Pro file saved with a plain PK header is built as a v2 network by GPT-SoVITS
    pro = tree / "GPT-SoVITS-v2Pro"
    assert cli("extract-small", pro / "logs/alice/logs_s2_v2Pro/G_68.pth").exit_code == 0
    out = pro / "SoVITS_weights_v2Pro/alice_e4_s68.pth"
    out.write_bytes(b"PK" + out.read_bytes()[2:])
    r = cli("finalize", pro / "logs/alice/logs_s2_v2Pro", "--force")
    assert r.exit_code == 1 and "starts with b'PK', expected b'05'" in r.output


def test_watch_worker_extracts_every_trainer(tree):
    from janitor.torchio.worker import handle

    for g in (tree / "Bert-VITS2/Data/alice/models/G_2000.pth",
              tree / "GPT-SoVITS-v2ProPlus/logs/alice/logs_s2_v2ProPlus/G_68.pth"):  # fmt: skip
        reply = handle(str(g))
        assert reply["ok"], reply
        assert os.path.exists(reply["output"])


def test_a_pickle_that_runs_code_is_refused_with_the_allow_list(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    folder = tmp_path / "SoVITS_weights_v2Pro"
    folder.mkdir()
    buf = io.BytesIO()
    torch.save(OrderedDict(weight={}, config=Evil(), info="1epoch_1iteration"), buf)
    (folder / "a_e1_s1.pth").write_bytes(b"05" + buf.getvalue()[2:])
    r = run_janitor("info", folder / "a_e1_s1.pth")
    assert r.returncode == 1 and "refusing to load" in r.stderr
    assert not (tmp_path / "pwned").exists()


def test_a_release_file_as_new_as_the_newest_g_is_a_resume_trap(tree, cli):
    run = tree / "so-vits-svc/logs/44k"
    assert cli("extract-small", run / "G_800.pth").exit_code == 0
    assert "release-file-resume" not in cli("scan", run, "--json").stdout  # 800 < 1600
    assert cli("extract-small", run / "G_1600.pth").exit_code == 0
    text = cli("scan", run).stdout
    assert "warning: G_1600_release.pth matches the trainer's G_*.pth resume glob" in text


def test_an_rvc_webui_run_without_its_data_folders_is_known_by_its_config(tmp_path, cli):
    run = write_run(tmp_path / "logs", "exp", trainer="rvc", steps=(300,), with_d=False)
    r = cli("extract-small", run / "G_300.pth", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["extracted"][0]
    assert doc["format"] == "rvc" and doc["output"].endswith("exp_e3_s300.pth")
    assert doc["detected"]["sr"] == {"value": "40k", "from": "train.log (sample_rate)"}


def test_options_that_do_not_fit_the_run_are_refused(tree, cli, tmp_path):
    svc = tree / "so-vits-svc/logs/44k/G_1600.pth"
    applio = write_run(tmp_path / "logs", "alice", steps=(100,), with_d=False) / "G_100.pth"
    for args, says in (
        ((applio, "--half"), "--half is for so-vits-svc/Bert-VITS2 release files"),
        ((svc, "--like", "extract"), "--like is for RVC WebUI models"),
        ((svc, "--info", "x"), "--info is the text of RVC WebUI's own extraction"),
        ((svc, "--format", "zip"), "--format must be one of applio, rvc, release, gpt-sovits"),
        ((svc, "--format", "rvc", "--half"), "--half is for so-vits-svc/Bert-VITS2"),
    ):
        r = cli("extract-small", *args)
        assert r.exit_code == 2 and says in r.output, (args, r.output)
    assert not list(svc.parent.glob("*_release*")) and len(list(applio.parent.iterdir())) == 3


def test_finalize_accepts_the_trainers_own_files(tree, cli):
    """Files the trainers wrote themselves (their own pickled HParams class, their inner
    folder names) are found by name and verified, not rewritten."""
    pro = tree / "GPT-SoVITS-v2Pro"
    g_path = pro / "logs/alice/logs_s2_v2Pro/G_68.pth"
    cfg = json.loads((pro / "logs/alice/config.json").read_text())
    own = T.sovits_export(load(g_path), cfg, epoch=4, step=68, version="v2Pro")
    (pro / "SoVITS_weights_v2Pro/alice_e4_s68.pth").write_bytes(own)
    svc = tree / "so-vits-svc/logs/44k"
    cfg = json.loads((svc / "config.json").read_text())
    torch.save(T.release_export(load(svc / "G_1600.pth"), cfg, False), svc / "G_1600_release.pth")
    for run, small in ((pro / "logs/alice/logs_s2_v2Pro", pro / "SoVITS_weights_v2Pro"),
                       (svc, svc)):  # fmt: skip
        before = {p.name: p.read_bytes() for p in small.iterdir() if "_e4_" in p.name
                  or "_release" in p.name}  # fmt: skip
        r = cli("finalize", run, "--force")
        assert r.exit_code == 0 and "small model present" in r.output and "verified" in r.output
        assert {n: (small / n).read_bytes() for n in before} == before


def test_gpt_stage_last_ckpt_is_named_by_its_epoch(tree, cli):
    ckpt_dir = tree / "GPT-SoVITS-s1/logs/alice/logs_s1_v2/ckpt"
    shutil.copy(ckpt_dir / "epoch=4-step=60.ckpt", ckpt_dir / "last.ckpt")
    r = cli("extract-small", ckpt_dir / "last.ckpt", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["extracted"][0]
    assert doc["output"].endswith("GPT_weights_v2/alice-e5.ckpt") and doc["step"] == 60
    assert not list(ckpt_dir.glob("*.small.*"))  # not the generic Lightning export
