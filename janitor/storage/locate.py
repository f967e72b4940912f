"""Which storage a path the user typed lives on: a local path, or a URL (``s3://``, ``gs://``,
``az://``, ``memory://``) served through fsspec. Every command and the Python API turn what
they are given into a ``FileSystem`` here, once; nothing else looks at URL schemes."""

from __future__ import annotations

import os
from collections.abc import Iterable

from janitor.domain.errors import UsageError
from janitor.domain.paths import is_url
from janitor.storage.fs import LOCAL, FileSystem


def protocol(path: str) -> str | None:
    return path.split("://", 1)[0].lower() if is_url(path) else None


def resolve(path: str) -> tuple[FileSystem, str]:
    """The storage that holds ``path`` and the path as that storage names it."""
    if protocol(path) is None:
        return LOCAL, path
    from janitor.storage.remote import open_url

    return open_url(path)


def storage_of(paths: Iterable[str]) -> tuple[FileSystem, list[str]]:
    """The one storage that holds all of ``paths`` (a command works on one storage), and
    the paths as it names them."""
    paths = list(paths)
    schemes = {protocol(p) for p in paths}
    if len(schemes) > 1:
        named = ", ".join(sorted(f"{s}://" if s else "local paths" for s in schemes))
        raise UsageError(f"one storage per command: got {named}; run one command for each")
    if not paths:
        return LOCAL, paths
    fs = resolve(paths[0])[0]
    return fs, [p.rstrip("/") or p if is_url(p) else p for p in paths]


def absolute(path: str) -> str:
    """A local path made absolute; a URL as it is."""
    return path.rstrip("/") if is_url(path) else os.path.abspath(path)
