"""The layers, enforced: each module imports only from its own layer or the ones below it.

    domain (data types, no I/O) -> core (pure rules) -> storage (the seam) -> usecases (the only
    code that deletes or moves) -> torchio (the only torch importer) -> cli, api, ui (the edges)

The edges are thin: they reach storage, core and torchio only through the use cases and the
one composition point, ``janitor.compose`` (which hands the torch layer to the use cases; the
command line and the API take it from there, so ``extract-small`` never loads the API's use
cases it does not run).

Every import counts, also those inside functions (janitor imports lazily for start-up time).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "janitor"

LAYERS = {
    "domain": 0,
    "core": 1,
    "storage": 2,
    "usecases": 3,
    "torchio": 4,
    "cli": 5,
    "api": 5,
    "ui": 5,
}
TOP = 5  # janitor/__init__.py, _entry.py, __main__.py: the public edge
# Rendering only formats what it is handed: data types in, text out.
ONLY = {"janitor.cli.render": {"domain"}}
# Third-party modules that may be imported only in some layers.
RESTRICTED = {
    "torch": {"torchio"},
    "typer": {"cli"},
    "watchdog": {"usecases"},
    "gradio": {"ui", "top"},
}  # top: janitor/plugin.py
# What each edge may import of janitor (``janitor`` itself: the version).
EDGES = {
    "cli": (
        "janitor.usecases",
        "janitor.domain",
        "janitor.cli",
        "janitor.api",
        "janitor.ui",
        "janitor.compose",
    ),
    "api": ("janitor.usecases", "janitor.domain", "janitor.compose"),
    "ui": ("janitor.api", "janitor.usecases", "janitor.domain", "janitor.ui"),
}
APP_MAX_LINES = 600


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1], LAYERS[parts[1]]
    return "top", TOP


def imported(module: str, source: str) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``, relative imports resolved."""
    out = []
    package = module if module.count(".") == 0 else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "janitor":  # from janitor import x: x is a layer package or an attribute
                out += [(node.lineno, f"janitor.{a.name}" if a.name in LAYERS else base)
                        for a in node.names]  # fmt: skip
            else:
                out.append((node.lineno, base))
    return out


def violations(module: str, source: str) -> list[str]:
    name, level = layer_of(module)
    found = []
    for line, target in imported(module, source):
        root = target.split(".")[0]
        if root == "janitor":
            t_name, t_level = layer_of(target)
            if target == "janitor" and module != "janitor" and level < TOP:
                found.append(f"{module}:{line} imports the janitor package (the public API)")
            elif t_level > level:
                found.append(f"{module}:{line} ({name}) imports {target} ({t_name}): upwards")
            elif (
                name in EDGES
                and target != "janitor"
                and not any(target == e or target.startswith(e + ".") for e in EDGES[name])
            ):
                found.append(f"{module}:{line} ({name}, an edge) imports {target}: only "
                             f"through the use cases")  # fmt: skip
            elif module in ONLY and t_name not in ONLY[module] | {"top"}:
                found.append(f"{module}:{line} imports {target}: it may import only "
                             f"{', '.join(sorted(ONLY[module]))}")  # fmt: skip
        elif root in RESTRICTED and name not in RESTRICTED[root]:
            found.append(f"{module}:{line} ({name}) imports {root}")
    return found


def all_modules() -> list[tuple[str, str]]:
    return [(module_name(p), p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_belongs_to_a_layer():
    unknown = [m for m, _ in all_modules() if m.count(".") >= 1 and layer_of(m)[0] == "top"
               and m not in ("janitor._entry", "janitor.__main__", "janitor.api",
                             "janitor.compose", "janitor.plugin")]  # fmt: skip
    assert unknown == []


def test_imports_point_down_the_layers():
    found = [v for module, source in all_modules() for v in violations(module, source)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("module", "line", "why"),
    [
        ("janitor.core.policy", "from janitor.storage.fs import LOCAL", "upwards"),
        ("janitor.domain.plans", "import janitor.core.policy", "upwards"),
        ("janitor.usecases.finalize", "from janitor.torchio.extract import extract_one",
         "upwards"),
        ("janitor.storage.scan", "from janitor import scan", "public API"),
        ("janitor.usecases.watch", "import torch", "imports torch"),
        ("janitor.core.planners", "from ..usecases import executor", "upwards"),
        ("janitor.cli.app", "from janitor.storage.locate import storage_of", "an edge"),
        ("janitor.cli.render", "from janitor.core.policy import apply", "an edge"),
        ("janitor.cli.app", "from janitor.torchio.extract import info", "an edge"),
        ("janitor.cli.small", "from janitor.torchio.extract import extract_one", "an edge"),
        ("janitor.api", "from janitor.storage.scan import scan", "an edge"),
        ("janitor.api", "from janitor.core.values import parse_count", "an edge"),
        ("janitor.api", "from janitor.torchio.extract import extract_one", "an edge"),
        ("janitor.ui.page", "from janitor.storage.scan import scan", "an edge"),
        ("janitor.ui.handlers", "from janitor.compose import TORCH", "an edge"),
        ("janitor.usecases.overview", "import gradio", "imports gradio"),
    ],
)  # fmt: skip
def test_a_forbidden_import_is_caught(module, line, why):
    found = violations(module, f"def f():\n    {line}\n")
    assert len(found) == 1 and why in found[0], found


@pytest.mark.parametrize(
    "line", ["from janitor.usecases import commands", "from janitor.api import TORCH",
             "from janitor.domain.errors import UsageError", "from janitor.cli import render",
             "from janitor import __version__"],
)  # fmt: skip
def test_the_command_line_may_import_the_use_cases_and_the_api(line):
    assert violations("janitor.cli.app", f"def f():\n    {line}\n") == []


@pytest.mark.parametrize("module", ["janitor.api", "janitor.cli.small"])
def test_the_api_and_the_command_line_may_import_the_composition_point(module):
    assert violations(module, "from janitor.compose import TORCH\n") == []


def test_the_command_line_module_is_short():
    """app.py parses flags, calls one use case per command and renders: nothing else."""
    lines = (PACKAGE / "cli" / "app.py").read_text().count("\n")
    assert lines <= APP_MAX_LINES, f"janitor/cli/app.py has {lines} lines (at most {APP_MAX_LINES})"
