"""The simulator's instrument catalogue: Deribit's names, fields and listing rules.

Inverse perpetuals (BTC-PERPETUAL: USD amounts in multiples of 10; ETH-PERPETUAL: 1), inverse
dated futures (BTC-27MAR26), linear USDC perpetuals (BTC_USDC-PERPETUAL: coin amounts, P&L and
funding in USDC), spot pairs against USDC (BTC_USDC: coin amounts, USDC prices; a trade moves
both balances at once, there is no position), and inverse option chains
(BTC-27MAR26-100000-C: coin amounts, premium in coin) with daily, weekly, monthly and
quarterly expiries at 08:00 UTC.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hedgerd.sim.scenario import ChainSpec, FeeSpec, UnderlyingSpec
from hedgerd.venues.deribit.names import format_expiry, option_name

__all__ = ["InstrumentCatalog", "SimInstrument", "format_expiry", "format_strike"]

PERPETUAL_EXPIRY_MS = 32_503_708_800_000  # what Deribit reports for perpetuals (year 3000)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SETTLEMENT_HOUR_UTC = 8

# Per underlying: inverse contract size (USD), futures tick (USD), option minimum (coin),
# linear perpetual contract/minimum (coin) and tick (USDC), spot step (coin) and tick (USDC).
# The same figures as the daemon's name parser (hedgerd.venues.deribit.names), so a market
# loaded from the simulator and one parsed from its name agree.
_SPECS: dict[str, dict[str, float]] = {
    "BTC": {
        "inv_cs": 10.0,
        "fut_tick": 0.5,
        "dated_tick": 2.5,
        "opt_min": 0.1,
        "lin_cs": 0.001,
        "lin_tick": 1.0,
        "spot_step": 0.0001,
        "spot_tick": 1.0,
    },
    "ETH": {
        "inv_cs": 1.0,
        "fut_tick": 0.05,
        "dated_tick": 0.25,
        "opt_min": 1.0,
        "lin_cs": 0.01,
        "lin_tick": 0.1,
        "spot_step": 0.0001,
        "spot_tick": 0.1,
    },
}
SPOT_QUOTE = "USDC"
OPTION_TICK_LOW = 0.0001  # coin, below OPTION_TICK_STEP_ABOVE
OPTION_TICK_HIGH = 0.0005
OPTION_TICK_STEP_ABOVE = 0.005


def format_strike(strike: float) -> str:
    """Deribit writes integral strikes without decimals and others with 'd' (e.g. '2d5')."""
    return option_name("X", 0, strike, True).split("-")[2]


@dataclass(slots=True)
class SimInstrument:
    """One listed instrument. Amounts are in `amount_unit` (USD for inverse futures, coin
    otherwise); prices in USD for futures and spot (USDC), coin for inverse options."""

    instrument_id: int
    name: str
    kind: str  # "future" | "option" | "spot" (Deribit's kind; perpetuals are futures)
    currency: str  # base currency, e.g. "BTC"
    # Spot pairs settle at once in both currencies; this is their quote currency (where fees
    # are charged), and Deribit's listing leaves the field out for them.
    settlement_currency: str
    quote_currency: str
    counter_currency: str
    inverse: bool
    perpetual: bool
    contract_size: float
    min_trade_amount: float
    tick_size: float
    maker_commission: float
    taker_commission: float
    expiry_ms: int
    creation_ms: int
    settlement_period: str  # "perpetual" | "day" | "week" | "month"; "" for spot
    price_index: str  # "btc_usd" | "btc_usdc"
    strike: float | None = None
    option_type: str | None = None  # "call" | "put"
    state: str = "open"
    _json: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def is_option(self) -> bool:
        return self.kind == "option"

    @property
    def is_spot(self) -> bool:
        return self.kind == "spot"

    @property
    def is_dated(self) -> bool:
        """Expires and settles (dated futures, options); perpetuals and spot never do."""
        return not self.perpetual and not self.is_spot

    @property
    def currencies(self) -> tuple[str, ...]:
        """The currencies the instrument is filed under (the `currency` filter of
        `get_instruments`, open orders and trades): its settlement currency, and both sides
        of a spot pair."""
        if self.is_spot:
            return (self.currency, self.quote_currency)
        return (self.settlement_currency,)

    @property
    def channel_currency(self) -> str:
        """The currency of the `user.*.{kind}.{currency}` channels its orders and trades go
        to: the settlement currency, and a spot pair's base coin (one channel, so that an
        `any.any` subscriber hears each trade once)."""
        return self.currency if self.is_spot else self.settlement_currency

    @property
    def is_call(self) -> bool:
        return self.option_type == "call"

    @property
    def is_active(self) -> bool:
        return self.state == "open"

    @property
    def index_name(self) -> str:
        """The index the instrument marks against (always the USD index, as on Deribit)."""
        return f"{self.currency.lower()}_usd"

    def tick_for(self, price: float) -> float:
        """The tick that applies at `price` (options: 0.0005 above 0.005 coin, else 0.0001)."""
        if self.is_option and price > OPTION_TICK_STEP_ABOVE:
            return OPTION_TICK_HIGH
        return self.tick_size

    def round_price(self, price: float, side: str = "nearest") -> float:
        """`price` on the tick grid: 'down', 'up' or 'nearest'."""
        tick = self.tick_for(price)
        q = price / tick
        if side == "down":
            n = math.floor(q + 1e-9)
        elif side == "up":
            n = math.ceil(q - 1e-9)
        else:
            n = math.floor(q + 0.5)
        return round(n * tick, 10)

    def is_on_tick(self, price: float) -> bool:
        tick = self.tick_for(price)
        q = price / tick
        return abs(q - round(q)) < 1e-6

    def to_json(self) -> dict[str, Any]:
        """`public/get_instruments` entry, exactly Deribit's fields."""
        if self._json is not None and self._json["is_active"] == self.is_active:
            return self._json
        if self.is_spot:
            self._json = self._spot_json()
            return self._json
        out: dict[str, Any] = {
            "tick_size": self.tick_size,
            "tick_size_steps": (
                [{"above_price": OPTION_TICK_STEP_ABOVE, "tick_size": OPTION_TICK_HIGH}]
                if self.is_option
                else []
            ),
            "taker_commission": self.taker_commission,
            "settlement_period": self.settlement_period,
            "settlement_currency": self.settlement_currency,
            "quote_currency": self.quote_currency,
            "price_index": self.price_index,
            "min_trade_amount": self.min_trade_amount,
            "max_leverage": 50,
            "maker_commission": self.maker_commission,
            "kind": self.kind,
            "is_active": self.is_active,
            "instrument_name": self.name,
            "instrument_id": self.instrument_id,
            "instrument_type": "reversed" if self.inverse else "linear",
            "expiration_timestamp": self.expiry_ms,
            "creation_timestamp": self.creation_ms,
            "counter_currency": self.counter_currency,
            "contract_size": self.contract_size,
            "block_trade_tick_size": 0.01 if not self.is_option else 0.0001,
            "block_trade_min_trade_amount": 200_000 if self.inverse and not self.is_option else 25,
            "block_trade_commission": 0.00025 if not self.is_option else 0.0003,
            "base_currency": self.currency,
            "state": self.state,
        }
        if self.is_option:
            out["strike"] = self.strike
            out["option_type"] = self.option_type
        else:
            out["future_type"] = "reversed" if self.inverse else "linear"
            out["max_liquidation_commission"] = 0.0075
        self._json = out
        return out

    def _spot_json(self) -> dict[str, Any]:
        """A spot pair's entry: Deribit's spec leaves `settlement_currency` and
        `settlement_period` out for spot (so ccxt files it as spot, not as a swap), and the
        futures-only fields (leverage, liquidation commission, future_type) with them."""
        return {
            "tick_size": self.tick_size,
            "tick_size_steps": [],
            "taker_commission": self.taker_commission,
            "quote_currency": self.quote_currency,
            "price_index": self.price_index,
            "min_trade_amount": self.min_trade_amount,
            "maker_commission": self.maker_commission,
            "kind": "spot",
            "is_active": self.is_active,
            "instrument_name": self.name,
            "instrument_id": self.instrument_id,
            "instrument_type": "linear",
            "expiration_timestamp": self.expiry_ms,
            "creation_timestamp": self.creation_ms,
            "counter_currency": self.counter_currency,
            "contract_size": self.contract_size,
            "block_trade_tick_size": 0.01,
            "block_trade_min_trade_amount": 25,
            "block_trade_commission": 0.0,
            "base_currency": self.currency,
            "state": self.state,
        }


