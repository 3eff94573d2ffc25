"""hedgerd.ops.metrics: names, units, label discipline and the state/kill-switch bookkeeping."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from hedgerd.ops.metrics import (
    DEFAULT_KILL_SWITCH_REASONS,
    Metrics,
    OrderLatencyStage,
    ThrottleLane,
    exported_sample_names,
)
from hedgerd.risk.trading_state import ReasonCode, TradingState


def _samples(metrics: Metrics) -> list[Sample]:
    text = generate_latest(metrics.registry).decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    hits = [s.value for s in _samples(metrics) if s.name == name and s.labels == labels]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_every_hedgerd_metric_names_a_unit_or_is_a_count() -> None:
    metrics = Metrics(process_metrics=False)
    unitless_ok = {
        "hedgerd_build_info",
        "hedgerd_open_orders",
        "hedgerd_trading_state",
        "hedgerd_trading_state_code",
        "hedgerd_account_trading_state_code",
        "hedgerd_kill_switch_tripped",
        "hedgerd_venue_connected",
        "hedgerd_ha_role_code",  # a code, like the trading state's
        "hedgerd_ha_epoch",  # a fencing token: a count of grants
        "hedgerd_mark_vol",  # a vol: a fraction per year, as vols are quoted
        "hedgerd_jump_skew",  # a log return (dimensionless, signed): no unit to name
    }
    # `_ratio`: dimensionless (Prometheus' base unit for ratios).
    units = (
        "_seconds",
        "_coin",
        "_usd",
        "_per_day",
        "_per_year",
        "_per_usd",
        "_per_sqrt_year",
        "_ratio",
    )
    families = list(metrics.registry.collect())
    assert len(families) >= 25
    for fam in families:
        assert fam.name.startswith("hedgerd_"), fam.name
        if fam.type == "counter":
            continue  # exported with _total; counts of things
        if fam.type == "info":
            continue
        assert fam.name in unitless_ok or fam.name.endswith(units), fam.name


def test_registries_are_independent() -> None:
    a, b = Metrics(process_metrics=False), Metrics(process_metrics=False)
    a.record_order_sent("deribit")
    assert _value(a, "hedgerd_orders_sent_total", venue="deribit") == 1.0
    assert not [s for s in _samples(b) if s.name == "hedgerd_orders_sent_total"]


def test_precreated_series_exist_at_zero() -> None:
    metrics = Metrics(underlyings=["BTC", "ETH"], venues=["deribit"])
    assert _value(metrics, "hedgerd_hedges_total", underlying="ETH", venue="deribit") == 0.0
    assert _value(metrics, "hedgerd_venue_connected", venue="deribit") == 0.0
    for reason in DEFAULT_KILL_SWITCH_REASONS:
        assert _value(metrics, "hedgerd_kill_switch_tripped", reason=reason) == 0.0
        assert _value(metrics, "hedgerd_kill_switch_trips_total", reason=reason) == 0.0
    for stage in OrderLatencyStage:
        assert (
            _value(metrics, "hedgerd_order_latency_seconds_count", venue="deribit", stage=stage)
            == 0.0
        )
    # Starts ACTIVE.
    assert _value(metrics, "hedgerd_trading_state_code") == 0.0
    assert _value(metrics, "hedgerd_trading_state", state="active") == 1.0


def test_greeks_band_and_divergence() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.set_greeks(
        "BTC", delta_coin=-0.25, gamma_coin_per_usd=1e-4, vega_usd=1234.5, theta_usd_per_day=-88.0
    )
    metrics.set_band("BTC", target_coin=0.0, lower_coin=-0.5, upper_coin=0.75)
    metrics.set_delta_divergence("deribit", "BTC", 0.01)
    assert _value(metrics, "hedgerd_delta_coin", underlying="BTC") == -0.25
    assert _value(metrics, "hedgerd_gamma_coin_per_usd", underlying="BTC") == 1e-4
    assert _value(metrics, "hedgerd_vega_usd", underlying="BTC") == 1234.5
    assert _value(metrics, "hedgerd_theta_usd_per_day", underlying="BTC") == -88.0
    assert _value(metrics, "hedgerd_delta_band_lower_coin", underlying="BTC") == -0.5
    assert _value(metrics, "hedgerd_delta_band_upper_coin", underlying="BTC") == 0.75
    assert _value(metrics, "hedgerd_delta_target_coin", underlying="BTC") == 0.0
    assert (
        _value(metrics, "hedgerd_delta_divergence_coin", venue="deribit", underlying="BTC") == 0.01
    )
    with pytest.raises(ValueError, match="lower <= target <= upper"):
        metrics.set_band("BTC", target_coin=1.0, lower_coin=-0.5, upper_coin=0.5)


def test_band_inputs_are_exported_per_underlying() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.set_band_inputs(
        "BTC",
        mark_vol=0.455,
        vol_of_vol_per_sqrt_year=0.0774,
        jump_var_ratio=1.42,
        jump_skew=-0.034,
        jump_rate_per_year=26.07,
    )
    metrics.set_band_inputs(
        "ETH",
        mark_vol=0.637,
        vol_of_vol_per_sqrt_year=0.0,
        jump_var_ratio=1.0,
        jump_skew=0.0,
        jump_rate_per_year=0.0,
    )
    assert _value(metrics, "hedgerd_mark_vol", underlying="BTC") == 0.455
    assert _value(metrics, "hedgerd_vol_of_vol_per_sqrt_year", underlying="BTC") == 0.0774
    assert _value(metrics, "hedgerd_jump_var_ratio", underlying="BTC") == 1.42
    assert _value(metrics, "hedgerd_jump_skew", underlying="BTC") == -0.034
    assert _value(metrics, "hedgerd_jump_rate_per_year", underlying="BTC") == 26.07
    assert _value(metrics, "hedgerd_mark_vol", underlying="ETH") == 0.637
    assert _value(metrics, "hedgerd_vol_of_vol_per_sqrt_year", underlying="ETH") == 0.0
    assert _value(metrics, "hedgerd_jump_var_ratio", underlying="ETH") == 1.0
    assert _value(metrics, "hedgerd_jump_skew", underlying="ETH") == 0.0
    assert _value(metrics, "hedgerd_jump_rate_per_year", underlying="ETH") == 0.0
    # The skew's bounds (`JUMP_SKEW_MAX`, 0.2) are in its range.
    for edge in (0.2, -0.2):
        metrics.set_band_inputs(
            "ETH",
            mark_vol=0.637,
            vol_of_vol_per_sqrt_year=0.0,
            jump_var_ratio=2.0,
            jump_skew=edge,
            jump_rate_per_year=0.0,
        )
        assert _value(metrics, "hedgerd_jump_skew", underlying="ETH") == edge


@pytest.mark.parametrize(
    "bad",
    [
        {"mark_vol": math.nan},
        {"mark_vol": math.inf},
        {"mark_vol": 0.0},
        {"vol_of_vol_per_sqrt_year": math.nan},
        {"vol_of_vol_per_sqrt_year": -0.1},
        {"jump_var_ratio": math.inf},
        {"jump_var_ratio": math.nan},
        {"jump_var_ratio": 0.99},
        {"jump_skew": math.inf},
        {"jump_skew": -math.inf},
        {"jump_skew": math.nan},
        {"jump_skew": 0.2001},
        {"jump_skew": -0.25},
        {"jump_rate_per_year": math.nan},
        {"jump_rate_per_year": math.inf},
        {"jump_rate_per_year": -1.0},
    ],
)
def test_band_inputs_refuse_non_finite_or_out_of_range_and_keep_the_last(
    bad: dict[str, float],
) -> None:
    metrics = Metrics(process_metrics=False)
    good = {
        "mark_vol": 0.5,
        "vol_of_vol_per_sqrt_year": 0.25,
        "jump_var_ratio": 1.25,
        "jump_skew": 0.05,
        "jump_rate_per_year": 13.0,
    }
    metrics.set_band_inputs("BTC", **good)
    with pytest.raises(ValueError, match="band inputs for BTC"):
        metrics.set_band_inputs("BTC", **{**good, **bad})
    # None of the five moved: a refused call sets nothing.
    assert _value(metrics, "hedgerd_mark_vol", underlying="BTC") == 0.5
    assert _value(metrics, "hedgerd_vol_of_vol_per_sqrt_year", underlying="BTC") == 0.25
    assert _value(metrics, "hedgerd_jump_var_ratio", underlying="BTC") == 1.25
    assert _value(metrics, "hedgerd_jump_skew", underlying="BTC") == 0.05
    assert _value(metrics, "hedgerd_jump_rate_per_year", underlying="BTC") == 13.0
    with pytest.raises(ValueError, match="underlying"):
        metrics.set_band_inputs("BTC ETH", **good)


def test_hedge_cost_and_rebates_are_separate_counters() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.record_hedge("BTC", "deribit", cost_usd=12.5, notional_usd=-50_000.0)
    metrics.record_hedge("BTC", "deribit", cost_usd=-1.5, notional_usd=10_000.0)
    labels = {"underlying": "BTC", "venue": "deribit"}
    assert _value(metrics, "hedgerd_hedges_total", **labels) == 2.0
    assert _value(metrics, "hedgerd_hedge_cost_usd_total", **labels) == 12.5
    assert _value(metrics, "hedgerd_hedge_rebates_usd_total", **labels) == 1.5
    assert _value(metrics, "hedgerd_hedge_notional_usd_total", **labels) == 60_000.0
    with pytest.raises(ValueError):
        metrics.record_hedge("BTC", "deribit", cost_usd=math.nan, notional_usd=1.0)


def test_latency_and_throttle_histograms() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.observe_order_latency("deribit", OrderLatencyStage.DECISION_TO_WIRE, 0.004)
    metrics.observe_order_latency("deribit", "wire_to_ack", 0.2)
    metrics.observe_throttle_wait("deribit", ThrottleLane.ORDERS, 0.0)
    metrics.observe_throttle_wait("deribit", "reads", 0.3)
    metrics.observe_journal_write(0.0007)
    assert (
        _value(
            metrics, "hedgerd_order_latency_seconds_bucket",
            venue="deribit", stage="decision_to_wire", le="0.005",
        )
        == 1.0
    )  # fmt: skip
    assert (
        _value(
            metrics, "hedgerd_order_latency_seconds_bucket",
            venue="deribit", stage="wire_to_ack", le="0.1",
        )
        == 0.0
    )  # fmt: skip
    assert (
        _value(metrics, "hedgerd_throttle_wait_seconds_bucket", venue="deribit", lane="orders",
               le="0.0")
        == 1.0
    )  # fmt: skip
    assert _value(metrics, "hedgerd_journal_write_seconds_count") == 1.0
    with pytest.raises(ValueError, match="stage"):
        metrics.observe_order_latency("deribit", "decision_to_fill", 0.1)
    with pytest.raises(ValueError, match="lane"):
        metrics.observe_throttle_wait("deribit", "bulk", 0.1)
    with pytest.raises(ValueError, match="finite"):
        metrics.observe_order_latency("deribit", "wire_to_ack", -0.001)


def test_trading_state_and_kill_switch_trips_count_transitions() -> None:
    metrics = Metrics(process_metrics=False)
    stale, skew = ReasonCode.STALE_DATA, ReasonCode.CLOCK_SKEW
    metrics.set_trading_state(TradingState.HALTED, [stale])
    metrics.set_trading_state(TradingState.HALTED, [stale, skew])  # same + one new
    metrics.set_trading_state(TradingState.REDUCE_ONLY, [skew])  # stale_data cleared
    metrics.set_trading_state("HALTED", ["STALE_DATA", "clock_skew"])  # names work too
    assert _value(metrics, "hedgerd_kill_switch_trips_total", reason="stale_data") == 2.0
    assert _value(metrics, "hedgerd_kill_switch_trips_total", reason="clock_skew") == 1.0
    assert _value(metrics, "hedgerd_kill_switch_tripped", reason="stale_data") == 1.0
    assert _value(metrics, "hedgerd_trading_state_code") == 2.0
    assert _value(metrics, "hedgerd_trading_state", state="halted") == 1.0
    assert _value(metrics, "hedgerd_trading_state", state="reduce_only") == 0.0
    metrics.set_trading_state(TradingState.ACTIVE, [])
    assert _value(metrics, "hedgerd_kill_switch_tripped", reason="stale_data") == 0.0
    assert _value(metrics, "hedgerd_kill_switch_tripped", reason="clock_skew") == 0.0
    assert _value(metrics, "hedgerd_trading_state_code") == 0.0
    # A reason code not known in advance is accepted and gets its series.
    metrics.set_trading_state(TradingState.HALTED, ["new_switch"])
    assert _value(metrics, "hedgerd_kill_switch_tripped", reason="new_switch") == 1.0


def test_state_code_matches_the_state_machines_severity() -> None:
    metrics = Metrics(process_metrics=False)
    for state in TradingState:
        metrics.set_trading_state(state, [])
        assert _value(metrics, "hedgerd_trading_state_code") == state.severity
    assert set(DEFAULT_KILL_SWITCH_REASONS) == {code.value for code in ReasonCode}


@pytest.mark.parametrize("reason", ["operator said stop", "", "stale data", "x" * 80])
def test_free_text_never_becomes_a_reason_label(reason: str) -> None:
    metrics = Metrics(process_metrics=False)
    with pytest.raises(ValueError, match="reason"):
        metrics.set_trading_state(TradingState.HALTED, [reason])


def test_unknown_state_and_bad_identifiers_are_refused() -> None:
    metrics = Metrics(process_metrics=False)
    with pytest.raises(ValueError, match="trading state"):
        metrics.set_trading_state("PAUSED", [])
    with pytest.raises(ValueError, match="venue"):
        metrics.record_order_sent('deribit"} 1\nfake_metric{a="')
    with pytest.raises(ValueError, match="underlying"):
        metrics.set_greeks("", delta_coin=0, gamma_coin_per_usd=0, vega_usd=0, theta_usd_per_day=0)


def test_errors_rejects_are_sanitised() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.record_reject("deribit", "not enough funds!")
    metrics.record_error("executor", "TimeoutError")
    assert (
        _value(metrics, "hedgerd_order_rejects_total", venue="deribit",
               reject_class="not_enough_funds")
        == 1.0
    )  # fmt: skip
    assert (
        _value(metrics, "hedgerd_errors_total", component="executor", error_class="TimeoutError")
        == 1.0
    )


def test_venue_disconnects_count_falling_edges_only() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.set_venue_connected("deribit", False)  # never was up: no disconnect
    metrics.set_venue_connected("deribit", True)
    metrics.set_venue_connected("deribit", True)
    metrics.set_venue_connected("deribit", False)
    metrics.set_venue_connected("deribit", False)
    assert _value(metrics, "hedgerd_venue_disconnects_total", venue="deribit") == 1.0
    assert _value(metrics, "hedgerd_venue_connected", venue="deribit") == 0.0


def test_data_age_reconciliation_open_orders() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.set_data_age("deribit", "positions", 1.5)
    metrics.set_data_age("deribit", "ticker", math.inf)
    metrics.record_reconciliation("deribit", position_mismatches=1)
    metrics.record_reconciliation("deribit")
    metrics.set_open_orders("deribit", 3)
    assert _value(metrics, "hedgerd_data_age_seconds", venue="deribit", feed="positions") == 1.5
    assert _value(metrics, "hedgerd_data_age_seconds", venue="deribit", feed="ticker") == math.inf
    assert _value(metrics, "hedgerd_reconciliation_runs_total", venue="deribit") == 2.0
    assert (
        _value(metrics, "hedgerd_reconciliation_mismatches_total", venue="deribit",
               kind="position")
        == 1.0
    )  # fmt: skip
    assert _value(metrics, "hedgerd_open_orders", venue="deribit") == 3.0
    with pytest.raises(ValueError):
        metrics.set_data_age("deribit", "ticker", -1.0)


def test_scrape_hooks_run_and_a_failing_hook_is_counted() -> None:
    metrics = Metrics(process_metrics=False)
    calls: list[int] = []

    def boom() -> None:
        raise RuntimeError("nope")

    metrics.add_scrape_hook(lambda: calls.append(1))
    metrics.add_scrape_hook(boom)
    metrics.run_scrape_hooks()
    assert calls == [1]
    assert (
        _value(metrics, "hedgerd_errors_total", component="metrics", error_class="RuntimeError")
        == 1.0
    )


def test_exported_sample_names_cover_untouched_label_sets() -> None:
    names = exported_sample_names(Metrics(process_metrics=False).registry)
    for expected in (
        "hedgerd_delta_coin",
        "hedgerd_hedge_cost_usd_total",
        "hedgerd_order_latency_seconds_bucket",
        "hedgerd_order_latency_seconds_count",
        "hedgerd_build_info",
        "hedgerd_kill_switch_trips_total",
        "hedgerd_mark_vol",
        "hedgerd_vol_of_vol_per_sqrt_year",
        "hedgerd_jump_var_ratio",
        "hedgerd_jump_skew",
    ):
        assert expected in names
    assert "hedgerd_delta_coin_total" not in names


def test_ha_metrics() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.set_ha(3, 7, 0.4, 1_796_531_409_000)
    metrics.record_ha_event("ha_failover")
    assert _value(metrics, "hedgerd_ha_role_code") == 3.0
    assert _value(metrics, "hedgerd_ha_epoch") == 7.0
    assert _value(metrics, "hedgerd_ha_lease_age_seconds") == 0.4
    assert _value(metrics, "hedgerd_ha_last_failover_timestamp_seconds") == 1_796_531_409.0
    assert _value(metrics, "hedgerd_ha_events_total", kind="ha_failover") == 1.0
