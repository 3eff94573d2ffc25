"""OKX contracts ↔ hedgerd amounts, and OKX instrument JSON → `Instrument`.

OKX sizes every derivative order and position in contracts (`sz`, `pos`, `fillSz`), spot in
coin of the base. hedgerd sizes inverse swaps/futures in USD and everything else in coin (see
`names`). `Instrument.contract_size` is one `sz` unit in the instrument's `amount_unit`:

- option: `ctMult` coin (BTC 0.01, ETH 0.1; `ctVal` is 1 and ccxt's `contractSize` is it);
- inverse swap/future: `ctVal` USD (BTC 100, ETH 10);
- linear swap/future: `ctVal` coin (BTC 0.01, ETH 0.1);
- spot: 1 (`sz` is already coin).

So `amount = sz * contract_size`, and an amount converts back only when it is a whole number
of lots (`lotSz` contracts): anything else is refused (`ContractSizeError`), never rounded
silently, because the venue would refuse it (51121) or fill a different size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hedgerd.model import AmountUnit, Instrument, InstrumentKind, OptionType, PriceUnit

#: Relative tolerance for "a whole number of lots" (float noise of `0.3 / 0.1`).
_LOT_TOLERANCE = 1e-9


class ContractSizeError(ValueError):
    """An amount that is not a whole, positive number of the instrument's lots."""


def contracts_to_amount(instrument: Instrument, contracts: float) -> float:
    """OKX `sz`/`pos` (contracts; spot coin) → hedgerd amount in `instrument.amount_unit`
    (signed like the input)."""
    return _clean(contracts * instrument.contract_size)


def amount_to_contracts(instrument: Instrument, amount: float) -> float:
    """A positive hedgerd amount (`instrument.amount_unit`) → OKX `sz` (contracts; spot
    coin). Raises `ContractSizeError` unless it is a whole number of lots
    (`instrument.amount_step`) and at least `instrument.min_amount`."""
    if not (math.isfinite(amount) and amount > 0):
        raise ContractSizeError(f"{instrument.name}: amount must be positive, got {amount!r}")
    lots = amount / instrument.amount_step
    if abs(lots - round(lots)) > _LOT_TOLERANCE * max(1.0, lots):
        raise ContractSizeError(
            f"{instrument.name}: amount {amount:g} {_unit(instrument)} is not a multiple of "
            f"the lot {instrument.amount_step:g} {_unit(instrument)}"
        )
    if amount < instrument.min_amount * (1 - _LOT_TOLERANCE):
        raise ContractSizeError(
            f"{instrument.name}: amount {amount:g} {_unit(instrument)} is below the minimum "
            f"{instrument.min_amount:g} {_unit(instrument)}"
        )
    return _clean(round(lots) * instrument.amount_step / instrument.contract_size)


def contracts_to_coin(instrument: Instrument, contracts: float, price_usd: float) -> float:
    """Signed contracts → coin of the underlying. Inverse swaps/futures convert their USD
    face value at `price_usd` (USD per coin: the mark, as OKX's own coin figures do);
    ignored for coin-sized instruments."""
    amount = contracts_to_amount(instrument, contracts)
    if instrument.amount_unit is AmountUnit.COIN:
        return amount
    if not (math.isfinite(price_usd) and price_usd > 0):
        raise ValueError(f"{instrument.name}: conversion price must be positive, got {price_usd}")
    return amount / price_usd


def _unit(instrument: Instrument) -> str:
    return "USD" if instrument.amount_unit is AmountUnit.USD else instrument.underlying


def _clean(x: float) -> float:
    """Float noise off a product of decimal sizes (3 * 0.01 → 0.03, not 0.030000000000000002)."""
    return float(f"{x:.12g}")


# ------------------------------------------------------------------------ instruments


