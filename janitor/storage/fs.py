"""The one seam between janitor and storage. Every byte janitor reads or writes (checkpoints'
tails, janitor.toml, the journal, locks, trash moves, small models) goes through a
``FileSystem``; nothing above this layer calls ``os`` or ``open`` on user data.

Two implementations: the local disk (``LocalFS``, here) and object storage through fsspec
(``FsspecFS`` in ``janitor.storage.remote``); ``janitor.storage.locate`` picks one by the
path's scheme. Code that needs a real local file (torch's mmap loader, TensorBoard's event
reader) asks ``local_path`` and gets ``None`` for an object, which it then reads into a local
stand-in (``janitor.storage.staging`` for checkpoints). On a local disk symlinks are never
followed: listings report them as links, ``stat`` is ``lstat``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as stat_mod
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from janitor.storage import layout, platform

Kind = Literal["file", "dir", "link", "other"]


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    path: str
    kind: Kind
    size: int
    mtime: float
    ctime: float = 0.0  # inode change time: when a file was last renamed (moved to the trash)


# What identifies one version of a file, as git's index keeps it, packed in 40 bytes (one
# small object per file): locally device, inode, size, mtime_ns, ctime_ns. A file rewritten,
# truncated, replaced by rename or touched back to an old mtime changes at least one of them
# (ctime cannot be set by a user). Opaque above this layer: equal keys, same file version
# (an object store would pack size and ETag).
StatKey = bytes
KEY = struct.Struct("<QQQqq")
_pack_key = KEY.pack
_new = tuple.__new__  # a Found without the named tuple's Python-level __new__


def key_times(key: StatKey) -> tuple[int, int]:
    """(mtime_ns, ctime_ns) of a local key: the verdict cache's racy-entry check."""
    return KEY.unpack(key)[3:]


class Found(NamedTuple):
    """One entry of a folder survey (``FileSystem.survey``). A tuple: one is made per file."""

    name: str
    kind: Kind
    size: int
    mtime: float
    key: StatKey | None = None  # for files only
    # (head, tail) of a probed file whose key was not known, read in the same open; or the
    # error that stopped the read (permission denied, ...)
    ends: tuple[bytes, bytes] | OSError | None = None


_IS_REG = stat_mod.S_ISREG


def _kind(mode: int) -> Kind:
    if stat_mod.S_ISLNK(mode):
        return "link"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISREG(mode):
        return "file"
    return "other"


class Appender(Protocol):
    """An open append-only file: each ``write`` lands whole at the end; ``close`` syncs."""

    def write(self, data: bytes) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...


