"""Runs, checkpoint sets, files and small models as found on storage: frozen data with raw
numbers (bytes, mtimes), no I/O. Built by ``janitor.storage.scan``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, NamedTuple

from janitor.domain.errors import PathProblem
from janitor.domain.profile import LATEST_BASE, TrainerProfile
from janitor.domain.trash import GoneRunTrash

# "unchecked": a set whose files were not read because no decision of the report needed
# them (``janitor scan`` reads a run's sets from the newest down, until the newest complete
# one). Only a scan's report holds such sets; prune and the executor read every file.
Status = Literal["complete", "partial", "incomplete", "unchecked"]
NOT_CHECKED = "not checked: no decision of this report needed it"


def _status(problem: str | None, missing: tuple[str, ...], files) -> Status:
    unchecked = False
    for f in files:
        if not f.complete:
            if f.problem != NOT_CHECKED:
                return "incomplete"
            unchecked = True
    if problem:
        return "incomplete"
    if unchecked:
        return "unchecked"
    return "partial" if missing else "complete"


class CheckpointFile(NamedTuple):
    """One big checkpoint file. A named tuple: a scan at scale makes 200,000 of them, and a
    frozen dataclass costs several times more to build."""

    folder: str  # the run folder with a trailing separator: one string shared by its files
    name: str
    prefix: str  # G, D, DUR, WD
    number: int  # the number in the name (a step, or the trainer's latest-only constant)
    size: int
    mtime: float
    complete: bool
    problem: str | None = None  # why it is not complete
    # the storage's stat key when it was judged (locally device, inode, size, mtime_ns,
    # ctime_ns, packed): the executor re-checks by it under the run's lock, without reading
    key: bytes | None = None

    @property
    def path(self) -> str:
        return self.folder + self.name


@dataclass(frozen=True, slots=True)
class CheckpointSet:
    """All files of one save: G (and D, DUR, WD) with the same number."""

    number: int  # order key: the step, or the latest-only constant (which wins the trainer's sort)
    files: tuple[CheckpointFile, ...]
    missing: tuple[str, ...] = ()  # prefixes the run uses that this set lacks
    latest_only: bool = False  # G_2333333.pth: the trainer's "save only latest" file
    base: bool = False  # G_0.pth: a pretrained base model the user placed; never a candidate
    # A set that is a folder (HF checkpoint-<step>/, DeepSpeed global_step<N>/): its path;
    # ``files`` are then every file below it, named relative to the run folder.
    folder: str | None = None
    problem: str | None = None  # why a folder set is incomplete although its files are whole
    protect: tuple[str, ...] = ()  # the framework's own protections (best model, pointers)
    folder_mtime: float = 0.0  # a folder set's own mtime (changes as files are added to it)
    # Derived from the files once, in __post_init__ (scan at scale reads them many times).
    size: int = field(init=False, default=0)
    mtime: float = field(init=False, default=0.0)
    status: Status = field(init=False, default="complete")

    def __post_init__(self) -> None:
        size, mtime, complete = 0, 0.0, True
        for f in self.files:  # one loop: made 100,000 times in a scan at scale
            size += f.size
            if f.mtime > mtime:
                mtime = f.mtime
            complete = complete and f.complete
        set_ = object.__setattr__
        set_(self, "size", size)
        # a folder set's own mtime counts: a save just begun is newer than its files
        set_(self, "mtime", self.folder_mtime if self.folder_mtime > mtime else mtime)
        if self.problem or not complete:
            set_(self, "status", _status(self.problem, self.missing, self.files))
        elif self.missing:
            set_(self, "status", "partial")

    @property
    def step(self) -> int | None:
        return None if self.latest_only else self.number

    @property
    def name(self) -> str | None:
        """The folder's name for a folder set (``checkpoint-12``), else None."""
        return self.folder.rstrip("/").rsplit("/", 1)[-1] if self.folder else None

    @property
    def label(self) -> str:
        if self.folder:
            return f"step {self.number} ({self.name}/)"
        if self.latest_only and self.number >= LATEST_BASE and self.files:
            return self.files[0].name  # last.ckpt: no number of its own
        if self.latest_only:
            return f"latest-only ({self.number})"
        return f"step {self.number}"

    def file(self, prefix: str) -> CheckpointFile | None:
        return next((f for f in self.files if f.prefix == prefix), None)


_SLOT_SETTERS = tuple(
    getattr(CheckpointSet, name).__set__
    for name in ("number", "files", "missing", "latest_only", "base", "folder", "problem",
                 "protect", "folder_mtime", "size", "mtime", "status")
)  # fmt: skip
_object_new = object.__new__


