"""The simulated start of every test that runs a simulator with a calendar (option expiries,
the 08:00 UTC settlement, listings): pinned, never the wall clock, so that a test passes or
fails the same on every day it runs.

`HEDGERD_TEST_START` (an ISO 8601 UTC time, e.g. `2026-12-31T22:00:00Z`) moves it:
`scripts/calendar_check` runs the tests marked `calendar` at each of `CALENDAR_DATES`, so a
test that holds only on some days of the year cannot land. Tests that start a simulator read
`TEST_START_MS` and give the daemon the simulator's clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

ENV = "HEDGERD_TEST_START"

#: The start when `HEDGERD_TEST_START` is unset: a Monday, 00:00 UTC (the default scenario's).
DEFAULT_TEST_START = "2026-01-05T00:00:00Z"

#: The starts `scripts/calendar_check` runs the calendar-sensitive tests at, each with why.
CALENDAR_DATES: dict[str, str] = {
    "2026-01-05T00:00:00Z": "the default: a Monday, eight hours before a daily expiry",
    "2026-03-27T07:58:00Z": "two minutes before the 08:00 settlement of a quarterly expiry",
    "2026-04-30T23:30:00Z": "a month end, half an hour before the month turns",
    "2026-12-31T22:00:00Z": "a year end: expiries and listings roll into the next year",
    "2026-12-05T21:00:00Z": "a Saturday evening: the nearest expiry is 11 hours away",
}


def parse_start(text: str) -> int:
    """UTC epoch milliseconds of an ISO 8601 time; a time without a zone is refused (a
    local time would make the pin depend on the machine)."""
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"{ENV}={text!r}: give a UTC time such as 2026-12-31T22:00:00Z")
    return int(when.astimezone(UTC).timestamp() * 1000)


TEST_START_MS: int = parse_start(os.environ.get(ENV) or DEFAULT_TEST_START)
