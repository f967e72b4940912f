"""How a path is shown to people: relative to the current folder when it is below it; a URL
as it is."""

from __future__ import annotations

import os


def shown_path(path: str) -> str:
    if "://" in path:  # a URL (object storage) is shown as typed
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