def file_set(
    number: int,
    files: tuple[CheckpointFile, ...],
    missing: tuple[str, ...] = (),
    latest_only: bool = False,
    base: bool = False,
) -> CheckpointSet:
    """``CheckpointSet(number, files, missing, latest_only=..., base=...)`` for a set of
    files (not a folder set), equal to it, built in a third of the time: a scan at scale
    makes 100,000 of them. The frozen instance is filled through its slots."""
    size, mtime, complete = 0, 0.0, True
    for f in files:
        size += f.size
        if f.mtime > mtime:
            mtime = f.mtime
        complete = complete and f.complete
    status = _status(None, missing, files) if not complete else "partial" if missing else "complete"
    s = _object_new(CheckpointSet)
    (n_, f_, m_, l_, b_, fo_, p_, pr_, fm_, s_, mt_, st_) = _SLOT_SETTERS
    n_(s, number)
    f_(s, files)
    m_(s, missing)
    l_(s, latest_only)
    b_(s, base)
    fo_(s, None)
    p_(s, None)
    pr_(s, ())
    fm_(s, 0.0)
    s_(s, size)
    mt_(s, mtime)
    st_(s, status)
    return s


@dataclass(frozen=True, slots=True)
class SmallModel:
    path: str
    name: str
    epoch: int | None  # None: a final model named after the run (RVC's <exp>.pth)
    step: int | None
    format: str  # applio | rvc | release | gpt-sovits
    size: int
    mtime: float
    complete: bool
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    path: str
    why: str


@dataclass(frozen=True)
class Run:
    path: str
    name: str
    profile: TrainerProfile
    trainer_reason: str
    sets: tuple[CheckpointSet, ...]  # ordered by number, never by mtime
    small_models: tuple[SmallModel, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    last_activity: float = 0.0  # newest mtime of any file in the folder (checkpoints, events)
    # A pointer the framework resumes from (DeepSpeed's ``latest``, Lightning's ``last.ckpt``
    # symlink): (pointer file, the name it points to); for resume traps.
    pointers: tuple[tuple[str, str], ...] = ()
    # The sets of the checkpoint files named on the command line (``janitor prune
    # logs/alice/G_100.pth``): only these are planned, with reasons computed on every set.
    # None: the whole run.
    selected: frozenset[int] | None = None

    @property
    def trainer(self) -> str:
        return self.profile.name

    @cached_property
    def candidates(self) -> tuple[CheckpointSet, ...]:
        return tuple(s for s in self.sets if not s.base)

    @cached_property
    def files(self) -> tuple[CheckpointFile, ...]:
        return tuple(f for s in self.sets for f in s.files)

    @cached_property
    def big_bytes(self) -> int:
        return sum(s.size for s in self.sets)

    @cached_property
    def small_bytes(self) -> int:
        return sum(m.size for m in self.small_models)

    @cached_property
    def newest(self) -> CheckpointSet | None:
        c = self.candidates
        return c[-1] if c else None

    @cached_property
    def newest_complete(self) -> CheckpointSet | None:
        return next((s for s in reversed(self.candidates) if s.status == "complete"), None)

    @cached_property
    def incomplete_files(self) -> tuple[CheckpointFile, ...]:
        """Files read and found incomplete (not those a lazy scan did not read)."""
        return tuple(f for f in self.files if not f.complete and f.problem != NOT_CHECKED)

    @cached_property
    def unchecked(self) -> int:
        """Sets a lazy scan did not read (``Status`` "unchecked")."""
        return sum(1 for s in self.sets if s.status == "unchecked")


ScanError = PathProblem  # a folder that could not be read


@dataclass(frozen=True, slots=True)
class UnfinishedUpload:
    """A multipart upload to object storage that was started and never completed (the
    trainer or a sync tool died mid-upload): no object, not a set, but its parts are billed."""

    path: str  # the URL the object would have had
    initiated: float  # epoch seconds
    size: int  # bytes in its uploaded parts

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "initiated": self.initiated, "size": self.size}


@dataclass(frozen=True)
class ScanReport:
    roots: tuple[str, ...]
    runs: tuple[Run, ...]
    errors: tuple[ScanError, ...] = field(default=())
    uploads: tuple[UnfinishedUpload, ...] = field(default=())  # object storage only
    gone_trash: tuple[GoneRunTrash, ...] = field(default=())  # trash of runs that are gone
