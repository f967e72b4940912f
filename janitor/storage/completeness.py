"""Completeness of a checkpoint file on storage: one open, its first and last few hundred
bytes, judged by ``janitor.core.ziptail``."""

from __future__ import annotations

from janitor.core.ziptail import (
    FAST_TAIL,
    HEAD,
    MAX_TAIL,
    NO_EOCD,
    ZipCheck,
    check_head,
    check_tail,
)
from janitor.storage.fs import FileSystem


def check_file(fs: FileSystem, path: str, allow_replaced_header: bool = False) -> ZipCheck:
    """Completeness of one file, from one open and its first and last few hundred bytes
    (64 KiB more only if the archive carries a comment)."""
    head, tail, size = fs.read_ends(path, HEAD, FAST_TAIL)
    return check_ends(fs, path, head, tail, size, allow_replaced_header)


def check_ends(
    fs: FileSystem,
    path: str,
    head: bytes,
    tail: bytes,
    size: int,
    allow_replaced_header: bool = False,
) -> ZipCheck:
    """Completeness from a file's first ``HEAD`` and last ``FAST_TAIL`` bytes, already read;
    the file is read again only if its archive carries a comment."""
    result = check_tail(tail, size)
    if not result.complete and size > len(tail) and result.problem == NO_EOCD:
        _, tail, size = fs.read_ends(path, 0, MAX_TAIL)
        result = check_tail(tail, size)
    return check_head(head, allow_replaced_header) if result.complete else result
