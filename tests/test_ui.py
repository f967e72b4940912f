"""The web page: its handlers called directly on generated logs roots, the running app
in-process through gradio_client on 127.0.0.1, the Applio plugin through a stand-in of
Applio's plugin loader, and the commands that serve and package it."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from janitor.domain.errors import UsageError
from tests.conftest import REPO, fake_ckpt, fake_run

gr = pytest.importorskip("gradio")
from janitor.ui import handlers as h  # noqa: E402
from janitor.ui import page  # noqa: E402

OLD = 1_600_000_000.0


@pytest.fixture
def logs(tmp_path) -> Path:
    root = tmp_path / "logs"
    fake_run(root, "alice", [100, 200, 300, 400], start=OLD)
    fake_ckpt(root / "bob" / "G_2333333.pth", mtime=OLD)  # stale latest-only: a resume trap
    fake_run(root, "bob", [1000, 2000], start=OLD + 3600)
    return root


def on_disk(run: Path) -> list[str]:
    return sorted(p.name for p in run.glob("*.pth"))


def test_the_root_view_lists_runs_with_disk_use_newest_step_and_warnings(logs):
    view = h.root_view(str(logs))
    rows = {r[0]: r for r in view.rows}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"][3] == "step 400" and rows["alice"][2].endswith("kB")
    assert "resume from the stale G_2333333.pth" in rows["bob"][6]
    assert rows["alice"][6] == ""
    assert "free space:" in view.header and "unknown" not in view.header
    assert [name for name, _ in view.choices] == ["alice", "bob"]


def test_a_run_training_now_says_so(logs):
    fake_ckpt(logs / "carol" / "G_10.pth")
    fake_ckpt(logs / "carol" / "D_10.pth")
    rows = {r[0]: r for r in h.root_view(str(logs)).rows}
    assert rows["carol"][6].startswith("training now")


def test_skipped_folders_are_not_listed(logs):
    fake_run(logs, "mute", [10], start=OLD)
    assert [n for n, _ in h.root_view(str(logs), ("mute*",)).choices] == ["alice", "bob"]


def test_dry_run_then_prune_carries_out_the_plan_shown(logs):
    run = str(logs / "alice")
    shown = h.dry_run(run)
    assert "Nothing has been removed" in shown.text
    decisions = {r[0]: (r[3], r[4]) for r in shown.rows}
    assert decisions["step 400"][0] == "keep" and "newest complete" in decisions["step 400"][1]
    assert [r[0] for r in shown.rows if r[3] == "remove"] == ["step 100", "step 200", "step 300"]
    assert on_disk(logs / "alice") == sorted(
        f"{p}_{s}.pth" for p in "GD" for s in (100, 200, 300, 400)
    )  # the dry run changed nothing
    ticks = []
    done = h.prune(run, shown.plan, progress=lambda f, text: ticks.append(f))
    assert on_disk(logs / "alice") == ["D_400.pth", "G_400.pth"]
    assert "6 files removed" in done.text and "changed" not in done.text
    assert len(ticks) == 6 and ticks[-1] == 1.0
    assert [r[3] for r in done.rows] == ["keep"]  # the run's plan as it is now


def test_prune_removes_nothing_the_user_has_not_seen(logs):
    run = logs / "alice"
    shown = h.dry_run(str(run))
    fake_ckpt(run / "G_200.pth", payload=4096, mtime=OLD + 5)  # rewritten after the dry run
    for step in (500, 600):  # and the trainer saved twice more
        for p in "GD":
            fake_ckpt(run / f"{p}_{step}.pth", mtime=OLD + 9000 + step)
    done = h.prune(str(run), shown.plan)
    # only what both plans remove went: 100 and 300; 200 changed; 400, 500 were not shown
    assert on_disk(run) == sorted(f"{p}_{s}.pth" for p in "GD" for s in (200, 400, 500, 600))
    assert "The run changed since the dry run" in done.text
    assert "step 200" in done.text and "left alone" in done.text
    assert [r[0] for r in done.rows if r[3] == "remove"] == ["step 200", "step 400", "step 500"]
    assert done.plan is not None  # the new plan is the one a second Prune carries out


def test_prune_needs_a_dry_run_of_that_run(logs):
    with pytest.raises(UsageError, match="press Dry run first"):
        h.prune(str(logs / "alice"), None)
    other = h.dry_run(str(logs / "bob")).plan
    with pytest.raises(UsageError, match="press Dry run first"):
        h.prune(str(logs / "alice"), other)
    assert len(on_disk(logs / "alice")) == 8


def test_trash_restore_and_journal(logs):
    run = str(logs / "alice")
    done = h.prune(run, h.dry_run(run).plan, trash=True)
    assert "moved to the trash" in done.text and "0 B freed" in done.text
    assert on_disk(logs / "alice") == ["D_400.pth", "G_400.pth"]
    assert [r[0] for r in h.trash_rows(run)] == [100, 200, 300]
    assert h.restore(run, "200").startswith("Restored step 200")
    assert "G_200.pth" in on_disk(logs / "alice")
    assert [r[0] for r in h.trash_rows(run)] == [100, 300]
    events = [(r[1], r[3], r[4]) for r in h.journal_rows(str(logs))]
    assert events[0][0] == "restore" and ("trash", 100, "G_100.pth") in events
    with pytest.raises(UsageError, match="Restore: steps are whole numbers"):
        h.restore(run, "two")


def test_pin_protects_and_unpin_names_what_was_not_pinned(logs):
    run = str(logs / "alice")
    assert h.pin(run, ["200"]) == "Pinned steps of alice: 200"
    assert "pinned" in {r[0]: r[4] for r in h.dry_run(run).rows}["step 200"]
    assert h.pin(run, ["200", "300"], unpin=True) == "Pinned steps of alice: none (not pinned: 300)"
    with pytest.raises(UsageError, match="Pin: choose at least one step"):
        h.pin(run, [])


def test_extract_and_finalize_on_real_checkpoints(tmp_path):
    from fixtures.gen import write_run

    root = tmp_path / "logs"
    write_run(root, "alice", steps=(100, 200, 300), mtime_start=OLD)
    run = str(root / "alice")
    ticks = []
    text = h.extract(run, ["200"], progress=lambda f, t: ticks.append(f))
    small = [p.name for p in (root / "alice").glob("alice_*.pth")]
    assert len(small) == 1 and small[0] in text and ticks == [1.0]
    assert "already there" in h.extract(run, ["200"])
    with pytest.raises(UsageError, match="Extract: step 250 has no G file"):
        h.extract(run, ["250"])
    assert "dry run: nothing removed" in h.finalize(run, dry_run=True)
    assert len(on_disk(root / "alice")) == 7  # 3 sets and the small model
    done = h.finalize(run, dry_run=False)
    assert "freed" in done
    assert [p for p in on_disk(root / "alice") if p[:2] in ("G_", "D_")] == []


def test_errors_are_one_line_on_the_page(tmp_path):
    with pytest.raises(gr.Error) as caught:
        page.load(str(tmp_path / "missing"))
    assert caught.value.message == f"{tmp_path / 'missing'}: no such file or folder"
    with pytest.raises(gr.Error, match="pick a run first"):
        page.show_plan(None)
    assert h.one_line(ValueError("a\n  b")) == "ValueError: a b"


# ------------------------------------------------------------------ the running app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(logs):
    from janitor.ui.serve import launch

    demo = launch(str(logs), port=free_port(), block=False)
    try:
        yield demo
    finally:
        demo.close()


def test_the_running_app_through_gradio_client(served, logs):
    from gradio_client import Client

    url = served.local_url
    assert url.startswith("http://127.0.0.1:")
    assert served.share_url is None
    client = Client(url, verbose=False)
    header, runs, run = client.predict(str(logs), api_name="/load_root")
    assert "2 runs" in header
    assert [r[0] for r in runs["data"]] == ["alice", "bob"]
    alice = str(logs / "alice")
    text, plan, _steps = client.predict(alice, api_name="/show_plan")
    assert "3 sets to remove" in text
    text, plan, _steps = client.predict(alice, False, api_name="/prune")
    assert "6 files removed" in text
    assert on_disk(logs / "alice") == ["D_400.pth", "G_400.pth"]
    with pytest.raises(Exception, match="no such file or folder"):
        client.predict(str(logs / "nope"), api_name="/load_root")


def test_ui_refuses_a_public_host_without_a_password_and_needs_nothing_else(cli, logs):
    result = cli("ui", str(logs), "--host", "0.0.0.0")
    assert result.exit_code != 0
    assert "give --auth USER:PASSWORD" in result.output and "Traceback" not in result.output
    result = cli("ui", str(logs), "--host", "0.0.0.0", "--auth", "nopassword")
    assert "--auth: expected USER:PASSWORD" in result.output


def test_help_scan_and_prune_import_neither_gradio_nor_torch(logs):
    code = (
        "import sys\nfrom janitor.cli import main\n"
        "for argv in (['--help'], ['scan', sys.argv[1]], ['prune', sys.argv[1], '-n']):\n"
        "    sys.argv = ['janitor', *argv]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "print([m for m in ('gradio', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(logs)], capture_output=True, text=True,
                         cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ------------------------------------------------------------------ the Applio plugin


@pytest.fixture
def applio(tmp_path, monkeypatch, cli):
    """An Applio folder with the plugin installed from the zip, as its installer does, and
    logs/ holding a run and the folders that are not runs."""
    home = tmp_path / "applio"
    assert cli("ui-plugin", "applio", "-o", str(tmp_path / "out")).exit_code == 0
    with zipfile.ZipFile(tmp_path / "out" / "janitor.zip") as z:
        assert sorted(z.namelist()) == ["janitor/plugin.py", "janitor/requirements.txt"]
        assert z.read("janitor/requirements.txt").decode() == "vits-janitor>=0.2.0\n"
        z.extractall(home / "tabs" / "plugins" / "installed")
    for pkg in ("tabs", "tabs/plugins", "tabs/plugins/installed"):
        (home / pkg / "__init__.py").write_text("")
    fake_run(home / "logs", "alice", [100, 200], start=OLD)
    (home / "logs" / "mute" / "sliced_audios").mkdir(parents=True)
    (home / "logs" / "reference").mkdir()
    monkeypatch.chdir(home)
    monkeypatch.syspath_prepend(str(home))
    yield home
    for name in [m for m in sys.modules if m == "tabs" or m.startswith("tabs.")]:
        del sys.modules[name]


def load_plugins() -> gr.Blocks:
    """Applio's loader: import each installed plugin, call applio_plugin() in a tab."""
    with gr.Blocks() as app:
        with gr.Tab("Inference"):
            gr.Markdown("Applio's own tab")
        with gr.Tab("Plugins"):
            for name in os.listdir(os.path.join("tabs", "plugins", "installed")):
                if os.path.isdir(os.path.join("tabs", "plugins", "installed", name)):
                    module = importlib.import_module(f"tabs.plugins.installed.{name}.plugin")
                    with gr.Tab(name):
                        module.applio_plugin()
    return app


