"""A ticker the adapter cannot use (no mark: a worthless option's rounds to 0 on every tick) is
dropped and logged once per instrument until a good one arrives, not ten times a second."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from hedgerd.config import VenueSettings
from hedgerd.venues.deribit import DeribitVenue

NAME = "BTC-22NOV26-101500-C"


def _ticker(mark: float) -> dict[str, Any]:
    return {
        "instrument_name": NAME,
        "mark_price": mark,
        "index_price": 93_000.0,
        "underlying_price": 93_000.0,
        "mark_iv": 80.0,
        "timestamp": 1_790_000_000_000,
    }


async def test_a_refused_ticker_is_logged_once_until_a_good_one() -> None:
    settings = VenueSettings(
        mode="sim", rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9", underlyings=("BTC",)
    )
    venue = DeribitVenue("t", settings, private_stream=False)
    with capture_logs() as logs:
        for _ in range(5):
            venue._on_ticker(_ticker(0.0))
        venue._on_ticker(_ticker(0.0001))
        venue._on_ticker(_ticker(0.0))
    refused = [e for e in logs if e["event"] == "deribit.ticker_refused"]
    assert [e["instrument"] for e in refused] == [NAME, NAME]  # first, and after the good one
    assert venue.pending_events() >= 1  # the good ticker went through
