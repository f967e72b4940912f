"""One error hierarchy; the CLI turns it into one line and an exit code in one place."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class JanitorError(Exception):
    """A failure the user should read as one line (exit code 1)."""

    exit_code = EXIT_FAILURE


class UsageError(JanitorError):
    """Bad command-line input: a missing path, an unparsable size or duration (exit code 2)."""

    exit_code = EXIT_USAGE


class LockBusy(JanitorError):
    """Another janitor process holds the run's lock."""
