"""The fixture generator writes files shaped exactly like the trainers' (fixtures/gen.py).

Kept fast: ``torch.load(weights_only=True)`` of a tiny G costs ~0.3 s (2,240 tensors), so
one shared run serves most tests and structure-only checks use :func:`peek`.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import pytest
import torch

from fixtures import gen

REAL = gen.REAL_TINY_DIR
S0 = 1_700_000_000.0
DT = 600.0
POINTS = [(100, 30.1), (200, 28.5), (300, 27.25)]


def load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


class _Peek(pickle.Unpickler):
    """Unpickles a torch zip's data.pkl without materialising any tensor."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module.split(".")[0] == "torch":
            return lambda *args, **kwargs: None
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        return None


def peek(path: Path) -> dict:
    """The checkpoint's structure (keys, ints, floats) with every tensor replaced by None."""
    with zipfile.ZipFile(path) as zf:
        (pkl,) = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        return _Peek(io.BytesIO(zf.read(pkl))).load()


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def real_g():
    return load(REAL / "G_200.pth")


@pytest.fixture(scope="module")
def real_small():
    return load(REAL / "tiny_2e_200s.pth")


@pytest.fixture(scope="module")
def alice(tmp_path_factory) -> Path:
    """One shared Applio run: saves at 100..300 (G+D), a crash in G_400, small models at
    300 and 500 (no big file at 500), a TensorBoard scalar."""
    return gen.write_run(
        tmp_path_factory.mktemp("shared") / "logs",
        "alice",
        steps=(100, 200, 300),
        truncated=[("G", 400)],
        small_models=(300, 500),
        metrics={"loss/g/total": POINTS},
        mtime_start=S0,
        mtime_interval=DT,
    )


@pytest.fixture(scope="module")
def alice_g300(alice):
    return load(alice / "G_300.pth")


# --------------------------------------------------------------------------- copied facts


def test_reference_data_is_in_the_repo():
    assert sorted(p.name for p in gen.FORMATS_DIR.glob("*.json")) == [
        "v2-24000-hifi-gan-f0.json",
        "v2-32000-hifi-gan-f0.json",
        "v2-40000-hifi-gan-f0.json",
        "v2-40000-hifi-gan-nof0.json",
        "v2-40000-mrfhifi-gan-f0.json",
        "v2-40000-refinegan-f0.json",
        "v2-48000-hifi-gan-f0.json",
    ]
    assert names(REAL) == {
        "G_100.pth",
        "G_200.pth",
        "config.json",
        "model_info.json",
        "tiny_1e_100s.pth",
        "tiny_2e_200s.pth",
    }
    assert len(gen.available_variants()) == 7


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(ValueError, match="no manifest"):
        gen.load_manifest(48000, "RefineGAN", False)
    with pytest.raises(ValueError, match="vocoder"):
        gen.load_manifest(40000, "WaveNet", True)


# --------------------------------------------------------------------------- big checkpoints


