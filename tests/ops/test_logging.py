"""Logging: JSON off a terminal, and secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging

import structlog

from hedgerd.ops.logging import REDACTED, configure_logging

SECRET = "sk-live-8c6976e5b5410415bde908bd4dee15df"


def test_json_lines_and_redaction_everywhere() -> None:
    out = io.StringIO()
    configure_logging("debug", "auto", secrets=[SECRET], stream=out)
    log = structlog.get_logger("t")
    log.info("order_sent", label="h-1", note=f"key={SECRET}", nested={"a": [SECRET]})
    log.info("auth", api_secret="whatever-value")
    try:
        raise RuntimeError(f"bad signature for {SECRET}")
    except RuntimeError:
        log.exception("venue_error")
    logging.getLogger("aiohttp.client").warning("header Authorization: %s", SECRET)
    text = out.getvalue()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"order_sent", "auth", "venue_error"} <= events
    first = lines[0]
    assert first["label"] == "h-1" and first["note"] == f"key={REDACTED}"
    assert first["nested"] == {"a": [REDACTED]}
    assert lines[1]["api_secret"] == REDACTED
    error = next(line for line in lines if line["event"] == "venue_error")
    assert "bad signature for " + REDACTED in error["exception"]
    stdlib = next(line for line in lines if "Authorization" in line["event"])
    assert stdlib["event"] == f"header Authorization: {REDACTED}"


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    structlog.get_logger().info("hidden")
    structlog.get_logger().warning("shown")
    assert "hidden" not in out.getvalue() and "shown" in out.getvalue()
