"""The daily hedge loss: the hedges' P&L since the trading day's start, marked to market, and
the switch that trips on it (and halts when it cannot be computed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hedgerd.model.instruments import AmountUnit, Instrument, PriceUnit
from hedgerd.model.orders import Fill
from hedgerd.risk.limits import DailyLossSettings
from hedgerd.risk.trading_state import ReasonCode, TradingState
from hedgerd.risk.trips import DAY_MS, HOUR_MS, Trip, finite


def day_start_ms(now_ms: int, hour_utc: int) -> int:
    """Start of the trading day containing `now_ms` (UTC epoch ms), the day starting at
    `hour_utc`:00 UTC."""
    offset = hour_utc * HOUR_MS
    return (now_ms - offset) // DAY_MS * DAY_MS + offset


@dataclass(frozen=True, slots=True)
class CarriedPosition:
    """A hedge position held at the start of the day: signed amount in the instrument's amount
    unit, and its mark at the day's start in the instrument's price unit (USD)."""

    instrument: str
    amount: float
    start_mark_usd: float


@dataclass(frozen=True, slots=True)
class PnlEstimate:
    """The hedges' P&L, USD; None (with what is missing) when it cannot be computed."""

    pnl_usd: float | None
    missing: tuple[str, ...] = ()


_USD_LIKE = frozenset({"USD", "USDC", "USDT"})


def hedge_pnl_usd(
    fills: Iterable[Fill],
    instruments: Mapping[str, Instrument],
    marks_usd: Mapping[str, float],
    index_usd: Mapping[str, float],
    carried: Iterable[CarriedPosition] = (),
) -> PnlEstimate:
    """P&L of hedge trades and carried hedge positions, marked to market, fees included, USD.

    `fills` are the day's hedge fills; `marks_usd` the current mark per instrument name (USD
    per coin); `index_usd` the index per underlying (converts inverse P&L and coin fees).
    Linear / spot (sized in coin): amount × (mark − price). Inverse (sized in USD): amount ×
    (1/price − 1/mark) coin, × index. Option fills are skipped (the book, not its hedges); a
    fill of an instrument not in `instruments`, or any missing mark or index, makes the result
    None (a loss that cannot be computed halts).
    """
    total = 0.0
    missing: list[str] = []

    def positive(x: float | None) -> bool:
        return x is not None and finite(x) and x > 0

    def leg(name: str, signed_amount: float, price: float) -> float | None:
        inst = instruments.get(name)
        if inst is not None and inst.is_option:
            return None  # options are the book, not its hedges
        if inst is None or inst.price_unit is not PriceUnit.USD:
            missing.append(f"instrument:{name}")
            return None
        mark = marks_usd.get(name)
        if not positive(mark) or not positive(price) or not finite(signed_amount):
            missing.append(f"mark:{name}")
            return None
        assert mark is not None
        if inst.amount_unit is AmountUnit.COIN:
            return signed_amount * (mark - price)
        index = index_usd.get(inst.underlying)
        if not positive(index):
            missing.append(f"index:{inst.underlying}")
            return None
        assert index is not None
        return signed_amount * (1.0 / price - 1.0 / mark) * index

    for fill in fills:
        pnl = leg(fill.instrument, fill.side.sign * fill.amount, fill.price)
        if pnl is None:  # an option's fill, or something missing (recorded by `leg`)
            continue
        total += pnl
        currency = fill.fee_currency.upper()
        if currency in _USD_LIKE:
            total -= fill.fee
            continue
        inst = instruments[fill.instrument]
        index = index_usd.get(inst.underlying) if currency == inst.underlying.upper() else None
        if not positive(index) or not finite(fill.fee):
            missing.append(f"fee:{fill.trade_id}")
            continue
        assert index is not None
        total -= fill.fee * index
    for pos in carried:
        pnl = leg(pos.instrument, pos.amount, pos.start_mark_usd)
        if pnl is not None:
            total += pnl
    if missing:
        return PnlEstimate(None, tuple(sorted(set(missing))))
    return PnlEstimate(total, ())


class DailyLossSwitch:
    """The day's hedge P&L against the loss limit; a P&L that cannot be computed halts."""

    def __init__(self, settings: DailyLossSettings) -> None:
        self.settings = settings

    def observe(self, now_ms: int, pnl_usd: float | None, missing: str = "") -> Trip | None:
        """`pnl_usd`: the day's hedge P&L (negative is a loss), or None / NaN when it cannot
        be computed (`missing` says why)."""
        s = self.settings
        if not s.enabled:
            return None
        if pnl_usd is None or not finite(pnl_usd):
            return Trip(
                ReasonCode.DAILY_LOSS,
                TradingState.HALTED,
                f"daily hedge loss cannot be computed ({missing or pnl_usd})",
                {"pnl_usd": str(pnl_usd), "missing": missing[:200]},
            )
        loss = -pnl_usd
        if loss < s.max_daily_loss_usd:
            return None
        return Trip(
            ReasonCode.DAILY_LOSS,
            s.trip_state,
            f"daily hedge loss {loss:,.2f} USD reached the limit of {s.max_daily_loss_usd:,.2f}",
            {"loss_usd": loss, "limit_usd": s.max_daily_loss_usd},
        )


__all__ = ["CarriedPosition", "DailyLossSwitch", "PnlEstimate", "day_start_ms", "hedge_pnl_usd"]
