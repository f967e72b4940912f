"""extract-small and info on a checkpoint without a local path (object storage, issue 15):
only the zip's directory, the headers and the tensors the command reads are fetched, and the
output is byte for byte what extraction from a local copy writes.

The store here is the local disk seen as a remote one (``fixtures.remote.RemoteLike``: no
local paths, every read counted, URLs ``fake://<path>``); the fsspec backend implements the
same seam."""

from __future__ import annotations

import io
import os
import shutil
import struct
import zipfile
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import pytest
import torch

from fixtures import trainers as T
from fixtures.gen import write_run
from fixtures.remote import SCHEME, RemoteLike, install, url
from janitor.core import skeleton, ziptail
from janitor.domain.errors import JanitorError, UsageError
from janitor.torchio import extract
from janitor.torchio.extract import Options, extract_one
from tests.conftest import REPO, truncate

REAL = REPO / "fixtures" / "applio-real-tiny" / "tiny"
NOW = datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture
def remote(monkeypatch, tmp_path) -> RemoteLike:
    """``fake://<local path>`` resolves to a RemoteLike store; janitor's local temp folders
    (the staged stand-ins) go to ``tmp_path/tmp`` so the tests can see them go."""
    store = RemoteLike()
    install(store, monkeypatch.setattr)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    return store


def staged_left(tmp_path: Path) -> list[str]:
    """janitor's temp folders left in the system temp folder (torch keeps its own there)."""
    return [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith(".janitor-")]


# ----------------------------------------------------------------- every export format


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    applio = root / "applio" / "logs" / "tiny"
    applio.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, applio / name)
    write_run(root / "RVC" / "logs", "exp", trainer="rvc", sr=48000, steps=(300,),
              with_d=False, extras=True)  # fmt: skip
    (root / "RVC/assets/weights").mkdir(parents=True)
    T.write_sovits_run(root / "so-vits-svc")
    T.write_bert_vits2_run(root / "Bert-VITS2")
    for version in ("v2", "v2Pro"):
        T.write_gpt_sovits_run(root / f"GPT-SoVITS-{version}", version)
    T.write_gpt_run(root / "GPT-SoVITS-s1")
    return root


CASES = {
    "applio": ("applio/logs/tiny/G_200.pth", {}),
    "rvc": ("RVC/logs/exp/G_300.pth", {}),
    "rvc-extract": ("RVC/logs/exp/G_300.pth", {"like": "extract", "info": "mine"}),
    "so-vits-svc": ("so-vits-svc/logs/44k/G_1600.pth", {}),
    "bert-vits2-half": ("Bert-VITS2/Data/alice/models/G_2000.pth", {"half": True}),
    "gpt-sovits-v2": ("GPT-SoVITS-v2/logs/alice/logs_s2_v2/G_68.pth", {}),
    "gpt-sovits-v2Pro": ("GPT-SoVITS-v2Pro/logs/alice/logs_s2_v2Pro/G_68.pth", {}),
    "gpt-sovits-gpt": ("GPT-SoVITS-s1/logs/alice/logs_s1_v2/ckpt/epoch=9-step=120.ckpt", {}),
}


@pytest.mark.parametrize("case", CASES)
def test_remote_extraction_equals_local_for_every_format(runs, remote, tmp_path, case):
    rel, flags = CASES[case]
    g = runs / rel
    here, there = tmp_path / "local", tmp_path / "remote"
    here.mkdir(), there.mkdir()
    mine = extract_one(str(g), Options(output=str(here), **flags), now=lambda: NOW)
    theirs = extract_one(url(g), Options(output=str(there), **flags), now=lambda: NOW)
    assert theirs.source == url(g) and theirs.output == str(there / Path(mine.output).name)
    assert (mine.format, mine.name, mine.epoch, mine.step) == (
        theirs.format, theirs.name, theirs.epoch, theirs.step)  # fmt: skip
    # what was detected, and from which file (the store's, named by its URL)
    assert repr(theirs.detected.as_dict()).replace(SCHEME, "") == repr(mine.detected.as_dict())
    assert Path(theirs.output).read_bytes() == Path(mine.output).read_bytes()
    assert any(n.startswith("read ") and "ranged reads" in n for n in theirs.notes)
    assert remote.fetched[str(g)] < g.stat().st_size * 1.01
    assert not staged_left(tmp_path)  # the staged stand-in is gone


