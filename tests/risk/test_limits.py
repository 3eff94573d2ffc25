"""Kill-switch and alert settings: defaults valid and documented, trip states from
`DEFAULT_TRIP_STATE`, loopback-only webhooks, and the README table rendered from the models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from hedgerd.risk.limits import (
    AlertSettings,
    KillSwitchSettings,
    check_loopback_url,
    render_switch_table,
)
from hedgerd.risk.trading_state import DEFAULT_TRIP_STATE, ReasonCode

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- kill-switch-table:begin -->", "<!-- kill-switch-table:end -->"
# Reason codes raised by other parts, not by a configurable monitor.
NOT_SWITCHES = {ReasonCode.OPERATOR, ReasonCode.INSUFFICIENT_FUNDS, ReasonCode.COMPONENT_CRASH}


def _walk(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, info in model.model_fields.items():
        out.append((prefix + name, info))
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_walk(ann, prefix + name + "."))
    return out


def test_every_field_has_a_description() -> None:
    fields = _walk(KillSwitchSettings)
    assert len(fields) > 40
    missing = [name for name, info in fields if not (info.description or "").strip()]
    assert missing == []


def test_every_automatic_reason_code_has_exactly_one_switch() -> None:
    codes = [s.CODE for _, s in KillSwitchSettings().switches()]
    assert len(codes) == len(set(codes))
    assert set(codes) == set(ReasonCode) - NOT_SWITCHES


def test_default_trip_states_follow_the_state_machine() -> None:
    for key, switch in KillSwitchSettings().switches():
        assert switch.enabled, key
        assert switch.trip_state is DEFAULT_TRIP_STATE[switch.CODE], key


def test_sections_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="extra"):
        KillSwitchSettings.model_validate({"stale_data": {"market_stale_after": 5}})
    with pytest.raises(ValidationError):
        KillSwitchSettings.model_validate({"clock_skew": {"trips_to": "active"}})
    with pytest.raises(ValidationError):
        KillSwitchSettings.model_validate({"reject_streak": {"streak_limit": 0}})
    with pytest.raises(ValidationError, match="stale_after_s_by_feed"):
        KillSwitchSettings.model_validate({"stale_data": {"stale_after_s_by_feed": {"x": -1}}})
    with pytest.raises(ValidationError, match="per_minute <= per_hour"):
        KillSwitchSettings.model_validate({"order_rate": {"max_orders_per_minute": 2_000}})
    with pytest.raises(ValidationError, match="per_minute <= per_hour"):
        KillSwitchSettings.model_validate({"notional_rate": {"max_notional_usd_per_day": 1.0}})
    with pytest.raises(ValidationError):
        KillSwitchSettings().stale_data.market_stale_after_s = 1.0  # type: ignore[misc]


def test_settings_load_from_toml_shaped_data() -> None:
    data = {
        "delta_limit": {"hard_limit_coin_by_underlying": {"BTC": 10.0}, "hedge_attempts": 2},
        "alerts": {"command": ["/usr/bin/true"], "webhook_url": "http://[::1]:9000/hook"},
    }
    s = KillSwitchSettings.model_validate(data)
    assert s.delta_limit.hard_limit_coin_by_underlying == {"BTC": 10.0}
    assert s.alerts.command == ("/usr/bin/true",) and s.alerts.any_target


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/alert",
        "http://localhost/x",
        "https://LOCALHOST:443/x",
        "http://[::1]:9000/",
    ],
)
def test_loopback_webhooks_are_accepted(url: str) -> None:
    assert AlertSettings(webhook_url=url).webhook_url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/alert", "not local"),
        ("http://example.com/alert", "not local"),
        ("http://127.0.0.2/alert", "only 127.0.0.1"),
        ("http://localhost.evil.com/", "not local"),
        ("http://0.0.0.0:80/", "not local"),
        ("http://user:pw@127.0.0.1/", "credentials"),
        ("ftp://127.0.0.1/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://127.0.0.1:99999/", "port"),
    ],
)
def test_other_webhook_hosts_are_refused(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        AlertSettings(webhook_url=url)
    with pytest.raises(ValueError, match=why):
        check_loopback_url(url)


def test_alert_settings_validation() -> None:
    assert not AlertSettings().any_target
    with pytest.raises(ValidationError):
        AlertSettings(command=("",))
    with pytest.raises(ValidationError):
        AlertSettings(unix_socket_url_path="alert")
    with pytest.raises(ValidationError):
        AlertSettings(command_timeout_s=0)


def test_the_table_lists_every_switch_with_its_limits_and_state() -> None:
    table = render_switch_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(KillSwitchSettings().switches())
    for key, switch in KillSwitchSettings().switches():
        row = next(r for r in rows if r.startswith(f"| `{key}` |"))
        assert f"`{switch.CODE.value}`" in row
        assert row.endswith(f"| {switch.trips_to.upper()} |")
        for name in type(switch).model_fields:
            if name not in ("enabled", "trips_to"):
                assert f"`{name}` =" in row
        # Unescaped pipes inside a cell would break the table: 6 separators per row.
        assert len(re.findall(r"(?<!\\)\|", row)) == 6, row
    assert "`max_orders_per_minute` = 60" in table
    assert "`hard_limit_coin_by_underlying` = {BTC = 20, ETH = 500}" in table


def test_the_table_shows_configured_values() -> None:
    s = KillSwitchSettings.model_validate(
        {"clock_skew": {"skew_limit_ms": 250.0}, "margin": {"enabled": False}}
    )
    table = render_switch_table(s)
    assert "`skew_limit_ms` = 250" in table
    assert "| `margin` |" in table and "(disabled)" in table


def test_readme_table_is_current() -> None:
    """When the README carries the table between its markers, it must match the code (copy
    `render_switch_table()` output there)."""
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    if BEGIN not in text:
        pytest.skip("README has no kill-switch table markers yet")
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == render_switch_table().strip()
