"""Instruments: what a venue lists, with the units its amounts and prices are quoted in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class UnknownInstrumentError(ValueError):
    """A name that is not an instrument of its venue that hedgerd knows how to size and value
    (each venue's name parser raises it, naming the offending name)."""


class InstrumentKind(StrEnum):
    OPTION = "option"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    SPOT = "spot"


class OptionType(StrEnum):
    CALL = "call"
    PUT = "put"


class AmountUnit(StrEnum):
    """Unit of an order or position amount on the venue.

    Inverse futures and perpetuals are sized in USD (Deribit BTC-PERPETUAL: multiples of 10 USD);
    options, linear contracts and spot are sized in coin of the underlying.
    """

    USD = "usd"
    COIN = "coin"


class PriceUnit(StrEnum):
    """Unit of a quoted price: USD per coin (futures, linear options), or coin per coin of
    underlying (inverse options: the premium in coin)."""

    USD = "usd"
    COIN = "coin"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument on one venue.

    Amounts (`min_amount`, `amount_step`, `contract_size`) are in `amount_unit`; `tick_size` is
    in `price_unit`. Fees are fractions of notional (0.0005 = 5 bp); negative is a rebate.
    """

    venue: str
    name: str
    kind: InstrumentKind
    underlying: str
    quote_currency: str
    settlement_currency: str
    inverse: bool
    contract_size: float
    amount_unit: AmountUnit
    min_amount: float
    amount_step: float
    tick_size: float
    price_unit: PriceUnit
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    expiry_ms: int | None = None
    strike_usd: float | None = None
    option_type: OptionType | None = None

    def __post_init__(self) -> None:
        for field, value in (
            ("contract_size", self.contract_size),
            ("min_amount", self.min_amount),
            ("amount_step", self.amount_step),
            ("tick_size", self.tick_size),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"instrument {self.name}: {field} must be positive, got {value}")
        if self.kind is InstrumentKind.OPTION:
            if self.strike_usd is None or self.option_type is None or self.expiry_ms is None:
                raise ValueError(f"option {self.name} needs strike_usd, option_type and expiry_ms")
            if not (math.isfinite(self.strike_usd) and self.strike_usd > 0):
                raise ValueError(f"option {self.name}: strike must be positive")
        if self.kind is InstrumentKind.FUTURE and self.expiry_ms is None:
            raise ValueError(f"future {self.name} needs expiry_ms")
        if (
            self.inverse
            and self.kind is not InstrumentKind.OPTION
            and (self.amount_unit is not AmountUnit.USD)
        ):
            raise ValueError(f"inverse {self.kind} {self.name} must be sized in USD")

    @property
    def is_option(self) -> bool:
        return self.kind is InstrumentKind.OPTION

    @property
    def is_call(self) -> bool:
        return self.option_type is OptionType.CALL
