"""README's "into an existing trainer environment" install, as written: the built wheel goes
into a fresh venv that already has torch (the CPU build) and janitor's other dependencies
(what a trainer's environment has); pip reuses them, installs only janitor, and the
`janitor` command works there. Offline: nothing is fetched (tests reach loopback only);
`.ci/install-check` does the same from the package index with network."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from fixtures import trainers as T
from fixtures.gen import write_run
from tests.conftest import REPO, fake_run

pytestmark = pytest.mark.slow


def _run(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300,
                       cwd=cwd or os.path.dirname(args[0]), env=env)  # fmt: skip
    assert r.returncode == 0, f"{args}\n{r.stdout}\n{r.stderr}"
    return r


def _wheel_and_env(tmp_path: Path, leave_out: tuple[str, ...]) -> tuple[Path, Path]:
    """(janitor's bin folder, its python) of a fresh venv with the wheel installed, whose
    other packages are this venv's (what a trainer's environment has), less janitor's own
    development install and the packages in ``leave_out``."""
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", REPO, "-w", dist)  # fmt: skip
    env = tmp_path / "trainer-env"
    _run(sys.executable, "-m", "venv", "--without-pip", env)  # pip too is the trainer's
    bindir = env / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    site = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    ours = Path(sysconfig.get_paths()["purelib"])
    trainer = tmp_path / "trainer-packages"
    trainer.mkdir()
    for entry in ours.iterdir():
        name = entry.name.lower()
        if "janitor" not in name and not any(
            name == x or name.startswith((f"{x}-", f"{x}.")) for x in leave_out
        ):
            (trainer / entry.name).symlink_to(entry)
    (Path(site.strip()) / "trainer-packages.pth").write_text(f"{trainer}\n")
    out = _run(py, "-m", "pip", "install", "--no-index", "--find-links", dist,
               "vits-janitor").stdout  # fmt: skip
    assert "Successfully installed vits-janitor-" in out
    assert "torch" not in out.split("Successfully installed", 1)[1]
    return bindir, py


def test_wheel_installs_into_a_trainer_environment_and_runs(tmp_path):
    bindir, py = _wheel_and_env(tmp_path, ())
    env = py.parent.parent
    janitor = bindir / "janitor"
    code = "import janitor, torch; print(janitor.__file__, torch.__version__)"
    where = _run(py, "-c", code, cwd=tmp_path)
    assert where.stdout.startswith(str(env)), where.stdout  # the installed copy, not the tree
    assert "Usage" in _run(janitor, "--help", cwd=tmp_path).stdout
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    scan = _run(janitor, "scan", logs, cwd=tmp_path).stdout
    assert "alice" in scan and "300" in scan


def test_without_torch_applio_runs_are_extracted_and_finalized(tmp_path):
    """The wheel in an environment without torch (numpy and the rest there): --help, scan,
    prune, extract-small of an Applio G and finalize work; so-vits-svc's release file, which
    needs torch, says so in one line (exit 2)."""
    bindir, py = _wheel_and_env(tmp_path, ("torch", "nvidia", "triton", "functorch"))
    janitor = bindir / "janitor"
    r = subprocess.run([py, "-c", "import torch"], capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr
    assert "Usage" in _run(janitor, "--help", cwd=tmp_path).stdout
    logs = tmp_path / "logs"
    run = write_run(logs, "alice", steps=(100, 200, 300), with_d=True)
    assert "alice" in _run(janitor, "scan", logs, cwd=tmp_path).stdout
    _run(janitor, "prune", logs, "--keep-last", "2", cwd=tmp_path)
    assert not (run / "G_100.pth").exists()
    _run(janitor, "extract-small", run / "G_200.pth", cwd=tmp_path)
    (small,) = run.glob("alice_*e_200s.pth")
    ckpt = torch.load(small, weights_only=True, mmap=True)
    model = torch.load(run / "G_200.pth", weights_only=True)["model"]
    assert all(torch.equal(v, model[k].half()) for k, v in ckpt["weight"].items())
    _run(janitor, "finalize", run, "--idle", "0s", "--force", cwd=tmp_path)
    assert not list(run.glob("G_*.pth")) and len(list(run.glob("alice_*e_300s.pth"))) == 1
    sovits = T.write_sovits_run(tmp_path / "so-vits-svc")
    r = subprocess.run([janitor, "extract-small", sovits / "G_800.pth", "--format", "release"],
                       capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "needs torch" in r.stderr and "vits-janitor[torch]" in r.stderr