def _clean(x: float) -> float:
    """Round off binary noise (12 significant decimals) so 0.1 * 3 prints as 0.3."""
    return float(f"{x:.12g}") if x != 0 else 0.0


def nice_step(raw: float) -> float:
    """The nearest 'round' strike step at or below `raw`: 1, 2, 2.5 or 5 times a power of 10."""
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    base = 10.0**exp
    for m in (5.0, 2.5, 2.0, 1.0):
        if m * base <= raw * (1 + 1e-9):
            return _clean(m * base)
    return _clean(base)


def _at_8(d: datetime) -> int:
    return int(datetime(d.year, d.month, d.day, SETTLEMENT_HOUR_UTC, tzinfo=UTC).timestamp() * 1000)


def _last_friday(year: int, month: int) -> datetime:
    last_day = calendar.monthrange(year, month)[1]
    d = datetime(year, month, last_day, tzinfo=UTC)
    while d.weekday() != 4:
        d -= timedelta(days=1)
    return d


def classify_expiry(expiry_ms: int) -> str:
    """Deribit's settlement_period of an expiry: month (last Friday), week (Friday), day."""
    d = datetime.fromtimestamp(expiry_ms / 1000, tz=UTC)
    if d.weekday() == 4:
        lf = _last_friday(d.year, d.month)
        return "month" if lf.day == d.day else "week"
    return "day"


