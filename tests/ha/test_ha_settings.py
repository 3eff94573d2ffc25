"""`[ha]` settings: HA needs a PostgreSQL journal and consistent lease timings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hedgerd.config import HedgerdConfig
from hedgerd.ha.settings import HaSettings

VENUES = {"d": {"mode": "sim", "underlyings": ["BTC"]}}


def test_ha_needs_a_postgres_journal() -> None:
    with pytest.raises(ValidationError, match=r"ha.enabled needs a PostgreSQL journal"):
        HedgerdConfig(venues=VENUES, ha={"enabled": True})
    cfg = HedgerdConfig(
        venues=VENUES, ha={"enabled": True}, journal={"url": "postgresql://h@db:5432/h"}
    )
    assert cfg.ha.enabled


def test_inconsistent_timings_are_refused() -> None:
    with pytest.raises(ValidationError, match="duration_ms - margin_ms must exceed"):
        HaSettings(lease_ms=2_000)
    with pytest.raises(ValidationError, match="must time out before the next one"):
        HaSettings(renew_timeout_ms=1_000)


def test_holder_and_takeover_wait() -> None:
    s = HaSettings(node_id="db-a", margin_ms=1_200)
    assert s.holder().startswith("db-a:")
    assert s.takeover_wait_s() == 1.2
    assert HaSettings(takeover_wait_ms=0).takeover_wait_s() == 0.0
