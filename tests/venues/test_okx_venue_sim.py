"""`OkxVenue` with the real ccxt okx client against the simulator's OKX v5 dialect (REST):
instruments in hedgerd units, balances, orders placed / read back / cancelled with the
journal's `clOrdId`, fills and positions as coin quantities and deltas, an UNKNOWN order
reconciled by `clOrdId` from a fresh adapter (a restart), the error codes as neutral reasons,
the cancel-all-after dead-man timer, demo mode's header and `hedgerd positions` on OKX; a
unified account's free collateral capped by the account's, and OKX's 51008 as a funds trip of
that account only, through the executor.

The simulator runs in stepped time from the pinned test start; the adapter reads the
simulator's clock. The truth is the simulator's engine (`sim.okx`), never the adapter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hedgerd.config import VenueSettings, load_config
from hedgerd.execution.client_ids import codec_for
from hedgerd.execution.drill import perp_decision
from hedgerd.execution.executor import Executor, ExecutorSettings, LegOutcome
from hedgerd.execution.journal import Journal
from hedgerd.model import AmountUnit, InstrumentKind, OrderSide, OrderStatus, TimeInForce
from hedgerd.risk.account_state import AccountStates
from hedgerd.risk.trading_state import ReasonCode, TradingState, TradingStateMachine
from hedgerd.sim.command import Simulator, running_simulator
from hedgerd.sim.okx.accounts import OkxAccount
from hedgerd.sim.scenario import Scenario
from hedgerd.venues import registry
from hedgerd.venues.base import (
    ErrorClass,
    OrderRequest,
    PositionEvent,
    RejectReason,
    VenueError,
)
from hedgerd.venues.ccxt_venue import Backoff
from hedgerd.venues.okx.errors import INSUFFICIENT_BALANCE
from hedgerd.venues.okx.names import parse_instrument_name
from hedgerd.venues.okx.venue import OkxVenue
from hedgerd.venues.positions_command import collect
from pinned_clock import TEST_START_MS
from venue_truth import okx_truth

KEY, SECRET, PASSPHRASE = "okx-key", "okx-secret", "okxPass1"
CODEC = codec_for("okx", "Q7xa")
SWAP = "BTC-USD-SWAP"
LINEAR = "BTC-USDT-SWAP"


def _label(decision: str, attempt: int = 0) -> str:
    return CODEC.client_id(decision, 0, 0, attempt).label


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(
        stepped=True,
        seed=11,
        start_ms=TEST_START_MS,
        venues=("deribit", "okx"),
        accounts=[(KEY, SECRET)],
        api_passphrase=PASSPHRASE,
    ) as s:
        yield s


def _settings(sim: Simulator, **kw: Any) -> VenueSettings:
    base: dict[str, Any] = {
        "exchange": "okx",
        "mode": "sim",
        "rest_url": sim.rest_url,
        "ws_url": sim.okx_ws_url,
        "api_key": KEY,
        "api_secret": SECRET,
        "api_passphrase": PASSPHRASE,
        "underlyings": ("BTC",),
        "account": "okx-main",
    }
    return VenueSettings(**(base | kw))


@pytest.fixture
async def venue(sim: Simulator) -> AsyncIterator[OkxVenue]:
    v = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms, private_stream=False)
    await v.connect()
    try:
        yield v
    finally:
        await v.close()


def _account(sim: Simulator) -> OkxAccount:
    return next(a for a in sim.okx.accounts.values() if a.creds.api_key == KEY)


def _option(venue: OkxVenue, cp: str = "C") -> str:
    """A liquid BTC option: the nearest expiry a day or more away, the middle strike."""
    now = venue.venue_time_ms()
    opts = [
        i for i in venue.instruments().values()
        if i.is_option and i.underlying == "BTC" and i.name.endswith(f"-{cp}")
        and i.expiry_ms is not None and i.expiry_ms - now >= 86_400_000
    ]  # fmt: skip
    expiry = min(i.expiry_ms or 0 for i in opts)
    same = sorted((i for i in opts if i.expiry_ms == expiry), key=lambda i: i.strike_usd or 0)
    return same[len(same) // 2].name


async def test_instruments_are_in_hedgerd_units_and_agree_with_the_name_parser(
    venue: OkxVenue, sim: Simulator
) -> None:
    assert abs(venue.venue_time_ms() - sim.now_ms()) < 1_000
    assert sim.now_ms() == TEST_START_MS
    insts = venue.instruments()
    kinds = {i.kind for i in insts.values()}
    assert kinds == {InstrumentKind.OPTION, InstrumentKind.PERPETUAL, InstrumentKind.FUTURE,
                     InstrumentKind.SPOT}  # fmt: skip
    assert insts[SWAP].contract_size == 100.0 and insts[SWAP].amount_unit is AmountUnit.USD
    assert insts[LINEAR].contract_size == 0.01 and insts[LINEAR].amount_unit is AmountUnit.COIN
    checked = 0
    for inst in insts.values():
        named = parse_instrument_name(inst.name, venue.name)
        for field in (
            "kind",
            "underlying",
            "settlement_currency",
            "inverse",
            "contract_size",
            "amount_unit",
            "price_unit",
            "expiry_ms",
            "strike_usd",
            "option_type",
        ):
            assert getattr(inst, field) == getattr(named, field), (inst.name, field)
        if inst.is_option:
            # ctMult, not ccxt's contractSize (1): one BTC option contract is 0.01 BTC.
            assert inst.contract_size == {"BTC": 0.01, "ETH": 0.1}[inst.underlying]
            assert venue.rest.market(venue.symbol(inst.name))["contractSize"] == 1
        checked += 1
    assert checked > 40


async def test_seam_balances_margin_and_time(venue: OkxVenue, sim: Simulator) -> None:
    bals = {b.currency: b.equity for b in await venue.fetch_balances()}
    assert bals["BTC"] == 10.0 and bals["ETH"] == 100.0 and bals["USDT"] == 100_000.0
    margins = {m.currency: m for m in await venue.margin_summaries()}
    assert margins["BTC"].equity == 10.0 and margins["BTC"].maintenance_margin == 0.0
    assert abs(await venue.server_time_ms() - sim.now_ms()) < 1_000
    assert venue.order_path_ready() is False  # cancel_on_disconnect: not armed yet
    assert venue.resolve_instrument("BTC-USD-991231-50000-C") is not None  # parsed, not listed
    assert venue.resolve_instrument("BTC-PERPETUAL") is None


async def test_ioc_swap_fill_position_and_fills_in_coin(venue: OkxVenue, sim: Simulator) -> None:
    quote = await venue.fetch_quote(SWAP)
    label = _label("swap-buy")
    upd = await venue.place_order(
        OrderRequest(SWAP, OrderSide.BUY, 500.0, label, price=quote.ask_price * 1.01,
                     time_in_force=TimeInForce.IOC)
    )  # fmt: skip
    # Read back after the placement: the answer carries the fill, in USD (5 contracts).
    assert upd.status is OrderStatus.FILLED and upd.filled_amount == 500.0
    assert upd.label == label and upd.instrument == SWAP
    assert _account(sim).positions[SWAP].size == 5  # the engine's truth, contracts
    fills = await venue.fetch_order_fills(upd.order_id)
    assert sum(f.amount for f in fills) == 500.0
    assert all(f.fee > 0 and f.fee_currency == "BTC" and f.label == label for f in fills)
    history = await venue.fetch_fills("BTC", TEST_START_MS)
    assert {f.trade_id for f in fills} <= {f.trade_id for f in history}
    [pos] = [p for p in await venue.fetch_positions("BTC") if p.position.instrument == SWAP]
    assert pos.position.amount == 500.0 and pos.position.amount_unit is AmountUnit.USD
    ticker = await venue.fetch_ticker(SWAP)
    assert pos.venue_qty_coin == pytest.approx(500.0 / ticker.mark_price, rel=1e-3)
    assert ticker.index_price_usd > 0 and ticker.funding_8h is not None


async def test_option_sale_is_coin_with_the_venues_delta(venue: OkxVenue, sim: Simulator) -> None:
    name = _option(venue)
    quote = await venue.fetch_quote(name)
    upd = await venue.place_order(
        OrderRequest(name, OrderSide.SELL, 0.03, _label("opt-sell"),
                     price=max(quote.bid_price * 0.5, 0.0001), time_in_force=TimeInForce.IOC)
    )  # fmt: skip
    assert upd.status is OrderStatus.FILLED and upd.filled_amount == 0.03
    assert _account(sim).positions[name].size == -3  # 3 contracts of 0.01 BTC
    [pos] = [p for p in await venue.fetch_positions("BTC") if p.position.instrument == name]
    assert pos.position.amount == -0.03 and pos.venue_qty_coin == -0.03
    delta_bs = pos.position.venue_delta_coin
    assert delta_bs is not None and -0.03 < delta_bs < 0  # a short call: BS delta in coin
    greeks = await venue.fetch_venue_greeks("BTC")
    assert greeks is not None
    # PA (coin numeraire) = BS less the premium in coin: for a short call, above BS.
    assert greeks.options_delta_coin == pytest.approx(delta_bs, rel=1e-9)
    assert greeks.delta_total_coin > greeks.options_delta_coin
    ticker = await venue.fetch_ticker(name)
    assert ticker.mark_iv is not None and 0.05 < ticker.mark_iv < 5


async def test_resting_order_reconciled_by_clordid_after_a_restart(
    venue: OkxVenue, sim: Simulator
) -> None:
    quote = await venue.fetch_quote(SWAP)
    label = _label("resting")
    price = round(quote.bid_price * 0.8, 1)
    upd = await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 300.0, label, price=price))
    assert upd.status is OrderStatus.ACKED and upd.amount == 300.0
    assert [o.order_id for o in await venue.fetch_open_orders("BTC")] == [upd.order_id]
    # A duplicate clOrdId among open orders: OKX refuses (51016), a neutral reason here.
    with pytest.raises(VenueError) as dup:
        await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 100.0, label, price=price))
    assert dup.value.reason is RejectReason.DUPLICATE_CLIENT_ID
    assert dup.value.error_class is ErrorClass.DEFINITIVE and not dup.value.outcome_unknown
    # A restarted daemon knows only the journal's label: a fresh adapter finds the order.
    fresh = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms, private_stream=False)
    await fresh.connect()
    try:
        [found] = await fresh.order_by_label(label)
        assert (found.order_id, found.status, found.amount, found.price) == (
            upd.order_id, OrderStatus.ACKED, 300.0, price,
        )  # fmt: skip
        assert await fresh.order_by_label(_label("never-sent")) == []
        # An IOC that filled while its answer was lost is only in the history: found there.
        filled = await venue.place_order(OrderRequest(
            SWAP, OrderSide.BUY, 200.0, _label("lost-answer"), price=quote.ask_price * 1.01,
            time_in_force=TimeInForce.IOC))  # fmt: skip
        [hist] = await fresh.order_by_label(_label("lost-answer"))
        assert (hist.order_id, hist.status, hist.filled_amount) == (
            filled.order_id, OrderStatus.FILLED, 200.0,
        )  # fmt: skip
        cancelled = await fresh.cancel_order(upd.order_id)  # instId learnt from the search
        assert cancelled.status is OrderStatus.CANCELLED
        [after] = await fresh.order_by_label(label)
        assert after.status is OrderStatus.CANCELLED
    finally:
        await fresh.close()
    assert _account(sim).open_orders == {}
    assert await venue.order_by_label(label) != []  # known instrument: asked directly


async def test_cancel_all_and_by_label(venue: OkxVenue, sim: Simulator) -> None:
    quote = await venue.fetch_quote(SWAP)
    price = round(quote.bid_price * 0.8, 1)
    for i in range(3):
        await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 100.0, _label(f"c{i}"),
                                             price=price))  # fmt: skip
    assert await venue.cancel_by_label(_label("c0")) == 1
    assert await venue.cancel_all("ETH") == 0
    assert await venue.cancel_all("BTC") == 2
    assert _account(sim).open_orders == {}


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (OrderRequest(LINEAR, OrderSide.SELL, 0.01, "A1", price=1.0, reduce_only=True,
                      time_in_force=TimeInForce.IOC), RejectReason.REDUCE_ONLY),
        (OrderRequest(SWAP, OrderSide.BUY, 150.0, "A2", price=1.0), RejectReason.INVALID_ORDER),
        (OrderRequest(SWAP, OrderSide.BUY, 100.0, "not-alnum", price=1.0),
         RejectReason.INVALID_ORDER),
        (OrderRequest(SWAP, OrderSide.BUY, 1e9, "A3", price=50_000.0),
         RejectReason.INSUFFICIENT_FUNDS),
    ],
)  # fmt: skip
async def test_refusals_carry_neutral_reasons(
    venue: OkxVenue, sim: Simulator, request_: OrderRequest, reason: RejectReason
) -> None:
    before = len(_account(sim).fills)
    with pytest.raises(VenueError) as err:
        await venue.place_order(request_)
    assert err.value.reason is reason and err.value.error_class is ErrorClass.DEFINITIVE
    assert _account(sim).open_orders == {} and len(_account(sim).fills) == before


async def test_a_request_arriving_after_its_exp_time_is_not_processed(
    venue: OkxVenue, sim: Simulator
) -> None:
    """The journalled request expiry goes as OKX's `expTime` header: in time, the order is
    placed; from a process paused after journalling (the simulator's clock moved past it
    before the request arrived), the simulator refuses it (50036, OKX's code for an expTime
    already passed) and nothing is placed. hedgerd reads that code as a definitive refusal
    for having expired (as Deribit's 13888): no reject streak, a new intent follows."""
    dialect = sim.server.dialects["okx"]
    quote = await venue.fetch_quote(SWAP)
    price = quote.ask_price * 1.01
    now = sim.now_ms()
    on_time = _label("exp-on-time")
    upd = await venue.place_order(
        OrderRequest(SWAP, OrderSide.BUY, 100.0, on_time, price=price,
                     time_in_force=TimeInForce.IOC, valid_until_ms=now + 1_000)
    )  # fmt: skip
    assert upd.status is OrderStatus.FILLED
    late = _label("exp-late")
    request = OrderRequest(SWAP, OrderSide.BUY, 100.0, late, price=price,
                           time_in_force=TimeInForce.IOC, valid_until_ms=now + 1_000)  # fmt: skip
    sim.advance(1_500)  # the sender was paused between its journal write and the send
    with pytest.raises(VenueError) as err:
        await venue.place_order(request)
    assert err.value.code == 50036 and err.value.error_class is ErrorClass.DEFINITIVE
    assert err.value.reason is RejectReason.REQUEST_EXPIRED
    assert dialect.counters.requests_expired == 1  # type: ignore[attr-defined]
    assert await venue.order_by_label(late) == []
    assert _account(sim).positions[SWAP].size == 1  # the on-time order only


async def test_dead_man_timer_cancels_when_not_renewed(venue: OkxVenue, sim: Simulator) -> None:
    quote = await venue.fetch_quote(SWAP)
    await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 100.0, _label("dm"),
                                         price=round(quote.bid_price * 0.8, 1)))  # fmt: skip
    await venue.arm_dead_man(10)
    assert venue.order_path_ready()
    assert _account(sim).cancel_all_at_ms == pytest.approx(sim.now_ms() + 10_000, abs=1_000)
    sim.advance(5_000)
    await venue.arm_dead_man(10)  # renewed: the countdown starts again
    sim.advance(8_000)
    assert _account(sim).open_orders  # 8 s after the renewal: still there
    assert venue.order_path_ready()
    sim.advance(3_000)
    assert not venue.order_path_ready()
    assert _account(sim).open_orders == {}  # the venue cancelled everything
    await venue.arm_dead_man(0)
    assert _account(sim).cancel_all_at_ms is None and not venue.order_path_ready()


