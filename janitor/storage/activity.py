"""The facts behind "is this run training?" (``core.law.is_active`` decides): when the
trainer last wrote into the run, and whether a trainer process the run names is alive."""

from __future__ import annotations

import json
import os

from janitor.domain.checkpoints import Run
from janitor.storage import platform
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.metrics import EVENTS_PREFIX

# Applio writes the pids of its training processes into the run's config.json while it
# trains, and removes them when training ends (rvc/train/train.py); a crash leaves them.
PIDS_FILE, PIDS_KEY = "config.json", "process_pids"


def last_trainer_write(run: Run, fs: FileSystem = LOCAL) -> float:
    """Newest mtime of the trainer's files (``Run.last_activity``: janitor's own files left
    out), TensorBoard events in sub-folders (eval/) included."""
    newest = run.last_activity
    for entry in fs.listdir(run.path):
        if entry.kind == "dir" and not entry.name.startswith("."):
            try:
                for sub in fs.listdir(entry.path):
                    if sub.name.startswith(EVENTS_PREFIX):
                        newest = max(newest, sub.mtime)
            except OSError:
                continue
    return newest


def trainer_alive(run: Run, fs: FileSystem = LOCAL) -> bool | None:
    """Whether a process the run's ``config.json`` names in ``process_pids`` is alive on
    this machine (None: the run names none, or it is not on a local disk)."""
    if fs.local_path(run.path) is None:
        return None
    try:
        doc = json.loads(fs.read_bytes(os.path.join(run.path, PIDS_FILE)))
    except (OSError, ValueError):
        return None
    pids = doc.get(PIDS_KEY) if isinstance(doc, dict) else None
    if not isinstance(pids, list) or not pids:
        return None
    return any(isinstance(p, int) and p > 0 and platform.pid_alive(p) for p in pids)