def texts(app: gr.Blocks) -> dict[str, object]:
    config = app.get_config_file()
    return {str(c["props"].get("elem_id") or c["id"]): c["props"].get("value")
            for c in config["components"]}  # fmt: skip


def test_the_plugin_tab_in_applio(applio):
    values = texts(load_plugins())
    assert values["root"] == str(applio / "logs")
    view = page.load(values["root"], ("mute*", "reference"))
    assert [r[0] for r in view[1]] == ["alice"]


def test_the_plugin_says_how_to_install_a_newer_janitor(applio, monkeypatch):
    import janitor

    monkeypatch.setattr(janitor, "__version__", "0.1.0")
    shown = [v for v in texts(load_plugins()).values() if isinstance(v, str)]
    line = f'{sys.executable} -m pip install "vits-janitor>=0.2.0"'
    assert any("janitor 0.1.0 is too old" in v and line in v for v in shown), shown
    assert "Applio's own tab" in shown  # the rest of the app is built


def test_the_plugin_shows_its_own_failure_in_the_tab(applio, monkeypatch):
    monkeypatch.setattr(page, "controls", lambda *a: 1 / 0)
    shown = [v for v in texts(load_plugins()).values() if isinstance(v, str)]
    assert "janitor could not start: ZeroDivisionError: division by zero" in shown
    assert "Applio's own tab" in shown


def test_the_plugin_imports_nothing_heavy(applio):
    code = ("import sys; import tabs.plugins.installed.janitor.plugin; "
            "print([m for m in ('gradio', 'torch', 'janitor') if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=applio, env={**os.environ, "PYTHONPATH": str(applio)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_run_changed_picks_clear_the_plan_shown():
    text, rows, plan = page.picked("x")
    assert plan is None and rows == [] and "Dry run" in text