async def test_dead_man_loop_renews_on_the_venues_clock(sim: Simulator) -> None:
    """The renewal follows `clock_ms` (the simulator's here, accelerated in paper mode): the
    countdown never runs out while the adapter runs, and does once it stops."""
    venue = OkxVenue("okx", _settings(sim, dead_man_s=10), clock_ms=sim.now_ms,
                     private_stream=False, dead_man_poll_s=0.01)  # fmt: skip
    await venue.connect()
    try:
        quote = await venue.fetch_quote(SWAP)
        await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 100.0, _label("loop"),
                                             price=round(quote.bid_price * 0.8, 1)))  # fmt: skip
        await venue.start_dead_man()
        for _ in range(2):  # 8 simulated seconds in steps of 4: renewed after each step
            venue.dead_man_armed.clear()
            sim.advance(4_000)
            await asyncio.wait_for(venue.dead_man_armed.wait(), 5.0)
            assert _account(sim).open_orders and venue.order_path_ready()
    finally:
        await venue.close()
    sim.advance(11_000)  # nobody renews: the venue cancels (10 s after the last renewal)
    assert _account(sim).open_orders == {}


async def test_order_book_depth_in_hedgerd_units(venue: OkxVenue) -> None:
    book = await venue.fetch_order_book(SWAP, 1_000_000.0)
    assert book.bids and book.asks and book.bids[0].price < book.asks[0].price
    assert all(level.amount % 100.0 == 0 for level in book.bids + book.asks)  # USD, 100 each


