"""`OkxVenue`: the OKX venue of the simulated world (engine side, no wire code).

It owns its instruments, order books, matching, accounts (unified account, net position mode,
cross margin per currency), fees, funding (every 8 h at 00/08/16 UTC) and the
`cancel-all-after` dead-man timer. Prices come from the world's shared market: the index and
the option surface (through the Deribit venue's marks of the mirrored instruments), with this
venue's own swap basis and funding rate. Amounts are OKX contracts (spot: coin).

Synchronous and deterministic, like `SimExchange`: `advance_to(t)` runs after the world moved
its market to `t`; requests are served at the clock's time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import structlog

from hedgerd.sim.deribit.accounts import Position
from hedgerd.sim.deribit.instruments import DAY_MS, HOUR_MS
from hedgerd.sim.exchange import DepthLimit, rebuild_quantised
from hedgerd.sim.matching import Fill, best_opposite, plan_fills
from hedgerd.sim.okx import errors
from hedgerd.sim.okx.accounts import OkxAccount, OkxCredentials, OkxFill, OkxOrder
from hedgerd.sim.okx.errors import OrderRejectedError, param_error
from hedgerd.sim.okx.instruments import OkxInstrument, mirror, static_instruments
from hedgerd.sim.orderbook import InstrumentBook
from hedgerd.sim.scenario import BookSpec, OkxAccountSpec, OkxVenueSpec

if TYPE_CHECKING:
    from hedgerd.sim.exchange import SimExchange

log = structlog.get_logger(__name__)

ORD_TYPES = ("market", "limit", "post_only", "ioc", "fok", "optimal_limit_ioc")
CLORDID_MAX = 32
FUNDING_PERIOD_MS = 8 * HOUR_MS
FUTURES_IM_RATE = 0.01  # initial margin, fraction of notional (100x max leverage)
OPTION_SHORT_IM = 0.1  # short options: 0.1 coin of underlying per coin, plus the mark
CANCEL_ALL_AFTER_RANGE_S = (10, 120)
NEW_ACCOUNT_BALANCES = {"BTC": 10.0, "ETH": 100.0, "USDT": 100_000.0}
FIRST_ORDER_ID = 2_900_000_000_000_000_000
FIRST_TRADE_ID = 700_000_000
FIRST_BILL_ID = 600_000_000_000_000_000
FIRST_INST_CODE = 10_001
ADMIN_TAG = "simAdmin"
#: The spec's funding and basis figures the admin API may change while the venue runs.
CARRY_FIELDS = ("funding_rate_8h", "swap_basis_bps", "future_basis_bps_per_year")


class VenueListener(Protocol):
    """Where the venue reports changes (the OKX WebSocket hub)."""

    def on_orders(self, account_id: str, orders: list[OkxOrder]) -> None: ...

    def on_account(self, account_id: str) -> None: ...

    def on_tick(self, now_ms: int) -> None: ...


class _NullListener:
    def on_orders(self, account_id: str, orders: list[OkxOrder]) -> None:
        return None

    def on_account(self, account_id: str) -> None:
        return None

    def on_tick(self, now_ms: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class OptionRisk:
    """An option's Greeks per coin of underlying: BS delta; gamma per USD; vega USD per 1.00
    vol; theta USD per year; mark in coin; iv a fraction; forward in USD."""

    mark_coin: float
    iv: float
    delta_bs: float
    gamma: float
    vega: float
    theta: float
    forward: float


def _clean(x: float) -> float:
    return float(f"{x:.12g}") if x != 0 else 0.0


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


class OkxVenue:
    """The simulated OKX. `world` is the Deribit venue whose markets (index, surface) and
    listing this venue shares; both run on the world's clock."""

    name = "okx"

    def __init__(self, world: SimExchange, spec: OkxVenueSpec) -> None:
        self.world = world
        self.spec = spec
        self.clock = world.clock
        self.listener: VenueListener = _NullListener()
        self.instruments: dict[str, OkxInstrument] = {}
        self.books: dict[str, InstrumentBook] = {}
        self.accounts: dict[str, OkxAccount] = {}
        self._by_key: dict[str, OkxCredentials] = {}
        self.orders: dict[str, OkxOrder] = {}
        self._order_seq = 0
        self._trade_seq = 0
        self._bill_seq = 0
        self._uid_seq = 0
        self._seen_world = 0
        self._resting: set[str] = set()
        self._depth_caps: tuple[DepthLimit, ...] = ()
        self._last: dict[str, tuple[float, float]] = {}  # instId -> (last px, last sz)
        self._hi_lo: dict[str, tuple[float, float, float]] = {}  # open, high, low since start
        self._vol: dict[str, float] = {}  # contracts traded
        start = world.market_ms
        self._market_ms = start
        self._last_funding_ms = start - start % FUNDING_PERIOD_MS
        deriv = BookSpec(
            levels=spec.levels,
            future_half_spread_bps=spec.half_spread_bps,
            future_level_step_bps=spec.level_step_bps,
            future_size_0_usd=spec.swap_size_0_contracts,
            linear_size_0_coin=spec.swap_size_0_contracts,
            option_half_spread_vol=spec.option_half_spread_vol,
            option_level_step_vol=spec.option_level_step_vol,
            option_size_0_coin=spec.option_size_0_contracts,
            size_growth=spec.size_growth,
        )
        self._book_specs = {
            "deriv": deriv,
            "spot": deriv.model_copy(update={"linear_size_0_coin": spec.spot_size_0_coin}),
        }
        self.by_code: dict[int, OkxInstrument] = {}
        for ccy in world.markets:
            for inst in static_instruments(ccy, spec, start):
                self._list(inst)
        self._sync_listing()
        for a in spec.accounts:
            self.add_account(a.api_key, a.api_secret, a.passphrase, a.balances, name=a.name)
        from hedgerd.sim.flow import OkxOptionFlow  # late: the flow uses this venue's API

        sc = world.scenario
        # Its own stream, after the world's children (Deribit's flow draws stay the same
        # whether or not OKX is served).
        rng = np.random.default_rng(
            np.random.SeedSequence(sc.seed).spawn(len(sc.underlyings) + 3)[-1]
        )
        self.flow = OkxOptionFlow(world, self, sc.flow, rng)

    # ------------------------------------------------------------------ accounts
    def add_account(
        self,
        api_key: str,
        api_secret: str,
        passphrase: str,
        balances: Mapping[str, float] | None = None,
        *,
        name: str | None = None,
    ) -> OkxCredentials:
        """A unified account (net mode) funded with 10 BTC, 100 ETH, 100,000 USDT (or
        `balances`); the same key again returns the existing account."""
        old = self._by_key.get(api_key)
        if old is not None:
            return old
        self._uid_seq += 1
        account_id = name or f"okx{self._uid_seq}"
        creds = OkxCredentials(
            account_id, api_key, api_secret, passphrase, str(440_000_000_000 + self._uid_seq)
        )
        bal = dict(NEW_ACCOUNT_BALANCES if balances is None else balances)
        self.accounts[account_id] = OkxAccount(creds, cash={k: float(v) for k, v in bal.items()})
        self._by_key[api_key] = creds
        return creds

    def credentials_for_key(self, api_key: str) -> OkxCredentials | None:
        return self._by_key.get(api_key)

    @staticmethod
    def spec_account(spec: OkxAccountSpec) -> tuple[str, str, str]:
        return spec.api_key, spec.api_secret, spec.passphrase

    # ------------------------------------------------------------------ time
    def now_ms(self) -> int:
        return self.clock.now_ms()

    @property
    def market_ms(self) -> int:
        return self._market_ms

    def sync(self) -> None:
        """Bring the world (and so this venue) up to the clock before serving a request."""
        now = self.clock.now_ms()
        if now >= self.world.market_ms + self.world.tick_ms:
            self.world.advance_to(now)
        if self.world.market_ms > self._market_ms:
            self.advance_to(self.world.market_ms)

    def advance_to(self, t: int) -> None:
        """Run this venue's periodic work up to market time `t` (the world already moved)."""
        if t <= self._market_ms:
            return
        dt = t - self._market_ms
        self._market_ms = t
        self._sync_listing()
        self._settle_expired(t)
        self.flow.on_tick(t, dt)
        while self._last_funding_ms + FUNDING_PERIOD_MS <= t:
            self._last_funding_ms += FUNDING_PERIOD_MS
            self._pay_funding(self._last_funding_ms)
        for acct in self.accounts.values():
            if acct.cancel_all_at_ms is not None and t >= acct.cancel_all_at_ms:
                acct.cancel_all_at_ms = None
                n = self.cancel_all(acct, "cancel-all-after")
                log.info("okx_cancel_all_after_fired", account=acct.account_id, cancelled=n)
        if self._resting:
            self._fill_crossed_resting(t)
        self.listener.on_tick(t)

    def _sync_listing(self) -> None:
        cat = self.world.catalog.by_name
        if len(cat) == self._seen_world:
            return
        for winst in list(cat.values())[self._seen_world :]:
            inst = mirror(winst, self.spec)
            if inst is not None and inst.inst_id not in self.instruments:
                if not winst.is_active:
                    inst.state = "expired"
                self._list(inst)
        self._seen_world = len(cat)

    def _list(self, inst: OkxInstrument) -> None:
        inst.code = FIRST_INST_CODE + len(self.instruments)
        self.instruments[inst.inst_id] = inst
        self.by_code[inst.code] = inst

    def resolve_code(self, req: Any) -> Any:
        """A WS order/cancel item with `instIdCode` (what ccxt sends when the market has one)
        turned into one with `instId`; anything else unchanged."""
        if not isinstance(req, Mapping) or req.get("instId") or "instIdCode" not in req:
            return req
        code = req.get("instIdCode")
        inst = self.by_code.get(code) if isinstance(code, int) else None
        out = {k: v for k, v in req.items() if k != "instIdCode"}
        out["instId"] = inst.inst_id if inst is not None else f"?{code}"
        return out

    # ------------------------------------------------------------------ prices
    def index_price(self, ccy: str) -> float:
        """The world's index of `ccy` in USD: the same number the Deribit venue reports."""
        return self.world.index_price(ccy)

    def mark_price(self, inst: OkxInstrument) -> float:
        """Mark in the instrument's price unit: USD (USDT) for swaps, futures, spot; coin per
        coin of underlying for options."""
        if inst.deribit_name is not None:
            w = self.world.catalog.get(inst.deribit_name)
            assert w is not None
            mark = self.world.mark_price(w)
            if inst.inst_type == "FUTURES" and inst.expiry_ms is not None:
                years = max(0.0, inst.expiry_ms - self._market_ms) / (365 * DAY_MS)
                mark *= 1.0 + self.spec.future_basis_bps_per_year * 1e-4 * years
            return mark
        idx = self.index_price(inst.base)
        if inst.is_swap:
            return idx * (1.0 + self.spec.swap_basis_bps * 1e-4)
        return idx

    def option_risk(self, inst: OkxInstrument) -> OptionRisk:
        assert inst.deribit_name is not None
        w = self.world.catalog.get(inst.deribit_name)
        assert w is not None
        g = self.world.greeks(w)
        return OptionRisk(g.mark_coin, g.iv, g.delta, g.gamma, g.vega, g.theta, g.underlying_price)

    def funding_rate(self, inst: OkxInstrument) -> float:
        return self.spec.funding_rate_8h

    def next_funding_ms(self) -> int:
        return self._last_funding_ms + FUNDING_PERIOD_MS

    def set_carry(self, changes: Mapping[str, object]) -> dict[str, float]:
        """Change the venue's funding and basis from now on (`CARRY_FIELDS` of its spec; the
        admin API's `venues/okx/carry`: a drill moves the carry that routing weighs). The
        next funding settles at the new rate; marks and books follow at the next tick. A
        reset restores the scenario's. Returns the carry now in force."""
        unknown = sorted(set(changes) - set(CARRY_FIELDS))
        if unknown:
            raise ValueError(f"not a carry field: {', '.join(unknown)} (one of {CARRY_FIELDS})")
        values: dict[str, float] = {}
        for k, v in changes.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number, got {v!r}")
            values[k] = float(v)
        self.spec = self.spec.model_copy(update=values)
        log.info("sim.okx_carry_set", **values)
        return {k: float(getattr(self.spec, k)) for k in CARRY_FIELDS}

    # ------------------------------------------------------------------ books
    def lookup(self, inst_id: str) -> OkxInstrument | None:
        return self.instruments.get(inst_id)

    def live(self) -> list[OkxInstrument]:
        return [i for i in self.instruments.values() if i.state == "live"]

    def book(self, inst: OkxInstrument) -> InstrumentBook:
        b = self.books.get(inst.inst_id)
        if b is None:
            spec = self._book_specs["spot" if inst.is_spot else "deriv"]
            b = self.books[inst.inst_id] = InstrumentBook(inst.sim, spec)
        if b.built_ms != self._market_ms:
            self._rebuild(inst, b)
        return b

    def _rebuild(self, inst: OkxInstrument, b: InstrumentBook) -> None:
        spec = self.spec
        tick = inst.tick_sz
        if inst.is_option:
            r = self.option_risk(inst)
            vega_coin = r.vega / self.index_price(inst.base)
            mark = max(r.mark_coin, tick)
            half = max(tick, vega_coin * spec.option_half_spread_vol)
            step = max(tick, vega_coin * spec.option_level_step_vol)
        else:
            mark = self.mark_price(inst)
            half = mark * spec.half_spread_bps * 1e-4
            step = mark * spec.level_step_bps * 1e-4
        rebuild_quantised(
            b, self._market_ms, tick, (mark, half, step), self._depth_caps, inst.inst_id
        )

    def set_depth_caps(self, caps: Sequence[DepthLimit]) -> None:
        """Cap the synthetic depth of matching books (fault `thin_depth`, venue okx)."""
        self._depth_caps = tuple(caps)
        for b in self.books.values():
            b.built_ms = -1
            b.built_mark = math.nan
            b.dirty = True

    def levels(
        self, inst: OkxInstrument, depth: int
    ) -> tuple[list[tuple[float, float, int]], list[tuple[float, float, int]]]:
        """(bids best first, asks best first) as (price, contracts, order count)."""
        b = self.book(inst)
        now = self._market_ms
        out: list[list[tuple[float, float, int]]] = []
        for side in ("bids", "asks"):
            lv = b.side_levels(side, now)
            counts: dict[float, int] = {}
            for o in b.bids_orders if side == "bids" else b.asks_orders:
                if o.price is not None:
                    counts[o.price] = counts.get(o.price, 0) + 1
            prices = sorted(lv, reverse=side == "bids")[:depth]
            out.append([(p, lv[p], counts.get(p, 0) + 1) for p in prices])
        return out[0], out[1]

    # ------------------------------------------------------------------ orders
    def _next_ord_id(self) -> str:
        self._order_seq += 1
        return str(FIRST_ORDER_ID + self._order_seq)

    def place(self, acct: OkxAccount, req: Mapping[str, Any]) -> OkxOrder:
        """Validate and run one order request (OKX's place-order fields); raises
        `OrderRejectedError` with OKX's sCode for a refused one."""
        if not isinstance(req, Mapping):
            raise param_error("order")
        inst_id = req.get("instId")
        if not isinstance(inst_id, str) or not inst_id:
            raise param_error("instId")
        inst = self.instruments.get(inst_id)
        if inst is None:
            raise OrderRejectedError(errors.BAD_INSTRUMENT, "Instrument ID does not exist.")
        if inst.state != "live":
            raise OrderRejectedError(errors.EXPIRED_INSTRUMENT, "This instrument has expired.")
        side = req.get("side")
        if side not in ("buy", "sell"):
            raise param_error("side")
        ord_type = req.get("ordType")
        if ord_type not in ORD_TYPES:
            raise param_error("ordType")
        if inst.is_option and ord_type in ("market", "optimal_limit_ioc"):
            raise param_error("ordType")
        td_mode = req.get("tdMode")
        if td_mode not in (("cash", "cross") if inst.is_spot else ("cross",)):
            raise param_error("tdMode")
        pos_side = req.get("posSide")
        if pos_side not in (None, "", "net"):
            raise param_error("posSide")
        sz = self._number(req.get("sz"), "sz")
        if sz <= 0:
            raise param_error("sz")
        if not inst.is_lot_multiple(sz):
            raise OrderRejectedError(
                errors.LOT_SIZE, "The order quantity should be a multiple of the lot size."
            )
        if sz + 1e-12 < inst.min_sz:
            raise OrderRejectedError(errors.MIN_SIZE, "Order quantity is less than minimum.")
        if inst.is_spot and ord_type == "market":
            sz = self._spot_market_size(inst, str(side), sz, req.get("tgtCcy"))
        px: float | None = None
        if ord_type not in ("market", "optimal_limit_ioc"):
            px = self._number(req.get("px"), "px")
            if px <= 0 or not inst.is_on_tick(px):
                raise param_error("px")
        cl = req.get("clOrdId", "")
        cl = "" if cl is None else cl
        if not isinstance(cl, str) or (cl and not _valid_cl_ord_id(cl)):
            raise param_error("clOrdId")
        if cl and any(o.cl_ord_id == cl for o in acct.open_orders.values()):
            raise OrderRejectedError(errors.DUPLICATE_CLORDID, "Duplicated client order ID")
        tag = req.get("tag", "") or ""
        if not isinstance(tag, str) or len(tag) > 16:
            raise param_error("tag")
        reduce_only = _flag(req.get("reduceOnly", False))
        if reduce_only:
            if inst.is_spot or inst.is_option:
                raise param_error("reduceOnly")
            pos = acct.positions.get(inst.inst_id)
            size = pos.size if pos is not None else 0.0
            if size == 0:
                raise OrderRejectedError(
                    errors.REDUCE_NO_POSITION,
                    "Order failed because you don't have any positions in this direction for "
                    "this contract to reduce or close.",
                )
            if (size > 0) == (side == "buy"):
                raise OrderRejectedError(
                    errors.REDUCE_SAME_SIDE,
                    "Failed to place reduce-only order because it's in the same direction "
                    "as your existing position.",
                )
            sz = min(sz, abs(size))
        now = self.now_ms()
        order = OkxOrder(
            order_id="",
            account_id=acct.account_id,
            inst=inst.sim,
            direction=str(side),
            amount=sz,
            price=px,
            order_type="market" if px is None else "limit",
            time_in_force=(
                "immediate_or_cancel"
                if ord_type in ("market", "ioc", "optimal_limit_ioc")
                else "fill_or_kill"
                if ord_type == "fok"
                else "good_til_cancelled"
            ),
            post_only=ord_type == "post_only",
            reject_post_only=False,
            reduce_only=reduce_only,
            label=cl,
            creation_ms=now,
            last_update_ms=now,
            okx=inst,
            cl_ord_id=cl,
            tag=tag,
            ord_type=str(ord_type),
            td_mode=str(td_mode),
            fee_ccy=self._fee_ccy(inst, str(side)),
        )
        self._check_funds(acct, order)
        self._execute(acct, order)
        return order

    def _spot_market_size(self, inst: OkxInstrument, side: str, sz: float, tgt: Any) -> float:
        """A spot market order's size in coin: OKX reads `sz` as quote currency for market
        buys unless `tgtCcy` is `base_ccy` (ccxt sends `base_ccy`), coin otherwise."""
        if tgt not in (None, "", "base_ccy", "quote_ccy"):
            raise param_error("tgtCcy")
        quote = tgt == "quote_ccy" or (not tgt and side == "buy")
        if not quote:
            return sz
        _, asks = self.levels(inst, 1) if side == "buy" else ([], [])
        px = asks[0][0] if asks else self.mark_price(inst)
        coin = math.floor(sz / px / inst.lot_sz + 1e-9) * inst.lot_sz
        if coin + 1e-12 < inst.min_sz:
            raise OrderRejectedError(errors.MIN_SIZE, "Order quantity is less than minimum.")
        return round(coin, 10)

    @staticmethod
    def _number(value: Any, name: str) -> float:
        if isinstance(value, bool) or value is None:
            raise param_error(name)
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise param_error(name) from None
        if not math.isfinite(out):
            raise param_error(name)
        return out

    @staticmethod
    def _fee_ccy(inst: OkxInstrument, side: str) -> str:
        if inst.is_spot:
            return inst.base if side == "buy" else inst.quote
        return inst.settle

    def _execute(self, acct: OkxAccount, order: OkxOrder) -> None:
        inst = order.okx
        assert inst is not None
        now = self.now_ms()
        book = self.book(inst)
        order.ord_id = order.order_id = self._next_ord_id()
        self.orders[order.ord_id] = order
        fills: list[Fill] = []
        if order.post_only:
            assert order.price is not None
            best = best_opposite(book, order.direction, acct.account_id, now)
            crosses = best is not None and (
                best <= order.price if order.direction == "buy" else best >= order.price
            )
            if crosses:  # OKX accepts it, then cancels it: it would have taken liquidity
                order.order_state = "cancelled"
                order.cancel_source = "31"
                self.listener.on_orders(acct.account_id, [order])
                return
        else:
            fills = plan_fills(
                book, order.direction, order.price, order.amount, acct.account_id, now,
                inst.lot_sz,
            )  # fmt: skip
            if order.ord_type == "fok" and sum(f.amount for f in fills) + 1e-9 < order.amount:
                fills = []
        touched: dict[str, list[OkxOrder]] = {}
        for f in fills:
            self._fill(acct, order, f.price, f.amount, "T", now)
            if f.maker is not None:
                maker = f.maker
                assert isinstance(maker, OkxOrder)
                macct = self.accounts[maker.account_id]
                self._fill(macct, maker, f.price, f.amount, "M", now)
                if maker.remaining <= 0:
                    self._close(macct, maker, "filled", now, publish=False)
                touched.setdefault(macct.account_id, []).append(maker)
            elif f.level is not None:
                side = "asks" if order.direction == "buy" else "bids"
                book.take(side, f.level, f.amount, now)
        if order.remaining <= 0:
            order.order_state = "filled"
        elif order.time_in_force != "good_til_cancelled":
            order.order_state = "cancelled"
            order.cancel_source = "" if fills else "14"  # 14: IOC/FOK not filled
        else:
            acct.open_orders[order.ord_id] = order
            self._rest(order)
        book.dirty = True
        self.listener.on_orders(acct.account_id, [order])
        for aid, orders in touched.items():
            self.listener.on_orders(aid, orders)
            self.listener.on_account(aid)
        if fills:
            self.listener.on_account(acct.account_id)

    def _rest(self, order: OkxOrder) -> None:
        assert order.okx is not None
        self._order_seq += 1
        self.book(order.okx).add_order(order, self._order_seq)
        self._resting.add(order.inst.name)

    def _unrest(self, order: OkxOrder) -> None:
        b = self.books.get(order.inst.name)
        if b is not None and b.remove_order(order):
            self._resting.discard(order.inst.name)

    def _close(
        self, acct: OkxAccount, order: OkxOrder, state: str, now: int, publish: bool = True
    ) -> None:
        order.order_state = state
        order.last_update_ms = now
        acct.open_orders.pop(order.ord_id, None)
        self._unrest(order)
        if publish:
            self.listener.on_orders(acct.account_id, [order])

    def _fill(
        self, acct: OkxAccount, order: OkxOrder, px: float, sz: float, liq: str, now: int
    ) -> OkxFill:
        """Book one fill: position, cash (premium, realized P&L, fee), fill record."""
        inst = order.okx
        assert inst is not None
        rate = inst.sim.maker_commission if liq == "M" else inst.sim.taker_commission
        signed = sz if order.direction == "buy" else -sz
        realized = 0.0
        if inst.is_spot:
            base, quote = inst.base, inst.quote
            acct.cash[base] = acct.cash.get(base, 0.0) + signed
            acct.cash[quote] = acct.cash.get(quote, 0.0) - signed * px
            fee = sz * rate if order.direction == "buy" else sz * px * rate
            ccy = order.fee_ccy
        else:
            ccy = inst.settle
            pos = acct.position(inst)
            was_flat = pos.size == 0
            realized_units = pos.apply_fill(signed, px)
            if inst.is_option:
                underlying = sz * inst.ct_mult
                fee = (
                    min(rate * underlying, 0.125 * px * underlying)
                    if rate > 0
                    else (rate * underlying)
                )
                acct.cash[ccy] = acct.cash.get(ccy, 0.0) - signed * inst.ct_mult * px
                realized = realized_units * inst.ct_mult
            else:
                realized = realized_units * inst.ct_val
                notional = sz * inst.ct_val / px if inst.inverse else sz * inst.ct_val * px
                fee = notional * rate
                acct.cash[ccy] = acct.cash.get(ccy, 0.0) + realized
            if was_flat:
                acct.position_ctime[inst.inst_id] = now
            acct.position_utime[inst.inst_id] = now
        acct.cash[ccy] = acct.cash.get(ccy, 0.0) - fee
        order.filled_amount = round(order.filled_amount + sz, 10)
        order.notional_filled += sz * px
        order.inverse_notional += sz / px
        order.fee_total -= fee
        order.pnl += realized
        order.last_update_ms = now
        self._trade_seq += 1
        self._bill_seq += 1
        fill = OkxFill(
            trade_id=str(FIRST_TRADE_ID + self._trade_seq),
            bill_id=str(FIRST_BILL_ID + self._bill_seq),
            order=order,
            side=order.direction,
            px=px,
            sz=sz,
            fee=_clean(-fee),
            fee_ccy=ccy,
            exec_type=liq,
            ts=now,
            fill_pnl=_clean(realized),
            mark_px=self.mark_price(inst),
            index_px=self.index_price(inst.base),
        )
        if inst.is_option:
            risk = self.option_risk(inst)
            fill.mark_vol, fill.fwd_px = risk.iv, risk.forward
        order.last_fill = fill
        order.fills.append(fill)
        acct.fills.append(fill)
        if liq == "T":
            self._last[inst.inst_id] = (px, sz)
            o, h, lo = self._hi_lo.get(inst.inst_id, (px, px, px))
            self._hi_lo[inst.inst_id] = (o, max(h, px), min(lo, px))
            self._vol[inst.inst_id] = self._vol.get(inst.inst_id, 0.0) + sz
        return fill

    def _fill_crossed_resting(self, t: int) -> None:
        """Resting client orders that the moved synthetic book now crosses fill as makers
        against it at their own price (the market maker lifts them)."""
        for inst_id in list(self._resting):
            inst = self.instruments[inst_id]
            b = self.book(inst)
            changed: dict[str, list[OkxOrder]] = {}
            for side_orders, opp_side in ((b.bids_orders, "asks"), (b.asks_orders, "bids")):
                synth = b.asks_synth if opp_side == "asks" else b.bids_synth
                if not synth:
                    continue
                best = synth[0].price
                for o in list(side_orders):
                    assert isinstance(o, OkxOrder) and o.price is not None
                    crossed = best <= o.price if o.direction == "buy" else best >= o.price
                    if not crossed:
                        continue
                    acct = self.accounts[o.account_id]
                    self._fill(acct, o, o.price, o.remaining, "M", t)
                    self._close(acct, o, "filled", t, publish=False)
                    changed.setdefault(acct.account_id, []).append(o)
            for aid, orders in changed.items():
                self.listener.on_orders(aid, orders)
                self.listener.on_account(aid)

    def find_order(
        self, acct: OkxAccount, inst_id: Any, ord_id: Any, cl_ord_id: Any
    ) -> OkxOrder | None:
        """An order of `acct` by ordId or clOrdId (the newest with that clOrdId)."""
        if ord_id:
            o = self.orders.get(str(ord_id))
            if o is None or o.account_id != acct.account_id:
                return None
        elif cl_ord_id:
            o = None
            for cand in reversed(list(self.orders.values())):
                if cand.account_id == acct.account_id and cand.cl_ord_id == cl_ord_id:
                    o = cand
                    break
            if o is None:
                return None
        else:
            raise param_error("ordId")
        if inst_id and o.okx is not None and o.okx.inst_id != inst_id:
            return None
        return o

    def cancel(self, acct: OkxAccount, req: Mapping[str, Any]) -> OkxOrder:
        if not isinstance(req, Mapping):
            raise param_error("order")
        inst_id = req.get("instId")
        if not inst_id:
            raise param_error("instId")
        order = self.find_order(acct, inst_id, req.get("ordId"), req.get("clOrdId"))
        if order is None or not order.is_open:
            raise OrderRejectedError(
                errors.CANCEL_FAILED,
                "Order cancellation failed as the order has been filled, canceled or does "
                "not exist.",
            )
        order.cancel_source = "1"  # canceled by the user
        self._close(acct, order, "cancelled", self.now_ms())
        return order

    def cancel_all(self, acct: OkxAccount, reason: str) -> int:
        orders = list(acct.open_orders.values())
        now = self.now_ms()
        for o in orders:
            o.cancel_source = "20" if reason == "cancel-all-after" else "1"
            self._close(acct, o, "cancelled", now, publish=False)
        if orders:
            self.listener.on_orders(acct.account_id, orders)
        return len(orders)

    def set_cancel_all_after(self, acct: OkxAccount, timeout_s: int) -> int:
        """Arm (or, with 0, disarm) the dead-man timer; returns the trigger time (0 when
        disarmed), UTC ms of the simulated clock."""
        if timeout_s == 0:
            acct.cancel_all_at_ms = None
            return 0
        lo, hi = CANCEL_ALL_AFTER_RANGE_S
        if not lo <= timeout_s <= hi:
            raise param_error("timeOut")
        acct.cancel_all_at_ms = self.now_ms() + timeout_s * 1000
        return acct.cancel_all_at_ms

    def book_trade(
        self, account_id: str, inst_id: str, side: str, sz: float, px: float | None
    ) -> dict[str, Any]:
        """Book a fill on an account as if another client had hit its quote (admin API and
        tests: option flow against an OKX account). `side` is the account's side, `sz`
        contracts, `px` the price (default: the mark). Raises ValueError when invalid."""
        self.sync()
        return self.book_trade_at(account_id, inst_id, side, sz, px, self.now_ms())

    def book_trade_at(
        self, account_id: str, inst_id: str, side: str, sz: float, px: float | None, now: int
    ) -> dict[str, Any]:
        """`book_trade` at market time `now` without first bringing the venue up to the
        clock (the option flow books from inside a market tick)."""
        acct = self.accounts.get(account_id)
        inst = self.instruments.get(inst_id)
        if acct is None or inst is None or inst.is_spot or side not in ("buy", "sell"):
            raise ValueError("unknown account or instrument, a spot pair, or a bad side")
        if sz <= 0 or not inst.is_lot_multiple(sz):
            raise ValueError("sz must be a positive multiple of the lot size")
        price = px if px is not None else self.mark_price(inst)
        order = OkxOrder(
            order_id="", account_id=account_id, inst=inst.sim, direction=side, amount=sz,
            price=price, order_type="limit", time_in_force="good_til_cancelled",
            post_only=False, reject_post_only=False, reduce_only=False, label=ADMIN_TAG,
            creation_ms=now, last_update_ms=now, okx=inst, tag=ADMIN_TAG,
            fee_ccy=self._fee_ccy(inst, side),
        )  # fmt: skip
        order.ord_id = order.order_id = self._next_ord_id()
        self.orders[order.ord_id] = order
        fill = self._fill(acct, order, price, sz, "M", now)
        order.order_state = "filled"
        self.listener.on_orders(account_id, [order])
        self.listener.on_account(account_id)
        return {"ordId": order.ord_id, "tradeId": fill.trade_id, "px": price, "sz": sz}

    # ------------------------------------------------------------------ margin
    def _check_funds(self, acct: OkxAccount, order: OkxOrder) -> None:
        """Refuse an order whose margin (or, for spot, cost) the currency cannot cover."""
        inst = order.okx
        assert inst is not None
        need, ccy = self._order_need(acct, order)
        if need <= 0:
            return
        avail = self.avail_eq(acct, ccy)
        if need > avail + 1e-12:
            raise OrderRejectedError(errors.INSUFFICIENT, f"Insufficient {ccy} balance in account")
        if acct.acct_lv != "2" and need * self.usd_price(ccy) > self.account_avail_usd(acct):
            # The unified modes margin the account as a whole: its available equity (USD,
            # the top-level `availEq`) must cover the order too (no auto-borrowing here).
            raise OrderRejectedError(errors.INSUFFICIENT, "Insufficient USD balance in account")

    def _order_need(self, acct: OkxAccount, order: OkxOrder) -> tuple[float, str]:
        """What an order would tie up, and in which currency (only what increases risk)."""
        inst = order.okx
        assert inst is not None
        px = order.price if order.price is not None else self.mark_price(inst)
        left = order.remaining
        if inst.is_spot:
            if order.direction == "buy":
                return left * px, inst.quote
            return left, inst.base
        pos = acct.positions.get(inst.inst_id)
        size = pos.size if pos is not None else 0.0
        reducing = size != 0 and (size > 0) != (order.direction == "buy")
        extra = max(0.0, left - abs(size)) if reducing else left
        if extra <= 0:
            return 0.0, inst.settle
        if inst.is_option:
            if order.direction == "buy":
                return extra * inst.ct_mult * px, inst.settle
            return extra * inst.ct_mult * (OPTION_SHORT_IM + px), inst.settle
        return self._notional_settle(inst, extra, px) * FUTURES_IM_RATE, inst.settle

    @staticmethod
    def _notional_settle(inst: OkxInstrument, contracts: float, px: float) -> float:
        """|contracts| of a swap/future in its settlement currency at `px`."""
        if inst.inverse:
            return abs(contracts) * inst.ct_val / px
        return abs(contracts) * inst.ct_val * px

    def upl(self, inst: OkxInstrument, pos: Position) -> float:
        """Unrealized P&L in the settlement currency (options: value minus cost)."""
        if pos.size == 0:
            return 0.0
        mark = self.mark_price(inst)
        if inst.is_option:
            return pos.size * inst.ct_mult * (mark - pos.average_price)
        if inst.inverse:
            return pos.size * inst.ct_val * (1.0 / pos.average_price - 1.0 / mark)
        return pos.size * inst.ct_val * (mark - pos.average_price)

    def position_im(self, inst: OkxInstrument, pos: Position) -> float:
        if pos.size == 0:
            return 0.0
        mark = self.mark_price(inst)
        if inst.is_option:
            return abs(pos.size) * inst.ct_mult * (OPTION_SHORT_IM + mark) if pos.size < 0 else 0.0
        return self._notional_settle(inst, pos.size, mark) * FUTURES_IM_RATE

    def eq(self, acct: OkxAccount, ccy: str) -> float:
        """Equity of `ccy`: cash, plus floating P&L of swaps and futures, plus the mark value
        of options, settled in it."""
        out = acct.cash.get(ccy, 0.0)
        for inst_id, pos in acct.positions.items():
            inst = self.instruments[inst_id]
            if pos.size == 0 or inst.settle != ccy:
                continue
            if inst.is_option:
                out += pos.size * inst.ct_mult * self.mark_price(inst)
            else:
                out += self.upl(inst, pos)
        return out

    def frozen(self, acct: OkxAccount, ccy: str) -> tuple[float, float]:
        """(position margin with OKX's add-on, open-order margin) held in `ccy`."""
        imr = 0.0
        for inst_id, pos in acct.positions.items():
            inst = self.instruments[inst_id]
            if inst.settle == ccy:
                imr += self.position_im(inst, pos)
        imr += max(0.0, acct.imr_add.get(ccy, 0.0))
        ord_frozen = 0.0
        for o in acct.open_orders.values():
            need, c = self._order_need(acct, o)
            if c == ccy:
                ord_frozen += need
        return imr, ord_frozen

    def avail_eq(self, acct: OkxAccount, ccy: str) -> float:
        imr, ordf = self.frozen(acct, ccy)
        return self.eq(acct, ccy) - imr - ordf

    def usd_price(self, ccy: str) -> float:
        """USD per unit of `ccy` (stablecoins at 1, coins at the index)."""
        return 1.0 if ccy in ("USDT", "USD", "USDC") else self.index_price(ccy)

    def account_avail_usd(self, acct: OkxAccount) -> float:
        """The account's available equity in USD (the top-level `availEq`)."""
        return sum(self.avail_eq(acct, c) * self.usd_price(c) for c in self.currencies(acct))

    def currencies(self, acct: OkxAccount) -> list[str]:
        seen = dict.fromkeys(acct.cash)
        for inst_id, pos in acct.positions.items():
            if pos.size != 0:
                seen.setdefault(self.instruments[inst_id].settle, None)
        return [c for c in seen if c]

    # ------------------------------------------------------------------ funding, expiry
    def _pay_funding(self, t: int) -> None:
        for acct in self.accounts.values():
            paid_any = False
            for inst_id, pos in acct.positions.items():
                inst = self.instruments[inst_id]
                if not inst.is_swap or pos.size == 0:
                    continue
                mark = self.mark_price(inst)
                notional = pos.size * (inst.ct_val / mark if inst.inverse else inst.ct_val * mark)
                pay = notional * self.funding_rate(inst)  # longs pay a positive rate
                acct.cash[inst.settle] = acct.cash.get(inst.settle, 0.0) - pay
                acct.funding_paid[inst.settle] = acct.funding_paid.get(inst.settle, 0.0) + pay
                pos.realized_funding -= pay
                paid_any = True
            if paid_any:
                self.listener.on_account(acct.account_id)

    def _settle_expired(self, t: int) -> None:
        """Settle the options and futures the world has settled, at the world's delivery
        price of their expiry (the same number the Deribit venue settles at)."""
        for inst in self.instruments.values():
            if inst.state != "live" or inst.expiry_ms is None or inst.expiry_ms > t:
                continue
            delivery = self.world.delivery_prices.get((inst.base, inst.expiry_ms))
            if delivery is None:
                continue  # not settled by the world yet
            inst.state = "expired"
            for acct in self.accounts.values():
                for o in [o for o in acct.open_orders.values() if o.okx is inst]:
                    o.cancel_source = "6"
                    self._close(acct, o, "cancelled", t)
                pos = acct.positions.get(inst.inst_id)
                if pos is None or pos.size == 0:
                    continue
                if inst.is_option:
                    k = inst.strike or 0.0
                    intrinsic = (
                        max(0.0, delivery - k) if inst.opt_type == "C" else max(0.0, k - delivery)
                    )
                    value = intrinsic / delivery  # coin per coin of underlying
                    pnl = pos.size * inst.ct_mult * value
                    pos.realized_pnl += pos.size * (value - pos.average_price)
                else:
                    pnl = pos.size * inst.ct_val * (1.0 / pos.average_price - 1.0 / delivery)
                    pos.realized_pnl += pnl / inst.ct_val
                acct.cash[inst.settle] = acct.cash.get(inst.settle, 0.0) + pnl
                pos.size = 0.0
                pos.average_price = 0.0
                acct.position_utime[inst.inst_id] = t
                self.listener.on_account(acct.account_id)
            self.books.pop(inst.inst_id, None)
            self._resting.discard(inst.inst_id)

    # ------------------------------------------------------------------ market stats
    def last_trade(self, inst: OkxInstrument) -> tuple[float, float]:
        """(last price, last size): the last client trade, else the mark and 0."""
        got = self._last.get(inst.inst_id)
        if got is not None:
            return got
        return self.mark_price(inst), 0.0

    def day_stats(self, inst: OkxInstrument) -> tuple[float, float, float, float]:
        """(open, high, low, volume in contracts) since the start, bounding the last price."""
        last, _ = self.last_trade(inst)
        o, h, lo = self._hi_lo.get(inst.inst_id, (last, last, last))
        return o, max(h, last), min(lo, last), self._vol.get(inst.inst_id, 0.0)

    def admin_state(self) -> dict[str, Any]:
        return {
            "instruments": len(self.live()),
            "accounts": len(self.accounts),
            "orders": len(self.orders),
            "open_orders": sum(len(a.open_orders) for a in self.accounts.values()),
            "fills": sum(len(a.fills) for a in self.accounts.values()),
        }


def _valid_cl_ord_id(cl: str) -> bool:
    """OKX: 1-32 case-sensitive alphanumerics (a hyphen or a longer id is refused)."""
    return 0 < len(cl) <= CLORDID_MAX and cl.isascii() and cl.isalnum()
