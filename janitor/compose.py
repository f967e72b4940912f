"""The one composition point: the torch layer (``janitor.torchio``) wired into the use cases,
which sit below it and take it as an argument. ``TORCH`` imports nothing until a use case
calls it; ``janitor.torchio`` imports torch only when a tensor is read. The command line and
the Python API both take ``TORCH`` from here and hand it in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _with_torch(what: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; where it needs torch and torch is not installed, one line saying so
    (``needs_torch``: a usage error, exit 2). Applio and RVC WebUI small models never need it."""
    try:
        return fn(*args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        from janitor.torchio.extract import needs_torch

        raise needs_torch(what) from None


class _Torch:
    """``janitor.usecases.tools.TorchLayer`` by ``janitor.torchio``, imported lazily."""

    def small_models(self, on_tensor: Callable[[int, int], None] | None = None):
        from janitor.torchio.extract import TorchSmallModels

        return TorchSmallModels(on_tensor)

    def check_extract(self, options: Any, inputs: int) -> None:
        from janitor.torchio.extract import check_options

        check_options(options, inputs)

    def is_framework_input(self, path: str) -> bool:
        from janitor.torchio.frameworks import is_framework_input

        return is_framework_input(path)

    def extract_trainer(self, path: str, options: Any):
        from janitor.torchio.extract import extract_one

        return _with_torch(path, extract_one, path, options)

    def extract_framework(self, path: str, options: Any):
        from janitor.torchio.frameworks import extract_framework

        return _with_torch(path, extract_framework, path, options)

    def info(self, path: str) -> dict[str, Any]:
        from janitor.torchio.extract import info

        return _with_torch(path, info, path)


TORCH = _Torch()
