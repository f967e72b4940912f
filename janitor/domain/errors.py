"""One error hierarchy; the CLI turns it into one line and an exit code in one place."""

from __future__ import annotations

import errno
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class JanitorError(Exception):
    """A failure the user should read as one line (exit code 1). ``path``: the file or folder
    the message names, if any (JSON's ``errors[].path``)."""

    exit_code = EXIT_FAILURE

    def __init__(self, *args: object, path: str | None = None) -> None:
        super().__init__(*args)
        self.path = path


class UsageError(JanitorError):
    """Bad command-line input: a missing path, an unparsable size or duration (exit code 2)."""

    exit_code = EXIT_USAGE


class InvalidValue(UsageError):
    """A value that breaks a rule, with the field it was meant for. The domain does not know
    where the value came from; the layer that does (a flag, a file and key) words it with
    ``worded(source)``."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field, self.value, self.rule = field, value, rule
        super().__init__(self.worded(field.replace("_", "-")))

    def worded(self, source: str) -> str:
        return f"{source}: {self.rule}, got {self.value!r}"


class NoRoom(JanitorError):
    """A file janitor would write does not fit on its disk: checked before writing, so no
    partial file is left (``needed``: the bytes it takes; ``free``: what the disk has)."""

    def __init__(self, path: str, needed: int, free: int, disk: str) -> None:
        self.path, self.needed, self.free = path, needed, free
        super().__init__(f"{path}: not written: needs {needed} bytes on {disk}")


class LockBusy(JanitorError):
    """Another janitor process holds the run's lock."""


@dataclass(frozen=True, slots=True)
class PathProblem:
    """A per-path failure that is collected and reported, not raised (scan, prune, trash)."""

    path: str
    message: str


_ERRNO_TEXT = {
    errno.ELOOP: "symlink loop",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a folder",
    errno.ENOSPC: "no space left on the device",
}


class StorageError(OSError):
    """An OSError from object storage whose ``strerror`` already says what went wrong in
    the store's terms (credentials, throttling, a server error)."""


def oserror_text(exc: OSError, missing: str = "no such file or folder") -> str:
    """A few plain words for an OSError (``missing`` for ENOENT, which depends on context)."""
    if isinstance(exc, StorageError) and exc.strerror:
        return exc.strerror
    if exc.errno == errno.ENOENT:
        return missing
    return _ERRNO_TEXT.get(exc.errno) or exc.strerror or str(exc)