def check_big(ck: dict, part: dict, *, epoch: int, lr: float, real_g: dict) -> None:
    """Full structural check of a loaded (or in-memory) big checkpoint against its manifest."""
    assert (
        list(ck) == list(real_g) == ["model", "iteration", "optimizer", "learning_rate", "scaler"]
    )
    model = ck["model"]
    assert list(model) == list(part["model"])
    for key, (shape, dtype) in part["model"].items():
        t = model[key]
        assert t.dtype == getattr(torch, dtype), key
        assert t.dim() == len(shape), key
        for i, (got, full) in enumerate(zip(t.shape, shape, strict=True)):
            if full <= 8 or (i >= 2 and full <= 48):
                assert got == full, key  # kernel sizes and tiny dimensions survive
    assert ck["iteration"] == epoch and type(ck["iteration"]) is int
    assert ck["learning_rate"] == lr and type(ck["learning_rate"]) is float
    assert ck["scaler"] == {}

    opt = ck["optimizer"]
    params = list(model.values())
    assert list(opt) == ["state", "param_groups"]
    assert len(opt["state"]) == len(params) == len(part["optimizer_param_shapes_in_order"])
    assert list(opt["state"]) == list(range(len(params)))
    for i, p in enumerate(params):
        st = opt["state"][i]
        assert list(st) == ["step", "exp_avg", "exp_avg_sq"]
        assert st["step"].shape == () and st["step"].dtype == torch.float32
        assert st["exp_avg"].shape == p.shape and st["exp_avg_sq"].shape == p.shape
        assert bool((st["exp_avg_sq"] >= 0).all())
    (group,) = opt["param_groups"]
    (real_group,) = real_g["optimizer"]["param_groups"]
    assert list(group) == list(real_group)
    assert {k: type(v) for k, v in group.items()} == {k: type(v) for k, v in real_group.items()}
    assert group["params"] == list(range(len(params)))
    assert (group["lr"], group["betas"], group["eps"]) == (lr, (0.8, 0.99), 1e-09)


@pytest.mark.parametrize(("sr", "vocoder", "f0"), gen.available_variants())
def test_tiny_g_matches_manifest(tmp_path, sr, vocoder, f0, real_g):
    man = gen.load_manifest(sr, vocoder, f0)
    kw = dict(sr=sr, vocoder=vocoder, f0=f0, epoch=7, step=700, seed=3)
    path = gen.write_checkpoint(tmp_path / "G_700.pth", "G", **kw)
    assert path.stat().st_size < 1_000_000
    # the file: same keys/ints as the in-memory dict (full tensor load: see the run tests)
    on_disk = peek(path)
    assert list(on_disk["model"]) == list(man["G_file"]["model"])
    assert on_disk["iteration"] == 7
    assert on_disk["optimizer"]["param_groups"][0]["params"] == list(range(len(on_disk["model"])))
    # the content, checked on the identical in-memory dict (saves a 0.3 s load per variant)
    ck = gen.make_checkpoint("G", **kw)
    check_big(ck, man["G_file"], epoch=7, lr=0.0001, real_g=real_g)
    model = ck["model"]
    assert model["enc_p.emb_phone.weight"].shape[1] == 768
    assert model["emb_g.weight"].shape[0] == man["run_config_json"]["model"]["spk_embed_dim"]
    assert ("enc_p.emb_pitch.weight" in model) is f0
    assert any(k.startswith("dec.m_source.") for k in model) is f0


def test_tiny_d_matches_manifest(real_g):
    # the D file on disk is loaded in test_tiny_run_layout; any vocoder gets the same D
    man = gen.load_manifest()["D_file"]
    ck = gen.make_checkpoint("D", vocoder="RefineGAN", f0=True, epoch=2)
    check_big(ck, man, epoch=2, lr=0.0001, real_g=real_g)
    # kernel sizes of the discriminator convs survive (41 in the scale discriminator, 5x1 MPD)
    shapes = {tuple(t.shape[2:]) for t in ck["model"].values() if t.dim() >= 3}
    assert (41,) in shapes and (5, 1) in shapes


def test_full_scale_shapes_are_the_manifest_shapes():
    for kind, part in (("G", "G_file"), ("D", "D_file")):
        entries, opt = gen.param_specs(kind, "full")
        man = gen.load_manifest()[part]
        assert [(k, list(s)) for k, s, _ in entries] == [(k, v[0]) for k, v in man["model"].items()]
        assert [list(s) for s in opt] == man["optimizer_param_shapes_in_order"]


