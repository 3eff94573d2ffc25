"""The pinned calendar of the tests: no test starts a simulator on the wall clock's date, the
pin parses only UTC times, and what uses it is marked for `scripts/calendar_check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import uses_pinned_calendar
from pinned_clock import CALENDAR_DATES, DEFAULT_TEST_START, parse_start

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# The one test whose subject is what "now" means.
NOW_ALLOWED = {TESTS / "sim" / "test_server_scenario.py"}
NOW_START = re.compile(r"""start_ms\s*=\s*["']now["']|--start-ms["']?\s*,\s*["']now""")


def test_no_test_starts_a_simulator_on_todays_date() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted(TESTS.rglob("*.py"))
        if path not in NOW_ALLOWED
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if NOW_START.search(line)
    ]
    assert offenders == [], "use pinned_clock.TEST_START_MS: " + ", ".join(offenders)


def test_the_start_parses_utc_only() -> None:
    assert parse_start("2026-01-05T00:00:00Z") == 1_767_571_200_000
    assert parse_start("2026-01-05T01:00:00+01:00") == 1_767_571_200_000
    with pytest.raises(ValueError, match="UTC"):
        parse_start("2026-01-05T00:00:00")
    assert parse_start(DEFAULT_TEST_START) in {parse_start(d) for d in CALENDAR_DATES}


def test_what_uses_the_pin_is_marked_calendar(request: pytest.FixtureRequest) -> None:
    assert uses_pinned_calendar({"TEST_START_MS": 1})
    assert uses_pinned_calendar({"f": parse_start})
    assert not uses_pinned_calendar({"re": re, "Path": Path})
    # This module takes from pinned_clock itself, so the hook marked it.
    assert request.node.get_closest_marker("calendar") is not None
