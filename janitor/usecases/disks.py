"""``scan``'s file systems: for each one holding runs, its size and free space, and for each
active run on it the forecast of its next saves (``core.forecast``). Object storage has no
file-system figures: its runs are left out (nothing fills a bucket)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from janitor.core.forecast import forecast, is_active
from janitor.core.pressure import floor_bytes
from janitor.domain.disk import Disk, SavePattern
from janitor.domain.errors import JanitorError
from janitor.domain.policy import Overrides
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import FileSystem, disks_of


def disks(
    runs: Iterable[tuple[str, SavePattern | None]],
    now: float,
    fs: FileSystem,
    floors: Mapping[str, int] | None = None,
    files: ConfigFiles | None = None,
) -> tuple[Disk, ...]:
    """The file systems holding ``runs`` (run folder, its save pattern), each with the
    forecasts of its active runs and its floor: ``floors`` (mount point -> the free space to
    keep), else the highest ``min-free`` the runs' janitor.toml files (``files``) set there,
    as prune keeps it (drawn and said; nothing here enforces it)."""
    local: dict[str, tuple[str, SavePattern | None]] = {}
    for path, pattern in runs:
        where = fs.local_path(path)
        if where is not None:
            local[where] = (path, pattern)
    out = []
    for mount, (kind, size, free, paths) in disks_of(local).items():
        active = [p for p in (local[x][1] for x in paths) if p is not None and is_active(p, now)]
        out.append(
            Disk(
                mount,
                kind,
                size,
                free,
                tuple(local[x][0] for x in paths),
                forecast(free, active),
                (floors or {}).get(
                    mount, _configured_floor([local[x][0] for x in paths], size, files)
                ),
            )  # fmt: skip
        )
    return tuple(out)


def _configured_floor(paths: Iterable[str], size: int, files: ConfigFiles | None) -> int | None:
    """The highest min-free the janitor.toml files of the runs at ``paths`` set, in bytes of a
    file system of ``size`` (a run whose files prune would refuse says nothing here)."""
    if files is None:
        return None
    found = []
    for path in paths:
        try:
            value = files.policy_for(path, Overrides())[0].min_free
        except JanitorError:
            continue
        if value is not None:
            found.append(floor_bytes(value, size))
    return max(found, default=None)
