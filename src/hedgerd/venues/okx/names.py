"""OKX instrument names (`instId`) ↔ `Instrument`, with OKX's contract specs and hedgerd units.

=============================  =================  ============================================
instId                         kind               one contract (`sz` 1) / hedgerd amount unit
=============================  =================  ============================================
``BTC-USD-261225-60000-C``     inverse option     ``ctMult`` coin: 0.01 BTC (ETH 0.1) / coin
``BTC-USD-SWAP``               inverse swap       ``ctVal`` USD: 100 USD (ETH 10) / USD
``BTC-USD-261225``             inverse future     ``ctVal`` USD: 100 USD (ETH 10) / USD
``BTC-USDT-SWAP``              linear swap        ``ctVal`` coin: 0.01 BTC (ETH 0.1) / coin
``BTC-USDT-261225``            linear future      ``ctVal`` coin: 0.01 BTC (ETH 0.1) / coin
``BTC-USDT``                   spot               ``sz`` is coin of the base / coin
=============================  =================  ============================================

hedgerd keeps Deribit's amount convention everywhere past the adapter: inverse swaps and
futures are sized in USD, everything else in coin of the underlying. An OKX order or position
size `sz` is in contracts (spot: coin); `Instrument.contract_size` is what one `sz` unit is in
the instrument's `amount_unit`, so `amount = sz * contract_size` for every kind, and
`min_amount`/`amount_step` are `minSz`/`lotSz` times it. ccxt reads `ctVal` as the contract
size and ignores `ctMult`, which makes its BTC option contract 100 times too large; the adapter
never uses ccxt's `contractSize` for that reason (see `contracts.instrument_from_okx`).

Expiries are ``YYMMDD`` at 08:00 UTC. Premiums of inverse options are in coin (price unit
coin); swaps, futures and spot are priced in USD (USDT/USDC taken 1:1).

The spec tables are OKX's published values at the time of writing; a live adapter prefers the
venue's `public/instruments` and uses this module for names it has not loaded (files, expired
instruments, tests). Unknown underlyings, malformed dates and strikes raise
`UnknownInstrumentError` naming the offending name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from hedgerd.model.instruments import (
    AmountUnit,
    Instrument,
    InstrumentKind,
    OptionType,
    PriceUnit,
    UnknownInstrumentError,
)

VENUE = "okx"
EXPIRY_HOUR_UTC = 8
#: Stablecoins OKX lists linear products and spot against (valued 1:1 with USD).
LINEAR_QUOTES = ("USDT", "USDC")


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """One underlying's OKX contract specs.

    `inverse_usd`: USD face value of an inverse swap/future contract; `linear_coin`: coin face
    value of a linear swap/future contract and `linear_lot` its lot (contracts);
    `option_coin`: coin per option contract (`ctMult`); ticks in the price unit (options coin,
    others USD); `spot_lot`/`spot_min` in coin."""

    inverse_usd: float
    linear_coin: float
    linear_lot: float
    option_coin: float
    option_tick: float
    swap_tick: float
    spot_lot: float
    spot_min: float
    spot_tick: float


SPECS: dict[str, ContractSpec] = {
    "BTC": ContractSpec(100.0, 0.01, 0.01, 0.01, 0.0001, 0.1, 1e-8, 1e-5, 0.1),
    "ETH": ContractSpec(10.0, 0.1, 0.01, 0.1, 0.0001, 0.01, 1e-6, 1e-4, 0.01),
}

# Fees (fractions of notional; options OKX charges on the underlying's notional).
_SWAP_MAKER, _SWAP_TAKER = 0.0002, 0.0005
_OPTION_MAKER, _OPTION_TAKER = 0.0002, 0.0003
_SPOT_MAKER, _SPOT_TAKER = 0.0008, 0.001

_DATE_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})$")
_STRIKE_RE = re.compile(r"^\d+(\.\d+)?$")


def parse_expiry_ms(code: str) -> int:
    """``261225`` → UTC epoch milliseconds of 08:00 UTC on 25 Dec 2026."""
    m = _DATE_RE.match(code)
    if m is None:
        raise UnknownInstrumentError(f"bad expiry date {code!r} (expected YYMMDD, e.g. 261225)")
    yy, mm, dd = (int(g) for g in m.groups())
    try:
        when = datetime(2000 + yy, mm, dd, EXPIRY_HOUR_UTC, tzinfo=UTC)
    except ValueError as exc:
        raise UnknownInstrumentError(f"bad expiry date {code!r}: {exc}") from None
    return int(when.timestamp()) * 1000


def format_expiry(expiry_ms: int) -> str:
    """UTC epoch milliseconds → OKX's date code (``261225``)."""
    return datetime.fromtimestamp(expiry_ms / 1000, tz=UTC).strftime("%y%m%d")


def format_strike(strike_usd: float) -> str:
    """A strike as OKX writes it: an integer without a decimal point, else its digits."""
    return str(int(strike_usd)) if float(strike_usd).is_integer() else f"{strike_usd:.10g}"


def option_name(underlying: str, expiry_ms: int, strike_usd: float, is_call: bool) -> str:
    """An OKX inverse option `instId` (``BTC-USD-261225-60000-C``)."""
    cp = "C" if is_call else "P"
    return f"{underlying}-USD-{format_expiry(expiry_ms)}-{format_strike(strike_usd)}-{cp}"