async def test_demo_mode_sends_the_simulated_trading_header() -> None:
    async with running_simulator(
        stepped=True, seed=11, start_ms=TEST_START_MS, venues=("deribit", "okx"),
        accounts=[(KEY, SECRET)],
        api_passphrase=PASSPHRASE, okx_demo=True,
    ) as demo:  # fmt: skip
        ok = OkxVenue("okx", _settings(demo, mode="testnet"), clock_ms=demo.now_ms,
                      private_stream=False)  # fmt: skip
        try:
            await ok.connect()
            assert ok.rest.headers.get("x-simulated-trading") == "1"
            assert (await ok.fetch_balances())[0].equity > 0
        finally:
            await ok.close()
        plain = OkxVenue("okx", _settings(demo), clock_ms=demo.now_ms, private_stream=False)
        try:
            with pytest.raises(VenueError) as err:
                await plain.connect()  # no header: the demo venue refuses (50101)
            assert err.value.error_class is ErrorClass.AUTH
        finally:
            await plain.close()


async def test_positions_command_reads_an_okx_account(
    venue: OkxVenue, sim: Simulator, tmp_path: Path
) -> None:
    quote = await venue.fetch_quote(SWAP)
    await venue.place_order(OrderRequest(SWAP, OrderSide.SELL, 1_000.0, _label("pc"),
                                         price=quote.bid_price * 0.99,
                                         time_in_force=TimeInForce.IOC))  # fmt: skip
    path = tmp_path / "okx.toml"
    path.write_text(
        f'[venues.okx]\nexchange = "okx"\nmode = "sim"\nrest_url = "{sim.rest_url}"\n'
        f'ws_url = "{sim.okx_ws_url}"\napi_key = "{KEY}"\napi_secret = "{SECRET}"\n'
        f'api_passphrase = "{PASSPHRASE}"\nunderlyings = ["BTC"]\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert isinstance(registry.make_venue("okx", config.venues["okx"]), OkxVenue)
    report = await collect(config)
    json.dumps(report)  # JSON-ready
    [account] = report["accounts"]
    [btc] = [u for u in account["underlyings"] if u["underlying"] == "BTC"]
    rows = {p["instrument"]: p for p in btc["positions"]}
    assert rows[SWAP]["amount"] == -1_000.0 and rows[SWAP]["amount_unit"] == "usd"
    assert rows[SWAP]["qty_coin"] == pytest.approx(-1_000.0 / btc["index_price_usd"], rel=1e-2)
    for row in btc["venue_vs_hedgerd"]:
        assert not row["exceeded"], row


async def _until(venue: OkxVenue, want: Any, timeout_s: float = 10.0) -> list[Any]:
    """Events from the adapter until one satisfies `want` (returned with those before it)."""
    seen: list[Any] = []

    async def read() -> None:
        async for ev in venue.events():
            seen.append(ev)
            if want(ev):
                return

    await asyncio.wait_for(read(), timeout_s)
    return seen


async def test_private_streams_orders_fills_positions_balance(sim: Simulator) -> None:
    """ccxt.pro's okx login and subscriptions (orders, positions, account) on /ws/v5/private;
    the pushes become events in hedgerd units, a fill once (never merged)."""
    from hedgerd.venues.base import BalanceEvent, ConnectionEvent, FillEvent, OrderEvent

    venue = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms)
    await venue.connect()
    try:
        assert venue.order_path_ready()  # cancel_on_disconnect: armed at connect
        await _until(venue, lambda e: isinstance(e, BalanceEvent))  # the account snapshot
        label = _label("stream")
        quote = await venue.fetch_quote(SWAP)
        upd = await venue.place_order(
            OrderRequest(SWAP, OrderSide.SELL, 700.0, label, price=quote.bid_price * 0.99,
                         time_in_force=TimeInForce.IOC)
        )  # fmt: skip
        assert upd.status is OrderStatus.FILLED
        seen = await _until(
            venue,
            lambda e: isinstance(e, OrderEvent) and e.order.label == label
            and e.order.status is OrderStatus.FILLED,
        )  # fmt: skip
        fills = [e.fill for e in seen if isinstance(e, FillEvent) and e.fill.label == label]
        assert fills and sum(f.amount for f in fills) == 700.0
        assert {f.trade_id for f in fills} == {
            f.trade_id for f in await venue.fetch_order_fills(upd.order_id)
        }
        seen = await _until(
            venue,
            lambda e: isinstance(e, PositionEvent) and e.position.instrument == SWAP
            and e.position.amount == -700.0,
        )  # fmt: skip
        assert not [e for e in seen if isinstance(e, ConnectionEvent)
                    and e.state.value == "disconnected"]  # fmt: skip
    finally:
        await venue.close()


