"""Numbers out of venue JSON, the same way for every venue."""

from __future__ import annotations

import math
from typing import Any


def as_float(value: Any, default: float = math.nan) -> float:
    """A finite float from a JSON value (a number or a numeric string), else `default`.
    JSON true/false are not numbers (Python would read them as 1 and 0); None, `""` (OKX's
    empty field) and non-numbers give `default`."""
    if isinstance(value, bool):
        return default
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a huge JSON integer
        return default
    return x if math.isfinite(x) else default
