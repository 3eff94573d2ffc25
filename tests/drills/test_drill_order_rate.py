"""The order-rate drill's arithmetic (`scripts/order_rate.py`; the full run is
`scripts/order_rate.py --duration 900 --speed 20`): the busiest sliding window as the budgets
judge it, the orders counted as `restore_rates` counts them (an intent closed unsent is
not), and the config it runs (maker on, budgets lifted) valid."""

from __future__ import annotations

from pathlib import Path

from drill_support import load_script

from hedgerd.execution.journal import DecisionRecord, JournalStore
from hedgerd.execution.order_state import Cancelled, OrderRecord, OrderStyle, Sent
from hedgerd.model.instruments import AmountUnit
from hedgerd.model.orders import OrderSide

rate = load_script("order_rate")


def test_busiest_counts_a_sliding_window() -> None:
    assert rate.busiest([], 60_000) == 0
    # The window is (t - 60 s, t]: 0 and 59,999 share one, 60,000's leaves 0 out.
    assert rate.busiest([0, 59_999, 60_000, 60_001, 200_000], 60_000) == 3
    assert rate.busiest([0, 59_999, 59_999, 200_000], 60_000) == 3
    assert rate.busiest([5, 5, 5], 1) == 3


def _order(label: str, created_ms: int, style: OrderStyle) -> OrderRecord:
    return OrderRecord(
        label=label,
        decision_id="d1",
        venue="sim",
        instrument="BTC-PERPETUAL",
        side=OrderSide.BUY,
        amount=1_000.0,
        amount_unit=AmountUnit.USD,
        limit_price=90_000.0,
        style=style,
        reduce_only=False,
        created_ms=created_ms,
    )


def test_rate_figures_count_the_orders_sent(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    store = JournalStore(path)
    orders = [
        _order("a", 1_000, OrderStyle.POST_ONLY),
        _order("b", 2_000, OrderStyle.POST_ONLY),
        _order("c", 3_000, OrderStyle.IOC_LIMIT),
        _order("refused", 4_000, OrderStyle.IOC_LIMIT),
        _order("later", 200_000, OrderStyle.IOC_LIMIT),
    ]
    store.record_intents(orders, DecisionRecord("d1", 1_000, "BTC", "band", {}))
    for o in orders[:3] + orders[4:]:
        store.apply_event(o.label, Sent(o.created_ms))
    store.apply_event("refused", Cancelled(4_000, "order_budget"))
    store.close()
    r = rate.rate_figures(path, 240.0)
    assert r["orders"] == 4 and r["busiest_minute"] == 3
    assert r["mean_per_minute"] == 1.0 and r["busiest_hour"] is None
    assert r["by_style"] == {"post_only": 2, "ioc_limit": 2}


def test_the_drill_config_turns_maker_on_and_lifts_the_budgets(tmp_path: Path) -> None:
    config = rate.drill_config(tmp_path, maker=True, budget=None)
    assert all(p.maker.enabled for p in config.hedging.policies.values())
    assert config.risk.order_rate.max_orders_per_minute == rate.LIFTED[0]
    kept = rate.drill_config(tmp_path, maker=False, budget=60).risk.order_rate
    assert (kept.max_orders_per_minute, kept.max_orders_per_hour) == (60, 1_200)


def test_the_drill_says_why_an_account_ended_not_active() -> None:
    margin = "okx USD: maintenance margin is 50.14% of equity (limit 50%)"
    r = {
        "orders": 10,
        "simulated_minutes": 54.0,
        "wall_s": 900.0,
        "speed": 20.0,
        "seed": 1,
        "maker": False,
        "budget_per_minute": None,
        "mean_per_minute": 0.19,
        "busiest_minute": 3,
        "busiest_hour": None,
        "busiest_day": None,
        "by_account": {},
        "by_style": {},
        "hedges": 8,
        "state": "ACTIVE",
        "account_states": {"sim": "ACTIVE", "okx": "REDUCE_ONLY"},
        "account_reasons": {"sim": "", "okx": f" (margin: {margin})"},
        "errors": 0,
    }
    last = rate.render(r).splitlines()[-1]
    assert f"accounts sim ACTIVE, okx REDUCE_ONLY (margin: {margin}); 0 errors" in last
