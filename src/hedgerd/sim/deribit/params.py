"""Request parameters: coercion of JSON values and HTTP query strings (always strings) into
typed values, raising Deribit's `-32602 Invalid params` for anything malformed."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from hedgerd.sim.protocol import ERR_INVALID_ARGUMENTS, DeribitError


def invalid(param: str, reason: str = "wrong format") -> DeribitError:
    """Deribit's error for a bad parameter."""
    return DeribitError(ERR_INVALID_ARGUMENTS, "Invalid params", {"reason": reason, "param": param})


def get_str(
    params: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    default: str | None = None,
    choices: Collection[str] | None = None,
    max_len: int = 256,
) -> str | None:
    """A string parameter (numbers are not accepted as strings: Deribit is strict)."""
    v = params.get(name)
    if v is None:
        if required:
            raise invalid(name, "value required")
        return default
    if not isinstance(v, str):
        raise invalid(name)
    if len(v) > max_len:
        raise invalid(name, "too long")
    if choices is not None and v not in choices:
        raise invalid(name, "invalid value")
    return v


def req_str(params: Mapping[str, Any], name: str, **kw: Any) -> str:
    v = get_str(params, name, required=True, **kw)
    assert v is not None
    return v


def get_float(
    params: Mapping[str, Any], name: str, *, required: bool = False, default: float | None = None
) -> float | None:
    """A finite number; strings like '10' or '0.5' are accepted (HTTP query strings)."""
    v = params.get(name)
    if v is None:
        if required:
            raise invalid(name, "value required")
        return default
    if isinstance(v, bool):
        raise invalid(name)
    if isinstance(v, int | float):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            raise invalid(name) from None
    else:
        raise invalid(name)
    if not math.isfinite(x):
        raise invalid(name)
    return x


def get_int(
    params: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    default: int | None = None,
    lo: int | None = None,
    hi: int | None = None,
) -> int | None:
    """An integer (integral floats and digit strings accepted), optionally bounded."""
    x = get_float(params, name, required=required, default=None)
    if x is None:
        return default
    if not x.is_integer() or abs(x) > 2**62:
        raise invalid(name)
    n = int(x)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise invalid(name, "out of range")
    return n


def get_bool(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """A boolean: JSON true/false or the strings 'true'/'false' (HTTP)."""
    v = params.get(name)
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s == "true":
            return True
        if s == "false":
            return False
    raise invalid(name)
