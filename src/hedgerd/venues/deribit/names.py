"""Deribit instrument names → `Instrument`, with Deribit's contract sizes and units.

Deribit names encode everything needed to value an instrument:

==============================  =================  ==========================================
name                            kind               sizing (amount unit) / price unit
==============================  =================  ==========================================
``BTC-PERPETUAL``               inverse perpetual  USD, multiples of 10 (ETH: 1) / USD
``BTC-27DEC26``                 inverse future     USD, multiples of 10 (ETH: 1) / USD
``BTC-27DEC26-100000-C``        inverse option     coin, min 0.1 BTC (ETH: 1) / coin premium
``BTC_USDC-PERPETUAL``          linear perpetual   coin (0.001 BTC steps) / USDC
``BTC_USDC-27DEC26``            linear future      coin / USDC
``BTC_USDC-27DEC26-100000-C``   linear option      coin (0.01 BTC steps) / USDC premium
``BTC_USDC``                    spot               coin (0.0001 BTC steps) / USDC
==============================  =================  ==========================================

Expiry dates are ``DMMMYY`` or ``DDMMMYY`` (Deribit writes ``5JAN24``, not ``05JAN24``) and
expire at 08:00 UTC on that day. Strikes may carry a decimal written with ``d``
(``XRP_USDC-27DEC26-0d625-C``). USDC is treated as USD (1:1).

The size and tick tables below are Deribit's published values for the main currencies at the
time of writing; a live adapter should prefer `public/get_instruments` and use this module for
names it has not fetched (files, the simulator, tests). Fees are fractions of notional and
approximate (Deribit caps option fees at a fraction of the premium; not modelled here).

Unknown currencies, malformed dates, non-positive strikes and unknown suffixes raise
`UnknownInstrumentError` naming the offending name.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from hedgerd.model.instruments import (
    AmountUnit,
    Instrument,
    InstrumentKind,
    OptionType,
    PriceUnit,
)
from hedgerd.model.instruments import (
    UnknownInstrumentError as UnknownInstrumentError,
)

VENUE = "deribit"
SETTLEMENT_HOUR_UTC = 8
MS_PER_HOUR = 3_600_000

_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}


@dataclass(frozen=True, slots=True)
class _InverseSpec:
    contract_size_usd: float
    perp_tick_usd: float
    future_tick_usd: float
    option_min_coin: float
    option_tick_coin: float


@dataclass(frozen=True, slots=True)
class _LinearSpec:
    perp_step_coin: float
    perp_tick_usd: float
    option_step_coin: float
    option_tick_usd: float
    spot_step_coin: float
    spot_tick_usd: float


# Coin-margined (inverse) products exist for BTC and ETH only.
_INVERSE: dict[str, _InverseSpec] = {
    "BTC": _InverseSpec(10.0, 0.5, 2.5, 0.1, 0.0005),
    "ETH": _InverseSpec(1.0, 0.05, 0.25, 1.0, 0.0005),
}
# USDC-margined (linear) products.
_LINEAR: dict[str, _LinearSpec] = {
    "BTC": _LinearSpec(0.001, 1.0, 0.01, 5.0, 0.0001, 1.0),
    "ETH": _LinearSpec(0.01, 0.1, 0.1, 0.5, 0.0001, 0.1),
    "SOL": _LinearSpec(0.1, 0.01, 1.0, 0.01, 0.01, 0.01),
    "XRP": _LinearSpec(1.0, 0.0001, 10.0, 0.0001, 1.0, 0.0001),
}

_PERP_TAKER = 0.0005
_FUTURE_TAKER = 0.0005
_OPTION_FEE = 0.0003

_DATE_RE = re.compile(r"^(\d{1,2})([A-Z]{3})(\d{2})$")
_STRIKE_RE = re.compile(r"^\d+(d\d+)?$")


def parse_expiry_ms(code: str) -> int:
    """``27DEC26`` → UTC epoch milliseconds of 08:00 UTC on 27 Dec 2026."""
    m = _DATE_RE.match(code)
    if m is None:
        raise UnknownInstrumentError(f"bad expiry date {code!r} (expected e.g. 27DEC26)")
    day, mon, yy = int(m.group(1)), m.group(2), int(m.group(3))
    if mon not in _MONTHS:
        raise UnknownInstrumentError(f"bad month in expiry date {code!r}")
    try:
        when = datetime(2000 + yy, _MONTHS[mon], day, SETTLEMENT_HOUR_UTC, tzinfo=UTC)
    except ValueError as exc:
        raise UnknownInstrumentError(f"bad expiry date {code!r}: {exc}") from None
    return int(when.timestamp()) * 1000


def format_expiry(expiry_ms: int) -> str:
    """UTC epoch milliseconds → Deribit's date code (``27DEC26``; ``5JAN27``, no zero pad)."""
    when = datetime.fromtimestamp(expiry_ms / 1000, tz=UTC)
    return f"{when.day}{calendar.month_abbr[when.month].upper()}{when.year % 100:02d}"


