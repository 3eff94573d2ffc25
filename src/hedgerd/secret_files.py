"""Secrets kept in files (systemd credentials, Docker secrets): one reader for every such key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr


def read_secret_file(path: Path) -> SecretStr:
    """The secret `path` holds, surrounding whitespace (a trailing newline) stripped.

    Raises ValueError naming the file and the OS error, never the content.
    """
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None


def env_secret(
    name: str, file_name: str, environ: Mapping[str, str] = os.environ
) -> SecretStr | None:
    """A secret given to a tool the way the daemon's config takes it: the variable `name`
    itself, else the file the variable `file_name` names; None when neither is set.

    Raises ValueError (from `read_secret_file`) when the named file cannot be read.
    """
    value = environ.get(name)
    if value:
        return SecretStr(value)
    path = environ.get(file_name)
    return read_secret_file(Path(path)) if path else None


__all__ = ["env_secret", "read_secret_file"]
