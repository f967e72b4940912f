"""torch's legacy (pre-zip) checkpoint format: what ``torch.save(...,
_use_new_zipfile_serialization=False)`` writes (five pickles, then each storage as an 8-byte
element count and its bytes; no zip).

A whole legacy file is a complete checkpoint (scan, prune, extraction's gate), one cut short is
truncated, decided from its pickles without running any of them. Extraction and ``info`` hand
it to torch (weights-only, not mapped); without torch they say in one line that this format is
not read.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import pytest
import torch

from fixtures.gen import write_run
from fixtures.remote import RemoteLike, install, url
from janitor.core import legacy, skeleton
from janitor.core.ziptail import ZipCheck
from janitor.domain.extract import Options
from janitor.storage.completeness import check_file
from janitor.storage.fs import LOCAL
from janitor.torchio import extract
from tests.conftest import truncate
from tests.test_torchfree import janitor_without_torch, serialization_id

NOW = datetime(2026, 1, 2, 3, 4, 5)
UNSUPPORTED = "not converted without torch (torch's legacy (pre-1.6) checkpoint format)"


def legacy_save(obj, path: Path) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def to_legacy(path: Path) -> Path:
    """The file re-saved in the legacy format, its times kept (what the trainer's clock said)."""
    st = path.stat()
    legacy_save(torch.load(path, weights_only=True), path)
    os.utime(path, (st.st_atime, st.st_mtime))
    return path


def same_file(mine: Path, theirs: Path) -> bool:
    """Byte for byte the same torch file apart from ``.data/serialization_id`` (which differs
    between two saves of equal objects) and its CRC-32."""

    def blanked(data: bytes) -> bytes:
        sid, start, crc, central_crc = serialization_id(data)
        out = bytearray(data)
        for at, n in ((start, len(sid)), (crc, 4), (central_crc, 4)):
            out[at : at + n] = bytes(n)
        return bytes(out)

    return blanked(mine.read_bytes()) == blanked(theirs.read_bytes())


def mixed() -> dict:
    """Storages of many kinds: dtypes, a view into a shared storage at an offset, the same
    tensor twice, an untyped storage, an empty tensor, nested containers."""
    base = torch.arange(12, dtype=torch.float32)
    half = torch.randn(3, 4).half()
    return {
        "model": OrderedDict(
            [
                ("w", base.view(3, 4)),
                ("tail", base[5:]),
                ("h", half),
                ("h2", half),
                ("bf", torch.ones(2, dtype=torch.bfloat16)),
                ("t", half.t()),
            ]
        ),  # fmt: skip
        "ints": [torch.arange(3), torch.tensor([True, False]), torch.zeros(0)],
        "raw": torch.UntypedStorage(5),
        "iteration": 7,
        "learning_rate": 1e-4,
    }


def test_the_format_is_what_torch_writes(tmp_path):
    assert legacy.MAGIC_NUMBER == torch.serialization.MAGIC_NUMBER
    assert legacy.PROTOCOL_VERSION == torch.serialization.PROTOCOL_VERSION
    assert pickle.dumps(legacy.MAGIC_NUMBER, protocol=2) == legacy.MAGIC
    data = legacy_save(mixed(), tmp_path / "G_1.pth").read_bytes()
    assert data.startswith(legacy.MAGIC + pickle.dumps(legacy.PROTOCOL_VERSION, protocol=2))
    assert legacy.is_legacy(data[:32]) and legacy.is_legacy(data[:15])
    torch.save(mixed(), tmp_path / "G_2.pth")
    for other in ((tmp_path / "G_2.pth").read_bytes(), b"not a zip at all " * 4, b"\x80\x02."):
        assert not legacy.is_legacy(other[:32])
    for protocol in (3, 4, 5):  # framed pickles (4, 5) too
        torch.save({"x": torch.ones(2)}, tmp_path / "p.pth", pickle_protocol=protocol,
                   _use_new_zipfile_serialization=False)  # fmt: skip
        assert check_file(LOCAL, str(tmp_path / "p.pth")) == ZipCheck(True)


def test_whole_only_at_its_full_length(tmp_path):
    path = legacy_save(mixed(), tmp_path / "G_1.pth")
    data = path.read_bytes()
    assert legacy.check_legacy(data, len(data)) == ZipCheck(True)
    assert check_file(LOCAL, str(path)) == ZipCheck(True)
    for cut in range(len(legacy.MAGIC), len(data)):
        got = legacy.check_legacy(data[:cut], cut)
        assert not got.complete and got.problem.startswith("truncated"), (cut, got)
    assert legacy.check_legacy(data + b"\0", len(data) + 1).problem.startswith("corrupt")
    # a storage's count that does not match its pickle
    walker = skeleton.Walker(data)
    for _ in range(5):
        walker.load()
    at = walker.tell()  # the first storage's count
    count = int.from_bytes(data[at : at + 8], "little")
    bad = data[:at] + (count + 1).to_bytes(8, "little") + data[at + 8 :]
    assert legacy.check_legacy(bad, len(bad)).problem.startswith("corrupt")


def test_pickles_longer_than_the_first_read(tmp_path):
    obj = {f"layer{i}.weight": torch.full((2,), float(i)) for i in range(3000)}
    path = legacy_save(obj, tmp_path / "G_1.pth")
    size = path.stat().st_size
    assert size > 4 * legacy.FIRST_READ  # three reads of the pickles
    assert check_file(LOCAL, str(path)) == ZipCheck(True)
    shutil.copy(path, tmp_path / "G_2.pth")
    os.truncate(tmp_path / "G_2.pth", 3 * legacy.FIRST_READ)  # inside the object's pickle
    assert check_file(LOCAL, str(tmp_path / "G_2.pth")).problem == "truncated: inside its pickles"
    os.truncate(path, size - 1)
    assert check_file(LOCAL, str(path)).problem.startswith("truncated: ")


class Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_no_pickle_is_run_to_judge_it(tmp_path):
    marker = tmp_path / "ran"
    path = legacy_save({"x": Boom(marker), "w": torch.ones(3)}, tmp_path / "G_1.pth")
    assert check_file(LOCAL, str(path)) == ZipCheck(True)
    assert not marker.exists()
    module = legacy_save(torch.nn.Linear(2, 3), tmp_path / "G_2.pth")  # a whole nn.Module
    assert check_file(LOCAL, str(module)) == ZipCheck(True)
    truncate(module, 0.9)
    assert check_file(LOCAL, str(module)).problem.startswith("truncated")


# ----------------------------------------------------------------- scan and prune


def test_scan_and_prune_take_a_whole_legacy_set_as_complete(tmp_path, cli):
    logs = tmp_path / "logs"
    run = write_run(logs, "alice", steps=(100, 200, 300, 400))
    for path in run.glob("[GD]_*.pth"):
        to_legacy(path)
    st = (run / "G_200.pth").stat()
    truncate(run / "G_200.pth")  # a crash mid-save, long ago: its D never came
    os.utime(run / "G_200.pth", (st.st_atime, st.st_mtime))
    os.remove(run / "D_200.pth")
    doc = json.loads(cli("scan", logs, "--json").output)
    sets = {s["number"]: s for s in doc["runs"][0]["sets"]}
    assert {n: s["status"] for n, s in sets.items()} == {
        100: "complete", 200: "incomplete", 300: "complete", 400: "complete"}  # fmt: skip
    assert sets[200]["files"][0]["problem"].startswith("truncated: ")
    assert all(f["complete"] for n in (100, 300, 400) for f in sets[n]["files"])
    args = ["--keep-last", "10", "--remove-incomplete", "--older-than", "1d"]
    result = cli("prune", logs, *args)
    assert result.exit_code == 0, result.output
    left = sorted(p.name for p in run.glob("[GD]_*.pth"))
    assert left == [f"{k}_{n}.pth" for k in "DG" for n in (100, 300, 400)]


# ----------------------------------------------------------------- extraction and info


@pytest.fixture
def twins(tmp_path) -> tuple[Path, Path]:
    """The same Applio G, saved as torch saves by default (zip) and in the legacy format."""
    zipped = write_run(tmp_path / "zip" / "logs", "alice", steps=(300,), with_d=False)
    shutil.copytree(zipped, tmp_path / "legacy" / "logs" / "alice")
    return zipped / "G_300.pth", to_legacy(tmp_path / "legacy" / "logs" / "alice" / "G_300.pth")


def test_extract_small_of_a_legacy_g_goes_through_torch(twins):
    zipped, old = twins
    assert check_file(LOCAL, str(old)) == ZipCheck(True)
    mine = extract.extract_one(str(old), Options(), now=lambda: NOW)
    ref = extract.extract_one(str(zipped), Options(), now=lambda: NOW)
    assert Path(mine.output).name == Path(ref.output).name == "alice_3e_300s.pth"
    assert same_file(Path(mine.output), Path(ref.output))
    small, want = (torch.load(p, weights_only=True) for p in (mine.output, ref.output))
    assert small.keys() == want.keys() and small["weight"].keys() == want["weight"].keys()
    assert {k: v for k, v in small.items() if k != "weight"} == {
        k: v for k, v in want.items() if k != "weight"}  # fmt: skip
    assert all(torch.equal(v, want["weight"][k]) for k, v in small["weight"].items())
    assert extract.verify_small(mine.output, str(old), mine.expect) == []


def test_without_torch_a_legacy_file_is_refused_in_one_line(twins):
    _, old = twins
    r = janitor_without_torch("extract-small", old)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"janitor: {old}: {UNSUPPORTED}; install torch to convert it "
                                "(pip install 'vits-janitor[torch]')")  # fmt: skip
    assert sorted(p.name for p in old.parent.glob("*.pth")) == ["G_300.pth"]
    r = janitor_without_torch("info", old)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "torch's legacy (pre-1.6) checkpoint format" in r.stderr and "needs torch" in r.stderr


def test_info_of_a_legacy_file(twins):
    zipped, old = twins
    mine, ref = extract.info(str(old)), extract.info(str(zipped))
    assert mine.pop("path") == str(old) and ref.pop("path") == str(zipped)
    assert mine.pop("size") == old.stat().st_size and ref.pop("size") == zipped.stat().st_size
    assert mine == ref and mine["kind"] == "G" and mine["optimizer_state"] is True


def test_a_legacy_g_on_object_storage(twins, monkeypatch, tmp_path):
    zipped, old = twins
    store = RemoteLike()
    install(store, monkeypatch.setattr)
    out = tmp_path / "out"
    out.mkdir()
    done = extract.extract_one(url(old), Options(output=str(out)), now=lambda: NOW)
    ref = extract.extract_one(str(zipped), Options(), now=lambda: NOW)
    assert same_file(Path(done.output), Path(ref.output))
    assert store.fetched[str(old)] >= old.stat().st_size  # no records to pick from: all of it