class FileSystem(Protocol):
    def listdir(self, path: str) -> list[DirEntry]: ...
    def survey(
        self, path: str, probe: Callable[[str], object], known: Mapping[str, StatKey],
        head: int, tail: int,
    ) -> list[Found]: ...  # fmt: skip
    def stat(self, path: str) -> DirEntry: ...
    def exists(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]: ...
    def read_bytes(self, path: str, offset: int = 0) -> bytes: ...
    # (start, end-exclusive) pairs, one bytes per range, in order (fewer bytes past the end);
    # a remote backend may fetch them concurrently
    def read_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]: ...
    def write_atomic(self, path: str, data: bytes) -> None: ...
    def appender(self, path: str) -> Appender: ...
    def remove(self, path: str) -> None: ...
    def truncate(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def realpath(self, path: str) -> str: ...
    def lock(self, path: str, timeout: float) -> contextlib.AbstractContextManager[Any]: ...
    def local_path(self, path: str) -> str | None: ...
    def temp_dir(self, folder: str, prefix: str) -> contextlib.AbstractContextManager[str]: ...
    def sync_file(self, path: str) -> int: ...
    def publish(self, tmp: str, final: str, *, replace: bool) -> bool: ...
    def same_file(self, a: str, b: str) -> bool: ...
    def readlink(self, path: str) -> str: ...
    def rmdir(self, path: str) -> None: ...
    def remove_tree(self, path: str) -> None: ...
    def link_or_copy(self, src: str, dst: str) -> bool: ...
    def listing(self, path: str) -> contextlib.AbstractContextManager[None]: ...
    # billing facts of object stores (a local disk has none of these)
    def versioned(self, path: str) -> bool | None: ...
    def purge_versions(self, paths: Sequence[str]) -> tuple[int, int]: ...
    def unfinished_uploads(self, path: str) -> Sequence[Any]: ...


def clean_stale_temps(folder: str, prefix: str) -> list[str]:
    """Remove temp folders left by an extraction that was killed (its pid no longer runs)."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                pid = int(entry.name[len(prefix) :].split("-")[0])
            except ValueError:
                continue
            if pid != os.getpid() and not platform.pid_alive(pid):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


# os.link errors that mean "no hard links here" (FAT, exFAT, some FUSE and network mounts)
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}
)
_NO_RENAME_FLAG = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP})


def publish_new(tmp: str, final: str) -> bool:
    """Give the finished file ``tmp`` the name ``final`` without ever replacing a file there.

    True: ``final`` is now ours. False: something was at ``final`` already (the trainer's own
    small model, written after our existence check): it is left exactly as it is. ``tmp``
    may remain; the caller removes it. A hard link is atomic and fails if ``final`` exists;
    without hard links, a no-replace rename; without that either, ``final`` is created with
    ``O_EXCL`` and the bytes are copied and fsynced (removed again if the copy fails)."""
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    except AttributeError:  # a Python without os.link
        pass
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    moved = _rename_noreplace(tmp, final)
    if moved is not None:
        return moved
    return _copy_exclusive(tmp, final)


def _rename_noreplace(src: str, dst: str) -> bool | None:
    """rename that fails rather than replace: renameat2(RENAME_NOREPLACE) on Linux,
    renamex_np(RENAME_EXCL) on macOS, os.rename on Windows (which never replaces). True:
    moved; False: ``dst`` exists; None: not available for this system or file system."""
    if os.name == "nt":
        try:
            os.rename(src, dst)
        except FileExistsError:
            return False
        return True
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    a, b = os.fsencode(src), os.fsencode(dst)
    if hasattr(libc, "renameat2"):
        at_fdcwd, rename_noreplace = -100, 1
        rc = libc.renameat2(at_fdcwd, a, at_fdcwd, b, rename_noreplace)
    elif hasattr(libc, "renamex_np"):
        rename_excl = 4
        rc = libc.renamex_np(a, b, rename_excl)
    else:
        return None
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    if err in _NO_RENAME_FLAG:
        return None
    raise OSError(err, os.strerror(err), dst)


def _copy_exclusive(src: str, dst: str) -> bool:
    """Last resort: create ``dst`` only if absent (O_EXCL), copy, fsync; False if it exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(dst, flags, 0o666)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as data:
            shutil.copyfileobj(data, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(dst)  # ours: created with O_EXCL a moment ago
        raise
    return True


# ------------------------------------------------------------------ portable file calls
# One small guarded function per call that not every system has; each looks its attribute up
# when called (tests remove them to simulate Windows).


def open_nofollow(path: str, flags: int) -> int:
    """``os.open`` that never reads through a symlink. With ``O_NOFOLLOW`` (POSIX) the kernel
    refuses a link; without it (Windows) the path is ``lstat``-ed first and the opened file
    must be that same file (a link swapped in between is caught), else ELOOP."""
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if nofollow:
        return os.open(path, flags | nofollow)
    before = os.lstat(path)
    if stat_mod.S_ISLNK(before.st_mode):
        raise OSError(errno.ELOOP, "Too many levels of symbolic links (a link)", path)
    fd = os.open(path, flags)
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise OSError(errno.ELOOP, "Too many levels of symbolic links (replaced)", path)
    return fd


def read_at(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer at the end of the file): ``os.pread`` where it
    exists, else seek and read until done (Windows)."""
    pread = getattr(os, "pread", None)
    if pread is not None:
        return pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def fsync_path(path: str) -> int:
    """fsync a finished file by name; its size. Windows flushes only a handle opened for
    writing, so a read-only handle that cannot be synced is retried read-write."""
    binary = getattr(os, "O_BINARY", 0)
    fd = os.open(path, os.O_RDONLY | binary)
    try:
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EBADF, errno.EINVAL, errno.EPERM, errno.EACCES):
                raise
            rw = os.open(path, os.O_RDWR | binary)
            try:
                os.fsync(rw)
            finally:
                os.close(rw)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def fsync_folder(folder: str) -> None:
    """Make the new name durable where the platform allows it; some refuse to open or fsync
    a folder (Windows, some network and FUSE file systems): the file itself is fsynced."""
    if platform.WINDOWS:
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------ which disk, how full


def mount_point(path: str) -> str:
    """The mount point of the file system holding ``path`` (its nearest existing folder)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        while not os.path.ismount(path):
            up = os.path.dirname(path)
            if up == path:
                break
            path = up
    except OSError:
        pass
    return path


def disk_text(path: str) -> str:
    """Which disk holds ``path`` and how full it is, in words: ``the file system at /mnt
    (ext4), 0 B free``."""
    mount = mount_point(path)
    kind = platform.fs_type(mount)
    free = platform.free_bytes(mount)
    where = f"the file system at {mount}" + (f" ({kind})" if kind else "")
    return where if free is None else f"{where}, {_size(free)} free"


def device(path: str) -> int | None:
    """Which file system holds the local ``path`` (its device number); None when it cannot
    be told."""
    try:
        return os.stat(path).st_dev
    except (OSError, ValueError):
        return None


def disks_of(paths: Iterable[str]) -> dict[str, tuple[str | None, int, int, list[str]]]:
    """The file systems holding the local folders ``paths``: mount point -> (type, size, free,
    the paths on it), in the order met; a path whose file system cannot be told is left out."""
    mounts: dict[int, str] = {}
    out: dict[str, tuple[str | None, int, int, list[str]]] = {}
    for path in paths:
        dev = device(path)
        if dev is None:
            continue
        mount = mounts.get(dev)
        if mount is None:
            mount = mounts[dev] = mount_point(path)
        if mount not in out:
            got = platform.space(mount)
            if got is None:
                continue
            out[mount] = (platform.fs_type(mount), got[0], got[1], [])
        out[mount][3].append(path)
    return out


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def nearly_full(path: str, slack: int = 1 << 20) -> bool:
    """Whether the file system holding ``path`` has (almost) no room left: under ``slack``
    bytes free (a save cut short there was probably cut short by the full disk)."""
    free = platform.free_bytes(mount_point(path))
    return free is not None and free < slack


class LockTimeout(Exception):
    """Another process holds the lock (``FileSystem.lock`` waited ``timeout`` seconds)."""


class _LocalAppender:
    def __init__(self, path: str) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | _CLOEXEC | getattr(os, "O_BINARY", 0)
        self.fd = os.open(path, flags, 0o644)

    def write(self, data: bytes) -> None:
        """All of ``data`` (a short write, as a nearly full disk gives, is continued; the
        error that stops it is raised)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self.fd)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# Never block on a FIFO named like a checkpoint (O_NOFOLLOW is added where it exists).
_PROBE_FLAGS = os.O_RDONLY | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)


def _relative_calls() -> bool:
    """Whether a folder can be surveyed through its descriptor (openat, fstatat, pread,
    O_NOFOLLOW); looked up when called (tests remove them to simulate Windows)."""
    return (
        bool(getattr(os, "O_NOFOLLOW", 0))
        and hasattr(os, "pread")
        and os.open in os.supports_dir_fd
        and os.stat in os.supports_dir_fd
        and os.scandir in os.supports_fd
    )


def _read_found(folder: str, dfd: int | None, name: str, head: int, tail: int) -> Found:
    """Open ``name`` in ``folder`` (relative to its descriptor ``dfd`` where the platform
    allows, else by path with the guarded no-follow open): its stat (from the descriptor)
    and its ends."""
    try:
        if dfd is not None:
            fd = os.open(name, _PROBE_FLAGS | os.O_NOFOLLOW, dir_fd=dfd)
        else:
            fd = open_nofollow(os.path.join(folder, name), _PROBE_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:  # unreadable: reported as such, never taken as complete
        if dfd is not None:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        else:
            st = os.lstat(os.path.join(folder, name))
        return Found(name, _kind(st.st_mode), st.st_size, st.st_mtime, None, exc)
    try:
        st = os.fstat(fd)
        kind = _kind(st.st_mode)
        size = st.st_size
        if kind != "file":
            return Found(name, kind, size, st.st_mtime)
        key = _pack_key(st.st_dev, st.st_ino, size, st.st_mtime_ns, st.st_ctime_ns)
        try:
            if size <= head + tail:
                data = read_at(fd, size, 0)
                ends = (data[:head], data[-tail:] if tail else b"")
            else:
                ends = (read_at(fd, head, 0), read_at(fd, tail, size - tail))
        except OSError as exc:  # EIO, ...: unreadable, never complete
            return Found(name, kind, size, st.st_mtime, None, exc)
        return _new(Found, (name, kind, size, st.st_mtime, key, ends))
    finally:
        os.close(fd)


class LocalFS:
    """The local disk. ``O_NOFOLLOW`` on every open: a link is never read through."""

    def listdir(self, path: str) -> list[DirEntry]:
        out: list[DirEntry] = []
        with os.scandir(path) as it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:  # vanished between listing and stat
                    continue
                out.append(
                    DirEntry(
                        e.name, e.path, _kind(st.st_mode), st.st_size, st.st_mtime, st.st_ctime
                    )
                )
        return out

    def survey(
        self,
        path: str,
        probe: Callable[[str], object],
        known: Mapping[str, StatKey],
        head: int,
        tail: int,
    ) -> list[Found]:
        """Every entry of a folder, for the scan. Files whose name ``probe`` accepts get their
        first ``head`` and last ``tail`` bytes read, unless their stat key is the one in
        ``known`` (then they are not opened). A probed file is opened relative to the folder
        and stat'ed through its descriptor (no separate lstat); others are lstat'ed. Where the
        platform has no openat/pread/O_NOFOLLOW (Windows) files are opened by path through
        ``open_nofollow`` and read with ``read_at``."""
        out: list[Found] = []
        add = out.append
        dfd = None
        if _relative_calls():
            dfd = os.open(path, os.O_RDONLY | _DIRECTORY | os.O_NOFOLLOW | _CLOEXEC)
        try:
            with os.scandir(path if dfd is None else dfd) as it:
                for e in it:  # files first: a run folder is thousands of them
                    name = e.name
                    try:
                        if e.is_file(follow_symlinks=False):
                            old = known.get(name)
                            if old is not None:  # known: only a stat, no open if unchanged
                                st = e.stat(follow_symlinks=False)
                                size = st.st_size
                                key = _pack_key(st.st_dev, st.st_ino, size, st.st_mtime_ns,
                                                st.st_ctime_ns)  # fmt: skip
                                if key == old or not probe(name):  # not probe: in flight
                                    add(_new(Found, (name, "file", size, st.st_mtime, key, None)))
                                    continue
                                add(_read_found(path, dfd, name, head, tail))
                                continue
                            if probe(name):
                                add(_read_found(path, dfd, name, head, tail))
                                continue
                        elif e.is_dir(follow_symlinks=False):
                            add(_new(Found, (name, "dir", 0, 0.0, None, None)))
                            continue
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:  # vanished between listing and stat
                        continue
                    if _IS_REG(st.st_mode):  # most entries: one test, not _kind's three
                        key = _pack_key(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                                        st.st_ctime_ns)  # fmt: skip
                        add(_new(Found, (name, "file", st.st_size, st.st_mtime, key, None)))
                        continue
                    add(_new(Found, (name, _kind(st.st_mode), st.st_size, st.st_mtime, None, None)))
        finally:
            if dfd is not None:
                os.close(dfd)
        return out

    def stat(self, path: str) -> DirEntry:
        st = os.lstat(path)
        name = os.path.basename(path)
        return DirEntry(name, path, _kind(st.st_mode), st.st_size, st.st_mtime, st.st_ctime)

    def _open(self, path: str) -> int:
        return open_nofollow(path, os.O_RDONLY)

    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]:
        """The first ``head`` and last ``tail`` bytes and the size, from one open file (one
        read when the file is small)."""
        fd = self._open(path)
        try:
            size = os.fstat(fd).st_size
            if size <= head + tail:
                data = read_at(fd, size, 0)
                return data[:head], data[-tail:] if tail else b"", size
            return read_at(fd, head, 0), read_at(fd, tail, size - tail), size
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        """A folder the user named (links in the path they typed are followed; nothing
        below it ever is)."""
        try:
            return self.stat(self.realpath(path)).kind == "dir"
        except OSError:
            return False

    def read_bytes(self, path: str, offset: int = 0) -> bytes:
        """The whole file, or everything after byte ``offset``."""
        with open(self._open(path), "rb", closefd=True) as fh:
            if offset:
                fh.seek(offset)
            return fh.read()

    def read_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (start, end) range, from one open file."""
        fd = self._open(path)
        try:
            return [read_at(fd, max(end - start, 0), start) for start, end in ranges]
        finally:
            os.close(fd)

    def write_pieces(self, path: str, size: int, pieces: Iterable[tuple[int, bytes]]) -> None:
        """A new file of ``size`` bytes holding each (offset, bytes) piece where it says and
        nothing elsewhere: a sparse file, the gaps holes that cost no disk. Never replaces a
        file (O_EXCL); for janitor's own temp folders."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags, 0o600)  # O_EXCL: never through a link either
        try:
            os.ftruncate(fd, size)
            for offset, data in pieces:
                os.lseek(fd, offset, os.SEEK_SET)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def write_atomic(self, path: str, data: bytes) -> None:
        """Temp file in the same folder, fsync, ``os.replace``, fsync of the folder: never a
        half-written file. Whatever stops it (a full disk: ENOSPC at the write or at the
        fsync) removes the temp file and leaves ``path`` as it was."""
        folder = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=layout.TMP_PREFIX, dir=folder)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_folder(folder)

    def appender(self, path: str) -> Appender:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return _LocalAppender(path)

    @contextlib.contextmanager
    def lock(self, path: str, timeout: float) -> Iterator[None]:
        """An advisory lock file (``filelock``) shared by every janitor on this machine."""
        from filelock import FileLock, Timeout

        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = FileLock(path, timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise LockTimeout(path) from None
        try:
            yield
        finally:
            lock.release()

    def local_path(self, path: str) -> str | None:
        return path

    @contextlib.contextmanager
    def temp_dir(self, folder: str, prefix: str) -> Iterator[str]:
        """A private folder ``<prefix><pid>-*`` in ``folder`` (same file system), removed
        afterwards; folders left by a killed janitor (pid no longer running) go first."""
        clean_stale_temps(folder, prefix)
        tmp = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=folder)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def sync_file(self, path: str) -> int:
        """fsync a finished file; its size."""
        return fsync_path(path)

    def publish(self, tmp: str, final: str, *, replace: bool) -> bool:
        """Give the finished file ``tmp`` the name ``final``: replacing what is there
        (``replace``), or only if nothing is (False: something is, left exactly as it is;
        see ``publish_new``). The new name is made durable where the platform allows."""
        if replace:
            os.replace(tmp, final)
        elif not publish_new(tmp, final):
            return False
        fsync_folder(os.path.dirname(final) or ".")
        return True

    def same_file(self, a: str, b: str) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False

    def remove(self, path: str) -> None:
        os.unlink(path)

    def readlink(self, path: str) -> str:
        """What a symlink says (never followed)."""
        return os.readlink(path)

    def rmdir(self, path: str) -> None:
        """Remove an empty folder (OSError if anything is in it)."""
        os.rmdir(path)

    def link_or_copy(self, src: str, dst: str) -> bool:
        """``dst`` as a hard link to ``src`` (True), or, where the file system has none, a
        fsynced copy (False). Never replaces ``dst``."""
        try:
            os.link(src, dst, follow_symlinks=False)
            return True
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
        if not _copy_exclusive(src, dst):
            raise FileExistsError(errno.EEXIST, "exists", dst)
        return False

    def remove_tree(self, path: str) -> None:
        """Delete a folder and everything below it; links inside are removed, never
        followed (``shutil.rmtree``'s own rule). Only for folders in janitor's trash."""
        if os.path.islink(path):
            raise OSError(errno.ELOOP, "a symlink, not a folder", path)
        shutil.rmtree(path)

    def truncate(self, path: str) -> None:
        fd = open_nofollow(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def realpath(self, path: str) -> str:
        """Resolve links in a path the user typed (raises OSError on a link loop)."""
        os.stat(path)  # ELOOP / ENOENT surface here, with the errno intact
        return os.path.realpath(path)

    def listing(self, path: str) -> contextlib.AbstractContextManager[None]:
        """A scan's view of ``path`` (object stores list it once; a disk is listed as walked)."""
        return contextlib.nullcontext()

    def versioned(self, path: str) -> bool | None:
        """A removed file is gone (no old versions kept, as a versioned bucket keeps)."""
        return False

    def purge_versions(self, paths: Sequence[str]) -> tuple[int, int]:
        return 0, 0

    def unfinished_uploads(self, path: str) -> Sequence[Any]:
        return ()


LOCAL = LocalFS()


class Without:
    """A read-only view of ``fs`` in which ``hidden`` paths do not exist: what a dry run
    scans to show the plan as it will be once those files are moved away."""

    def __init__(self, fs: FileSystem, hidden: frozenset[str]) -> None:
        self.fs = fs
        self.hidden = hidden

    def _check(self, path: str) -> None:
        if path in self.hidden:
            raise FileNotFoundError(2, "No such file or directory", path)

    def listdir(self, path: str) -> list[DirEntry]:
        return [e for e in self.fs.listdir(path) if e.path not in self.hidden]

    def survey(
        self,
        path: str,
        probe: Callable[[str], object],
        known: Mapping[str, StatKey],
        head: int,
        tail: int,
    ) -> list[Found]:
        found = self.fs.survey(path, probe, known, head, tail)
        return [f for f in found if os.path.join(path, f.name) not in self.hidden]

    def stat(self, path: str) -> DirEntry:
        self._check(path)
        return self.fs.stat(path)

    def exists(self, path: str) -> bool:
        return path not in self.hidden and self.fs.exists(path)

    def is_dir(self, path: str) -> bool:
        return path not in self.hidden and self.fs.is_dir(path)

    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]:
        self._check(path)
        return self.fs.read_ends(path, head, tail)

    def read_bytes(self, path: str, offset: int = 0) -> bytes:
        self._check(path)
        return self.fs.read_bytes(path, offset)

    def read_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        self._check(path)
        return self.fs.read_ranges(path, ranges)

    def realpath(self, path: str) -> str:
        return self.fs.realpath(path)

    def readlink(self, path: str) -> str:
        self._check(path)
        return self.fs.readlink(path)

    def local_path(self, path: str) -> str | None:
        return None if path in self.hidden else self.fs.local_path(path)

    def versioned(self, path: str) -> bool | None:
        return self.fs.versioned(path)

    def unfinished_uploads(self, path: str) -> Sequence[Any]:
        return self.fs.unfinished_uploads(path)

    def listing(self, path: str) -> contextlib.AbstractContextManager[None]:
        return self.fs.listing(path)


def link_count(path: str) -> int:
    """How many names the local file at ``path`` has (``st_nlink``; 1 when it cannot be
    told): removing one of several names frees nothing."""
    try:
        return os.lstat(path).st_nlink
    except (OSError, ValueError):
        return 1
