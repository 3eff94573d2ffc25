"""`hedgerctl status` shows the HA line (role, epoch, lease age, last failover) when HA is on,
and `hedgerctl handoff` confirms what it released."""

from __future__ import annotations

from hedgerd.control.render import render_ha, render_result


def test_ha_line() -> None:
    doc = {
        "ha": {
            "role": "standby",
            "epoch": 0,
            "lease_age_ms": None,
            "last_failover_ms": None,
            "db_reachable": False,
        }
    }
    assert render_ha(doc) == [
        "HA  standby  epoch 0  lease age -  last failover never  DATABASE UNREACHABLE"
    ]
    active = {"ha": {"role": "active", "epoch": 7, "lease_age_ms": 412, "last_failover_ms": 0}}
    assert render_ha(active) == [
        "HA  active  epoch 7  lease age 0.4 s  last failover 1970-01-01 00:00:00Z"
    ]
    assert render_ha({}) == []  # HA off: no line


def test_handoff_result() -> None:
    assert render_result("handoff", {"handed_off": True, "epoch": 3}) == (
        "handoff: lease of epoch 3 released"
    )
    assert "does not hold" in render_result("handoff", {"handed_off": False, "epoch": 0})
