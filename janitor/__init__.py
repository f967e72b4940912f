"""janitor: keeps training runs from eating the disk.

From Python (``janitor.api``; nothing heavy is imported until it is used)::

    import janitor
    plan = janitor.scan("logs").plan(keep_last=1)
    print(plan.expected_freed_size)
    result = plan.execute()

Layers (``tests/test_layers.py`` enforces the import directions): ``domain`` (data types, no
I/O) -> ``core`` (pure rules, planners, format facts) -> ``storage`` (the one storage seam;
scan, config, journal, locks, trash layout) -> ``usecases`` (prune, finalize, trash, watch:
the only code that deletes or moves) -> ``torchio`` (the only torch importer) -> ``cli`` and
``api`` (the edges).
"""

__version__ = "0.1.0"

__all__ = ["PrunePlan", "PruneResult", "ScanReport", "extract_small", "finalize", "scan"]


def __getattr__(name: str):
    if name in __all__:
        from janitor import api

        return getattr(api, name)
    raise AttributeError(f"module 'janitor' has no attribute {name!r}")
