"""The fault injector on its own: filters, counts, schedules and one-shot kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hedgerd.sim.faults import DepthCap, FaultError, FaultInjector, offset_summary
from hedgerd.sim.scenario import load_scenario

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


def test_venue_state_kinds() -> None:
    fi = FaultInjector(seed=1)
    assert not fi.drop_notification("user.changes.future.BTC", "mm", T0)
    fi.add({"kind": "drop_notifications", "account": "mm", "count": 2}, T0)
    assert not fi.drop_notification("user.changes.future.BTC", "other", T0)  # account filter
    assert not fi.drop_notification("user.orders.future.BTC", "mm", T0)  # default channels
    assert fi.drop_notification("user.portfolio.btc", "mm", T0)
    assert fi.drop_notification("user.changes.option.BTC", "mm", T0)
    assert not fi.drop_notification("user.changes.option.BTC", "mm", T0)  # count spent
    fi.add({"kind": "drop_notifications", "channels": "user.orders.*", "after_s": 5}, T0)
    assert not fi.drop_notification("user.orders.future.BTC", "x", T0)
    assert fi.drop_notification("user.orders.future.BTC", "x", T0 + 5_000)

    fi.add({"kind": "portfolio_delta_offset", "offset_coin": 1.5, "currency": "btc"}, T0)
    fi.add({"kind": "portfolio_delta_offset", "offset_coin": -0.5, "duration_s": 1}, T0)
    assert fi.delta_offset_coin("BTC", "mm", T0) == 1.0  # offsets add up
    assert fi.delta_offset_coin("ETH", "mm", T0) == -0.5
    assert fi.delta_offset_coin("BTC", "mm", T0 + 1_000) == 1.5  # the second one ended

    assert fi.depth_caps(T0) == ()
    fi.add({"kind": "thin_depth", "depth_amount": 20, "instruments": "BTC-*"}, T0)
    (cap,) = fi.depth_caps(T0)
    assert cap == DepthCap(("BTC-*",), 20.0, "both")
    assert cap.matches("BTC-PERPETUAL") and not cap.matches("ETH-PERPETUAL")


def test_offset_summary_shifts_only_the_delta_fields() -> None:
    summary = {
        "currency": "BTC",
        "delta_total": 1.0,
        "projected_delta_total": 0.5,
        "options_delta": -2,
        "delta_total_map": {"btc_usd": 1.0},
        "equity": 10.0,
    }
    out = offset_summary(summary, 3.0)
    assert out == {
        "currency": "BTC",
        "delta_total": 4.0,
        "projected_delta_total": 3.5,
        "options_delta": 1.0,
        "delta_total_map": {"btc_usd": 4.0},
        "equity": 10.0,
    }
    assert summary["delta_total"] == 1.0  # a copy


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "drop_notifications", "channels": [1]},
        {"kind": "portfolio_delta_offset", "offset_coin": "nan"},
        {"kind": "portfolio_delta_offset", "offset_coin": "lots"},
        {"kind": "thin_depth", "depth_amount": -1},
        {"kind": "thin_depth", "side": "middle"},
    ],
)
def test_bad_venue_state_parameters_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(FaultError):
        FaultInjector().add(spec, T0)


def test_venue_state_kinds_from_a_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "thin.toml"
    path.write_text(
        '[[faults]]\nafter_s = 60\nduration_s = 30\nkind = "thin_depth"\n'
        'params = { depth_amount = 10, side = "asks" }\n'
        '[[faults]]\nafter_s = 0\nkind = "drop_notifications"\n'
        'params = { channels = ["user.changes.*"] }\n',
        encoding="utf-8",
    )
    sc = load_scenario(path)
    fi = FaultInjector()
    for spec in sc.faults:
        fi.add_scheduled(spec, sc.start_ms)
    assert fi.depth_caps(sc.start_ms) == ()
    assert fi.depth_caps(sc.start_ms + 60_000) == (DepthCap(("*",), 10.0, "asks"),)
    assert fi.depth_caps(sc.start_ms + 90_000) == ()
    assert fi.drop_notification("user.changes.any.BTC", "mm", sc.start_ms)
    assert not fi.drop_notification("user.portfolio.btc", "mm", sc.start_ms)
