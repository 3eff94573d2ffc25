"""`SimExchange`: the simulator's engine, implementing `protocol.SimEngine`.

Synchronous and deterministic: market time moves on a fixed grid of `scenario.tick_ms`
(index processes, funding, option flow, settlements, resting-order fills and the per-tick
notifications), and every request is served at the clock's current time. The same scenario,
seed and sequence of requests at the same simulated times give the same results.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import structlog

from hedgerd.sim import settlement
from hedgerd.sim.clock import SimClock
from hedgerd.sim.deribit import marketdata
from hedgerd.sim.deribit.accounts import AccountState, Order, Trade
from hedgerd.sim.deribit.instruments import DAY_MS, HOUR_MS, InstrumentCatalog, SimInstrument
from hedgerd.sim.deribit.marketdata import CURRENCIES, SETTLEMENT_CURRENCIES
from hedgerd.sim.deribit.params import get_bool, get_float, get_str, invalid, req_str
from hedgerd.sim.deribit.portfolio import (
    OptionGreeks,
    account_summary,
    order_margin,
    position_json,
)
from hedgerd.sim.index_history import IndexPath, IndexPrehistory
from hedgerd.sim.market import UnderlyingMarket
from hedgerd.sim.matching import Fill, plan_fills, post_only_price
from hedgerd.sim.orderbook import InstrumentBook, SynthLevel, num
from hedgerd.sim.protocol import (
    ERR_BOOK_CLOSED,
    ERR_INTERNAL,
    ERR_INVALID_AMOUNT,
    ERR_INVALID_INSTRUMENT,
    ERR_METHOD_NOT_FOUND,
    ERR_NOT_ENOUGH_FUNDS,
    ERR_NOT_OPEN_ORDER,
    ERR_ORDER_NOT_FOUND,
    ERR_POST_ONLY_REJECT,
    ERR_PRICE_WRONG_TICK,
    ERR_REDUCE_ONLY,
    ERR_UNAUTHORIZED,
    ERR_UNSUPPORTED_ARG_COMBINATION,
    Account,
    DeribitError,
    EventSink,
)
from hedgerd.sim.scenario import Scenario, load_scenario
from hedgerd.sim.stats import TrailingStats
from hedgerd.sim.vol_index import VolIndexHistory
from hedgerd.venues.deribit.names import parse_instrument_name

log = structlog.get_logger(__name__)

TIF = ("good_til_cancelled", "good_til_day", "fill_or_kill", "immediate_or_cancel")
ORDER_TYPES = ("limit", "market")
KINDS_ANY = ("future", "option", "spot", "future_combo", "option_combo", "combo", "any")
# How long the list of subscribed market channels is reused (simulated time): the longer of
# these; `subscriptions_changed()` and `book_snapshot()` refresh it at once.
WANTS_REFRESH_MS = 100
WANTS_REFRESH_TICKS = 4
PRICE_BAND_FUTURE = 0.05  # min/max price: mark ± 5 %; orders beyond are clamped to it
# Deribit's currencies (the spec's wallet currencies, as public/get_currencies lists them): the
# ones not simulated are valid and simply empty (no instruments, zero balances), as an
# unfunded currency is on Deribit.
KNOWN_CURRENCIES = frozenset(c.currency for c in CURRENCIES)
NEW_ACCOUNT_BALANCES = {"BTC": 10.0, "ETH": 100.0, "USDC": 100_000.0}
ADMIN_TRADE_LABEL = "sim-admin"


class DepthLimit(Protocol):
    """A cap on the synthetic depth of some books (the server's `thin_depth` fault)."""

    @property
    def depth_amount(self) -> float:
        """Most amount a capped side holds, the instrument's amount unit."""
        ...

    @property
    def side(self) -> str:
        """`both`, `bids` or `asks`."""
        ...

    def matches(self, instrument_name: str) -> bool: ...


def rebuild_quantised(
    b: InstrumentBook,
    market_ms: int,
    tick: float,
    mark_half_step: tuple[float, float, float],
    caps: Sequence[DepthLimit],
    name: str,
) -> None:
    """Rebuild `b`'s synthetic levels at `market_ms` around (mark, half spread, level step),
    then apply the depth caps matching `name` (every venue's books). Quantised (mark to a
    quarter tick, spreads to a tick): books whose inputs did not move that far are not
    rebuilt, and the levels do not depend on when (or whether) the book was looked at before."""
    mark, half, step = mark_half_step
    q = 0.25 * tick
    mark = round(mark / q) * q
    half = round(half / tick) * tick
    step = max(tick, round(step / tick) * tick)
    if b.built_ms >= 0 and (mark, half, step) == (b.built_mark, b.built_half, b.built_step):
        b.built_ms = market_ms
        return
    b.rebuild(market_ms, mark, half, step)
    for cap in caps:
        if cap.matches(name):
            _cap_levels(b, cap)


def _cap_levels(b: InstrumentBook, cap: DepthLimit) -> None:
    """Keep at most `cap.depth_amount` of synthetic depth on the capped side(s), best first,
    in whole steps (contracts, or the option's minimum amount)."""
    inst = b.inst
    step = inst.min_trade_amount if inst.is_option else inst.contract_size
    for side in ("bids", "asks"):
        if cap.side not in ("both", side):
            continue
        left = cap.depth_amount
        kept: list[SynthLevel] = []
        for lvl in b.bids_synth if side == "bids" else b.asks_synth:
            size = min(lvl.size, math.floor(left / step + 1e-9) * step)
            if size <= 0:
                break
            kept.append(SynthLevel(lvl.price, round(size, 10), lvl.index))
            left -= size
            taken = b.depletion.get((side, lvl.index))
            if taken is not None and taken.taken > size:
                # Taken before the cap: at most the capped level is gone, and it refills at
                # the capped level's pace (not the full level's, which would take ages).
                taken.taken = size
        if side == "bids":
            b.bids_synth = kept
        else:
            b.asks_synth = kept
    b.dirty = True


def _trade_volume(
    inst: SimInstrument, amount: float, price: float, index: float
) -> tuple[float, float]:
    """A trade's size in coin of the underlying and in USD (the ticker's `volume` and
    `volume_usd`): inverse futures trade USD amounts, everything else coin; option prices are
    coin, so their USD size is taken at the index."""
    if inst.inverse and not inst.is_option:
        return amount / price, amount
    if inst.is_option:
        return amount, amount * index
    return amount, amount * price


def reserve_currency(order: Order) -> str:
    """The balance an open order holds funds in: the settlement currency, or for spot what
    the order would spend (USDC for a buy, the coin for a sell)."""
    inst = order.inst
    if inst.is_spot and order.direction == "sell":
        return inst.currency
    return inst.settlement_currency


class _NullSink:
    def wants(self, channel: str, account_id: str | None = None) -> bool:
        return False

    def publish(self, channel: str, data: Any, account_id: str | None = None) -> None:
        return None


Handler = Callable[[Mapping[str, Any], AccountState | None], Any]


class SimExchange:
    """The simulated Deribit. Build with a `Scenario` (None: the default BTC + ETH one)."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        clock: SimClock | None = None,
        sink: EventSink | None = None,
        seed: int | None = None,
    ) -> None:
        sc = scenario if scenario is not None else load_scenario()
        if seed is not None:
            sc = sc.model_copy(update={"seed": seed})
        self.scenario = sc
        self.clock = clock if clock is not None else SimClock(sc.start_ms, stepped=True)
        self.sink: EventSink = sink if sink is not None else _NullSink()
        self.tick_ms = sc.tick_ms
        start = self.clock.now_ms()
        self.start_ms = start
        self._market_ms = start  # last processed grid tick
        seq = np.random.SeedSequence(sc.seed)
        children = seq.spawn(len(sc.underlyings) + 2)
        self.markets: dict[str, UnderlyingMarket] = {}
        for u, child in zip(sc.underlyings, children, strict=False):
            self.markets[u.currency] = UnderlyingMarket(
                u, sc.funding, start, np.random.default_rng(child), sc.base_dir
            )
        self.flow_rng = np.random.default_rng(children[-2])
        self._vol_index: dict[str, VolIndexHistory] = {
            u.currency: VolIndexHistory(u, sc.seed, start) for u in sc.underlyings
        }
        # The index's history (`sim.index_history`): made up before the start, recorded after.
        self._index_pre: dict[str, IndexPrehistory] = {
            c: IndexPrehistory(m.spec, sc.seed, start, m.index_price)
            for c, m in self.markets.items()
        }
        self._index_path: dict[str, IndexPath] = {
            c: IndexPath(start, m.index_price) for c, m in self.markets.items()
        }
        self.catalog = InstrumentCatalog(sc.fees)
        self.books: dict[str, InstrumentBook] = {}
        self.accounts: dict[str, AccountState] = {}
        self._by_key: dict[str, Account] = {}
        self.orders: dict[str, Order] = {}  # every order ever, by id
        self._order_seq = 0
        self._trade_seq_global = 0
        self._trade_seq: dict[str, int] = {}
        self._last_trade: dict[str, float] = {}
        self._stats: dict[str, TrailingStats] = {}  # public trades of the last 24 h
        self._resting: set[str] = set()  # instruments with resting client orders
        self._settlement_prices: dict[str, float] = {}
        self._delivery_samples: dict[tuple[str, int], list[float]] = {}
        # (currency, expiry UTC ms) -> delivery price, USD: every expiry settled so far
        self.delivery_prices: dict[tuple[str, int], float] = {}
        self._last_listing_ms = start
        self._last_funding_ms = start
        self._last_portfolio_ms = start
        self._expired: list[SimInstrument] = []
        self._last_public: dict[str, deque[dict[str, Any]]] = {}
        self._wanted: list[tuple[SimInstrument, bool, bool, bool]] | None = None
        self._wanted_ms = start
        self._faults_done: set[int] = set()
        self._depth_caps: tuple[DepthLimit, ...] = ()
        for u in sc.underlyings:
            self.catalog.list_static(u, start)
            self.catalog.list_expiries(u, start, self.markets[u.currency].index_price)
        settlement.refresh_options(self)
        self._next_expiry_ms = settlement.next_expiry(self)
        for ccy, m in self.markets.items():
            self._settlement_prices[ccy] = m.index_price
        from hedgerd.sim.flow import OptionFlow  # late: flow uses the exchange's API

        self.flow = OptionFlow(self, sc.flow, self.flow_rng)
        for spec in sc.accounts:
            acct = self._new_account(spec.name, spec.api_key, spec.api_secret, spec.balances)
            for p in spec.positions:
                self._seed_position(acct, p)
        self._methods: dict[str, Handler] = self._method_table()
        # Other venues of the world on this market (sim/world.py): each runs its own tick
        # work right after this one moved the shared index and surface to `t`.
        self.followers: list[Callable[[int], None]] = []
        self.world: Any = None  # the SimWorld this venue belongs to, when built by one

    # ------------------------------------------------------------------ SimEngine API
    def set_sink(self, sink: EventSink) -> None:
        """Where notifications go (the server's subscription hub)."""
        self.sink = sink
        self._wanted = None

    set_event_sink = set_sink

    def now_ms(self) -> int:
        return self.clock.now_ms()

    @property
    def market_ms(self) -> int:
        """The last market step processed, UTC epoch ms (at most the clock's time)."""
        return self._market_ms

    def account_for_key(self, api_key: str) -> Account | None:
        return self._by_key.get(api_key)

    def add_account(
        self, api_key: str, api_secret: str, balances: Mapping[str, float] | None = None
    ) -> Account:
        """A trading account funded with 10 BTC, 100 ETH and 100,000 USDC (or `balances`)."""
        if api_key in self._by_key:
            return self._by_key[api_key]
        name = f"user{len(self.accounts) + 1}"
        while name in self.accounts:
            name += "x"
        self._new_account(name, api_key, api_secret, balances or NEW_ACCOUNT_BALANCES)
        return self._by_key[api_key]

    def dispatch(self, method: str, params: Mapping[str, Any], account: Account | None) -> Any:
        """Run one API method and return its `result`; bad requests raise `DeribitError`."""
        if not isinstance(method, str):
            raise DeribitError(ERR_METHOD_NOT_FOUND, "Method not found")
        handler = self._methods.get(method)
        if handler is None:
            raise DeribitError(ERR_METHOD_NOT_FOUND, "Method not found")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise invalid("params", "must be an object")
        acct: AccountState | None = None
        if method.startswith("private/"):
            if account is None or account.account_id not in self.accounts:
                raise DeribitError(ERR_UNAUTHORIZED, "unauthorized")
            acct = self.accounts[account.account_id]
        self._sync()
        try:
            return handler(params, acct)
        except DeribitError:
            raise
        except Exception as exc:  # a bug, not bad input: never leak a traceback
            log.exception("sim_engine_error", method=method)
            raise DeribitError(ERR_INTERNAL, "internal_server_error", {"reason": str(exc)}) from exc

    def cancel_all_for_account(self, account_id: str) -> int:
        acct = self.accounts.get(account_id)
        if acct is None:
            return 0
        return self._cancel_where(acct, lambda o: True, "cancel_on_disconnect")

    def advance_to(self, now_ms: int) -> None:
        """Process every market tick up to `now_ms` (the clock is not moved)."""
        while self._market_ms + self.tick_ms <= now_ms:
            self._tick(self._market_ms + self.tick_ms)

    def price_gap(self, currency: str, pct: float) -> None:
        """Jump `currency`'s index by `pct` percent now (fault `price_gap`)."""
        m = self.markets.get(currency.upper())
        if m is None:
            raise invalid("currency", "unknown currency")
        m.index.gap(pct)
        m.invalidate()  # no random draw: the path after the gap stays the seeded one

    def set_depth_caps(self, caps: Sequence[DepthLimit]) -> None:
        """Cap the synthetic depth of the matching books (fault `thin_depth`; empty: none).
        Every book is rebuilt on its next use, so takers and book notifications see it now."""
        self._depth_caps = tuple(caps)
        for b in self.books.values():
            b.built_ms = -1
            b.built_mark = math.nan
            b.dirty = True
        self._wanted = None

    def book_trade(
        self,
        account_id: str,
        instrument_name: str,
        direction: str,
        amount: float,
        price: float | None = None,
        label: str = ADMIN_TRADE_LABEL,
    ) -> dict[str, Any]:
        """Book a trade on an account as if another client had hit its quote (admin API): a
        filled maker order of `direction` (the account's side, `buy` or `sell`) for `amount`
        (the instrument's amount unit: USD for inverse futures, coin otherwise) at `price`
        (the instrument's price unit; None: the mark), published on the account's `user.*`
        channels like any fill. No margin check: the operator of the simulator decides."""
        acct = self.accounts.get(account_id)
        if acct is None:
            raise invalid("account", "unknown account")
        if direction not in ("buy", "sell"):
            raise invalid("direction", "must be buy or sell")
        inst = self._active_inst({"instrument_name": instrument_name})
        size = self._check_amount(inst, float(amount))
        px = self.mark_price(inst) if price is None else float(price)
        if not (px > 0 and math.isfinite(px)):
            raise invalid("price", "must be positive")
        px = max(inst.tick_size, inst.round_price(px))
        order, trade = self.book_fill(acct, inst, direction, size, px, label, self.now_ms())
        self._after_book_change(inst)
        return {"order": order.to_json(), "trades": [trade.to_json()]}

    def book_fill(
        self,
        acct: AccountState,
        inst: SimInstrument,
        direction: str,
        amount: float,
        price: float,
        label: str,
        t: int,
    ) -> tuple[Order, Trade]:
        """A filled maker order of `acct` with its trade at `t` (option flow, admin trades),
        published on the account's channels and as a public trade. `amount` and `price` in the
        instrument's units, already on its grid."""
        order = Order(
            order_id=self._next_order_id(inst),
            account_id=acct.account_id,
            inst=inst,
            direction=direction,
            amount=amount,
            price=price,
            order_type="limit",
            time_in_force="good_til_cancelled",
            post_only=False,
            reject_post_only=False,
            reduce_only=False,
            label=label,
            creation_ms=t,
            last_update_ms=t,
        )
        self.orders[order.order_id] = order
        tr = self._fill(acct, order, price, amount, "M", t)
        order.order_state = "filled"
        tr.order_state_after = "filled"
        self._publish_user(acct, inst, [order], [tr])
        self._public_trades(inst, [tr])
        return order, tr

    def admin_state(self) -> dict[str, Any]:
        """Figures for the admin endpoint."""
        return {
            "now_ms": self.now_ms(),
            "market_ms": self._market_ms,
            "seed": self.scenario.seed,
            "index": {c: m.index_price for c, m in self.markets.items()},
            "regimes": {c: m.index.regime_name for c, m in self.markets.items()},
            "instruments_active": len(self.catalog.active()),
            "accounts": len(self.accounts),
            "open_orders": sum(len(a.open_orders) for a in self.accounts.values()),
            "orders_total": len(self.orders),
            "trades_total": self._trade_seq_global,
        }

    # ------------------------------------------------------------------ accounts
    def _new_account(
        self, name: str, key: str, secret: str, balances: Mapping[str, float]
    ) -> AccountState:
        acct = AccountState(
            account_id=name,
            api_key=key,
            api_secret=secret,
            user_id=1000 + len(self.accounts) + 1,
            balances={c: float(balances.get(c, 0.0)) for c in SETTLEMENT_CURRENCIES},
            creation_ms=self.start_ms,
        )
        self.accounts[name] = acct
        self._by_key[key] = Account(name, key, secret)
        return acct

    def _seed_position(self, acct: AccountState, spec: Any) -> None:
        inst: SimInstrument | None
        if spec.instrument is not None:
            inst = self.catalog.get(spec.instrument)
            if inst is None:
                raise ValueError(f"scenario position: unknown instrument {spec.instrument}")
            if inst.is_spot:
                raise ValueError(
                    f"scenario position: {spec.instrument} is spot (fund the account's "
                    "balances instead: spot has no positions)"
                )
        else:
            if spec.currency not in self.markets:
                log.warning(
                    "sim_position_skipped", reason="currency not simulated", currency=spec.currency
                )
                return
            inst = self._pick_option(
                spec.currency, spec.option_type, spec.expiry_rank, spec.moneyness
            )
        price = spec.average_price if spec.average_price is not None else self.mark_price(inst)
        if inst.is_option:
            price = max(inst.tick_size, inst.round_price(price))
        acct.position(inst).apply_fill(float(spec.size), float(price))

    def _pick_option(self, ccy: str, opt_type: str, rank: int, moneyness: float) -> SimInstrument:
        strikes = self.catalog.strikes.get(ccy, {})
        expiries = sorted(strikes)
        if not expiries:
            raise ValueError(f"scenario position: no {ccy} options listed")
        exp = expiries[min(rank, len(expiries) - 1)]
        target = self.markets[ccy].index_price * moneyness
        k = min(strikes[exp], key=lambda x: abs(x - target))
        name = next(
            i.name
            for i in self.catalog.active()
            if i.is_option and i.expiry_ms == exp and i.strike == k and i.option_type == opt_type
        )
        inst = self.catalog.get(name)
        assert inst is not None
        return inst

    # ------------------------------------------------------------------ market views
    def _market(self, inst: SimInstrument) -> UnderlyingMarket:
        return self.markets[inst.currency]

    def index_price(self, currency: str) -> float:
        return self.markets[currency].index_price

    def vol_index(self, currency: str, at_ms: int) -> float:
        """DVOL (vol points) at `at_ms`: the 30-day ATM vol now from the start on, the made-up
        history before it (`sim.vol_index`)."""
        if at_ms >= self.start_ms:
            return 100.0 * self.markets[currency].atm_vol(30.0 / 365.0)
        return self._vol_index[currency].level(at_ms)

    def index_at(self, currency: str, at_ms: int) -> float:
        """The index (USD) at `at_ms`: now's from the last market step on, the simulated path
        (its first step of each minute) from the start, the made-up history before it
        (`sim.index_history`)."""
        if at_ms >= self._market_ms:
            return self.markets[currency].index_price
        if at_ms >= self.start_ms:
            return self._index_path[currency].level(at_ms)
        return self._index_pre[currency].level(at_ms)

    def mark_price(self, inst: SimInstrument) -> float:
        """Mark in the instrument's price unit (USD for futures, coin for options)."""
        m = self._market(inst)
        if inst.is_option:
            marks = m.option_marks()
            i = marks.index_of.get(inst.name)
            if i is None:  # expired: its delivery value
                return self._settlement_prices.get(inst.name, 0.0)
            return max(float(marks.price_coin[i]), 0.0)
        if inst.is_spot:
            return m.index_price  # USDC is taken at par with USD, as the index does
        if inst.perpetual:
            return m.perpetual_mark()
        return m.forward(inst.expiry_ms)

    def greeks(self, inst: SimInstrument) -> OptionGreeks:
        m = self._market(inst)
        marks = m.option_marks()
        i = marks.index_of.get(inst.name)
        if i is None:
            return OptionGreeks(self.mark_price(inst), 0.0, 0.0, 0.0, 0.0, 0.0, m.index_price)
        return OptionGreeks(
            mark_coin=max(float(marks.price_coin[i]), 0.0),
            iv=float(marks.iv[i]),
            delta=float(marks.delta[i]),
            gamma=float(marks.gamma[i]),
            vega=float(marks.vega[i]),
            theta=float(marks.theta[i]),
            underlying_price=float(marks.forward[i]),
        )

    def next_settlement_ms(self) -> int:
        """The next 08:00 UTC at or after the current market time."""
        t = self._market_ms
        day0 = t - t % DAY_MS
        s = day0 + 8 * HOUR_MS
        return s if s > t else s + DAY_MS

    def settlement_price(self, inst: SimInstrument) -> float:
        if inst.name in self._settlement_prices:
            return self._settlement_prices[inst.name]
        return self._settlement_prices.get(inst.currency, self.index_price(inst.currency))

    def book(self, inst: SimInstrument) -> InstrumentBook:
        """The instrument's book with synthetic levels placed around the current mark."""
        b = self.books.get(inst.name)
        if b is None:
            b = self.books[inst.name] = InstrumentBook(inst, self.scenario.book)
        if b.built_ms != self._market_ms:
            self._rebuild(b)
        return b

    def _rebuild(self, b: InstrumentBook) -> None:
        inst = b.inst
        spec = self.scenario.book
        m = self._market(inst)
        if inst.is_option:
            marks = m.option_marks()
            i = marks.index_of.get(inst.name)
            tick = inst.tick_size
            if i is None:
                mark, vega_coin = tick, 0.0
            else:
                mark = max(float(marks.price_coin[i]), tick)
                vega_coin = float(marks.vega[i]) / m.index_price
            half = max(tick, vega_coin * spec.option_half_spread_vol)
            step = max(tick, vega_coin * spec.option_level_step_vol)
        else:
            mark = self.mark_price(inst)
            half = mark * spec.future_half_spread_bps * 1e-4
            step = mark * spec.future_level_step_bps * 1e-4
        rebuild_quantised(
            b, self._market_ms, inst.tick_size, (mark, half, step), self._depth_caps, inst.name
        )

    def lookup(self, params: Mapping[str, Any], name: str = "instrument_name") -> SimInstrument:
        """The instrument named by `params[name]`: a name that is not Deribit's format gets
        -32602 'wrong format'; a well-formed one that is not listed gets 10020
        invalid_or_unsupported_instrument (what Deribit answers)."""
        n = req_str(params, name)
        inst = self.catalog.get(n)
        if inst is not None:
            return inst
        try:
            parse_instrument_name(n)
        except ValueError:
            raise invalid(name, "wrong format") from None
        raise DeribitError(
            ERR_INVALID_INSTRUMENT,
            "invalid_or_unsupported_instrument",
            {"param": name, "reason": "instrument not found"},
        )

    _inst = lookup

    def _active_inst(self, params: Mapping[str, Any]) -> SimInstrument:
        inst = self._inst(params)
        if not inst.is_active:
            raise DeribitError(ERR_BOOK_CLOSED, "book_closed", {"instrument_name": inst.name})
        return inst

    # ------------------------------------------------------------------ time
    def _sync(self) -> None:
        now = self.clock.now_ms()
        if now >= self._market_ms + self.tick_ms:
            self.advance_to(now)

    def _tick(self, t: int) -> None:
        dt = t - self._market_ms
        for c, m in self.markets.items():
            m.step(t, dt)
            self._index_path[c].record(t, m.index_price)
        self._market_ms = t
        self._apply_scheduled_faults(t)
        settlement.sample_delivery(self, t)
        settlement.settle_due(self, t)
        if t - self._last_listing_ms >= HOUR_MS:
            settlement.list_new(self, t)
        if t - self._last_funding_ms >= 1000:
            settlement.accrue_funding(self, t)
        self.flow.on_tick(t, dt)
        if self._resting:
            self._fill_crossed_resting(t)
        self._publish_market(t)
        if t - self._last_portfolio_ms >= 1000:
            self._last_portfolio_ms = t
            self._publish_portfolios(None)
        for follow in self.followers:
            follow(t)

    def _apply_scheduled_faults(self, t: int) -> None:
        for i, f in enumerate(self.scenario.faults):
            if f.kind != "price_gap" or i in self._faults_done:
                continue
            if f.due_ms(self.start_ms) <= t:
                self._faults_done.add(i)
                ccy = str(f.params.get("currency", "BTC"))
                if ccy.upper() in self.markets:
                    self.price_gap(ccy, float(f.params.get("pct", -5.0)))

    def _public_trades(self, inst: SimInstrument, trades: list[Trade]) -> None:
        """Record fills as the venue's public trades (`trades.X`, get_last_trades_*)."""
        if not trades:
            return
        rows = [tr.public_json() for tr in trades]
        stats = self.trade_stats(inst)
        for tr in trades:
            coin, usd = _trade_volume(inst, tr.amount, tr.price, tr.index_price)
            stats.add(tr.timestamp, tr.price, coin, usd)
        book = self._last_public.setdefault(inst.name, deque(maxlen=1000))
        book.extend(rows)
        ch = "trades." + inst.name
        if self.sink.wants(ch):
            self.sink.publish(ch, rows)

    def trade_stats(self, inst: SimInstrument) -> TrailingStats:
        """The instrument's public trades of the last 24 h (ticker `stats`, `last_price`)."""
        stats = self._stats.get(inst.name)
        if stats is None:
            stats = self._stats[inst.name] = TrailingStats()
        return stats

    def last_trades(self, inst: SimInstrument) -> list[dict[str, Any]]:
        """Recent public trades of `inst`, oldest first."""
        return list(self._last_public.get(inst.name, ()))

    def _publish_market(self, t: int) -> None:
        sink = self.sink
        if isinstance(sink, _NullSink):
            return
        for ccy, m in self.markets.items():
            idx = f"{ccy.lower()}_usd"
            if sink.wants("markprice.options." + idx):
                mk = m.option_marks()
                sink.publish(
                    "markprice.options." + idx,
                    [
                        {
                            "timestamp": t,
                            "mark_price": num(round(float(mk.price_coin[i]), 8)),
                            "iv": num(round(float(mk.iv[i]), 4)),
                            "instrument_name": name,
                        }
                        for i, name in enumerate(mk.names)
                    ],
                )
        for ccy, m in self.markets.items():
            ch = f"deribit_price_index.{ccy.lower()}_usd"
            if sink.wants(ch):
                sink.publish(
                    ch,
                    {
                        "timestamp": t,
                        "price": num(round(m.index_price, 2)),
                        "index_name": f"{ccy.lower()}_usd",
                    },
                )
        for inst, book, ticker, perp in self._wanted_channels(t):
            if not inst.is_active:
                continue
            name = inst.name
            if book and sink.wants("book." + name):
                self._flush_book(self.book(inst), t)
            if ticker and sink.wants("ticker." + name):
                sink.publish("ticker." + name, marketdata.ticker_json(self, inst))
            if perp and sink.wants("perpetual." + name):
                m = self._market(inst)
                sink.publish(
                    "perpetual." + name,
                    {
                        "timestamp": t,
                        "interest": num(round(m.funding_8h(), 8)),
                        "index_price": num(round(m.index_price, 4)),
                    },
                )

    def _wanted_channels(self, t: int) -> list[tuple[SimInstrument, bool, bool, bool]]:
        """Instruments with a subscribed book, ticker or perpetual channel. Asking the sink
        about every instrument costs more than a fast tick, so the answer is kept for
        a few ticks (a new subscriber starts from its snapshot, and the first change it sees
        is computed against that snapshot, so nothing is lost)."""
        if self._wanted is not None and t - self._wanted_ms < max(
            WANTS_REFRESH_MS, WANTS_REFRESH_TICKS * self.tick_ms
        ):
            return self._wanted
        sink = self.sink
        out = []
        for inst in self.catalog.by_name.values():
            if not inst.is_active:
                continue
            name = inst.name
            book = sink.wants("book." + name)
            ticker = sink.wants("ticker." + name)
            perp = inst.perpetual and sink.wants("perpetual." + name)
            if book or ticker or perp:
                out.append((inst, book, ticker, perp))
        self._wanted = out
        self._wanted_ms = t
        return out

    def subscriptions_changed(self) -> None:
        """Tell the engine the set of subscribed channels changed (optional: without it,
        new ticker/book subscriptions are noticed within a few ticks)."""
        self._wanted = None

    def _flush_book(self, b: InstrumentBook, t: int) -> None:
        ch = "book." + b.inst.name
        if b.published is None:
            b.snapshot(t)  # starts the change_id chain; the server sends its own snapshot
            return
        change = b.change(t)
        if change is not None and self.sink.wants(ch):
            self.sink.publish(ch, change)

    def book_snapshot(self, instrument_name: str) -> dict[str, Any]:
        """A `book.{instrument}` snapshot notification (all levels) for a new subscriber.

        It is the state the current subscribers were last sent (nothing is published here),
        so the next change, to everyone, continues from its `change_id`."""
        inst = self.catalog.get(instrument_name)
        if inst is None:
            raise invalid("instrument_name", "instrument not found")
        self._wanted = None  # start this subscriber's changes on the next tick
        b = self.book(inst)
        now = self.now_ms()
        if b.published is None:
            return b.snapshot(now)
        bids, asks = b.published
        return {
            "type": "snapshot",
            "timestamp": now,
            "instrument_name": inst.name,
            "change_id": b.change_id,
            "bids": [["new", num(p), num(bids[p])] for p in sorted(bids, reverse=True)],
            "asks": [["new", num(p), num(asks[p])] for p in sorted(asks)],
        }

    def _after_book_change(self, inst: SimInstrument) -> None:
        if self.sink.wants("book." + inst.name):
            self._flush_book(self.book(inst), self.now_ms())

    def _publish_user(
        self, acct: AccountState, inst: SimInstrument, orders: list[Order], trades: list[Trade]
    ) -> None:
        sink = self.sink
        aid = acct.account_id
        suffix = f"{inst.kind}.{inst.channel_currency}"
        if orders and sink.wants("user.orders." + suffix, aid):
            for o in orders:
                sink.publish("user.orders." + suffix, o.to_json(), aid)
        if trades and sink.wants("user.trades." + suffix, aid):
            sink.publish("user.trades." + suffix, [tr.to_json() for tr in trades], aid)
        if sink.wants("user.changes." + suffix, aid):
            pos = acct.positions.get(inst.name)
            sink.publish(
                "user.changes." + suffix,
                {
                    "instrument_name": inst.name,
                    "trades": [tr.to_json() for tr in trades],
                    "orders": [o.to_json() for o in orders],
                    "positions": [position_json(pos, self)] if pos is not None else [],
                },
                aid,
            )
        if trades:
            for ccy in inst.currencies:  # a spot trade moves both of its balances
                self._publish_portfolios(acct, ccy)

    def _publish_portfolios(self, only: AccountState | None, currency: str | None = None) -> None:
        sink = self.sink
        accts = [only] if only is not None else list(self.accounts.values())
        for acct in accts:
            for ccy in [currency] if currency else SETTLEMENT_CURRENCIES:
                ch = f"user.portfolio.{ccy.lower()}"
                if sink.wants(ch, acct.account_id):
                    sink.publish(ch, account_summary(acct, ccy, self, False), acct.account_id)

    # ------------------------------------------------------------------ matching
    def _next_order_id(self, inst: SimInstrument) -> str:
        self._order_seq += 1
        n = 30_000_000_000 + self._order_seq
        ccy = inst.settlement_currency
        return str(n) if ccy == "BTC" else f"{ccy}-{n}"

    def _check_amount(self, inst: SimInstrument, amount: float) -> float:
        step = inst.min_trade_amount if inst.is_option else inst.contract_size
        if amount <= 0:
            raise invalid("amount", "must be positive")
        q = amount / step
        if abs(q - round(q)) > 1e-6 * max(1.0, q):
            raise invalid("amount", f"must be a multiple of {num(step)}")
        if amount < inst.min_trade_amount - 1e-12:
            raise DeribitError(ERR_INVALID_AMOUNT, "qty_too_low", {"param": "amount"})
        return float(f"{round(q) * step:.10g}")

    def _price_band(self, inst: SimInstrument) -> tuple[float, float]:
        mark = self.mark_price(inst)
        if inst.is_option:
            return inst.tick_size, inst.round_price(max(mark * 2, mark + 0.05), "up")
        return (
            inst.round_price(mark * (1 - PRICE_BAND_FUTURE), "up"),
            inst.round_price(mark * (1 + PRICE_BAND_FUTURE), "down"),
        )

    def _place(self, params: Mapping[str, Any], acct: AccountState | None, direction: str) -> Any:
        assert acct is not None
        inst = self._active_inst(params)
        amount_in = get_float(params, "amount")
        contracts = get_float(params, "contracts")
        if amount_in is None and contracts is None:
            raise invalid("amount", "value required")
        if amount_in is None:
            assert contracts is not None
            amount_in = contracts * inst.contract_size
        elif contracts is not None and abs(contracts * inst.contract_size - amount_in) > 1e-9:
            raise invalid("contracts", "amount and contracts do not match")
        amount = self._check_amount(inst, amount_in)
        otype = get_str(params, "type", default="limit")
        if otype not in ORDER_TYPES:
            raise invalid("type", "unsupported order type")
        tif = get_str(params, "time_in_force", default="good_til_cancelled", choices=TIF)
        assert tif is not None
        label = get_str(params, "label", default="", max_len=64) or ""
        post_only = get_bool(params, "post_only", False)
        reject_post_only = get_bool(params, "reject_post_only", False)
        reduce_only = get_bool(params, "reduce_only", False)
        price = get_float(params, "price")
        if otype == "limit":
            if price is None:
                raise invalid("price", "value required")
            if price <= 0:
                raise invalid("price", "must be positive")
            if not inst.is_on_tick(price):
                raise DeribitError(
                    ERR_PRICE_WRONG_TICK,
                    "price_wrong_tick",
                    {"param": "price", "reason": "must conform to tick size"},
                )
            price = inst.round_price(price)
            # Deribit clamps buys above max_price and sells below min_price to the band
            lo, hi = self._price_band(inst)
            if direction == "buy" and price > hi:
                price = hi
            if direction == "sell" and price < lo:
                price = lo
        else:
            price = None
            post_only = False
        if post_only and tif in ("fill_or_kill", "immediate_or_cancel"):
            raise DeribitError(
                ERR_UNSUPPORTED_ARG_COMBINATION,
                "unsupported_arg_combination",
                {"param": "post_only", "reason": "post_only with IOC/FOK"},
            )
        now = self.now_ms()
        order = Order(
            order_id="",
            account_id=acct.account_id,
            inst=inst,
            direction=direction,
            amount=amount,
            price=price,
            order_type=otype,
            time_in_force=tif,
            post_only=post_only,
            reject_post_only=reject_post_only,
            reduce_only=reduce_only,
            label=label,
            creation_ms=now,
            last_update_ms=now,
        )
        pos = acct.positions.get(inst.name)
        pos_size = pos.size if pos is not None else 0.0
        if reduce_only:
            reducing = -pos_size if direction == "buy" else pos_size
            if reducing <= 0:
                raise DeribitError(
                    ERR_REDUCE_ONLY,
                    "reduce_only_order_would_increase_position",
                    {"param": "reduce_only"},
                )
            # like Deribit: the amount is cut to what closes the position
            order.amount = min(amount, float(f"{reducing:.10g}"))
        else:
            self._check_funds(acct, order, pos_size)
        return self._execute(acct, order, new=True)

    def _check_funds(
        self, acct: AccountState, order: Order, pos_size: float, held: float = 0.0
    ) -> None:
        """Refuse (10009) an order whose margin, or for spot the balance it would spend,
        exceeds the available funds plus `held` (what the order already holds, on edits)."""
        if order.inst.is_spot and order.price is None and order.direction == "buy":
            # a market buy may walk the book up to the band: hold what that would cost
            order.price = self._price_band(order.inst)[1]
            need = order_margin(order, pos_size, self)
            order.price = None
        else:
            need = order_margin(order, pos_size, self)
        if need <= 0:
            return
        summary = account_summary(acct, reserve_currency(order), self)
        if need > float(summary["available_funds"]) + held + 1e-12:
            raise DeribitError(
                ERR_NOT_ENOUGH_FUNDS,
                "not_enough_funds",
                {"required": num(need), "available": summary["available_funds"]},
            )

    def _execute(self, acct: AccountState, order: Order, new: bool) -> dict[str, Any]:
        """Match `order` (new or edited), rest or cancel what is left, publish."""
        inst = order.inst
        now = self.now_ms()
        book = self.book(inst)
        if order.post_only and order.price is not None:
            px, crossed = post_only_price(book, order, now)
            if crossed and (order.reject_post_only or px is None):
                if not new:
                    self._close_order(acct, order, "cancelled", "edit_post_only_reject", now)
                raise DeribitError(ERR_POST_ONLY_REJECT, "post_only_reject", {"param": "price"})
            order.price = px
        if new:
            order.order_id = self._next_order_id(inst)
            self.orders[order.order_id] = order
        step = inst.min_trade_amount if inst.is_option else inst.contract_size
        fills: list[Fill] = []
        if not order.post_only:
            fills = plan_fills(
                book, order.direction, order.price, order.remaining, acct.account_id, now, step
            )
            if order.time_in_force == "fill_or_kill":
                got = sum(f.amount for f in fills)
                if got + 1e-9 < order.remaining:
                    fills = []
        trades: list[Trade] = []
        touched_makers: list[tuple[AccountState, Order, Trade]] = []
        for f in fills:
            tr = self._fill(acct, order, f.price, f.amount, "T", now)
            trades.append(tr)
            if f.maker is not None:
                macct = self.accounts[f.maker.account_id]
                mtr = self._fill(macct, f.maker, f.price, f.amount, "M", now)
                if f.maker.remaining <= 0:
                    self._close_order(macct, f.maker, "filled", None, now, publish=False)
                else:
                    self._reserve(f.maker)
                touched_makers.append((macct, f.maker, mtr))
            elif f.level is not None:
                side = "asks" if order.direction == "buy" else "bids"
                book.take(side, f.level, f.amount, now)
        order.last_update_ms = now
        if order.remaining <= 0:
            order.order_state = "filled"
            acct.open_orders.pop(order.order_id, None)
            self._unrest(order)
        elif order.order_type == "market" or order.time_in_force in (
            "fill_or_kill",
            "immediate_or_cancel",
        ):
            order.order_state = "cancelled"
            acct.open_orders.pop(order.order_id, None)
            self._unrest(order)
        else:
            acct.open_orders[order.order_id] = order
            self._rest(order)
        for tr in trades:
            tr.order_state_after = order.order_state
        self._publish_user(acct, inst, [order], trades)
        self._public_trades(inst, trades)
        for macct, mo, mtr in touched_makers:
            mtr.order_state_after = mo.order_state
            self._publish_user(macct, inst, [mo], [mtr])
        self._after_book_change(inst)
        return {"order": order.to_json(), "trades": [t.to_json() for t in trades]}

    def _fill(
        self, acct: AccountState, order: Order, price: float, amount: float, liq: str, now: int
    ) -> Trade:
        """Book one fill to `acct`: position, balance (premium, P&L, fee), trade record.
        A spot fill has no position: it moves the coin and the USDC balance at once."""
        inst = order.inst
        ccy = inst.settlement_currency
        rate = inst.maker_commission if liq == "M" else inst.taker_commission
        if inst.is_option:
            fee = min(rate * amount, self.scenario.fees.option_fee_cap * price * amount)
            if rate < 0:
                fee = rate * amount
        elif inst.inverse:
            fee = amount / price * rate
        else:
            fee = amount * price * rate
        signed = amount if order.direction == "buy" else -amount
        realized = 0.0
        if inst.is_spot:
            # coin in, USDC out (or the reverse); the fee is USDC, of the USDC notional
            acct.balances[inst.currency] = acct.balances.get(inst.currency, 0.0) + signed
            acct.balances[ccy] -= signed * price
        else:
            pos = acct.position(inst)
            realized = pos.apply_fill(signed, price)
            if inst.is_option:
                acct.balances[ccy] -= signed * price
            else:
                acct.balances[ccy] += realized
        acct.balances[ccy] -= fee
        acct.fees_paid[ccy] = acct.fees_paid.get(ccy, 0.0) + fee
        order.filled_amount = round(order.filled_amount + amount, 10)
        fb = self.books.get(inst.name)
        if fb is not None:
            fb.dirty = True
        order.notional_filled += amount * price
        order.inverse_notional += amount / price
        order.commission += fee
        order.last_update_ms = now
        self._trade_seq_global += 1
        seq = self._trade_seq[inst.name] = self._trade_seq.get(inst.name, 0) + 1
        last = self._last_trade.get(inst.name)
        tick_dir = 1 if last is None or price == last else (0 if price > last else 2)
        self._last_trade[inst.name] = price
        tid = str(400_000_000 + self._trade_seq_global)
        m = self._market(inst)
        iv = up = None
        if inst.is_option:
            g = self.greeks(inst)
            iv, up = g.iv, g.underlying_price
        if inst.is_spot:
            tid = f"{inst.name}-{tid}"  # Deribit's spot trade ids: "BTC_USDC-1041164"
        elif ccy != "BTC":
            tid = f"{ccy}-{tid}"
        tr = Trade(
            trade_id=tid,
            trade_seq=seq,
            account_id=acct.account_id,
            order=order,
            inst=inst,
            direction=order.direction,
            price=price,
            amount=amount,
            fee=fee,
            fee_currency=ccy,
            liquidity=liq,
            timestamp=now,
            index_price=m.index_price,
            mark_price=self.mark_price(inst),
            tick_direction=tick_dir,
            order_state_after=order.order_state,
            profit_loss=realized,
            iv=iv,
            underlying_price=up,
        )
        acct.trades.append(tr)
        return tr

    def _reserve(self, order: Order) -> None:
        """Hold (or update) the initial margin of an open order; 0 once it is closed."""
        acct = self.accounts[order.account_id]
        if order.is_open and order.remaining > 0:
            pos = acct.positions.get(order.inst.name)
            new = order_margin(order, pos.size if pos is not None else 0.0, self)
        else:
            new = 0.0
        ccy = reserve_currency(order)
        # spot orders hold the balance they would spend (`spot_reserve`), not margin
        held = acct.spot_reserve if order.inst.is_spot else acct.open_orders_margin
        held[ccy] = held.get(ccy, 0.0) + (new - order.reserved_margin)
        if not acct.open_orders:  # no drift when nothing is open
            acct.open_orders_margin.clear()
            acct.spot_reserve.clear()
        order.reserved_margin = new

    def _rest(self, order: Order) -> None:
        if self.book(order.inst).add_order(order, self._order_seq + 1):
            self._order_seq += 1
        self._resting.add(order.inst.name)
        self._reserve(order)

    def _unrest(self, order: Order) -> None:
        if order.reserved_margin:
            self._reserve(order)
        b = self.books.get(order.inst.name)
        if b is not None and b.remove_order(order):
            self._resting.discard(order.inst.name)

    def _close_order(
        self,
        acct: AccountState,
        order: Order,
        state: str,
        reason: str | None,
        now: int,
        publish: bool = True,
    ) -> None:
        order.order_state = state
        if reason is not None:
            order.cancel_reason = reason
        order.last_update_ms = now
        acct.open_orders.pop(order.order_id, None)
        self._unrest(order)
        if publish:
            self._publish_user(acct, order.inst, [order], [])

    def _fill_crossed_resting(self, t: int) -> None:
        """Resting client orders the moving market has crossed fill as makers at their
        limit price (the synthetic market traded through them)."""
        for name in sorted(self._resting):
            inst = self.catalog.get(name)
            if inst is None or not inst.is_active:
                continue
            b = self.book(inst)
            best_bid = b.bids_synth[0].price if b.bids_synth else None
            best_ask = b.asks_synth[0].price if b.asks_synth else None
            hits = [
                o
                for o in b.bids_orders
                if best_ask is not None and o.price is not None and o.price >= best_ask
            ]
            hits += [
                o
                for o in b.asks_orders
                if best_bid is not None and o.price is not None and o.price <= best_bid
            ]
            for o in hits:
                acct = self.accounts[o.account_id]
                assert o.price is not None
                tr = self._fill(acct, o, o.price, o.remaining, "M", t)
                o.order_state = "filled"
                tr.order_state_after = "filled"
                acct.open_orders.pop(o.order_id, None)
                self._unrest(o)
                self._publish_user(acct, inst, [o], [tr])
                self._public_trades(inst, [tr])
            if hits:
                self._after_book_change(inst)

    def _cancel_where(
        self, acct: AccountState, pred: Callable[[Order], bool], reason: str = "user_request"
    ) -> int:
        now = self.now_ms()
        victims = [o for o in acct.open_orders.values() if pred(o)]
        victims.sort(key=lambda o: o.order_id)
        touched: set[str] = set()
        for o in victims:
            self._close_order(acct, o, "cancelled", reason, now)
            touched.add(o.inst.name)
        for name in sorted(touched):
            inst = self.catalog.get(name)
            if inst is not None:
                self._after_book_change(inst)
        return len(victims)

    # ------------------------------------------------------------------ JSON views
    def _method_table(self) -> dict[str, Handler]:
        from hedgerd.sim.deribit import methods

        return methods.table(self)

    def check_currency(
        self, params: Mapping[str, Any], *, allow_any: bool, required: bool = True
    ) -> str | None:
        ccy = get_str(params, "currency", required=required)
        if ccy is None:
            return None
        ccy_u = ccy.upper()
        allowed = KNOWN_CURRENCIES | ({"ANY"} if allow_any else set())
        if ccy_u not in allowed:
            raise invalid("currency", "invalid currency")
        return None if ccy_u == "ANY" else ccy_u

    def check_kind(self, params: Mapping[str, Any]) -> str | None:
        kind = get_str(params, "kind")
        if kind is None:
            return None
        if kind not in KINDS_ANY:
            raise invalid("kind", "invalid kind")
        return None if kind == "any" else kind

    def order_of(self, acct: AccountState, params: Mapping[str, Any]) -> Order:
        oid = req_str(params, "order_id")
        o = self.orders.get(oid)
        if o is None or o.account_id != acct.account_id:
            raise DeribitError(ERR_ORDER_NOT_FOUND, "order_not_found", {"param": "order_id"})
        return o

    def edit(self, params: Mapping[str, Any], acct: AccountState) -> dict[str, Any]:
        o = self.order_of(acct, params)
        if not o.is_open:
            raise DeribitError(ERR_NOT_OPEN_ORDER, "not_open_order", {"param": "order_id"})
        inst = o.inst
        amount_in = get_float(params, "amount")
        contracts = get_float(params, "contracts")
        if amount_in is None and contracts is not None:
            amount_in = contracts * inst.contract_size
        amount = self._check_amount(inst, amount_in) if amount_in is not None else o.amount
        if amount < o.filled_amount - 1e-12:
            raise invalid("amount", "less than filled amount")
        price = get_float(params, "price")
        if o.order_type == "limit":
            if price is None:
                price = o.price
            elif price <= 0:
                raise invalid("price", "must be positive")
            elif not inst.is_on_tick(price):
                raise DeribitError(
                    ERR_PRICE_WRONG_TICK,
                    "price_wrong_tick",
                    {"param": "price", "reason": "must conform to tick size"},
                )
        if "post_only" in params:
            o.post_only = get_bool(params, "post_only")
        if "reject_post_only" in params:
            o.reject_post_only = get_bool(params, "reject_post_only")
        if "reduce_only" in params:
            o.reduce_only = get_bool(params, "reduce_only")
        self._unrest(o)
        old_amount, old_price = o.amount, o.price
        o.amount = amount
        o.price = inst.round_price(price) if price is not None else None
        if inst.is_spot and o.remaining > 0:
            # a spot order spends balance, not margin: a bigger or dearer one must still be
            # covered, or it could take the balance below zero
            try:
                self._check_funds(acct, o, 0.0, held=o.reserved_margin)
            except DeribitError:
                o.amount, o.price = old_amount, old_price
                self._rest(o)
                raise
        o.replaced = True
        if o.remaining <= 0:
            self._close_order(acct, o, "filled", None, self.now_ms())
            return {"order": o.to_json(), "trades": []}
        return self._execute(acct, o, new=False)

    def place(self, params: Mapping[str, Any], acct: AccountState | None, direction: str) -> Any:
        return self._place(params, acct, direction)

    def close_position(self, params: Mapping[str, Any], acct: AccountState) -> Any:
        inst = self._active_inst(params)
        otype = get_str(params, "type", required=True, choices=ORDER_TYPES)
        pos = acct.positions.get(inst.name)
        if pos is None or pos.size == 0:
            raise DeribitError(
                ERR_REDUCE_ONLY,
                "reduce_only_order_would_increase_position",
                {"param": "instrument_name", "reason": "no position"},
            )
        p: dict[str, Any] = {
            "instrument_name": inst.name,
            "amount": abs(pos.size),
            "type": otype,
            "reduce_only": True,
        }
        if otype == "limit":
            price = get_float(params, "price", required=True)
            p["price"] = price
        return self._place(p, acct, "sell" if pos.size > 0 else "buy")

    def cancel(self, params: Mapping[str, Any], acct: AccountState) -> Any:
        o = self.order_of(acct, params)
        if not o.is_open:
            raise DeribitError(ERR_NOT_OPEN_ORDER, "not_open_order", {"param": "order_id"})
        self._close_order(acct, o, "cancelled", "user_request", self.now_ms())
        self._after_book_change(o.inst)
        return o.to_json()

    def cancel_where(self, acct: AccountState, pred: Callable[[Order], bool]) -> int:
        return self._cancel_where(acct, pred)

    # ------------------------------------------------------------------ market data
    def ticker(self, inst: SimInstrument) -> dict[str, Any]:
        """`public/ticker` of `inst`."""
        return marketdata.ticker_json(self, inst)

    def order_book(self, inst: SimInstrument, depth: int) -> dict[str, Any]:
        """`public/get_order_book` of `inst`, `depth` levels a side."""
        return marketdata.order_book_json(self, inst, depth)

    def currencies_json(self) -> list[dict[str, Any]]:
        """`public/get_currencies`."""
        return marketdata.currencies_json(self)
