"""Where janitor keeps its own state and finds its settings.

State: a run's lock, journal records, trash and verdict cache live in ``.janitor/`` in the run
folder's parent (its "logs root" here), a place that depends on the run alone, never on the
path a command was given (the logs root, the run, or a file in it).

Settings: the ``janitor.toml`` of the run folder and of up to ``CONFIG_REACH`` folders above it
(``config_folders``), which reaches ``logs/`` from ``logs/<exp>/logs_s2_v2``,
``logs/<exp>/logs_s1_v2/ckpt``, ``logs/group/carol`` and ``Data/<exp>/models`` alike.
"""

from __future__ import annotations

import os

from janitor.domain.paths import is_url

STATE_DIR = ".janitor"
CONFIG_NAME = "janitor.toml"
JOURNAL_NAME = "journal.jsonl"
TMP_PREFIX = ".janitor-tmp-"
STAGE_PREFIX = ".janitor-stage-"  # a remote checkpoint's local stand-in (system temp folder)


def _name(run_path: str) -> str:
    return os.path.basename(run_path.rstrip(os.sep)) or "run"


def logs_root(run_path: str) -> str:
    return os.path.dirname(run_path.rstrip(os.sep))


def state_dir_of_root(root: str) -> str:
    return os.path.join(root, STATE_DIR)


def state_dir(run_path: str) -> str:
    """``.janitor/`` in the run's parent (the logs root): journal, locks and trash."""
    return state_dir_of_root(logs_root(run_path))


def journal_path(state: str) -> str:
    return os.path.join(state, JOURNAL_NAME)


def lock_path(run_path: str) -> str:
    return os.path.join(state_dir(run_path), "locks", f"{_name(run_path)}.lock")


def trash_root(root: str) -> str:
    return os.path.join(state_dir_of_root(root), "trash")


def trash_dir(run_path: str) -> str:
    return os.path.join(state_dir(run_path), "trash", _name(run_path))


CONFIG_REACH = 3  # folders above a run whose janitor.toml applies to it


def config_path(folder: str) -> str:
    return os.path.join(folder, CONFIG_NAME)


def config_folders(run_path: str) -> list[str]:
    """The folders whose ``janitor.toml`` applies to a run, nearest first: the run folder and
    up to ``CONFIG_REACH`` folders above it, never past the file system's root (or past a
    URL's bucket)."""
    folders = [run_path.rstrip("/") or run_path]
    while len(folders) <= CONFIG_REACH:
        here = folders[-1]
        parent = os.path.dirname(here)
        at_bucket = is_url(here) and "/" not in here.split("://", 1)[1]
        if not parent or parent == here or at_bucket:
            break
        folders.append(parent)
    return folders


def is_state_path(path: str) -> bool:
    """Inside a ``.janitor/`` folder (trash moves are not trainer saves)."""
    return STATE_DIR in path.split(os.sep)


VERDICTS_NAME = "verdicts.cache"


def verdict_cache(state: str) -> str:
    """The scan's verdict cache of the runs in this logs root (``storage.cache``)."""
    return os.path.join(state, VERDICTS_NAME)


RESERVE_NAME = "reserve"
BEGUN_NAME = "begun"


def reserve_path(state: str) -> str:
    """Room kept for the journal on a disk that fills up (``storage.journal``)."""
    return os.path.join(state, RESERVE_NAME)


def begun_dir(state: str) -> str:
    """Set-begin records kept as empty files' names while the disk has no room for a line."""
    return os.path.join(state, BEGUN_NAME)
