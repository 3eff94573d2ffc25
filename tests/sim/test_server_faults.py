"""The fault injector on its own: filters, counts, schedules and one-shot kinds."""

from __future__ import annotations

import pytest

from hedgerd.sim.faults import FaultError, FaultInjector

T0 = 1_767_571_200_000


def test_filters_count_and_defaults() -> None:
    fi = FaultInjector(seed=1)
    fi.add({"kind": "order_reject", "count": 2}, T0)
    fi.add({"kind": "latency", "ms": 100, "methods": ["public/*"], "transport": "ws"}, T0)
    assert fi.for_request("public/ticker", "http", T0).fired == []  # transport filter
    assert fi.for_request("public/ticker", "ws", T0).latency_s == pytest.approx(0.1)
    assert fi.for_request("private/get_positions", "http", T0).reject is None  # not an order
    first = fi.for_request("private/buy", "http", T0)
    assert first.reject == {
        "code": 11030,
        "message": "other_reject",
        "data": {"reason": "injected fault"},
    }
    assert fi.for_request("private/sell", "http", T0).reject is not None
    assert fi.for_request("private/buy", "http", T0).reject is None  # count spent
    assert [f["kind"] for f in fi.to_json()] == ["latency"]


def test_schedule_duration_and_timed_ws_drops() -> None:
    fi = FaultInjector()
    fi.add({"kind": "ws_drop", "after_s": 10, "duration_s": 25, "every_s": 10}, T0)
    fi.add({"kind": "freeze_market_data", "after_s": 5, "duration_s": 5}, T0)
    assert not fi.tick(T0).drop_all_ws and not fi.market_frozen(T0)
    assert fi.market_frozen(T0 + 5_000) and not fi.market_frozen(T0 + 10_000)
    drops = [t for t in range(0, 40_000, 1_000) if fi.tick(T0 + t).drop_all_ws]
    assert drops == [10_000, 20_000, 30_000]  # every 10 s while it lasts (10 s .. 35 s)
    assert fi.to_json() == []


def test_one_shot_kinds() -> None:
    fi = FaultInjector()
    fi.add({"kind": "stale_market_data"}, T0)
    fi.add({"kind": "price_gap", "currency": "ETH", "pct": 3.5, "after_s": 1}, T0)
    assert fi.market_stale(T0)
    assert fi.tick(T0 + 1_000).price_gaps == [("ETH", 3.5)]
    assert fi.tick(T0 + 2_000).price_gaps == []  # once
    fi.add({"kind": "clear"}, T0 + 2_000)
    fi.tick(T0 + 2_000)
    assert not fi.market_stale(T0 + 2_000) and fi.to_json() == []


def test_bad_descriptions_are_refused() -> None:
    fi = FaultInjector()
    for spec in (
        {"kind": "meteor"},
        {"kind": "latency", "probability": 2},
        {"kind": "latency", "transport": "udp"},
    ):
        with pytest.raises(FaultError):
            fi.add(spec, T0)
