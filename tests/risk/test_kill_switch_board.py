"""The board with the real trading state machine and a real journal in a temporary directory:
every switch, tripped through the board, changes the state, blocks new orders (`allows` and the
board's pre-trade check), survives a restore from the journal, logs `kill_switch_tripped` with
its numbers, updates the metrics and reaches the alert hook once."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hedgerd.execution.journal import DecisionRecord, Journal
from hedgerd.execution.order_state import (
    Cancelled,
    OrderRecord,
    OrderStyle,
    QueryResult,
    Rejected,
    Sent,
)
from hedgerd.model.instruments import AmountUnit, Instrument, InstrumentKind, PriceUnit
from hedgerd.model.orders import Fill, OrderSide, OrderStatus
from hedgerd.ops.metrics import Metrics
from hedgerd.risk.kill_switches import (
    MINUTE_MS,
    KillSwitchBoard,
    MarginInputs,
    OrderCheck,
    PnlEstimate,
    PositionDiff,
    Trip,
)
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import (
    OrderKind,
    ReasonCode,
    TradingState,
    TradingStateMachine,
    allows,
    operator_actor,
)
from journal_backends import JournalBackend

T0 = 1_700_000_000_000
LINEAR = Instrument(
    venue="deribit", name="BTC_USDC-PERPETUAL", kind=InstrumentKind.PERPETUAL, underlying="BTC",
    quote_currency="USDC", settlement_currency="USDC", inverse=False, contract_size=0.001,
    amount_unit=AmountUnit.COIN, min_amount=0.001, amount_step=0.001, tick_size=1.0,
    price_unit=PriceUnit.USD,
)  # fmt: skip
A, R, H = TradingState.ACTIVE, TradingState.REDUCE_ONLY, TradingState.HALTED


@pytest.fixture(autouse=True)
def _default_logging(default_logging: None) -> None:
    """Every test here asserts on logs (the root conftest's `default_logging`)."""


class Alerts:
    def __init__(self) -> None:
        self.trips: list[tuple[Trip, int]] = []

    def notify_trip(self, trip: Trip, ts_ms: int) -> None:
        self.trips.append((trip, ts_ms))

    def notify_text(self, kind: str, detail: str, ts_ms: int = 0) -> bool:
        return True


@dataclass
class Rig:
    journal: Journal
    machine: TradingStateMachine
    board: KillSwitchBoard
    alerts: Alerts
    metrics: Metrics


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await Journal.open(tmp_path / "journal.sqlite", clock_ms=lambda: T0)
    yield j
    await j.close()


async def make_rig(journal: Journal, settings: KillSwitchSettings | None = None) -> Rig:
    machine = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
    alerts = Alerts()
    metrics = Metrics(process_metrics=False)
    board = KillSwitchBoard(
        settings or KillSwitchSettings(), machine, alerts=alerts, metrics=metrics
    )
    return Rig(journal, machine, board, alerts, metrics)


@pytest.fixture
async def rig(journal: Journal) -> Rig:
    return await make_rig(journal)


def order(
    board: KillSwitchBoard,
    now_ms: int = T0,
    *,
    notional_usd: float = 10_000.0,
    price_usd: float = 100_000.0,
    before: float = 1.0,
    after: float = 2.0,
    kind: OrderKind = OrderKind.NEW,
    flatten: bool = False,
) -> OrderCheck:
    return board.check_order(
        now_ms=now_ms,
        notional_usd=notional_usd,
        price_usd=price_usd,
        reference_price_usd=100_000.0,
        delta_before_coin=before,
        delta_after_coin=after,
        kind=kind,
        is_operator_flatten=flatten,
    )


# Each scenario drives the board until its switch trips; just before that, it must not have.


def stale(b: KillSwitchBoard) -> None:
    b.on_data("deribit", "ticker", T0)
    assert b.tick(T0 + 4_999) == ()
    b.tick(T0 + 5_000)


def disconnected(b: KillSwitchBoard) -> None:
    b.on_connection("deribit", True, T0)
    b.on_connection("deribit", False, T0 + 1)
    assert b.tick(T0 + 30_000) == ()
    b.tick(T0 + 30_001)


def mismatch(b: KillSwitchBoard) -> None:
    assert b.on_reconciliation(T0, "deribit", [PositionDiff("BTC-PERPETUAL", 1.0, 1.0)]) is None
    # Default: two reconciliations in a row (one may be a fill racing the snapshot).
    assert b.on_reconciliation(T0, "deribit", [PositionDiff("BTC-PERPETUAL", 1.0, 0.5)]) is None
    b.on_reconciliation(T0, "deribit", [PositionDiff("BTC-PERPETUAL", 1.0, 0.5)])


def divergence(b: KillSwitchBoard) -> None:
    assert b.on_greeks(T0, "deribit", "BTC", 2.0, 1.0) is None
    b.on_greeks(T0 + 15_000, "deribit", "BTC", 2.0, 1.0)


def delta_limit(b: KillSwitchBoard) -> None:
    assert b.on_delta(T0, "BTC", 25.0, 100_000.0) is None
    for _ in range(2):
        b.on_hedge_sent("BTC")
    assert b.on_delta(T0 + 1, "BTC", 25.0, 100_000.0) is None
    b.on_hedge_sent("BTC")
    b.on_delta(T0 + 2, "BTC", 25.0, 100_000.0)


def reject_streak(b: KillSwitchBoard) -> None:
    for _ in range(4):
        assert b.on_order_outcome(T0, False, "not_enough_funds") is None
    b.on_order_outcome(T0, False, "not_enough_funds")


def order_rate(b: KillSwitchBoard) -> None:
    budget = b.settings.order_rate.max_orders_per_minute
    for i in range(budget):
        assert order(b, T0 + i).allowed
    check = order(b, T0 + budget)
    assert not check.allowed and check.code is ReasonCode.ORDER_RATE


def notional_rate(b: KillSwitchBoard) -> None:
    for i in range(4):
        assert order(b, T0 + i, notional_usd=500_000.0).allowed
    check = order(b, T0 + 5, notional_usd=0.01)
    assert not check.allowed and check.code is ReasonCode.NOTIONAL_RATE


def order_notional(b: KillSwitchBoard) -> None:
    assert order(b, notional_usd=500_000.0).allowed
    check = order(b, notional_usd=500_000.01)
    assert not check.allowed and check.code is ReasonCode.ORDER_NOTIONAL


def price_sanity(b: KillSwitchBoard) -> None:
    assert b.on_price(T0, "deribit:btc_usd:index", 100_000.0).accepted
    verdict = b.on_price(T0 + 1_000, "deribit:btc_usd:index", math.nan)
    assert not verdict.accepted


def daily_loss(b: KillSwitchBoard) -> None:
    assert b.on_daily_pnl(T0, PnlEstimate(-99_999.0)) is None
    b.on_daily_pnl(T0, PnlEstimate(-100_000.0))


def daily_loss_unknown(b: KillSwitchBoard) -> None:
    b.on_daily_pnl(T0, PnlEstimate(None, ("mark:BTC-PERPETUAL",)))


def margin(b: KillSwitchBoard) -> None:
    assert b.on_margin(T0, MarginInputs("deribit", "BTC", 10.0, 4.0)) is None
    b.on_margin(T0, MarginInputs("deribit", "BTC", 10.0, 5.0))


def clock_skew(b: KillSwitchBoard) -> None:
    assert b.on_clock(T0 + 999, "deribit", T0) is None
    b.on_clock(T0 + 1_000, "deribit", T0)


SCENARIOS: list[tuple[Callable[[KillSwitchBoard], None], ReasonCode, TradingState]] = [
    (stale, ReasonCode.STALE_DATA, H),
    (disconnected, ReasonCode.VENUE_DISCONNECTED, H),
    (mismatch, ReasonCode.POSITION_MISMATCH, H),
    (divergence, ReasonCode.GREEKS_DIVERGENCE, H),
    (delta_limit, ReasonCode.DELTA_LIMIT, H),
    (reject_streak, ReasonCode.REJECT_STREAK, H),
    (order_rate, ReasonCode.ORDER_RATE, H),
    (notional_rate, ReasonCode.NOTIONAL_RATE, H),
    (order_notional, ReasonCode.ORDER_NOTIONAL, H),
    (price_sanity, ReasonCode.PRICE_SANITY, H),
    (daily_loss, ReasonCode.DAILY_LOSS, H),
    (daily_loss_unknown, ReasonCode.DAILY_LOSS, H),
    (margin, ReasonCode.MARGIN, R),
    (clock_skew, ReasonCode.CLOCK_SKEW, H),
]


def _sample(metrics: Metrics, name: str, reason: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"reason": reason})


