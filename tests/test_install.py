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

from tests.conftest import REPO, fake_run

pytestmark = pytest.mark.slow


def _run(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=300,
                       cwd=cwd or os.path.dirname(args[0]), env=env)  # fmt: skip
    assert r.returncode == 0, f"{args}\n{r.stdout}\n{r.stderr}"
    return r


def test_wheel_installs_into_a_trainer_environment_and_runs(tmp_path):
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", REPO, "-w", dist)  # fmt: skip
    (wheel,) = dist.glob("vits_janitor-*.whl")

    env = tmp_path / "trainer-env"
    _run(sys.executable, "-m", "venv", "--without-pip", env)  # pip too is the trainer's
    bindir = env / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    site = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    # The trainer's packages (torch CPU, typer, ...) live in another folder on its path: this
    # venv's, less janitor's own development install (a trainer's environment has none).
    ours = Path(sysconfig.get_paths()["purelib"])
    trainer = tmp_path / "trainer-packages"
    trainer.mkdir()
    for entry in ours.iterdir():
        if "janitor" not in entry.name.lower():
            (trainer / entry.name).symlink_to(entry)
    (Path(site.strip()) / "trainer-packages.pth").write_text(f"{trainer}\n")

    out = _run(py, "-m", "pip", "install", "--no-index", "--find-links", dist,
               "vits-janitor").stdout  # fmt: skip
    assert "Successfully installed vits-janitor-" in out
    assert "torch" not in out.split("Successfully installed", 1)[1]  # the trainer's torch

    janitor = bindir / "janitor"
    code = "import janitor, torch; print(janitor.__file__, torch.__version__)"
    where = _run(py, "-c", code, cwd=tmp_path)
    assert where.stdout.startswith(str(env)), where.stdout  # the installed copy, not the tree
    assert "Usage" in _run(janitor, "--help", cwd=tmp_path).stdout
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    scan = _run(janitor, "scan", logs, cwd=tmp_path).stdout
    assert "alice" in scan and "300" in scan
