"""README.md and the pages in docs/: the quick start runs as written, every link and anchor
leads somewhere, every page is reachable from the README, and `make safety` has its table's
place in docs/safety.md."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.gen import write_run
from tests.conftest import REPO, run_janitor

README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (links and headings live there)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return "\n".join(out)


def anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(m) for m in re.findall(r"^#+ (.+)$", prose(page.read_text()), re.M)}


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"\w+:", t)]


def code_block(text: str, heading: str, lang: str) -> str:
    section = text[text.index(heading) :]
    start = section.index(f"```{lang}\n") + len(f"```{lang}\n")
    return section[start : section.index("```", start)]


def test_anchor_matches_github():
    assert anchor("Small models: `extract-small` and `info`") == (
        "small-models-extract-small-and-info"
    )
    assert anchor("Scan warnings (resume traps)") == "scan-warnings-resume-traps"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_link_leads_somewhere(page):
    assert links(page) or page == README, f"{page.name}: no link back"
    for target in links(page):
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to {target}: no such file"
        if frag:
            assert frag in anchors(dest), f"{page.name}: link to {target}: no such heading"


def test_every_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(README)}
    assert [p.name for p in PAGES if p.resolve() not in linked] == []


def test_readme_is_short_and_starts_with_the_quick_start():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    headings = re.findall(r"^## (.+)$", prose(text), re.M)
    assert headings[:3] == ["Quick start", "Where things live", "Install"]
    assert "make test" in code_block(text, "## Development", "sh")


@pytest.mark.slow
def test_the_quick_start_runs_as_written(tmp_path):
    """Every `janitor` line of the README's quick start, in order, on a logs folder with one
    Applio run saved at steps 1000 and 2000: each exits 0 and the end state is the one the
    comments promise (the newest set and its small model, nothing older)."""
    write_run(tmp_path / "logs", "alice", steps=(1000, 2000), steps_per_epoch=100)
    lines = code_block(README.read_text(), "## Quick start", "sh").splitlines()
    commands = [shlex.split(line, comments=True) for line in lines]
    assert commands[0][:2] == ["pip", "install"]
    assert [c[0] for c in commands[1:]] == ["janitor"] * 4
    for argv in commands[1:]:
        done = run_janitor(*argv[1:], cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    run = tmp_path / "logs" / "alice"
    assert sorted(p.name for p in run.glob("[GD]_*.pth")) == ["D_2000.pth", "G_2000.pth"]
    assert (run / "alice_20e_2000s.pth").exists()


def test_safety_table_goes_into_docs_safety(tmp_path):
    """`make safety`'s last step, on a copy of docs/safety.md: the table between the markers is
    replaced, the rest of the page stays; a failed scenario shows and fails the tool."""
    page = tmp_path / "safety.md"
    page.write_text((REPO / "docs" / "safety.md").read_text())
    report = tmp_path / "safety.json"
    counts = {"2. second": {"tests": 1, "cases": 3, "failed": 0}}
    counts["1. first"] = {"tests": 2, "cases": 5, "failed": 0}
    report.write_text(json.dumps(counts))
    tool = [sys.executable, str(REPO / "tools" / "safety_table.py"), str(report), str(page)]
    assert subprocess.run(tool, capture_output=True).returncode == 0
    text = page.read_text()
    head, rest = text.split("<!-- safety:start -->")
    table, tail = rest.split("<!-- safety:end -->")
    original = (REPO / "docs" / "safety.md").read_text()
    assert original.startswith(head) and original.endswith(tail)
    assert table.index("| 1. first | 2 | 5 | all passed |") < table.index("| 2. second |")
    assert ": 8 cases." in table

    counts["1. first"]["failed"] = 1
    report.write_text(json.dumps(counts))
    assert subprocess.run(tool, capture_output=True).returncode == 1
    assert "| 1. first | 2 | 5 | **1 FAILED** |" in page.read_text()


def test_safety_table_names_a_missing_page(tmp_path):
    report = tmp_path / "safety.json"
    report.write_text("{}")
    missing = tmp_path / "nowhere.md"
    tool = [sys.executable, str(REPO / "tools" / "safety_table.py"), str(report), str(missing)]
    done = subprocess.run(tool, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and str(missing) in done.stderr
