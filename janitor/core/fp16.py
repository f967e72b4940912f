"""float32 / bfloat16 bytes -> float16 bytes, bit for bit as torch's ``.half()`` on a CPU.

Round to nearest even, subnormals kept, overflow to ±inf (numpy's ``astype('<f2')`` does this
exactly for every non-NaN float32). NaNs: torch quiets them and keeps the top payload bits
(sign | 0x7E00 | mantissa >> 13), where numpy would keep a signalling NaN signalling.
bfloat16 widens to float32 exactly (its 16 bits are a float32's top half). numpy is imported
here only, when bytes are converted.
"""

from __future__ import annotations

from typing import Any

CONVERTIBLE = ("float32", "bfloat16")


def to_half(raw: Any, dtype: str) -> memoryview:
    """The float16 bytes of ``raw`` (little-endian ``dtype`` elements), as a byte view."""
    import numpy as np

    if dtype == "float32":
        bits = np.frombuffer(raw, dtype="<u4")
    elif dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    else:
        raise ValueError(f"cannot convert {dtype} to float16")
    values = bits.view("<f4")
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype("<f2").view("<u2")
        # one float32 reduction (NaN propagates through min) says whether any NaN needs its
        # bits fixed; a mask is built only then (numpy's float16 isnan is ~6x slower)
        any_nan = values.size > 0 and bool(np.isnan(values.min()))
    if any_nan:
        nan = np.isnan(values)
        b = bits[nan]
        out[nan] = (((b >> 16) & 0x8000) | 0x7E00 | ((b >> 13) & 0x3FF)).astype(np.uint16)
    return memoryview(out).cast("B")
