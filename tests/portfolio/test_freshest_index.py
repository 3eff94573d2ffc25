"""The portfolio's index of an underlying across accounts: the freshest venue's, so one
venue's stale feed does not price the whole portfolio (it was the first account's)."""

from __future__ import annotations

import math

from hedgerd.portfolio.hedge_loop import freshest_index


def test_the_freshest_venue_index_wins_a_stale_first_account_does_not() -> None:
    stale_first, fresh_second = (90_000.0, 1_000), (90_450.0, 61_000)
    assert freshest_index([stale_first, fresh_second]) == 90_450.0
    assert freshest_index([fresh_second, stale_first]) == 90_450.0


def test_no_price_no_time_and_ties() -> None:
    assert math.isnan(freshest_index([]))
    assert math.isnan(freshest_index([(math.nan, 5_000)]))
    assert freshest_index([(math.nan, 9_000), (89_000.0, None)]) == 89_000.0
    assert freshest_index([(89_000.0, 7_000), (89_100.0, 7_000)]) == 89_000.0