@pytest.mark.parametrize(
    ("drive", "code", "state"), SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS]
)
async def test_each_switch_trips_blocks_orders_and_persists(
    journal: Journal,
    drive: Callable[[KillSwitchBoard], None],
    code: ReasonCode,
    state: TradingState,
) -> None:
    rig = await make_rig(journal)
    assert rig.machine.state is A
    with capture_logs() as logs:
        drive(rig.board)
    await rig.board.flush()

    assert rig.machine.state is state
    assert rig.machine.snapshot.reason_codes == (code,)
    # New orders that grow |delta| are blocked in either state, by the gate and by the board.
    assert not allows(rig.machine.state, OrderKind.NEW, 1.0, 2.0).allowed
    later = T0 + 2 * 86_400_000  # past every rate window
    assert not order(rig.board, later).allowed
    assert order(rig.board, later, kind=OrderKind.CANCEL).allowed
    reducing = order(rig.board, later, before=2.0, after=1.0)
    assert reducing.allowed is (state is R)

    tripped = [e for e in logs if e["event"] == "kill_switch_tripped"]
    assert len(tripped) == 1 and tripped[0]["code"] == code.value
    assert tripped[0]["state"] == state.value and tripped[0]["detail"]
    assert [t.code for t, _ in rig.alerts.trips] == [code]
    assert _sample(rig.metrics, "hedgerd_kill_switch_tripped", code.value) == 1.0
    assert _sample(rig.metrics, "hedgerd_kill_switch_trips_total", code.value) == 1.0
    assert rig.metrics.registry.get_sample_value("hedgerd_trading_state_code") == state.severity

    # Halts survive restarts: a machine restored from the same journal is in the same state.
    again = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
    assert again.state is state and again.snapshot.reason_codes == (code,)


