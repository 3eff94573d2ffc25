"""Secrets kept in files (systemd credentials, Docker secrets): one reader for every such key."""

from __future__ import annotations

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


__all__ = ["read_secret_file"]