def adam_g(path: Path, width: int = 256, layers: int = 12) -> Path:
    """A G with a real AdamW state after one step: the optimizer is twice the model."""
    net = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(2, width)).sum().backward()
    opt.step()
    model = OrderedDict((f"dec.{k}", v) for k, v in net.state_dict().items())
    model["enc_p.emb.weight"] = torch.randn(4, width)
    torch.save({"model": model, "iteration": 7, "optimizer": opt.state_dict(),
                "learning_rate": 1e-4}, path)  # fmt: skip
    return path


def test_only_the_model_is_downloaded_from_a_g_with_adam_state(remote, tmp_path):
    g = adam_g(tmp_path / "G_700.pth")
    size = g.stat().st_size
    staged = []
    with extract.contextlib.ExitStack() as stack:
        src = extract.CheckpointSource(url(g), stack, unread=extract.EXTRACT_UNREAD)
        local = src.file()
        staged.append(local)
        ckpt = torch.load(local, mmap=True, weights_only=True)
        want = torch.load(g, mmap=True, weights_only=True)
        for k, v in want["model"].items():
            assert torch.equal(ckpt["model"][k], v), k
        assert len(ckpt["optimizer"]["state"]) == len(want["optimizer"]["state"])
        assert os.stat(local).st_size == size
        assert os.stat(local).st_blocks * 512 < 0.5 * size  # a sparse file: holes cost nothing
    assert remote.fetched[str(g)] <= 0.45 * size, remote.fetched[str(g)] / size
    assert not os.path.exists(staged[0])
    # and the real tiny Applio G (its model is half of the file, enc_q and all): the small
    # model, byte for byte
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    out = tmp_path / "out"
    out.mkdir()
    done = extract_one(url(run / "G_200.pth"), Options(output=str(out)), now=lambda: NOW)
    assert remote.fetched[str(run / "G_200.pth")] <= 0.6 * (run / "G_200.pth").stat().st_size
    ref = extract_one(str(run / "G_200.pth"), Options(), now=lambda: NOW)
    assert Path(done.output).read_bytes() == Path(ref.output).read_bytes()


def test_info_reads_no_tensor_data(remote, tmp_path):
    g = adam_g(tmp_path / "G_700.pth")
    doc = extract.info(url(g))
    ref = extract.info(str(g))
    assert doc.pop("path") == url(g) and ref.pop("path") == str(g)
    assert doc == ref and doc["optimizer_state"] is True and doc["kind"] == "G"
    assert remote.fetched[str(g)] < 0.05 * g.stat().st_size  # the directory, headers, pickle


# ----------------------------------------------------------------- refusals


def test_a_truncated_remote_g_is_refused_with_one_line(remote, tmp_path, cli):
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    shutil.copy(REAL / "G_200.pth", run / "G_200.pth")
    truncate(run / "G_200.pth", 0.6)
    out = tmp_path / "out"
    out.mkdir()
    r = cli("extract-small", url(run / "G_200.pth"), "-o", out)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"janitor: {url(run / 'G_200.pth')}: not a complete torch checkpoint "
        "(truncated: no end-of-central-directory record)"
    ]
    assert not list(out.iterdir()) and not staged_left(tmp_path)
    assert remote.fetched[str(run / "G_200.pth")] < 70_000  # its ends (64 KiB: a comment?)
    with pytest.raises(JanitorError, match="not a complete torch checkpoint"):
        extract.info(url(run / "G_200.pth"))