async def test_a_persisting_condition_logs_and_alerts_once_until_resumed(rig: Rig) -> None:
    with capture_logs() as logs:
        for i in range(5):
            rig.board.on_clock(T0 + 5_000 + i, "deribit", T0)
    assert len([e for e in logs if e["event"] == "kill_switch_tripped"]) == 1
    assert len(rig.alerts.trips) == 1
    await rig.machine.resume(actor=operator_actor(1000))
    assert rig.machine.state is A
    rig.board.on_clock(T0 + 10_000, "deribit", T0)  # still skewed: trips again
    assert rig.machine.state is H and len(rig.alerts.trips) == 2
    await rig.board.flush()


async def test_trip_values_are_logged(rig: Rig) -> None:
    with capture_logs() as logs:
        rig.board.on_margin(T0, MarginInputs("deribit", "BTC", 10.0, 6.0))
    event = next(e for e in logs if e["event"] == "kill_switch_tripped")
    assert event["maintenance_pct"] == 60.0 and event["limit_pct"] == 50.0
    assert event["venue"] == "deribit" and event["currency"] == "BTC"
    await rig.board.flush()


async def test_trips_to_is_configurable(journal: Journal) -> None:
    settings = KillSwitchSettings.model_validate(
        {"clock_skew": {"trips_to": "reduce_only"}, "margin": {"trips_to": "halted"}}
    )
    rig = await make_rig(journal, settings)
    rig.board.on_clock(T0 + 2_000, "deribit", T0)
    assert rig.machine.state is R
    rig.board.on_margin(T0, MarginInputs("deribit", "BTC", 1.0, 1.0))
    assert rig.machine.state is H
    await rig.board.flush()


async def test_disabled_switches_do_not_trip(journal: Journal) -> None:
    settings = KillSwitchSettings.model_validate(
        {name: {"enabled": False} for name, _ in KillSwitchSettings().switches()}
    )
    rig = await make_rig(journal, settings)
    for drive, _, _ in SCENARIOS:
        if drive in (price_sanity, order_rate, notional_rate, order_notional):
            continue  # they assert refusals; checked below
        drive(rig.board)
    for i in range(100):
        assert order(rig.board, T0 + i, notional_usd=5_000_000.0).allowed
    assert not rig.board.on_price(T0, "x", math.nan).accepted  # still refused, no trip
    assert not order(rig.board, price_usd=math.nan).allowed  # still refused
    assert rig.machine.state is A and rig.alerts.trips == []
    await rig.board.flush()


