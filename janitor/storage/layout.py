"""Where janitor keeps its own state, in one place: ``<logs root>/.janitor/`` beside the runs.

The logs root of a run is the run folder's parent (for every trainer layout janitor knows).
"""

from __future__ import annotations

import os

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


def root_config(run_path: str) -> str:
    return os.path.join(logs_root(run_path), CONFIG_NAME)


def run_config(run_path: str) -> str:
    return os.path.join(run_path, CONFIG_NAME)


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