def _flat_scenario() -> Scenario:
    """BTC and ETH (the OKX account holds both; the simulator's balance needs an index for
    each), no futures basis, no swap premium or funding, no jumps, no flow: the venue's
    option delta (dV/dF, the world's) and the book's (dV/dS) coincide, and the swap's mark is
    the index, so the two books must agree to float precision."""
    return Scenario.model_validate({
        "seed": 11,
        "underlyings": [{
            "currency": ccy, "spot": spot, "vol": 0.6, "basis_per_year": 0.0,
            "jumps": {"intensity_per_day": 0.0},
            "chain": {"dailies": 1, "weeklies": 2, "monthlies": 1, "quarterlies": 1,
                      "strikes_each_side": 4},
        } for ccy, spot in (("BTC", 90_000.0), ("ETH", 3_000.0))],
        "funding": {"premium_mean_bps": 0.0, "premium_vol_bps": 0.0},
        "flow": {"rate_per_min": 0.0, "currencies": ["BTC"], "max_size_coin": 2.0},
        "venues": {"okx": {"swap_basis_bps": 0.0, "funding_rate_8h": 0.0}},
    })  # fmt: skip


async def test_book_feed_on_okx_matches_the_venues_greeks() -> None:
    """`BookFeed` over the OKX adapter (snapshot, then streams): after an option sale and
    swap trades the book's delta equals OKX's own account Greeks, coin numeraire `deltaPA`,
    USD numeraire `deltaPA + eq`, read from the engine, with the linear swap's floating P&L
    taken out of the coin numeraire (see `truth`): to 1e-6 coin through the option sale and
    the swap trades after it."""
    async with running_simulator(
        scenario=_flat_scenario(), stepped=True, start_ms=TEST_START_MS,
        venues=("deribit", "okx"), accounts=[(KEY, SECRET)], api_passphrase=PASSPHRASE,
    ) as sim:  # fmt: skip
        await _book_feed_matches(sim)