def _spec(base: str, name: str) -> ContractSpec:
    spec = SPECS.get(base)
    if spec is None:
        raise UnknownInstrumentError(
            f"unknown instrument {name!r}: no OKX contract specs for {base!r} "
            f"(known: {', '.join(sorted(SPECS))})"
        )
    return spec


def _expiry(code: str, name: str) -> int:
    try:
        return parse_expiry_ms(code)
    except UnknownInstrumentError as exc:
        raise UnknownInstrumentError(f"unknown instrument {name!r}: {exc}") from None


def _strike(text: str, name: str) -> float:
    if not _STRIKE_RE.match(text) or float(text) <= 0:
        raise UnknownInstrumentError(f"unknown instrument {name!r}: bad strike {text!r}")
    return float(text)


def _option_type(text: str, name: str) -> OptionType:
    if text == "C":
        return OptionType.CALL
    if text == "P":
        return OptionType.PUT
    raise UnknownInstrumentError(f"unknown instrument {name!r}: option type must be C or P")


def parse_instrument_name(name: str, venue: str = VENUE) -> Instrument:
    """An OKX `instId` → `Instrument` with OKX's default specs and hedgerd's units (see the
    module doc). Raises `UnknownInstrumentError`."""
    parts = name.split("-")
    if len(parts) < 2 or not parts[0] or not parts[0].isalnum():
        raise UnknownInstrumentError(f"unknown instrument {name!r}")
    base, quote, rest = parts[0], parts[1], parts[2:]
    spec = _spec(base, name)
    if quote == "USD":
        return _inverse(name, base, spec, rest, venue)
    if quote in LINEAR_QUOTES:
        return _linear(name, base, quote, spec, rest, venue)
    raise UnknownInstrumentError(f"unknown instrument {name!r}: quote {quote!r}")


def _inverse(name: str, base: str, spec: ContractSpec, rest: list[str], venue: str) -> Instrument:
    if rest == ["SWAP"] or len(rest) == 1:
        perpetual = rest == ["SWAP"]
        return Instrument(
            venue=venue,
            name=name,
            kind=InstrumentKind.PERPETUAL if perpetual else InstrumentKind.FUTURE,
            underlying=base,
            quote_currency="USD",
            settlement_currency=base,
            inverse=True,
            contract_size=spec.inverse_usd,
            amount_unit=AmountUnit.USD,
            min_amount=spec.inverse_usd,
            amount_step=spec.inverse_usd,
            tick_size=spec.swap_tick,
            price_unit=PriceUnit.USD,
            maker_fee=_SWAP_MAKER,
            taker_fee=_SWAP_TAKER,
            expiry_ms=None if perpetual else _expiry(rest[0], name),
        )
    if len(rest) == 3:
        return Instrument(
            venue=venue,
            name=name,
            kind=InstrumentKind.OPTION,
            underlying=base,
            quote_currency="USD",
            settlement_currency=base,
            inverse=True,
            contract_size=spec.option_coin,
            amount_unit=AmountUnit.COIN,
            min_amount=spec.option_coin,
            amount_step=spec.option_coin,
            tick_size=spec.option_tick,
            price_unit=PriceUnit.COIN,
            maker_fee=_OPTION_MAKER,
            taker_fee=_OPTION_TAKER,
            expiry_ms=_expiry(rest[0], name),
            strike_usd=_strike(rest[1], name),
            option_type=_option_type(rest[2], name),
        )
    raise UnknownInstrumentError(f"unknown instrument {name!r}")


def _linear(
    name: str, base: str, quote: str, spec: ContractSpec, rest: list[str], venue: str
) -> Instrument:
    if not rest:
        return Instrument(
            venue=venue,
            name=name,
            kind=InstrumentKind.SPOT,
            underlying=base,
            quote_currency=quote,
            settlement_currency=quote,
            inverse=False,
            contract_size=1.0,
            amount_unit=AmountUnit.COIN,
            min_amount=spec.spot_min,
            amount_step=spec.spot_lot,
            tick_size=spec.spot_tick,
            price_unit=PriceUnit.USD,
            maker_fee=_SPOT_MAKER,
            taker_fee=_SPOT_TAKER,
        )
    if len(rest) == 1:
        perpetual = rest == ["SWAP"]
        step = spec.linear_coin * spec.linear_lot
        return Instrument(
            venue=venue,
            name=name,
            kind=InstrumentKind.PERPETUAL if perpetual else InstrumentKind.FUTURE,
            underlying=base,
            quote_currency=quote,
            settlement_currency=quote,
            inverse=False,
            contract_size=spec.linear_coin,
            amount_unit=AmountUnit.COIN,
            min_amount=step,
            amount_step=step,
            tick_size=spec.swap_tick,
            price_unit=PriceUnit.USD,
            maker_fee=_SWAP_MAKER,
            taker_fee=_SWAP_TAKER,
            expiry_ms=None if perpetual else _expiry(rest[0], name),
        )
    raise UnknownInstrumentError(f"unknown instrument {name!r}")


__all__ = [
    "SPECS",
    "VENUE",
    "ContractSpec",
    "UnknownInstrumentError",
    "format_expiry",
    "format_strike",
    "option_name",
    "parse_expiry_ms",
    "parse_instrument_name",
]
