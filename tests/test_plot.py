"""`janitor scan RUN --plot FILE.svg|png`: the file is produced, valid, written atomically;
the plan's kept sets, their reasons and the metric curve are in it. `scan ROOT --plot`: the
root's disk use by run beside its file systems, the numbers drawn those of the scan."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from fixtures.gen import write_run
from janitor.cli.plot import draw_root
from janitor.domain.disk import Disk, RootPicture, RunUse
from tests.conftest import fake_run, run_janitor

pytest.importorskip("matplotlib")

LOSS = [(s, 40.0 - s / 100) for s in range(50, 1100, 50)]


@pytest.fixture
def logs(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=range(100, 1100, 100), metrics={"loss/g/total": LOSS})
    return logs


def test_svg_with_the_plan_and_the_metric(logs, cli, tmp_path):
    out = tmp_path / "plan.svg"
    out.write_text("old")  # replaced whole
    r = cli("scan", logs / "alice", "--plot", out, "--metric", "loss/g/total")
    assert r.exit_code == 0, r.output
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    text = out.read_text()
    for words in ("newest complete", "loss/g/total", "removed by the plan", "alice: keep-last 1"):
        assert words in text, words
    assert [p.name for p in tmp_path.iterdir()] == ["logs", "plan.svg"]  # no temp file left


def test_png_is_a_valid_image_of_a_logs_root_with_one_run(cli, tmp_path):
    from matplotlib.image import imread

    logs = tmp_path / "logs"
    fake_run(logs, "alice", range(100, 1100, 100))
    (logs / "janitor.toml").write_text("[prune]\nkeep-every = 500\n")
    out = tmp_path / "plan.png"
    r = cli("scan", logs, "--plot", out)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h, w, _ = imread(out).shape
    assert w > 800 and h > 400


def test_plot_usage_errors(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [1, 2])
    fake_run(logs, "bob", [1, 2])
    r = cli("scan", logs / "alice", "--plot", tmp_path / "plan.pdf")
    assert r.exit_code == 2 and "must end in .svg or .png" in r.output
    r = cli("scan", logs, "--plot", tmp_path / "plan.svg", "--metric", "loss/g/total")
    assert (
        r.exit_code == 2 and "--metric draws one run's curve: give --plot a run folder" in r.output
    )
    r = cli("scan", logs, "--metric", "loss/g/total")
    assert r.exit_code == 2 and "--metric on scan is for --plot" in r.output
    assert not (tmp_path / "plan.svg").exists()


def plotted(svg: bytes) -> dict[tuple[str, str, str], int]:
    """The numbers an svg of ``draw_root`` plots: (run|disk, name, part) -> bytes."""
    out = {}
    for element in ET.fromstring(svg).iter():
        kind, _, rest = (element.get("id") or "").partition("|")
        if kind in ("run", "disk"):
            name, part, value = rest.rsplit("|", 2)
            out[(kind, name, part)] = int(value)
    return out


def test_a_logs_root_is_drawn_as_its_disk_use_by_run_the_numbers_the_scans(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs, "alice", steps=range(100, 600, 100), small_models=(300,))
    write_run(logs, "bob", steps=(100, 200), seed=1)
    (logs / "bob" / "janitor.toml").write_text("[prune]\nkeep-last = 2\n")
    trashed = run_janitor("prune", logs / "alice", "--keep-last", "3", "--trash")
    assert trashed.returncode == 0, trashed.stderr
    out = tmp_path / "root.svg"
    r = run_janitor("scan", logs, "--plot", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    got = plotted(out.read_bytes())
    for run in doc["runs"]:
        name = run["name"]
        parts = {p: got[("run", name, p)] for p in ("kept", "removable", "small", "trash")}
        assert parts["kept"] + parts["removable"] == run["big_bytes"]
        assert (parts["small"], parts["trash"]) == (run["small_bytes"], run["trash_bytes"])
    # alice under the default keep-last 1: the newest set kept, 2 more removable; bob keeps 2
    alice = {s["number"]: s["size"] for s in doc["runs"][0]["sets"]}
    assert got[("run", "alice", "kept")] == alice[500]
    assert got[("run", "alice", "removable")] == alice[300] + alice[400]
    assert got[("run", "alice", "trash")] > 0 and got[("run", "alice", "small")] > 0
    assert got[("run", "bob", "removable")] == 0
    (fsys,) = doc["file_systems"]
    assert got[("disk", fsys["mount"], "free")] == fsys["free"]
    runs_bytes = sum(r["big_bytes"] + r["small_bytes"] + r["trash_bytes"] for r in doc["runs"])
    assert got[("disk", fsys["mount"], "runs")] == runs_bytes
    assert ("disk", fsys["mount"], "floor") not in got  # no min-free configured: no floor
    assert sorted(os.listdir(tmp_path)) == ["logs", "root.svg"]


def test_the_floor_is_drawn_where_one_is_known(tmp_path):
    disk = Disk("/mnt", "tmpfs", 64_000_000, 10_000_000, ("/mnt/logs/a",), floor=14_000_000)
    use = RunUse("a", "/mnt/logs/a", 30_000_000, 10_000_000, 1_000_000, 0)
    got = plotted(draw_root(RootPicture("/mnt/logs", (use,), (disk,)), "x.svg"))
    assert got[("disk", "/mnt", "floor")] == 14_000_000
    assert got[("disk", "/mnt", "other")] == 64_000_000 - 10_000_000 - 41_000_000