async def _book_feed_matches(sim: Simulator) -> None:
    from hedgerd.book.greeks_book import GreeksBook
    from hedgerd.venues.book_feed import BookFeed

    venue = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms)
    book = GreeksBook()
    feed = BookFeed(venue, book, reconcile_s=3600.0)
    acct = _account(sim)

    def truth() -> tuple[float, float]:
        return okx_truth(sim, acct)  # the venue's own figures (tests/venue_truth.py)

    def ours() -> tuple[float, float]:
        snap = book.underlying_snapshot("BTC", sim.now_ms())
        return snap.delta_coin("coin", projected=False), snap.delta_coin("usd", projected=False)

    gaps: list[tuple[float, float]] = []

    def close_enough() -> bool:
        try:
            o = ours()
        except Exception:
            return False
        t = truth()
        gaps.append((o[0] - t[0], o[1] - t[1]))
        return all(abs(g) < 1e-6 for g in gaps[-1])

    try:
        await feed.start()
        name = _option(venue)
        q = await venue.fetch_quote(name)
        await venue.place_order(OrderRequest(name, OrderSide.SELL, 0.05, _label("f0"),
                                             price=max(q.bid_price * 0.5, 0.0001),
                                             time_in_force=TimeInForce.IOC))  # fmt: skip
        assert await feed.wait_until(
            lambda: acct.positions[name].size == -5 and close_enough(), 10.0
        ), gaps[-3:]
        for i, (inst, side, amount) in enumerate(
            [(SWAP, OrderSide.BUY, 400.0), (LINEAR, OrderSide.SELL, 0.02)]
        ):
            q = await venue.fetch_quote(inst)
            px = q.ask_price * 1.01 if side is OrderSide.BUY else q.bid_price * 0.99
            await venue.place_order(OrderRequest(inst, side, amount, _label(f"f{i + 1}"),
                                                 price=round(px, 1),
                                                 time_in_force=TimeInForce.IOC))  # fmt: skip
        assert await feed.wait_until(
            lambda: acct.positions[LINEAR].size == -2 and close_enough(), 10.0
        ), gaps[-3:]
        # the price moves: the book follows the venue's index, the gap stays under 1e-6
        before = sim.okx.index_price("BTC")
        for _ in range(3):
            sim.advance(20_000)
            assert await feed.wait_until(close_enough, 10.0), gaps[-3:]
        assert sim.okx.index_price("BTC") != before
    finally:
        await feed.stop()
        await venue.close()


