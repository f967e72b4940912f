"""`janitor scan RUN --plot FILE.svg|png`: the file is produced, valid, written atomically;
the plan's kept sets, their reasons and the metric curve are in it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from fixtures.gen import write_run
from tests.conftest import fake_run

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
    r = cli("scan", logs, "--plot", tmp_path / "plan.svg")
    assert r.exit_code == 2 and "draws one run; found 2 (alice, bob)" in r.output
    r = cli("scan", logs, "--metric", "loss/g/total")
    assert r.exit_code == 2 and "--metric on scan is for --plot" in r.output
    assert not (tmp_path / "plan.svg").exists()