async def test_pre_trade_refusals_hold_for_flatten_but_budgets_do_not(rig: Rig) -> None:
    await rig.machine.halt(actor=operator_actor(1000), text="test")
    # The operator's flatten passes HALTED and is never refused by the rate budgets...
    for i in range(40):
        assert order(rig.board, T0 + i, flatten=True, before=5.0, after=4.0).allowed
    # ...but a NaN price or an oversized order is refused even then (and trips).
    check = order(rig.board, T0 + 50, flatten=True, price_usd=math.nan)
    assert not check.allowed and check.code is ReasonCode.PRICE_SANITY
    check = order(rig.board, T0 + 51, flatten=True, notional_usd=1e9)
    assert not check.allowed and check.code is ReasonCode.ORDER_NOTIONAL
    check = order(rig.board, T0 + 52, notional_usd=math.nan)
    assert not check.allowed and check.code is ReasonCode.ORDER_NOTIONAL
    assert order(rig.board, T0 + 53, kind=OrderKind.CANCEL, price_usd=math.nan).allowed
    await rig.board.flush()
    reasons = rig.machine.snapshot.reason_codes
    assert ReasonCode.PRICE_SANITY in reasons and ReasonCode.ORDER_NOTIONAL in reasons


async def test_price_band_refuses_the_order(rig: Rig) -> None:
    assert order(rig.board, price_usd=102_999.0).allowed
    check = order(rig.board, price_usd=103_000.0)
    assert not check.allowed and check.code is ReasonCode.PRICE_SANITY
    assert rig.machine.state is H
    await rig.board.flush()


async def test_a_refused_order_is_not_counted(rig: Rig) -> None:
    await rig.machine.reduce_only(actor=operator_actor(1000))
    for i in range(50):
        assert not order(rig.board, T0 + i).allowed  # grows |delta|: the gate refuses
    assert rig.board.rates.counts(T0 + 50)["minute"] == (0, 0.0)
    assert order(rig.board, T0 + 51, before=2.0, after=1.0).allowed
    assert rig.board.rates.counts(T0 + 51)["minute"] == (1, 10_000.0)


async def test_an_alert_hook_that_raises_never_reaches_trading(journal: Journal) -> None:
    class Broken:
        def notify_trip(self, trip: Trip, ts_ms: int) -> None:
            raise RuntimeError("boom")

        def notify_text(self, kind: str, detail: str, ts_ms: int = 0) -> bool:
            raise RuntimeError("boom")

    machine = await TradingStateMachine.restore(journal, clock_ms=lambda: T0)
    board = KillSwitchBoard(KillSwitchSettings(), machine, alerts=Broken())
    assert board.on_clock(T0 + 5_000, "deribit", T0) is not None
    assert machine.state is H
    await board.flush()


async def test_tick_exports_data_ages(rig: Rig) -> None:
    rig.board.register_feed("deribit", "ticker", T0)
    rig.board.register_venue("deribit", T0)
    rig.board.on_data("deribit", "book", T0)
    rig.board.tick(T0 + 2_500)
    age = rig.metrics.registry.get_sample_value(
        "hedgerd_data_age_seconds", {"venue": "deribit", "feed": "book"}
    )
    assert age == 2.5
    assert rig.machine.state is A


def intent(
    label: str, amount: float, unit: AmountUnit, price: float | None, created_ms: int
) -> OrderRecord:
    return OrderRecord(
        label=label,
        decision_id="d1",
        venue="deribit",
        instrument="BTC-PERPETUAL" if unit is AmountUnit.USD else "BTC_USDC-PERPETUAL",
        side=OrderSide.BUY,
        amount=amount,
        amount_unit=unit,
        limit_price=price,
        style=OrderStyle.IOC_LIMIT,
        reduce_only=False,
        created_ms=created_ms,
    )


