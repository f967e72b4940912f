"""How a path is shown to people: relative to the current folder when it is below it; a URL
(``s3://bucket/logs``) as it is. And path arithmetic that keeps a URL's ``scheme://``."""

from __future__ import annotations

import os
import posixpath
import re

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+]+://")


def is_url(path: str) -> bool:
    """``scheme://…`` (object storage); a Windows drive ``C:\\`` is not a URL."""
    return _SCHEME.match(path) is not None


def shown_path(path: str) -> str:
    if is_url(path):
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def normpath(path: str) -> str:
    """``os.path.normpath``, except that a URL keeps its ``scheme://`` (normpath would fold
    the two slashes) and its rest is normalised with ``/``."""
    m = _SCHEME.match(path)
    if m is None:
        return os.path.normpath(path)
    return m.group() + posixpath.normpath(path[m.end() :])
