"""Applio and RVC WebUI small models without torch (issue 27).

Golden: janitor's torch-free file is, byte for byte apart from ``.data/serialization_id``, the
file the trainer's own export writes through ``torch.save`` (torch 2.13): Applio's real files
in fixtures/applio-real-tiny (written by Applio's own code), and janitor's torch export code,
which reproduces each trainer's export with torch (tests/test_extract.py, test_exports.py),
for every Applio variant, RVC ``savee`` and ``--like extract``, from float32, float16 and
bfloat16 G files with shared storages, storage offsets, ``torch.nn.Parameter``s and values
that break naive conversions. The torch-free files are written in a child process that
asserts it never imported torch; torch's weights-only loader (also with ``mmap=True``) loads
each of them. The oldest torch the trainers pin (torch 2.0.0: RVC WebUI's
``torch = "^2.0.0"``; Applio pinned 2.1.1, now 2.7.1) loads them too and sees what torch
2.13 sees (``make test`` installs it in a side venv and names its python in
``JANITOR_OLD_TORCH``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.gen import available_variants, write_run
from janitor.core import fp16, torchzip
from janitor.domain.extract import Options
from janitor.torchio import extract
from tests.conftest import REPO, run_janitor

OLD_TORCH = "JANITOR_OLD_TORCH"  # the python of a venv with torch 2.0.0 (`make old-torch`)

REAL = REPO / "fixtures" / "applio-real-tiny" / "tiny"
NOW = "2026-11-25T14:22:58.699212"

CHILD = """
import json, sys
from datetime import datetime
from janitor.domain.extract import Options
from janitor.torchio.extract import extract_one, verify_small
now = datetime.fromisoformat(sys.argv[2])
for g, kw in json.loads(sys.argv[1]):
    done = extract_one(g, Options(**kw), now=lambda: now)
    problems = verify_small(done.output, g, done.expect)
    assert problems == [], problems
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""


NO_TORCH = """
import runpy, sys
class NoTorch:  # as if torch were not installed: import and find_spec find nothing
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
sys.argv = ["janitor", *sys.argv[1:]]
runpy.run_module("janitor", run_name="__main__")
"""