async def test_rates_are_restored_from_the_journal(journal: Journal) -> None:
    now = T0 + 10 * 60_000
    orders = [
        # 25 orders in the last minute, sized in USD (notional = amount).
        *(intent(f"h-a{i}", 10_000.0, AmountUnit.USD, 1e5, now - 30_000 + i) for i in range(25)),
        # One in coin with a limit (2 × 50,000) and one without a price (counted at the cap).
        intent("h-b", 2.0, AmountUnit.COIN, 50_000.0, now - 2 * MINUTE_MS),
        intent("h-c", 1.0, AmountUnit.COIN, None, now - 3 * MINUTE_MS),
        # A day old: out of every window.
        intent("h-d", 10.0, AmountUnit.USD, 1e5, now - 86_400_000),
    ]
    await journal.record_intents(orders, DecisionRecord("d1", T0, "BTC", "band", {}))
    budget = KillSwitchSettings.model_validate({"order_rate": {"max_orders_per_minute": 30}})
    rig = await make_rig(journal, budget)
    assert await rig.board.restore_rates(journal, now) == 27
    counts = rig.board.rates.counts(now)
    assert counts["minute"] == (25, 250_000.0)
    assert counts["hour"] == (27, 250_000.0 + 100_000.0 + 500_000.0)
    for i in range(5):
        assert order(rig.board, now + i).allowed
    assert not order(rig.board, now + 5).allowed  # the 31st order in the minute
    await rig.board.flush()


async def test_restored_rates_skip_intents_closed_unsent_and_keep_unknown_sends(
    journal_backend: JournalBackend,
) -> None:
    """Of four intents in the last minute: one closed unsent (the order budget refused it:
    `Cancelled` from NEW), one sent and rejected, one in doubt at a restart (NEW: its send
    outcome unknown) that the query then found cancelled, one in doubt still UNKNOWN. Three
    count (what may have reached the wire); the refused one does not (before: all four)."""
    now = T0 + 10 * 60_000
    labels = ("h-refused", "h-rejected", "h-in-doubt", "h-unknown")
    orders = [
        intent(lb, 1_000.0, AmountUnit.USD, 1e5, now - 30_000 + i) for i, lb in enumerate(labels)
    ]
    with journal_backend.fresh() as location:
        async with await Journal.open(location, clock_ms=lambda: T0) as journal:
            await journal.record_intents(orders, DecisionRecord("d1", T0, "BTC", "band", {}))
            await journal.apply_event("h-refused", Cancelled(now - 20_000, "order_budget"))
            await journal.apply_event("h-rejected", Sent(now - 20_000))
            await journal.apply_event("h-rejected", Rejected(now - 20_000, "invalid", 10_001))
            await journal.recover_in_doubt(now - 10_000)  # the restart: NEW becomes UNKNOWN
            await journal.apply_event(
                "h-in-doubt",
                QueryResult(now - 5_000, OrderStatus.CANCELLED, 0.0, reason="not_found"),
            )
            rig = await make_rig(journal)
            assert await rig.board.restore_rates(journal, now) == 3
            assert rig.board.rates.counts(now)["minute"][0] == 3
            await rig.board.flush()


async def test_amendments_use_the_added_notional_for_budgets(rig: Rig) -> None:
    # A 400,000 USD order re-priced 10 times: the order passes the per-order limit each time
    # and uses the notional budget once.
    assert order(rig.board, notional_usd=400_000.0).allowed
    for i in range(10):
        check = rig.board.check_order(
            now_ms=T0 + i,
            notional_usd=400_000.0,
            price_usd=100_000.0,
            reference_price_usd=100_000.0,
            delta_before_coin=1.0,
            delta_after_coin=2.0,
            kind=OrderKind.AMEND,
            added_notional_usd=0.0,
        )
        assert check.allowed
    assert rig.board.rates.counts(T0 + 10)["minute"] == (11, 400_000.0)


async def test_a_metric_that_fails_never_stops_a_switch(rig: Rig) -> None:
    rig.board.on_data("not a valid label!", "ticker", T0)  # the metric refuses this label
    with capture_logs() as logs:
        fired = rig.board.tick(T0 + 10_000)
    assert [t.code for t in fired] == [ReasonCode.STALE_DATA]
    assert rig.machine.state is H
    assert any(e["event"] == "kill_switch_metric_failed" for e in logs)
    await rig.board.flush()


def _journal_fill(trade_id: str, instrument: str, side: OrderSide, amount: float, price: float,
                  ts_ms: int) -> Fill:  # fmt: skip
    return Fill(
        "deribit", instrument, trade_id, "o-1", None, side, amount, price, 0.0, "USDC", ts_ms
    )


