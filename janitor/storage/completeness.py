"""Completeness of a checkpoint file on storage: one open, its first and last few hundred
bytes, judged by ``janitor.core.ziptail`` (safetensors: its header, judged by
``janitor.core.frameworks``; torch's legacy format: its pickles, judged by
``janitor.core.legacy``)."""

from __future__ import annotations

from janitor.core.frameworks import (
    SAFETENSORS_SUFFIX,
    ZIP_SUFFIXES,
    safetensors_header_length,
    safetensors_problem,
)
from janitor.core.legacy import FIRST_READ, check_legacy, is_legacy
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
    the file is read again only if its archive carries a comment, or is in torch's legacy
    format (its pickles are read)."""
    if is_legacy(head):
        return check_legacy_file(fs, path, head, size)
    result = check_tail(tail, size)
    if not result.complete and size > len(tail) and result.problem == NO_EOCD:
        _, tail, size = fs.read_ends(path, 0, MAX_TAIL)
        result = check_tail(tail, size)
    return check_head(head, allow_replaced_header) if result.complete else result


def check_legacy_file(fs: FileSystem, path: str, head: bytes, size: int) -> ZipCheck:
    """A file in torch's legacy (pre-zip) format is whole when its pickles parse and its
    storages' records end exactly at its end: its first bytes read, ``FIRST_READ`` and then
    four times more each time while the pickles go on (they are small beside the data)."""
    want = FIRST_READ
    while (result := check_legacy(head, size)) is None:
        head, _, size = fs.read_ends(path, want, 0)
        want *= 4
    return result


def check_safetensors(fs: FileSystem, path: str) -> ZipCheck:
    """A safetensors file is whole when its header parses and the tensors' data ends exactly
    at the end of the file: two ranged reads (the 8-byte length, then the header)."""
    first8, _, size = fs.read_ends(path, 8, 0)
    try:
        n = safetensors_header_length(first8)
    except ValueError as exc:
        return ZipCheck(False, str(exc))
    head, _, size = fs.read_ends(path, 8 + min(n, size), 0)
    problem = safetensors_problem(head, size)
    return ZipCheck(problem is None, problem)


def check_member(fs: FileSystem, path: str) -> ZipCheck | None:
    """Completeness of one file inside a folder set, by its kind: torch zips (.pt, .pth,
    .bin) and safetensors are checked, other files (configs, json, scripts) are not."""
    if path.endswith(SAFETENSORS_SUFFIX):
        return check_safetensors(fs, path)
    if path.endswith(ZIP_SUFFIXES):
        return check_file(fs, path)
    return None