def janitor_without_torch(*args) -> subprocess.CompletedProcess:
    """The command line in a process where torch cannot be imported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip


def write_without_torch(jobs: list[tuple[Path, dict]], now: str = NOW) -> None:
    """extract_one (and verify_small) on each job in a child process without torch."""
    spec = json.dumps([[str(g), kw] for g, kw in jobs])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(extract.FORCE_TORCH, None)
    r = subprocess.run([sys.executable, "-c", CHILD, spec, now], capture_output=True,
                       text=True, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def with_torch(g: Path, kw: dict, monkeypatch, now: str = NOW) -> Path:
    """The same export through janitor's torch code (the trainers' own objects, torch.save)."""
    monkeypatch.setenv(extract.FORCE_TORCH, "torch")
    done = extract.extract_one(str(g), Options(**kw), now=lambda: datetime.fromisoformat(now))
    monkeypatch.delenv(extract.FORCE_TORCH)
    return Path(done.output)


def serialization_id(data: bytes) -> tuple[bytes, int, int, int]:
    """(the id, where its data starts, where its data descriptor's CRC is, where its central
    entry's CRC is) of a torch file (the id is its last record, as torch 2.13 writes it)."""
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[-1]
    assert info.filename.endswith("/.data/serialization_id")
    n, m = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + n + m
    central = data.rfind(b"PK\x01\x02")
    assert data[central + 46 : central + 46 + n] == info.filename.encode()
    return data[start : start + info.file_size], start, start + info.file_size + 4, central + 16


def assert_same_file(mine: Path, theirs: Path) -> None:
    """Every byte equal once janitor's file carries torch's serialization id (and its CRC)."""
    a, b = mine.read_bytes(), theirs.read_bytes()
    assert len(a) == len(b), (len(a), len(b))
    id_a, start, crc1, crc2 = serialization_id(a)
    id_b = serialization_id(b)[0]
    assert len(id_a) == len(id_b) == 40 and id_a.isdigit()
    patched = bytearray(a)
    patched[start : start + 40] = id_b
    crc = struct.pack("<I", zlib.crc32(id_b))
    patched[crc1 : crc1 + 4] = crc
    patched[crc2 : crc2 + 4] = crc
    if bytes(patched) != b:
        first = next(i for i in range(len(b)) if patched[i] != b[i])
        pytest.fail(f"{mine.name} differs from {theirs.name} first at byte {first}")


def loads_weights_only(path: Path) -> dict:
    torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------- Applio's own files


def test_equals_the_file_applio_itself_wrote(tmp_path):
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_100.pth", "G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    for g, small in (("G_100.pth", "tiny_1e_100s.pth"), ("G_200.pth", "tiny_2e_200s.pth")):
        now = torch.load(REAL / small, weights_only=True)["creation_date"]
        write_without_torch([(run / g, {"author": "example-author"})], now)
        assert_same_file(run / small, REAL / small)
        loads_weights_only(run / small)


# ----------------------------------------------------------------- every variant and dtype

NASTY = np.array(
    [0x7F800001, 0xFF800001, 0x7FA00000, 0x7FBFFFFF, 0x7FC00001, 0xFFC12345,  # NaNs
     0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x80000001, 0x33000000,  # inf, -0, tiny
     0x33000001, 0x387FC000, 0x38800000, 0x477FF000, 0x477FEFFF, 0x47800000,  # sub, edges
     0xC77FF000, 0x7F7FFFFF, 0x3F800000, 0x3F801000, 0x3F803000, 0x3F802FFF],  # ties
    dtype=np.uint32,
)  # fmt: skip


def nasty(dtype: torch.dtype, n: int) -> torch.Tensor:
    bits = np.resize(NASTY, n)
    t = torch.from_numpy(bits.view(np.float32).copy())
    if dtype == torch.bfloat16:  # the top halves: bfloat16's own NaNs, infs and subnormals
        return torch.from_numpy((bits >> 16).astype(np.int16)).view(torch.bfloat16)
    return t.to(dtype) if dtype == torch.float16 else t


def retype(g: Path, dtype: torch.dtype) -> None:
    """The G's model in ``dtype``, with nasty values, two tensors sharing one storage at an
    offset, and the same tensor under two keys (float16: as a G saved in half precision)."""
    ckpt = torch.load(g, weights_only=True)
    model = OrderedDict((k, v.to(dtype)) for k, v in ckpt["model"].items())
    keys = [k for k, v in model.items() if v.dim() == 1 and v.numel() >= 4 and "enc_q" not in k]
    a, b, c = keys[:3]
    model[a] = nasty(dtype, model[a].numel())
    joined = torch.cat([model[a].flatten(), model[b].flatten()])
    model[a] = joined[: model[a].numel()]
    model[b] = joined[model[a].numel() :]  # storage offset, shared storage
    if dtype == torch.float16:
        model[c] = model[a]  # the same tensor object twice
    else:
        model[c] = torch.cat([model[c], model[c]])[: model[c].numel()]  # a larger storage
    ckpt["model"] = model
    torch.save(ckpt, g)


FORMATS = (("applio", {}), ("rvc", {"format": "rvc"}),
           ("rvc-extract", {"format": "rvc", "like": "extract", "name": "bob"}))  # fmt: skip


def both_ways(g: Path, formats, tmp_path: Path, monkeypatch):
    """Each format's small model of ``g`` written without torch (in a child without it) and
    through janitor's torch code; the two files are asserted equal apart from the
    serialization id, and the torch-free one is yielded."""
    jobs = []
    for label, kw in formats:
        (tmp_path / "mine" / label).mkdir(parents=True)
        (tmp_path / "ref" / label).mkdir(parents=True)
        jobs.append((g, {**kw, "output": str(tmp_path / "mine" / label)}))
    write_without_torch(jobs)
    for label, kw in formats:
        theirs = with_torch(g, {**kw, "output": str(tmp_path / "ref" / label)}, monkeypatch)
        mine = tmp_path / "mine" / label / theirs.name
        assert_same_file(mine, theirs)
        yield mine


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("sr, vocoder, f0", available_variants())
def test_every_variant_and_dtype_equals_torch_save(tmp_path, monkeypatch, sr, vocoder, f0, dtype):
    formats = FORMATS[:2] if sr == 24000 else FORMATS  # RVC WebUI extracts no 24 kHz list
    run = write_run(tmp_path / "logs", "alice", sr=sr, vocoder=vocoder, f0=f0, steps=(2000,),
                    with_d=False)  # fmt: skip
    g = run / "G_2000.pth"
    retype(g, getattr(torch, dtype))
    model = torch.load(g, weights_only=True)["model"]
    for mine in both_ways(g, formats, tmp_path, monkeypatch):
        weight = loads_weights_only(mine)["weight"]
        for k, v in weight.items():
            assert v.dtype == torch.float16 and torch.equal(
                v.view(torch.int16), model[k].half().view(torch.int16)
            )


def as_parameters(g: Path, requires_grad: bool) -> list[str]:
    """The G's model as ``dict(model.named_parameters())`` mixed with
    ``state_dict(keep_vars=True)``'s plain tensors: two of every three tensors a
    ``torch.nn.Parameter`` (a tensor under two keys: one Parameter under both), the rest plain
    tensors, all with ``requires_grad``. Returns the Parameters' keys."""
    ckpt = torch.load(g, weights_only=True)
    model, params = ckpt["model"], {}
    ids = [id(v) for v in model.values()]
    for i, (k, v) in enumerate(list(model.items())):
        if i % 3 == 1 and ids.count(id(v)) == 1:
            model[k] = v.requires_grad_(requires_grad)
        else:
            model[k] = params.setdefault(id(v), torch.nn.Parameter(v, requires_grad))
    torch.save(ckpt, g)
    return [k for k, v in model.items() if isinstance(v, torch.nn.Parameter)]


@pytest.mark.parametrize("requires_grad", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_parameters_equal_torch_save(tmp_path, monkeypatch, dtype, requires_grad):
    """``.half()`` of a float16 Parameter is the Parameter (torch writes
    ``_rebuild_parameter``); of a float32/bfloat16 one a plain tensor with its requires_grad."""
    run = write_run(tmp_path / "logs", "alice", steps=(2000,), with_d=False)
    g = run / "G_2000.pth"
    retype(g, getattr(torch, dtype))
    params = as_parameters(g, requires_grad)
    model = torch.load(g, weights_only=True)["model"]
    assert {k for k, v in model.items() if isinstance(v, torch.nn.Parameter)} == set(params)
    for mine in both_ways(g, FORMATS, tmp_path, monkeypatch):
        weight = loads_weights_only(mine)["weight"]
        for k, v in weight.items():
            assert isinstance(v, torch.nn.Parameter) == (dtype == "float16" and k in params), k
            assert v.requires_grad == requires_grad
            assert v.dtype == torch.float16 and torch.equal(
                v.detach().view(torch.int16), model[k].detach().half().view(torch.int16)
            )
        shared = [k for k in weight if any(weight[k] is weight[j] for j in weight if j != k)]
        assert bool(shared) == (dtype == "float16")  # one Parameter under two keys, still one


# ----------------------------------------------------------------- the oldest torch pinned

# What a loaded small model is, as JSON: every key in order, each tensor's dtype, shape,
# stride, storage offset, requires_grad, the sha256 of its bytes and the storages it shares
# (numbered by first use), other values as they are. Run by the old torch (no numpy there)
# and by this process's torch 2.13: the same code.
DIGEST = """
import ctypes, hashlib, json, sys
import torch

def digest(value, storages):
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        dense = value.detach().contiguous()  # its elements in order, as bytes:
        raw = ctypes.string_at(dense.data_ptr(), dense.numel() * dense.element_size())
        return {"dtype": str(value.dtype), "shape": list(value.shape),
                "stride": list(value.stride()), "storage_offset": value.storage_offset(),
                "requires_grad": value.requires_grad, "sha256": hashlib.sha256(raw).hexdigest(),
                "storage": storages.setdefault(storage.data_ptr(), len(storages)),
                "storage_nbytes": storage.nbytes()}
    if isinstance(value, dict):
        return {type(value).__name__: [[k, digest(v, storages)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [digest(v, storages) for v in value]}
    return value

def load(path):
    return digest(torch.load(path, map_location="cpu", weights_only=True), {})

if __name__ == "__main__":
    print(json.dumps({"torch": torch.__version__, "files": [load(p) for p in sys.argv[1:]]}))
"""


def old_torch_python() -> str:
    """The old torch's python; skipped when none is named (a developer's machine), failed
    under ``CI=true`` (``make test`` installs and names it) or when the name is no program."""
    python = os.environ.get(OLD_TORCH)
    how = "`make old-torch` installs torch 2.0.0 in .venv-torch2.0.0; `make test` names it"
    if python and not os.access(python, os.X_OK):
        pytest.fail(f"{OLD_TORCH}={python} is not a program ({how})", pytrace=False)
    if python:
        return python
    why = f"{OLD_TORCH} is not set ({how})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true: the oldest pinned torch must load the files", pytrace=False)
    pytest.skip(why)


def test_the_oldest_pinned_torch_loads_every_file_as_torch_2_13_does(tmp_path):
    python = old_torch_python()
    jobs: list[tuple[Path, dict]] = []
    for sr, vocoder, f0 in available_variants():
        formats = FORMATS[:2] if sr == 24000 else FORMATS  # RVC WebUI extracts no 24 kHz list
        variant = tmp_path / f"{sr}-{vocoder}-{f0}"
        base = write_run(variant, "alice", sr=sr, vocoder=vocoder, f0=f0, steps=(2000,),
                         with_d=False)  # fmt: skip
        for dtype in ("float32", "float16", "bfloat16"):
            run = shutil.copytree(base, variant / dtype / "alice")
            retype(run / "G_2000.pth", getattr(torch, dtype))
            for label, kw in formats:
                (run / label).mkdir()
                jobs.append((run / "G_2000.pth", {**kw, "output": str(run / label)}))
    real = tmp_path / "logs" / "tiny"
    real.mkdir(parents=True)
    for name in ("G_100.pth", "G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, real / name)
    (real / "out").mkdir()
    jobs += [(real / g, {"author": "example-author", "output": str(real / "out")})
             for g in ("G_100.pth", "G_200.pth")]  # fmt: skip
    write_without_torch(jobs)
    files = sorted({p for _, kw in jobs for p in Path(kw["output"]).glob("*.pth")})
    assert len(files) == len(jobs)

    # one old-torch process for every file, while this process's torch 2.13 reads them too
    old = subprocess.Popen([python, "-W", "ignore", "-c", DIGEST, *map(str, files)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path)  # fmt: skip
    namespace = {"__name__": "digest"}
    exec(DIGEST, namespace)
    mine = [namespace["load"](path) for path in files]
    out, err = old.communicate(timeout=600)
    assert old.returncode == 0, err
    theirs = json.loads(out)
    assert theirs["torch"].split("+")[0] == "2.0.0", theirs["torch"]  # PyPI's: 2.0.0+cu117
    for path, a, b in zip(files, theirs["files"], mine, strict=True):
        assert a == b, path
        assert json.dumps(a) == json.dumps(b), path  # 1 and 1.0, True and 1 differ too
        assert '"dtype": "torch.float16"' in json.dumps(b), path
    # a float16 G's shared storage and its storage offsets carry over into its small models
    assert any(re.search(r'"storage_offset": [1-9]', json.dumps(b)) for b in mine)


# ----------------------------------------------------------------- the conversion itself


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_conversion_is_half_bit_for_bit(dtype):
    rng = np.random.default_rng(27)
    bits = np.concatenate([NASTY, rng.integers(0, 2**32, 200_000, dtype=np.uint32),
                           np.arange(0x7F800000, 0x7F800000 + 5000, dtype=np.uint32)])  # fmt: skip
    if dtype == "bfloat16":
        raw = (bits >> 16).astype("<u2").tobytes()
        t = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16)
    else:
        raw = bits.astype("<u4").tobytes()
        t = torch.frombuffer(bytearray(raw), dtype=torch.float32)
    want = t.half().view(torch.int16).numpy().tobytes()
    assert fp16.to_half(raw, dtype) == want


def test_pickle_equals_the_c_picklers_for_plain_values():
    import pickle

    many = {str(i): i for i in range(2000)}
    values = [None, True, False, 0, 255, 256, 65535, 65536, -1, 2**31, -(2**31) - 1, 2**70,
              -(2**70), 1.5, float("inf"), "x", "é", (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
              [], [1], list(range(1001)), {}, {"a": 1}, dict(list(many.items())[:1000]), many,
              OrderedDict(), OrderedDict(a=1), OrderedDict(many)]  # fmt: skip
    shared = ["s", "s"]
    obj = OrderedDict(values=values, shared=[shared, shared])
    assert torchzip.pickle_checkpoint(obj)[0] == pickle.dumps(obj, protocol=2)


# ----------------------------------------------------------------- refuse, never guess


def _g_with(tmp_path: Path, change) -> Path:
    run = write_run(tmp_path / "logs", "alice", steps=(2000,), with_d=False)
    g = run / "G_2000.pth"
    ckpt = torch.load(g, weights_only=True)
    change(ckpt["model"])
    torch.save(ckpt, g)
    return g


def _transpose(model):
    key = next(k for k, v in model.items() if v.dim() == 2 and v.shape[0] != v.shape[1])
    model[key] = model[key].t().contiguous().t()


def _float64(model):
    key = next(k for k in model if "enc_q" not in k)
    model[key] = model[key].double()


def _parameter_with_state(model):
    key = next(k for k in model if "enc_q" not in k)
    model[key] = torch.nn.Parameter(model[key])
    model[key].note = "set by the user"  # torch writes _rebuild_parameter_with_state


@pytest.mark.parametrize(("change", "what"), [(_transpose, "non-contiguous float32 tensor"),
                                              (_float64, "torch.DoubleStorage"),
                                              (_parameter_with_state, "Python state")])  # fmt: skip
def test_what_is_not_proven_goes_to_torch_or_is_refused(tmp_path, change, what):
    g = _g_with(tmp_path, change)
    r = janitor_without_torch("extract-small", g)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and what in lines[0] and "vits-janitor[torch]" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not list(g.parent.glob("alice_*.pth"))
    # with torch installed, torch converts it, as the trainer would
    r = run_janitor("extract-small", g)
    assert r.returncode == 0, r.stderr
    (out,) = g.parent.glob("alice_*.pth")
    want = torch.load(g, weights_only=True)["model"]
    got = loads_weights_only(out)["weight"]
    assert all(torch.equal(got[k], want[k].half()) for k in got)


# ----------------------------------------------------------------- without torch installed


def test_info_without_torch_says_what_torch_would(tmp_path):
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json", "tiny_2e_200s.pth"):
        shutil.copy(REAL / name, run / name)
    r = run_janitor("extract-small", run / "G_200.pth", "--format", "rvc", "--output", tmp_path)
    assert r.returncode == 0, r.stderr
    for f in (run / "G_200.pth", run / "tiny_2e_200s.pth", *tmp_path.glob("tiny_e*.pth")):
        mine = janitor_without_torch("info", "--json", f)
        theirs = run_janitor("info", "--json", f)
        assert mine.returncode == theirs.returncode == 0, mine.stderr
        assert json.loads(mine.stdout) == json.loads(theirs.stdout)


def test_an_export_that_needs_torch_says_so_in_one_line(tmp_path):
    from fixtures import trainers

    run = trainers.write_sovits_run(tmp_path / "so-vits-svc")
    r = janitor_without_torch("extract-small", run / "G_800.pth", "--format", "release")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "needs torch" in r.stderr
    assert "pip install 'vits-janitor[torch]'" in r.stderr and "Traceback" not in r.stderr


def test_verification_from_the_bytes_finds_a_wrong_tensor(tmp_path):
    run = tmp_path / "logs" / "tiny"
    run.mkdir(parents=True)
    for name in ("G_100.pth", "G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    done = extract.extract_one(str(run / "G_200.pth"), Options())
    assert extract.verify_small(done.output, str(run / "G_200.pth"), done.expect) == []
    problems = extract.verify_small(done.output, str(run / "G_100.pth"), done.expect)
    assert any("differs from the fp16 conversion" in p for p in problems), problems


def test_verification_from_the_bytes_takes_parameters_and_finds_a_wrong_one(tmp_path):
    run = write_run(tmp_path / "logs", "alice", steps=(2000,), with_d=False)
    g = run / "G_2000.pth"
    retype(g, torch.float16)
    key = [k for k in as_parameters(g, requires_grad=True) if "enc_q" not in k][-1]
    done = extract.extract_one(str(g), Options())
    small = loads_weights_only(Path(done.output))["weight"]
    assert isinstance(small[key], torch.nn.Parameter)
    assert extract._verify_torch_free(done.output, str(g), done.expect, None) == []
    other = tmp_path / "other" / g.name
    other.parent.mkdir()
    ckpt = torch.load(g, weights_only=True)
    with torch.no_grad():
        ckpt["model"][key][0] += 1
    torch.save(ckpt, other)
    problems = extract._verify_torch_free(done.output, str(other), done.expect, None)
    assert problems == [f"tensor {key} differs from the fp16 conversion of the big checkpoint"]


def _rewritten(src: Path, dst: Path, change) -> Path:
    """``src`` with its records' bytes changed by ``change(name, data)``."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for info in z.infolist():
            out.writestr(info, change(info.filename, z.read(info)))
    return dst


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda n, d: b"big" if n.endswith("/byteorder") else d, "big-endian"),
        (lambda n, d: d.replace(b"_rebuild_tensor_v2", b"_rebuild_tensor_v3")
         if n.endswith("data.pkl") else d, "_rebuild_tensor_v3"),
    ],
)  # fmt: skip
def test_the_reader_refuses_what_it_does_not_know(tmp_path, change, what):
    from janitor.core import halving
    from janitor.storage.torchfile import TorchFile

    path = _rewritten(REAL / "G_200.pth", tmp_path / "G_200.pth", change)
    with pytest.raises(torchzip.Unsupported, match=what), TorchFile(str(path)) as tf:
        halving.half_weights(tf.skeleton()["model"], tf.reader)


def test_contiguity_is_torchs():
    from janitor.core.halving import contiguous

    cases = [((2, 3), (3, 1)), ((1, 3), (99, 1)), ((2, 1, 3), (3, 7, 1)), ((0, 3), (5, 9)),
             ((), ())]  # fmt: skip
    for size, stride in cases:
        assert contiguous(size, stride) == torch.empty_strided(size, stride).is_contiguous()
    for size, stride in [((2, 3), (1, 2)), ((2, 3), (4, 1)), ((3,), (2,))]:
        assert not contiguous(size, stride)
        assert not torch.empty_strided(size, stride).is_contiguous()


def test_a_path_that_is_not_ascii_names_the_inner_folder_archive(tmp_path, monkeypatch):
    run = tmp_path / "logs" / "josé"
    run.mkdir(parents=True)
    for name in ("G_200.pth", "config.json", "model_info.json"):
        shutil.copy(REAL / name, run / name)
    (tmp_path / "mine").mkdir()
    (tmp_path / "ref").mkdir()
    write_without_torch([(run / "G_200.pth", {"output": str(tmp_path / "mine")})])
    theirs = with_torch(run / "G_200.pth", {"output": str(tmp_path / "ref")}, monkeypatch)
    mine = tmp_path / "mine" / theirs.name
    assert zipfile.ZipFile(mine).namelist()[0] == "archive/data.pkl"
    assert_same_file(mine, theirs)