async def test_daily_loss_from_the_journal(journal: Journal) -> None:
    day = 1_700_035_200_000  # 2023-11-15T08:00:00Z, a trading-day start
    insts = {"BTC_USDC-PERPETUAL": LINEAR}
    for fill in (
        # Yesterday's trade: not today's loss.
        _journal_fill("t0", "BTC_USDC-PERPETUAL", OrderSide.BUY, 100.0, 100_000.0, day - 1),
        # Today: bought 1 BTC at 100,000 twice.
        _journal_fill("t1", "BTC_USDC-PERPETUAL", OrderSide.BUY, 1.0, 100_000.0, day),
        _journal_fill("t2", "BTC_USDC-PERPETUAL", OrderSide.BUY, 1.0, 100_000.0, day + 5),
    ):
        await journal.record_fill(fill)
    rig = await make_rig(journal)
    now = day + 3_600_000
    est = await rig.board.check_daily_loss(journal, now, insts, {LINEAR.name: 60_000.0}, {})
    assert est.pnl_usd == -80_000.0 and rig.machine.state is A
    est = await rig.board.check_daily_loss(journal, now, insts, {LINEAR.name: 50_000.0}, {})
    assert est.pnl_usd == -100_000.0 and rig.machine.state is H
    assert rig.machine.snapshot.reason_codes == (ReasonCode.DAILY_LOSS,)
    await rig.board.flush()


async def test_daily_loss_without_a_mark_halts(journal: Journal) -> None:
    await journal.record_fill(
        _journal_fill("t1", "BTC_USDC-PERPETUAL", OrderSide.BUY, 1.0, 100_000.0, T0)
    )
    settings = KillSwitchSettings.model_validate({"daily_loss": {"trips_to": "reduce_only"}})
    rig = await make_rig(journal, settings)
    est = await rig.board.check_daily_loss(journal, T0 + 1, {LINEAR.name: LINEAR}, {}, {})
    assert est.pnl_usd is None and rig.machine.state is H
    await rig.board.flush()


async def test_reconfigure_keeps_what_was_seen(rig: Rig) -> None:
    for i in range(10):
        assert order(rig.board, T0 + i).allowed
    rig.board.on_data("deribit", "ticker", T0)
    assert rig.board.tick(T0 + 4_000) == ()
    tighter = KillSwitchSettings.model_validate(
        {
            "order_rate": {"max_orders_per_minute": 10},
            "stale_data": {"market_stale_after_s": 3.0},
        }
    )
    rig.board.reconfigure(tighter)
    check = order(rig.board, T0 + 11)  # the 11th order in the minute, over the new limit
    assert not check.allowed and check.code is ReasonCode.ORDER_RATE
    assert [t.code for t in rig.board.tick(T0 + 4_001)] == [ReasonCode.STALE_DATA]
    await rig.board.flush()


async def test_a_bad_price_feed_logs_once_per_episode(rig: Rig) -> None:
    with capture_logs() as logs:
        for i in range(20):
            assert not rig.board.on_price(T0 + i, "deribit:index", math.nan).accepted
        assert rig.board.on_price(T0 + 20, "deribit:index", 100_000.0).accepted
        assert not rig.board.on_price(T0 + 21, "deribit:index", -1.0).accepted
    events = [(e["event"], e.get("refused")) for e in logs if "price" in e["event"]]
    assert events == [
        ("price_quarantined", None),
        ("price_accepted_again", 20),
        ("price_quarantined", None),
    ]
    await rig.board.flush()


async def test_a_resume_gives_hedging_its_attempts_again_during_a_delta_breach(rig: Rig) -> None:
    delta_limit(rig.board)  # three hedges sent, |delta| still 25 coin (limit 20): halted
    assert rig.machine.state is H
    await rig.machine.resume(actor=operator_actor(1000))
    # Still beyond the limit, but no hedge tried since the resume: hedging goes on.
    assert rig.board.on_delta(T0 + 3, "BTC", 25.0, 100_000.0) is None
    assert rig.machine.state is A
    for _ in range(2):
        rig.board.on_hedge_sent("BTC")
    assert rig.board.on_delta(T0 + 4, "BTC", 24.0, 100_000.0) is None
    rig.board.on_hedge_sent("BTC")  # the third since the resume, and still beyond
    assert rig.board.on_delta(T0 + 5, "BTC", 23.0, 100_000.0) is not None
    assert rig.machine.state is H
