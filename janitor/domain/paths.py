"""How a path is shown to people: relative to the current folder when it is below it."""

from __future__ import annotations

import os


def shown_path(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
