"""Deribit API payloads for unit tests, built from `Instrument`s (the inverse of the adapter's
normalisation), shaped as Deribit's documentation and the OpenAPI examples show them."""

from __future__ import annotations

from typing import Any

from hedgerd.model import Instrument, InstrumentKind

PERPETUAL_EXPIRY_MS = 32_503_708_800_000


def instrument_json(inst: Instrument) -> dict[str, Any]:
    """A `public/get_instruments` entry for `inst`."""
    base = inst.underlying
    linear = not inst.inverse
    kind = {
        InstrumentKind.OPTION: "option",
        InstrumentKind.PERPETUAL: "future",
        InstrumentKind.FUTURE: "future",
        InstrumentKind.SPOT: "spot",
    }[inst.kind]
    out: dict[str, Any] = {
        "instrument_name": inst.name,
        "kind": kind,
        "base_currency": base,
        "counter_currency": inst.quote_currency,
        "quote_currency": (
            base if inst.kind is InstrumentKind.OPTION and inst.inverse else inst.quote_currency
        ),
        "settlement_currency": inst.settlement_currency,
        "contract_size": inst.contract_size,
        "min_trade_amount": inst.min_amount,
        "tick_size": inst.tick_size,
        "maker_commission": inst.maker_fee,
        "taker_commission": inst.taker_fee,
        "is_active": True,
        "instrument_type": "linear" if linear else "reversed",
        "creation_timestamp": 1_700_000_000_000,
        "expiration_timestamp": inst.expiry_ms or PERPETUAL_EXPIRY_MS,
        "settlement_period": (
            "perpetual"
            if inst.kind is InstrumentKind.PERPETUAL
            else "month"
            if inst.expiry_ms
            else None
        ),
    }
    if inst.kind is InstrumentKind.OPTION:
        out["strike"] = inst.strike_usd
        out["option_type"] = str(inst.option_type)
    return out
