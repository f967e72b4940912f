"""Everything janitor asks of the operating system beyond portable Python, one small guarded
function each, with a fallback where the call does not exist (Windows, macOS, other Unixes).

File calls (no-follow opens, positional reads, folder fsync) live in the storage seam
(``janitor.storage.fs``); what is here touches no file in a logs tree: process liveness, the
stop signals, the native watcher's name and limits, and releasing pages of a mapped file.
Each function looks its attribute up when called, so tests can remove it (``delattr``) and
see the fallback.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WINDOWS = os.name == "nt"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still run. Unknown counts as alive (callers use this to
    decide whether a temp folder is abandoned: when in doubt, leave it).

    POSIX: ``kill(pid, 0)``. Windows: ``os.kill(pid, 0)`` would send CTRL_C_EVENT to a
    console group, so the process is opened and its exit code asked instead."""
    if WINDOWS:
        return _windows_pid_alive(pid)
    kill = getattr(os, "kill", None)
    if kill is None:
        return True
    try:
        kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process, alive
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:
    try:
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    except (ImportError, AttributeError, OSError):
        return True
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return kernel32.GetLastError() == access_denied
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def stop_signals() -> list[signal.Signals]:
    """The signals that mean "stop cleanly" here: SIGTERM and SIGINT everywhere, SIGHUP
    where it exists (not on Windows), SIGBREAK (Ctrl-Break) on Windows."""
    names = ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK")
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


def on_stop_signals(handler: Callable[..., object]) -> None:
    """Install ``handler`` for every stop signal this platform has (main thread only)."""
    for sig in stop_signals():
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):  # not settable here (or not the main thread)
            continue


def native_watcher() -> str:
    """The name of the file-change API watchdog's native observer uses on this system."""
    if sys.platform.startswith("linux"):
        return "inotify"
    if sys.platform == "darwin":
        return "FSEvents"
    if WINDOWS:
        return "ReadDirectoryChangesW"
    return "kqueue"


def watch_limit_hint() -> str:
    """What to say when the native watcher runs out of watches or file handles."""
    if sys.platform.startswith("linux"):
        return (
            "the system ran out of inotify watches; use --poll, or raise the limit: "
            "sudo sysctl fs.inotify.max_user_watches=524288"
        )
    return (
        f"the system ran out of {native_watcher()} watches or open files; use --poll, or "
        "raise the open-file limit (ulimit -n)"
    )


# ------------------------------------------------------------------ memory-mapped pages


def mapped_ranges(real_path: str) -> list[tuple[int, int]]:
    """Address ranges where ``real_path`` is mapped into this process, from /proc/self/maps
    (Linux); empty where there is no such file."""
    ranges: list[tuple[int, int]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].rstrip("\n") == real_path:
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    ranges.append((start, end))
    except (OSError, ValueError):
        return []
    return ranges


MADV_DONTNEED = 4  # Linux's value; other systems' MADV_DONTNEED differ or do not drop pages