def test_tiny_shape_rule():
    assert gen.tiny_shape("dec.ups.0.weight_v", [512, 256, 16]) == [8, 4, 16]
    assert gen.tiny_shape("x", [1024, 4, 41]) == [16, 4, 41]
    assert gen.tiny_shape("x", [32, 32, 11]) == [2, 2, 11]
    assert gen.tiny_shape("x", [6144, 256, 1]) == [96, 4, 1]
    assert gen.tiny_shape("enc_p.emb_phone.weight", [192, 768]) == [3, 768]
    assert gen.tiny_shape("emb_g.weight", [109, 256]) == [109, 4]
    assert gen.tiny_shape("x", [1, 9]) == [1, 2]


def test_values_are_random_per_file_and_reproducible():
    a = gen.make_state_dict("G", epoch=1, step=100)
    b = gen.make_state_dict("G", epoch=2, step=200)
    c = gen.make_state_dict("G", epoch=2, step=200)
    key = "dec.conv_post.weight"
    assert not torch.equal(a[key], b[key])
    assert torch.equal(b[key], c[key])
    assert torch.equal(gen.make_checkpoint("G", epoch=2, step=200)["model"][key], b[key])
    assert not torch.equal(gen.make_state_dict("G", epoch=2, step=200, seed=1)[key], b[key])


# --------------------------------------------------------------------------- runs


def test_tiny_run_layout(alice, alice_g300, real_g):
    assert alice.parent.name == "logs"
    assert names(alice) == {
        "config.json",
        "model_info.json",
        *(f"{k}_{s}.pth" for k in "GD" for s in (100, 200, 300)),
        "G_400.pth",
        "alice_3e_300s.pth",
        "alice_5e_500s.pth",
        "eval",
        *(p.name for p in alice.glob("events.out.tfevents.*")),
    }
    cfg = json.loads((alice / "config.json").read_text())
    assert cfg == gen.load_manifest()["run_config_json"]
    info = json.loads((alice / "model_info.json").read_text())
    assert info == json.loads((REAL / "model_info.json").read_text())

    # real torch.load(weights_only=True) of a G and a D of the run
    check_big(alice_g300, gen.load_manifest()["G_file"], epoch=3, lr=0.0001, real_g=real_g)
    assert float(alice_g300["optimizer"]["state"][0]["step"]) == 300.0
    d = load(alice / "D_300.pth")
    check_big(d, gen.load_manifest()["D_file"], epoch=3, lr=0.0001, real_g=real_g)

    for step in (100, 200, 300):
        for kind in "GD":
            path = alice / f"{kind}_{step}.pth"
            assert peek(path)["iteration"] == step // 100
            with zipfile.ZipFile(path) as zf:
                assert zf.namelist()[0] == f"{kind}_{step}/data.pkl"  # as torch.save names it
    with zipfile.ZipFile(alice / "G_300.pth") as zf:
        assert zf.testzip() is None  # every CRC checks out
    assert (alice / "G_100.pth").read_bytes() != (alice / "G_200.pth").read_bytes()


def test_truncated_file(alice):
    assert "D_400.pth" not in names(alice)  # the crash happened while writing G_400
    full = (alice / "G_300.pth").stat().st_size
    cut = (alice / "G_400.pth").stat().st_size
    assert 0.4 * full < cut < 0.6 * full
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(alice / "G_400.pth")
    with pytest.raises(RuntimeError):
        load(alice / "G_400.pth")
    for p in alice.glob("*.pth"):
        if p.name != "G_400.pth":
            zipfile.ZipFile(p).close()  # complete: central directory found and inside the file


def test_truncation_at_regular_steps(tmp_path):
    run = gen.write_run(tmp_path, "x", steps=(100, 200), truncated=[("D", 100), ("G", 200)])
    # G is saved before D: a crash while writing G_200 leaves no D_200
    assert {n for n in names(run) if n.endswith(".pth")} == {"G_100.pth", "D_100.pth", "G_200.pth"}
    zipfile.ZipFile(run / "G_100.pth").close()
    for bad in ("D_100.pth", "G_200.pth"):
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(run / bad)


