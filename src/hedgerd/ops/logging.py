"""Structured logging: JSON lines when not on a terminal, readable console otherwise.

Every log line passes `SecretRedactor`, which replaces each configured secret wherever it
appears (values, nested containers, exception text) and blanks keys that name a secret, so a
secret that reaches a log call by mistake still never reaches the log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
_SECRET_KEY_WORDS = ("secret", "token", "password", "api_key", "apikey", "authorization")


class SecretRedactor:
    """structlog processor that removes secrets from every event.

    `secrets` are the clear values to hide (from `HedgerdConfig.secret_values()`); they can be
    replaced at run time (SIGHUP reload) with `update`.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._clean(key, event_dict[key])
        return event_dict

    def redact_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _clean(self, key: str, value: Any) -> Any:
        lowered = key.lower() if isinstance(key, str) else ""
        if any(word in lowered for word in _SECRET_KEY_WORDS) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean("", v) for v in value]
        if isinstance(value, BaseException):
            return self.redact_text(repr(value))
        return value


_redactor = SecretRedactor()


def redactor() -> SecretRedactor:
    """The process-wide redactor used by `configure_logging`."""
    return _redactor


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and the stdlib root logger, for libraries) once per process.

    `fmt` is "json", "console" or "auto" (console when `stream` is a terminal).
    """
    out = stream if stream is not None else sys.stderr
    _redactor.update(secrets)
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    # format_exc_info renders tracebacks to text before redaction sees them.
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _redactor,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Route stdlib logging (aiohttp, asyncio) through the same redaction and format.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *processors,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