def test_an_object_that_changes_while_read_is_refused(remote, tmp_path, monkeypatch):
    """Ranged reads of one object are separate requests: if it is replaced in between, the
    records' CRC-32s no longer match, and nothing is written."""
    g = adam_g(tmp_path / "G_700.pth")
    calls = []
    real = remote.read_ranges

    def later_reads_see_another_object(path, ranges):
        calls.append(ranges)
        blobs = real(path, ranges)
        return blobs if len(calls) < 3 else [bytes(len(b)) for b in blobs]

    monkeypatch.setattr(remote, "read_ranges", later_reads_see_another_object)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(JanitorError, match=r"changed while read \(.*\); try again"):
        extract_one(url(g), Options(output=str(out)))
    assert not list(out.iterdir()) and not staged_left(tmp_path)


class Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_a_pickle_with_code_is_refused_before_torch_reads_it(remote, tmp_path, monkeypatch):
    g = tmp_path / "G_100.pth"
    torch.save({"model": {"w": torch.zeros(1000)}, "iteration": 1,
                "optimizer": {"state": {}, "x": Evil(tmp_path / "pwned")}}, g)  # fmt: skip
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(extract.UnsafeCheckpoint, match=r"GLOBAL posix\.system|GLOBAL os\.system"):
        extract_one(url(g), Options(output=str(tmp_path)))
    assert loads == [] and not (tmp_path / "pwned").exists()
    assert not staged_left(tmp_path)


def test_a_torch_name_the_reader_does_not_know_is_left_to_torchs_loader(remote, tmp_path):
    """torch.save is a torch name, and code: the skeleton reader does not take it apart, so
    all of the file is fetched and torch's weights-only loader refuses it (nothing run)."""
    g = tmp_path / "G_100.pth"
    torch.save({"model": {"w": torch.zeros(10)}, "iteration": 1, "hook": torch.save}, g)
    with pytest.raises(extract.UnsafeCheckpoint, match="refusing to load fake://"):
        extract_one(url(g), Options(output=str(tmp_path)))
    assert remote.fetched[str(g)] >= g.stat().st_size


def test_a_pickle_the_reader_cannot_take_apart_is_fetched_whole(remote, tmp_path):
    """A damaged pickle (valid CRC, nonsense inside): all of it is fetched and torch's own
    loader says what is wrong, in one line."""
    g = tmp_path / "G_100.pth"
    torch.save({"model": {"w": torch.zeros(10)}, "iteration": 1}, g)
    with zipfile.ZipFile(g) as z:
        entries = [(i, z.read(i)) for i in z.infolist()]
    g.unlink()
    with zipfile.ZipFile(g, "w") as z:
        for info, data in entries:
            z.writestr(info, b"\x80\x02}q\x00(X\x01\x00\x00\x00ab." if info.filename.endswith(
                "data.pkl") else data)  # fmt: skip
    with pytest.raises(JanitorError, match="cannot read checkpoint"):
        extract.info(url(g))
    assert remote.fetched[str(g)] >= g.stat().st_size


def test_the_skeleton_reader_allows_only_inert_names():
    buf = io.BytesIO()
    torch.save({"a": torch.zeros(2), "b": [torch.ones(3)], "c": {"d": torch.ones(1)}}, buf)
    pkl = zipfile.ZipFile(buf).read("archive/data.pkl")
    root = skeleton.read_skeleton(pkl)
    assert skeleton.needed_keys(root, ["c"]) == {"0", "1"}
    assert skeleton.needed_keys(root, []) == {"0", "1", "2"}
    assert skeleton.needed_keys([root], ["c"]) is None  # not a dict at the top: everything
    import pickle

    for bad in (Evil(Path("/nonexistent")), print, shutil.rmtree):
        with pytest.raises(skeleton.Refused):
            skeleton.read_skeleton(pickle.dumps({"x": bad}, protocol=2))
    from pathlib import PosixPath

    with pytest.raises(skeleton.Refused, match="pathlib.PosixPath"):
        skeleton.read_skeleton(pickle.dumps(PosixPath("/a"), protocol=2))
    inert = skeleton.read_skeleton(pickle.dumps(PosixPath("/a"), protocol=2),
                                   ["pathlib.PosixPath"])  # fmt: skip
    assert isinstance(inert, skeleton.Inert)