def test_mtimes_follow_the_clock(alice):
    # timeline: saves 100, 200, 300, crash 400, small model 500
    for i, step in enumerate((100, 200, 300, 400)):
        for kind in "GD":
            p = alice / f"{kind}_{step}.pth"
            if p.exists():
                assert p.stat().st_mtime == S0 + i * DT, p.name  # atime: see test_latest_only
    assert (alice / "alice_3e_300s.pth").stat().st_mtime == S0 + 2 * DT
    assert (alice / "alice_5e_500s.pth").stat().st_mtime == S0 + 4 * DT
    assert (alice / "config.json").stat().st_mtime == S0 - DT
    assert (alice / "model_info.json").stat().st_mtime == S0 - DT
    assert alice.stat().st_mtime == S0 + 4 * DT


def test_latest_only(tmp_path):
    run = gen.write_run(tmp_path, "bob", steps=(100, 200, 300, 400), latest_only=True)
    pth = {n for n in names(run) if n.endswith(".pth")}
    assert pth == {"G_2333333.pth", "D_2333333.pth"}
    for n in pth:  # checked before anything reads the files (reading may bump atime)
        st = (run / n).stat()
        assert (st.st_mtime, st.st_atime) == (S0 + 3 * DT, S0 + 3 * DT)
    assert peek(run / "G_2333333.pth")["iteration"] == 4
    assert peek(run / "D_2333333.pth")["iteration"] == 4

    # crash while overwriting G_2333333 at step 300: D_2333333 still holds step 200
    run2 = gen.write_run(
        tmp_path, "bob2", steps=(100, 200), latest_only=True, truncated=[("G", 300)]
    )
    assert {n for n in names(run2) if n.endswith(".pth")} == {"G_2333333.pth", "D_2333333.pth"}
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(run2 / "G_2333333.pth")
    assert (run2 / "G_2333333.pth").stat().st_mtime == S0 + 2 * DT
    assert (run2 / "D_2333333.pth").stat().st_mtime == S0 + DT
    assert peek(run2 / "D_2333333.pth")["iteration"] == 2
    with pytest.raises(ValueError):
        gen.write_run(tmp_path, "bob3", latest_only=True, truncated=[("G", 100)])


def test_no_config_no_model_info(tmp_path):
    run = gen.write_run(
        tmp_path,
        "n",
        steps=(100,),
        with_d=False,
        config_json=False,
        model_info=False,
        small_models=(100,),
    )
    # Applio's small-model writer fails silently without model_info.json
    assert names(run) == {"G_100.pth"}


# --------------------------------------------------------------------------- small models


def test_small_model_like_applio(alice, alice_g300, real_small):
    sm = load(alice / "alice_3e_300s.pth")
    assert list(sm) == list(real_small)
    assert {k: type(v) for k, v in sm.items()} == {k: type(v) for k, v in real_small.items()}

    g = alice_g300["model"]
    assert list(sm["weight"]) == [k for k in g if "enc_q" not in k]
    for k, t in sm["weight"].items():
        assert t.dtype == torch.float16
        assert torch.equal(t, g[k].half()), k
    cfg = json.loads((alice / "config.json").read_text())
    assert sm["config"] == gen.small_model_config(cfg) and len(sm["config"]) == 18
    assert (sm["epoch"], sm["step"], sm["sr"], sm["f0"], sm["version"]) == (
        3,
        300,
        40000,
        True,
        "v2",
    )
    assert sm["model_name"] == "alice" and sm["vocoder"] == "HiFi-GAN"
    assert (sm["dataset_length"], sm["embedder_model"], sm["speakers_id"]) == (
        123.4,
        "contentvec",
        1,
    )
    want = hashlib.sha256(f"alice-3-300-40000-v2-{sm['config']}".encode()).hexdigest()
    assert sm["model_hash"] == want
    assert datetime.fromisoformat(sm["creation_date"]).timestamp() == S0 + 2 * DT

    # a small model of a step without a big file still carries that step's G weights
    sm5 = load(alice / "alice_5e_500s.pth")
    g5 = gen.make_state_dict("G", epoch=5, step=500, seed=gen.derive_seed("run", 0, "alice"))
    key = "dec.conv_post.weight"
    assert torch.equal(sm5["weight"][key], g5[key].half())
    assert not torch.equal(sm5["weight"][key], sm["weight"][key])