async def test_venue_greeks_are_asked_again_after_a_hedge_before_the_cross_check() -> None:
    """OKX streams no account Greeks: the figure in hand is the last reconciliation's. A swap
    hedge the book hears of at once left hedgerd's delta and that figure apart until the next
    reconciliation (the false `greeks_divergence` halt of a two-venue paper run).
    `refresh_venue_greeks` asks `account/greeks` again because a position changed since the
    figure was asked for, even while the figure is young; then the two agree."""
    from hedgerd.book.greeks_book import GreeksBook
    from hedgerd.venues.book_feed import BookFeed

    async with running_simulator(
        scenario=_flat_scenario(), stepped=True, start_ms=TEST_START_MS,
        venues=("deribit", "okx"), accounts=[(KEY, SECRET)], api_passphrase=PASSPHRASE,
    ) as sim:  # fmt: skip
        venue = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms)
        feed = BookFeed(venue, GreeksBook(), reconcile_s=3600.0, delta_tolerance_coin=0.01)
        young_ms = 3_600_000  # no figure is too old here: only the position change counts
        try:
            await feed.start()
            assert not any(d.exceeded for d in feed.cross_check())
            assert await feed.refresh_venue_greeks(young_ms) == 0  # nothing moved
            q = await venue.fetch_quote(SWAP)
            await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 40_000.0, _label("g0"),
                                                 price=round(q.ask_price * 1.01, 1),
                                                 time_in_force=TimeInForce.IOC))  # fmt: skip
            assert await feed.wait_until(lambda: SWAP in feed.positions, 10.0)
            # The figure from the start lacks the hedge (40,000 USD, about 0.44 BTC).
            assert any(d.exceeded for d in feed.cross_check())
            assert await feed.refresh_venue_greeks(young_ms) == 1  # BTC; ETH did not move
            gaps = {(d.underlying, d.numeraire): d.diff_coin for d in feed.cross_check()}
            assert all(abs(g) < 1e-5 for g in gaps.values()), gaps
            assert await feed.refresh_venue_greeks(young_ms) == 0  # now up to date
        finally:
            await feed.stop()
            await venue.close()


async def test_market_stream_quotes_marks_and_index(sim: Simulator) -> None:
    """`subscribe_market`: quotes from ccxt.pro's `watch_tickers` (OKX `tickers`), marks
    and the index polled over REST, all as events."""
    from hedgerd.venues.base import IndexEvent, QuoteEvent, TickerEvent

    venue = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms, private_stream=False,
                     market_poll_s=0.05)  # fmt: skip
    await venue.connect()
    try:
        await venue.subscribe_market([SWAP])
        kinds: set[type] = set()

        def all_three(ev: Any) -> bool:
            if isinstance(ev, QuoteEvent):
                assert ev.quote.instrument == SWAP and ev.quote.bid_amount % 100.0 == 0
            elif isinstance(ev, TickerEvent):
                assert ev.ticker.instrument == SWAP and ev.ticker.mark_price > 0
            elif isinstance(ev, IndexEvent):
                assert ev.index.underlying == "BTC" and ev.index.price_usd > 0
            else:
                return False
            kinds.add(type(ev))
            return len(kinds) == 3

        await _until(venue, all_three)
    finally:
        await venue.close()


async def test_private_stream_reconnects_after_a_drop(sim: Simulator) -> None:
    """The simulator drops the private socket: the supervisor reports it and ccxt.pro logs in
    and subscribes again; pushes flow again afterwards."""
    from hedgerd.sim.okx.dialect import OkxDialect
    from hedgerd.venues.base import ConnectionEvent, ConnectionState, FillEvent, OrderEvent

    venue = OkxVenue("okx", _settings(sim, cancel_on_disconnect=False), clock_ms=sim.now_ms,
                     backoff=Backoff(initial_s=0.05, max_s=0.2))  # fmt: skip
    await venue.connect()
    try:
        dialect = sim.server.dialects["okx"]
        assert isinstance(dialect, OkxDialect)
        from hedgerd.venues.base import BalanceEvent

        await _until(venue, lambda e: isinstance(e, BalanceEvent))  # the account snapshot
        assert dialect.drop_ws() > 0
        await _until(venue, lambda e: isinstance(e, ConnectionEvent)
                     and e.state is ConnectionState.RECONNECTED)  # fmt: skip
        # RECONNECTED comes before ccxt has subscribed again (what happened meanwhile is in
        # the next snapshot): probe with resting orders until the orders channel answers.
        q = await venue.fetch_quote(SWAP)
        for probe in range(5):
            placed = await venue.place_order(OrderRequest(
                SWAP, OrderSide.BUY, 100.0, _label(f"probe{probe}"),
                price=round(q.bid_price * 0.8, 1)))  # fmt: skip
            await venue.cancel_order(placed.order_id)
            try:
                await _until(venue, lambda e, oid=placed.order_id: isinstance(e, OrderEvent)
                             and e.order.order_id == oid, 2.0)  # fmt: skip
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the orders channel never came back")
        label = _label("after-drop")
        q = await venue.fetch_quote(SWAP)
        await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 100.0, label,
                                             price=q.ask_price * 1.01,
                                             time_in_force=TimeInForce.IOC))  # fmt: skip
        await _until(venue, lambda e: isinstance(e, FillEvent) and e.fill.label == label)
    finally:
        await venue.close()


