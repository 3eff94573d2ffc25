"""One way to turn a pydantic ValidationError into lines an operator can act on: each names
the full key, the value (masked when the key looks secret) and what was expected."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

_SECRET_WORDS = ("secret", "token", "key", "password")


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key, the value and what was
    expected, one problem per line. (Defined here, re-exported by `hedgerd.config`, so that
    `hedgerctl` can catch it without importing the settings and what they pull in.)"""


def describe_validation_error(
    exc: ValidationError, prefix: str = "", skip_parts: Collection[str] = ()
) -> list[str]:
    """One line per problem. `prefix` is prepended to every key (e.g. "hedging");
    `skip_parts` are location parts that are not keys the user wrote (the tags pydantic puts
    in the location of a discriminated union)."""
    lines = []
    for err in exc.errors():
        parts = [prefix] if prefix else []
        parts += [str(p) for p in err["loc"] if not _is_tag(p, skip_parts)]
        key = ".".join(parts) or "(top level)"
        shown = _shown(key, err.get("input"))
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (value {shown}); check the spelling")
        elif err["type"] == "missing":
            lines.append(f"{key}: required but missing")
        else:
            lines.append(f"{key} = {shown}: {err['msg']}")
    return lines


def _is_tag(part: Any, skip_parts: Collection[str]) -> bool:
    return isinstance(part, str) and part in skip_parts


def _shown(key: str, value: Any) -> str:
    if isinstance(value, dict):
        return "{...}"
    if any(word in key.lower() for word in _SECRET_WORDS):
        return "<secret>"
    return repr(value)
