"""The book-snapshot adapter."""

from __future__ import annotations

import numpy as np
import pytest

from hedgerd.book.greeks_book import (
    GREEK_FIELDS,
    NO_EXPIRY,
    ExpiryTable,
    Greeks,
    UnderlyingGreeks,
)
from hedgerd.hedging.adapter import risk_from_book

NOW = 1_800_000_000_000
DAY = 86_400_000


def _greeks(delta: float, gamma: float) -> Greeks:
    values = dict.fromkeys(GREEK_FIELDS, 0.0)
    for k in (
        "delta_usdnum_coin",
        "delta_coinnum_coin",
        "options_delta_usdnum_coin",
        "options_delta_coinnum_coin",
    ):
        values[k] = delta
    values["gamma_usdnum_coin_per_usd"] = gamma
    values["gamma_coinnum_coin_per_usd"] = gamma
    return Greeks(**values)


def test_risk_from_book_weights_tau_by_gamma_and_splits_the_settling_delta() -> None:
    buckets = [
        (NOW + 10 * 60_000, -0.8, -3e-4),
        (NOW + 30 * DAY, 0.3, -1e-4),
        (NO_EXPIRY, 0.5, 0.0),
    ]
    values = np.zeros((len(GREEK_FIELDS), len(buckets)))
    for i, (_, d, g) in enumerate(buckets):
        values[:, i] = [getattr(_greeks(d, g), f) for f in GREEK_FIELDS]
    ug = UnderlyingGreeks(
        underlying="BTC",
        index_price_usd=60_000.0,
        valued_at_ms=NOW,
        total=_greeks(0.0, -4e-4),
        by_expiry=ExpiryTable(
            np.array([b[0] for b in buckets], dtype=np.int64),
            np.array([True, False, False]),
            values,
        ),
        hedges=(),
        projected_delta_usdnum_coin=0.8,
        projected_delta_coinnum_coin=0.8,
        in_settlement_window=True,
        next_expiry_ms=NOW + 10 * 60_000,
        quarantined=(),
    )
    r = risk_from_book(ug, "usd", vol=0.55)
    assert r.net_delta_coin == 0.0 and r.expiring_delta_coin == pytest.approx(-0.8)
    assert r.next_settlement_ms == NOW + 10 * 60_000
    expected_tau = (3e-4 * (10 / 1440) + 1e-4 * 30) / 4e-4 / 365
    assert r.tau_years == pytest.approx(expected_tau)
    assert r.gamma_coin_per_usd == pytest.approx(-4e-4) and r.vol == 0.55
