"""Whole-process measurements for ``bench/run.py``.

Every number comes from a child process started with ``subprocess.Popen`` and reaped with
``os.wait4`` (never ``proc.wait`` first): wall time is ``time.perf_counter`` around the child,
peak RSS is that child's ``ru_maxrss`` (KiB on Linux). Nothing is measured inside this
interpreter.

``run`` starts the command under GNU ``time -f %M`` when ``/usr/bin/time`` is GNU time, and
takes the peak RSS from it: Linux carries the high-water mark of the memory a process was
forked from across ``execve`` into its ``ru_maxrss``, so a command started straight from this
~22 MB interpreter never shows less than that (``find``, ``janitor --help`` and ``python -c
pass`` all read ~22 MB). Under ``time`` (~1 MB) the floor is time's own size, and every
command pays the same extra ~1 ms of wall time. Without GNU time the floor stays, and
``RSS_METHOD`` says so.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

# Children still running (watchers, the sleep baseline): killed on the way out (Ctrl-C).
LIVE: set[subprocess.Popen] = set()
# Where stderr of children is captured (set to the bench's temp dir by run.py).
SCRATCH: str | None = None


def _gnu_time() -> str | None:
    path = "/usr/bin/time"
    try:
        ok = subprocess.run(
            [path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True, timeout=10
        ).returncode == 0  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return path if ok else None


TIME = _gnu_time()
RSS_METHOD = (
    "GNU time %M (floor: time's own ~1 MB)"
    if TIME
    else "ru_maxrss via os.wait4 (floor: the bench's own peak RSS)"
)


class BenchError(RuntimeError):
    """A measured command failed or a result did not verify: the bench cannot go on."""


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    rss_kib: int  # peak RSS of that child (ru_maxrss)
    rc: int


def tail(fh) -> str:
    fh.seek(0)
    text = fh.read().decode("utf-8", "replace").strip()
    return text[-1500:] if text else "(no stderr)"


def run(
    cmd: Sequence[str],
    *,
    expect: Sequence[int] = (0,),
    stdout=None,
    cwd: str | None = None,
    env: dict | None = None,
) -> Sample:
    """Run ``cmd`` to completion; wall time and peak RSS of exactly that child."""
    out = subprocess.DEVNULL if stdout is None else stdout
    with (
        tempfile.TemporaryFile(dir=SCRATCH) as err,
        tempfile.NamedTemporaryFile("r", dir=SCRATCH, encoding="utf-8") as rss,
    ):
        full = [TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME else list(cmd)
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, cwd=cwd, env=env)
        LIVE.add(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        LIVE.discard(proc)
        if proc.returncode not in expect:
            raise BenchError(
                f"{' '.join(map(str, cmd))}: exit {proc.returncode} (expected "
                f"{'/'.join(map(str, expect))}):\n{tail(err)}"
            )
        rss_kib = usage.ru_maxrss
        if TIME:  # the last line; a line before it would say how the command ended
            lines = rss.read().split()
            if not lines or not lines[-1].isdigit():
                raise BenchError(f"{' '.join(map(str, cmd))}: no peak RSS from {TIME}")
            rss_kib = int(lines[-1])
    return Sample(wall, rss_kib, proc.returncode)


def spawn(
    cmd: Sequence[str], *, stdout, stderr, cwd: str | None = None, env: dict | None = None
) -> subprocess.Popen:
    """Start a long-lived child (a watcher, the sleep baseline); reap it with ``reap``."""
    proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=stderr, cwd=cwd, env=env)
    LIVE.add(proc)
    return proc


def reap(proc: subprocess.Popen, timeout: float) -> tuple[int | None, int]:
    """Wait up to ``timeout`` s for a child started with ``spawn``: (exit code or None if it
    had to be killed, ru_maxrss KiB)."""
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline and not killed:
            proc.kill()
            killed = True
            deadline = time.monotonic() + 10
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    LIVE.discard(proc)
    return (None if killed else proc.returncode), usage.ru_maxrss


def kill_live() -> None:
    """Kill and reap every child we started that is still running."""
    for proc in list(LIVE):
        with contextlib.suppress(OSError):
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(OSError, ChildProcessError):
            os.waitpid(proc.pid, 0)
        LIVE.discard(proc)


# ---------------------------------------------------------------- /proc sampling

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def _children(pid: int) -> list[int]:
    """Child pids of a live process (/proc/PID/task/*/children)."""
    out: list[int] = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError), open(task, encoding="ascii") as fh:
            out.extend(int(x) for x in fh.read().split())
    return out


def pss_kib(pid: int) -> int:
    """Proportional set size of a live process, in KiB (/proc/PID/smaps_rollup): each page
    it shares with other processes (a forked worker with janitor) counted in parts."""
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_pss_kib(root: int) -> int:
    """The summed PSS of a live process and all its descendants, in KiB (0 once gone)."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError, ValueError):
            total += pss_kib(pid)
            stack.extend(_children(pid))
    return total


def tree_pss_peak_kib(cmd: Sequence[str], *, env: dict | None = None, every: float = 0.005) -> int:
    """Peak of the summed PSS of ``cmd`` and all its descendants (janitor's scan workers),
    sampled every ``every`` s: the memory the whole tree holds, pages shared since a fork
    counted once."""
    proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss_kib(proc.pid))
        time.sleep(every)
    LIVE.discard(proc)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))}: exit {proc.returncode}")
    return peak


# ---------------------------------------------------------------- statistics


def summary(values: Sequence[float]) -> dict:
    vals = [float(v) for v in values]
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "samples": vals,
    }


def walls(samples: Sequence[Sample]) -> dict:
    return summary([s.wall for s in samples])


def rss_mb(samples: Sequence[Sample]) -> dict:
    """Peak RSS in MB (10^6 bytes) from ru_maxrss KiB."""
    return summary([s.rss_kib * 1024 / 1e6 for s in samples])
