"""Disks and what fills them: a file system's size and free space, an active run's saves
(how big, how often) and the forecast of when its next saves stop fitting. No I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SavePattern:
    """What a run's last saves say: the size of its next save (the newest complete set's) and
    the time between saves (``None``: one save so far, or file times that say nothing)."""

    run: str  # the run folder
    name: str
    size: int
    interval: float | None  # seconds
    last_save: float  # mtime of the newest complete set (a hint)
    last_activity: float  # the trainer's newest write


@dataclass(frozen=True)
class Forecast:
    """One active run on one file system: how many more of its saves fit, and when the file
    system is full at the rate every active run there writes."""

    pattern: SavePattern
    free: int
    saves_left: int  # saves of this run that still fit (0: the next one does not)
    full_in: float | None  # seconds until full at the combined rate; None: no interval known

    @property
    def next_save_fits(self) -> bool:
        return self.saves_left > 0


@dataclass(frozen=True)
class Disk:
    """A file system that holds runs: where it is mounted, its type, size and free space (as
    an unprivileged user may still write: ``f_bavail``), the runs on it and the forecasts of
    the active ones. ``floor``: the free space janitor keeps (``min-free``), when known."""

    mount: str
    kind: str | None
    size: int
    free: int
    runs: tuple[str, ...]
    forecasts: tuple[Forecast, ...] = ()
    floor: int | None = None


@dataclass(frozen=True)
class RunUse:
    """A run's bytes on disk, as the root picture draws them."""

    name: str
    path: str
    kept: int  # big checkpoints the run's rules keep
    removable: int  # big checkpoints its rules would remove
    small: int  # small models
    trash: int  # janitor's trash for this run (still on disk)


@dataclass(frozen=True)
class RootPicture:
    """What ``scan ROOT --plot`` draws: each run's bytes beside its file systems' free space
    (and floor)."""

    root: str
    runs: tuple[RunUse, ...]
    disks: tuple[Disk, ...]
