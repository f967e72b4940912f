"""The two classes other trainers pickle into their files, as inert stand-ins.

GPT-SoVITS stores its run config as an instance of its own ``utils.HParams``; PyTorch
Lightning stores ``hyper_parameters["output_dir"]`` as a ``pathlib.PosixPath``. torch's
weights-only unpickler refuses both names unless they are allow-listed. janitor allows exactly
these two names, each mapped to a class that holds data and runs nothing, never the real
globals and never anything else. Writing goes the other way: :data:`PICKLE_MODULE` pickles an
:class:`HParams` stand-in under the global name ``utils.HParams``, so the trainer's own loader
(which imports its ``utils``) and a weights-only loader with the name allow-listed both read
it.
"""

from __future__ import annotations

import pickle
import types
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any


class HParams:
    """GPT-SoVITS's ``utils.HParams``, data only: attributes in the order they were set,
    nested sections as HParams (as the trainer builds them from its config.json)."""

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, HParams(**value) if type(value) is dict else value)

    def keys(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __eq__(self, other: object) -> bool:
        return type(other) is HParams and list(vars(self).items()) == list(vars(other).items())

    def __repr__(self) -> str:
        return repr(self.__dict__)

    def as_dict(self) -> dict[str, Any]:
        """Plain nested dicts (what GPT-SoVITS's inference also accepts as ``config``)."""
        return {k: v.as_dict() if isinstance(v, HParams) else v for k, v in vars(self).items()}


def hparams(config: Mapping[str, Any], **extra: Any) -> HParams:
    """The object ``utils.get_hparams`` builds from a config dict, then ``extra`` attributes."""
    out = HParams(**config)
    for key, value in extra.items():
        setattr(out, key, value)
    return out


HPARAMS_NAME = "utils.HParams"
# weights-only allow-lists: (inert class, the global name in the file)
GPT_SOVITS_GLOBALS = ((HParams, HPARAMS_NAME),)
LIGHTNING_GLOBALS = ((PurePosixPath, "pathlib.PosixPath"),)


class _Pickler(pickle._Pickler):  # the Python pickler: save_global can be specialised
    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is HParams:
            module, _, qualname = HPARAMS_NAME.rpartition(".")
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


# Passed to torch.save(pickle_module=...): torch subclasses ``Pickler`` for its tensors.
PICKLE_MODULE = types.ModuleType("janitor_pickle")
PICKLE_MODULE.Pickler = _Pickler  # type: ignore[attr-defined]