async def test_executor_hedges_on_okx_with_journalled_clordids(
    venue: OkxVenue, sim: Simulator, tmp_path: Path
) -> None:
    """The executor works a one-leg hedge on BTC-USD-SWAP through the OKX adapter: the id
    sent is the account's OKX codec label, journalled before the send, and the leg fills
    in USD (hedgerd's unit) as 100 USD contracts on the venue."""
    import dataclasses

    from hedgerd.execution.drill import perp_decision
    from hedgerd.execution.executor import Executor, ExecutorSettings, LegOutcome
    from hedgerd.execution.journal import Journal
    from hedgerd.model import HedgeStyle
    from hedgerd.risk.trading_state import TradingStateMachine

    journal = await Journal.open(tmp_path / "j.sqlite")
    try:
        trading = await TradingStateMachine.restore(journal, clock_ms=sim.now_ms)
        ex = Executor(
            {"okx": venue}, journal, trading, clock_ms=sim.now_ms,
            settings=ExecutorSettings(), client_ids={"okx": CODEC},
        )  # fmt: skip
        q = await venue.fetch_quote(SWAP)
        d = perp_decision("okx-hedge-1", OrderSide.SELL, 1_200.0, mid_usd=q.bid_price,
                          ts_ms=sim.now_ms(), style=HedgeStyle.TAKER)  # fmt: skip
        leg = dataclasses.replace(d.legs[0], venue="okx", instrument=SWAP)
        d = dataclasses.replace(d, legs=(leg,))
        (result,) = (await ex.execute(d)).legs
        assert result.outcome is LegOutcome.DONE and result.filled_amount == 1_200.0
        for label in result.labels:
            assert CODEC.decode(label) is not None and len(label) == 32
            rec = await journal.order(label)
            assert rec is not None and rec.venue == "okx"
        assert _account(sim).positions[SWAP].size == -12
    finally:
        await journal.close()


async def test_lost_order_is_found_behind_a_full_page_of_history(
    venue: OkxVenue, sim: Simulator
) -> None:
    """OKX lists orders-history newest first, 100 a page: a restarted daemon looking for an
    older lost order must page back (`after` = ordId), or it reads "never arrived" and the
    reconciler closes a filled hedge as cancelled with nothing filled."""
    quote = await venue.fetch_quote(SWAP)
    lost = await venue.place_order(OrderRequest(
        SWAP, OrderSide.BUY, 100.0, _label("lost-early"), price=quote.ask_price * 1.01,
        time_in_force=TimeInForce.IOC))  # fmt: skip
    assert lost.status is OrderStatus.FILLED
    price = round(quote.bid_price * 0.8, 1)
    for i in range(100):
        await venue.place_order(
            OrderRequest(SWAP, OrderSide.BUY, 100.0, _label(f"later{i}"), price=price)
        )
    assert await venue.cancel_all("BTC") == 100
    fresh = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms, private_stream=False)
    await fresh.connect()
    try:
        [found] = await fresh.order_by_label(_label("lost-early"))
        assert (found.order_id, found.status, found.filled_amount) == (
            lost.order_id, OrderStatus.FILLED, 100.0,
        )  # fmt: skip
    finally:
        await fresh.close()