def _num(info: Mapping[str, Any], key: str) -> float | None:
    """A positive finite number from an OKX string field ("" is absent)."""
    try:
        x = float(info.get(key) or "nan")
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def instrument_from_okx(
    venue: str, info: Mapping[str, Any], maker_fee: float = 0.0, taker_fee: float = 0.0
) -> Instrument | None:
    """One entry of OKX `public/instruments` (ccxt's `market['info']`) → `Instrument` in
    hedgerd units, or None for what hedgerd does not trade (unknown type, not live, missing
    sizes). Reads `ctMult` for options, which ccxt ignores."""
    inst_id = str(info.get("instId") or "")
    inst_type = str(info.get("instType") or "")
    if not inst_id or str(info.get("state") or "live") not in ("live", "preopen", "suspend"):
        return None
    lot = _num(info, "lotSz")
    min_sz = _num(info, "minSz") or lot
    tick = _num(info, "tickSz")
    if lot is None or min_sz is None or tick is None:
        return None
    if inst_type == "SPOT":
        base, quote = str(info.get("baseCcy") or ""), str(info.get("quoteCcy") or "")
        if not base or not quote:
            return None
        return _make(
            venue, inst_id, InstrumentKind.SPOT, base, quote, quote, False, 1.0,
            AmountUnit.COIN, min_sz, lot, tick, PriceUnit.USD, maker_fee, taker_fee,
        )  # fmt: skip
    uly = str(info.get("uly") or info.get("instFamily") or "")
    if "-" not in uly:
        return None
    base, quote = uly.split("-", 1)
    settle = str(info.get("settleCcy") or "")
    inverse = settle == base
    ct_val = _num(info, "ctVal")
    if ct_val is None:
        return None
    expiry = _ms(info.get("expTime"))
    if inst_type == "OPTION":
        ct_mult = _num(info, "ctMult")
        strike = _num(info, "stk")
        opt = {"C": OptionType.CALL, "P": OptionType.PUT}.get(str(info.get("optType")))
        if ct_mult is None or strike is None or opt is None or expiry is None:
            return None
        size = ct_val * ct_mult  # coin per contract (ctVal 1, ctValCcy the coin)
        return _make(
            venue, inst_id, InstrumentKind.OPTION, base, quote, settle, inverse, size,
            AmountUnit.COIN, min_sz * size, lot * size, tick,
            PriceUnit.COIN if inverse else PriceUnit.USD, maker_fee, taker_fee,
            expiry, strike, opt,
        )  # fmt: skip
    if inst_type in ("SWAP", "FUTURES"):
        kind = InstrumentKind.PERPETUAL if inst_type == "SWAP" else InstrumentKind.FUTURE
        if kind is InstrumentKind.FUTURE and expiry is None:
            return None
        unit = AmountUnit.USD if inverse else AmountUnit.COIN
        return _make(
            venue, inst_id, kind, base, quote, settle, inverse, ct_val, unit,
            min_sz * ct_val, lot * ct_val, tick, PriceUnit.USD, maker_fee, taker_fee,
            expiry if kind is InstrumentKind.FUTURE else None,
        )  # fmt: skip
    return None


def _ms(value: Any) -> int | None:
    try:
        ms = int(str(value))
    except (TypeError, ValueError):
        return None
    return ms if ms > 0 else None


def _make(
    venue: str,
    name: str,
    kind: InstrumentKind,
    base: str,
    quote: str,
    settle: str,
    inverse: bool,
    contract_size: float,
    unit: AmountUnit,
    min_amount: float,
    step: float,
    tick: float,
    price_unit: PriceUnit,
    maker_fee: float,
    taker_fee: float,
    expiry_ms: int | None = None,
    strike: float | None = None,
    option_type: OptionType | None = None,
) -> Instrument | None:
    try:
        return Instrument(
            venue=venue,
            name=name,
            kind=kind,
            underlying=base,
            quote_currency=quote,
            settlement_currency=settle,
            inverse=inverse,
            contract_size=_clean(contract_size),
            amount_unit=unit,
            min_amount=_clean(min_amount),
            amount_step=_clean(step),
            tick_size=tick,
            price_unit=price_unit,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            expiry_ms=expiry_ms,
            strike_usd=strike,
            option_type=option_type,
        )
    except ValueError:
        return None


__all__ = [
    "ContractSizeError",
    "amount_to_contracts",
    "contracts_to_amount",
    "contracts_to_coin",
    "instrument_from_okx",
]
