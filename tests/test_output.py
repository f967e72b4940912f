"""Output people can read: long runs collapse into step ranges, sizes and counts read
naturally, --trainer names every profile."""

from __future__ import annotations

from janitor.core.profiles import PROFILES
from tests.conftest import fake_run


def test_consecutive_removed_steps_collapse_into_ranges(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", range(100, 1100, 100))
    r = cli("prune", logs, "-n", "--keep-last", "1", "--keep-every", "500")
    assert r.exit_code == 0, r.output
    assert "steps 100\u2013400 (4 sets)" in r.output and "steps 600\u2013900 (4 sets)" in r.output
    assert "G, D: 8 files" in r.output
    assert "G_300.pth" not in r.output and "G_500.pth" in r.output  # kept sets: own rows
    r = cli("prune", logs, "-n", "--keep-last", "1", "--keep-every", "500", "--verbose")
    assert "\u2013" not in r.output and "G_300.pth" in r.output and "G_900.pth" in r.output


def test_two_removed_sets_stay_two_rows(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300])
    r = cli("prune", logs, "-n")
    assert "G_100.pth" in r.output and "G_200.pth" in r.output and "\u2013" not in r.output


def test_sizes_counts_and_spans_read_naturally(tmp_path, cli):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [1000])
    r = cli("scan", logs)
    assert "steps 1000..1000" not in r.output and "1 (1 complete), step 1000" in r.output
    assert "Bytes" not in r.output and "would free 0 B" in r.output
    assert "small models 0 B in 0 files" in r.output


def test_trainer_help_names_every_profile(cli):
    text = " ".join(cli("scan", "--help").output.split())
    for name in PROFILES:
        assert name in text.replace("- ", "-"), name


def test_colours_for_keep_and_remove_and_no_color_wins(tmp_path, cli, monkeypatch):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200])
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = cli("prune", logs, "-n").output
    assert "\x1b[32mkeep" in coloured and "\x1b[31mremove" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    plain = cli("prune", logs, "-n").output
    assert "keep" in plain and "\x1b[3" not in plain


def _on_a_terminal(*args) -> tuple[str, str]:
    """janitor with stderr on a pseudo-terminal (stdout a pipe): (stdout, what the terminal
    got)."""
    import os
    import pty
    import subprocess
    import sys
    import tempfile

    from tests.conftest import REPO

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "janitor", *map(str, args)], cwd=REPO,
                                stdout=stdout, stderr=slave, env=env)  # fmt: skip
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=60)
        os.close(master)
        stdout.seek(0)
        return stdout.read().decode(), seen.decode(errors="replace")


def test_progress_on_a_terminal_only_and_never_with_quiet_or_json(tmp_path):
    logs = tmp_path / "logs"
    fake_run(logs, "alice", range(1, 200))
    out, tty = _on_a_terminal("prune", logs, "--keep-last", "150")
    assert "removing" in tty and "removing" not in out
    out, tty = _on_a_terminal("prune", logs, "--keep-last", "100", "--quiet")
    assert "removing" not in tty
    out, tty = _on_a_terminal("prune", logs, "--keep-last", "50", "--json")
    assert "removing" not in tty and out.startswith("{")


def test_an_old_truncated_file_says_truncated_a_fresh_one_may_be_written(tmp_path, cli):
    import os
    import time

    from tests.conftest import fake_ckpt, truncate

    logs = tmp_path / "logs"
    run = fake_run(logs, "alice", [100, 200])
    for name in ("G_300.pth", "D_300.pth"):
        truncate(fake_ckpt(run / name))
    out = cli("prune", logs, "-n", "--verbose").output
    assert "incomplete: being written or truncated" in out  # just written: may still grow
    old = time.time() - 60
    for name in ("G_300.pth", "D_300.pth"):
        os.utime(run / name, (old, old))
    out = cli("prune", logs, "-n", "--verbose").output
    assert "incomplete: truncated (unchanged for over 10 s)" in out
    assert "being written or truncated" not in out


def test_finalize_shows_the_tensors_it_verifies_on_a_terminal(tmp_path):
    """finalize's verification of a full-size run takes ~20 s: the bar counts its tensors."""
    from fixtures.gen import write_run

    write_run(tmp_path / "logs", "alice", steps=(100, 200), mtime_start=1_600_000_000.0)
    out, tty = _on_a_terminal("finalize", tmp_path / "logs", "--force")
    assert "verifying tensors" in tty and "finalizing runs" in tty
    assert "verified" in out and "verifying" not in out


def test_the_watchers_first_pass_reports_progress_run_by_run(tmp_path):
    from janitor.domain.policy import Overrides
    from janitor.usecases.watch import Watcher

    for name in ("a", "b", "c"):
        fake_run(tmp_path / "logs", name, [1, 2, 3])
    seen: list[tuple[int, int]] = []
    watcher = Watcher([str(tmp_path / "logs")], Overrides(keep_last=1),
                      progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    watcher.full_pass()
    watcher.full_pass()  # later passes read only what changed: no bar
    assert seen == [(1, 3), (2, 3), (3, 3)]