def page_dropper() -> Callable[[int, int], object] | None:
    """``drop(address, length)``: give clean file-backed pages back (Linux ``madvise``), or
    None where that is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return lambda address, length: madvise(address, length, MADV_DONTNEED)


# ------------------------------------------------------------------ worker processes

WORKERS_ENV = "JANITOR_WORKERS"  # how many processes a scan may use; 1: none besides janitor
MAX_WORKERS = 8
MIN_UNITS = 8  # fewer folders than this are walked in the one process: forking costs more


def worker_processes(units: int, *, most: int | None = None, min_units: int = MIN_UNITS) -> int:
    """How many forked worker processes should share ``units`` of work: ``most`` (default:
    one per CPU this process may run on, at most MAX_WORKERS; ``JANITOR_WORKERS`` overrides
    either), never more than the units, none (1) for fewer than ``min_units``, and 1 where
    a fork is not safe (``fork_safe``)."""
    wanted = os.environ.get(WORKERS_ENV, "").strip()
    if wanted:
        try:
            limit = max(1, int(wanted))
        except ValueError:
            limit = 1
    elif units < min_units:
        return 1
    else:
        limit = most if most is not None else min(_cpus(), MAX_WORKERS)
    if not fork_safe():
        return 1
    return max(1, min(limit, units))


def fork_safe() -> bool:
    """Whether janitor may fork workers here: on Linux only (macOS's system libraries and
    Windows have no safe fork), and only while no other thread runs (a forked child holds a
    copy of this one thread; a lock another thread held stays locked there)."""
    import threading

    if not sys.platform.startswith("linux") or getattr(os, "fork", None) is None:
        return False
    return threading.active_count() == 1


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return len(affinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


_FORKED: tuple[Callable[[Any], Any], Sequence[Any]] | None = None  # what the workers do


def forked_imap(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R] | None:
    """``fn(item)`` for each of ``items``, in order, in ``workers`` forked processes; or None
    if processes cannot be had here (the caller then does the work itself). ``fn`` and the
    items come with the fork, never pickled; only each result crosses back. Stopped early
    (an error, Ctrl-C, the caller done), the workers are ended."""
    global _FORKED
    _FORKED = (fn, items)
    pool = fork_pool(workers)
    if pool is None:
        _FORKED = None
        return None
    return _results(pool, len(items))


def _results(pool, n: int) -> Iterator[Any]:
    global _FORKED
    try:
        with pool:  # terminate() on the way out: the workers are ended
            yield from pool.imap(_call_forked, range(n))
    finally:
        _FORKED = None


def _call_forked(i: int) -> Any:
    """In a worker process: the job it was forked with, on item ``i``."""
    assert _FORKED is not None, "a worker without its job"
    fn, items = _FORKED
    return fn(items[i])


def fork_pool(workers: int):
    """A ``multiprocessing`` pool of ``workers`` forked processes that leave Ctrl-C to
    janitor (which ends them), or None if processes cannot be made here."""
    sys.stdout.flush()  # nothing buffered is copied into the workers
    sys.stderr.flush()
    try:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        return ctx.Pool(workers, initializer=_worker_start, initargs=(os.getpid(),))
    except (OSError, ValueError, ImportError):
        return None


PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent dies


def _worker_start(parent: int) -> None:
    """In each worker: Ctrl-C is janitor's to handle (it ends the workers), and a janitor
    killed outright takes its workers with it (Linux's parent-death signal) instead of
    leaving them blocked on a task queue nobody feeds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # died before the signal was set up
        os._exit(0)


# ------------------------------------------------------------------ free space (full disks)


def space(path: str) -> tuple[int, int] | None:
    """(size, free) of the file system holding ``path``: ``statvfs``'s ``f_blocks`` and
    ``f_bavail`` (free as an unprivileged user sees it, also when janitor runs as root), or
    ``shutil.disk_usage`` where there is no ``statvfs``; None when it cannot be told (an
    object store, a path that vanished)."""
    statvfs = getattr(os, "statvfs", None)
    try:
        if statvfs is not None:
            st = statvfs(path)
            return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        import shutil

        usage = shutil.disk_usage(path)
        return usage.total, usage.free
    except (OSError, ValueError):
        return None


def free_bytes(path: str) -> int | None:
    """Bytes an unprivileged user may still write on the file system holding ``path``."""
    got = space(path)
    return None if got is None else got[1]


def disk_size(path: str) -> int | None:
    """The size of the file system holding ``path``, for ``--min-free 10%``."""
    got = space(path)
    return None if got is None else got[0]


def fs_type(mount: str) -> str | None:
    """The file system type mounted at ``mount`` (``/proc/self/mounts``: Linux only)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:  # the last mount at a point is the one that shows
        parts = line.split()
        if len(parts) >= 3 and parts[1].replace("\\040", " ") == mount:
            found = parts[2]
    return found
