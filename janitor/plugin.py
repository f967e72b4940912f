"""janitor as an Applio plugin: a tab that prunes Applio's logs/ (the same page as
``janitor ui``). Applio's Plugin Installer unpacks ``janitor.zip`` into
``tabs/plugins/installed/janitor/`` and its loader imports this module and calls
``applio_plugin()`` inside a tab, without a guard: so this module imports nothing but the
standard library at import time, and ``applio_plugin()`` catches its own errors and shows
them in the tab; Applio's start-up never breaks because of janitor.

When janitor is missing or too old in Applio's Python, the tab shows the exact install line
for that Python."""

from __future__ import annotations

import os
import sys

NEEDS = "0.2.0"  # the first janitor with the page
PACKAGE = "vits-janitor"
SKIP = ("mute*", "reference")  # Applio's logs/ folders that are not runs


def install_line() -> str:
    """The pip line for the Python Applio runs in."""
    python = sys.executable or "python"
    quoted = f'"{python}"' if " " in python else python
    return f'{quoted} -m pip install "{PACKAGE}>={NEEDS}"'


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def problem() -> str | None:
    """Why the page cannot be shown here (None: it can)."""
    try:
        import janitor
    except ImportError:
        return f"janitor is not installed in this Python. Install it with:\n\n    {install_line()}"
    found = getattr(janitor, "__version__", "0")
    if _version(found) < _version(NEEDS):
        return (
            f"janitor {found} is too old for this tab (it needs {NEEDS}). Update it with:"
            f"\n\n    {install_line()}"
        )
    return None


def logs_folder() -> str:
    """Applio's logs/, found as Applio's own tabs find it: from the working directory."""
    return os.path.join(os.getcwd(), "logs")


def applio_plugin() -> None:
    import gradio as gr

    try:
        why = problem()
        if why is not None:
            gr.Markdown(why)
            return
        from janitor.ui.page import controls

        controls(logs_folder(), SKIP)
    except Exception as exc:  # never break Applio: the tab says what went wrong
        text = " ".join(str(exc).split())
        gr.Markdown(f"janitor could not start: {type(exc).__name__}: {text}")
