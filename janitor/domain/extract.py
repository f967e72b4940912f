"""extract-small's options: one type for the use case that checks them and the torch layer
that carries them out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    output: str | None = None
    format: str | None = None
    name: str | None = None
    author: str | None = None
    sr: int | None = None
    version: str | None = None
    f0: bool | None = None
    vocoder: str | None = None
    step: int | None = None
    force: bool = False
    skip_existing: bool = False
    dry_run: bool = False  # decide everything, write nothing
    like: str | None = None  # rvc: "savee" (training, default) or "extract" (the web UI's)
    half: bool = False  # release: compress_model.py -hf
    info: str | None = None  # rvc --like extract: the info text


@dataclass(frozen=True)
class SmallModelCheck:
    """A step's small model: found or written (or, in a dry run, to be written) and checked
    against its G file."""

    output: str
    epoch: int
    step: int
    action: str  # "exists" | "extract" (dry run) | "extracted"
    problems: tuple[str, ...] = ()  # empty: verified (or not checked yet, for "extract")
