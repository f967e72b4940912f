"""``janitor ui-plugin applio -o DIR``: DIR/janitor.zip, what Applio's Plugin Installer
accepts: the folder ``janitor/`` holding ``plugin.py`` (``janitor/plugin.py``, the shim
that imports the page lazily) and ``requirements.txt`` naming only this project with the
first version that has the page."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

from janitor.domain.errors import UsageError

PLUGIN = Path(__file__).resolve().parent.parent / "plugin.py"
TRAINERS = ("applio",)


def requirement(source: str) -> str:
    """``vits-janitor>=X``, X the plugin's own ``NEEDS``."""
    found = re.search(r'^NEEDS = "([0-9.]+)"', source, re.M)
    if found is None:  # pragma: no cover - the plugin names it
        raise UsageError(f"{PLUGIN}: no NEEDS version")
    return f"vits-janitor>={found.group(1)}\n"


def write_zip(trainer: str, out: str) -> str:
    if trainer not in TRAINERS:
        raise UsageError(f"ui-plugin {trainer}: no plugin for it (one of: {', '.join(TRAINERS)})")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out}: not a folder")
    os.makedirs(out, exist_ok=True)
    source = PLUGIN.read_text(encoding="utf-8")
    target = os.path.join(out, "janitor.zip")
    tmp = target + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("janitor/plugin.py", source)
        z.writestr("janitor/requirements.txt", requirement(source))
    os.replace(tmp, target)
    return target
