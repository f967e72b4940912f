"""janitor: keeps training runs from eating the disk.

From Python (``janitor.api``; nothing heavy is imported until it is used)::

    import janitor
    plan = janitor.scan("logs").plan(keep_last=1)
    print(plan.expected_freed_size)
    result = plan.execute()

Every command has its function (``janitor.prune``, ``janitor.finalize``, ...), calling the same
use case (``janitor.usecases.commands``) as the command line.

Layers (``tests/test_layers.py`` enforces the import directions): ``domain`` (data types, no
I/O) -> ``core`` (pure rules, planners, format facts) -> ``storage`` (the one storage seam;
scan, config, journal, locks, trash layout) -> ``usecases`` (one function per command; the
only code that deletes or moves) -> ``torchio`` (the only torch importer) -> ``cli`` and
``api`` (the edges: they reach storage, core and torchio only through the use cases and
``janitor.compose``, the one composition point that hands the torch layer to the use cases).
"""

__version__ = "0.2.0"

__all__ = [
    "PrunePlan", "PruneResult", "ScanReport", "extract_small", "finalize", "info", "log", "pin",
    "prune", "restore", "scan", "trash_empty", "trash_list", "unpin", "watch",
]  # fmt: skip


def __getattr__(name: str):
    if name in __all__:
        from janitor import api

        return getattr(api, name)
    raise AttributeError(f"module 'janitor' has no attribute {name!r}")