def test_zip64_sizes_and_offsets_are_read_from_the_extra_field():
    name = b"archive/data/0"
    extra = struct.pack("<HHQQQ", 1, 24, 5_000_000_000, 5_000_000_000, 6_000_000_000)
    entry = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0x808, 0, 0, 0, 1234,
        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF,
    ) + name + extra  # fmt: skip
    (record,) = ziptail.read_directory(entry)
    assert (record.name, record.size, record.offset, record.crc) == (
        "archive/data/0", 5_000_000_000, 6_000_000_000, 1234)  # fmt: skip
    for cut in (entry + entry[:30], entry[:-5]):
        with pytest.raises(ValueError, match="corrupt central directory"):
            ziptail.read_directory(cut)
    ranges = [(10, 20), (0, 5), (25, 30), (100, 110), (3, 8)]
    assert ziptail.merge_ranges(ranges, 0) == [(0, 8), (10, 20), (25, 30), (100, 110)]
    assert ziptail.merge_ranges(ranges, 5) == [(0, 20), (25, 30), (100, 110)]  # smallest first
    assert ziptail.merge_ranges(ranges, 7) == [(0, 30), (100, 110)]


# ----------------------------------------------------------------- output to the store


def test_output_to_the_store_never_replaces_without_force(remote, tmp_path, cli):
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    out = tmp_path / "bucket" / "models"  # no such folder yet: on a store it need not exist
    r = cli("extract-small", url(run / "G_200.pth"), "-o", url(out) + "/", "--json")
    assert r.exit_code == 0, r.output
    written = out / "tiny_2e_200s.pth"
    assert written.exists()
    assert not [p for p in out.iterdir() if p.name != written.name]  # no temp left there
    ref = torch.load(REAL / "tiny_2e_200s.pth", weights_only=True)
    got = torch.load(written, weights_only=True)
    assert list(got) == list(ref) and all(torch.equal(got["weight"][k], v)
                                          for k, v in ref["weight"].items())  # fmt: skip
    written.write_bytes(b"the trainer's own")
    r = cli("extract-small", url(run / "G_200.pth"), "-o", url(out))
    assert r.exit_code == 1 and "exists; pass --force" in r.output
    assert written.read_bytes() == b"the trainer's own"
    r = cli("extract-small", url(run / "G_200.pth"), "-o", url(out), "--force")
    assert r.exit_code == 0, r.output
    assert written.read_bytes()[:2] == b"PK"
    # the default place (beside the G, on the store) and a local G put on the store
    r = cli("extract-small", url(run / "G_200.pth"))
    assert r.exit_code == 0, r.output
    assert (run / "tiny_2e_200s.pth").exists() and url(run / "tiny_2e_200s.pth") in r.output
    with pytest.raises(UsageError, match="training checkpoint's name"):
        extract.check_options(Options(output=url(out / "G_5.pth")))


def test_hf_and_lightning_checkpoints_on_a_store_are_refused_clearly(remote, tmp_path, cli):
    r = cli("extract-small", url(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt"))
    assert r.exit_code == 2 and "copy an HF or Lightning checkpoint first" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_finalizes_small_model_maker_extracts_and_verifies_on_the_store(remote, tmp_path):
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    g, small = url(run / "G_200.pth"), run / "tiny_2e_200s.pth"
    check = extract.TorchSmallModels().ensure(g, dry_run=False)
    assert (check.output, check.action, check.problems) == (url(small), "extracted", ())
    obj = torch.load(small, weights_only=True)
    key = next(iter(obj["weight"]))
    obj["weight"][key] = obj["weight"][key] + 1
    torch.save(obj, small)
    check = extract.TorchSmallModels().ensure(g, dry_run=False)
    assert check.action == "exists"
    differs = f"tensor {key} differs from the fp16 conversion of the big checkpoint"
    assert check.problems == (differs,)
    assert not staged_left(tmp_path)
