"""Synthetic log trees for ``bench/run.py``: many tiny but structurally complete checkpoints.

Every file is the same ~360-byte zip whose first entry is ``archive/data.pkl`` (what janitor's
completeness check looks for: end-of-central-directory record consistent with the size, first
entry ``*/data.pkl``). Files are written one by one (not hard links: prune compares each
file's size and mtime), or copied with ``cp -a``.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import zipfile
from collections.abc import Iterable

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def tiny_checkpoint() -> bytes:
    """A torch-like zip: ``archive/data.pkl`` (an empty dict) first, then the usual records."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/version", b"3\n")
    return buf.getvalue()


def write_file(path: str, data: bytes) -> None:
    """A plain open/write/close, like a trainer's torch.save (no rename, no fsync)."""
    fd = os.open(path, _FLAGS, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def run_name(i: int) -> str:
    return f"run{i:03d}"


def build_tree(root: str, runs: int, steps: Iterable[int], data: bytes) -> int:
    """``root/runNNN/{G,D}_<step>.pth`` for every run and step; returns the file count."""
    steps = list(steps)
    n = 0
    for r in range(runs):
        folder = os.path.join(root, run_name(r))
        os.makedirs(folder)
        for step in steps:
            for kind in ("G", "D"):
                write_file(os.path.join(folder, f"{kind}_{step}.pth"), data)
                n += 1
    return n


def copy_runs(src_root: str, runs: int, dest: str) -> None:
    """``cp -a`` the first ``runs`` run folders of ``src_root`` into a new ``dest``."""
    os.makedirs(dest)
    srcs = [os.path.join(src_root, run_name(r)) for r in range(runs)]
    subprocess.run(["cp", "-a", *srcs, dest + os.sep], check=True)


def files_under(root: str, skip_hidden: bool = True) -> set[str]:
    """Relative paths of all regular files (janitor's own ``.janitor`` state left out)."""
    out = set()
    for folder, dirs, files in os.walk(root):
        if skip_hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(folder, root)
        out.update(os.path.normpath(os.path.join(rel, f)) for f in files)
    return out


def file_sizes(root: str) -> dict[str, int]:
    """``st_size`` of every regular file under ``root`` by relative path (hidden folders such
    as janitor's ``.janitor`` left out), symlinks not followed."""
    out = {}
    for rel in files_under(root):
        st = os.lstat(os.path.join(root, rel))
        if stat.S_ISREG(st.st_mode):
            out[rel] = st.st_size
    return out


def disk_usage(root: str) -> int:
    """Bytes allocated under ``root`` (st_blocks), symlinks not followed."""
    total = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return total