async def test_cancel_whose_read_back_fails_reports_no_guessed_state(
    venue: OkxVenue, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel went through, the read-back (`trade/order`) did not: the adapter must not
    invent the order's state (CANCELLED, nothing filled, side BUY: a partial fill not yet
    streamed would be closed as unfilled). It raises, and the executor asks by label."""
    quote = await venue.fetch_quote(SWAP)
    price = round(quote.bid_price * 0.8, 1)
    upd = await venue.place_order(
        OrderRequest(SWAP, OrderSide.SELL, 100.0, _label("readback"), price=price * 1.5)
    )

    async def unreachable(inst_id: str, ids: Any) -> Any:
        raise VenueError("okx: read-back lost", error_class=ErrorClass.RETRYABLE, venue="okx")

    monkeypatch.setattr(venue, "_order", unreachable)
    with pytest.raises(VenueError) as err:
        await venue.cancel_order(upd.order_id)
    assert err.value.error_class is ErrorClass.RETRYABLE
    assert _account(sim).open_orders == {}  # the cancel itself reached the venue


async def test_an_account_in_long_short_mode_is_refused_at_connect(sim: Simulator) -> None:
    """The adapter reads positions as net (`pos` signed) and sends no `posSide`: an account
    in long/short mode would list a long and a short of one instrument as two positions, of
    which the book keeps the last (a wrong net delta, a wrong hedge). Refused, clearly."""
    _account(sim).pos_mode = "long_short_mode"
    v = OkxVenue("okx", _settings(sim), clock_ms=sim.now_ms, private_stream=False)
    try:
        with pytest.raises(VenueError, match="long_short_mode") as err:
            await v.connect()
        assert err.value.error_class is ErrorClass.DEFINITIVE
    finally:
        await v.close()


@pytest.mark.parametrize("acct_lv", ["3", "2"])
async def test_margin_of_a_unified_account_is_the_accounts_in_usd(
    venue: OkxVenue, sim: Simulator, acct_lv: str
) -> None:
    """OKX fills `details[].mmr` in Futures mode (acctLv 2) only; a Multi-currency or
    Portfolio margin account (3, 4) is margined as a whole, in USD, at the top level
    (`adjEq`, `mmr`). Read per currency only, such an account's maintenance margin is 0:
    the margin switch could never trip however close it came to liquidation."""
    _account(sim).acct_lv = acct_lv
    quote = await venue.fetch_quote(SWAP)
    await venue.place_order(OrderRequest(SWAP, OrderSide.BUY, 5000.0, _label("margin"),
                                         price=quote.ask_price * 1.01,
                                         time_in_force=TimeInForce.IOC))  # fmt: skip
    margins = {m.currency: m for m in await venue.margin_summaries()}
    if acct_lv == "2":
        assert margins["BTC"].maintenance_margin > 0 and "USD" not in margins
        assert margins["BTC"].margined
        return
    # Per currency only for status and routing's free collateral: a borrowed currency's
    # negative equity inside a unified account is not a margin call of its own.
    assert not any(m.margined for c, m in margins.items() if c != "USD")
    usd = margins["USD"]
    assert usd.margined
    assert usd.maintenance_margin > 0 and usd.equity > 100_000.0  # USDT plus coins in USD
    assert usd.maintenance_margin / usd.equity < 0.01 and usd.available < usd.equity


async def test_free_collateral_of_a_unified_account_is_capped_by_the_accounts(
    venue: OkxVenue, sim: Simulator
) -> None:
    """Multi-currency margin: BTC has equity to spare, but the account has no free equity
    left (its USDT tied up by an initial margin add-on): routing must read no free BTC
    collateral, since OKX refuses a growing BTC order then (51008)."""
    before = {m.currency: m for m in await venue.margin_summaries()}
    assert before["BTC"].available == 10.0 and before["USD"].available > 100_000.0
    _account(sim).imr_add["USDT"] = 10_000_000.0
    after = {m.currency: m for m in await venue.margin_summaries()}
    assert after["USD"].available < 0.0
    assert after["BTC"].available < 0.0
    assert sim.okx.avail_eq(_account(sim), "BTC") == 10.0  # its own figure is unchanged
    quote = await venue.fetch_quote(SWAP)
    with pytest.raises(VenueError) as err:
        await venue.place_order(
            OrderRequest(SWAP, OrderSide.BUY, 100.0, _label("starved"),
                         price=quote.ask_price * 1.01, time_in_force=TimeInForce.IOC)
        )  # fmt: skip
    assert err.value.reason is RejectReason.INSUFFICIENT_FUNDS


async def test_an_okx_51008_is_a_funds_trip_of_that_account_only(
    tmp_path: Path, sim: Simulator, venue: OkxVenue
) -> None:
    """OKX's insufficient-funds refusal (`sCode` 51008), through the adapter into the
    executor with two accounts: a funds trip of the OKX account alone (REDUCE_ONLY, reason
    insufficient_funds), not a plain reject toward a reject streak; the other account and the
    portfolio trade on."""
    acct = _account(sim)
    acct.imr_add["BTC"] = 1_000.0  # OKX raised the initial margin: no free BTC equity left
    quote = await venue.fetch_quote(SWAP)
    journal = await Journal.open(tmp_path / "j.sqlite")
    try:
        trading = await TradingStateMachine.restore(journal, clock_ms=sim.now_ms)
        states = await AccountStates.restore(
            journal, trading, ("okx", "deribit"), clock_ms=sim.now_ms
        )

        async def sleep_ms(ms: int) -> None:
            sim.advance(ms)
            await asyncio.sleep(0)

        ex = Executor(
            {"okx": venue, "deribit": venue},  # the other account sends nothing here
            journal,
            trading,
            clock_ms=sim.now_ms,
            sleep_ms=sleep_ms,
            settings=ExecutorSettings(unknown_queries=2, reject_streak_limit=1),
            states=states,
            client_ids={"okx": codec_for("okx", "Q7xa")},
        )
        d = perp_decision(
            "funds-1", OrderSide.BUY, 1_000.0, mid_usd=quote.mid_price, ts_ms=sim.now_ms()
        )
        (leg,) = d.legs
        d = replace(d, legs=(replace(leg, venue="okx", instrument=SWAP),))
        assert d.legs[0].amount_unit is AmountUnit.USD  # the inverse swap: USD, as the perp

        (out,) = (await ex.execute(d)).legs
        assert out.outcome is LegOutcome.REJECTED
        (rejection,) = ex.rejections
        assert rejection.venue == "okx" and rejection.code == INSUFFICIENT_BALANCE
        assert acct.positions.get(SWAP) is None or acct.positions[SWAP].size == 0
        okx = states.machine("okx")
        assert okx.state is TradingState.REDUCE_ONLY
        # A funds trip, not a reject streak (the limit of 1 would have tripped that too).
        assert okx.snapshot.reason_codes == (ReasonCode.INSUFFICIENT_FUNDS,)
        assert states.machine("deribit").state is TradingState.ACTIVE
        assert states.portfolio.state is TradingState.ACTIVE
        assert trading.state is TradingState.ACTIVE
    finally:
        await journal.close()
