"""The hedge loop's own checks, with stand-ins for the parts around it (the board, the
trading state, the instruments and the legs are real).

- The pre-trade check counts a leg's whole notional in the notional-rate budget:
  `HedgeLoop._pre_trade` asks the kill-switch board once per leg, judged at the largest single
  order the executor will send for it (the order-notional switch), and the executor then sends
  the leg in slices without asking again. Counting only that one slice let a sliced leg trade
  many times the budget it was counted for ("sent notional bounds traded notional from
  above").
- A configured hedge instrument of another underlying, or an option, is never a hedge
  candidate: the candidate's delta per amount is 1 (coin-sized) or 1/mid (USD-sized), right
  only for a future, perpetual or spot of the underlying hedged.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from hedgerd.execution.executor import DecisionResult, ExecutorSettings
from hedgerd.model import (
    AmountUnit,
    HedgeDecision,
    HedgeLeg,
    HedgeStyle,
    HedgeTrigger,
    Instrument,
    InstrumentKind,
    OptionType,
    OrderSide,
    PriceUnit,
    Quote,
)
from hedgerd.portfolio.hedge_loop import HedgeLoop
from hedgerd.portfolio.parts import Clocks, PortfolioParts
from hedgerd.portfolio.scope import PortfolioScope
from hedgerd.portfolio.stats import DaemonStats, UnderlyingStats
from hedgerd.risk.kill_switches import KillSwitchBoard
from hedgerd.risk.limits import KillSwitchSettings
from hedgerd.risk.trading_state import (
    ReasonCode,
    TradingState,
    TradingStateMachine,
    TradingStateSnapshot,
)

T0 = 1_767_571_200_000
INDEX_USD = 100_000.0
PERP = Instrument(
    venue="deribit", name="BTC-PERPETUAL", kind=InstrumentKind.PERPETUAL, underlying="BTC",
    quote_currency="USD", settlement_currency="BTC", inverse=True, contract_size=10.0,
    amount_unit=AmountUnit.USD, min_amount=10.0, amount_step=10.0, tick_size=0.5,
    price_unit=PriceUnit.USD,
)  # fmt: skip


ETH_PERP = replace(PERP, name="ETH-PERPETUAL", underlying="ETH", settlement_currency="ETH")
PUT = replace(
    PERP, name="BTC-27MAR26-90000-P", kind=InstrumentKind.OPTION, quote_currency="BTC",
    contract_size=1.0, amount_unit=AmountUnit.COIN, min_amount=0.1, amount_step=0.1,
    tick_size=0.0005, price_unit=PriceUnit.COIN, expiry_ms=T0 + 86_400_000,
    strike_usd=90_000.0, option_type=OptionType.PUT,
)  # fmt: skip


class _Store:
    async def last_trading_state(self) -> None:
        return None

    async def save_trading_state(self, record: object) -> None:
        return None


def _loop(
    board: KillSwitchBoard, machine: TradingStateMachine, hedges: tuple[str, ...] = ()
) -> HedgeLoop:
    instruments = {i.name: i for i in (PERP, ETH_PERP, PUT)}
    venue = SimpleNamespace(instruments=lambda: instruments)
    feed = SimpleNamespace(index_ms=lambda underlying: T0, positions={})
    book = SimpleNamespace(index_price=lambda underlying: INDEX_USD)
    quote = Quote("deribit", "x", INDEX_USD - 0.5, 1e6, INDEX_USD + 0.5, 1e6, T0)
    market = SimpleNamespace(fresh_quote=lambda account, name: replace(quote, instrument=name))
    account: Any = SimpleNamespace(
        name="deribit", underlyings=("BTC",), venue=venue, feed=feed, book=book,
        market=market, orders_blocked=lambda: False,
    )  # fmt: skip
    executor: Any = SimpleNamespace(
        settings=ExecutorSettings(max_slice_delta_coin=5.0, max_slice_notional_usd=500_000.0)
    )
    parts = PortfolioParts(trading=machine, board=board, executor=executor)
    stats = DaemonStats(per_underlying={"BTC": UnderlyingStats()})
    config: Any = SimpleNamespace(hedge_instruments=lambda account, underlying: hedges)
    scope = PortfolioScope(config, Clocks(lambda: T0, lambda: T0, 1.0), parts, stats,
                           {"deribit": account})  # fmt: skip
    policies: Any = SimpleNamespace()
    return HedgeLoop(
        scope, policies, observer=None, reload_requested=asyncio.Event(), reload=lambda: None
    )


def _sell(decision_id: str, amount_usd: float) -> HedgeDecision:
    delta = -amount_usd / INDEX_USD
    leg = HedgeLeg("deribit", PERP.name, OrderSide.SELL, amount_usd, AmountUnit.USD, delta,
                   HedgeStyle.TAKER, INDEX_USD * 0.999, PriceUnit.USD, 0.0)  # fmt: skip
    return HedgeDecision(
        decision_id, "BTC", "p", T0, HedgeTrigger.BAND, 20.0, 20.0, 0.0, 0.0, -1.0, 1.0, delta,
        20.0 + delta, (leg,), 0.0, 0.0, 0.0, INDEX_USD,
    )  # fmt: skip


def _parts(hedges: tuple[str, ...] = ()) -> tuple[HedgeLoop, KillSwitchBoard]:
    """The loop over a real board and trading state: 1,000,000 USD of orders a minute, one
    order at most 500,000 USD (the executor's slices)."""
    settings = KillSwitchSettings.model_validate(
        {
            "notional_rate": {"max_notional_usd_per_minute": 1_000_000.0},
            "order_notional": {"max_order_notional_usd": 500_000.0},
        }
    )
    machine = TradingStateMachine(_Store(), TradingStateSnapshot(TradingState.ACTIVE, (), 0, T0),
                                  lambda: T0)  # fmt: skip
    board = KillSwitchBoard(settings, machine)
    return _loop(board, machine, hedges), board


async def test_a_sliced_leg_counts_its_whole_notional_in_the_notional_budget() -> None:
    loop, board = _parts()
    # 2,000,000 USD in four 500,000 USD slices: twice the minute's budget. It must not pass
    # as if it were one 500,000 USD order (it did, and so did the next one).
    first = _sell("d1", 2_000_000.0)
    assert loop._pre_trade(first) == []
    assert board.machine.state is TradingState.HALTED
    assert ReasonCode.NOTIONAL_RATE in board.machine.snapshot.reason_codes
    await board.machine.flush()


async def test_a_leg_within_the_budget_passes_and_spends_its_whole_notional() -> None:
    loop, board = _parts()
    d = _sell("d2", 900_000.0)  # two slices, within the budget
    assert loop._pre_trade(d) == list(d.legs)
    minute = board.rates.counts(T0)["minute"]
    assert minute[1] == 900_000.0, minute
    assert board.machine.state is TradingState.ACTIVE


async def test_a_hedge_instrument_of_another_underlying_or_an_option_is_no_candidate() -> None:
    # A configuration slip (BTC = ["ETH-PERPETUAL", a BTC put, "BTC-PERPETUAL"]): the ETH
    # perpetual's contracts were counted as BTC delta (1/mid coin each), the put as +1 coin
    # per coin bought: hedged with the wrong instrument, in the wrong size or direction.
    loop, _board = _parts(hedges=(ETH_PERP.name, PUT.name, PERP.name))
    got = await loop._account_states(loop.account, "BTC")
    assert [v.name for v in got] == [PERP.name]


async def test_a_decision_whose_legs_are_all_refused_still_sends_its_cancels() -> None:
    """The controller names a resting order working against the decision (`cancel_labels`);
    the pre-trade check refuses the decision's only leg (over the notional budget): the
    cancels still go to the executor, alone, and count as no hedge sent."""
    loop, board = _parts()
    decision = replace(_sell("cx1", 2_000_000.0), cancel_labels=("hg1-old-0-0-0",))
    sent: list[HedgeDecision] = []

    async def execute(d: HedgeDecision) -> DecisionResult:
        sent.append(d)
        return DecisionResult(d.decision_id, (), d.cancel_labels)

    loop.shared.executor.execute = execute
    loop._act(decision, INDEX_USD)
    await asyncio.gather(*loop.exec_tasks)
    assert [(d.legs, d.cancel_labels) for d in sent] == [((), ("hg1-old-0-0-0",))]
    assert loop.stats.decisions_trading == 0
    await board.machine.flush()