def listed_expiries(now_ms: int, chain: ChainSpec) -> dict[int, str]:
    """The option expiries (UTC epoch ms at 08:00) listed at `now_ms`, with their tenor
    class ('daily', 'weekly', 'monthly', 'quarterly'); only expiries strictly after now."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    out: dict[int, str] = {}
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    d = day
    n = 0
    while n < chain.dailies:
        ms = _at_8(d)
        if ms > now_ms:
            out.setdefault(ms, "daily")
            n += 1
        d += timedelta(days=1)
    d = day
    n = 0
    while n < chain.weeklies:
        ms = _at_8(d)
        if d.weekday() == 4 and ms > now_ms:
            out.setdefault(ms, "weekly")
            n += 1
        d += timedelta(days=1)
    for count, months in ((chain.monthlies, range(1, 13)), (chain.quarterlies, (3, 6, 9, 12))):
        tenor = "monthly" if len(months) == 12 else "quarterly"
        y, m, n = now.year, now.month, 0
        while n < count:
            if m in months:
                ms = _at_8(_last_friday(y, m))
                if ms > now_ms:
                    if out.get(ms) not in ("monthly",) or tenor == "quarterly":
                        out[ms] = tenor
                    n += 1
            m += 1
            if m > 12:
                y, m = y + 1, 1
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class _Undated:
    """An instrument that never expires (perpetuals, spot pairs), before it is listed."""

    name: str
    kind: str  # "future" (a perpetual) | "spot"
    settlement_currency: str  # a spot pair's quote currency
    quote_currency: str
    contract_size: float  # USD for inverse perpetuals, coin otherwise
    tick_size: float  # USD (USDC)
    maker: float
    taker: float
    price_index: str


class InstrumentCatalog:
    """Every instrument ever listed in this simulation, by name, in listing order.

    Instruments are never removed: expired ones change `state` to 'closed' (Deribit lists
    them under `get_instruments?expired=true`)."""

    def __init__(self, fees: FeeSpec) -> None:
        self._fees = fees
        self.by_name: dict[str, SimInstrument] = {}
        self._next_id = 100_001
        # per currency: expiry_ms -> strikes listed
        self.strikes: dict[str, dict[int, list[float]]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def get(self, name: str) -> SimInstrument | None:
        return self.by_name.get(name)

    def active(self) -> list[SimInstrument]:
        return [i for i in self.by_name.values() if i.is_active]

    def _add(self, inst: SimInstrument) -> SimInstrument:
        self.by_name[inst.name] = inst
        return inst

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def list_static(self, u: UnderlyingSpec, now_ms: int) -> list[SimInstrument]:
        """The instruments that never expire: the inverse perpetual and (if configured) the
        linear USDC perpetual and the spot pair against USDC."""
        spec = _SPECS[u.currency]
        ccy = u.currency
        fees = self._fees
        usd, usdc = f"{ccy.lower()}_usd", f"{ccy.lower()}_usdc"
        wanted = [
            _Undated(f"{ccy}-PERPETUAL", "future", ccy, "USD", spec["inv_cs"],
                     spec["fut_tick"], fees.perpetual_maker, fees.perpetual_taker, usd),
        ]  # fmt: skip
        if u.linear_perpetual:
            wanted.append(
                _Undated(f"{ccy}_USDC-PERPETUAL", "future", "USDC", "USDC", spec["lin_cs"],
                         spec["lin_tick"], fees.linear_maker, fees.linear_taker, usdc)
            )  # fmt: skip
        if u.spot_pair:
            wanted.append(
                _Undated(f"{ccy}_{SPOT_QUOTE}", "spot", SPOT_QUOTE, SPOT_QUOTE,
                         spec["spot_step"], spec["spot_tick"], fees.spot_maker,
                         fees.spot_taker, usdc)
            )  # fmt: skip
        new = []
        for w in wanted:
            if w.name in self.by_name:
                continue
            new.append(
                self._add(
                    SimInstrument(
                        instrument_id=self._id(),
                        name=w.name,
                        kind=w.kind,
                        currency=ccy,
                        settlement_currency=w.settlement_currency,
                        quote_currency=w.quote_currency,
                        counter_currency=w.quote_currency,
                        inverse=w.settlement_currency == ccy,  # coin-settled
                        perpetual=w.kind == "future",
                        contract_size=w.contract_size,
                        # inverse: one contract; linear and spot: one step of coin
                        min_trade_amount=w.contract_size,
                        tick_size=w.tick_size,
                        maker_commission=w.maker,
                        taker_commission=w.taker,
                        # Deribit reports perpetuals and spot pairs as expiring in year 3000
                        expiry_ms=PERPETUAL_EXPIRY_MS,
                        creation_ms=now_ms - 365 * DAY_MS,
                        # a spot pair settles at once: no period (nor in its listing)
                        settlement_period="perpetual" if w.kind == "future" else "",
                        price_index=w.price_index,
                    )
                )
            )
        return new

    def list_expiries(self, u: UnderlyingSpec, now_ms: int, spot: float) -> list[SimInstrument]:
        """List what is due at `now_ms`: new expiries (options, and futures on monthly and
        quarterly ones) and strikes around `spot` missing from already listed expiries."""
        ccy = u.currency
        spec = _SPECS[ccy]
        chain = u.chain
        new: list[SimInstrument] = []
        by_expiry = self.strikes.setdefault(ccy, {})
        for expiry_ms, tenor in listed_expiries(now_ms, chain).items():
            code = format_expiry(expiry_ms)
            period = classify_expiry(expiry_ms)
            if chain.futures and tenor in ("monthly", "quarterly"):
                fname = f"{ccy}-{code}"
                if fname not in self.by_name:
                    new.append(
                        self._add(
                            SimInstrument(
                                instrument_id=self._id(),
                                name=fname,
                                kind="future",
                                currency=ccy,
                                settlement_currency=ccy,
                                quote_currency="USD",
                                counter_currency="USD",
                                inverse=True,
                                perpetual=False,
                                contract_size=spec["inv_cs"],
                                min_trade_amount=spec["inv_cs"],
                                tick_size=spec["dated_tick"],
                                maker_commission=self._fees.future_maker,
                                taker_commission=self._fees.future_taker,
                                expiry_ms=expiry_ms,
                                creation_ms=now_ms,
                                settlement_period=period,
                                price_index=f"{ccy.lower()}_usd",
                            )
                        )
                    )
            pct = {
                "daily": chain.strike_step_pct_daily,
                "weekly": chain.strike_step_pct_weekly,
                "monthly": chain.strike_step_pct_monthly,
                "quarterly": chain.strike_step_pct_quarterly,
            }[tenor]
            step = nice_step(spot * pct)
            center = round(spot / step) * step
            wanted = [
                _clean(center + i * step)
                for i in range(-chain.strikes_each_side, chain.strikes_each_side + 1)
                if center + i * step > 0
            ]
            have = by_expiry.setdefault(expiry_ms, [])
            have_set = set(have)
            for k in wanted:
                if k in have_set:
                    continue
                have.append(k)
                for opt_type in ("call", "put"):
                    name = option_name(ccy, expiry_ms, k, opt_type == "call")
                    if name in self.by_name:
                        continue
                    new.append(
                        self._add(
                            SimInstrument(
                                instrument_id=self._id(),
                                name=name,
                                kind="option",
                                currency=ccy,
                                settlement_currency=ccy,
                                quote_currency=ccy,
                                counter_currency="USD",
                                inverse=True,
                                perpetual=False,
                                contract_size=1.0,
                                min_trade_amount=spec["opt_min"],
                                tick_size=OPTION_TICK_LOW,
                                maker_commission=self._fees.option_maker,
                                taker_commission=self._fees.option_taker,
                                expiry_ms=expiry_ms,
                                creation_ms=now_ms,
                                settlement_period=period,
                                price_index=f"{ccy.lower()}_usd",
                                strike=k,
                                option_type=opt_type,
                            )
                        )
                    )
            have.sort()
        return new
