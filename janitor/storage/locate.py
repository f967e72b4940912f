"""Which storage a path the user typed lives on: a local path, or a URL (``s3://``, ``gs://``,
``az://``, ``memory://``) served through fsspec. Every command and the Python API turn what
they are given into ``(FileSystem, path)`` here, once; nothing else looks at URL schemes."""

from __future__ import annotations

from janitor.storage.fs import LOCAL, FileSystem


def is_url(path: str) -> bool:
    """``scheme://…`` (a Windows drive ``C:\\`` is not a URL)."""
    head, sep, _ = path.partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").isalnum()


def resolve(path: str) -> tuple[FileSystem, str]:
    """The storage that holds ``path`` and the path as that storage names it."""
    if not is_url(path):
        return LOCAL, path
    from janitor.storage.remote import open_url

    return open_url(path)
