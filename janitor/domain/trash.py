"""What is in janitor's trash (``<logs root>/.janitor/trash/<run>/``) and what the trash
commands did. No I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass

from janitor.domain.errors import PathProblem

FileError = PathProblem


@dataclass(frozen=True, slots=True)
class TrashedFile:
    run_path: str
    name: str  # the original file name
    trash_path: str
    copy: str  # "<number>#<n>" (or the trash file name, for a name that is not a checkpoint's)
    copy_number: int  # n - 1: orders a step's copies oldest first
    number: int | None  # the number in the name
    step: int | None  # None for a latest-only file (the journal says)
    size: int
    trashed: float  # when it was moved (journal time; the file's ctime if the journal lost it)
    journaled: bool

    @property
    def original_path(self) -> str:
        return os.path.join(self.run_path, self.name)


@dataclass(frozen=True)
class TrashCopy:
    """The files of one set that went to the trash together."""

    copy: str
    files: tuple[TrashedFile, ...]

    @property
    def number(self) -> int | None:
        return self.files[0].number

    @property
    def step(self) -> int | None:
        return self.files[0].step

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def trashed(self) -> float:
        return max(f.trashed for f in self.files)

    def matches_step(self, step: int) -> bool:
        return step in (self.number, self.step)


@dataclass(frozen=True, slots=True)
class GoneRunTrash:
    """A run's trash folder whose run folder is gone (deleted or renamed): what is left in it
    can still come back (``janitor restore RUN --to NEW``)."""

    run_path: str
    trash_dir: str
    files: int
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"run": self.run_path, "trash_dir": self.trash_dir, "files": self.files,
                "size": self.size}  # fmt: skip


@dataclass(frozen=True)
class RestoreResult:
    restored: tuple[TrashCopy, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()  # (trash path, run path) per file
    remaining: tuple[TrashCopy, ...] = ()  # older copies of a restored step, left in the trash
    blocked: tuple[tuple[TrashCopy, tuple[str, ...]], ...] = ()  # copies whose names are taken
    errors: tuple[FileError, ...] = ()


@dataclass(frozen=True)
class EmptyResult:
    removed: tuple[TrashedFile, ...] = ()
    kept: tuple[TrashedFile, ...] = ()  # newer than --older-than
    errors: tuple[FileError, ...] = ()
    dry_run: bool = False  # ``removed``: what would be deleted; nothing was

    @property
    def freed(self) -> int:
        return sum(f.size for f in self.removed)
