"""The per-run lock shared by prune, watch, finalize and the trash commands: one lock object
per run under ``<logs root>/.janitor/locks/``, taken through the storage seam."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from janitor.domain.errors import LockBusy
from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem

LOCK_TIMEOUT = 10.0


def run_lock(
    run_path: str, timeout: float = LOCK_TIMEOUT, fs: FileSystem = LOCAL
) -> contextlib.AbstractContextManager[None]:
    """Held while a run is changed; raises ``LockTimeout`` when another janitor holds it
    longer than ``timeout`` seconds."""
    return fs.lock(layout.lock_path(run_path), timeout)


@contextlib.contextmanager
def locked_run(
    run_path: str, timeout: float = LOCK_TIMEOUT, fs: FileSystem = LOCAL
) -> Iterator[None]:
    """The run's lock for one-off commands: a busy run is one clear line (``LockBusy``)."""
    from janitor.storage.fs import LockTimeout

    try:
        with run_lock(run_path, timeout, fs):
            yield
    except LockTimeout:
        raise LockBusy(
            f"{run_path}: another janitor is working on this run (waited {timeout:g} s)"
        ) from None