def test_small_model_builder_reproduces_the_real_applio_file(real_g, real_small):
    cfg = json.loads((REAL / "config.json").read_text())
    info = json.loads((REAL / "model_info.json").read_text())
    sm = gen.applio_small_model(
        real_g["model"], name="tiny", epoch=2, step=200, cfg=cfg, model_info=info, author="someone"
    )
    assert list(sm) == list(real_small)
    for key, want in real_small.items():
        if key in ("creation_date", "author"):
            continue
        if key == "weight":
            assert list(sm[key]) == list(want)
            assert all(torch.equal(sm[key][k], want[k]) for k in want)
        else:
            assert sm[key] == want and type(sm[key]) is type(want), key


def test_rvc_run(tmp_path):
    logs = tmp_path / "logs"
    run = gen.write_run(logs, "exp", trainer="rvc", steps=(200,), with_d=False, small_models=(200,))
    assert names(run) == {"config.json", "train.log", "G_200.pth"}  # no model_info.json
    assert list(peek(run / "G_200.pth")) == ["model", "iteration", "optimizer", "learning_rate"]
    sm = load(tmp_path / "assets" / "weights" / "exp_e2_s200.pth")
    assert list(sm) == ["weight", "config", "info", "sr", "f0", "version"]
    assert (sm["info"], sm["sr"], sm["f0"], sm["version"]) == ("2epoch", "40k", 1, "v2")
    assert sm["config"] == [
        1025, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        [10, 10, 2, 2], 512, [16, 16, 4, 4], 109, 256, 40000,
    ]  # fmt: skip
    assert not any("enc_q" in k for k in sm["weight"])
    assert all(t.dtype == torch.float16 for t in sm["weight"].values())


# --------------------------------------------------------------------------- metrics, CLI


def test_tensorboard_scalars_read_back(alice):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert len(list(alice.glob("events.out.tfevents.*"))) == 1 and (alice / "eval").is_dir()
    acc = EventAccumulator(str(alice))
    acc.Reload()
    assert acc.Tags()["scalars"] == ["loss/g/total"]
    got = acc.Scalars("loss/g/total")
    assert [(e.step, round(e.value, 4)) for e in got] == POINTS
    assert [e.wall_time for e in got] == [S0, S0 + DT, S0 + 2 * DT]


def test_parse_steps():
    assert gen.parse_steps("100,200,300") == [100, 200, 300]
    assert gen.parse_steps("100..1000:100") == list(range(100, 1001, 100))
    assert gen.parse_steps("50..150, 400") == [50, 100, 150, 400]
    with pytest.raises(ValueError):
        gen.parse_steps("1..5:0")


def test_cli_run_and_iteration_is_the_epoch(tmp_path, capsys):
    argv = ["run", str(tmp_path), "--name", "cli", "--steps", "30,250", "--steps-per-epoch", "50"]
    assert gen.main([*argv, "--no-d", "--truncated", "G:300", "--no-f0"]) == 0
    run = tmp_path / "cli"
    assert capsys.readouterr().out.strip() == str(run)
    assert names(run) == {"config.json", "model_info.json", "G_30.pth", "G_250.pth", "G_300.pth"}
    assert [peek(run / f"G_{s}.pth")["iteration"] for s in (30, 250)] == [1, 5]  # min 1
    assert "enc_p.emb_pitch.weight" not in peek(run / "G_30.pth")["model"]
    assert (run / "G_300.pth").stat().st_size < (run / "G_250.pth").stat().st_size
