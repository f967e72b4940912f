"""What the use cases need from the torch layer, handed in from above (``janitor.compose``
wires ``janitor.torchio`` in; torch is imported only when a tensor is read). Use cases never
import ``janitor.torchio``: they sit below it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # a type only: extract-small never loads finalize's planners
    from janitor.usecases.finalize import SmallModels


class TorchLayer(Protocol):
    def small_models(self, on_tensor: Callable[[int, int], None] | None = None) -> SmallModels:
        """finalize's maker of verified small models."""

    def check_extract(self, options: Any, inputs: int) -> None:
        """Usage errors in extract-small's options, before any file is read (torch-free)."""

    def is_framework_input(self, path: str) -> bool:
        """An HF checkpoint folder or a Lightning .ckpt (by name)."""

    def extract_trainer(self, path: str, options: Any) -> Any:
        """A VITS-family G file or a trainer's export (Applio, RVC, GPT-SoVITS, ...):
        returns the frozen ``Extracted``."""

    def extract_framework(self, path: str, options: Any) -> Any:
        """An HF checkpoint folder or a Lightning .ckpt: returns ``FrameworkExtract``."""

    def info(self, path: str) -> dict[str, Any]:
        """What a checkpoint is (kind, epoch, step, format, small-model fields)."""