def _parse_strike(text: str, name: str) -> float:
    if not _STRIKE_RE.match(text):
        raise UnknownInstrumentError(f"unknown instrument {name!r}: bad strike {text!r}")
    strike = float(text.replace("d", "."))
    if strike <= 0:
        raise UnknownInstrumentError(f"unknown instrument {name!r}: strike must be positive")
    return strike


def _option_type(text: str, name: str) -> OptionType:
    if text == "C":
        return OptionType.CALL
    if text == "P":
        return OptionType.PUT
    raise UnknownInstrumentError(f"unknown instrument {name!r}: option type must be C or P")


def parse_instrument_name(name: str, venue: str = VENUE) -> Instrument:
    """Parse a Deribit instrument name into an `Instrument` with Deribit's sizes and units.

    Raises `UnknownInstrumentError` (a `ValueError`) with the name in the message.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise UnknownInstrumentError(f"unknown instrument {name!r}")
    parts = name.split("-")
    head = parts[0]
    if "_" in head:
        base, _, quote = head.partition("_")
        if quote != "USDC":
            raise UnknownInstrumentError(
                f"unknown instrument {name!r}: only USDC-margined linear products are known"
            )
        return _parse_linear(name, base, parts[1:], venue)
    return _parse_inverse(name, head, parts[1:], venue)


def _parse_inverse(name: str, base: str, rest: list[str], venue: str) -> Instrument:
    spec = _INVERSE.get(base)
    if spec is None:
        raise UnknownInstrumentError(
            f"unknown instrument {name!r}: no inverse products on {base!r} "
            f"(known: {', '.join(sorted(_INVERSE))})"
        )
    common = {
        "venue": venue,
        "name": name,
        "underlying": base,
        "quote_currency": "USD",
        "settlement_currency": base,
        "inverse": True,
    }
    if rest == ["PERPETUAL"]:
        return Instrument(
            kind=InstrumentKind.PERPETUAL,
            contract_size=spec.contract_size_usd,
            amount_unit=AmountUnit.USD,
            min_amount=spec.contract_size_usd,
            amount_step=spec.contract_size_usd,
            tick_size=spec.perp_tick_usd,
            price_unit=PriceUnit.USD,
            maker_fee=0.0,
            taker_fee=_PERP_TAKER,
            **common,  # type: ignore[arg-type]
        )
    if len(rest) == 1:
        return Instrument(
            kind=InstrumentKind.FUTURE,
            contract_size=spec.contract_size_usd,
            amount_unit=AmountUnit.USD,
            min_amount=spec.contract_size_usd,
            amount_step=spec.contract_size_usd,
            tick_size=spec.future_tick_usd,
            price_unit=PriceUnit.USD,
            maker_fee=0.0,
            taker_fee=_FUTURE_TAKER,
            expiry_ms=_expiry(rest[0], name),
            **common,  # type: ignore[arg-type]
        )
    if len(rest) == 3:
        return Instrument(
            kind=InstrumentKind.OPTION,
            contract_size=1.0,
            amount_unit=AmountUnit.COIN,
            min_amount=spec.option_min_coin,
            amount_step=spec.option_min_coin,
            tick_size=spec.option_tick_coin,
            price_unit=PriceUnit.COIN,
            maker_fee=_OPTION_FEE,
            taker_fee=_OPTION_FEE,
            expiry_ms=_expiry(rest[0], name),
            strike_usd=_parse_strike(rest[1], name),
            option_type=_option_type(rest[2], name),
            **common,  # type: ignore[arg-type]
        )
    raise UnknownInstrumentError(f"unknown instrument {name!r}")


def _parse_linear(name: str, base: str, rest: list[str], venue: str) -> Instrument:
    spec = _LINEAR.get(base)
    if spec is None:
        raise UnknownInstrumentError(
            f"unknown instrument {name!r}: no USDC products on {base!r} "
            f"(known: {', '.join(sorted(_LINEAR))})"
        )
    common = {
        "venue": venue,
        "name": name,
        "underlying": base,
        "quote_currency": "USDC",
        "settlement_currency": "USDC",
        "inverse": False,
        "amount_unit": AmountUnit.COIN,
        "price_unit": PriceUnit.USD,
    }
    if not rest:
        return Instrument(
            kind=InstrumentKind.SPOT,
            contract_size=spec.spot_step_coin,
            min_amount=spec.spot_step_coin,
            amount_step=spec.spot_step_coin,
            tick_size=spec.spot_tick_usd,
            **common,  # type: ignore[arg-type]
        )
    if rest == ["PERPETUAL"]:
        return Instrument(
            kind=InstrumentKind.PERPETUAL,
            contract_size=spec.perp_step_coin,
            min_amount=spec.perp_step_coin,
            amount_step=spec.perp_step_coin,
            tick_size=spec.perp_tick_usd,
            maker_fee=0.0,
            taker_fee=_PERP_TAKER,
            **common,  # type: ignore[arg-type]
        )
    if len(rest) == 1:
        return Instrument(
            kind=InstrumentKind.FUTURE,
            contract_size=spec.perp_step_coin,
            min_amount=spec.perp_step_coin,
            amount_step=spec.perp_step_coin,
            tick_size=spec.perp_tick_usd,
            maker_fee=0.0,
            taker_fee=_FUTURE_TAKER,
            expiry_ms=_expiry(rest[0], name),
            **common,  # type: ignore[arg-type]
        )
    if len(rest) == 3:
        return Instrument(
            kind=InstrumentKind.OPTION,
            contract_size=spec.option_step_coin,
            min_amount=spec.option_step_coin,
            amount_step=spec.option_step_coin,
            tick_size=spec.option_tick_usd,
            maker_fee=_OPTION_FEE,
            taker_fee=_OPTION_FEE,
            expiry_ms=_expiry(rest[0], name),
            strike_usd=_parse_strike(rest[1], name),
            option_type=_option_type(rest[2], name),
            **common,  # type: ignore[arg-type]
        )
    raise UnknownInstrumentError(f"unknown instrument {name!r}")


def _expiry(code: str, name: str) -> int:
    try:
        return parse_expiry_ms(code)
    except UnknownInstrumentError as exc:
        raise UnknownInstrumentError(f"unknown instrument {name!r}: {exc}") from None


def option_name(
    underlying: str, expiry_ms: int, strike_usd: float, is_call: bool, linear: bool = False
) -> str:
    """Build a Deribit option name (``BTC-27DEC26-100000-C``); strike decimals as ``d``."""
    strike = f"{strike_usd:.10g}".replace(".", "d")
    head = f"{underlying}_USDC" if linear else underlying
    return f"{head}-{format_expiry(expiry_ms)}-{strike}-{'C' if is_call else 'P'}"
